"""Entity-linking rules of the second held-out round: possessives inside names, news outlets cited as the
source, towns and people that share a company's name, short forms of official names, home listings, and the
longer market codes of curated entries. Headlines written for these tests."""

from __future__ import annotations

import pytest

from monitor.config import load_settings
from monitor.entities import DEFAULT_RELEVANCE_THRESHOLD, Linker
from monitor.entities.company import Company
from monitor.entities.index import short_forms
from monitor.entities.sources import cited_spans
from monitor.entities.universe import home_symbol
from monitor.entities.watchlist import checked_symbol


@pytest.fixture(scope="module")
def linker() -> Linker:
    return Linker.from_settings(load_settings(None))


def relevant(linker: Linker, title: str) -> list[str]:
    return [x.symbol for x in linker.link(title) if x.relevance >= DEFAULT_RELEVANCE_THRESHOLD]


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Dick's Sporting Goods raises annual forecast", ["DKS"]),
        ("Victoria's Secret names new finance chief", ["VSCO"]),
        ("Apple's Cook meets suppliers in Shenzhen", ["AAPL"]),  # a possessive still ends "Apple"
    ],
)
def test_possessive_inside_a_name(linker: Linker, title: str, expected: list[str]) -> None:
    assert relevant(linker, title) == expected


def test_possessive_inside_a_watchlist_name() -> None:
    own = Linker.from_companies([Company("QMED", names=("Quinn's Medical Supply",), source="watchlist")],
                                universe=False)
    assert relevant(own, "Quinn's Medical Supply recalls gloves") == ["QMED"]
    assert relevant(own, "Quinn's medical bills pile up") == []


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Disney weighs sale of ABC stations, the New York Times reported", ["DIS"]),
        ("Netflix in talks for studio deal, according to the Wall Street Journal", ["NFLX"]),
        ("Boeing nears sale of navigation unit - WSJ", ["BA"]),
        ("Microsoft plans more job cuts, CNBC reports", ["MSFT"]),
        ("Reuters poll: economists expect two more Fed cuts", []),
        # about the outlet itself, or a company speaking for itself: kept
        ("New York Times beats digital subscriber estimates", ["NYT"]),
        ("Chip demand to stay strong through 2026, Nvidia says", ["NVDA"]),
    ],
)
def test_news_outlet_cited_as_source(linker: Linker, title: str, expected: list[str]) -> None:
    assert relevant(linker, title) == expected


def test_cited_spans_cover_the_outlet_only() -> None:
    text = "Apple weighs bid for Mistral, Bloomberg News reports"
    assert [text[a:b] for a, b in cited_spans(text)] == ["Bloomberg News"]
    assert cited_spans("Apple unveils new iPhone") == []


@pytest.mark.parametrize(
    "title",
    [
        "Duluth to consider new downtown parking plan",  # a town and a listed company's one-word name
        "Hershey, Pennsylvania, to host youth hockey tournament",  # ', <state>' after the name: the town
        "Tornado damages homes in Dover, Delaware",
        "SAC's Cohen settles with regulators",  # a one-word name after a possessive: a person
    ],
)
def test_towns_and_people_are_not_companies(linker: Linker, title: str) -> None:
    assert relevant(linker, title) == []


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Duluth Holdings shares jump on upbeat outlook", ["DLTH"]),  # the town's name with evidence
        ("Hershey raises prices as cocoa costs stay high", ["HSY"]),
    ],
)
def test_town_names_with_evidence_still_link(linker: Linker, title: str, expected: list[str]) -> None:
    assert relevant(linker, title) == expected


def test_short_forms_cut_descriptive_words() -> None:
    assert list(short_forms(("Chipotle", "Mexican", "Grill"))) == [("Chipotle", "Mexican"), ("Chipotle",)]
    assert list(short_forms(("Robinhood", "Markets"))) == [("Robinhood",)]
    assert list(short_forms(("North", "American", "Construction"))) == []  # only describing words left
    assert list(short_forms(("Las", "Vegas", "Sands"))) == []  # what is left is a city
    assert list(short_forms(("Texas", "Roadhouse"))) == []  # a state alone names no company


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Chipotle cuts annual same-store sales forecast", ["CMG"]),
        ("Super Micro delays annual report again", ["SMCI"]),
        ("Norfolk Southern shareholders approve rail merger", ["NSC"]),
        ("Marriott cuts revenue-per-room forecast", ["MAR"]),  # Marriott International, not Marriott Vacations
        ("Eaton to buy Boyd Thermal for $9.5 billion", ["ETN"]),  # "Boyd Thermal" is not Boyd Gaming
        ("Western Digital, Seagate rally on hard-drive demand", ["WDC", "STX"]),  # a list, not one name
    ],
)
def test_short_forms_link(linker: Linker, title: str, expected: list[str]) -> None:
    assert relevant(linker, title) == expected


def test_registered_office_does_not_move_the_home_listing() -> None:
    ferrari = {"symbol": "RACE.MI", "country": "Netherlands", "symbols": [{"yahoo": "RACE.AS"}]}
    assert home_symbol(ferrari, ["EURO STOXX 50"]) == "RACE.MI"


def test_curated_home_listings(linker: Linker) -> None:
    assert relevant(linker, "Ferrari raises 2030 targets") == ["RACE.MI"]
    assert relevant(linker, "Stellantis to invest $13 billion in U.S. plants") == ["STLAM.MI"]
    assert relevant(linker, "HDFC Bank quarterly profit rises") == ["HDFCBANK.NS"]


@pytest.mark.parametrize("raw", ["HDFCBANK.NS", "M&M.NS", "BAJAJ-AUTO.NS", "VOLCAR-B.ST"])
def test_longer_market_codes_with_a_suffix(raw: str) -> None:
    assert checked_symbol(raw, "test") == raw
