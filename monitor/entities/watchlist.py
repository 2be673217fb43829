"""Watchlist files: the user's own companies, in YAML, one entry per symbol.

    GOOGL:
      names: [Alphabet]        # what the company is called (linked as how="name")
      aliases: [Google]        # other ways to say it (how="alias", a little less relevant)
      also: [GOOG]             # other symbols of the same company: "$GOOG ... Alphabet" is one company
    TGT:
      names: [Target Corporation]
      ambiguous: [Target]      # everyday words: linked only with evidence ("Target shares", "$TGT")
    TSLA: [Tesla]              # short form: a list of names (or one name as a string)

A list of mappings with a `symbol` key is accepted too. Entries are taken as written: no alias is derived and
no name is second-guessed, except those listed as `ambiguous`. The same parser reads the shipped
`monitor/data/entities.yaml`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from monitor.entities.company import Company
from monitor.entities.errors import WatchlistError
from monitor.entities.symbols import normalize_symbol

# US and most markets' codes (AAPL, BRK.B, SAP.DE, 0700.HK), and the longer codes some markets use, written with
# their suffix (HDFCBANK.NS, M&M.NS, VOLCAR-B.ST).
SYMBOL_FORM = re.compile(
    r"^(?:(?:[A-Z][A-Z0-9]{0,5}(?:[.-][A-Z])?|\d{3,6})(?:\.[A-Z]{1,3})?|[A-Z][A-Z0-9&-]{1,11}\.[A-Z]{1,3})$"
)
_FIELDS = ("names", "aliases", "ambiguous", "also")
# LibYAML's safe loader reads the shipped entities.yaml about ten times faster than the pure-Python one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_EXAMPLE = "e.g.\n  GOOGL:\n    names: [Alphabet]\n    aliases: [Google]"


def load_watchlist(path: str | Path) -> tuple[Company, ...]:
    """Read a watchlist file; a missing, unreadable or malformed file raises WatchlistError with the fix."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WatchlistError(
            f"watchlist file {path} cannot be read ({exc.strerror or exc}); fix entities.watchlist_file "
            "(FINMON_ENTITIES__WATCHLIST_FILE) or create the file"
        ) from exc
    return parse_watchlist(text, str(path), "watchlist")


def _yaml(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader, LibYAML's when installed
    except yaml.YAMLError as exc:
        raise WatchlistError(f"{where} is not valid YAML ({exc}); write one entry per symbol, {_EXAMPLE}") from exc


def parse_watchlist(text: str, where: str, source: str) -> tuple[Company, ...]:
    """Companies of a watchlist document (see the module docstring for the format)."""
    data = _yaml(text, where)
    if data is None:
        return ()
    if isinstance(data, list):
        pairs = [(_list_symbol(item, where), item) for item in data]
    elif isinstance(data, dict):
        pairs = list(data.items())
    else:
        raise WatchlistError(f"{where} must map each symbol to its names, not hold a {type(data).__name__}; "
                             f"{_EXAMPLE}")
    return tuple(_company(symbol, value, where, source) for symbol, value in pairs)


def _list_symbol(item: Any, where: str) -> Any:
    if not isinstance(item, dict) or "symbol" not in item:
        raise WatchlistError(f"{where}: list entry {item!r} has no 'symbol'; write '- symbol: GOOGL' with its "
                             "names and aliases, or use the mapping form, " + _EXAMPLE)
    return item["symbol"]


def _company(raw_symbol: Any, value: Any, where: str, source: str) -> Company:
    symbol = checked_symbol(raw_symbol, where)
    if isinstance(value, str | list):
        value = {"names": value}
    if not isinstance(value, Mapping):
        raise WatchlistError(f"{where}: {symbol}: expected names and aliases, got {value!r}; {_EXAMPLE}")
    unknown = sorted(set(value) - set(_FIELDS) - {"symbol"})
    if unknown:
        raise WatchlistError(f"{where}: {symbol}: unknown field(s) {unknown}; use {', '.join(_FIELDS)}")
    fields = {f: _strings(value.get(f), f"{where}: {symbol}.{f}") for f in _FIELDS}
    if not (fields["names"] or fields["aliases"] or fields["ambiguous"]):
        raise WatchlistError(f"{where}: {symbol} has no names; give at least one, e.g. '{symbol}: [Company Name]'")
    also = tuple(checked_symbol(s, where) for s in fields["also"])
    return Company(symbol, fields["names"], fields["aliases"], fields["ambiguous"], also, source)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
        raise WatchlistError(f"{where} must be a name or a list of names (non-empty strings), not {value!r}")
    return tuple(v.strip() for v in items)


def checked_symbol(raw: Any, where: str) -> str:
    """A symbol in project form, or WatchlistError saying what a symbol looks like."""
    symbol = normalize_symbol(str(raw)) if isinstance(raw, str | int) else ""
    if not SYMBOL_FORM.match(symbol):
        raise WatchlistError(
            f"{where}: {raw!r} is not a ticker symbol; use the Yahoo form, e.g. AAPL, BRK.B, SAP.DE, 0700.HK, "
            "600519.SH"
        )
    return symbol


def parse_name_map(text: str, where: str, source: str) -> tuple[Company, ...]:
    """A 'Company Name: TICKER' mapping (monitor/data/companies.yaml, windows.companies_file) as companies."""
    data = _yaml(text, where)
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise WatchlistError(f"{where} must be a mapping of company name -> ticker, not {type(data).__name__}")
    return names_to_companies(data, where, source)


def names_to_companies(data: Mapping[Any, Any], where: str, source: str) -> tuple[Company, ...]:
    """{name: symbol} -> one company per symbol with all its names, in first-seen order."""
    grouped: dict[str, list[str]] = {}
    for name, raw in data.items():
        if not isinstance(name, str) or not name.strip():
            raise WatchlistError(f"{where}: {name!r} is not a company name; write 'Company Name: TICKER'")
        grouped.setdefault(checked_symbol(raw, where), []).append(name.strip())
    return tuple(Company(symbol, tuple(names), source=source) for symbol, names in grouped.items())
