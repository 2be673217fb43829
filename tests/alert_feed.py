"""A feed for alert tests: three tickers with steady, mildly positive news, then a burst of negative
headlines about one of them (HOT) for ten minutes, then steady news again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.records import RawItem, ScoredItem

BASE = datetime(2025, 1, 6, 9, tzinfo=UTC)
BURST_START = BASE + timedelta(hours=3)
BURST_END = BURST_START + timedelta(minutes=10)
END = BASE + timedelta(hours=4)
QUIET = ("QA", "QB")
HOT = "HOT"
PROBS = {"negative": (0.85, 0.1, 0.05), "neutral": (0.1, 0.6, 0.3), "positive": (0.05, 0.25, 0.7)}
# The burst: distinct stories (the shipped rules count stories, not copies; monitor/windows/stories.py).
BURST_TITLES = (
    "HOT shares tumble after auditor resigns over accounting concerns",
    "Regulators open probe into HOT sales practices",
    "HOT cuts full-year revenue forecast citing weak demand",
    "Moody's downgrades HOT debt deeper into junk territory",
    "HOT chief financial officer departs abruptly",
    "Short seller alleges HOT inflated subscriber numbers",
    "HOT recalls 40,000 units over battery fire risk",
    "Class action lawsuit filed against HOT on behalf of investors",
    "HOT misses quarterly earnings estimates by wide margin",
    "Key supplier halts shipments to HOT amid unpaid invoices",
    "HOT suspends dividend to preserve cash",
    "Analysts slash price targets on HOT after guidance warning",
    "HOT factory fire disrupts production for weeks",
    "Union announces strike at HOT distribution centers",
    "HOT loses largest customer contract to rival",
)


def item(item_id: str, ticker: str, when: datetime, label: str, topic: str = "markets",
         title: str | None = None) -> ScoredItem:
    neg, neu, pos = PROBS[label]
    raw = RawItem(id=item_id, title=title or f"{ticker} headline {item_id}", published_at=when, source="test",
                  tickers=(ticker,))
    return ScoredItem(
        item=raw,
        topic=topic,
        topic_probs={topic: 1.0},
        sentiment=label,
        sentiment_probs={"negative": neg, "neutral": neu, "positive": pos},
        model_version="test",
        scored_at=when,
    )


def burst_feed() -> list[ScoredItem]:
    """Every ticker: one item every 2 minutes (neutral/positive); HOT: 15 negative ones in ten minutes."""
    items = []
    t, i = BASE, 0
    while t < END:
        for ticker in (*QUIET, HOT):
            items.append(item(f"{ticker}-{i}", ticker, t, "positive" if i % 3 else "neutral"))
        t, i = t + timedelta(minutes=2), i + 1
    for j in range(15):
        items.append(item(f"burst-{j}", HOT, BURST_START + timedelta(seconds=40 * j), "negative",
                          title=BURST_TITLES[j]))
    items.sort(key=lambda s: s.item.published_at)
    return items
