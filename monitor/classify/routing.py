"""Routing by language: one classify worker, several models, each item scored by the model of its language.

`classify.models_by_lang` maps languages (ISO 639-1 primary subtags as items carry them, e.g. `zh`, `de`) to
models; every other language, and items whose language is undetermined (`und`), go to `classify.model`. A
micro-batch is split per model and each part scored in one call, so batching stays per model; results come back
in input order with the version of the model that scored each item (stored with every score).

All models must share the topic labels of the default: windows, alerts and the dashboard count topics by name,
and two label sets would mix in one window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from monitor.classify.base import Classifier, Prediction
from monitor.errors import FinmonError

T = TypeVar("T")


class RoutingError(FinmonError):
    """The language -> model map cannot be used as configured."""


def by_language(mapping: Mapping[str, T]) -> dict[str, T]:
    """The language map with lower-case keys, as items' languages are looked up in it (`(lang or "").lower()`)."""
    return {lang.lower(): value for lang, value in mapping.items()}


def mixed_labels(lang: str, version: str, labels: Sequence[str], default_version: str,
                 default_labels: Sequence[str]) -> RoutingError:
    return RoutingError(
        f"the model for language {lang!r} ({version}) has other topic labels than the default model "
        f"({default_version}): {list(labels)[:3]}... vs {list(default_labels)[:3]}...; windows would mix two label "
        "sets. Train it on the same topics (finmon train --topic-labels) or remove it from classify.models_by_lang"
    )


@dataclass(frozen=True)
class Routed:
    """One item's prediction and the version of the model that made it."""

    prediction: Prediction
    version: str


class ModelRouter:
    """Picks each item's model by language and scores a batch once per model (see the module docstring)."""

    def __init__(self, default: Classifier, by_lang: Mapping[str, Classifier] | None = None) -> None:
        self.default = default
        self.by_lang = by_language(by_lang or {})
        for lang, model in self.by_lang.items():
            if tuple(model.topic_labels) != tuple(default.topic_labels):
                raise mixed_labels(lang, model.version, model.topic_labels, default.version, default.topic_labels)

    @classmethod
    def load(cls, default: str | None, by_lang: Mapping[str, str], loader: Callable[[str | None], Classifier]
             ) -> ModelRouter:
        """Load the default and every mapped model once (a model named for several languages is shared)."""
        loaded: dict[str | None, Classifier] = {default: loader(default)}
        for name in by_lang.values():
            if name not in loaded:
                loaded[name] = loader(name)
        return cls(loaded[default], {lang: loaded[name] for lang, name in by_lang.items()})

    @property
    def models(self) -> list[Classifier]:
        """Every distinct model, the default first."""
        out = [self.default]
        for model in self.by_lang.values():
            if all(model is not m for m in out):
                out.append(model)
        return out

    def model_for(self, lang: str | None) -> Classifier:
        return self.by_lang.get((lang or "").lower(), self.default)

    def predict(self, texts: Sequence[str], langs: Sequence[str | None]) -> list[Routed]:
        """Score `texts` (with their languages) in input order, one call per model that has items."""
        groups: dict[int, tuple[Classifier, list[int]]] = {}
        for i, lang in enumerate(langs):
            model = self.model_for(lang)
            groups.setdefault(id(model), (model, []))[1].append(i)
        out: list[Routed | None] = [None] * len(texts)
        for model, indices in groups.values():
            for i, prediction in zip(indices, model.predict([texts[i] for i in indices]), strict=True):
                out[i] = Routed(prediction, model.version)
        return [r for r in out if r is not None]
