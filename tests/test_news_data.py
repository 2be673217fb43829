"""The project's labelled news set (data/news/finmon_news.csv): schema, labels, and a split that cannot leak.

Fast (reads one CSV, no model): the labels must be ones the shipped model's heads know, and no validation text
may reappear, even loosely, among the training rows, or the news baseline would measure memory.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "news" / "finmon_news.csv"
CONFIG = ROOT / "monitor" / "models" / "finmon-minilm" / "finmon_config.json"
COLUMNS = ["id", "text", "sentiment", "topic", "style", "sector", "split"]


@pytest.fixture(scope="module")
def news() -> pd.DataFrame:
    return pd.read_csv(DATA, keep_default_na=False)


def _loose(text: str) -> str:
    """Lower case, digits and punctuation dropped, whitespace collapsed: 'EUR 14.2 mn' == 'eur 9 mn'."""
    return " ".join(re.sub(r"[^a-z ]+", " ", re.sub(r"\d+", "", text.lower())).split())


def test_schema_and_label_sets(news: pd.DataFrame) -> None:
    config = json.loads(CONFIG.read_text(encoding="utf-8"))
    assert list(news.columns) == COLUMNS
    assert len(news) >= 1500 and news["id"].is_unique
    assert (news["text"].str.strip().str.len() > 0).all()
    assert set(news["sentiment"]) == set(config["sentiment_labels"])
    assert set(news["topic"]) <= set(config["topic_labels"])
    assert set(news["style"]) == {"headline", "sentence"}
    assert set(news["split"]) == {"train", "validation"}
    assert (news["sector"].str.fullmatch(r"[a-z_]+")).all()


def test_no_duplicates_exact_or_by_case_and_whitespace(news: pd.DataFrame) -> None:
    assert news["text"].is_unique
    folded = news["text"].str.lower().str.split().str.join(" ")
    assert folded.is_unique, folded[folded.duplicated(keep=False)].tolist()


def test_validation_never_near_duplicates_train(news: pd.DataFrame) -> None:
    loose = news["text"].map(_loose)
    train = set(loose[news["split"] == "train"])
    leaked = news.loc[(news["split"] == "validation") & loose.isin(train), "text"].tolist()
    assert not leaked, leaked


def test_balance_and_every_stratum_in_both_splits(news: pd.DataFrame) -> None:
    shares = news["sentiment"].value_counts(normalize=True)
    assert shares["positive"] >= 0.30 and shares["negative"] >= 0.30
    assert 0.20 <= (news["split"] == "validation").mean() <= 0.30
    for split, part in news.groupby("split"):
        cells = part.groupby(["sentiment", "style"]).size()
        assert len(cells) == 6 and cells.min() >= 20, (split, cells.to_dict())


RELEASES = ROOT / "data" / "news" / "finmon_news_releases.csv"
HELDOUT = ROOT / "data" / "news" / "finmon_news_heldout.csv"


def test_releases_and_heldout_files_use_the_model_labels() -> None:
    config = json.loads(CONFIG.read_text(encoding="utf-8"))
    for path, columns in ((RELEASES, COLUMNS), (HELDOUT, [c for c in COLUMNS if c != "split"])):
        frame = pd.read_csv(path, keep_default_na=False)
        assert list(frame.columns) == columns, path
        assert frame["id"].is_unique and frame["text"].is_unique and (frame["text"].str.strip() != "").all()
        assert set(frame["sentiment"]) == set(config["sentiment_labels"])
        assert set(frame["topic"]) <= set(config["topic_labels"])
        assert set(frame["style"]) == {"headline", "sentence"}
    # The release register's realistic mix: most release sentences are neutral.
    releases = pd.read_csv(RELEASES, keep_default_na=False)
    sentences = releases[releases["style"] == "sentence"]
    assert (sentences["sentiment"] == "neutral").mean() >= 0.5
    assert set(releases["split"]) == {"train", "validation"}


def test_heldout_set_shares_no_text_with_any_training_file(news: pd.DataFrame) -> None:
    """The held-out set estimates news the model never saw: not even a loose copy may be in a training file."""
    heldout = pd.read_csv(HELDOUT, keep_default_na=False)["text"].map(_loose)
    releases = pd.read_csv(RELEASES, keep_default_na=False)
    for name, texts in (("finmon_news", news["text"]), ("releases", releases["text"])):
        overlap = set(heldout) & set(texts.map(_loose))
        assert not overlap, (name, sorted(overlap)[:5])
    train = set(releases.loc[releases["split"] == "train", "text"].map(_loose))
    leaked = releases.loc[(releases["split"] == "validation") & releases["text"].map(_loose).isin(train), "text"]
    assert leaked.empty, leaked.tolist()
