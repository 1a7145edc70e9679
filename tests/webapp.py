"""Helpers for the web app tests: a real app over a real store file, and logged-in clients."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from listener.config import Config
from listener.web import create_app
from listener.web.accounts import AccountStore
from pipelines.store_sqlite import EmbeddedStore
from tests.store_contract import make_mention

__all__ = [
    "PASSWORD",
    "WebWorld",
    "csrf_of",
    "field_errors",
    "login",
    "login_form",
    "make_world",
    "recent",
    "seed",
    "web_db",
]

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_LOGIN = re.compile(r'name="login_csrf" value="([^"]+)"')
_FIELD_ERROR = re.compile(r'<span class="field-error" id="err-([^"]+)" role="alert">(.*?)</span>', re.S)


def recent(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


@dataclass
class WebWorld:
    config: Config
    store: EmbeddedStore
    accounts: AccountStore

    def client(self) -> TestClient:
        return TestClient(create_app(self.config, self.store, accounts=self.accounts), follow_redirects=False)

    def user(self, name: str, role: str, *brands: str) -> TestClient:
        """A client logged in as a new user with `role`."""
        self.accounts.add_user(name, role, PASSWORD, tuple(brands))
        client = self.client()
        login(client, name, PASSWORD)
        return client


def make_world(tmp_path: Path) -> Iterator[WebWorld]:
    config = Config.model_validate(
        {
            "data_dir": str(tmp_path / "data"),
            "brands": [
                {"name": "Acme", "queries": ["acme"]},
                {"name": "Globex", "queries": ["globex"]},
            ],
        }
    )
    store = EmbeddedStore(tmp_path / "data" / "store.db")
    accounts = AccountStore(tmp_path / "data" / "web.db")
    yield WebWorld(config, store, accounts)
    store.close()


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def login_form(client: TestClient, name: str, password: str, next: str = "/") -> dict[str, str]:
    """The login form as the browser would post it, with the form's own CSRF token."""
    found = _LOGIN.search(client.get("/login").text)
    assert found, "the login page has no CSRF field"
    return {"username": name, "password": password, "login_csrf": found.group(1), "next": next}


def login(client: TestClient, name: str, password: str) -> None:
    answer = client.post("/login", data=login_form(client, name, password))
    assert answer.status_code == 303, answer.text


def seed(store: EmbeddedStore) -> None:
    """A small history: Acme complaints and praise in the last hours, one Globex post."""
    store.upsert(
        [
            make_mention(
                "acme battery died again, terrible",
                label="negative",
                published=recent(30),
                author="dana",
                site="forum.example.org",
                key="n1",
            ),
            make_mention("acme support never answers", label="negative", published=recent(90), key="n2"),
            make_mention(
                "love the new acme phone",
                label="positive",
                published=recent(120),
                key="p1",
                title="Acme review",
            ),
            make_mention(
                "acme launch event today",
                label="neutral",
                published=recent(200),
                key="u1",
                language="de",
                site="blog.example.de",
            ),
            make_mention("globex is hiring", brand="globex", published=recent(60), key="g1"),
        ]
    )


def web_db(world: WebWorld) -> Path:
    """The file the web app keeps accounts and saved brand settings in."""
    return world.config.data_dir / "web.db"


def field_errors(page: str) -> dict[str, str]:
    """The error shown next to each field of a form page, by the field's name, as a reader sees it."""
    return {
        m.group(1): html.unescape(re.sub(r"<[^>]+>", " ", m.group(2)))
        for m in _FIELD_ERROR.finditer(page)
    }
