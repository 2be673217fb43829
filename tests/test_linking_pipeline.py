"""Entity linking inside the pipeline: the scored item carries the linked tickers and their relevance, ticker
windows count only relevant links, records from before linking still decode and key as they did, and the
store keeps the relevance (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from monitor.classify.base import Prediction
from monitor.config import load_settings
from monitor.core.scoring import build_scored
from monitor.entities import Linker
from monitor.records import RawItem, ScoredItem, decode_scored, encode
from monitor.store import Store
from monitor.store.schema import aggregate_items, scored_items
from monitor.windows.aggregator import Delivery, WindowAggregator
from monitor.windows.keys import KeyExtractor, company_dictionary

T0 = datetime(2025, 3, 3, 14, 0, tzinfo=UTC)
NEG = Prediction("Company | Product News", {"Company | Product News": 1.0}, "negative",
                 {"negative": 0.8, "neutral": 0.15, "positive": 0.05})


def _scored(title: str, i: int = 0, body: str = "", tickers: tuple[str, ...] = (), linker: Linker | None = None
            ) -> ScoredItem:
    item = RawItem(id=f"l-{i}", title=title, body=body, published_at=T0 + timedelta(minutes=i), tickers=tickers)
    return build_scored(item, NEG, "test", T0, src_partition=0, src_offset=i, linker=linker)


def _linker() -> Linker:
    return Linker.from_settings(load_settings(None))


def test_scored_items_carry_relevant_tickers_and_every_links_relevance() -> None:
    linker = _linker()
    apple = _scored("Apple shares slide as iPhone sales disappoint", linker=linker)
    assert apple.item.tickers == ("AAPL",)
    assert apple.links is not None and apple.links["AAPL"] >= linker.min_relevance

    pie = _scored("Grandma's apple pie recipe wins the county fair", linker=linker)
    assert pie.item.tickers == () and pie.links == {}

    spam = _scored("$AAPL $MSFT $AMZN $NVDA $TSLA $META $GOOGL $NFLX to the moon, join my channel", linker=linker)
    assert len(spam.links or {}) == 8  # every link is kept with its (low) relevance ...
    assert spam.item.tickers == ()  # ... but none is relevant enough to count for a ticker
    assert max((spam.links or {}).values()) < linker.min_relevance

    feed = _scored("Quarterly results beat estimates", tickers=("NWND",), linker=linker)
    assert feed.item.tickers == ("NWND",)  # a feed's own ticker counts even when the text names nobody


def test_links_survive_the_wire_and_old_records_still_decode() -> None:
    apple = _scored("Apple shares slide as iPhone sales disappoint", linker=_linker())
    assert decode_scored(encode(apple)) == apple

    old = json.loads(encode(apple))
    del old["links"]  # a record published before entity linking
    old["tickers"] = []
    back = decode_scored(json.dumps(old).encode())
    assert back.links is None
    keys = KeyExtractor(company_dictionary(load_settings(None).windows)).keys(back)
    assert "ticker:AAPL" in keys  # keyed as before linking: by the company-name dictionary


def test_ticker_windows_count_only_relevant_links(tmp_path: Path) -> None:
    settings = load_settings(None, store_url=f"sqlite:///{tmp_path / 'w.db'}")
    store = Store(settings.store_url)
    store.create_schema()
    linker = Linker.from_settings(settings)
    items = [
        _scored("Apple shares slide as iPhone sales disappoint", 0, linker=linker),
        _scored("$AAPL $MSFT $AMZN $NVDA $TSLA $META $GOOGL $NFLX all ripping today", 1, linker=linker),
        _scored("Orchard report: apple harvest down 10% after frost", 2, linker=linker),
    ]
    aggregator = WindowAggregator(store, settings.windows, settings.kafka.topics.scored)
    aggregator.apply([Delivery(0, i, s) for i, s in enumerate(items)])
    with store.engine.connect() as conn:
        keys = {row.item_id: set(row.keys) for row in conn.execute(select(aggregate_items))}
    assert "ticker:AAPL" in keys["l-0"]
    assert not any(k.startswith("ticker:") for k in keys["l-1"] | keys["l-2"])
    assert {"market", "topic:Company | Product News"} <= keys["l-1"]


def test_the_store_keeps_links(store_url: str) -> None:
    store = Store(store_url)
    store.create_schema()
    apple = _scored("Apple and Microsoft extend their cloud partnership", linker=_linker())
    store.upsert_scored([apple], T0)
    with store.engine.connect() as conn:
        row = conn.execute(select(scored_items.c.tickers, scored_items.c.links)).one()
    assert row.links == apple.links and set(row.links) == {"AAPL", "MSFT"}
    assert row.tickers == list(apple.item.tickers) and row.tickers[0] == "AAPL"  # named first: more relevant


def test_a_store_created_before_linking_gains_the_column(store_url: str) -> None:
    from sqlalchemy import MetaData, Table, create_engine, inspect

    engine = create_engine(store_url)
    old = MetaData()
    Table("scored_items", old, *(c._copy() for c in scored_items.columns if c.name != "links"))
    old.create_all(engine)
    assert "links" not in {c["name"] for c in inspect(engine).get_columns("scored_items")}
    Store(store_url).create_schema()
    assert "links" in {c["name"] for c in inspect(engine).get_columns("scored_items")}
    engine.dispose()
