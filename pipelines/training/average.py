"""`finmon average PRIMARY PARTNER --weight W --output-dir OUT`: a calibrated weighted mean of two finmon models.

    finmon average /work/cand monitor/models/finmon-minilm --weight 0.5 --output-dir /work/soup

Two fine-tunes of the same base encoder that learnt different things (one on a new register of news, one
without it) can sit close enough in weight space that their mean keeps much of both; a weight between them
trades one domain against the other at the cost of one model (the README measures 0.3 / 0.5 / 0.7). Unlike
`finmon train --average-with` (same rows, another seed, an even mean kept only if it scores higher), the two
models may have been trained on different files: the average is measured on PRIMARY's validation rows, so
the PARTNER must not have trained on any of them. Its training rows are rebuilt from its metrics.json and
compared text by text; a partner whose training rows cannot be rebuilt is refused.

The result is a normal model directory: the temperatures and the int8 re-score margin are fitted again on
PRIMARY's validation rows (an average's logits are not either parent's), and metrics.json and the card record
both parents, the weight, and the validation scores of all three side by side.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from pipelines.training.calibration import calibrate_dir
from pipelines.training.finalize import evaluate_saved, int8_agreement, predicted_labels, write_metrics_and_card
from pipelines.training.recalibrate import (
    data_arguments,
    data_path_options,
    model_dir_argument,
    prepare_cpu,
    recorded_metrics,
    recorded_splits,
)

log = logging.getLogger(__name__)


def check_same_kind(primary: Path, partner: Path) -> None:
    """Both must be finmon models on the same base with the same labels and embedding size."""
    from monitor.classify.model import ModelConfig

    ours, theirs = ModelConfig.load(primary), ModelConfig.load(partner)
    for name in ("base_model", "topic_labels", "sentiment_labels", "hidden_size"):
        if getattr(ours, name) != getattr(theirs, name):
            raise click.UsageError(
                f"{primary} and {partner} differ in {name.replace('_', ' ')} ({getattr(ours, name)!r:.80} vs "
                f"{getattr(theirs, name)!r:.80}): only fine-tunes of the same base with the same labels can be averaged"
            )


def train_texts(splits: list[Any]) -> set[str]:
    return {text for sp in splits for text in sp.train["text"].tolist()}


def training_texts(model_dir: Path) -> set[str]:
    """Every text a model trained on, rebuilt from its metrics.json with the split code `finmon train` used, and
    an average's partner's too (its metrics.json records its primary's rows only)."""
    from pipelines.training.train import load_splits

    metrics = recorded_metrics(model_dir)
    try:
        data, seed = data_arguments(metrics, {})
    except click.BadParameter as exc:
        raise click.UsageError(
            f"the training rows of {model_dir} cannot be rebuilt, so it could have trained on the validation rows "
            f"the average is measured on: {exc.message}"
        ) from exc
    texts = train_texts(load_splits(data, seed)[0])
    averaged = metrics.get("averaged_from")
    if averaged:
        partner = Path(averaged["partner"]["path"])
        if not (partner / "metrics.json").is_file():
            raise click.UsageError(
                f"{model_dir} is an average with {partner}, which is gone, so the rows it trained on cannot be "
                "checked: restore it at that path, or average the original models instead"
            )
        texts |= training_texts(partner)
    return texts


def check_no_leak(val: list[Any], primary_train: set[str], partner: Path) -> dict[str, int]:
    """Refuse a partner that trained on validation rows the primary never trained on (a text in two files, held
    out in one and trained on in the other, is the primary's own overlap, not the partner's leak); return the
    rows checked per set."""
    seen = training_texts(partner) - primary_train
    for vs in val:
        leaked = [t for t in vs.texts if t in seen]
        if leaked:
            raise click.UsageError(
                f"{partner} trained on {len(leaked)} of the {len(vs.texts)} {vs.key} validation rows the average "
                f"would be measured on (e.g. {leaked[0][:80]!r}): use a primary whose validation rows it never saw"
            )
    return {vs.key: len(vs.texts) for vs in val}


def average_weights(primary: Path, partner: Path, weight: float, out_dir: Path, delta_bits: int) -> None:
    """Save weight * primary + (1 - weight) * partner (every float tensor, encoder and heads) to `out_dir`."""
    import torch

    from monitor.classify.model import ModelConfig, load_model, save_model

    model, tokenizer, _ = load_model(primary)
    other = load_model(partner)[0].state_dict()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(weight * tensor + (1.0 - weight) * other[name])
    config = ModelConfig.load(primary)
    config.calibration, config.adapter, config.delta = None, None, None  # refitted / rewritten below
    save_model(model, tokenizer, config, out_dir, delta_bits=delta_bits)


def _scores(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    return {k: {m: round(v[m], 4) for m in ("accuracy", "macro_f1")} for k, v in results.items()}


def parent_scores(model_dir: Path, val: list[Any], device: str) -> dict[str, dict[str, float]]:
    """A parent's accuracy and macro-F1 on the validation rows (it is loaded as users load it)."""
    from monitor.classify.engine import load_classifier
    from pipelines.training.metrics import compute_metrics

    engine = load_classifier(str(model_dir), device=device)
    results = {vs.key: compute_metrics(vs.labels, *predicted_labels(engine, vs))
               for vs in tqdm(val, desc=f"scoring {model_dir}", unit="set")}
    return _scores(results)


def average(primary: Path, partner: Path, weight: float, out_dir: Path, overrides: dict[str, Any],
            device: str = "auto") -> dict[str, Any]:
    """Average, calibrate and measure; write metrics.json and the card into `out_dir`."""
    if not 0.0 < weight < 1.0:
        raise click.BadParameter(f"{weight} is not strictly between 0 and 1 (1 is PRIMARY alone, 0 the partner)",
                                 param_hint="--weight")
    if out_dir.resolve() in (primary.resolve(), partner.resolve()):
        raise click.BadParameter("must be a new directory, not one of the two models", param_hint="--output-dir")
    check_same_kind(primary, partner)
    from pipelines.training.train import validation_sets

    metrics = recorded_metrics(primary)
    splits = recorded_splits(primary, metrics, overrides)
    val = validation_sets(splits)
    if not val:
        raise click.UsageError(f"{primary} was trained without validation rows; the average could not be measured")
    checked = check_no_leak(val, train_texts(splits), partner)
    delta_bits = int(metrics["arguments"]["model"].get("delta_bits", 4))
    log.info("averaging %g x %s + %g x %s into %s", weight, primary, 1 - weight, partner, out_dir)
    average_weights(primary, partner, weight, out_dir, delta_bits)
    calibration = calibrate_dir(out_dir, val, device)
    log.info("scoring the average on %d validation rows (reports, confusion matrices)", sum(len(v.texts) for v in val))
    engine, results = evaluate_saved(out_dir, val, device)
    parents = {"primary": _parent(primary, metrics), "partner": _parent(partner, recorded_metrics(partner))}
    parents["primary"]["validation"] = parent_scores(primary, val, device)
    parents["partner"]["validation"] = parent_scores(partner, val, device)
    metrics.update(
        version=engine.version,
        averaged_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        validation=results,
        calibration=calibration,
        int8_agreement=int8_agreement(out_dir, val),
        averaged_from={"weight": weight, **parents, "leak_check_rows": checked,
                       "command": average_command(primary, partner, weight, out_dir)},
    )
    write_metrics_and_card(out_dir, metrics)
    return metrics


def _parent(model_dir: Path, recorded: dict[str, Any]) -> dict[str, Any]:
    return {"path": str(model_dir), "version": recorded.get("version")}


def average_command(primary: Path, partner: Path, weight: float, out_dir: Path) -> str:
    return f"finmon average {primary} {partner} --weight {weight} --output-dir {out_dir}"


def summary_line(metrics: dict[str, Any]) -> str:
    """One JSON line: the new version and the validation macro-F1 of primary, partner and average."""
    src = metrics["averaged_from"]
    rows = {key: {"primary": src["primary"]["validation"][key]["macro_f1"],
                  "partner": src["partner"]["validation"][key]["macro_f1"],
                  "average": round(v["macro_f1"], 4)} for key, v in metrics["validation"].items()}
    return json.dumps({"version": metrics["version"], "weight": src["weight"], "validation_macro_f1": rows})


@click.command("average")
@click.argument("primary")
@click.argument("partner")
@click.option("--weight", type=float, required=True,
              help="PRIMARY's share of every weight (0 < W < 1); the partner gets 1 - W.")
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="New model directory for the average.")
@data_path_options("PRIMARY")
def command(primary: str, partner: str, weight: float, output_dir: Path, device: str, threads: int | None,
            **paths: Any) -> None:
    """Average PRIMARY and PARTNER (W * PRIMARY + (1 - W) * PARTNER), calibrate the result on PRIMARY's
    validation rows and write it, with metrics.json and a card, to --output-dir. Each is a model directory or a
    shipped model's name (finmon-minilm). PARTNER must not have trained on those rows (checked against the rows
    its metrics.json says it trained on)."""
    prepare_cpu(threads)
    dirs = [model_dir_argument(ref, hint) for ref, hint in ((primary, "PRIMARY"), (partner, "PARTNER"))]
    click.echo(summary_line(average(dirs[0], dirs[1], weight, output_dir, paths, device)))

