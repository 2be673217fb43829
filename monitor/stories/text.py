"""Text normalisation and shingling for near-duplicate detection (pure: no I/O).

What two copies of one story differ in, and is therefore removed before comparing them:

- a retweet's `RT @user:` prefix (also chained, `RT @a: RT @b:`), other @mentions and `via @user`;
- URLs: every copy carries its own shortened link (t.co), and truncated retweets end in a cut `http…`;
- the word cut by a truncation ellipsis at the end of a retweet (`#GROUPONM…`): dropped with the ellipsis;
- case, Unicode compatibility forms (NFKC), punctuation and the `$`/`#` sigils: `$AAPL`, `#AAPL` and `AAPL`
  are the same word, so a wire headline with a cashtag matches a syndicated copy without one.

What is kept, because it tells distinct stories apart:

- every word, stop words too (headlines are short: dropping words makes unrelated headlines collide);
- numbers, with their decimal point and without thousands separators (`1,200` -> `1200`, `2.5` stays
  `2.5`): "raises guidance to $2.10" and "cuts guidance to $1.80" are different stories;
- ticker words; the cashtags are also returned apart (`Normalized.tickers`), because templated posts
  ("$CSCO received a new alert ...", "$MSFT received a new alert ...") differ in nothing else and are not
  one story: monitor/stories/book.py never joins two items whose tickers are disjoint.

Shingles are word unigrams and bigrams (see the package docstring for the measurements behind the choice),
as stable 32-bit hashes (zlib.crc32: the same in every process and Python version, unlike `hash()`). A text
of fewer than MIN_WORDS words is one shingle, the whole text: two words in common are no evidence of one
story ("WEST SIDE" vs "WEST MIAMI"), so such texts join only an identical text.

Chinese and Japanese put no spaces between words, so a headline would be one or two "words". A text whose
letters are mostly Han or kana (CJK_SHARE) is cut into units instead: each CJK character, each number and
each Latin word is one unit, and the shingles are unit bigrams and trigrams (a Chinese word is one to three
characters, so a character bigram plays the word unigram's part and a trigram the bigram's). CJK
punctuation (。、《》「」) separates units like ASCII punctuation does. Fewer than MIN_CJK_UNITS units are
compared whole, and at most MAX_CJK_UNITS units are used: about the shingle count of MAX_CHARS of English
(2000 characters ~ 330 words ~ 660 shingles; 400 units ~ 800 shingles), and a Chinese character carries about
what two to three English letters do, so it is also about the same share of an article. A text that is not
mostly CJK is normalised and shingled exactly as before CJK support.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
import zlib
from dataclasses import dataclass

import numpy as np

from monitor.cjk import CJK_RANGES, cjk_share, has_cjk

MAX_CHARS = 2000  # only the start of a long body is compared: cost bounded, a copy's head is its identity
MIN_WORDS = 4  # shorter texts are compared whole: they join only an identical text
CJK_SHARE = 0.5  # share of Han/kana among the letters from which a text is shingled by characters
MIN_CJK_UNITS = 6
MAX_CJK_UNITS = 400

_RT = re.compile(r"^(?:\s*rt\s*@\w+\s*:?\s*)+", re.IGNORECASE)
_URL = re.compile(r"(?:https?://|www\.)\S*", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\w)(?:via\s+)?@\w+", re.IGNORECASE)
_TRUNCATED_TAIL = re.compile(r"\S*…\s*$")
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,5}(?:[.-][A-Za-z]{1,2})?)(?![\w])")
_NUMBER_SEP = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TOKEN = re.compile(r"\d+(?:\.\d+)*|[^\W_]+")
# Units of a mostly-CJK text: one CJK character, a number, or a run of other word characters.
_CJK_UNIT = re.compile(rf"\d+(?:\.\d+)*|[{CJK_RANGES}]|[^\W_{CJK_RANGES}]+")


@dataclass(frozen=True, slots=True)
class Normalized:
    """A text reduced to what copies of one story share: its words, and which of them are tickers."""

    words: tuple[str, ...]
    tickers: tuple[str, ...]
    cjk: bool = False  # mostly Chinese/Japanese: `words` are CJK characters, numbers and Latin words


def normalize(text: str, max_chars: int = MAX_CHARS) -> Normalized:
    """Words of `text` with the copy-specific parts removed (see the module docstring)."""
    text = _TRUNCATED_TAIL.sub("", text[: max_chars * 2])  # before NFKC, which turns "…" into "..."
    text = unicodedata.normalize("NFKC", text)[:max_chars]
    text = _RT.sub("", text)
    text = _URL.sub(" ", text)
    text = _MENTION.sub(" ", text)
    tickers = tuple(dict.fromkeys(m.group(1).casefold().replace("-", ".") for m in _CASHTAG.finditer(text)))
    text = _NUMBER_SEP.sub("", text).casefold()
    if has_cjk(text) and cjk_share(text) >= CJK_SHARE:
        units = [u for u in _CJK_UNIT.findall(text) if not _is_cjk_mark(u)]
        return Normalized(tuple(units[:MAX_CJK_UNITS]), tickers, cjk=True)
    return Normalized(tuple(_TOKEN.findall(text)), tickers)


def _is_cjk_mark(unit: str) -> bool:
    """CJK punctuation and symbols (U+3000-U+303F: 。、「」《》...) separate units, they are none."""
    return len(unit) == 1 and "\u3000" <= unit <= "\u303f"


def shingle_texts(norm: Normalized) -> list[str]:
    """The shingles of a normalised text, as strings (for tests and inspection)."""
    words = norm.words
    if norm.cjk:
        return _cjk_shingles(words)
    if len(words) < MIN_WORDS:
        return ["=" + " ".join(words)] if words else []
    out = list(dict.fromkeys(words))
    out += list(dict.fromkeys(f"{a} {b}" for a, b in itertools.pairwise(words)))
    return out


def _cjk_shingles(units: tuple[str, ...]) -> list[str]:
    """Unit bigrams and trigrams of a mostly-CJK text (the whole text when it is short)."""
    if len(units) < MIN_CJK_UNITS:
        return ["=" + " ".join(units)] if units else []
    grams = (" ".join(g) for n in (2, 3) for g in zip(*(units[k:] for k in range(n)), strict=False))
    return list(dict.fromkeys(grams))


def shingle_hashes(norm: Normalized) -> np.ndarray:
    """The distinct shingles of a normalised text as stable uint32 hashes (empty for a text with no words)."""
    hashes = {zlib.crc32(s.encode("utf-8")) for s in shingle_texts(norm)}
    return np.fromiter(hashes, dtype=np.uint64, count=len(hashes))
