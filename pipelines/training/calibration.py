"""Calibrated probabilities: a softmax temperature per head fitted on validation logits, the expected
calibration error (ECE) before and after, reliability diagrams, and the int8 re-score margin chosen per model.

Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks"): probabilities are
softmax(z / T) with one T per head, the T that minimises the negative log-likelihood (NLL) of the validation
labels. One scalar cannot reorder the classes, so labels and accuracy stay exactly as they were; T > 1 tempers
an over-confident head, T < 1 sharpens an under-confident one.

`calibrate_dir` is the step `finmon train` runs after saving a model and `finmon calibrate` reruns on an
existing one: it fits the temperatures, picks the int8 margin with them applied (the engine compares
calibrated probabilities with the margin), writes both into finmon_config.json and returns the record for
metrics.json.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from monitor.classify.engine import Engine, load_classifier, softmax
from monitor.classify.model import Calibration, ModelConfig

log = logging.getLogger(__name__)

ECE_BINS = 15
# Search range of T: far wider than any trained head needs (fitted values are usually 0.5-3).
T_RANGE = (0.05, 20.0)
# Re-score margins tried, smallest first; the first whose int8 labels agree with fp32 on INT8_TARGET of the
# validation texts on both heads is kept (a smaller margin re-scores fewer texts, so int8 stays fast).
MARGIN_GRID = (0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0)
INT8_TARGET = 0.99  # the engine bar of issue #14: >= 99% agreement, and >= 3x pipeline (0.995 cost 2.89x)
CHUNK = 512  # texts per engine call, so the progress bar moves
_CROSS_FIT_SEED = 0


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of `labels` under softmax(logits / temperature), in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(z)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, iterations: int = 100) -> float:
    """The T in T_RANGE minimising the NLL; 1.0 without rows.

    NLL is convex in 1/T, hence unimodal in log T, so a golden-section search on log T finds the minimum.
    """
    if len(labels) == 0:
        return 1.0
    lo, hi = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, labels, math.exp(a)), nll(logits, labels, math.exp(b))
    for _ in range(iterations):
        if fa <= fb:  # the minimum lies in [lo, b]
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, labels, math.exp(a))
        else:  # in [a, hi]
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, labels, math.exp(b))
    return math.exp((lo + hi) / 2)


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Per equal-width bin of top-class confidence ((k/bins, (k+1)/bins]): rows, accuracy, mean confidence."""
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.float64)
    safe = np.clip(count, 1, None)
    return {
        "count": count.tolist(),
        "accuracy": (np.bincount(index, correct, minlength=bins) / safe).tolist(),
        "confidence": (np.bincount(index, confidence, minlength=bins) / safe).tolist(),
    }


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the row-weighted mean |accuracy - confidence| over the bins."""
    if len(labels) == 0:
        return 0.0
    r = reliability(probs, labels, bins)
    gaps = np.abs(np.asarray(r["accuracy"]) - np.asarray(r["confidence"]))
    return float(np.dot(np.asarray(r["count"]) / len(labels), gaps))


def cross_fitted_ece(logits: np.ndarray, labels: np.ndarray, folds: int = 2) -> float:
    """ECE with each fold scored at the temperature fitted on the other folds: an honest figure for rows the
    temperature did not see (the in-sample ECE after fitting is slightly optimistic)."""
    if len(labels) < 2 * folds:
        return ece(softmax(logits, fit_temperature(logits, labels)), labels)
    parts = np.array_split(np.random.default_rng(_CROSS_FIT_SEED).permutation(len(labels)), folds)
    total = 0.0
    for k, part in enumerate(parts):
        rest = np.concatenate([p for j, p in enumerate(parts) if j != k])
        t = fit_temperature(logits[rest], labels[rest])
        total += ece(softmax(logits[part], t), labels[part]) * len(part)
    return total / len(labels)


def head_report(logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Fit one head's temperature and measure it: ECE, NLL and mean confidence before and after."""
    t = fit_temperature(logits, labels)
    before, after = softmax(logits), softmax(logits, t)
    return {
        "n": len(labels),
        "temperature": t,
        "accuracy": float((before.argmax(1) == labels).mean()) if len(labels) else 0.0,
        "ece_before": ece(before, labels),
        "ece_after": ece(after, labels),
        "ece_after_cross_fitted": cross_fitted_ece(logits, labels),
        "nll_before": nll(logits, labels),
        "nll_after": nll(logits, labels, t),
        "mean_confidence_before": float(before.max(1).mean()) if len(labels) else 0.0,
        "mean_confidence_after": float(after.max(1).mean()) if len(labels) else 0.0,
        "reliability_before": reliability(before, labels),
        "reliability_after": reliability(after, labels),
    }


