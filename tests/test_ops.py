"""An operator's day on either engine pair: looking at dead letters, replaying them once the
cause is fixed, and moving the search index between the embedded store and Elasticsearch.

Everything runs for real: the embedded engines on files in tmp_path, Kafka on the
session's Tansu broker, Elasticsearch on the session's osmem-server.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from store_contract import make_mention

from listener.app import open_bus
from listener.cli import main
from listener.config import load_config
from listener.query.parser import parse_watch_query
from listener.records import Document, document_id, encode
from listener.stages import MatchStage
from pipelines.bus import Bus
from pipelines.runtime import StageRunner
from pipelines.store import SearchRequest
from pipelines.store_sqlite import EmbeddedStore

BRANDS = "brands:\n  - name: acme\n    queries: ['acme']\n"


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "watch.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\n{BRANDS}{extra}")
    return path


def kafka_config(bootstrap: str) -> str:
    prefix = f"o{uuid.uuid4().hex[:8]}."
    return (
        f"bus:\n  engine: kafka\n  kafka:\n    bootstrap_servers: ['{bootstrap}']\n"
        f"    topic_prefix: '{prefix}'\n    partitions: 1\n    max_poll_interval: 6s\n"
    )


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def document(key: str, text: str) -> bytes:
    now = datetime.now(UTC)
    doc = Document(
        id=document_id("news", key), source="news", source_type="feed", text=text, published=now, fetched=now
    )
    return encode(doc)


# Not JSON, not UTF-8: only a byte-for-byte dead letter can bring this back.
POISON = b"\xff\xfe acme \x00 not a record"
BROKEN_JSON = b'{"v": 1, "kind": "document", "id": "\x1b[31mforged"}'


def feed_match_stage_poison(config_path: Path) -> Bus:
    """Publish two good documents and two poison messages, and run `match` over them."""
    cfg = load_config(config_path)
    bus = open_bus(cfg)
    bus.publish_many(
        "documents",
        [
            ("news", document("a", "acme is down")),
            ("news", POISON),
            ("news", BROKEN_JSON),
            ("news", document("b", "acme is back")),
        ],
    )
    runner = StageRunner(bus, MatchStage(cfg.brands), poll_timeout=0.5)
    while runner.stats.messages_in < 4:
        runner.run_once(timeout=5.0)
    runner.close()
    assert runner.stats.dead_letters == 2 and runner.stats.messages_out == 2
    return bus


def dead_letter_story(config_path: Path) -> None:
    bus = feed_match_stage_poison(config_path)
    try:
        listed = cli("dlq", "list", "-c", str(config_path), "--json")
        assert listed.exit_code == 0, listed.output
        letters = [json.loads(line) for line in listed.stdout.splitlines()]
        assert [(d["stage"], d["topic"], d["payload_encoding"]) for d in letters] == [
            ("match", "documents", "base64"),
            ("match", "documents", "utf-8"),
        ]
        human = cli("dlq", "list", "-c", str(config_path))
        assert "\x1b" not in human.stdout and "\\x1b[31mforged" in human.stdout, "hostile text is escaped"

        # The operator replays the first letter by reference, then nothing else.
        before = len(_topic(bus, "documents"))
        replayed = cli("dlq", "replay", "-c", str(config_path), letters[0]["ref"])
        assert replayed.exit_code == 0, replayed.output
        after = _topic(bus, "documents")
        assert len(after) == before + 1
        assert (after[-1].key, after[-1].value) == ("news", POISON), "the original bytes, byte for byte"

        unknown = cli("dlq", "replay", "-c", str(config_path), "0:9999")
        assert unknown.exit_code == 1 and "no dead letter at 0:9999" in unknown.stderr
        assert len(_topic(bus, "documents")) == before + 1, "a bad reference replays nothing"

        everything = cli("dlq", "replay", "-c", str(config_path), "--stage", "match")
        assert everything.exit_code == 0 and "2 dead letter(s) replayed" in everything.stderr
        assert [m.value for m in _topic(bus, "documents")[-2:]] == [POISON, BROKEN_JSON]
    finally:
        bus.close()


def _topic(bus: Bus, topic: str) -> list[Any]:
    from listener.ops import browse

    return browse(bus, topic, 10_000)


def test_dead_letters_are_listed_and_replayed_on_the_embedded_bus(tmp_path: Path) -> None:
    dead_letter_story(write_config(tmp_path))


@pytest.mark.kafka
@pytest.mark.slow
def test_dead_letters_are_listed_and_replayed_on_kafka(tmp_path: Path, kafka_bootstrap: str) -> None:
    dead_letter_story(write_config(tmp_path, kafka_config(kafka_bootstrap)))


def test_replay_needs_a_choice_of_letters(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["dlq", "replay", "-c", str(write_config(tmp_path))])
    assert result.exit_code == 2 and "name the letters" in result.output


# -- reindex -------------------------------------------------------------------------------


@pytest.fixture
def osmem_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the product's client the plain-JSON transport node osmem-server needs.

    This is the one media-type difference between osmem-server and Elasticsearch
    (see tests/test_store_elasticsearch.py); everything else is the product's own
    `ElasticsearchStore.from_config`.
    """
    import elasticsearch
    from test_store_elasticsearch import PlainJsonNode

    import pipelines.store_elasticsearch as module

    def client(*args: Any, **kwargs: Any) -> elasticsearch.Elasticsearch:
        return elasticsearch.Elasticsearch(*args, node_class=PlainJsonNode, **kwargs)

    monkeypatch.setattr(module, "Elasticsearch", client)


