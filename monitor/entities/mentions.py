"""Mentions of companies in one text field (title or body): written symbols, names, bare tickers.

Order of precedence, so one stretch of text is one mention: written symbols first (`$AAPL`, `NYSE: F`,
`SAP.DE`; symbols.py), then names, longest first ("Meta Platforms" before "Meta"), then a ticker in
parentheses after a name ("Target (TGT)"), then bare upper-case tickers.

A name is dropped when a neighbour says it is something else (lexicon.NEGATIVE_AFTER / NEGATIVE_BEFORE:
"Apple pie", "the Amazon rainforest"). An ambiguous name (an everyday word such as "Target") is kept with
`evidence` when a neighbour confirms a company ("Target shares", "retailer Target", "Target's", "shares of
Target"); without it the linker keeps it only if the item names the company some other way.

Names in CJK characters (贵州茅台) are found as substrings of the field (Chinese has no spaces), longest
first, after written symbols and before the token names; an `ambiguous` one needs a Chinese neighbour that
confirms a company (lexicon.CJK_EVIDENCE_AFTER / _BEFORE: "平安股价", "旗下平安") or another mention of the same
company. A six-digit code in parentheses, "贵州茅台（600519）", is a mainland listing when the index knows it
(60xxxx / 68xxxx Shanghai, 00xxxx / 30xxxx Shenzhen). Full-width forms (（６００５１９），Ａｐｐｌｅ) are folded
to ASCII first, character for character, so positions stay those of the original text.

Bare tickers: an upper-case word links only if it is a known US symbol of 3+ characters that is neither an
everyday word (COST, NOW, ALL, KEY) nor an acronym (CEO, ETF, AI), and never in an all-caps text, where every
word looks like a ticker. They are weak evidence (a two-letter "GE" or "MS" is left to names and cashtags),
so the relevance formula weighs them lowest: one in a title passes the default threshold, one in a body
does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from itertools import pairwise

from monitor.cjk import fold_width, has_cjk
from monitor.entities.index import Entry, NameIndex
from monitor.entities.lexicon import (
    CJK_EVIDENCE_AFTER,
    CJK_EVIDENCE_BEFORE,
    CJK_LIST_MARKS,
    EVIDENCE_AFTER,
    EVIDENCE_BEFORE,
    EVIDENCE_BEFORE_PAIRS,
    GENERIC_WORDS,
    NEGATIVE_AFTER,
    NEGATIVE_BEFORE,
    region_after,
)
from monitor.entities.names import Token, tokenize
from monitor.entities.sources import OUTLET_WORDS, cited_spans
from monitor.entities.symbols import PAREN_TICKER, explicit_symbols

_GAP = re.compile(r"[\s,.&/\-–]{1,4}")  # what may separate the words of one name: "Clearway Energy, Inc."
_BARE = re.compile(r"[A-Z][A-Z0-9]{2,5}")
_LISTED = re.compile(rf"\s*(?:,|&|/|\band\b|\bor\b|\bvs\.?|\bversus\b|[{CJK_LIST_MARKS}])\s*|-")
_PAREN_A_SHARE = re.compile(r"\((\d{6})\)")
_A_SHARE_MARKET = {"60": ".SH", "68": ".SH", "00": ".SZ", "30": ".SZ"}


@dataclass(frozen=True, slots=True)
class Mention:
    """One mention of `symbol` in a field. `kind`: cashtag, exchange, code, paren, bare, name, alias, feed.
    `start`/`length` place it in its field (for the position part of relevance); `ambiguous` mentions need
    `evidence` or another mention of the same company."""

    symbol: str
    kind: str
    field: str
    start: int
    end: int
    length: int
    ambiguous: bool = False
    evidence: bool = False


@dataclass(frozen=True, slots=True)
class _Style:
    title_case: bool
    all_caps: bool


def _style(tokens: list[Token]) -> _Style:
    """Title Case Headline or ALL CAPS? Judged on the words of 4+ letters after the first."""
    words = [t.text for t in tokens[1:] if t.text.isalpha() and len(t.text) >= 4]
    if len(words) < 3:
        return _Style(False, False)
    caps = sum(w[0].isupper() for w in words) / len(words)
    upper = sum(w.isupper() for w in words) / len(words)
    return _Style(caps >= 0.7, upper >= 0.7)


def _match(tokens: list[Token], i: int, text: str, index: NameIndex) -> tuple[int, Entry] | None:
    """The longest indexed name starting at token i: (number of tokens, entry)."""
    for names, entry in index.by_first.get(tokens[i].text, ()):
        n = len(names)
        if i + n > len(tokens):
            continue
        window = tokens[i : i + n]
        if (
            all(t.text == w for t, w in zip(window, names, strict=True))
            and all(_GAP.fullmatch(text[a.end : b.start]) for a, b in pairwise(window))
            and (n == 1 or not any(t.possessive and k not in entry.inner for k, t in enumerate(window[:-1])))
            and (window[-1].possessive or not entry.possessive)
        ):
            return n, entry
    return None


def _negative(tokens: list[Token], i: int, j: int, style: _Style, text: str) -> bool:
    """A neighbour that makes the name something else: "Apple pie", "the Big Apple", a town's state ("Hershey,
    Pennsylvania"), and in sentence case a one-word name followed by a capitalised generic word: "Meta
    Financial" is another company."""
    nxt = tokens[j] if j < len(tokens) and not tokens[j - 1].possessive else None
    after = nxt.text.lower() if nxt is not None else ""
    before = tokens[i - 1].text if i > 0 else ""
    if after in NEGATIVE_AFTER or before in NEGATIVE_BEFORE:
        return True
    end = tokens[j - 1].end
    if j - i == 1 and text.startswith(",", end) and region_after().match(text, end):
        return True
    longer = nxt is not None and j - i == 1 and nxt.text[0].isupper() and after in GENERIC_WORDS
    return longer and not style.title_case


