"""Posts as people write them reach the model as words it knows: emoji, faces, stretched words.

Real `emoji` package, real tokenizer of the default model; nothing is mocked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from listener.errors import ClassifierError
from models.finetuned import FinetunedClassifier
from models.normalise import DEFAULT_STEPS, STEPS, normaliser


@pytest.fixture(scope="module")
def tokenizer() -> object:
    return FinetunedClassifier(threads=1, text_steps=()).tokenizer


def unknown_tokens(tokenizer: object, text: str) -> int:
    ids = tokenizer(text)["input_ids"]  # type: ignore[operator]
    return int(ids.count(tokenizer.unk_token_id))  # type: ignore[attr-defined]


def test_an_emoji_only_complaint_becomes_words_instead_of_unknown_tokens(tokenizer: object) -> None:
    post = "Brightline Mobile 📵📵 🤬🤬"
    assert unknown_tokens(tokenizer, post) > 0  # what the model read before: nothing but [UNK]
    words = normaliser(["emoji"])(post)
    assert words == ("Brightline Mobile no mobile phones no mobile phones "
                     "face with symbols on mouth face with symbols on mouth")
    assert unknown_tokens(tokenizer, words) == 0


def test_skin_tones_do_not_add_noise_words() -> None:
    assert normaliser(["emoji"])("great job 👍🏽") == "great job thumbs up"


def test_faces_standing_alone_become_words_but_urls_and_times_are_left_alone() -> None:
    faces = normaliser(["emoticons"])
    assert faces("delayed again :( thanks a lot") == "delayed again sad thanks a lot"
    assert faces("finally home :))) <3") == "finally home smile love"
    assert faces("ugh -_-") == "ugh annoyed"
    assert faces("see https://example.com/status at 10:30") == "see https://example.com/status at 10:30"


def test_stretched_words_keep_their_emphasis_on_a_spelling_the_tokenizer_has_seen() -> None:
    stretch = normaliser(["elongations"])
    assert stretch("sooooo goooood") == "soo good"
    assert stretch("noooo!!!! 2000 zzz") == "noo!!!! 2000 zz"
    assert stretch("all good here") == "all good here"


def test_the_default_model_reads_text_through_the_kept_steps_and_a_model_dir_can_say_otherwise() -> None:
    default = FinetunedClassifier(threads=1)
    assert default.text_steps == DEFAULT_STEPS
    raw = FinetunedClassifier(threads=1, text_steps=())
    assert raw.text_steps == ()
    post = ["Brightline Mobile 📵📵 🤬🤬"]
    # Reading words instead of [UNK]s must change what the model sees, and so its scores.
    assert default.classify(post)[0].negative != raw.classify(post)[0].negative


def test_an_unknown_step_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown normalisation step"):
        normaliser(["emoji", "spellcheck"])
    with pytest.raises(ClassifierError, match="spellcheck"):
        FinetunedClassifier(threads=1, text_steps=["spellcheck"])
    assert set(DEFAULT_STEPS) <= set(STEPS)


@pytest.mark.slow
def test_a_model_the_team_trains_learns_from_text_as_the_classifier_will_hand_it_over(tmp_path: Path) -> None:
    from models.finetune import FinetuneSettings, finetune

    texts = ["love it 😍", "awful 🤬", "it opens at 9", "best day 🔥", "never again 👎", "shop on main st"]
    labels = [2, 0, 1, 2, 0, 1]
    settings = FinetuneSettings(epochs=1, batch_size=3, max_length=16, eval_every=2, patience=1)
    finetune((texts, labels), (texts, labels), tmp_path / "ours", settings=settings)
    meta = json.loads((tmp_path / "ours" / "sentiment.json").read_text(encoding="utf-8"))
    assert meta["text_steps"] == list(DEFAULT_STEPS)
    assert FinetunedClassifier(tmp_path / "ours", threads=1).text_steps == DEFAULT_STEPS
