"""News outlets cited as the source of a story: "..., Reuters reports", "according to the Wall Street Journal",
"... - WSJ", "sources told CNBC". The outlet is not what the story is about, though some are names of listed
companies or their brands (Thomson Reuters, The New York Times Company, News Corp's Journal, Comcast's CNBC).

`cited_spans` gives the character spans of such citations; mentions.py drops a company name inside one. A
headline about the outlet itself ("New York Times beats subscriber estimates", "Thomson Reuters raises outlook")
cites nothing and links as usual. Only outlets are matched: ", Nvidia says" at the end of a headline is a
company speaking about itself, and stays a mention.
"""

from __future__ import annotations

import re

# News organisations as headlines cite them (case as written).
OUTLETS = (
    "Reuters", "Bloomberg News", "Bloomberg Law", "Bloomberg", "The Wall Street Journal", "Wall Street Journal",
    "WSJ", "the Journal", "The New York Times", "New York Times", "NYT", "Financial Times", "FT", "CNBC",
    "Barron's", "MarketWatch", "Dow Jones Newswires", "Dow Jones", "Fox Business", "Fox News", "CNN", "Axios",
    "The Information", "Nikkei Asia", "Nikkei", "Associated Press", "AP", "Politico", "Semafor", "Forbes",
    "Business Insider", "The Washington Post", "Washington Post", "Los Angeles Times", "The Guardian",
    "The Telegraph", "Sky News", "BBC", "Handelsblatt", "Les Echos", "Caixin", "Yonhap", "Kyodo",
    "The Globe and Mail", "Globe and Mail", "Economic Times", "Times of India", "Yahoo Finance", "Variety",
    "Deadline", "The Verge", "TechCrunch", "Bild", "Der Spiegel", "Il Sole 24 Ore", "Nikkei Shimbun",
)
# Every word of an outlet's name but "the" and "and", as tokenized (mentions.py looks for one before the patterns).
OUTLET_WORDS = frozenset(w for o in OUTLETS for w in o.replace("'s", "").split() if w not in ("the", "The", "and"))
_O = "(?P<o>" + "|".join(re.escape(o) for o in sorted(OUTLETS, key=len, reverse=True)) + r")(?:'s)?(?!\w)"
_VERB = r"(?:reports?|reported|reporting|says|said|writes|wrote|cites?|cited|citing|learns|learned|has learned)"
_PATTERNS = tuple(re.compile(p) for p in (
    rf"(?:,|:|\s[-–—]+)\s*(?:the\s+)?{_O}(?:\s+\w+){{0,2}}?\s+{_VERB}\b",  # ", the Financial Times reports"
    rf"\baccording to (?:a |an |the )?(?:\w+ )?(?:report (?:by|in|from) )?(?:the\s+)?{_O}",
    rf"\b(?:told|tells?|to|with)\s+(?:the\s+)?{_O}",  # "sources told CNBC", "in an interview with Bloomberg"
    rf"(?:\s[-–—]+\s*|\s\|\s*)(?:the\s+)?{_O}\s*$",  # "... - WSJ"
    rf"(?:^|\()\s*{_O}\s*(?:\)|:|\s+poll\b)",  # "(Reuters) -", "Bloomberg: ...", "Reuters poll"
))
# Cheap test before the patterns: every pattern needs one of these.
_HINT = re.compile(r"report|says|said|writ|cite|citing|learn|according|told|tell|\bto\b|\bwith\b| [-–—|] |\(|:|poll")


def cited_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the outlets `text` cites as its source (empty when it names none)."""
    if not _HINT.search(text):
        return []
    return [m.span("o") for pattern in _PATTERNS for m in pattern.finditer(text)]
