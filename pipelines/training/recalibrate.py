"""`finmon calibrate MODEL_DIR`: refit the temperatures and the int8 re-score margin of an existing model.

    finmon calibrate monitor/models/finmon-minilm [--device cpu] [--threads 2]

The rows are the model's own validation rows, rebuilt exactly as `finmon train` carved them: the data files,
validation fraction and split seed recorded in its metrics.json (`arguments.data`, `training.seed`) go through
the same split code, and the rebuilt rows must have the fingerprints recorded there, so no row the model trained
on is used. Data paths are as given to `finmon train` (usually relative to the repository root); run from
there, or point the options below at the files. The model is not retrained: finmon_config.json gets the new
calibration, and metrics.json, the card, the reports and the plots are rewritten for the new version.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from pipelines.training.args import DataArguments
from pipelines.training.calibration import calibrate_dir
from pipelines.training.data import other_validation_rows
from pipelines.training.finalize import evaluate_saved, int8_agreement, write_metrics_and_card
from pipelines.training.trainer import ValSet

_PATHS = ("sentiment_data", "topic_data", "topic_labels")


def recorded_metrics(model_dir: Path) -> dict[str, Any]:
    """The model's metrics.json, which must record how its validation rows were carved."""
    path = model_dir / "metrics.json"
    if not path.is_file():
        raise click.UsageError(
            f"{model_dir} has no metrics.json, so its validation rows are unknown; calibrate needs the rows "
            "`finmon train` held out. Retrain the model with `finmon train` (which calibrates it)"
        )
    metrics: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if "data" not in metrics.get("arguments", {}) or "seed" not in metrics["arguments"].get("training", {}):
        raise click.UsageError(f"{path} lacks arguments.data or arguments.training.seed (not written by "
                               "`finmon train`); retrain the model with `finmon train`")
    return metrics


def data_arguments(metrics: dict[str, Any], overrides: dict[str, Any]) -> tuple[DataArguments, int]:
    """The recorded data arguments (paths replaced by `overrides` where given) and the split seed."""
    recorded = metrics["arguments"]["data"]
    known = {f.name for f in fields(DataArguments)}
    values = {k: v for k, v in recorded.items() if k in known}
    # Only the held-out rows matter here: no teacher, no export, no cap on training rows.
    values.update(pseudo_label_model=None, export_split=None, max_train_samples=None)
    for name in _PATHS:
        given = overrides.get(name)
        values[name] = given if given is not None else (Path(values[name]) if values.get(name) else None)
        if values[name] is not None and not values[name].exists():
            flag = "--" + name.replace("_", "-")
            raise click.BadParameter(
                f"{values[name]} (recorded in metrics.json as the {name.replace('_', ' ')}) does not exist from "
                f"{Path.cwd()}; run from the directory `finmon train` ran in, or pass {flag} PATH"
            )
    recorded_news = values.get("news_data") or ()
    if isinstance(recorded_news, str):  # recorded by a run that took one news file
        recorded_news = (recorded_news,)
    values["news_data"] = tuple(Path(p) for p in (overrides.get("news_data") or recorded_news))
    for path in values["news_data"]:
        if not path.exists():
            raise click.BadParameter(f"{path} (recorded in metrics.json as news data) does not exist from "
                                     f"{Path.cwd()}; run from the directory `finmon train` ran in, or pass --news-data")
    seed = recorded.get("split_seed")
    return DataArguments(**values), int(metrics["arguments"]["training"]["seed"] if seed is None else seed)


def recorded_splits(model_dir: Path, metrics: dict[str, Any], overrides: dict[str, Any]) -> list[Any]:
    """The model's train / held-out splits, rebuilt from its metrics.json; the held-out rows are checked against
    the fingerprints recorded there."""
    from monitor.classify.model import ModelConfig
    from pipelines.training.train import load_splits

    data, seed = data_arguments(metrics, overrides)
    splits, topics = load_splits(data, seed)
    config = ModelConfig.load(model_dir)
    if data.topic_data is not None and topics != config.topic_labels:
        raise click.UsageError(f"the topic labels of {data.topic_labels or data.topic_data} are not the model's "
                               "(finmon_config.json); pass the --topic-labels file it was trained with")
    changed = other_validation_rows(model_dir, splits)
    if changed:
        raise click.UsageError(
            f"the {changed[0]} validation rows rebuilt from the recorded data differ from the ones the model held "
            "out (fingerprint in metrics.json): the data file changed since training, and its rows could include "
            "rows the model trained on; restore the original file or retrain"
        )
    return splits


