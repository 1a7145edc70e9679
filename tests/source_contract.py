"""The contract every `Source` engine must keep, written once and run over each engine.

An engine's test class subclasses `SourceContract` and provides one fixture,
`site`: a `SourceSite`, the engine's origin played by a loopback server (a feed,
a small website, a JSON API) together with a way to build the source that reads
it. `site.source(state)` builds a NEW source object each call, over the fetch
state given, so that tests can "restart" the process; the origin's content
stays the same unless `add_bad_item()` changes it.

    class TestFeedSourceContract(SourceContract):
        @pytest.fixture
        def site(self): ...

Everything here talks only through the `Source` protocol, in the order the
scheduler uses it: `poll`, publish, then `commit` what was published.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from crawlers.source import Source
from crawlers.state import FetchState
from listener.errors import SourceError
from listener.records import Document

__all__ = ["SourceContract", "SourceSite", "StateFactory", "closed_port_url"]

StateFactory = Callable[[str], FetchState]


class SourceSite(Protocol):
    def source(self, state: FetchState) -> Source:
        """A new source reading this origin, remembering what it committed in `state`."""
        ...

    def add_bad_item(self) -> None:
        """From now on the origin also serves one item broken the way this engine meets them
        in the wild (no text, an error page, a changed shape), beside the good ones."""
        ...

    def unreachable(self, state: FetchState) -> Source:
        """A source configured like the others but pointing where nothing listens."""
        ...


def closed_port_url(path: str = "/") -> str:
    """A loopback URL on a port that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def ids(documents: list[Document]) -> list[str]:
    return sorted(d.id for d in documents)


class SourceContract:
    """Behaviour the scheduler relies on; any source that passes neither loses nor repeats items."""

    @pytest.fixture
    def site(self) -> SourceSite:
        raise NotImplementedError("an engine's test class provides site")

    @pytest.fixture
    def fetch_state(self, tmp_path: Path) -> Iterator[StateFactory]:
        """Fetch state files by name: the same name is the same file, as after a restart."""
        opened: dict[str, FetchState] = {}

        def open_state(name: str) -> FetchState:
            if name not in opened:
                opened[name] = FetchState(tmp_path / f"{name}.sqlite3")
            return opened[name]

        yield open_state
        for state in opened.values():
            state.close()

    def poll(self, source: Source, *, commit: bool) -> list[Document]:
        documents = list(source.poll())
        if commit:
            source.commit(documents)
        return documents

    def test_a_poll_yields_documents_whose_ids_depend_only_on_the_item(
        self, site: SourceSite, fetch_state: StateFactory
    ) -> None:
        first = site.source(fetch_state("first"))
        elsewhere = site.source(fetch_state("elsewhere"))
        documents = self.poll(first, commit=False)
        assert len(documents) >= 2
        assert len(set(ids(documents))) == len(documents), "one document per item"
        assert all(d.source == first.name and d.id and d.text for d in documents)
        assert ids(self.poll(elsewhere, commit=False)) == ids(documents), "another process, the same ids"
        first.close()
        elsewhere.close()

    def test_an_unchanged_origin_yields_nothing_new_once_committed_even_after_a_restart(
        self, site: SourceSite, fetch_state: StateFactory
    ) -> None:
        state = fetch_state("state")
        source = site.source(state)
        assert self.poll(source, commit=True)
        assert self.poll(source, commit=True) == []
        source.close()
        restarted = site.source(state)
        assert self.poll(restarted, commit=True) == []
        restarted.close()

    def test_what_was_polled_but_not_committed_comes_back(
        self, site: SourceSite, fetch_state: StateFactory
    ) -> None:
        """Publishing failed, or the process died before commit: nothing may be lost."""
        state = fetch_state("state")
        source = site.source(state)
        in_flight = self.poll(source, commit=False)
        assert ids(self.poll(source, commit=False)) == ids(in_flight)
        source.close()
        restarted = site.source(state)
        assert ids(self.poll(restarted, commit=True)) == ids(in_flight)
        assert self.poll(restarted, commit=True) == []
        restarted.close()

    def test_a_bad_item_costs_only_that_item(self, site: SourceSite, fetch_state: StateFactory) -> None:
        healthy = site.source(fetch_state("before"))
        good = ids(self.poll(healthy, commit=False))
        healthy.close()
        site.add_bad_item()
        source = site.source(fetch_state("after"))
        assert ids(self.poll(source, commit=True)) == good
        source.close()

    def test_an_unreachable_origin_is_a_source_error_that_commits_nothing(
        self, site: SourceSite, fetch_state: StateFactory
    ) -> None:
        state = fetch_state("state")
        gone = site.unreachable(state)
        with pytest.raises(SourceError):
            self.poll(gone, commit=True)
        gone.close()
        source = site.source(state)
        assert self.poll(source, commit=True), "the failed poll marked nothing as delivered"
        source.close()
