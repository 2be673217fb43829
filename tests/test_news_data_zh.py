"""The project's Chinese labelled set (data/news/finmon_news_zh.csv): schema, labels, and a split that cannot leak.

Fast (reads one CSV, no model): the labels must be ones the shipped model's heads know, the texts must be
Chinese, and no validation text may near-duplicate a training row (character 4-grams, digits and punctuation
removed), or the Chinese baseline for finmon-multilingual would measure memory.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from monitor.cjk import has_cjk

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "news" / "finmon_news_zh.csv"
CONFIG = ROOT / "monitor" / "models" / "finmon-minilm" / "finmon_config.json"
COLUMNS = ["id", "text", "sentiment", "topic", "style", "sector", "split"]
STYLES = {"headline", "sentence", "post"}


@pytest.fixture(scope="module")
def news() -> pd.DataFrame:
    return pd.read_csv(DATA, keep_default_na=False, dtype=str)


def _loose(text: str) -> str:
    """NFKC, lower case, digits dropped, then punctuation, symbols and spaces dropped."""
    text = re.sub(r"\d+", "", unicodedata.normalize("NFKC", text).lower())
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PSZ")


def _shingles(text: str, n: int = 4) -> set[str]:
    loose = _loose(text)
    return {loose[i : i + n] for i in range(max(1, len(loose) - n + 1))}


def test_schema_and_label_sets(news: pd.DataFrame) -> None:
    config = json.loads(CONFIG.read_text(encoding="utf-8"))
    assert list(news.columns) == COLUMNS
    assert len(news) >= 500
    assert news["id"].is_unique and news["id"].str.fullmatch(r"zh\d{4}").all()
    assert (news["text"].str.strip().str.len() > 0).all()
    assert set(news["sentiment"]) == set(config["sentiment_labels"])
    assert set(news["topic"]) <= set(config["topic_labels"])
    assert set(news["style"]) == STYLES
    assert set(news["split"]) == {"train", "validation"}
    assert news["sector"].str.fullmatch(r"[a-z]+(_[a-z]+)*").all()


def test_every_topic_used(news: pd.DataFrame) -> None:
    config = json.loads(CONFIG.read_text(encoding="utf-8"))
    counts = news["topic"].value_counts()
    assert set(counts.index) == set(config["topic_labels"])
    assert counts.min() >= 8, counts.to_dict()


def test_texts_are_chinese(news: pd.DataFrame) -> None:
    assert news["text"].map(has_cjk).mean() >= 0.90


def test_no_duplicates_exact_or_by_case_and_whitespace(news: pd.DataFrame) -> None:
    assert news["text"].is_unique
    folded = news["text"].str.lower().str.split().str.join("")
    assert folded.is_unique, folded[folded.duplicated(keep=False)].tolist()


def test_validation_never_near_duplicates_train(news: pd.DataFrame) -> None:
    shingles = news["text"].map(_shingles)
    is_train = (news["split"] == "train").to_numpy()
    index: dict[str, list[int]] = defaultdict(list)  # shingle -> train rows that have it
    for row, (grams, train) in enumerate(zip(shingles, is_train, strict=True)):
        if train:
            for gram in grams:
                index[gram].append(row)
    leaked = []
    for row, (grams, train) in enumerate(zip(shingles, is_train, strict=True)):
        if train:
            continue
        shared: dict[int, int] = defaultdict(int)
        for gram in grams:
            for other in index.get(gram, ()):
                shared[other] += 1
        for other, common in shared.items():
            if common / len(grams | shingles.iat[other]) >= 0.6:
                leaked.append((news["text"].iat[row], news["text"].iat[other]))
    assert not leaked, leaked


def test_balance_and_every_stratum_in_both_splits(news: pd.DataFrame) -> None:
    shares = news["sentiment"].value_counts(normalize=True)
    assert shares.min() >= 0.28, shares.to_dict()
    assert 0.30 <= (news["split"] == "validation").mean() <= 0.40
    for split, part in news.groupby("split"):
        cells = part.groupby(["sentiment", "style"]).size()
        assert len(cells) == 9 and cells.min() >= 10, (split, cells.to_dict())
