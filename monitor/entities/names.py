"""Company names as token sequences: the tokenizer shared by names and texts, and the aliases derived from
official names ("Apple Inc." -> "Apple", "Telefónica, S.A." -> "Telefónica", "Telefonica").

Names and texts go through the same tokenizer, so matching is a lookup of token tuples, case-sensitive like
`monitor/windows/keys.py` ("Apple" the company, "apple" the fruit). Hyphens separate tokens ("Apple-Google
deal" names both; "Coca-Cola" matches "Coca Cola"); `&`, `.` and apostrophes inside a word keep it whole (AT&T,
E.ON, L'Oréal); a trailing possessive is cut off and remembered ("Apple's" is "Apple", plus evidence that it is
a proper noun).

CJK characters are not part of any token: Chinese and Japanese put no spaces between words, so "Apple发布新品"
is the token "Apple", and names written in CJK (贵州茅台) are matched as substrings instead (index.py,
mentions.py). For text without CJK characters the tokens are the same as before CJK support.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from monitor.cjk import WORD, has_cjk

_TOKEN = re.compile(r"\w+(?:[&'’.]\w+)*")
_CJK_TOKEN = re.compile(rf"{WORD}+(?:[&'’.]{WORD}+)*")  # the same where \w would swallow CJK characters
_POSSESSIVE = re.compile(r"['’]s$")
_PARENS = re.compile(r"\s*\([^)]*\)")
# Legal forms and share classes cut off the end of an official name, repeatedly ("Alphabet Inc. Class A",
# "Mitsubishi UFJ Financial Group, Inc."). Matched on tokens, case-insensitively.
_LEGAL_FORMS = (
        "inc", "incorporated", "corp", "corporation", "co", "company", "companies", "cos", "ltd", "limited",
        "plc", "llc", "lp", "l.p", "ag", "se", "sa", "s.a", "nv", "n.v", "bv", "b.v", "spa", "s.p.a", "sca",
        "s.c.a", "asa", "ab", "a/s", "as", "oyj", "oy", "kgaa", "gmbh", "co kgaa", "ag co kgaa", "se co kgaa",
        "holding", "holdings", "hldgs", "group", "class a", "class b", "class c", "reit", "k.k", "kk", "tbk",
        "bhd", "berhad", "pjsc", "jsc", "series a", "adr", "ads", "and",  # "and": what "& Co." leaves
)


@dataclass(frozen=True, slots=True)
class Token:
    """One word of a text: its normalised form, where it starts and ends, and whether it was possessive."""

    text: str
    start: int
    end: int
    possessive: bool = False


def tokenize(text: str, cjk: bool | None = None) -> list[Token]:
    """Words of `text` with their character spans; curly apostrophes become straight ones. `cjk`: whether the
    text has CJK characters, when the caller knows (else it is looked up)."""
    out = []
    for match in (_CJK_TOKEN if (has_cjk(text) if cjk is None else cjk) else _TOKEN).finditer(text):
        word = match.group(0).replace("’", "'")
        bare = _POSSESSIVE.sub("", word)
        out.append(Token(bare or word, match.start(), match.end(), bare != word and bool(bare)))
    return out


def name_tokens(name: str) -> tuple[str, ...]:
    """The token tuple a name is indexed under (the same tokenizer as texts, so both sides agree)."""
    return tuple(t.text for t in tokenize(name))


# Tokenized like names, so "a/s" is ("a", "s") and "s.a." is ("s.a",).
LEGAL_SUFFIXES: frozenset[tuple[str, ...]] = frozenset(tuple(t.lower() for t in name_tokens(s)) for s in _LEGAL_FORMS)
_MAX_SUFFIX = max(len(s) for s in LEGAL_SUFFIXES)


def fold_ascii(text: str) -> str:
    """'Telefónica' -> 'Telefonica', 'Nestlé' -> 'Nestle': headlines often drop the accents."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def strip_legal(tokens: tuple[str, ...]) -> tuple[str, ...]:
    """Cut legal forms, share classes and a leading 'The' off a name: ('Apple', 'Inc') -> ('Apple',)."""
    out = tokens
    changed = True
    while changed and out:
        changed = False
        for n in range(min(_MAX_SUFFIX, len(out) - 1), 0, -1):
            if tuple(t.lower() for t in out[-n:]) in LEGAL_SUFFIXES:
                out, changed = out[:-n], True
                break
    if len(out) > 1 and out[0].lower() == "the":
        out = out[1:]
    return out


def legal_stages(tokens: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """The name, then each name left by cutting one more legal form off its end, down to `strip_legal`'s:
    ("Celsius", "Holdings", "Inc") -> also ("Celsius", "Holdings") and ("Celsius",). Headlines keep some of the
    legal form ("Celsius Holdings to acquire ..."), and the middle stage keeps a name whose last cut would
    leave an everyday word (which is not indexed) findable in its longer form."""
    yield tokens
    while len(tokens) > 1:
        n = next((n for n in range(min(_MAX_SUFFIX, len(tokens) - 1), 0, -1)
                  if tuple(t.lower() for t in tokens[-n:]) in LEGAL_SUFFIXES), 0)
        if not n:
            break
        tokens = tokens[:-n]
        yield tokens
    last = strip_legal(tokens)
    if last != tokens:
        yield last  # a leading "The"


def variants(name: str, derive: bool = True) -> Iterator[tuple[str, ...]]:
    """Token tuples a name is written as: itself with accents folded and ' & ' written as ' and '; with
    `derive`, also without parenthesised notes ('Puma (brand)') and with legal forms cut (each stage). The first
    one is the name itself; duplicates are left to the caller."""
    bases = [name, _PARENS.sub("", name)] if derive else [name]
    for base in bases:
        for form in dict.fromkeys((base, fold_ascii(base), base.replace(" & ", " and "))):
            tokens = name_tokens(form)
            for cut in legal_stages(tokens) if derive else (tokens,):
                if cut:
                    yield cut
