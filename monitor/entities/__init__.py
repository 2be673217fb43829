"""Entity linking: which companies a news item is about, and how much (relevance 0-100).

    linker = Linker.from_settings(settings)
    linker.link("Apple shares slide as iPhone sales disappoint")   # (Link('AAPL', 90, 'name'),)

- `universe`, `watchlist`: the known companies (pytickersymbols, the shipped lists, the user's watchlist);
- `names`, `index`: names as token tuples, aliases derived from official names, the name index;
- `symbols`: cashtags, exchange prefixes (NYSE: F), suffixed codes (SAP.DE), symbol normal form;
- `mentions`: mentions in one field, with the traps (everyday words, "Apple pie", bare tickers);
- `relevance`: the 0-100 formula; `linker`: the `Linker` and its `Link` records.

Pure: no Kafka, no store, no network (import-linter contract "pure-decisions").
"""

from monitor.entities.errors import EntityError, WatchlistError
from monitor.entities.linker import DEFAULT_RELEVANCE_THRESHOLD, Link, Linker, clear_cache

__all__ = ["DEFAULT_RELEVANCE_THRESHOLD", "EntityError", "Link", "Linker", "WatchlistError", "clear_cache"]
