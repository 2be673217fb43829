"""US-listed companies beyond the index members: the stocks table that the `investpy` package ships
(`investpy/resources/stocks.csv`, MIT licence, about 4,600 US rows as of early 2022), the least trusted source.

pytickersymbols knows the members of 20 indices, so mid and small caps that the news names every day (Roku,
Lyft, Wayfair, Crocs, GameStop) are not in it. investpy's table lists most US common stocks of its time with
an official name ("Roku Inc") and a short one ("Roku"). It is read as a plain CSV file found through the
import system, without importing investpy (whose import pulls in its scraping client).

What is kept, and why:
- only `united states` rows whose symbol is 1-4 capitals: five-letter US symbols are mostly OTC ADRs and
  foreign ordinaries (TOYOF, NSRGY), whose companies are linked at their home listing by the other sources;
- no ADRs, funds, trusts, SPACs, notes or preferreds (by words of the name): they are not the company news is
  about, and fund names are generic ("Municipal Income");
- no symbol that a more trusted source already has, and no company whose name a trusted source gives another
  symbol: the table is from 2022, and a renamed company ("Facebook Inc", FB) must not bring its old symbol
  back. A symbol reused since then by a company no source knows (SG: Sirius International then, Sweetgreen
  now) still links the old name; such names are rare in today's news.

Names are official names, so aliases are derived from them exactly as for pytickersymbols (legal forms cut,
everyday words and generic names held to evidence; index.py). The symbols join no bare-ticker vocabulary
(`Company.source` "listed"; index.py): a list this broad has a symbol for most capitalised abbreviations (HBM,
ERP), so its companies link by name, cashtag or exchange prefix only.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from monitor.entities.company import Company
from monitor.entities.names import name_tokens, strip_legal

SOURCE = "listed"
_PACKAGE, _TABLE = "investpy", "resources/stocks.csv"
_SYMBOL = re.compile(r"[A-Z]{1,4}")
_NOT_A_COMPANY = re.compile(
    r"\b(?:ADR|ADRs|ADS|American Depositary|Fund|Funds|Municipal|ETF|ETN|Trust|Notes|Debentures|Preferred|Pref"
    r"|Warrants?|Units?|Rights|Acquisition|Partners LP|Income Shares|Closed)\b",
    re.IGNORECASE,
)


def table_path() -> Path | None:
    """Where investpy's stocks table is installed, or None (the package is optional: no table, no companies).
    `find_spec` of a top-level package locates it without running its `__init__`."""
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / _TABLE
    return path if path.is_file() else None


def parse_table(text: str) -> tuple[Company, ...]:
    """US common stocks of an investpy stocks table (CSV text), one company per symbol, in file order."""
    out: dict[str, Company] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("country") != "united states":
            continue
        symbol = (row.get("symbol") or "").strip()
        official = " ".join((row.get("full_name") or "").replace("’", "'").split())
        if not _SYMBOL.fullmatch(symbol) or not official or _NOT_A_COMPANY.search(official):
            continue
        if symbol not in out:
            out[symbol] = Company(symbol, names=(official,), source=SOURCE, derived=True)
    return tuple(out.values())


@cache
def listed_companies() -> tuple[Company, ...]:
    """investpy's US common stocks (empty when investpy is not installed); read once per process."""
    path = table_path()
    return parse_table(path.read_text(encoding="utf-8")) if path is not None else ()


def new_companies(listed: Iterable[Company], trusted: Iterable[Company]) -> list[Company]:
    """The listed companies whose symbol no trusted company has (as its symbol or another listing) and whose
    name, legal forms cut, is no trusted company's name: a company renamed or re-listed since 2022 ("Facebook
    Inc", FB) stays with the symbol the trusted source gives it (META)."""
    trusted = tuple(trusted)
    taken = {s for c in trusted for s in c.symbols}
    names = {strip_legal(name_tokens(n)) for c in trusted for n in (*c.names, *c.aliases, *c.ambiguous)}
    fresh = [c for c in listed if c.symbol not in taken and strip_legal(name_tokens(c.names[0])) not in names]
    return fresh + _same_company(listed, trusted)


def _compact(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _same_company(listed: Iterable[Company], trusted: tuple[Company, ...]) -> list[Company]:
    """The table's official name as one more name of a trusted company with the same symbol, when both names
    start alike ("Super Micro Computer Inc" for SMCI, which pytickersymbols calls "Supermicro"): the same
    company, written another way. A symbol since given to another company ("Facebook Inc", FB) starts
    differently and adds nothing."""
    known = {c.symbol: c for c in trusted}
    out = []
    for company in listed:
        other = known.get(company.symbol)
        head = _compact(company.names[0])[:5]
        if other is not None and len(head) == 5 and any(_compact(n).startswith(head) for n in other.names):
            out.append(company)
    return out
