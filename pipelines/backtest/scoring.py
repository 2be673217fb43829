"""Score texts with the finmon engine, caching the scores by (model version, text hash) in SQLite.

A second backtest of the same feed with other rules (or other prices) finds every score in the cache and
never runs the model: `hits` and `misses` count that, and end up in metrics.json. Identical texts (retweets,
spam) are scored once per run. The model is loaded only when some text is missing from the cache; its
version for the cache key is computed from the model files the same way the engine computes it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from monitor.classify.base import Prediction
from monitor.classify.engine import load_classifier, select_device
from monitor.classify.model import ModelConfig, content_hash, resolve_model_dir

CHUNK = 512  # texts per engine call: big enough for the token-budget batching, small enough for a live bar
_SCHEMA = """CREATE TABLE IF NOT EXISTS scores (
    model_version TEXT NOT NULL, text_hash TEXT NOT NULL, prediction TEXT NOT NULL,
    PRIMARY KEY (model_version, text_hash))"""


@dataclass
class ScoreStats:
    """Cache accounting of one run: unique texts found in the cache and texts the model scored."""

    hits: int = 0
    misses: int = 0
    model_seconds: float = 0.0


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_version(model: str | None, device: str, quantize: bool) -> str:
    """The engine's version string without loading the model (int8 applies on CPU only, as in the engine)."""
    model_dir = resolve_model_dir(model)
    int8 = quantize and select_device(device).type == "cpu"
    return f"{ModelConfig.load(model_dir).name}-{content_hash(model_dir)}" + ("-int8" if int8 else "")


class ScoreCache:
    """A SQLite table of predictions keyed by model version and text hash."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path)
        self.conn.execute(_SCHEMA)

    def get(self, version: str, hashes: Sequence[str]) -> dict[str, Prediction]:
        found: dict[str, Prediction] = {}
        for start in range(0, len(hashes), 500):  # stay under SQLite's bound-parameter limit
            chunk = list(hashes[start:start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT text_hash, prediction FROM scores WHERE model_version = ? AND text_hash IN ({marks})",  # noqa: S608
                [version, *chunk])
            found.update({h: Prediction(**json.loads(p)) for h, p in rows})
        return found

    def put(self, version: str, scored: dict[str, Prediction]) -> None:
        rows = [(version, h, json.dumps(_as_dict(p), sort_keys=True)) for h, p in scored.items()]
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self.conn.close()


def _as_dict(p: Prediction) -> dict[str, object]:
    return {"topic": p.topic, "topic_probs": p.topic_probs, "sentiment": p.sentiment,
            "sentiment_probs": p.sentiment_probs}


@dataclass
class Scorer:
    """Scores texts through the cache; `load` builds the engine only if the model is needed."""

    cache: ScoreCache
    version: str
    load: Callable[[], object]
    progress: bool = True

    def score(self, texts: Sequence[str], stats: ScoreStats) -> list[Prediction]:
        hashes = [text_hash(t) for t in texts]
        unique = dict(zip(hashes, texts, strict=True))  # first text of each hash, in feed order
        known = self.cache.get(self.version, list(unique))
        missing = [h for h in unique if h not in known]
        stats.hits += len(known)  # added up: a run routed by language scores one group per model
        stats.misses += len(missing)
        if missing:
            known.update(self._run_model([unique[h] for h in missing], missing, stats))
        return [known[h] for h in hashes]

    def _run_model(self, texts: list[str], hashes: list[str], stats: ScoreStats) -> dict[str, Prediction]:
        start = time.perf_counter()
        engine = self.load()
        out: dict[str, Prediction] = {}
        with tqdm(total=len(texts), desc="score", unit="text", disable=not self.progress, mininterval=1.0) as bar:
            for i in range(0, len(texts), CHUNK):
                preds = engine.predict(texts[i:i + CHUNK])  # type: ignore[attr-defined]
                batch = dict(zip(hashes[i:i + CHUNK], preds, strict=True))
                self.cache.put(self.version, batch)  # saved per chunk: an interrupted run keeps its work
                out.update(batch)
                bar.update(len(preds))
        stats.model_seconds += time.perf_counter() - start
        return out


def make_scorer(cache_dir: Path, model: str | None, device: str, quantize: bool, max_batch_tokens: int,
                progress: bool = True) -> Scorer:
    version = model_version(model, device, quantize)

    def load() -> object:
        engine = load_classifier(model, device=device, quantize=quantize, max_batch_tokens=max_batch_tokens)
        if engine.version != version:  # would poison the cache under the wrong key
            raise RuntimeError(f"model version {engine.version} != expected {version}")
        return engine

    return Scorer(ScoreCache(cache_dir / "scores.sqlite"), version, load, progress)
