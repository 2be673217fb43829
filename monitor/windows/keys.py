"""Window keys of a scored item: `market`, `topic:<topic name>` and one `ticker:<SYMBOL>` per ticker.

Items scored with entity linking (`ScoredItem.links` set, monitor/entities) count for the tickers they were
linked to at or above `entities.min_relevance`, which is their `tickers` field. Items scored before linking
existed fall back to what was used then: the `tickers` field, `$CASHTAGS` in the text, and a company-name
dictionary (`monitor/data/companies.yaml`, extended by `windows.companies` and `windows.companies_file`),
names matching case-sensitively on word boundaries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from monitor.config import WindowSettings
from monitor.records import ScoredItem, extract_cashtags
from monitor.windows.errors import WindowError

MARKET = "market"
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9]{0,5}(?:[.-][A-Z]{1,2})?$")


def topic_key(topic: str) -> str:
    return f"topic:{topic}"


def ticker_key(symbol: str) -> str:
    return f"ticker:{symbol}"


def _load_mapping(text: str, where: str) -> dict[str, str]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise WindowError(f"{where} is not valid YAML ({exc}); write one 'Company Name: TICKER' per line") from exc
    if not isinstance(data, dict):
        raise WindowError(f"{where} must be a mapping of company name -> ticker, not {type(data).__name__}")
    return _checked(data, where)


def _checked(data: Mapping[Any, Any], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, symbol in data.items():
        sym = str(symbol).strip().lstrip("$").upper()
        if not isinstance(name, str) or not name.strip() or not _SYMBOL.match(sym):
            raise WindowError(
                f"{where}: entry {name!r}: {symbol!r} is not a ticker; use e.g. 'Apple: AAPL' "
                "(1-6 letters/digits, optional class suffix like BRK.B)"
            )
        out[name.strip()] = sym
    return out


def company_dictionary(settings: WindowSettings) -> dict[str, str]:
    """Shipped dictionary < `companies_file` < `companies` (later entries win)."""
    shipped = resources.files("monitor").joinpath("data/companies.yaml").read_text(encoding="utf-8")
    names = _load_mapping(shipped, "monitor/data/companies.yaml")
    if settings.companies_file is not None:
        path = Path(settings.companies_file)
        try:
            names.update(_load_mapping(path.read_text(encoding="utf-8"), str(path)))
        except OSError as exc:
            raise WindowError(f"companies file {path} cannot be read ({exc}); fix windows.companies_file") from exc
    names.update(_checked(settings.companies, "windows.companies"))
    return names


class KeyExtractor:
    """Turns a scored item into its window keys (deterministic: same item, same keys, same order)."""

    def __init__(self, companies: Mapping[str, str]) -> None:
        self.companies = dict(companies)
        names = sorted(self.companies, key=len, reverse=True)  # longest first: "Meta Platforms" before "Meta"
        alternation = "|".join(re.escape(n) for n in names)
        self._pattern = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)") if names else None

    def tickers(self, scored: ScoredItem) -> tuple[str, ...]:
        if scored.links is not None:  # linked at scoring time (monitor/entities): its tickers are the relevant ones
            return scored.item.tickers
        item = scored.item
        found: dict[str, None] = dict.fromkeys(item.tickers)
        found.update(dict.fromkeys(extract_cashtags(item.text)))
        if self._pattern is not None:
            for match in self._pattern.finditer(item.text):
                found.setdefault(self.companies[match.group(0)], None)
        return tuple(found)

    def keys(self, scored: ScoredItem) -> tuple[str, ...]:
        return (MARKET, topic_key(scored.topic), *(ticker_key(t) for t in self.tickers(scored)))
