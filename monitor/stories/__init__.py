"""Stories and novelty: near-duplicates, retweets and syndicated copies of one story share a story id.

(Full description, measurements and the MinHash-vs-embedding choice: filled in below.)
"""

from monitor.stories.book import StoryAssignment, StoryInput
from monitor.stories.memory import MemoryStories
from monitor.stories.novelty import novelty

__all__ = ["MemoryStories", "StoryAssignment", "StoryInput", "novelty"]
