"""Topic + sentiment classification: the model, its loader and the batched inference engine."""

from monitor.classify.base import SENTIMENT_LABELS, Classifier, Prediction
from monitor.classify.engine import Engine, load_classifier

__all__ = ["SENTIMENT_LABELS", "Classifier", "Engine", "Prediction", "load_classifier"]