def top2_margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row (1 for a one-class head), as the engine computes it."""
    if probs.shape[1] < 2:
        return np.ones(len(probs))
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def margin_table(
    fp32: tuple[np.ndarray, np.ndarray], int8: tuple[np.ndarray, np.ndarray], grid: Sequence[float] = MARGIN_GRID
) -> list[dict[str, float]]:
    """For each margin: label agreement of int8-with-re-scoring with fp32 per head, and the share re-scored.

    `fp32` and `int8` are calibrated probabilities of the same texts, int8 without re-scoring. The engine
    re-scores a text in fp32 when its int8 margin on either head is below the margin, and a re-scored text gets
    the fp32 labels, so the table follows from one pass of each model.
    """
    low = np.minimum(top2_margin(int8[0]), top2_margin(int8[1]))
    rows = []
    for m in grid:
        redo = low < m
        row = {"margin": float(m), "rescored_fraction": float(redo.mean()) if len(redo) else 0.0}
        for head, ref, quant in zip(("topic", "sentiment"), fp32, int8, strict=True):
            labels = np.where(redo, ref.argmax(1), quant.argmax(1))
            row[f"{head}_agreement"] = float((labels == ref.argmax(1)).mean()) if len(labels) else 1.0
        rows.append(row)
    return rows


def choose_margin(table: list[dict[str, float]], target: float = INT8_TARGET) -> tuple[float, bool]:
    """The smallest margin meeting `target` on both heads, and whether one did (else the largest tried)."""
    for row in table:
        if min(row["topic_agreement"], row["sentiment_agreement"]) >= target:
            return row["margin"], True
    return table[-1]["margin"], False


def heads_in_chunks(predict: Callable[[list[str]], tuple[np.ndarray, np.ndarray]], texts: list[str], desc: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Both heads' arrays from `predict` (an engine's predict_logits or predict_proba) over `texts`, in chunks
    under a progress bar."""
    if not texts:
        return predict([])
    topic, sentiment = [], []
    for start in tqdm(range(0, len(texts), CHUNK), desc=desc, unit="chunk", dynamic_ncols=True):
        tz, sz = predict(texts[start : start + CHUNK])
        topic.append(tz)
        sentiment.append(sz)
    return np.concatenate(topic), np.concatenate(sentiment)


def logits_in_chunks(engine: Engine, texts: list[str], desc: str) -> tuple[np.ndarray, np.ndarray]:
    """Both heads' raw logits of `texts`, in chunks under a progress bar."""
    return heads_in_chunks(engine.predict_logits, texts, desc)


def label_ids(names: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Label names to class ids of a head."""
    index = {name: i for i, name in enumerate(labels)}
    return np.fromiter((index[n] for n in names), dtype=np.int64, count=len(names))


def calibrate_dir(model_dir: Path, val: Sequence[Any], device: str = "auto") -> dict[str, Any]:
    """Fit the temperatures on the validation sets `val` (ValSet: task, texts, labels), choose the int8 margin
    with them, store both in `model_dir`/finmon_config.json, draw the reliability diagrams, return the record."""
    texts = [t for vs in val for t in vs.texts]
    fp32 = load_classifier(str(model_dir), device=device)
    logits = logits_in_chunks(fp32, texts, "calibration: fp32 logits")
    rows: dict[str, list[np.ndarray]] = {}
    golds: dict[str, list[np.ndarray]] = {}
    start = 0
    for vs in val:  # one head may have several held-out sets (tweets and news): fit on all of them together
        head = 0 if vs.task == "topic" else 1
        names = fp32.topic_labels if vs.task == "topic" else fp32.sentiment_labels
        rows.setdefault(vs.task, []).append(logits[head][start:start + len(vs.texts)])
        golds.setdefault(vs.task, []).append(label_ids(vs.labels, names))
        start += len(vs.texts)
    heads = {task: head_report(np.concatenate(rows[task]), np.concatenate(golds[task])) for task in rows}
    temps = tuple(heads[h]["temperature"] if h in heads else 1.0 for h in ("topic", "sentiment"))
    margin = int8_margin(model_dir, texts, logits if fp32.device.type == "cpu" else None, temps)
    config = ModelConfig.load(model_dir)
    config.calibration = Calibration(temps[0], temps[1], margin["chosen"])
    config.save(model_dir)
    for task, report in heads.items():
        plot_reliability(report, task, model_dir / f"reliability_{task}.png")
    log.info("calibrated %s: temperatures %s, int8 re-score margin %s", model_dir, temps, margin["chosen"])
    return {
        "method": "temperature scaling per head (NLL on the validation rows), probabilities = softmax(logits / T)",
        "ece_bins": ECE_BINS,
        "heads": heads,
        "int8_rescore_margin": margin,
    }


def int8_margin(
    model_dir: Path, texts: list[str], cpu_logits: tuple[np.ndarray, np.ndarray] | None, temps: tuple[float, ...]
) -> dict[str, Any]:
    """Choose the re-score margin on `texts` against the fp32 model on CPU (what the int8 engine re-scores
    with), both at the fitted temperatures."""
    int8 = load_classifier(str(model_dir), device="cpu", quantize=True, rescore_margin=0.0)
    if cpu_logits is None:
        cpu_logits = logits_in_chunks(load_classifier(str(model_dir), device="cpu"), texts, "calibration: cpu fp32")
    raw = logits_in_chunks(int8, texts, "calibration: int8 logits")
    int8.temperatures = (temps[0], temps[1])
    table = margin_table(int8.probabilities(*cpu_logits), int8.probabilities(*raw))
    chosen, reached = choose_margin(table)
    if not reached:
        log.warning("no re-score margin up to %s gives %.1f%% int8 agreement; using the largest", chosen, INT8_TARGET)
    row = next(r for r in table if r["margin"] == chosen)
    return {"chosen": chosen, "target_agreement": INT8_TARGET, "reached": reached, "n": len(texts),
            "at_chosen": row, "grid": table}


def plot_reliability(report: dict[str, Any], task: str, path: Path) -> None:
    """Reliability diagram of one head: accuracy against confidence per bin, before and after the temperature."""
    import matplotlib

    matplotlib.use("Agg")  # headless: training machines have no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    for key, style, name in (("before", "o--", "T = 1"), ("after", "s-", f"T = {report['temperature']:.2f}")):
        r = report[f"reliability_{key}"]
        shown = [i for i, c in enumerate(r["count"]) if c > 0]
        ece_value = report[f"ece_{key}"]
        ax.plot([r["confidence"][i] for i in shown], [r["accuracy"][i] for i in shown], style,
                label=f"{name} (ECE {ece_value:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"top-class confidence ({ECE_BINS} equal-width bins)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{task} (validation, n={report['n']})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
