"""The record of one known company, shared by the universe, watchlist files and the name index."""

from __future__ import annotations

from dataclasses import dataclass

# Sources, most trusted first: a name claimed by two companies goes to the one from the earlier source.
SOURCES = ("watchlist", "settings", "companies_file", "entities.yaml", "companies.yaml", "pytickersymbols", "listed")
# Sources whose symbols never link as a bare upper-case word: too broad a list has a symbol for most
# abbreviations a headline uses (listed.py); their companies link by name, cashtag or exchange prefix.
NAMES_ONLY_SOURCES = frozenset({"listed"})
_RANK = {source: i for i, source in enumerate(SOURCES)}


def source_rank(source: str) -> int:
    """A source's place in SOURCES (lower: more trusted); an unknown source comes last."""
    return _RANK.get(source, len(SOURCES))


@dataclass(frozen=True, slots=True)
class Company:
    """One company: its symbol, what it is called and which other symbols are the same company.

    `names` link as how="name", `aliases` as how="alias"; `ambiguous` names are everyday words that need
    evidence ("Target" needs "Target shares", a cashtag or the full name). `derived` says whether aliases are
    to be derived from the names (legal forms cut) and checked against the English word list: true for the
    package's official names, false for entries a person wrote.
    """

    symbol: str
    names: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    ambiguous: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    source: str = "pytickersymbols"
    derived: bool = False

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset((self.symbol, *self.also))
