"""Which story an item joins, and its novelty: the decision, on an in-memory view of story state (pure).

`StoryBook` holds the part of the story state a batch can touch: LSH buckets (band, hash) -> the stories
that have an item there and the item (exemplar) that first put each story there; the exemplars' signatures
and tickers; each story's item event times. `StoryIndex` (monitor/stories/index.py) loads that view from the
store under a lock, runs the batch through `StoryBook.assign` one item at a time, in input order, and writes
back what the decisions changed. `MemoryStories` (monitor/stories/memory.py) runs the same book with all
state in memory (benchmarks, and the reference the store-backed index is tested against).

An item joins the story of the most similar exemplar among those sharing an LSH band with it, if
- the estimated Jaccard similarity reaches the threshold,
- their tickers are not disjoint: both naming tickers, with none in common, vetoes the match. An item's
  tickers are its cashtags plus the tickers it arrives with (`StoryInput.tickers`: feed fields, entity
  linking), compared by root symbol (`BRK.B` -> `brk`, `SAP.DE` -> `sap`). Templated headlines differ only
  there: "$CSCO received a new alert" and "$MSFT received a new alert", "Halcyon Motors raises full-year
  guidance on strong demand" and "Vesper Foods raises ..." (Jaccard 0.55) are not one story. The cost: a
  story that two sources tag with different single companies (one [PFE], the other [AZN]) splits in two.
- and the story is live: it has an item within the window (24 h) of the item's event time. A story silent for
  longer is closed; a copy that resurfaces later starts a new story, with novelty 100.
Ties go to the smaller story id, so the outcome never depends on dict or database order. Otherwise the item
starts a story whose id is derived from its item id (the same input gives the same story ids on any worker).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from monitor.stories.minhash import MinHasher, jaccard
from monitor.stories.novelty import earlier_in_window, novelty
from monitor.stories.text import normalize, shingle_hashes

HEADLINE_CHARS = 300


@dataclass(frozen=True, slots=True)
class StoryInput:
    """What story assignment reads of an item. `text` is the title, then the body if any (RawItem.text);
    `tickers` are the symbols the item is about (RawItem.tickers or linked ones; cashtags are found anyway)."""

    item_id: str
    text: str
    source: str
    published_at: datetime  # tz-aware UTC: the event time
    tickers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoryAssignment:
    """An item's story and its novelty 0..100 (final: a redelivered item gets the same assignment)."""

    item_id: str
    story_id: str
    novelty: int


@dataclass(frozen=True, slots=True, eq=False)
class Fingerprint:
    """An item's MinHash signature, its LSH band hashes and its tickers (root symbols, casefolded)."""

    signature: np.ndarray
    bands: tuple[int, ...]
    tickers: frozenset[str]


