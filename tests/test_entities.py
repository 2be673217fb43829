"""Entity linking (monitor/entities) and `finmon link`, on headlines written for these tests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.config import load_settings
from monitor.entities import DEFAULT_RELEVANCE_THRESHOLD, Link, Linker, WatchlistError
from monitor.entities.symbols import normalize_symbol
from monitor.errors import ConfigError


@pytest.fixture(scope="module")
def linker() -> Linker:
    return Linker.from_settings(load_settings(None))


def relevant(linker: Linker, title: str, body: str = "", tickers: tuple[str, ...] = ()) -> list[str]:
    """Symbols at or above the default threshold, most relevant first."""
    return [x.symbol for x in linker.link(title, body, tickers) if x.relevance >= DEFAULT_RELEVANCE_THRESHOLD]


def by_symbol(links: tuple[Link, ...]) -> dict[str, Link]:
    return {x.symbol: x for x in links}


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Apple shares slide as iPhone sales disappoint", ["AAPL"]),
        ("Microsoft wins cloud contract from defence ministry", ["MSFT"]),
        ("Nvidia unveils faster data-centre chips", ["NVDA"]),
        ("Siemens to buy simulation software maker", ["SIE.DE"]),
        ("Toyota lifts annual production target", ["7203.T"]),
        ("HSBC to cut costs in investment bank overhaul", ["HSBA.L"]),
        ("Tencent profit beats forecasts on gaming revenue", ["0700.HK"]),
        ("Kweichow Moutai raises liquor prices", ["600519.SH"]),
        ("CATL opens new battery plant in Hungary", ["300750.SZ"]),
        ("Berkshire Hathaway trims bank holdings", ["BRK.B"]),
        ("Banks rally as Goldman Sachs reports strong trading", ["GS"]),
    ],
)
def test_company_names(linker: Linker, title: str, expected: list[str]) -> None:
    assert relevant(linker, title) == expected


@pytest.mark.parametrize(
    ("title", "expected", "how"),
    [
        ("Google faces new antitrust case over ad tech", "GOOGL", "alias"),
        ("Facebook owner tightens rules on political ads", "META", "alias"),
        ("Citi to exit consumer banking in Mexico", "C", "alias"),
        ("Exxon and partners make offshore discovery", "XOM", "alias"),
    ],
)
def test_aliases(linker: Linker, title: str, expected: str, how: str) -> None:
    links = linker.link(title)
    assert [x.symbol for x in links] == [expected]
    assert links[0].how == how


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Apple Inc. opens its largest store in India", "AAPL"),
        ("Shares of Deutsche Bank AG fall after capital plan", "DBK.DE"),
        ("Novo Nordisk A/S cuts price of obesity drug", "NOVO-B.CO"),
        ("Telefonica S.A. sells Argentine unit", "TEF.MC"),  # written without the accent of "Telefónica"
        ("Volkswagen AG recalls electric SUVs", "VOW3.DE"),
        ("Rio Tinto plc agrees lithium takeover", "RIO.L"),
    ],
)
def test_legal_forms_and_accents(linker: Linker, title: str, expected: str) -> None:
    assert relevant(linker, title) == [expected]


def test_cashtags(linker: Linker) -> None:
    links = linker.link("$TSLA and $brk-b move after the close; $SAP.DE flat")
    assert {x.symbol for x in links} == {"TSLA", "BRK.B", "SAP.DE"}
    assert all(x.how == "cashtag" for x in links)
    assert relevant(linker, "Price of gold hits $2,400 an ounce") == []
    assert relevant(linker, "CO$T of living keeps rising") == []


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Alphabet (NASDAQ: GOOGL) beats on cloud revenue", "GOOGL"),
        ("Ford Motor (NYSE:F) recalls pickups over brake issue", "F"),
        ("Carrier plans price hikes, NYSE: T data shows", "T"),
        ("Lender cuts 5,000 jobs (LSE: HSBA)", "HSBA.L"),
        ("Gaming group (HKEX: 700) posts record quarter", "0700.HK"),
        ("Gaming group (HKEX: 0700) posts record quarter", "0700.HK"),
        ("Spirits maker (SSE: 600519) lifts dividend", "600519.SH"),
        ("Battery maker (SZSE: 300750) expands in Europe", "300750.SZ"),
        ("Software firm (XETRA: SAP) upgrades cloud outlook", "SAP.DE"),
        ("Carmaker (TSE: 7203) boosts hybrid output", "7203.T"),
    ],
)
def test_exchange_prefixes(linker: Linker, title: str, expected: str) -> None:
    links = linker.link(title)
    assert links[0].symbol == expected
    assert links[0].how == "exchange"
    assert links[0].relevance >= 80


def test_suffixed_codes(linker: Linker) -> None:
    links = by_symbol(linker.link("Asia movers: 0700.HK up, 600519.SS down, 7203.T flat, SAP.DE and HSBA.L higher"))
    assert set(links) == {"0700.HK", "600519.SH", "7203.T", "SAP.DE", "HSBA.L"}
    assert {x.how for x in links.values()} == {"code"}


def test_symbol_normal_form() -> None:
    assert normalize_symbol("$brk-b") == "BRK.B"
    assert normalize_symbol("600519.SS") == "600519.SH"
    assert normalize_symbol("700.HK") == "0700.HK"
    assert normalize_symbol("sap.de") == "SAP.DE"


@pytest.mark.parametrize(
    "title",
    [
        "Grandma's apple pie wins the county fair",
        "Apple pie and cider sales soar at autumn markets",
        "Drought shrinks the Amazon river to a record low",
        "Amazon rainforest loses an area the size of Wales",
        "Costs rose sharply for manufacturers in March",
        "F is for failure: what a grade really says",
        "NOW is the time to fix the roads",
        "IT spending is expected to grow 8% next year",
        "ALL eyes on the central bank this week",
        "Next week: rate decision and jobs data",
        "Target price raised to $250 by brokers",
        "Block out the noise and save for retirement",
        "Visa rules tightened for foreign students",
        "The Nasdaq closed at a record high on Friday",
        "Fed's Williams sees rates staying high",
    ],
)
def test_traps_link_nothing(linker: Linker, title: str) -> None:
    assert relevant(linker, title) == []


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Target raises full-year outlook after holiday quarter", "TGT"),
        ("Target shares jump on upbeat forecast", "TGT"),
        ("Block shares surge as Cash App users grow", "XYZ"),
        ("Next plc lifts profit guidance again", "NXT.L"),
        ("Visa and Mastercard settle swipe-fee lawsuit", "V"),
        ("Costco (COST) reports higher membership income", "COST"),
        ("Ford Motor (F) recalls 200,000 vehicles", "F"),
    ],
)
def test_everyday_words_with_evidence(linker: Linker, title: str, expected: str) -> None:
    assert expected in relevant(linker, title)


def test_bare_uppercase_tickers(linker: Linker) -> None:
    assert relevant(linker, "NVDA jumps after earnings beat") == ["NVDA"]
    assert relevant(linker, "Chip stocks drift", body="Traders also bought NVDA late in the session.") == []
    assert relevant(linker, "COST NET ALL NOW ON KEY WELL") == []
    assert relevant(linker, "CEO says IPO and ETF plans are on hold") == []


def test_two_companies_order_by_position(linker: Linker) -> None:
    links = linker.link("Apple and Microsoft lead a broad tech rally")
    assert [x.symbol for x in links] == ["AAPL", "MSFT"]
    assert links[0].relevance > links[1].relevance >= DEFAULT_RELEVANCE_THRESHOLD
    flipped = linker.link("Microsoft and Apple lead a broad tech rally")
    assert [x.symbol for x in flipped] == ["MSFT", "AAPL"]


def test_title_beats_body(linker: Linker) -> None:
    links = by_symbol(linker.link("Pfizer wins approval for new vaccine",
                                  body="The decision also helps partner Moderna, analysts said."))
    assert links["PFE"].relevance > links["MRNA"].relevance
    body_only = linker.link("Drugmakers rally", body="Pfizer led the gains after a regulator approved its drug.")
    title_only = linker.link("Pfizer leads drugmakers higher after approval")
    assert body_only[0].symbol == title_only[0].symbol == "PFE"
    assert DEFAULT_RELEVANCE_THRESHOLD <= body_only[0].relevance < title_only[0].relevance


def test_repeated_mentions_add_relevance(linker: Linker) -> None:
    once = linker.link("Results day", body="Boeing reported a loss.")[0]
    thrice = linker.link("Results day", body="Boeing reported a loss. Boeing shares fell. Boeing cut output.")[0]
    assert thrice.relevance > once.relevance


def test_spam_list_of_cashtags_scores_low(linker: Linker) -> None:
    links = linker.link("$AAPL $MSFT $GOOG $AMZN $META $NVDA $TSLA $NFLX all flying today")
    assert len(links) == 8
    assert all(x.relevance < DEFAULT_RELEVANCE_THRESHOLD for x in links)
    assert relevant(linker, "$AAPL breaks out to a new high") == ["AAPL"]


def test_dilution_with_many_companies(linker: Linker) -> None:
    one = linker.link("Apple raises prices")[0].relevance
    four = by_symbol(linker.link("Apple, Microsoft, Nvidia and Amazon raise prices"))
    assert one > four["AAPL"].relevance


def test_feed_tickers(linker: Linker) -> None:
    links = linker.link("Quarterly update from the company", tickers=("$qmed", "brk-b"))
    assert {x.symbol: x.how for x in links} == {"QMED": "feed", "BRK.B": "feed"}
    assert all(x.relevance >= 80 for x in links)
    both = by_symbol(linker.link("Apple shares slide", tickers=("AAPL",)))
    assert both["AAPL"].relevance > linker.link("Apple shares slide")[0].relevance


def test_name_joins_the_written_symbol_of_the_same_company(linker: Linker) -> None:
    assert [x.symbol for x in linker.link("Alphabet (NASDAQ: GOOG) beats estimates")] == ["GOOG"]
    assert [x.symbol for x in linker.link("TSMC ($TSM) raises capex")] == ["TSM"]


def test_deterministic_and_frozen(linker: Linker) -> None:
    title = "Visa, Mastercard and American Express fall as Walmart adds fees; $WMT"
    assert linker.link(title) == linker.link(title)
    links = linker.link(title)
    assert links == tuple(sorted(links, key=lambda x: (-x.relevance, x.symbol)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        links[0].relevance = 1  # type: ignore[misc]


def test_index_is_built_once_per_configuration(linker: Linker) -> None:
    again = Linker.from_settings(load_settings(None))
    assert again.index is linker.index
    assert linker.index.companies > 1500


def test_watchlist_file(tmp_path: Path) -> None:
    path = tmp_path / "watchlist.yaml"
    path.write_text(
        "QMED:\n  names: [Quorum Medical]\n  aliases: [Quorum]\nNWND: [Northwind Energy]\n"
        "TGT:\n  names: [Target Corporation]\n  ambiguous: [Target]\n",
        encoding="utf-8",
    )
    linker = Linker.from_settings(load_settings(None, entities={"watchlist_file": str(path), "min_relevance": 50}))
    assert linker.min_relevance == 50
    assert relevant(linker, "Quorum Medical wins FDA nod") == ["QMED"]
    assert linker.link("Quorum beats estimates")[0].how == "alias"
    assert relevant(linker, "Northwind Energy and Apple sign power deal") == ["NWND", "AAPL"]
    assert relevant(linker, "Target price cut at brokers") == []


def test_watchlist_list_form(tmp_path: Path) -> None:
    path = tmp_path / "watchlist.yaml"
    path.write_text("- symbol: VSPR\n  names: [Vesper Foods]\n", encoding="utf-8")
    linker = Linker.from_settings(load_settings(None, entities={"watchlist_file": str(path)}))
    assert relevant(linker, "Vesper Foods recalls snacks") == ["VSPR"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("QMED: [Quorum\n", "is not valid YAML"),
        ("- just a name\n", "has no 'symbol'"),
        ("not a ticker!: [Quorum]\n", "is not a ticker symbol; use the Yahoo form"),
        ("QMED: {names: [Quorum], sector: health}\n", "unknown field(s) ['sector']"),
        ("QMED: {aliases: []}\n", "has no names"),
        ("QMED: {names: [1, 2]}\n", "must be a name or a list of names"),
        ("42\n", "must map each symbol to its names"),
    ],
)
def test_bad_watchlist_says_what_to_fix(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "watchlist.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(WatchlistError) as err:
        Linker.from_settings(load_settings(None, entities={"watchlist_file": str(path)}))
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert isinstance(err.value, ConfigError)


def test_missing_watchlist_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(WatchlistError, match=r"entities\.watchlist_file"):
        Linker.from_settings(load_settings(None, entities={"watchlist_file": str(tmp_path / "absent.yaml")}))


def test_window_company_settings_are_names_too() -> None:
    cfg = load_settings(None, windows={"companies": {"Aurelia Bank": "AURB"}})
    assert relevant(Linker.from_settings(cfg), "Aurelia Bank raises dividend") == ["AURB"]


def test_relevance_setting_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"entities\.min_relevance"):
        load_settings(None, entities={"min_relevance": 101})


# Written for this check: (headline, tickers it is about). Traps have none.
HEADLINES: list[tuple[str, set[str]]] = [
    ("Apple delays launch of its mixed-reality headset", {"AAPL"}),
    ("Amazon to hire 250,000 seasonal warehouse workers", {"AMZN"}),
    ("Tesla cuts Model Y prices in China again", {"TSLA"}),
    ("Netflix adds more subscribers than expected", {"NFLX"}),
    ("Intel and AMD both lose ground in server chips", {"INTC", "AMD"}),
    ("JPMorgan profit climbs on higher interest income", {"JPM"}),
    ("Bank of America sets aside more for bad loans", {"BAC"}),
    ("Walmart beats estimates as shoppers trade down", {"WMT"}),
    ("Coca-Cola raises prices to offset costs", {"KO"}),
    ("Pfizer and BioNTech update their vaccine", {"PFE"}),
    ("Boeing halts deliveries of its 787 jet", {"BA"}),
    ("Disney's streaming unit turns a profit", {"DIS"}),
    ("Exxon Mobil agrees to buy shale producer", {"XOM"}),
    ("Chevron and Exxon report lower refining margins", {"CVX", "XOM"}),
    ("Google parent Alphabet announces $70 billion buyback", {"GOOGL"}),
    ("Meta Platforms shares soar on ad sales", {"META"}),
    ("Starbucks names new chief executive", {"SBUX"}),
    ("McDonald's tests a cheaper value menu", {"MCD"}),
    ("UnitedHealth faces probe over billing", {"UNH"}),
    ("Home Depot buys roofing supplier for $18 billion", {"HD"}),
    ("SAP raises cloud revenue forecast", {"SAP.DE"}),
    ("Volkswagen warns on margins as China sales slump", {"VOW3.DE"}),
    ("BMW and Mercedes-Benz face EU tariff questions", {"BMW.DE", "MBG.DE"}),
    ("Nestle cuts sales outlook as volumes weaken", {"NESN.SW"}),
    ("LVMH sales growth slows in Asia", {"MC.PA"}),
    ("Shell shares rise after buyback boost", {"SHEL.L"}),
    ("Sony to spin off its financial unit", {"6758.T"}),
    ("Alibaba splits into six business groups", {"BABA"}),
    ("Samsung Electronics warns of weak chip demand", {"005930.KS"}),
    ("Tencent (HKEX: 700) resumes share buybacks", {"0700.HK"}),
    ("$NVDA and $AMD rally as AI demand grows", {"NVDA", "AMD"}),
    ("Kweichow Moutai (SSE: 600519) profit rises 15%", {"600519.SH"}),
    ("Oil prices fall as OPEC signals more supply", set()),
    ("Apple pie recipes for a cold autumn evening", set()),
    ("Fires in the Amazon rainforest draw protests", set()),
    ("Costs rose faster than expected in the euro zone", set()),
    ("NOW is the moment for rate cuts, says economist", set()),
    ("IT budgets shrink as companies save cash", set()),
    ("Next month's jobs report will be crucial", set()),
    ("Target inflation rate remains 2%, central bank says", set()),
    ("Best stocks to buy for the next decade", set()),
    ("Visa applications surge before new rules", set()),
    ("Delta cancels hundreds of flights after outage", {"DAL"}),
    ("Uber and Lyft drivers plan a one-day strike", {"UBER", "LYFT"}),
    ("Lilly's obesity drug beats rival in trial", {"LLY"}),
    ("UPS to cut 12,000 jobs as parcel volumes drop", {"UPS"}),
    ("Goldman Sachs cuts its Tesla price target", {"GS", "TSLA"}),
    ("Hyundai and Kia recall cars over fire risk", {"005380.KS", "000270.KS"}),
]


def test_precision_and_recall_on_written_headlines(linker: Linker) -> None:
    true_pos = false_pos = false_neg = 0
    misses = []
    for title, expected in HEADLINES:
        found = set(relevant(linker, title))
        true_pos += len(found & expected)
        false_pos += len(found - expected)
        false_neg += len(expected - found)
        if found != expected:
            misses.append((title, sorted(found), sorted(expected)))
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / (true_pos + false_neg)
    print(f"precision {precision:.3f} recall {recall:.3f} over {len(HEADLINES)} headlines; misses {misses}")
    assert precision >= 0.9, misses
    assert recall >= 0.85, misses


def test_cli_json_lists_tickers_at_or_above_the_threshold(tmp_path: Path) -> None:
    from pipelines.link import command

    path = tmp_path / "feed.csv"
    path.write_text(
        "id,title\n"
        "a1,Apple shares slide as iPhone sales disappoint\n"
        "a2,\"$AAPL $MSFT $GOOG $AMZN $META $NVDA $TSLA $NFLX all flying\"\n"
        "a3,Apple pie wins the county fair\n"
        "a4,Alphabet (NASDAQ: GOOGL) and SAP.DE gain\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(command, [str(path), "--json"], obj=load_settings(None))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["id"] for r in rows] == ["a1", "a2", "a3", "a4"]
    assert rows[0]["tickers"] == [{"symbol": "AAPL", "relevance": rows[0]["tickers"][0]["relevance"]}]
    assert rows[0]["tickers"][0]["relevance"] >= DEFAULT_RELEVANCE_THRESHOLD
    assert rows[1]["tickers"] == [] and rows[2]["tickers"] == []
    assert [t["symbol"] for t in rows[3]["tickers"]] == ["GOOGL", "SAP.DE"]


def test_cli_table_jsonl_and_columns(tmp_path: Path) -> None:
    from pipelines.link import command

    path = tmp_path / "feed.jsonl"
    path.write_text(json.dumps({"guid": 7, "headline": "Quiet day", "body": "Nvidia led chip stocks higher."}) + "\n"
                    + json.dumps({"guid": 8, "headline": "Toyota (TSE: 7203) lifts output"}) + "\n", encoding="utf-8")
    table = CliRunner().invoke(command, [str(path), "--text-col", "headline"], obj=load_settings(None))
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].startswith("7") and "NVDA" in lines[0] and "(name)" in lines[0]
    assert "7203.T" in lines[1] and "(exchange)" in lines[1]
    bad = CliRunner().invoke(command, [str(path), "--text-col", "nope"], obj=load_settings(None))
    assert bad.exit_code != 0 and "--text-col 'nope' is not a column" in bad.output
