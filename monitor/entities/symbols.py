"""Ticker symbols written in a text, in Yahoo form: `$AAPL` cashtags, `(NASDAQ: GOOGL)`-style exchange
prefixes, exchange-suffixed codes (SAP.DE, 0700.HK, 600519.SH, 7203.T) and bare upper-case tickers.

Symbols keep the project's form: US share classes with a dot (BRK.B, as in monitor/windows/keys.py and
companies.yaml), Yahoo's exchange suffixes for other markets, mainland China as `.SH` / `.SZ` (Yahoo's `.SS` is
mapped to `.SH`), Hong Kong codes with four digits (0700.HK).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from monitor.cjk import WORD, has_cjk

# Yahoo suffixes accepted on a written code, with the markets whose codes are numbers.
_SUFFIX_TEXT = "SH SS SZ HK DE F L T PA AS MC SW MI ST HE BR CO OL LS IR VI WA TO V AX KS KQ NS BO TW TWO SI JO SA MX"
SUFFIXES = frozenset(_SUFFIX_TEXT.split(" "))
_NUMERIC_SUFFIXES = frozenset(("SH", "SS", "SZ", "HK", "T", "KS", "KQ", "TW", "TWO"))
# How many digits a numeric code of each market has ("123.T" or "60051.SH" is no listing); Hong Kong codes are
# written with or without leading zeros (700.HK, 0700.HK, 00700.HK).
_DIGITS = {"SH": (6, 6), "SS": (6, 6), "SZ": (6, 6), "HK": (1, 5), "T": (4, 4), "KS": (6, 6), "KQ": (6, 6),
           "TW": (4, 6), "TWO": (4, 6)}
_CLASS = re.compile(r"^([A-Z][A-Z0-9]{0,5})[.-]([A-Z])$")  # BRK-B / BRK.B: one letter is a share class
_US_CODE = re.compile(r"^[A-Z][A-Z0-9]{0,5}(?:\.[A-Z])?$")

# Exchange names as written before a colon, -> the Yahoo suffix ("" for US markets). "TSE" is Tokyo for a
# numeric code and Toronto for letters; FRA/FWB (Frankfurt) share XETRA's codes for German shares.
EXCHANGES: dict[str, str] = {
    **dict.fromkeys(("NASDAQ", "NASDAQGS", "NASDAQGM", "NASDAQCM", "NYSE", "NYSE AMERICAN", "NYSE ARCA", "NYSE MKT",
                     "NYSEARCA", "NYSEAMERICAN", "AMEX", "BATS", "CBOE", "OTC", "OTCMKTS", "OTCQX", "OTCQB"), ""),
    **dict.fromkeys(("LSE", "LON", "LONDON"), ".L"),
    **dict.fromkeys(("HKEX", "HKG", "SEHK", "HK", "HKSE"), ".HK"),
    **dict.fromkeys(("SSE", "SHA", "SHSE"), ".SH"),
    **dict.fromkeys(("SZSE", "SHE"), ".SZ"),
    **dict.fromkeys(("XETRA", "ETR", "FRA", "FWB", "XETR"), ".DE"),
    **dict.fromkeys(("TYO", "JPX", "TSE"), ".T"),
    **dict.fromkeys(("TSX", "TSXV"), ".TO"),
    **dict.fromkeys(("EPA", "EURONEXT PARIS", "ENXTPA"), ".PA"),
    **dict.fromkeys(("AMS", "EURONEXT AMSTERDAM", "ENXTAM"), ".AS"),
    **dict.fromkeys(("EBR", "EURONEXT BRUSSELS", "ENXTBR"), ".BR"),
    **dict.fromkeys(("BIT", "MIL", "BORSA ITALIANA"), ".MI"),
    **dict.fromkeys(("BME", "MCE"), ".MC"),
    **dict.fromkeys(("SIX", "SWX", "VTX"), ".SW"),
    **dict.fromkeys(("STO", "OMX", "NASDAQ STOCKHOLM"), ".ST"),
    **dict.fromkeys(("HEL", "NASDAQ HELSINKI"), ".HE"),
    **dict.fromkeys(("CPH", "NASDAQ COPENHAGEN"), ".CO"),
    **dict.fromkeys(("OSL", "OSE"), ".OL"),
    **dict.fromkeys(("ASX",), ".AX"),
    **dict.fromkeys(("KRX", "KOSPI"), ".KS"),
    **dict.fromkeys(("KOSDAQ",), ".KQ"),
    **dict.fromkeys(("NSE",), ".NS"),
    **dict.fromkeys(("BSE",), ".BO"),
    **dict.fromkeys(("TWSE", "TPE"), ".TW"),
    **dict.fromkeys(("SGX",), ".SI"),
}
_EXCHANGE_NAMES = "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in sorted(EXCHANGES, key=len, reverse=True))
_CODE = r"[A-Z0-9][A-Z0-9]{0,5}(?:[.\-][A-Z]{1,2})?"


@dataclass(frozen=True, slots=True)
class _Patterns:
    """The written-symbol regexes for one notion of "word character" at their edges."""

    exchange: re.Pattern[str]
    cashtag: re.Pattern[str]
    suffixed: re.Pattern[str]


def _patterns(word: str) -> _Patterns:
    suffixes = "|".join(sorted(SUFFIXES, key=len, reverse=True))
    return _Patterns(
        # "(NASDAQ: GOOGL)", "NYSE:F", "HKEX: 700", "Euronext Paris: MC"; exchange names in any case, codes upper.
        re.compile(rf"(?<!{word}|\$)(?i:({_EXCHANGE_NAMES}))\s*:\s*({_CODE})(?!{word}|\$)"),
        re.compile(rf"(?<!{word}|\$)\$([A-Za-z][A-Za-z0-9]{{0,5}}(?:[.\-][A-Za-z]{{1,3}})?|\d{{3,6}}\.[A-Za-z]{{1,3}})"
                   rf"(?!{word}|\$)"),
        re.compile(rf"(?<!{word}|[$.])(\d{{3,6}}|[A-Z][A-Z0-9]{{0,5}}(?:-[A-Z])?)\.({suffixes})(?!{word}|\.|\.{word})"),
    )


# Text with CJK characters uses WORD (a word character that is not CJK) at the edges: Chinese glues codes to
# the words around them ("茅台600519.SH涨停"). Other text uses plain \w, which means the same there and is
# faster (a negated class with ranges is checked character by character).
_PLAIN = _patterns(r"\w")
_CJK_AWARE = _patterns(WORD)
EXCHANGE_MENTION, CASHTAG, SUFFIXED_CODE = _CJK_AWARE.exchange, _CJK_AWARE.cashtag, _CJK_AWARE.suffixed
# Mainland codes written with the exchange in front, as Chinese portals do: SH600519, sz000001.
PREFIXED_A_SHARE = re.compile(rf"(?<!{WORD}|[$.])([Ss][HhZz])(\d{{6}})(?!{WORD}|\.\d)")
_PREFIXED_HINT = re.compile(r"[Ss][HhZz]\d{6}")  # a cheap first look: the pattern above starts with a lookbehind
_PREFIXED_SYMBOL = re.compile(r"^(S[HZS])(\d{6})$")
BARE_TICKER = re.compile(r"(?<![\w$.&'’-])[A-Z][A-Z0-9]{1,5}(?![\w&'’]|-\w|\.\w)")
PAREN_TICKER = re.compile(r"\(([A-Z][A-Z0-9]{0,5}(?:\.[A-Z])?)\)")


@dataclass(frozen=True, slots=True)
class SymbolMention:
    """A symbol written in a text: which one, where, and how it was written (cashtag, exchange, code)."""

    symbol: str
    start: int
    end: int
    how: str


def normalize_symbol(raw: str) -> str:
    """Project form of a Yahoo-ish symbol: '$brk-b' -> 'BRK.B', '600519.SS' -> '600519.SH', '700.HK' ->
    '0700.HK',
    'SH600519' -> '600519.SH'; anything it does not recognise is only upper-cased (and stripped of '$')."""
    sym = raw.strip().lstrip("$").upper()
    prefixed = _PREFIXED_SYMBOL.match(sym)
    if prefixed:
        return with_suffix(prefixed.group(2), "." + prefixed.group(1))
    head, dot, suffix = sym.rpartition(".")
    if dot and suffix in SUFFIXES and head:
        return with_suffix(head, "." + suffix)
    cls = _CLASS.match(sym)
    return f"{cls.group(1)}.{cls.group(2)}" if cls else sym


def with_suffix(code: str, suffix: str) -> str:
    """A market code plus a Yahoo suffix, in project form ('700', '.HK' -> '0700.HK'; 'BT.A', '.L' -> 'BT-A.L')."""
    code = code.upper()
    if suffix == ".SS":
        suffix = ".SH"
    if suffix == "":
        cls = _CLASS.match(code)
        return f"{cls.group(1)}.{cls.group(2)}" if cls else code
    if suffix == ".HK" and code.isdigit():
        code = code.lstrip("0").rjust(4, "0")
    return code.replace(".", "-") + suffix


def exchange_symbol(exchange: str, code: str) -> str | None:
    """'(HKEX, 700)' -> '0700.HK'; None when the code cannot be on that market (letters on a numeric one)."""
    name = " ".join(exchange.upper().split())
    suffix = EXCHANGES[name]
    if name == "TSE" and not code[0].isdigit():
        suffix = ".TO"  # Toronto writes letters, Tokyo numbers
    if (suffix.lstrip(".") in _NUMERIC_SUFFIXES) != code[0].isdigit():
        return None  # "HKEX: AB" or "Six: 5G" is not a listing
    return with_suffix(code, suffix)


def is_us_symbol(symbol: str) -> bool:
    """A US listing: no exchange suffix (a share class such as BRK.B is allowed)."""
    return bool(_US_CODE.match(symbol))


def _fits(code: str, suffix: str) -> bool:
    """Digits on a numeric market, as many as its codes have; letters elsewhere."""
    if code.isdigit() != (suffix in _NUMERIC_SUFFIXES):
        return False
    low, high = _DIGITS.get(suffix, (0, 99))
    return not code.isdigit() or low <= len(code) <= high


def explicit_symbols(text: str, cjk: bool | None = None) -> Iterator[SymbolMention]:
    """Cashtags, exchange-prefixed and exchange-suffixed codes in `text`, in order; overlapping ones once.
    `cjk`: whether the text has CJK characters, when the caller knows (else it is looked up)."""
    found: list[SymbolMention] = []
    pats = _CJK_AWARE if (has_cjk(text) if cjk is None else cjk) else _PLAIN
    # Each pattern needs its mark ("$", the colon after an exchange, the dot of a suffix): a look for the mark
    # is much cheaper than running the pattern, and most texts lack one or two of them.
    for match in pats.cashtag.finditer(text) if "$" in text else ():
        found.append(SymbolMention(normalize_symbol(match.group(1)), match.start(), match.end(), "cashtag"))
    for match in pats.exchange.finditer(text) if ":" in text else ():
        symbol = exchange_symbol(match.group(1), match.group(2))
        if symbol is not None:
            found.append(SymbolMention(symbol, match.start(), match.end(), "exchange"))
    for match in pats.suffixed.finditer(text) if "." in text else ():
        suffix = match.group(2)
        if _fits(match.group(1), suffix):
            found.append(SymbolMention(with_suffix(match.group(1), "." + suffix), match.start(), match.end(), "code"))
    for match in PREFIXED_A_SHARE.finditer(text) if _PREFIXED_HINT.search(text) else ():
        found.append(SymbolMention(normalize_symbol(match.group(0)), match.start(), match.end(), "code"))
    taken: list[tuple[int, int]] = []
    for mention in sorted(found, key=lambda m: (m.start, -m.end)):
        if all(mention.end <= a or mention.start >= b for a, b in taken):
            taken.append((mention.start, mention.end))
            yield mention