@dataclass(frozen=True, slots=True, eq=False)
class Exemplar:
    """An item whose signature represents its story in at least one LSH bucket."""

    item_id: str
    story_id: str
    signature: np.ndarray
    tickers: frozenset[str]
    t_us: int


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one item: its assignment plus what it adds to the story state."""

    assignment: StoryAssignment
    t_us: int
    new_story: bool
    new_buckets: tuple[tuple[int, int], ...]  # (band, hash) the story was not in yet: this item is their exemplar
    refreshed: tuple[tuple[int, int], ...]  # (band, hash) the story was in, whose last_seen moves on to t_us


def story_id_for(item_id: str) -> str:
    """The id of a story started by `item_id` (deterministic: 80 bits of BLAKE2b)."""
    return "st-" + hashlib.blake2b(item_id.encode("utf-8"), digest_size=10).hexdigest()


def headline_of(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()[:HEADLINE_CHARS]


def first_copies(items: Iterable[StoryInput]) -> list[StoryInput]:
    """The first item of each id, in input order (a batch may repeat an id)."""
    seen: dict[str, StoryInput] = {}
    for item in items:
        seen.setdefault(item.item_id, item)
    return list(seen.values())


def ticker_roots(symbols: Iterable[str]) -> frozenset[str]:
    """Symbols as the veto compares them: casefolded, without `$` and without a class or exchange suffix."""
    return frozenset(root for s in symbols if (root := s.strip().lstrip("$").casefold().replace("-", ".")
                                               .split(".", 1)[0]))


def fingerprints(hasher: MinHasher, texts: Sequence[str],
                 tickers: Sequence[Iterable[str]] | None = None) -> list[Fingerprint]:
    """Fingerprints of many texts (signatures and band hashes computed in vectorised passes); `tickers`:
    each text's own symbols, joined with its cashtags. A text with no words has no bands: it is never a
    candidate of anything and starts its own story."""
    norms = [normalize(t) for t in texts]
    sets = [shingle_hashes(n) for n in norms]
    sigs = hasher.signatures(sets)
    bands = hasher.band_matrix(sigs).tolist()
    extra = tickers if tickers is not None else [()] * len(texts)
    return [Fingerprint(sig, tuple(b) if len(h) else (), ticker_roots([*n.tickers, *own]))
            for sig, b, h, n, own in zip(sigs, bands, sets, norms, extra, strict=True)]


def fingerprint_items(hasher: MinHasher, items: Sequence[StoryInput]) -> list[Fingerprint]:
    return fingerprints(hasher, [item.text for item in items], [item.tickers for item in items])


@dataclass
class StoryBook:
    """The story state a batch can see, and the decisions taken on it (see the module docstring).

    Buckets age out logically: an item ignores bucket entries last seen more than `keep_us` before the
    watermark (the newest event time assigned so far, this item included), and files itself anew in such a
    bucket. Physical pruning (`forget_before`, `StoryIndex`'s prune) only deletes entries that every later
    item ignores anyway, so when and in what batches it runs never changes a decision.
    """

    threshold: float
    window_us: int
    decay: float
    keep_us: int  # bucket entries last seen this long before the watermark are dead
    refresh_us: int  # a bucket's last_seen moves on only by steps of at least this much (fewer writes)
    watermark_us: int | None = None
    buckets: dict[tuple[int, int], dict[str, str]] = field(default_factory=dict)  # -> story id -> exemplar id
    last_seen: dict[tuple[int, int, str], int] = field(default_factory=dict)  # (band, hash, story) -> event time
    exemplars: dict[str, Exemplar] = field(default_factory=dict)
    times: dict[str, list[int]] = field(default_factory=dict)  # story id -> sorted event times (us)

    def assign(self, item_id: str, fp: Fingerprint, t_us: int) -> Decision:
        """Decide the story and novelty of item `item_id` at event time `t_us`, and record it in the book."""
        self.watermark_us = t_us if self.watermark_us is None else max(self.watermark_us, t_us)
        story_id = self._match(fp, t_us)
        new_story = story_id is None
        if story_id is None:
            story_id = story_id_for(item_id)
        times = self.times.setdefault(story_id, [])
        score = novelty(earlier_in_window(times, t_us, self.window_us), self.decay)
        new, refreshed = self._file(item_id, story_id, fp, t_us)
        bisect.insort_right(times, t_us)
        return Decision(StoryAssignment(item_id, story_id, score), t_us, new_story, new, refreshed)

    def live(self, story_id: str, t_us: int) -> bool:
        """Whether the story has an item within the window of `t_us`: a story silent for longer is closed, and
        a copy that resurfaces after that starts a new story."""
        times = self.times.get(story_id, [])
        i = bisect.bisect_left(times, t_us - self.window_us)
        return i < len(times) and times[i] <= t_us + self.window_us

    def _alive(self, band: int, value: int, story_id: str) -> bool:
        watermark = self.watermark_us
        return watermark is None or self.last_seen.get((band, value, story_id), watermark) >= watermark - self.keep_us

    def _match(self, fp: Fingerprint, t_us: int) -> str | None:
        best: tuple[float, str] | None = None  # (-similarity, story id): the smallest wins
        for exemplar_id in self._candidates(fp):
            ex = self.exemplars.get(exemplar_id)
            if ex is None or (fp.tickers and ex.tickers and not fp.tickers & ex.tickers):
                continue
            similarity = jaccard(fp.signature, ex.signature)
            if similarity < self.threshold or not self.live(ex.story_id, t_us):
                continue
            key = (-similarity, ex.story_id)
            if best is None or key < best:
                best = key
        return None if best is None else best[1]

    def _candidates(self, fp: Fingerprint) -> list[str]:
        found: dict[str, None] = {}
        for band, value in enumerate(fp.bands):
            for story_id, exemplar_id in self.buckets.get((band, value), {}).items():
                if self._alive(band, value, story_id):
                    found[exemplar_id] = None
        return list(found)

    def _file(self, item_id: str, story_id: str, fp: Fingerprint,
              t_us: int) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
        """Put the story in the item's buckets; the item is the exemplar of those the story was not in (or
        only in a dead entry). Of the others, those last seen `refresh_us` or more before t_us are seen again
        at t_us."""
        new, refreshed = [], []
        for band, value in enumerate(fp.bands):
            members = self.buckets.setdefault((band, value), {})
            key = (band, value, story_id)
            if story_id not in members or not self._alive(band, value, story_id):
                members[story_id] = item_id
                self.last_seen[key] = t_us
                new.append((band, value))
            elif t_us >= self.last_seen[key] + self.refresh_us:
                self.last_seen[key] = t_us
                refreshed.append((band, value))
        if new:
            self.exemplars[item_id] = Exemplar(item_id, story_id, fp.signature, fp.tickers, t_us)
        return tuple(new), tuple(refreshed)

    def forget_before(self, cutoff_us: int) -> None:
        """Drop buckets last seen before `cutoff_us`, then the exemplars and story times nothing can reach."""
        for key, seen_us in list(self.last_seen.items()):
            if seen_us < cutoff_us:
                del self.last_seen[key]
                band, value, story_id = key
                members = self.buckets[(band, value)]
                del members[story_id]
                if not members:
                    del self.buckets[(band, value)]
        referenced = {ex for members in self.buckets.values() for ex in members.values()}
        self.exemplars = {k: v for k, v in self.exemplars.items() if k in referenced}
        reachable = {story for members in self.buckets.values() for story in members}
        self.times = {k: v for k, v in self.times.items() if k in reachable}
