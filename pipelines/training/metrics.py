"""Classification metrics shared by `finmon train` and `finmon evaluate`, plus their report files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score
from sklearn.metrics import precision_recall_fscore_support as prfs


def compute_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, per-class P/R/F1/support and the confusion matrix (rows = true)."""
    labels = list(labels)
    precision, recall, f1, support = prfs(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }
    present = [lab for lab in labels if per_class[lab]["support"] > 0 or lab in set(y_pred)]
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        # Averages over the labels that occur (in truth or prediction), as scikit-learn does by default.
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)),
        "labels": labels,
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist() if len(y_true) else [],
    }


def report_text(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> str:
    """scikit-learn's classification_report over all `labels`."""
    return str(classification_report(y_true, y_pred, labels=list(labels), digits=4, zero_division=0))


def plot_confusion(matrix: list[list[int]], labels: Sequence[str], title: str, path: Path) -> None:
    """Save a row-normalised confusion-matrix heatmap with counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")  # headless: training machines have no display
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix, dtype=float).reshape(len(labels), len(labels))
    norm = counts / np.clip(counts.sum(axis=1, keepdims=True), 1, None)
    size = max(4.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90 if len(labels) > 5 else 0, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for (i, j), value in np.ndenumerate(counts):
        if value:
            ax.text(
                j,
                i,
                str(int(value)),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _macro_f1_counts(truth: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Macro-F1 per bootstrap row from integer labels of shape (resamples, n), over the labels that occur in
    that row's truth or prediction (compute_metrics' rule), vectorised with one bincount per count."""
    rows = truth.shape[0]
    offset = (np.arange(rows) * k)[:, None]
    size = rows * k
    tp = np.bincount((truth + offset)[truth == pred], minlength=size).reshape(rows, k)
    true_n = np.bincount((truth + offset).ravel(), minlength=size).reshape(rows, k)
    pred_n = np.bincount((pred + offset).ravel(), minlength=size).reshape(rows, k)
    denom = true_n + pred_n
    f1 = np.divide(2 * tp, denom, out=np.zeros((rows, k)), where=denom > 0)
    present = denom > 0
    return np.asarray(f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1))


def paired_bootstrap(
    y_true: Sequence[str],
    pred_a: Sequence[str],
    pred_b: Sequence[str],
    labels: Sequence[str],
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """B minus A on the same rows: accuracy and macro-F1 differences on all rows, each with the 95% percentile
    interval over `resamples` paired resamples (both models scored on the same drawn rows, so the row-to-row
    noise of a small validation split cancels out), and the share of resamples in which B is ahead."""
    index = {label: i for i, label in enumerate(labels)}
    truth = np.array([index[v] for v in y_true])
    a = np.array([index[v] for v in pred_a])
    b = np.array([index[v] for v in pred_b])
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"resamples": resamples, "seed": seed, "n": len(truth)}

    def scores(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B minus A accuracy, B minus A macro-F1) per row of drawn indices."""
        t, pa, pb = truth[rows], a[rows], b[rows]
        acc = (t == pb).mean(axis=1) - (t == pa).mean(axis=1)
        return acc, _macro_f1_counts(t, pb, len(labels)) - _macro_f1_counts(t, pa, len(labels))

    # chunks bound memory at 200 x n ints per array
    drawn = [scores(rng.integers(0, len(truth), size=(min(200, resamples - start), len(truth))))
             for start in range(0, resamples, 200)]
    whole = scores(np.arange(len(truth))[None])
    for i, name in enumerate(("accuracy", "macro_f1")):
        delta = np.concatenate([d[i] for d in drawn])
        low, high = np.percentile(delta, [2.5, 97.5])
        out[name] = {"delta": float(whole[i][0]), "low": float(low), "high": float(high),
                     "b_ahead": float((delta > 0).mean())}
    return out
