"""The classifier contract the streaming stages depend on.

The classify stage only knows this protocol: any model the engine can load (the shipped default, a user's
fine-tune, a Hugging Face checkpoint) is wrapped behind it, which keeps model code out of the Kafka code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")


@dataclass(frozen=True, slots=True)
class Prediction:
    """Both heads' output for one text."""

    topic: str
    topic_probs: dict[str, float]
    sentiment: str
    sentiment_probs: dict[str, float]  # keys: negative, neutral, positive

    @property
    def sentiment_score(self) -> float:
        """P(positive) - P(negative), in [-1, 1]."""
        return self.sentiment_probs["positive"] - self.sentiment_probs["negative"]


@runtime_checkable
class Classifier(Protocol):
    """Scores texts for topic and sentiment in one forward pass."""

    @property
    def version(self) -> str:
        """A stable identifier of the loaded model (name + content hash), stored with every score."""
        ...

    @property
    def topic_labels(self) -> tuple[str, ...]: ...

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Score `texts` (any length, any content; never raises on odd text) in input order."""
        ...
