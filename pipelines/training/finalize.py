"""After training: save the model directory, calibrate it, then measure the *saved* artifact and document it.

Metrics are computed by loading the directory back through `load_classifier`, so they describe exactly what
ships (adapter merged, heads, tokenizer, calibrated temperatures and int8 margin), not the in-memory training
model.
"""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from monitor.classify.engine import compare_engines, load_classifier
from monitor.classify.model import save_model
from pipelines.training.calibration import calibrate_dir
from pipelines.training.card import render_card
from pipelines.training.metrics import compute_metrics, plot_confusion, report_text

log = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def predicted_labels(engine: Any, vs: Any) -> tuple[list[str], list[str]]:
    """The engine's labels for a held-out set's texts (its head's), and that head's label names."""
    preds = engine.predict(vs.texts)
    if vs.task == "topic":
        return [p.topic for p in preds], list(engine.topic_labels)
    return [p.sentiment for p in preds], list(engine.sentiment_labels)


def evaluate_saved(out_dir: Path, val: list[Any], device: str) -> tuple[Any, dict[str, Any]]:
    """Load `out_dir` as users will and score each held-out split; write reports and confusion matrices."""
    engine = load_classifier(str(out_dir), device=device)
    results: dict[str, Any] = {}
    for vs in val:
        predicted, labels = predicted_labels(engine, vs)
        results[vs.key] = compute_metrics(vs.labels, predicted, labels)
        (out_dir / f"classification_report_{vs.key}.txt").write_text(
            report_text(vs.labels, predicted, labels), encoding="utf-8"
        )
        plot_confusion(
            results[vs.key]["confusion_matrix"],
            labels,
            f"{vs.key} (validation, n={len(vs.texts)})",
            out_dir / f"confusion_matrix_{vs.key}.png",
        )
    return engine, results


def int8_agreement(out_dir: Path, val: list[Any]) -> dict[str, Any]:
    """How far dynamic int8 quantisation moves predictions from fp32 on the held-out texts (CPU)."""
    texts = [t for vs in val for t in vs.texts]
    fp32 = load_classifier(str(out_dir), device="cpu")
    int8 = load_classifier(str(out_dir), device="cpu", quantize=True)
    return compare_engines(fp32, int8, texts)


def finalize(
    model: Any, tokenizer: Any, config: Any, val: list[Any], out_dir: Path, ctx: dict[str, Any]
) -> dict[str, Any]:
    """Save, evaluate the saved model, write metrics.json and the model card; return the metrics."""
    save_model(model, tokenizer, config, out_dir, delta_bits=ctx["model"].delta_bits,
               save_tokenizer=ctx["model"].save_tokenizer)
    # Before the evaluation: the temperatures and the int8 margin change the version and what is measured.
    calibration = calibrate_dir(out_dir, val, ctx["training"].device) if val else None
    engine, results = evaluate_saved(out_dir, val, ctx["training"].device)
    history = ctx["history"]
    metrics = {
        "model": config.name,
        "version": engine.version,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "started_utc": ctx["started"].isoformat(timespec="seconds"),
        "base_model": config.base_model,
        "arguments": _jsonable({k: asdict(ctx[k]) for k in ("data", "model", "training")}),
        "data": {
            sp.task: {
                "file": str(sp.file if sp.file is not None else getattr(ctx["data"], f"{sp.task}_data")),
                "train_rows": len(sp.train),
                "validation_rows": len(sp.validation),
                "fingerprints": ctx["fingerprints"][sp.task],
                "exported": ctx["split_files"].get(sp.task),
                **({"repeat": sp.repeat} if sp.repeat > 1 else {}),
            }
            for sp in ctx["splits"]
        },
        "pseudo_labels": ctx.get("pseudo_labels"),
        "soft_labels": ctx.get("soft_labels"),
        "weight_average": ctx.get("weight_average"),
        "validation": results,
        "calibration": calibration,
        "int8_agreement": int8_agreement(out_dir, val) if val else None,
        "history": history.evaluations,
        "best_evaluation": history.evaluations[history.best_index] if history.evaluations else None,
        "train_seconds": round(history.seconds, 1),
        "train_steps": history.steps,
        "stopped_for_time_budget": history.stopped_early_for_time,
        "environment": {
            "torch": torch.__version__,
            "device": str(engine.device),
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
        },
    }
    write_metrics_and_card(out_dir, metrics)
    return metrics


def write_metrics_and_card(out_dir: Path, metrics: dict[str, Any]) -> None:
    """metrics.json and the model card (README.md) rendered from it."""
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (out_dir / "README.md").write_text(render_card(metrics), encoding="utf-8")