def _not_alone(tokens: list[Token], i: int, n: int, style: _Style, text: str) -> bool:
    """A held name that is part of something else: the tail of a longer proper noun, or a one-word name right
    after a possessive, which introduces a person ("SAC's Cohen", "Fed's Williams")."""
    if n == 1 and i > 0 and tokens[i - 1].possessive:
        return True
    # Only words next to each other make one name: "Western Digital, Seagate" lists two companies.
    joined_before = i > 0 and text[tokens[i - 1].end : tokens[i].start].isspace()
    joined_after = i + n < len(tokens) and text[tokens[i + n - 1].end : tokens[i + n].start].isspace()
    return ((joined_before and _inside_longer_name(tokens, i, style))
            or (n == 1 and joined_after and _before_longer_name(tokens, i + 1, style)))


def _before_longer_name(tokens: list[Token], j: int, style: _Style) -> bool:
    """In sentence case, a held one-word name followed by a capitalised word (not an acronym, not a word such
    as "Shares" that confirms a company) is the head of a longer proper noun: "Boyd Thermal" is not Boyd Gaming."""
    if style.title_case or j >= len(tokens) or tokens[j - 1].possessive:
        return False
    word = tokens[j].text
    return word[0].isupper() and not word.isupper() and word.lower() not in EVIDENCE_AFTER


def _inside_longer_name(tokens: list[Token], i: int, style: _Style) -> bool:
    """In sentence case, an everyday-word name right after a capitalised word is the tail of a longer proper
    noun: "the Swiss National Bank" is not National Bank Holdings."""
    if style.title_case or i == 0:
        return False
    before = tokens[i - 1]
    return before.text[0].isupper() and not before.possessive and before.text not in ("The", "A", "An")


def _evidence(tokens: list[Token], i: int, j: int) -> bool:
    if tokens[j - 1].possessive:
        return True
    after = tokens[j].text.lower() if j < len(tokens) else ""
    before = tokens[i - 1].text.lower() if i > 0 else ""
    before2 = tokens[i - 2].text.lower() if i > 1 else ""
    return after in EVIDENCE_AFTER or before in EVIDENCE_BEFORE or (before2, before) in EVIDENCE_BEFORE_PAIRS


def field_mentions(text: str, field: str, index: NameIndex) -> list[Mention]:
    """Every mention in one field, in order of position."""
    text = fold_width(text)
    length = max(len(text), 1)
    cjk_text = has_cjk(text)
    found = [Mention(m.symbol, m.how, field, m.start, m.end, length) for m in explicit_symbols(text, cjk_text)]
    taken = [(m.start, m.end) for m in found]
    parens = [p for p in PAREN_TICKER.finditer(text) if p.group(1) in index.known and _free(p.span(), taken)]
    taken += [p.span() for p in parens]
    cjk = _cjk_names(text, field, index, taken) if cjk_text else []
    taken += [(m.start, m.end) for m in cjk]
    found += _a_share_parens(text, field, index, taken)
    tokens = tokenize(text, cjk_text)
    if taken:
        tokens = [t for t in tokens if _free((t.start, t.end), taken)]
    style = _style(tokens)
    names: list[Mention] = []
    i = 0
    while i < len(tokens):
        hit = _match(tokens, i, text, index)
        if hit is None:
            found.extend(_bare(tokens[i], field, length, style, index))
            i += 1
            continue
        n, entry = hit
        held = entry.common and _not_alone(tokens, i, n, style, text)
        if not held and not _negative(tokens, i, i + n, style, text):
            ambiguous = entry.ambiguous or (entry.common and style.title_case)
            names.append(Mention(entry.symbol, entry.how, field, tokens[i].start, tokens[i + n - 1].end, length,
                                 ambiguous, ambiguous and _evidence(tokens, i, i + n)))
        i += n
    names = _co_mentioned(sorted(_uncited(names, text, tokens) + cjk, key=lambda m: m.start), text)
    found += names + [m for p in parens if (m := _parenthesised(p, text, field, names, index)) is not None]
    return sorted(found, key=lambda m: (m.start, m.symbol))


