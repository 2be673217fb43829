"""Story assignment with all state in memory (pure): the same decisions as the store-backed `StoryIndex`.

For benchmarks and cluster statistics over a feed, and as the reference the store-backed index is tested
against: fed the same batches, both return the same assignments (the index also survives restarts, serves
several workers and is idempotent across processes; this one only within itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.clock import to_micros
from monitor.config import StorySettings
from monitor.stories.book import StoryAssignment, StoryBook, StoryInput, fingerprint_items, first_copies
from monitor.stories.minhash import MinHasher

HOUR_US = 3_600_000_000


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """When to prune, in event time: the cutoff behind the watermark and the progress between prunes."""

    keep_us: int
    every_us: int

    @classmethod
    def from_settings(cls, cfg: StorySettings) -> PrunePlan:
        return cls(int(cfg.prune_hours * HOUR_US), int(cfg.prune_every_hours * HOUR_US))

    def cutoff(self, watermark_us: int, pruned_us: int | None) -> int | None:
        """The last-seen time before which LSH entries go, or None when no prune is due yet."""
        if pruned_us is not None and watermark_us - pruned_us < self.every_us:
            return None
        return watermark_us - self.keep_us


def make_book(cfg: StorySettings, watermark_us: int | None = None) -> StoryBook:
    return StoryBook(threshold=cfg.threshold, window_us=int(cfg.window_hours * HOUR_US), decay=cfg.decay,
                     keep_us=int(cfg.prune_hours * HOUR_US), refresh_us=int(cfg.prune_every_hours * HOUR_US),
                     watermark_us=watermark_us)


def make_hasher(cfg: StorySettings) -> MinHasher:
    return MinHasher(num_perm=cfg.num_perm, bands=cfg.bands, seed=cfg.seed)


class MemoryStories:
    """Assigns stories to batches of items, keeping every piece of state in this object."""

    def __init__(self, cfg: StorySettings) -> None:
        self.hasher, self.book, self.plan = make_hasher(cfg), make_book(cfg), PrunePlan.from_settings(cfg)
        self.assigned: dict[str, StoryAssignment] = {}
        self.pruned_us: int | None = None

    def assign(self, items: Sequence[StoryInput]) -> list[StoryAssignment]:
        """Assignments of `items`, in order; an id assigned before gets its first assignment back."""
        fresh = [item for item in first_copies(items) if item.item_id not in self.assigned]
        for item, fp in zip(fresh, fingerprint_items(self.hasher, fresh), strict=True):
            self.assigned[item.item_id] = self.book.assign(item.item_id, fp, to_micros(item.published_at)).assignment
        if fresh and self.book.watermark_us is not None:
            self._maybe_prune(self.book.watermark_us)
        return [self.assigned[item.item_id] for item in items]

    def _maybe_prune(self, watermark_us: int) -> None:
        cutoff = self.plan.cutoff(watermark_us, self.pruned_us)
        if cutoff is not None:
            self.pruned_us = watermark_us
            self.book.forget_before(cutoff)
