"""Build the configured classifier: the main model, language routing, per-language models."""

from __future__ import annotations

from pathlib import Path

from listener.config import ClassifierConfig
from listener.errors import ClassifierError
from models.classifier import Classifier

__all__ = ["load_classifier", "load_model"]


def load_model(name: str, cfg: ClassifierConfig) -> Classifier:
    """One model by name: `default` (the shipped fine-tuned MiniLM), `minilm-head` (frozen
    MiniLM + linear head), `multilingual` (frozen multilingual-e5-small + head, for de, es, fr,
    it, pt), a directory written by `listener train`, or a Hugging Face dir/name.

    Raises `listener.errors.ClassifierError` when the model cannot be loaded.
    """
    if name == "minilm-head":
        from models.minilm import MiniLMClassifier

        return MiniLMClassifier.from_config(cfg)
    if name == "multilingual":
        from models.multilingual import MultilingualClassifier

        return MultilingualClassifier(batch_size=cfg.batch_size, threads=cfg.threads)
    from models.finetuned import FinetunedClassifier
    from models.tuned import is_model_dir

    if name == "default" or is_model_dir(Path(name).expanduser()):
        path = None if name == "default" else Path(name).expanduser()
        return FinetunedClassifier(
            path, device=cfg.device, batch_size=cfg.batch_size, threads=cfg.threads, int8=cfg.int8
        )
    from models.hf import HFClassifier

    return HFClassifier(
        name, device=cfg.device, batch_size=cfg.batch_size, max_length=cfg.max_length, threads=cfg.threads
    )


def load_classifier(cfg: ClassifierConfig) -> Classifier:
    """The main model behind language routing: uncovered languages come back `unscored`."""
    from models.language import LanguageDetector
    from models.routing import RoutedClassifier

    mapped = cfg.language_models
    if "language_models" in cfg.model_fields_set:
        for code in mapped:
            if code not in cfg.detect_languages:
                raise ClassifierError(
                    f"classifier.language_models names {code!r}, which is not in classifier.detect_languages"
                )
    else:  # the default mapping serves whichever of its languages this config detects
        mapped = {code: name for code, name in mapped.items() if code in cfg.detect_languages}
    main = load_model(cfg.model, cfg)
    if not cfg.detect_languages:
        return main  # every text is trusted to the main model; verdicts carry no language
    by_name = {name: load_model(name, cfg) for name in set(mapped.values())}  # one copy each
    others = {code: by_name[name] for code, name in mapped.items()}
    detector = LanguageDetector(cfg.detect_languages)
    return RoutedClassifier(main, covered=cfg.languages, detector=detector, others=others)
