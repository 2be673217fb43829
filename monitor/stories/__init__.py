"""Stories and novelty: near-duplicates, retweets and syndicated copies of one story share a story id, and
every item gets a novelty 0-100 in the spirit of RavenPack's Event Novelty Score (issue #13, part 2).

Modules
-------
text.py     normalisation (RT prefixes, URLs, mentions, truncation, case, sigils) and word shingles  (pure)
minhash.py  deterministic numpy MinHash signatures and LSH band hashes                              (pure)
novelty.py  the novelty formula                                                                     (pure)
book.py     the decision: which story an item joins, on an in-memory view of story state            (pure)
memory.py   MemoryStories: the decisions with all state in memory (benchmarks, test reference)      (pure)
index.py    StoryIndex: the same decisions with state in the store, for several workers and restarts
queries.py  list_stories / story_of: reading stories back
The pure modules import neither SQLAlchemy nor Kafka (import-linter contract `pure-decisions`).

    from monitor.stories import StoryInput
    from monitor.stories.index import StoryIndex
    index = StoryIndex(store, settings.stories)          # FINMON_STORIES__THRESHOLD=0.6 etc.
    index.assign([StoryInput(item.id, item.text, item.source, item.published_at, item.tickers)])
    -> [StoryAssignment(item_id, story_id, novelty)]

How an item finds its story
---------------------------
1. Normalise (text.py): drop `RT @user:` prefixes, URLs, @mentions and the word cut by a truncation `…`;
   NFKC, casefold, `$AAPL`/`#AAPL` -> `aapl`; keep every word and number (`1,200` -> `1200`). Texts of fewer
   than 4 words are compared whole (only identical ones match).
2. Shingles: word unigrams + bigrams (crc32); a text mostly in Chinese or Japanese (no spaces) is cut into
   characters, and its shingles are character bigrams + trigrams (text.py). Signature: 64 MinHash values
   (multiply-add-shift hashes whose parameters come from BLAKE2b of (seed, i), so every worker, restart and
   numpy version agrees; tests pin the values). LSH: 16 bands of 4 values (candidate probability 0.64 at
   Jaccard 0.5, 0.89 at 0.6, 0.99 at 0.7; measured on StockNet, 32 bands or 128 permutations find the same
   stories within 0.2%).
3. Decide (book.py): among the exemplars sharing a band, the most similar with estimated Jaccard >= 0.5
   (`threshold`), whose tickers are not disjoint from the item's (cashtags plus `StoryInput.tickers`), in a
   story that has an item within 24 h (`window_hours`) of the item. Else a new story, id = BLAKE2b(item id).
4. Novelty (novelty.py): round(100 * 0.75 ** k), k = the story's items with event time in [t - 24 h, t]
   assigned before this one: 100, 75, 56, 42, 32, 24, 18, 13, 10, 8, ... A story silent for more than 24 h
   is closed: a copy resurfacing later starts a new story at 100. Only the count matters, so time-ordered
   input replayed at any speed and in any batch sizes gets the same ids and novelty; an out-of-order copy
   counts only the earlier copies already assigned (a late original scores 100; assignments are final).

State in the store (index.py): `stories`, `story_items` (every assignment, for idempotency), `story_sources`,
`story_bands` (LSH buckets -> story, exemplar, last_seen), `story_exemplars` (signatures), `story_progress`
(watermark). Bucket entries not seen for 48 h of event time (`prune_hours`) behind the newest item are dead
(ignored by every later decision) and deleted, with the exemplars they used, once per hour of event-time
progress, so decisions depend on the input order only, never on batching: the matching state holds ~48 h of
distinct texts (16 bucket rows and one 256-byte signature each); `story_items` and `stories` grow like
`scored_items`. Concurrent workers: each `assign` is one transaction that first upserts the `story_progress`
row, which serialises them on SQLite and PostgreSQL (see index.py for why a lock rather than deterministic
ids plus insert-on-conflict); tests show two workers splitting one story in two without it.

Measurements (`finmon bench stories`; 2 shared CPU cores, batches of 256 items)
--------------------------------------------------------------------------------
Cost per item: fingerprint 35-55 us (normalise ~25, shingles ~12, signature ~10, bands ~2); decisions in
memory 55-100 us in all; StoryIndex on SQLite 210-500 us (35-110 ms per batch of 256 inside the
transaction, which is what concurrent workers wait for), on PostgreSQL 460-580 us (80-130 ms per batch, most
of it the server inserting ~16 bucket rows per distinct text). The classifier costs 3,000-8,000 us per item
on the same cores (int8, README: 120-350 texts/s), so story assignment adds about 3-20%. datasketch's
MinHash on the same shingles took 140-170 us per signature (SHA-1 per shingle in Python) against ~10-15 us
here: no new dependency.

Stories found (items carry their tickers; rows = StockNet's item-ticker rows):
- StockNet, first 20,000 rows (17,541 tweets, Jan-May 2014): 15,580 stories, largest 56 rows (28 items),
  11.7% of rows in stories of 5+ rows, 11.2% of items joined an earlier item's story, mean novelty 93.4.
  Exact raw-text duplicates (no time limit) give 15,926 groups, largest 150, 11.1% of rows in groups of 5+.
- StockNet, all 119,641 rows (96,826 tweets): 82,193 stories, largest 1,581 rows (527 items), 18.6% of rows
  in stories of 5+, 15.1% of items joined. Exact text: largest 1,797 rows (the figure in issue #13), 16.3%
  of rows in groups of 5+. The most repeated retweet (599 tweets, 1,797 rows) came in two bursts 26 h
  apart: the second burst (72 tweets) starts a new story, as a story silent for more than 24 h is closed.
  With no time limit (window_hours=24000): 75,377 stories, largest 1,797 rows, 24.3% of rows in stories of
  5+ rows, the all-time view behind issue #13's "about 20% ... in groups of 5 or more".
- Demo feed (380 items): 159 stories, 58% of items joined (the generator repeats headlines).
- Precision, checked by hand: of the 1,961 items that joined an earlier story in the 20,000 rows, 1,648 have
  the same normalised text as the story's first item; 40 of the other 313 sampled (seed 7): 38 are the same
  story (retweets with comments, rewrites such as "Facebook to acquire WhatsApp for about $16 billion" vs
  "Facebook to buy WhatsApp for about $16 billion cash and stock", a comment in Chinese before a retweet),
  2 are spam templates sharing a ticker ("#Stocks you might want to buy ... $FB" vs "... sell ... $FB").
  About 99% of joins are right.

MinHash/LSH vs the encoder's sentence embedding
-----------------------------------------------
The alternative was the mean-pooled embedding of the shipped encoder (finmon-minilm, what the classifier
computes before its heads): an item joins the story of its most similar item of the past 24 h if the cosine
reaches a threshold. Two samples of 2,000 consecutive StockNet tweets (`--embedding 2000`, pair samples
written with `--pairs-out` and labelled by hand; "same story" = a copy, retweet or rewrite of the same
report, not templated posts about other tickers or other data):

                                    Jun 2015 (items 60,000+)       Jul 2014 (items 25,000+)
  items joined   MinHash             241                            151
                 cosine >= 0.97      275                            293
                 cosine >= 0.95      387                            501
                 cosine >= 0.90      734                            959
  same-story pairs, cosine 0.95:    both 1,278, only MinHash 963,  both 2,357, only MinHash 8,
                                    only embedding 325             only embedding 1,080
  hand check of samples (0.95):     only MinHash: 25/25 right      only MinHash: 4/8 right
                                    only embedding: 5/25 right     only embedding: 0/25 right

What the embedding finds that MinHash does not is mostly templated posts about *different* companies
("NFLX Netflix, Inc. E.P.S. <link> $NFLX ..." vs "CELG Celgene Corp. Financials ...", cosine 0.93-0.98),
plus a few true pairs (the same spam text with different appended cashtag lists, two articles on one
earnings preview). What MinHash finds that the embedding misses are retweets: "RT @user: L$D" vs "L$D" has
cosine 0.68-0.88, because the embedding sees the RT prefix and the links that normalisation removes. No
cosine threshold separates the two: copies go down to 0.7, different stories go up to 0.98. The embedding
also costs more: it is not exposed by the classifier today (28 ms per item to compute it again on these
cores), and matching needs 384 floats per item of state and a nearest-neighbour search over the window
(8 us per item by brute force at ~150 items per 24 h, growing with volume, and awkward to share across
workers through a SQL store), where MinHash needs 16 indexed band lookups.

Choice: MinHash/LSH on normalised word shingles, with the ticker veto. Known limits: headlines that differ
only in the company name are one story unless the items carry tickers (entity linking should pass them);
a story that two sources tag with different single tickers splits; pruning follows one global watermark,
so replaying old data into a store that also holds live data starts new stories for the old items.
"""

from monitor.stories.book import StoryAssignment, StoryInput
from monitor.stories.memory import MemoryStories
from monitor.stories.novelty import novelty

__all__ = ["MemoryStories", "StoryAssignment", "StoryInput", "novelty"]
