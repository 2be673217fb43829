"""The companies the linker knows: `pytickersymbols` (about 1,840 companies of 20 indices), the shipped
`monitor/data/entities.yaml` (aliases and markets the package lacks: Hong Kong, mainland China, ...) and
`monitor/data/companies.yaml` (the window keys' name -> ticker dictionary), and the user's own entries
(the `entities.watchlist_file`, `windows.companies_file`, `windows.companies` settings).

Each company has one symbol in Yahoo form: the home listing (SAP.DE, not the SAP ADR; ASML.AS, as
pytickersymbols lists it). A pytickersymbols entry whose home symbol cannot be told from its data (some French
mid caps list only Frankfurt or OTC codes) is left out rather than linked to the wrong listing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from functools import cache
from importlib import resources
from typing import Any

from monitor.entities.company import Company, source_rank
from monitor.entities.symbols import SUFFIXES, is_us_symbol, normalize_symbol
from monitor.entities.watchlist import parse_name_map, parse_watchlist

# Home market of an index's members and of a company's country, to pick the home listing among the listings
# pytickersymbols gives (its country field is sometimes wrong: Nikkei members listed as "United Kingdom").
INDEX_SUFFIX = {
    "NIKKEI 225": "T", "FTSE 100": "L", "DAX": "DE", "MDAX": "DE", "SDAX": "DE", "TecDAX": "DE", "CAC_40": "PA",
    "CAC Mid 60": "PA", "AEX": "AS", "IBEX 35": "MC", "Switzerland 20": "SW", "OMX Stockholm 30": "ST",
    "OMX Helsinki 25": "HE", "BEL 20": "BR",
}
HOME_SUFFIX = {
    "United Kingdom": "L", "Germany": "DE", "France": "PA", "Netherlands": "AS", "Switzerland": "SW", "Spain": "MC",
    "Italy": "MI", "Sweden": "ST", "Finland": "HE", "Belgium": "BR", "Japan": "T", "Denmark": "CO", "Norway": "OL",
}
# Countries where companies trading elsewhere keep their registered office (a Dutch holding company: Ferrari,
# Stellantis, Airbus; Luxembourg: ArcelorMittal, Tenaris; Ireland: Medtronic): their country is no home market,
# so the listing pytickersymbols names first (Ferrari: Milan) stays.
DOMICILES = frozenset({"Netherlands", "Luxembourg", "Ireland", "Jersey", "Bermuda", "Cayman Islands"})
US_INDICES = frozenset({"S&P 500", "S&P 100", "S&P 600", "NASDAQ 100", "DOW JONES"})
GERMAN_INDICES = frozenset({"DAX", "MDAX", "SDAX", "TecDAX"})


def home_symbol(stock: Mapping[str, Any], indices: Iterable[str]) -> str | None:
    """The home-listing Yahoo symbol of a pytickersymbols stock, or None when its data does not tell it."""
    primary = normalize_symbol(str(stock.get("symbol") or ""))
    member = set(indices)
    head, dot, suffix = primary.rpartition(".")
    if dot and head and suffix in SUFFIXES and suffix != "F":
        if suffix in {INDEX_SUFFIX.get(i) for i in member}:
            return primary
        # Listed on a market none of its indices is on: prefer a listing in its country, if it has one, unless
        # the country is only where the company is registered.
        country = str(stock.get("country") or "")
        home = HOME_SUFFIX.get(country) if country not in DOMICILES else None
        at_home = [s for s in _listed(stock) if home and s.endswith("." + home)]
        return at_home[0] if at_home else primary
    if primary and is_us_symbol(primary) and member & US_INDICES:
        return primary
    if member and member <= GERMAN_INDICES:
        # German small caps list only their Frankfurt code; XETRA (.DE) uses the same code.
        for listing in stock.get("symbols") or ():
            yahoo = str(listing.get("yahoo") or "")
            if yahoo.endswith(".F"):
                return yahoo[:-2] + ".DE"
    return None


def _listed(stock: Mapping[str, Any]) -> tuple[str, ...]:
    out = []
    for listing in stock.get("symbols") or ():
        yahoo = str(listing.get("yahoo") or "")
        if yahoo and yahoo != "-":
            out.append(normalize_symbol(yahoo))
    return tuple(out)


@cache
def package_companies() -> tuple[Company, ...]:
    """Companies of pytickersymbols, one per home symbol (the same company in two indices is merged)."""
    from pytickersymbols import PyTickerSymbols  # imported here: 2 MB of data, only when the universe is built

    tickers = PyTickerSymbols()
    member: dict[str, set[str]] = {}
    stocks: dict[str, Mapping[str, Any]] = {}
    for index in tickers.get_all_indices():
        for stock in tickers.get_stocks_by_index(index):
            name = str(stock.get("name") or "").strip()
            if name:
                member.setdefault(name, set()).add(index)
                stocks.setdefault(name, stock)
    merged: dict[str, Company] = {}
    for name in sorted(stocks):
        symbol = home_symbol(stocks[name], member[name])
        if symbol is None:
            continue
        seen = merged.get(symbol)
        also = tuple(s for s in _listed(stocks[name]) if s != symbol)
        if seen is None:
            merged[symbol] = Company(symbol, names=(name,), also=also, derived=True)
        else:
            merged[symbol] = replace(seen, names=(*seen.names, name), also=tuple(dict.fromkeys(seen.also + also)))
    return tuple(merged[s] for s in sorted(merged))


def _shipped_text(name: str) -> str:
    return resources.files("monitor").joinpath(f"data/{name}").read_text(encoding="utf-8")


@cache
def shipped_companies() -> tuple[Company, ...]:
    """The curated `entities.yaml` and the window keys' `companies.yaml`, as companies."""
    curated = parse_watchlist(_shipped_text("entities.yaml"), "monitor/data/entities.yaml", "entities.yaml")
    names = parse_name_map(_shipped_text("companies.yaml"), "monitor/data/companies.yaml", "companies.yaml")
    return (*curated, *names)


def by_source(companies: Iterable[Company]) -> Iterator[Company]:
    """Companies ordered most trusted source first (stable within a source)."""
    yield from sorted(companies, key=lambda c: source_rank(c.source))
