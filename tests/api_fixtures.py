"""Pytest fixtures shared by the API source tests (imported by those modules)."""

from __future__ import annotations

import pytest
from api_server import ApiServer, FakeClock

from crawlers.api_http import ApiClient, HostGate
from crawlers.state import FetchState
from listener.config import Limits

__all__ = ["api", "client", "clock", "limits", "state"]


@pytest.fixture
def api():
    server = ApiServer()
    yield server
    server.close()


@pytest.fixture
def state(tmp_path):
    with FetchState(tmp_path / "fetch.db") as fetch_state:
        yield fetch_state


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def limits():
    return Limits(timeout=2.0)


@pytest.fixture
def client(limits, clock):
    """A client with its own host gate, so one test's back-off never leaks into another."""
    made = ApiClient(limits, gate=HostGate(clock=clock))
    yield made
    made.close()
