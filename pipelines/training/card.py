"""The model card (README.md) written next to every trained model, from its metrics.json content."""

from __future__ import annotations

import os
from typing import Any

DATA_NOTES = {
    "sent_train.csv": "Twitter Financial News Sentiment (zeroshot/twitter-financial-news-sentiment), train "
    "split, 9,543 English finance tweets; licence: MIT (per the dataset card).",
    "topic_train.csv": "Twitter Financial News Topic (zeroshot/twitter-financial-news-topic), train split, "
    "16,990 English finance tweets, 20 topics; licence: MIT (per the dataset card).",
    "finmon_news.csv": "finmon's own news set (data/news: newswire headlines and release sentences written for the "
    "project, both labels per row, fixed split; PROVENANCE.md); licence: MIT.",
}


def _data_lines(metrics: dict[str, Any]) -> list[str]:
    lines = []
    for task, info in metrics["data"].items():
        name = info["file"].rsplit("/", 1)[-1]
        note = DATA_NOTES.get(name, "user-supplied data; check its licence before redistributing the model.")
        lines.append(
            f"- **{task}**: `{name}` — {note} {info['train_rows']} rows trained on, "
            f"{info['validation_rows']} held out (fingerprint `{info['fingerprints']['validation']}`)"
            + (f", each training row seen {info['repeat']} times per epoch." if info.get("repeat", 1) > 1 else ".")
        )
    return lines


def _metric_table(metrics: dict[str, Any]) -> list[str]:
    lines = ["| head | n | accuracy | macro-F1 | weighted-F1 |", "|---|---|---|---|---|"]
    for task, r in metrics["validation"].items():
        lines.append(f"| {task} | {r['n']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['weighted_f1']:.4f} |")
    return lines


def _int8_lines(metrics: dict[str, Any]) -> list[str]:
    agree = metrics.get("int8_agreement")
    if not agree:
        return []
    lines = [
        "",
        "Dynamic int8 quantisation (`load_classifier(quantize=True)`, CPU) vs fp32 on the same held-out "
        f"texts (n={agree['n']}): topic agreement {agree['topic_agreement']:.4f}, sentiment agreement "
        f"{agree['sentiment_agreement']:.4f}, largest probability change {agree['max_abs_prob_diff']:.4f}.",
    ]
    if "rescored_fraction" in agree:
        lines.append(
            f"The int8 engine re-scores low-margin texts in fp32 ({agree['rescored_fraction']:.1%} of these "
            f"texts); pure int8 agrees on {agree['raw_topic_agreement']:.4f} (topic) and "
            f"{agree['raw_sentiment_agreement']:.4f} (sentiment)."
        )
    return lines


