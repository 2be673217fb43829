"""The name index: every way a company is written, as token tuples, looked up from their first token.

Built once per set of companies (about 1,900 companies -> about 7,000 names) and kept in-process by the
linker. A name two companies claim goes to the one from the more trusted source, then to the one for which it
is the official name rather than a derived alias, then to the alphabetically first symbol, so the index is
the same on every run.

What each name needs before it links (`Entry`):
- `ambiguous`: a single everyday word links only with evidence (see mentions.py): an official name that is
  one ("Carnival", "Mosaic"), or a written name listed as `ambiguous` ("Target", "Next", "Block", "Visa" in
  monitor/data/entities.yaml). An everyday word that only cutting the legal form makes ("Partners Group" ->
  "Partners", "Investor AB" -> "Investor") is not indexed at all;
- `common`: a derived multi-word name made of everyday words ("Best Buy", "Dollar General") needs the same
  evidence in a Title Case Headline, where every word is capitalised anyway;
- names shorter than 2 characters, and derived single words shorter than 3 that are not capitals or codes
  ("BP", "3M"), are dropped.

Names written in CJK characters (贵州茅台, 腾讯控股, トヨタ自動車) are not token tuples: Chinese and Japanese
put no spaces between words, so they are kept apart (`NameIndex.cjk`, full-width forms folded, spaces
removed) and found as substrings, longest first, by one compiled alternation (`cjk_pattern`). They are taken
as written, like a watchlist's names: nothing is derived from them, and those listed as `ambiguous` need
evidence (mentions.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from monitor.cjk import fold_width, has_cjk
from monitor.entities.company import NAMES_ONLY_SOURCES, Company, source_rank
from monitor.entities.lexicon import (
    ACRONYMS,
    DESCRIPTIVE_ADJECTIVES,
    GENERIC_WORDS,
    MARKET_NAMES,
    PROPER_NOUNS,
    is_english_word,
    is_place,
    is_region,
)
from monitor.entities.names import LEGAL_SUFFIXES, name_tokens, strip_legal, tokenize, variants
from monitor.entities.symbols import is_us_symbol

_CONNECTORS = frozenset({"and", "of", "the", "&"})


@dataclass(frozen=True, slots=True)
class Entry:
    """One indexed name: the symbol it links to, as a name or an alias, and what it needs to link."""

    symbol: str
    how: str
    ambiguous: bool = False
    common: bool = False
    possessive: bool = False  # written "Moody's": a bare "Moody" is someone else
    inner: tuple[int, ...] = ()  # words before the last written possessive: "Dick's Sporting Goods" (position 0)


@dataclass(frozen=True, slots=True)
class _Candidate:
    tokens: tuple[str, ...]
    entry: Entry
    rank: tuple[int, int, int, str]


@dataclass(frozen=True, slots=True)
class NameIndex:
    """Names by first token (longest first), symbols of the same company, and the bare-ticker vocabulary."""

    by_first: dict[str, tuple[tuple[tuple[str, ...], Entry], ...]]
    same: dict[str, frozenset[str]]
    known: frozenset[str]
    bare: frozenset[str]
    companies: int
    cjk: dict[str, Entry] | None = None  # CJK names (folded, no spaces) -> entry
    cjk_pattern: re.Pattern[str] | None = None  # every CJK name, longest first

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_first.values()) + len(self.cjk or ())


def _is_everyday(token: str) -> bool:
    return token.lower() in _CONNECTORS or is_english_word(token)


def _derived(company: Company, rank: int) -> Iterator[_Candidate]:
    """Names of a package company: each official name and its variants, checked against everyday words."""
    for name in company.names:
        if has_cjk(name):
            continue  # indexed by _cjk_candidates
        official = name_tokens(name)
        possessive = {t.text for t in tokenize(name) if t.possessive}
        for tokens in _with_cased(variants(name)):
            if _unusable(tokens):
                continue
            single = len(tokens) == 1
            loose = single and company.source in NAMES_ONLY_SOURCES
            # A town's name ("Duluth Holdings" -> "Duluth") is held to evidence like a person's ("Dover").
            proper = single and (tokens[0] in PROPER_NOUNS or is_place(tokens[0]))
            ambiguous = proper or (single and (is_english_word(tokens[0]) or tokens[0] in ACRONYMS
                                              or (loose and tokens[0].isupper())))
            if ambiguous and len(official) > 1 and not proper:
                continue  # "Partners Group" -> "Partners": an everyday word only by cutting; curate it if wanted
            # A legal form is evidence already: "Target Corp" links, "Best Buy" in a Title Case headline waits.
            # A one-word name of the broad list is often a surname or a town as well ("Cohen", "Marcus"): it is
            # held like an everyday-word name ("Neiman Marcus" is not Marcus Corp; mentions.py).
            common = loose or (not single and strip_legal(tokens) == tokens and all(_is_everyday(t) for t in tokens))
            entry = Entry(company.symbol, "name", ambiguous, common, tokens[-1] in possessive,
                          _inner(tokens, possessive))
            yield _Candidate(tokens, entry, (rank, 0 if tokens == official else 1, 0, company.symbol))


def _short(company: Company, rank: int) -> Iterator[_Candidate]:
    """Short forms of a package company's names ("Chipotle Mexican Grill" -> "Chipotle", "Norfolk Southern
    Railway" -> "Norfolk Southern"), held like everyday-word names of more than one word (`common`)."""
    for name in company.names:
        if has_cjk(name) or "&" in name or " and " in name:
            continue  # "Cohen & Steers" -> "Cohen" would be someone else
        official = strip_legal(name_tokens(name))
        for tokens in dict.fromkeys(_with_cased(short_forms(official))):
            entry = Entry(company.symbol, "name", common=True)
            yield _Candidate(tokens, entry, (len(official) - len(tokens), rank, 2, company.symbol))


