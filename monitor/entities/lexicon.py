"""Word lists that decide whether a capitalised word is a company: everyday English words, acronyms, the
neighbours that make a name *not* a company ("Apple pie") and those that confirm one ("Target shares").

All of them are general (no entry exists for one test sentence); words are compared lower-cased.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


@cache
def english_words() -> frozenset[str]:
    """Lower-case everyday English words (`monitor/data/english_words.txt`, from SCOWL; see its header)."""
    text = resources.files("monitor").joinpath("data/english_words.txt").read_text(encoding="utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def is_english_word(word: str) -> bool:
    return word.lower() in english_words()


@cache
def _place_sections() -> dict[str, frozenset[str]]:
    """`monitor/data/place_names.txt` (from GeoNames; see its header) by section: "places", "regions"."""
    text = resources.files("monitor").joinpath("data/place_names.txt").read_text(encoding="utf-8")
    sections: dict[str, set[str]] = {}
    current = sections.setdefault("places", set())
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], set())
        elif line and not line.startswith("#"):
            current.add(line)
    return {k: frozenset(v) for k, v in sections.items()}


def is_place(name: str) -> bool:
    """A town or city that English news names often ("Duluth", "Aurora", "Las Vegas"), as written."""
    return name in _place_sections()["places"]


def is_region(name: str) -> bool:
    """A US state, Canadian province, Australian state, UK nation or country ("Texas", "Ontario"), as written."""
    return name in _place_sections()["regions"]


@cache
def region_after() -> re.Pattern[str]:
    """', <state, province or country>' right after a name: "Hershey, Pennsylvania" is the town."""
    names = sorted(_place_sections()["regions"], key=len, reverse=True)
    return re.compile(r"\s*,\s*(?:" + "|".join(re.escape(n) for n in names) + r")(?!\w)")


# Upper-case abbreviations that headlines use as words: never read as a bare ticker even when some listed
# company trades under them (e.g. an "AI", "EV" or "CEO" in a headline is not a stock).
ACRONYMS: frozenset[str] = _words(
    """
    AI API APP ATH ATM BOE BOJ BPS BTC CAD CEO CFO CIO COO CPI CTO DOJ DOT ECB EPS ESG ETF ETFS ETH EU EUR EV EVS
    FAA FBI FCC FDA FDIC FED FOMC FTC FX FY GAAP GBP GDP GOP HK HQ IMF IPO IPOS IRS ISM IT JPY LLC LNG LTD M&A MBA
    NASA NATO NFL NBA NFT NYSE NASDAQ OPEC OTC PC PCE PE PMI PPI PR Q1 Q2 Q3 Q4 QOQ REIT ROI SEC SPAC TV UAW UK
    UN US USA USD UTC VAT VC VIX WHO WSJ WTO YOY YTD ACA ADR ADRS AGM API CDC CNBC CNN DAX EBIT EBITDA FTSE GPU
    HR ICE IMO IOT LBO LIBOR MOU NAV NHS NPR OECD PPE RBI SNB SPX SPY USDA VP WTI CPU SUV EVP SVP AG SA SE NV PLC
    INC CORP CO LP ID OK TBA TBD ASAP FAQ DIY RSS ESPN BBC HBO NBC CBS ABC FOX AP AFP IBD DJIA NDX RUT COVID
    """
)

# A following word that makes the name something else: "Apple pie", "Amazon rainforest", "Shell game".
NEGATIVE_AFTER: frozenset[str] = _words(
    """
    pie pies juice juices tree trees orchard orchards cider cake cakes sauce seed seeds blossom blossoms
    rainforest rainforests river rivers basin basins jungle jungles forest forests delta tribe tribes
    deforestation region rainfall warrior warriors parrot parrots dolphin
    dolphins of analysis analyses
    """
)
# A preceding word that does the same: "the Big Apple", "the Brazilian Amazon". Compared as written: "a big
# Apple order" is still Apple.
NEGATIVE_BEFORE: frozenset[str] = _words("Big Brazilian Peruvian Colombian Ecuadorian Bolivian Venezuelan")

# A following word that confirms a company behind an everyday word: "Target shares", "Next plc", "Block CEO",
# and the verbs of company actions, which need a company as subject ("Target raises outlook", "Visa sues").
# Verbs a person does as well ("says", "expects", "warns") are left out: "Fed's Williams says" is a person.
EVIDENCE_AFTER: frozenset[str] = _words(
    """
    shares share stock inc corp corporation co ltd plc llc ag se sa nv group holdings ceo cfo chief
    earnings revenue revenues profit profits sales results quarter quarterly guidance outlook forecast dividend
    dividends buyback buybacks shareholders investors stake ipo analysts rating downgrade upgrade downgrades
    upgrades reports reported posts posted beats misses raises raised cuts lifts lowers trims boosts slashes
    unveils launches acquires buys sells sues recalls settles tops jumps falls rises climbs slides drops surges
    soars tumbles gains slumps sinks rallies plunges
    wins agrees completes announces names hires appoints files lays signs partners merges
    """
)
# A preceding word that does the same: "retailer Target", "shares of Next", "rival Block".
EVIDENCE_BEFORE: frozenset[str] = _words(
    """
    retailer retailers rival rivals company firm giant maker owner operator lender insurer bank chain brand peer
    peers conglomerate group supplier carrier producer miner automaker chipmaker drugmaker
    """
)
EVIDENCE_BEFORE_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {("shares", "of"), ("stake", "in"), ("stock", "of"), ("investors", "in"), ("invest", "in"), ("ceo", "of")}
)

# Short names of listed companies that are mostly people or places in the news ("Fed's Williams", "Dover",
# "Everest"): derived names like these need evidence, as everyday words do.
PROPER_NOUNS: frozenset[str] = _words(
    """
    Alamo Berkeley Brady Campbell Carter Dana Dover Elisa Everest Hartford Hawkins Indus Knowles Lindsay Norma
    Orion Palomar Pearson Rogers Rollins Wiley Williams Toto Patrick Stewart Graham Franklin Lincoln Jackson
    Edison Phillips Baker Murphy
    """
)
# Nationality and direction adjectives: words that describe a business, cut off the end of a name for its short
# form like everyday words ("Chipotle Mexican Grill" -> "Chipotle"; index.py). The word list has lower case only.
DESCRIPTIVE_ADJECTIVES: frozenset[str] = _words(
    """
    American Mexican Canadian British English European Chinese Japanese Korean Indian Asian African Australian
    German French Italian Spanish Dutch Swiss Irish Nordic Scandinavian Brazilian Latin Pacific Atlantic
    Global Worldwide International National Continental Southern Northern Eastern Western Central
    """
)
# Names of markets and indices that are also short names of the companies running them: a market report
# ("the Nasdaq closed higher", "SSE Composite") is not news about Nasdaq Inc or SSE plc.
MARKET_NAMES: frozenset[str] = _words("Nasdaq NASDAQ Dow NYSE SSE SZSE HKEX FTSE DAX Nikkei Euronext Cboe CBOE LSE")
# Words of a company name too generic to stand alone ("The Bancorp" -> "Bancorp"), and which, capitalised after
# a one-word name, make a different company ("Meta Financial" is not Meta).
GENERIC_WORDS: frozenset[str] = _words(
    """
    bancorp bancshares bankshares banc bank financial capital holdings holding group partners industries
    international technologies technology systems solutions services resources energy properties realty trust
    insurance brands global america american national united first general
    """
)

# Chinese neighbours that confirm a company behind an ambiguous CJK name (a watchlist's `ambiguous` entry,
# e.g. 平安 "safe", 中信 as a word in a longer phrase): what follows the name ("平安股价", "茅台公告") or what
# precedes it ("旗下"). Compared as a prefix of the text after the name and a suffix of the text before it,
# because Chinese has no spaces to cut words at.
CJK_EVIDENCE_AFTER: tuple[str, ...] = (
    "股份", "股价", "股票", "公司", "集团", "控股", "市值", "公告", "财报", "年报", "季报", "业绩", "营收",
    "净利", "利润", "涨停", "跌停", "大涨", "大跌", "上涨", "下跌", "股东", "董事", "回购", "分红", "发布", "宣布",
    "株", "株価", "社",
)
CJK_EVIDENCE_BEFORE: tuple[str, ...] = ("旗下", "股东", "公司", "龙头", "巨头", "持有", "增持", "减持", "买入")
# Between two names of a list: "茅台、五粮液", "腾讯和阿里巴巴" (the English list words are in mentions.py).
CJK_LIST_MARKS = "、，,和与及跟"