def validation_sets(model_dir: Path, metrics: dict[str, Any], overrides: dict[str, Any]) -> list[ValSet]:
    """The model's held-out rows per task, checked against the fingerprints in its metrics.json."""
    from pipelines.training.train import validation_sets as train_validation_sets

    return train_validation_sets(recorded_splits(model_dir, metrics, overrides))


def recalibrate(model_dir: Path, overrides: dict[str, Any], device: str = "auto") -> dict[str, Any]:
    """Calibrate `model_dir` on its validation rows, re-measure it and rewrite its metrics.json and card."""
    metrics = recorded_metrics(model_dir)
    val = validation_sets(model_dir, metrics, overrides)
    if not val:
        raise click.UsageError(f"{model_dir} was trained without validation rows (--validation-fraction 0); "
                               "there is nothing to calibrate on")
    previous = {"version": metrics.get("version"), "int8_agreement": metrics.get("int8_agreement"),
                "calibration": _summary(metrics.get("calibration"))}
    calibration = {**calibrate_dir(model_dir, val, device), "previous": previous}
    engine, results = evaluate_saved(model_dir, val, device)
    metrics.update(
        version=engine.version,
        calibrated_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        validation=results,
        calibration=calibration,
        int8_agreement=int8_agreement(model_dir, val),
    )
    write_metrics_and_card(model_dir, metrics)
    return metrics


def _summary(calibration: dict[str, Any] | None) -> dict[str, Any] | None:
    """A previous calibration without its bulky tables."""
    if not calibration:
        return None
    return {"temperatures": {t: h["temperature"] for t, h in calibration["heads"].items()},
            "int8_rescore_margin": calibration["int8_rescore_margin"]["chosen"]}


def summary_line(metrics: dict[str, Any]) -> str:
    """One JSON line: the new version, temperatures, ECE before/after, the margin and int8 agreement."""
    cal = metrics["calibration"]
    heads = {task: {k: round(h[k], 4) for k in ("temperature", "ece_before", "ece_after", "ece_after_cross_fitted")}
             for task, h in cal["heads"].items()}
    agree = {k: round(v, 4) for k, v in metrics["int8_agreement"].items() if isinstance(v, float)}
    return json.dumps({"version": metrics["version"], "heads": heads,
                       "int8_rescore_margin": cal["int8_rescore_margin"]["chosen"], "int8_agreement": agree})


def data_path_options(whose: str) -> Any:
    """--sentiment-data, --topic-data, --topic-labels and --news-data (where `whose` training files are now, when
    not at the paths its metrics.json recorded), then --device and --threads."""
    options = (
        click.option("--sentiment-data", type=click.Path(path_type=Path), default=None,
                     help=f"Sentiment file {whose} was trained on (default: the path recorded in metrics.json)."),
        click.option("--topic-data", type=click.Path(path_type=Path), default=None,
                     help=f"Topic file {whose} was trained on (default: the path recorded in metrics.json)."),
        click.option("--topic-labels", type=click.Path(path_type=Path), default=None,
                     help=f"Topic label file {whose} was trained with (default: the path recorded in metrics.json)."),
        click.option("--news-data", type=click.Path(path_type=Path), multiple=True,
                     help=f"Two-label news file(s) {whose} was trained on (default: the paths recorded in "
                          "metrics.json)."),
        click.option("--device", default="auto", show_default=True,
                     help="auto, cpu, cuda or cuda:N (int8 runs on CPU)."),
        click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)."),
    )

    def decorate(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def prepare_cpu(threads: int | None) -> None:
    """No tokenizer thread pools (they fight torch for the cores); torch's thread count when given."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if threads:
        import torch

        torch.set_num_threads(threads)


def model_dir_argument(ref: str, hint: str) -> Path:
    """A model directory or a shipped model's name (finmon-minilm), resolved as `load_classifier` does."""
    from monitor.classify.model import ModelNotFoundError, resolve_model_dir

    try:
        return resolve_model_dir(ref)
    except ModelNotFoundError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from exc


@click.command("calibrate")
@click.argument("model_dir", type=click.Path(path_type=Path, file_okay=False))
@data_path_options("the model")
def command(model_dir: Path, device: str, threads: int | None, **paths: Any) -> None:
    """Fit a temperature per head and the int8 re-score margin on MODEL_DIR's validation rows (no retraining);
    rewrite its finmon_config.json, metrics.json and model card."""
    prepare_cpu(threads)
    click.echo(summary_line(recalibrate(model_dir_argument(str(model_dir), "MODEL_DIR"), paths, device)))