def short_forms(tokens: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """The name left by cutting each descriptive word (an everyday or generic word, a place, an acronym) off
    its end, while what is left is distinctive: a one-word rest of 4+ letters that is no everyday word, town,
    region or person's name the lexicon knows; a longer rest that is no place ("Las Vegas Sands" keeps its
    'Sands'). Headlines name a company by these: "Chipotle", "Regeneron", "Super Micro", "Thermo Fisher"."""
    while len(tokens) > 1 and _descriptive(tokens[-1]):
        tokens = tokens[:-1]
        text = " ".join(tokens)
        if is_place(text) or is_region(text) or text in MARKET_NAMES:
            return
        if tokens[-1].lower() in _CONNECTORS or is_place(tokens[-1]) or is_region(tokens[-1]):
            continue  # "Pacific Biosciences of", "Central Japan": no name ends so
        if all(_descriptive(t) for t in tokens):
            return  # "North American (Construction Group)": only words that describe
        if len(tokens) > 1 or _distinctive(tokens[0]):
            yield tokens


def _descriptive(word: str) -> bool:
    return (_is_everyday(word) or word.lower() in GENERIC_WORDS or word in ACRONYMS or word in DESCRIPTIVE_ADJECTIVES
            or is_place(word) or is_region(word))


def _distinctive(word: str) -> bool:
    return (len(word) >= 4 and word[0].isupper() and not _descriptive(word) and word not in PROPER_NOUNS
            and (word.lower(),) not in LEGAL_SUFFIXES)


def _inner(tokens: tuple[str, ...], possessive: set[str]) -> tuple[int, ...]:
    """Positions of the words before the last that the name writes as possessives ("Victoria's Secret" -> (0,)):
    a text may write them so, where elsewhere a possessive ends a name ("Apple's Cook" is not one name)."""
    return tuple(k for k, t in enumerate(tokens[:-1]) if t in possessive)


def _with_cased(forms: Iterable[tuple[str, ...]]) -> Iterator[tuple[str, ...]]:
    """Each form, then the same with its all-capital words of 4+ letters capitalised ("LYFT Inc" -> "Lyft",
    "ANSYS" -> "Ansys"): a name the company styles in capitals is written in Title Case by most headlines.
    Acronyms stay as they are ("NASA"); a capitalised form that is an everyday word is held to evidence by
    the caller like any other."""
    for tokens in forms:
        yield tokens
        cased = tuple(t.capitalize() if len(t) >= 4 and t.isalpha() and t.isupper() and t not in ACRONYMS else t
                      for t in tokens)
        if cased != tokens:
            yield cased


def _unusable(tokens: tuple[str, ...]) -> bool:
    """Derived names never indexed: too short, a bare legal form or generic word ("SCA", "Bancorp"), or the
    name of a market ("Nasdaq", "Dow")."""
    if " ".join(tokens) in MARKET_NAMES or (tokens[0] in MARKET_NAMES and len(tokens) == 1):
        return True
    if all(t.isdigit() for t in tokens):
        return True  # "111 Inc" -> "111": a number in a text is not that company
    if len(tokens) > 1:
        return False
    word = tokens[0]
    if len(word) < 2 or (len(word) < 3 and not word.isupper()):
        return True  # too short to be a name; two capitals ("BP") or a digit ("3M") are codes
    return (word.lower(),) in LEGAL_SUFFIXES or word.lower() in GENERIC_WORDS


def _written(company: Company, rank: int) -> Iterator[_Candidate]:
    """Names of an entry a person wrote: taken as written (accents folded, '&' as 'and'), none derived."""
    groups = (("name", False, company.names), ("alias", False, company.aliases), ("name", True, company.ambiguous))
    for how, ambiguous, names in groups:
        for name in names:
            if has_cjk(name):
                continue  # indexed by _cjk_candidates
            possessive = {t.text for t in tokenize(name) if t.possessive}
            for tokens in variants(name, derive=False):
                entry = Entry(company.symbol, how, ambiguous, possessive=tokens[-1] in possessive,
                              inner=_inner(tokens, possessive))
                yield _Candidate(tokens, entry, (rank, 0, 0 if how == "name" else 1, company.symbol))


def _candidates(companies: Iterable[Company]) -> Iterator[_Candidate]:
    for company in companies:
        rank = source_rank(company.source)
        yield from (_derived if company.derived else _written)(company, rank)


def cjk_key(name: str) -> str:
    """How a CJK name is indexed and looked for: full-width forms folded, spaces removed."""
    return "".join(fold_width(name).split())


def _cjk_candidates(companies: Iterable[Company]) -> Iterator[tuple[str, Entry, tuple[int, int, int, str]]]:
    """(key, entry, rank) of every name with a CJK character, from any source, taken as written."""
    for company in companies:
        rank = source_rank(company.source)
        groups = (("name", False, company.names), ("alias", False, company.aliases),
                  ("name", True, company.ambiguous))
        for how, ambiguous, names in groups:
            for name in names:
                key = cjk_key(name)
                if has_cjk(key) and len(key) >= 2:  # one character is a word, not a name
                    entry = Entry(company.symbol, how, ambiguous)
                    yield key, entry, (rank, 0, 0 if how == "name" else 1, company.symbol)


def _cjk_index(companies: Iterable[Company]) -> tuple[dict[str, Entry] | None, re.Pattern[str] | None]:
    """CJK names -> entries (the most trusted claim of each, as for token names) and their alternation."""
    best: dict[str, tuple[Entry, tuple[int, int, int, str]]] = {}
    for key, entry, rank in _cjk_candidates(companies):
        seen = best.get(key)
        if seen is None or rank < seen[1]:
            best[key] = (entry, rank)
    if not best:
        return None, None
    ordered = sorted(best, key=lambda k: (-len(k), k))  # an alternation tries in order: longest wins
    return {k: best[k][0] for k in ordered}, re.compile("|".join(re.escape(k) for k in ordered))


def _same(companies: Iterable[Company]) -> dict[str, frozenset[str]]:
    """symbol -> every symbol of the same company (its own included), from each company's `also`."""
    out: dict[str, set[str]] = {}
    for company in companies:
        group = set(company.symbols)
        for symbol in group:
            out.setdefault(symbol, set()).update(group)
    return {s: frozenset(g) for s, g in out.items()}


def _bare(symbols: Iterable[str]) -> frozenset[str]:
    """US symbols a bare upper-case word may stand for: 3+ characters, not an everyday word or acronym."""
    return frozenset(
        s for s in symbols if is_us_symbol(s) and "." not in s and len(s) >= 3 and s not in ACRONYMS
        and not is_english_word(s)
    )


def _unclaimed_short(companies: Iterable[Company], taken: dict[tuple[str, ...], _Candidate]) -> Iterator[_Candidate]:
    """Short forms that no other name is, each to the company whose name it cuts least, when that company is
    one: "Marriott" is Marriott International's (one word cut), not Marriott Vacations Worldwide's (two)."""
    claims: dict[tuple[str, ...], list[_Candidate]] = {}
    for company in companies:
        if company.derived:
            for cand in _short(company, source_rank(company.source)):
                claims.setdefault(cand.tokens, []).append(cand)
    for tokens, cands in claims.items():
        fewest = min(c.rank[0] for c in cands)  # words cut: "Marriott" is Marriott International's, not
        closest = [c for c in cands if c.rank[0] == fewest]  # Marriott Vacations Worldwide's
        if tokens not in taken and len({c.entry.symbol for c in closest}) == 1:
            yield min(closest, key=lambda c: c.rank)


def build_index(companies: Iterable[Company]) -> NameIndex:
    """Index the companies' names (see the module docstring for who wins a name two companies claim)."""
    companies = tuple(companies)
    best: dict[tuple[str, ...], _Candidate] = {}
    for cand in _candidates(companies):
        seen = best.get(cand.tokens)
        if seen is None or cand.rank < seen.rank:
            best[cand.tokens] = cand
    best.update({c.tokens: c for c in _unclaimed_short(companies, best)})
    by_first: dict[str, list[tuple[tuple[str, ...], Entry]]] = {}
    for tokens in sorted(best, key=lambda t: (-len(t), t)):
        by_first.setdefault(tokens[0], []).append((tokens, best[tokens].entry))
    same = _same(companies)
    primary = {c.symbol for c in companies}
    cjk, cjk_pattern = _cjk_index(companies)
    return NameIndex(
        by_first={k: tuple(v) for k, v in by_first.items()},
        same=same,
        known=frozenset(same),
        bare=_bare(c.symbol for c in companies if c.source not in NAMES_ONLY_SOURCES),
        companies=len(primary),
        cjk=cjk,
        cjk_pattern=cjk_pattern,
    )
