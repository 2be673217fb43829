"""Chinese, Japanese (and other space-less) text: which characters are CJK, and width folding.

Pure string helpers shared by entity linking, story matching and item cleaning (stdlib only, no I/O).

- `CJK` is a regex character class of the scripts written without spaces between words: Han ideographs
  (with the extensions and compatibility block), kana, and CJK punctuation. Hangul is not in it: Korean
  puts spaces between words. Regexes that used `\\w` as a word boundary use `WORD` (a word character that is
  not CJK) instead, so "茅台600519.SH涨停" still shows the code: in Chinese a code is glued to the words.
- `fold_width` maps full-width ASCII forms (Ａ, ６, （, ，, ：) and the ideographic space to their ASCII
  counterparts, one character for one character: spans computed on the folded text are spans of the
  original, and a text without such characters comes back unchanged (the same object). The Chinese marks
  without an ASCII twin of the same role (。、《》「」【】) stay: they are CJK punctuation, which every
  tokenizer here treats as a separator, and "。" is not a "." (a code before it, "600519.SH。", must not
  look like the start of a longer dotted name).
- `normalize_text` is what cleaning applies to an item's text: Unicode NFKC (full-width Ｂ４ -> B4, half-width
  katakana -> full-width, ideographic space -> space, compatibility ideographs -> unified ones) for a text
  with CJK or width forms in it, and nothing at all for any other text: English bytes reach the model,
  the store and the dedupe hashes exactly as before (NFKC would also turn "…" into "..." and "™" into "TM").
"""

from __future__ import annotations

import re
import unicodedata

# Han (CJK Unified Ideographs, Extension A, compatibility), Hiragana, Katakana, CJK symbols and punctuation.
CJK_RANGES = "\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK = f"[{CJK_RANGES}]"
WORD = rf"[^\W{CJK_RANGES}]"  # a word character (\w) that is not CJK
_HAN_KANA = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]")
# What makes a text worth NFKC: CJK characters and punctuation, and the half-/full-width forms block.
_NEEDS_NFKC = re.compile(f"[{CJK_RANGES}\uff00-\uffef]")

# Full-width ASCII (U+FF01-U+FF5E) is ASCII + 0xFEE0; the ideographic space is a space. Then the Chinese
# punctuation marks that have a one-character ASCII twin.
_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_WIDTH[0x3000] = 0x20
_FOLDABLE = re.compile("[\uff01-\uff5e\u3000]")


def fold_width(text: str) -> str:
    """Full-width forms to ASCII, one character for one (see the module docstring)."""
    if not _FOLDABLE.search(text):
        return text
    return text.translate(_WIDTH)


def has_cjk(text: str) -> bool:
    """Whether any Han or kana character is in `text` (CJK punctuation alone does not count)."""
    return _HAN_KANA.search(text) is not None


def cjk_share(text: str) -> float:
    """Han and kana characters as a share of all letters (0 for a text without letters)."""
    letters = _LETTER.findall(text)
    if not letters:
        return 0.0
    return sum(1 for c in letters if _HAN_KANA.match(c)) / len(letters)


def normalize_text(text: str) -> str:
    """NFKC for a text with CJK or width forms, the text itself otherwise (see the module docstring)."""
    if not _NEEDS_NFKC.search(text):
        return text
    return unicodedata.normalize("NFKC", text)
