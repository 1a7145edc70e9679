"""The Bluesky firehose: posts that name the brand arrive, the stream resumes where it left off."""

from __future__ import annotations

import json
import threading
import time

import pytest
from websockets.sync.server import serve

from crawlers.jetstream import JetstreamSource
from crawlers.state import FetchState
from listener.config import JetstreamSourceConfig, Limits

T = 1_763_650_000_000_000  # time_us


def post(n: int, text: str, op: str = "create") -> str:
    commit = {"rev": f"3lb{n}", "operation": op, "collection": "app.bsky.feed.post", "rkey": f"3lbq{n}"}
    if op == "create":
        commit["record"] = {"$type": "app.bsky.feed.post", "text": text, "langs": ["en"],
                            "createdAt": "2025-11-20T14:00:00.000Z"}  # fmt: skip
    return json.dumps({"did": f"did:plc:user{n}", "time_us": T + n, "kind": "commit", "commit": commit})


class Firehose:
    """Loopback Jetstream: scripted events per connection; the first connection drops after its events."""

    def __init__(self, scripts: list[list[str]]) -> None:
        self.scripts = scripts
        self.paths: list[str] = []
        self.server = serve(self._handle, "127.0.0.1", 0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.socket.getsockname()[:2]
        return f"ws://{host}:{port}"

    def _handle(self, socket) -> None:
        number = len(self.paths)
        self.paths.append(socket.request.path)
        for message in self.scripts[min(number, len(self.scripts) - 1)]:
            socket.send(message)
        if number == 0:
            return  # hang up: the source must reconnect from where it got to
        time.sleep(1)

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def firehose():
    hose = Firehose([
        [post(1, "Zephyro Fiber is down again"), post(2, "lovely weather"), post(3, "", op="delete")],
        [post(4, "zephyro support finally called back"), post(5, "zephyrosaurus is not a brand")],
    ])  # fmt: skip
    yield hose
    hose.close()


def jet_config(firehose, **extra) -> JetstreamSourceConfig:
    fields = {"type": "jetstream", "name": "jet", "keywords": ["zephyro"], "url": firehose.url, **extra}
    return JetstreamSourceConfig(**fields)


def wait_for(source, count: int) -> list:
    deadline = time.monotonic() + 10
    got: list = []
    while len(got) < count and time.monotonic() < deadline:
        docs = list(source.poll())
        source.commit(docs)
        got.extend(docs)
        time.sleep(0.1)
    return got


def test_matching_posts_arrive_and_a_dropped_stream_resumes_from_its_cursor(firehose, tmp_path):
    config = jet_config(firehose, rewind=0)
    with FetchState(tmp_path / "fetch.db") as state:
        source = JetstreamSource(config, Limits(timeout=5), state)
        docs = wait_for(source, 2)
        source.close()
        texts = [d.text for d in docs]
        assert texts == ["Zephyro Fiber is down again", "zephyro support finally called back"]
        assert docs[0].url == "https://bsky.app/profile/did:plc:user1/post/3lbq1" and docs[0].language == "en"
        assert firehose.paths[0] == "/subscribe?wantedCollections=app.bsky.feed.post"
        assert firehose.paths[1].endswith(f"&cursor={T + 3}")  # resumed after the last event it read
        assert state.get_cursor("jet") == str(T + 5)
        again = JetstreamSource(config, Limits(timeout=5), state)  # a restart resumes from the stored cursor
        replayed = list(again.poll())
        deadline = time.monotonic() + 10
        while (again.reached or 0) < T + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        replayed += list(again.poll())
        again.close()
        assert replayed == []  # what came back was already handed on
        assert firehose.paths[-1].endswith(f"&cursor={T + 5}")


def test_a_full_buffer_drops_the_oldest_rather_than_blocking_the_stream(firehose, tmp_path):
    config = jet_config(firehose, buffer=1)
    with FetchState(tmp_path / "fetch.db") as state:
        source = JetstreamSource(config, Limits(timeout=5), state)
        list(source.poll())  # starts the reader; nothing is read yet
        deadline = time.monotonic() + 10
        while source.dropped < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        docs = list(source.poll())
        source.close()
    assert source.dropped == 1 and [d.text for d in docs] == ["zephyro support finally called back"]


def test_an_event_stamped_at_no_real_time_is_skipped_and_the_stream_goes_on(tmp_path):
    """Stamped 10**20 µs (past year 9999): it used to kill the reader; nor may it become the cursor."""
    absurd = json.loads(post(2, "Zephyro stamped at no real time"))
    absurd["time_us"] = 10**20
    events = [post(1, "Zephyro Fiber is down again"), json.dumps(absurd), post(3, "zephyro is back")]
    hose = Firehose([events])
    try:
        with FetchState(tmp_path / "fetch.db") as state:
            source = JetstreamSource(jet_config(hose, rewind=0), Limits(timeout=5), state)
            docs = wait_for(source, 2)
            source.close()
            assert [d.text for d in docs] == ["Zephyro Fiber is down again", "zephyro is back"]
            assert state.get_cursor("jet") == str(T + 3)
    finally:
        hose.close()
