"""One place that turns a raw item and the model's prediction into the `ScoredItem` every path uses.

Live classify workers and the backtest both call `build_scored`, so what a scored item carries (its linked
tickers and their relevance, the source-lateness verdict, where it came from) cannot drift apart.

With a `Linker` (monitor/entities), `item.tickers` become the linked symbols at or above the linker's
`min_relevance`, most relevant first, and `links` holds every linked symbol's relevance; without one (tests,
callers that only score), the feed's tickers are merged with the text's cashtags as before linking existed.

Every scored item carries its language (`item.lang`, monitor/language.py): the one it was published with, cut
to its primary subtag, else the detected one. A caller that needs it before scoring (to pick a model by
language) sets it with `with_language` first; `build_scored` then keeps it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from monitor.classify.base import Prediction
from monitor.clock import from_micros
from monitor.core.lateness import Verdict
from monitor.entities import Linker
from monitor.language import item_language
from monitor.records import RawItem, ScoredItem, extract_cashtags


def with_cashtags(item: RawItem) -> RawItem:
    """The item with the `$CASHTAGS` of its text added after the tickers it came with."""
    tickers = tuple(dict.fromkeys(item.tickers + extract_cashtags(item.text)))
    return item if tickers == item.tickers else replace(item, tickers=tickers)


def with_language(item: RawItem) -> RawItem:
    """The item with its language set (see the module docstring)."""
    lang = item_language(item.lang, item.text)
    return item if lang == item.lang else replace(item, lang=lang)


def linked(item: RawItem, linker: Linker) -> tuple[RawItem, dict[str, int]]:
    """The item with its relevant linked tickers, and every link's relevance (symbol -> 0-100)."""
    links = linker.link(item.title, item.body, item.tickers)
    tickers = tuple(link.symbol for link in links if link.relevance >= linker.min_relevance)
    return (item if tickers == item.tickers else replace(item, tickers=tickers)), {
        link.symbol: link.relevance for link in links}


def build_scored(item: RawItem, prediction: Prediction, model_version: str, scored_at: datetime, *,
                 src_partition: int = -1, src_offset: int = -1, verdict: Verdict | None = None,
                 linker: Linker | None = None) -> ScoredItem:
    """The scored record of `item` (see the module docstring)."""
    links: dict[str, int] | None = None
    item = with_language(item)
    if linker is not None:
        item, links = linked(item, linker)
    else:
        item = with_cashtags(item)
    return ScoredItem(
        item=item,
        topic=prediction.topic,
        topic_probs=prediction.topic_probs,
        sentiment=prediction.sentiment,
        sentiment_probs=prediction.sentiment_probs,
        model_version=model_version,
        scored_at=scored_at,
        src_partition=src_partition,
        src_offset=src_offset,
        late=verdict.late if verdict is not None else False,
        source_time=from_micros(verdict.source_us) if verdict is not None and verdict.source_us is not None else None,
        links=links,
    )