def es_config(url: str) -> str:
    return f"store:\n  elasticsearch:\n    url: '{url}'\n    index_prefix: 'r-{uuid.uuid4().hex[:10]}'\n"


def history(n: int) -> list[Any]:
    """Mentions over three months, so the Elasticsearch side spans several monthly indices."""
    start = datetime(2024, 3, 1, tzinfo=UTC)
    labels = ("negative", "neutral", "positive")
    return [
        make_mention(
            f"acme story {i}: the acme app " + ("crashed again" if i % 3 == 0 else "works fine"),
            key=f"h{i}",
            label=labels[i % 3],
            published=start + timedelta(hours=17 * i),
        )
        for i in range(n)
    ]


def same_answers(left: Any, right: Any) -> None:
    for query in (None, "crashed", '"acme app"', "acme NOT crashed"):
        request = SearchRequest(query=None if query is None else parse_watch_query(query), limit=1000)
        a, b = left.search(request), right.search(request)
        assert a.total == b.total and [h.mention for h in a.hits] == [h.mention for h in b.hits], query
        assert left.counts(request) == right.counts(request)


def run_reindex(config: Path, source: str, target: str) -> Result:
    result = cli("reindex", "-c", str(config), "--from", source, "--to", target, "--batch", "70")
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.elasticsearch
def test_reindex_moves_the_history_to_elasticsearch_and_back(
    tmp_path: Path, elasticsearch_url: str, osmem_client: None
) -> None:
    from listener.ops import open_store_engine

    config = write_config(tmp_path, es_config(elasticsearch_url))
    mentions = history(230)
    with EmbeddedStore(tmp_path / "data" / "store.db") as store:
        store.upsert(mentions)

    out = run_reindex(config, "embedded", "elasticsearch")
    assert "reindexed 230 mention(s) from embedded to elasticsearch" in out.stdout
    assert "embedded -> elasticsearch" in out.stderr, "the progress bar goes to stderr"
    cfg = load_config(config)
    with open_store_engine(cfg, "embedded") as embedded, open_store_engine(cfg, "elasticsearch") as es:
        same_answers(embedded, es)

    # Again: upserts by id, so a second run duplicates nothing.
    run_reindex(config, "embedded", "elasticsearch")
    (tmp_path / "data" / "store.db").unlink()
    back = run_reindex(config, "elasticsearch", "embedded")
    assert "reindexed 230 mention(s)" in back.stdout
    with open_store_engine(cfg, "embedded") as embedded, open_store_engine(cfg, "elasticsearch") as es:
        assert embedded.search(SearchRequest(limit=0)).total == 230
        same_answers(embedded, es)


def test_reindex_refuses_the_same_store_on_both_sides(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["reindex", "-c", str(write_config(tmp_path)), "--from", "embedded", "--to", "embedded"]
    )
    assert result.exit_code == 2 and "same store" in result.output


def test_reindex_names_an_unreachable_cluster(tmp_path: Path) -> None:
    config = write_config(tmp_path, es_config("http://127.0.0.1:9"))
    with EmbeddedStore(tmp_path / "data" / "store.db") as store:
        store.upsert(history(3))
    result = CliRunner().invoke(
        main, ["reindex", "-c", str(config), "--from", "embedded", "--to", "elasticsearch"]
    )
    assert result.exit_code == 1 and "Elasticsearch" in result.stderr
    with EmbeddedStore(tmp_path / "data" / "store.db") as store:
        assert store.search(SearchRequest(limit=0)).total == 3, "the source is untouched"