def _uncited(names: list[Mention], text: str, tokens: list[Token]) -> list[Mention]:
    """Names that are not a news outlet cited as the source ("..., Reuters reports"; sources.py)."""
    if not names or OUTLET_WORDS.isdisjoint(t.text for t in tokens):
        return names  # no outlet's word in the text: nothing to look for
    spans = cited_spans(text)
    return [m for m in names if not any(a <= m.start and m.end <= b for a, b in spans)] if spans else names


def _cjk_names(text: str, field: str, index: NameIndex, taken: list[tuple[int, int]]) -> list[Mention]:
    """CJK names as substrings, longest first at each place (one alternation, see index.py)."""
    if index.cjk_pattern is None or index.cjk is None:
        return []
    out = []
    for match in index.cjk_pattern.finditer(text):
        if not _free(match.span(), taken):
            continue
        entry = index.cjk[match.group(0)]
        evidence = entry.ambiguous and _cjk_evidence(text, match.start(), match.end())
        out.append(Mention(entry.symbol, entry.how, field, match.start(), match.end(), max(len(text), 1),
                           entry.ambiguous, evidence))
    return out


def _cjk_evidence(text: str, start: int, end: int) -> bool:
    after = text[end : end + 4].lstrip()
    before = text[max(0, start - 4) : start].rstrip()
    return after.startswith(CJK_EVIDENCE_AFTER) or before.endswith(CJK_EVIDENCE_BEFORE) or after.startswith("(")


def _a_share_parens(text: str, field: str, index: NameIndex, taken: list[tuple[int, int]]) -> list[Mention]:
    """'贵州茅台(600519)': a six-digit code in parentheses, when it is a mainland listing the index knows."""
    out = []
    for match in _PAREN_A_SHARE.finditer(text):
        suffix = _A_SHARE_MARKET.get(match.group(1)[:2])
        symbol = match.group(1) + suffix if suffix else ""
        if symbol in index.known and _free(match.span(), taken):
            out.append(Mention(symbol, "paren", field, match.start(), match.end(), max(len(text), 1)))
    return out


def _co_mentioned(names: list[Mention], text: str) -> list[Mention]:
    """An everyday-word name listed with a company is one too: "Visa and Mastercard", "Walmart, Target"."""
    out = list(names)
    for k, mention in enumerate(names):
        if not mention.ambiguous or mention.evidence:
            continue
        neighbours = [(names[k - 1], mention)] if k > 0 else []
        neighbours += [(mention, names[k + 1])] if k + 1 < len(names) else []
        for left, right in neighbours:
            other = right if left is mention else left
            if (not other.ambiguous or other.evidence) and _LISTED.fullmatch(text[left.end : right.start]):
                out[k] = replace(mention, evidence=True)
    return out


def _free(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return all(span[1] <= a or span[0] >= b for a, b in taken)


def _bare(token: Token, field: str, length: int, style: _Style, index: NameIndex) -> list[Mention]:
    if style.all_caps or token.text not in index.bare or not _BARE.fullmatch(token.text):
        return []
    return [Mention(token.text, "bare", field, token.start, token.end, length)]


def _parenthesised(paren: re.Match[str], text: str, field: str, names: list[Mention],
                   index: NameIndex) -> Mention | None:
    """'Target (TGT)', 'Ford Motor (F)': a known symbol in parentheses. One that could be a word or an
    initial ('(F)', '(COST)') counts only right after a name of the same company."""
    symbol = paren.group(1)
    mention = Mention(symbol, "paren", field, paren.start(), paren.end(), max(len(text), 1))
    if symbol in index.bare:
        return mention
    before = [m for m in names if m.end <= paren.start() and not text[m.end : paren.start()].strip()]
    if before and symbol in index.same.get(before[-1].symbol, frozenset({before[-1].symbol})):
        return mention
    return None
