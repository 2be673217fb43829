"""Relevance 0-100 of a linked ticker: how much the item is about that company.

For each symbol with mentions m_1..m_k in an item naming n distinct symbols, c of them by cashtag:

    best      = max over mentions of  weight(kind) x place(mention)
    score     = min(1, best + min(0.15, 0.05 x (k - 1)))          # repeated mentions add a little
    dilution  = 1 / (1 + 0.1 x (n - 1) ** 1.5)                     # 1: 1.00, 2: 0.91, 3: 0.78, 5: 0.56, 8: 0.35
    spam      = 0.5 if c >= 5 else 1                               # a list of cashtags is not news about each
    relevance = round(100 x score x dilution x spam)

weight(kind): cashtag, exchange prefix and feed ticker 1.0; suffixed code (SAP.DE) 0.95; ticker in
parentheses after a name 0.9; name 0.9; alias 0.8; everyday-word name with evidence 0.75; bare ticker 0.6.
place: in the title 1.0 at its first character down to 0.85 at its last; only in the body 0.6 down to 0.4;
a feed ticker 0.95 (the feed says the item is about it, not where).

So one company named at the start of a title scores 90, the second of two names in a title about 75-80, a
company named only early in the body 54 (late in the body 36: below the default threshold of 40), a bare
ticker 60 in a title and 36 in a body, and each of eight listed cashtags 17. The formula is a pure function
of the mentions: the same item always gets the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.entities.mentions import Mention

WEIGHTS = {
    "cashtag": 1.0, "exchange": 1.0, "feed": 1.0, "code": 0.95, "paren": 0.9, "name": 0.9, "alias": 0.8,
    "bare": 0.6,
}
EVIDENCED_WEIGHT = 0.75  # an everyday-word name ("Target") kept because of evidence
FEED_PLACE = 0.95
SPAM_CASHTAGS = 5
# Link.how of each mention kind: a ticker in parentheses or a bare ticker is a code written in the text.
HOW = {"paren": "code", "bare": "code"}
# Which kind names the link when two mentions score the same (strongest first).
_KIND_ORDER = ("cashtag", "exchange", "feed", "code", "paren", "name", "alias", "bare")


def place(mention: Mention) -> float:
    """Where the mention is: title beats body, earlier beats later."""
    if mention.kind == "feed":
        return FEED_PLACE
    frac = min(mention.start / mention.length, 1.0)
    return 1.0 - 0.15 * frac if mention.field == "title" else 0.6 - 0.2 * frac


def strength(mention: Mention) -> float:
    weight = EVIDENCED_WEIGHT if mention.ambiguous else WEIGHTS[mention.kind]
    return weight * place(mention)


def dilution(n_symbols: int) -> float:
    return 1.0 / (1.0 + 0.1 * max(n_symbols - 1, 0) ** 1.5)


def relevance(mentions: Sequence[Mention], n_symbols: int, n_cashtags: int) -> tuple[int, str]:
    """(relevance 0-100, how) of one symbol from its mentions; `how` is the kind of the strongest mention."""
    ranked = sorted(mentions, key=lambda m: (-strength(m), _KIND_ORDER.index(m.kind)))
    score = min(1.0, strength(ranked[0]) + min(0.15, 0.05 * (len(mentions) - 1)))
    spam = 0.5 if n_cashtags >= SPAM_CASHTAGS else 1.0
    value = round(100 * score * dilution(n_symbols) * spam)
    return max(0, min(100, value)), HOW.get(ranked[0].kind, ranked[0].kind)
