"""The web app served for real on loopback, as `make run` serves it beside the demo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from listener.web.background import BackgroundWeb
from tests.webapp import WebWorld, make_world, seed


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WebWorld]:
    yield from make_world(tmp_path)


def test_the_first_login_link_opens_a_session_once(world: WebWorld) -> None:
    seed(world.store)
    web = BackgroundWeb(world.config).start()
    try:
        assert web.url.startswith("http://127.0.0.1:")
        with httpx.Client() as anonymous:
            assert anonymous.get(f"{web.url}/healthz").json() == {"status": "ok"}
            assert anonymous.get(f"{web.url}/api/search").status_code == 401
        with httpx.Client(follow_redirects=True) as browser:
            page = browser.get(web.first_login)
            assert page.url.path == "/" and "Acme" in page.text and "demo (admin)" in page.text
            assert browser.get(f"{web.url}/api/search", params={"q": "battery"}).json()["total"] == 1
        with httpx.Client(follow_redirects=False) as again:
            reused = again.get(web.first_login)
            assert reused.status_code == 303 and reused.headers["location"] == "/login"
    finally:
        web.stop()
    assert not web.thread.is_alive()
