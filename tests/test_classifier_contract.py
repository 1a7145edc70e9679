"""The classifier contract over every engine that runs offline here: the shipped default as the
product loads it (with language routing), the frozen-encoder head model, and any Hugging Face
model directory (a small random one, saved as a fine-tuned model would be)."""

from __future__ import annotations

import pytest
from classifier_contract import ClassifierContract, tiny_model_dir

from listener.config import ClassifierConfig
from models.classifier import Classifier
from models.loader import load_classifier, load_model


@pytest.fixture(scope="module")
def shipped_default() -> Classifier:
    return load_classifier(ClassifierConfig())


@pytest.fixture(scope="module")
def head_model() -> Classifier:
    return load_model("minilm-head", ClassifierConfig())


@pytest.fixture(scope="module")
def hugging_face_dir(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    model_dir = tiny_model_dir(tmp_path_factory.mktemp("hf") / "model", {0: "NEG", 1: "NEU", 2: "POS"})
    return load_model(str(model_dir), ClassifierConfig(batch_size=8))


@pytest.mark.slow
class TestShippedDefaultClassifierContract(ClassifierContract):
    @pytest.fixture
    def classifier(self, shipped_default: Classifier) -> Classifier:
        return shipped_default


@pytest.mark.slow
class TestHeadClassifierContract(ClassifierContract):
    @pytest.fixture
    def classifier(self, head_model: Classifier) -> Classifier:
        return head_model


class TestHuggingFaceDirClassifierContract(ClassifierContract):
    reads_sentiment = False

    @pytest.fixture
    def classifier(self, hugging_face_dir: Classifier) -> Classifier:
        return hugging_face_dir
