"""`Linker`: title, body and feed tickers in, `Link(symbol, relevance, how)` out, most relevant first.

Steps for one item:
1. mentions of each field (mentions.py) and the feed's tickers;
2. a name of a company that the item also writes as a symbol joins that symbol ("Alphabet (NASDAQ: GOOG)"
   is GOOG once, not GOOGL plus GOOG);
3. an everyday-word name ("Target") stays only with evidence next to it or another mention of the same
   company in the item; a bare "F", "COST" or "NOW" never links by itself (see mentions.py);
4. one relevance per symbol (relevance.py), sorted by relevance, then symbol.

The name index is built once per configuration and kept in-process (`_index_for`), so building a Linker a
second time costs a dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from monitor.config import DEFAULT_MIN_RELEVANCE, Settings
from monitor.entities.company import Company
from monitor.entities.errors import WatchlistError
from monitor.entities.index import NameIndex, build_index
from monitor.entities.listed import listed_companies, new_companies
from monitor.entities.mentions import Mention, field_mentions
from monitor.entities.relevance import relevance
from monitor.entities.symbols import normalize_symbol
from monitor.entities.universe import package_companies, shipped_companies
from monitor.entities.watchlist import SYMBOL_FORM, load_watchlist, names_to_companies, parse_name_map

DEFAULT_RELEVANCE_THRESHOLD = DEFAULT_MIN_RELEVANCE
_NAMES = ("name", "alias")


@dataclass(frozen=True, slots=True)
class Link:
    """One ticker an item is about: symbol in Yahoo form, relevance 0-100, and how it was linked
    ("cashtag", "exchange", "code", "feed", "name" or "alias")."""

    symbol: str
    relevance: int
    how: str


class Linker:
    """Links items to tickers with a relevance; deterministic and safe to share between threads."""

    def __init__(self, index: NameIndex, min_relevance: int = DEFAULT_RELEVANCE_THRESHOLD) -> None:
        self.index = index
        self.min_relevance = min_relevance

    @classmethod
    def from_settings(cls, cfg: Settings) -> Linker:
        """The shipped universe plus the user's watchlist (`entities.watchlist_file`) and company names
        (`windows.companies_file`, `windows.companies`); `entities.min_relevance` is the threshold."""
        key = _Config(
            universe=cfg.entities.universe,
            listed=cfg.entities.universe and cfg.entities.listed,
            watchlist=_file_key(cfg.entities.watchlist_file),
            companies_file=_file_key(cfg.windows.companies_file),
            companies=tuple(sorted(cfg.windows.companies.items())),
        )
        return cls(_index_for(key), cfg.entities.min_relevance)

    @classmethod
    def from_companies(cls, companies: Iterable[Company], universe: bool = True) -> Linker:
        """A linker over `companies` (most trusted first), plus the shipped universe when `universe`."""
        trusted = (*companies, *shipped_companies(), *package_companies()) if universe else tuple(companies)
        return cls(build_index((*trusted, *new_companies(listed_companies(), trusted)) if universe else trusted))

    def link(self, title: str, body: str = "", tickers: Sequence[str] = ()) -> tuple[Link, ...]:
        """Every ticker the item is about, most relevant first (then by symbol)."""
        mentions = field_mentions(title or "", "title", self.index)
        if body:
            mentions += field_mentions(body, "body", self.index)
        mentions += _feed(tickers)
        kept = self._resolve(mentions)
        groups: dict[str, list[Mention]] = {}
        for mention in kept:
            groups.setdefault(mention.symbol, []).append(mention)
        n_cashtags = len({m.symbol for m in kept if m.kind == "cashtag"})
        links = [Link(symbol, *relevance(ms, len(groups), n_cashtags)) for symbol, ms in groups.items()]
        return tuple(sorted(links, key=lambda x: (-x.relevance, x.symbol)))

    def relevant(self, title: str, body: str = "", tickers: Sequence[str] = ()) -> tuple[Link, ...]:
        """`link`, keeping only links at or above this linker's threshold."""
        return tuple(x for x in self.link(title, body, tickers) if x.relevance >= self.min_relevance)

    def _resolve(self, mentions: list[Mention]) -> list[Mention]:
        """Join names to symbols written in the same item; drop unconfirmed everyday-word names."""
        written = list(dict.fromkeys(m.symbol for m in mentions if m.kind not in _NAMES))
        joined = [_with_symbol(m, self._target(m.symbol, written)) if m.kind in _NAMES else m for m in mentions]
        confirmed = {m.symbol for m in joined if not m.ambiguous or m.evidence}
        return [m for m in joined if not m.ambiguous or m.symbol in confirmed]

    def _target(self, symbol: str, written: list[str]) -> str:
        same = self.index.same.get(symbol)
        if same is None or symbol in written:
            return symbol
        return next((w for w in written if w in same), symbol)


def _with_symbol(mention: Mention, symbol: str) -> Mention:
    if symbol == mention.symbol:
        return mention
    return Mention(symbol, mention.kind, mention.field, mention.start, mention.end, mention.length,
                   mention.ambiguous, mention.evidence)


def _feed(tickers: Sequence[str]) -> list[Mention]:
    symbols = (normalize_symbol(str(t)) for t in tickers if str(t).strip())
    return [Mention(s, "feed", "feed", 0, 0, 1) for s in dict.fromkeys(symbols) if SYMBOL_FORM.match(s)]


@dataclass(frozen=True, slots=True)
class _Config:
    """What an index depends on; files by path, modification time and size, so an edited file is reread."""

    universe: bool
    listed: bool
    watchlist: tuple[str, int, int] | None
    companies_file: tuple[str, int, int] | None
    companies: tuple[tuple[str, str], ...]


def _file_key(path: Path | None) -> tuple[str, int, int] | None:
    if path is None:
        return None
    try:
        stat = Path(path).stat()
    except OSError:
        return (str(path), -1, -1)  # loading it raises the error with its fix
    return (str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _index_for(config: _Config) -> NameIndex:
    companies: list[Company] = []
    if config.watchlist is not None:
        companies += load_watchlist(config.watchlist[0])
    companies += names_to_companies(dict(config.companies), "windows.companies", "settings")
    if config.companies_file is not None:
        path = Path(config.companies_file[0])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise WatchlistError(f"companies file {path} cannot be read ({exc.strerror or exc}); "
                                 "fix windows.companies_file") from exc
        companies += parse_name_map(text, str(path), "companies_file")
    companies += shipped_companies()
    if config.universe:
        companies += package_companies()
    if config.listed:
        companies += new_companies(listed_companies(), companies)  # last: the least trusted source
    return build_index(companies)


def clear_cache() -> None:
    """Forget every built index (benchmarks measure a cold build; tests edit files in place)."""
    _index_for.cache_clear()
    package_companies.cache_clear()
    listed_companies.cache_clear()
    shipped_companies.cache_clear()
