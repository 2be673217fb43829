"""Writes the bundled demo feed (`monitor/data/demo_feed.jsonl`): a few hundred headlines written for this
project about fictional companies, over two trading days, with a burst of bad news about one company.

Deterministic (seeded), so the committed file can be regenerated: `python -m pipelines.make_demo_feed`.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "monitor" / "data" / "demo_feed.jsonl"
COMPANIES = {
    "HALC": "Halcyon Motors",
    "NWND": "Northwind Energy",
    "BRSK": "Brightstack Software",
    "QMED": "Quorum Medical",
    "AURB": "Aurelia Bank",
    "TRLX": "Trellix Logistics",
    "VSPR": "Vesper Foods",
    "OCTV": "Octave Semiconductors",
}
SOURCES = ("Demo Wire", "Market Desk", "Street Journal (demo)", "Finance Daily (demo)")
NEUTRAL = [
    "{name} to present at industry conference next week",
    "{name} schedules fourth-quarter earnings call for Thursday",
    "{name} names new head of investor relations",
    "{name} files quarterly report with regulators",
    "{name} shares little changed in early trading",
    "{name} to hold annual shareholder meeting in May",
    "Analysts keep {name} at hold ahead of results",
    "{name} opens new regional office",
]
POSITIVE = [
    "{name} beats profit estimates as revenue climbs {pct}%",
    "{name} raises full-year guidance on strong demand",
    "{name} shares jump {pct}% after upbeat outlook",
    "{name} wins multi-year contract worth ${bn} billion",
    "Analyst upgrades {name} to buy, sees {pct}% upside",
    "{name} boosts dividend by {pct}% and expands buyback",
]
NEGATIVE = [
    "{name} misses earnings estimates, shares slide {pct}%",
    "{name} cuts outlook as orders weaken",
    "{name} faces regulatory probe over accounting practices",
    "{name} recalls products after safety complaints",
    "Analyst downgrades {name} to sell on margin pressure",
    "{name} shares plunge {pct}% after CEO resigns abruptly",
]
BURST = [
    "{name} recalls {k} thousand vehicles over brake defect",
    "Regulators open investigation into {name} brake failures",
    "{name} shares plunge {pct}% as recall widens",
    "{name} suspends production at main plant after defect reports",
    "Lawsuits pile up against {name} over faulty brakes",
    "{name} CFO departs amid recall fallout",
    "Analysts slash {name} price targets after recall",
    "{name} warns recall costs will wipe out quarterly profit",
    "Dealers halt sales of {name} models pending brake fix",
    "{name} bonds tumble as credit outlook cut to negative",
]
MACRO = [
    "Fed holds rates steady, signals patience on cuts",
    "Treasury yields climb after strong jobs report",
    "Oil prices slip as inventories rise",
    "Dollar firms against the euro ahead of inflation data",
    "Stocks end mixed as investors weigh earnings season",
    "Gold edges higher on safe-haven demand",
    "Inflation cools more than expected in latest reading",
    "Consumer confidence falls to six-month low",
]


def _headline(rng: random.Random, templates: list[str], symbol: str) -> str:
    text = rng.choice(templates).format(
        name=COMPANIES[symbol], pct=rng.randint(2, 18), bn=rng.randint(1, 9), k=rng.randint(40, 400)
    )
    return f"{text} ${symbol}" if rng.random() < 0.5 else text


def _item(rng: random.Random, when: datetime, title: str, tickers: list[str], n: int) -> dict[str, object]:
    return {
        "id": f"demo-{n:04d}",
        "published_at": when.isoformat().replace("+00:00", "Z"),
        "title": title,
        "source": rng.choice(SOURCES),
        "url": f"https://example.com/news/demo-{n:04d}",
        "tickers": tickers,
    }


def build(seed: int = 7, n_background: int = 320) -> list[dict[str, object]]:
    rng = random.Random(seed)  # noqa: S311  (reproducible demo data, not security)
    start = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
    items = []
    for n in range(n_background):
        when = start + timedelta(seconds=rng.randint(0, 2 * 24 * 3600))
        if rng.random() < 0.2:
            items.append(_item(rng, when, rng.choice(MACRO), [], n))
            continue
        symbol = rng.choice(list(COMPANIES))
        templates = rng.choices([NEUTRAL, POSITIVE, NEGATIVE], weights=[5, 3, 2])[0]
        items.append(_item(rng, when, _headline(rng, templates, symbol), [symbol], n))
    burst_start = start + timedelta(hours=27)
    for k in range(60):  # the burst: an hour and a half of bad news about one company
        when = burst_start + timedelta(seconds=rng.randint(0, 90 * 60))
        items.append(_item(rng, when, _headline(rng, BURST, "HALC"), ["HALC"], n_background + k))
    return sorted(items, key=lambda item: str(item["published_at"]))


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as fh:
        for item in build():
            fh.write(json.dumps(item) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