def _calibration_lines(metrics: dict[str, Any]) -> list[str]:
    """ECE before/after per head and the int8 margin, when the model was calibrated (older cards lack it)."""
    cal = metrics.get("calibration")
    if not cal:
        return []
    lines = [
        "",
        "## Calibration",
        "Probabilities are temperature-scaled per head, softmax(logits / T), with T fitted by minimising the "
        "negative log-likelihood on the validation rows (labels and accuracy are unchanged). Expected calibration "
        f"error over {cal['ece_bins']} equal-width bins of top-class confidence; the cross-fitted column scores "
        "each half of the rows at the temperature fitted on the other half:",
        "",
        "| head | n | T | ECE before | ECE after | ECE after (cross-fitted) | NLL before | NLL after | "
        "mean confidence before / after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, h in cal["heads"].items():
        lines.append(
            f"| {task} | {h['n']} | {h['temperature']:.3f} | {h['ece_before']:.4f} | {h['ece_after']:.4f} | "
            f"{h['ece_after_cross_fitted']:.4f} | {h['nll_before']:.4f} | {h['nll_after']:.4f} | "
            f"{h['mean_confidence_before']:.3f} / {h['mean_confidence_after']:.3f} |"
        )
    m = cal["int8_rescore_margin"]
    at = m["at_chosen"]
    verdict = "the smallest" if m["reached"] else "none reached the target; the largest"
    lines += [
        "",
        f"Reliability diagrams: `reliability_<head>.png`. int8 re-score margin: {m['chosen']} ({verdict} of "
        f"{len(m['grid'])} margins tried with which int8 plus fp32 re-scoring agrees with fp32 on >= "
        f"{m['target_agreement']:.1%} of top labels per head on the n={m['n']} validation texts, estimated from one "
        f"int8 and one fp32 pass: topic {at['topic_agreement']:.4f}, sentiment {at['sentiment_agreement']:.4f}, "
        f"{at['rescored_fraction']:.1%} re-scored), stored in `finmon_config.json` with the temperatures. "
        "`finmon calibrate MODEL_DIR` refits both.",
    ]
    return lines


def _notes(metrics: dict[str, Any], section: str) -> list[str]:
    """Hand-written lines kept in metrics.json under `card_notes`, so a re-rendered card (after `finmon calibrate`)
    keeps what the generator cannot know, e.g. how a teacher model was trained."""
    text = metrics.get("card_notes", {}).get(section)
    return [*text.splitlines(), ""] if text else []


def reproduce_command(arguments: dict[str, dict[str, Any]]) -> str:
    """The `finmon train` command line with every argument that differs from its default."""
    import dataclasses

    from pipelines.training.args import DataArguments, ModelArguments, TrainingArguments

    parts = ["finmon train"]
    for group, cls in (("data", DataArguments), ("model", ModelArguments), ("training", TrainingArguments)):
        for f in dataclasses.fields(cls):
            value = arguments.get(group, {}).get(f.name)
            if value == f.default:  # defaults are plain values (no Path defaults), as in metrics.json
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                parts.append(flag if value else flag.replace("--", "--no-", 1))
            elif isinstance(value, list | tuple):  # a repeatable option (--news-data A --news-data B)
                parts += [f"{flag} {v}" for v in value]
            elif value is not None:
                parts.append(f"{flag} {value}")
    return " \\\n    ".join(parts)


def _soft_lines(metrics: dict[str, Any]) -> list[str]:
    soft = metrics.get("soft_labels")
    if not soft:
        return []
    rows = ", ".join(f"{task} {n}" for task, n in soft["rows"].items())
    source = ""
    if soft.get("file"):
        source = f" (read from `{os.path.basename(soft['file'])}`, written by `--save-soft-labels`)"
    without = soft.get("without_teacher") or {}
    scope = "the training rows" if without else "every training row"
    line = (f"- Distillation: teacher `{soft['teacher']}`'s probabilities at T={soft['temperature']} on {scope} "
            f"({rows}){source}, both heads, {soft['weight']:.0%} of the loss (the rest: gold labels).")
    if without:
        line += " No teacher output for " + ", ".join(f"{task} ({n} rows)" for task, n in without.items()) + \
            ": those rows learn from their gold labels only."
    return [line]


def _pseudo_lines(metrics: dict[str, Any]) -> list[str]:
    counts = metrics.get("pseudo_labels")
    if not counts:
        return []
    data = metrics["arguments"]["data"]
    parts = ", ".join(f"{k.replace('_', ' ')}: {v['labelled']}/{v['of']}" for k, v in counts.items())
    return [
        f"- Self-training: teacher `{data['pseudo_label_model']}` labelled training rows for the task their file "
        f"lacks where its probability was >= {data['pseudo_label_threshold']} ({parts}); validation rows are "
        "gold labels only."
    ]


def _encoder_line(m: dict[str, Any]) -> str:
    if m["lora_r"] > 0:
        return (
            f"- LoRA adapter (r={m['lora_r']}, alpha={m['lora_alpha']}) on every linear layer, merged into the "
            "encoder at load time."
        )
    return (
        "- Full fine-tune of the transformer layers (embeddings frozen), shipped as the difference from the base "
        f"encoder quantised to {m.get('delta_bits', 4)} bits per weight (`encoder_delta.safetensors`), added to "
        "the base weights at load time; the metrics below are measured on the rebuilt weights."
    )


def _regularisation_lines(t: dict[str, Any]) -> list[str]:
    """The optional fine-tuning regularisers, when used (older metrics.json files lack the keys)."""
    parts = []
    if t.get("layer_lr_decay", 1.0) < 1:
        parts.append(f"layer-wise lr decay {t['layer_lr_decay']} (each layer below the top trains slower)")
    if t.get("ema_decay", 0.0) > 0:
        parts.append(f"the evaluated and saved weights are an exponential moving average (decay {t['ema_decay']})")
    if t.get("label_smoothing", 0.0) > 0:
        parts.append(f"label smoothing {t['label_smoothing']}")
    return [f"- Regularisation: {'; '.join(parts)}."] if parts else []


def _split_seed(args: dict[str, Any]) -> Any:
    seed = args["data"].get("split_seed")
    return args["training"]["seed"] if seed is None else seed


def _soup_lines(metrics: dict[str, Any]) -> list[str]:
    soup = metrics.get("weight_average")
    if not soup:
        return []
    verdict = "kept" if soup["kept"] else "discarded (this run alone is what ships)"
    return [
        f"- Weight average with `{soup['with']}` (same base and validation rows, another seed): mean validation "
        f"macro-F1 {soup['score_averaged']:.4f} vs {soup['score_alone']:.4f} for this run alone, so the average was "
        f"{verdict}."
    ]


def _average_lines(metrics: dict[str, Any]) -> list[str]:
    """`finmon average`: which two models, at what weight, and how each scored on the same validation rows."""
    src = metrics.get("averaged_from")
    if not src:
        return []
    w, p, q = src["weight"], src["primary"], src["partner"]
    lines = [
        f"- **Weight average** (`finmon average`, {metrics.get('averaged_utc', '')}): {w:g} x `{p['path']}` "
        f"(`{p['version']}`, trained as described here) + {1 - w:g} x `{q['path']}` (`{q['version']}`), every "
        "weight of the encoder and heads, then calibrated afresh. The partner never trained on a validation row "
        "below (checked text by text against its rebuilt training rows). Validation macro-F1, primary / partner "
        "/ average:",
    ]
    for key, v in metrics["validation"].items():
        lines.append(f"  - {key}: {p['validation'][key]['macro_f1']:.4f} / {q['validation'][key]['macro_f1']:.4f}"
                     f" / {v['macro_f1']:.4f}")
    return lines


def render_card(metrics: dict[str, Any]) -> str:
    """Markdown model card: what it is, how it was trained, on what data (and licence), how well it does."""
    args = metrics["arguments"]
    m, t = args["model"], args["training"]
    best = metrics.get("best_evaluation") or {}
    lines = [
        f"# {metrics['model']}",
        "",
        f"Topic + sentiment classifier for finmon, version `{metrics['version']}`, trained {metrics['created_utc']}.",
        "",
        "## Model",
        f"- Base encoder: `{metrics['base_model']}` (not copied here; resolved at load time), mean pooling, "
        f"max {m['max_length']} tokens.",
        _encoder_line(m),
        "- Two linear heads (topic, sentiment) on the shared embedding, one forward pass.",
        f"- Labels: sentiment {', '.join(args.get('sentiment_labels', ['negative', 'neutral', 'positive']))}; "
        f"topics as in `finmon_config.json`.",
        "",
        "## Training",
        f"- Multi-task, masked loss (each row trains only the head it has a label for); AdamW "
        f"(encoder lr {t['learning_rate']}, heads lr {t['head_learning_rate']}, weight decay {t['weight_decay']}), "
        f"{t['scheduler']} decay after {t['warmup_ratio']:.0%} warm-up, batch {t['batch_size']}, up to "
        f"{t['epochs']} epochs, early stopping (patience {t['early_stopping_patience']}) on mean macro-F1; "
        f"class weights: topic {t['topic_class_weights']}, sentiment {t['sentiment_class_weights']}; seed {t['seed']}.",
        *_regularisation_lines(t),
        *_pseudo_lines(metrics),
        *_soft_lines(metrics),
        *_soup_lines(metrics),
        *_average_lines(metrics),
        f"- Best evaluation at epoch {best.get('epoch', 'n/a')}; {metrics['train_steps']} steps in "
        f"{metrics['train_seconds'] / 60:.1f} min on {metrics['environment']['device']}.",
        "",
        "## Data",
        *_data_lines(metrics),
        f"- Validation rows are a seeded ({_split_seed(args)}), label-stratified "
        f"{args['data']['validation_fraction']:.0%} of each file (of a --news-data file: its own validation "
        "split), never trained on; they were used to pick the "
        "best epoch (early stopping), so the figures below are slightly optimistic.",
        "",
        "## Validation metrics (this artifact, loaded with `load_classifier`)",
        *_metric_table(metrics),
        *_int8_lines(metrics),
        "",
        "Per-class results: `classification_report_<head>.txt`, `confusion_matrix_<head>.png`, `metrics.json`.",
        *_calibration_lines(metrics),
        "",
        "## Reproduce",
        *_notes(metrics, "reproduce"),
        "Training command (paths as used for this run; `--export-split DIR` writes the held-out rows), then",
        "`finmon evaluate --task topic|sentiment --data DIR/<task>_validation.csv --model OUTPUT_DIR`:",
        "",
        "```",
        reproduce_command(args),
        *([metrics["averaged_from"]["command"]] if metrics.get("averaged_from") else []),
        "```",
        "",
        *_extra_notes(metrics),
        "## Limitations",
        metrics.get("card_notes", {}).get("limitations")
        or "- English finance tweets/headlines only; other languages and long articles are out of domain "
        "(long texts are truncated).",
        "- Labels reflect the annotators of the source datasets; topic classes with few examples are less reliable.",
        "",
    ]
    return "\n".join(lines)


def _extra_notes(metrics: dict[str, Any]) -> list[str]:
    """Hand-written card_notes sections other than `reproduce` and `limitations`, each under its own heading."""
    out: list[str] = []
    for section, text in metrics.get("card_notes", {}).items():
        if section not in ("reproduce", "limitations") and text:
            out += [f"## {section.replace('_', ' ').capitalize()}", *text.splitlines(), ""]
    return out
