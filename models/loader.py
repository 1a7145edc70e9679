"""Build the configured classifier: the bundled default, or a Hugging Face model."""

from __future__ import annotations

from listener.config import ClassifierConfig
from models.classifier import Classifier

__all__ = ["load_classifier"]


def load_classifier(cfg: ClassifierConfig) -> Classifier:
    """`model: default` is the offline MiniLM classifier; anything else is a HF dir or hub name.

    Raises `listener.errors.ClassifierError` when the model cannot be loaded.
    """
    if cfg.model == "default":
        from models.minilm import MiniLMClassifier

        return MiniLMClassifier.from_config(cfg)
    from models.hf import HFClassifier

    return HFClassifier.from_config(cfg)
