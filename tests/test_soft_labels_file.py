"""The shipped teacher soft labels (data/soft_labels): they load, carry the shipped model's label order, cover
every training row of the project's news set and no validation row of it (no leak into a student's validation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.classify.base import SENTIMENT_LABELS
from monitor.classify.model import resolve_model_dir
from pipelines.training.distill import FORMAT, softened, text_keys

ROOT = Path(__file__).resolve().parents[1]
FILE = ROOT / "data" / "soft_labels" / "finmon-mpnet-teacher-8729cf32a906.npz"


def test_shipped_soft_labels_load_and_match_the_news_split() -> None:
    with np.load(FILE, allow_pickle=False) as f:
        keys, topic, sent, meta = f["keys"], f["topic_logits"], f["sentiment_logits"], json.loads(str(f["meta"]))
    assert meta["format"] == FORMAT and meta["rows"] == len(keys) == len(topic) == len(sent) == 25084
    shipped = json.loads((resolve_model_dir(None) / "finmon_config.json").read_text())
    assert meta["topic_labels"] == shipped["topic_labels"] and meta["sentiment_labels"] == list(SENTIMENT_LABELS)
    assert topic.shape[1] == 20 and sent.shape[1] == 3 and topic.dtype == np.float16
    assert np.allclose(topic.max(axis=1), 0) and np.isfinite(topic).all() and np.isfinite(sent).all()
    stored = {row.tobytes() for row in keys}
    news = pd.read_csv(ROOT / "data" / "news" / "finmon_news.csv")
    train = [k.tobytes() for k in text_keys(news.loc[news["split"] == "train", "text"].tolist())]
    validation = [k.tobytes() for k in text_keys(news.loc[news["split"] == "validation", "text"].tolist())]
    assert all(k in stored for k in train)
    assert not any(k in stored for k in validation)
    # A real teacher, not noise: on the news training rows it agrees with the gold sentiment most of the time.
    index = {row.tobytes(): i for i, row in enumerate(keys)}
    rows = np.array([index[k] for k in train])
    predicted = np.array(SENTIMENT_LABELS)[softened(sent[rows].astype(np.float32), 1.0).argmax(axis=1)]
    gold = news.loc[news["split"] == "train", "sentiment"].to_numpy()
    assert (predicted == gold).mean() > 0.85
