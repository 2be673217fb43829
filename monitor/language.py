"""The language of a news item, as a lower-case ISO 639-1 code ("en", "zh", "ja", "de"), or "und" when the
text has too few letters to tell (a list of cashtags, a number).

How (`detect_language`; deterministic, offline, about 100-200 us per item on the CI cores):
1. What is not language is removed first: URLs, cashtags, hashtags, @mentions, numbers.
2. Writing systems decide the East Asian languages, which need no statistics and which a byte n-gram model
   confuses when a headline is short: a text whose letters are at least 30% Han or kana is Japanese when it
   has kana and Chinese when it has not (simplified and traditional alike); 30% Hangul is Korean. A Chinese
   character carries about what a short English word does, so 30% of the letters is already most of the text.
3. Other texts go to py3langid (langid.py's naive Bayes over byte n-grams, BSD-3, its model inside the wheel),
   restricted to the languages of financial news in LANGUAGES. On English finance tweets the restriction
   alone took the share read as English from 90% to 96%; the rest were short headlines of names and tickers
   ("Skanska AB reports Q4 results") read as Swedish or Portuguese with low confidence, so a Latin-script text
   whose best language scores below MIN_CONFIDENCE is English, this monitor's default (99.3% on the same
   tweets; most of what remains non-English really is French, German, Spanish or Italian).

An item that arrives with a `lang` keeps it (a feed knows its language better), cut to its primary subtag:
"zh-CN" and "zh_TW" are "zh", so that filters and a routing setting see one code per language.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from monitor.cjk import cjk_share, normalize_text

UNDETERMINED = "und"
# Languages py3langid may answer with: the markets' languages of financial news, not its 97 others (which
# turn short English headlines into Latin, Galician or Nigerian Pidgin).
LANGUAGES = (
    "en", "zh", "ja", "ko", "de", "fr", "es", "it", "pt", "nl", "ru", "sv", "da", "no", "fi", "pl", "tr", "ar",
    "id", "vi", "th", "hi", "cs", "el", "he", "hu", "ro", "uk", "ms",
)
MIN_CONFIDENCE = 0.5
MIN_LETTERS = 3
CJK_SHARE = 0.3

_NOISE = re.compile(r"(?:https?://|www\.)\S*|[$#@][^\W\d_][\w.-]*|\d+(?:[.,:/]\d+)*%?")
_LETTER = re.compile(r"[^\W\d_]")
_KANA = re.compile("[\u3040-\u30ff]")
_HANGUL = re.compile("[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")


def detect_language(text: str) -> str:
    """The language of `text` (see the module docstring)."""
    clean = _NOISE.sub(" ", normalize_text(text))
    letters = _LETTER.findall(clean)
    if len(letters) < MIN_LETTERS:
        return UNDETERMINED
    if cjk_share(clean) >= CJK_SHARE:
        return "ja" if _KANA.search(clean) else "zh"
    if sum(1 for c in letters if _HANGUL.match(c)) >= CJK_SHARE * len(letters):
        return "ko"
    lang, confidence = _classify(clean)
    latin = sum(1 for c in letters if _LATIN.match(c)) >= 0.5 * len(letters)
    return "en" if confidence < MIN_CONFIDENCE and latin else lang


def item_language(given: str | None, text: str) -> str:
    """The language an item is stored with: the one it came with (primary subtag), else the detected one."""
    if given and _TAG.match(given.strip()):
        return re.split(r"[-_]", given.strip(), maxsplit=1)[0].lower()
    return detect_language(text)


def warm_language_model() -> None:
    """Load the detector's model now (about 1 s, once per process) instead of on the first item."""
    _identifier()


def _classify(text: str) -> tuple[str, float]:
    lang, prob = _identifier().classify(text)  # reads the model only: safe to share between threads
    return str(lang), float(prob)


@cache
def _identifier() -> Any:
    """py3langid's model, loaded once per process (about 1 s: it decompresses a 4.6 MB model)."""
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError as exc:  # a dependency of finmon: only a broken install lacks it
        raise ImportError("language detection needs py3langid: pip install -e . (or pip install "
                          "'py3langid>=0.4,<0.5')") from exc
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    return identifier
