"""The pipeline's stages as processors for the stage loop: classify (news.raw -> news.scored) and sink
(news.scored + news.deadletter -> store)."""
