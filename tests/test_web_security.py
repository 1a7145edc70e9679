"""The web app lets nobody in anonymously, keeps forms safe from other sites, and grants by role."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from listener.web.accounts import AccountError, AccountStore
from tests.webapp import PASSWORD, WebWorld, csrf_of, login, login_form, make_world, seed


def _everything_stored(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return repr(
            db.execute("SELECT * FROM users").fetchall() + db.execute("SELECT * FROM tokens").fetchall()
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[WebWorld]:
    yield from make_world(tmp_path)


def test_only_the_health_check_and_login_answer_a_stranger(world: WebWorld) -> None:
    client = world.client()
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/login").status_code == 200
    for path in ("/", "/search", "/dashboard", "/watch-terms", "/watch-terms/Acme"):
        answer = client.get(path, headers={"Accept": "text/html"})  # a browser is sent to the login page
        assert answer.status_code == 303 and answer.headers["location"] == "/login", path
        assert client.get(path).status_code == 401, path  # a script is told plainly
    for path in ("/api/search", "/api/dashboard/Acme", "/api/me", "/openapi.json", "/api/query/check?q=a"):
        assert client.get(path).status_code == 401, path
    assert client.get("/docs").status_code == 401  # no Swagger UI page, and no hint what exists


def test_every_route_is_behind_the_gate(world: WebWorld) -> None:
    """Walks the app's routes, so a route added later cannot slip past."""
    client = world.client()
    app = client.app
    for route in app.routes:  # type: ignore[attr-defined]
        if not isinstance(route, APIRoute) or route.path in ("/healthz", "/login"):
            continue
        path = route.path.replace("{brand}", "Acme").replace("{mention_id}", "x")
        for method in route.methods:
            answer = client.request(method, path)
            assert answer.status_code in (401, 303), f"{method} {path} answered {answer.status_code}"


def test_a_forged_token_or_cookie_is_refused(world: WebWorld) -> None:
    client = world.client()
    assert client.get("/api/me", headers={"Authorization": "Bearer lst_forged"}).status_code == 401
    client.cookies.set("listener_session", "made-up")
    assert client.get("/api/me").status_code == 401


def test_passwords_are_stored_as_argon2_hashes(world: WebWorld, tmp_path: Path) -> None:
    world.accounts.add_user("ann", "viewer", PASSWORD)
    raw = _everything_stored(tmp_path / "data" / "web.db")
    assert PASSWORD not in raw
    assert "$argon2id$" in raw
    assert world.accounts.authenticate("ann", PASSWORD) is not None
    assert world.accounts.authenticate("ann", "wrong password!") is None
    assert world.accounts.authenticate("nobody", PASSWORD) is None


def test_bad_accounts_are_refused_with_a_reason(world: WebWorld) -> None:
    with pytest.raises(AccountError, match="at least 10"):
        world.accounts.add_user("bob", "viewer", "short")
    with pytest.raises(AccountError, match="role"):
        world.accounts.add_user("bob", "root", PASSWORD)
    with pytest.raises(AccountError, match="user name"):
        world.accounts.add_user("<script>", "viewer", PASSWORD)
    world.accounts.add_user("bob", "viewer", PASSWORD)
    with pytest.raises(AccountError, match="already exists"):
        world.accounts.add_user("BOB", "viewer", PASSWORD)


def test_a_wrong_password_shows_the_form_again(world: WebWorld) -> None:
    world.accounts.add_user("ann", "viewer", PASSWORD)
    client = world.client()
    answer = client.post("/login", data=login_form(client, "ann", "nope nope nope"))
    assert answer.status_code == 401
    assert "Wrong user name or password" in answer.text
    assert client.get("/api/me").status_code == 401


def test_login_from_another_site_is_refused(world: WebWorld) -> None:
    world.accounts.add_user("ann", "viewer", PASSWORD)
    client = world.client()
    answer = client.post("/login", data={"username": "ann", "password": PASSWORD, "login_csrf": "guessed"})
    assert answer.status_code == 403


def test_session_cookie_is_httponly_and_samesite(world: WebWorld) -> None:
    world.accounts.add_user("ann", "viewer", PASSWORD)
    client = world.client()
    answer = client.post("/login", data=login_form(client, "ann", PASSWORD))
    cookie = answer.headers["set-cookie"].lower()
    assert "listener_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain http on loopback; https sets it


def test_session_cookie_is_secure_over_https(world: WebWorld) -> None:
    world.accounts.add_user("ann", "viewer", PASSWORD)
    client = world.client()
    client.base_url = client.base_url.copy_with(scheme="https")
    answer = client.post("/login", data=login_form(client, "ann", PASSWORD))
    assert "secure" in answer.headers["set-cookie"].lower()


def test_the_next_parameter_cannot_send_you_to_another_site(world: WebWorld) -> None:
    world.accounts.add_user("ann", "viewer", PASSWORD)
    client = world.client()
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        answer = client.post("/login", data=login_form(client, "ann", PASSWORD, target))
        assert answer.headers["location"] == "/", target


def test_unsafe_requests_with_a_cookie_need_the_csrf_token(world: WebWorld) -> None:
    seed(world.store)
    editor = world.user("ed", "editor")
    # no token: refused, nothing saved
    assert (
        editor.post("/watch-terms/Acme", data={"queries": "acme phone", "action": "save"}).status_code == 403
    )
    assert editor.put("/api/watch-terms/Acme", json={"queries": ["acme phone"]}).status_code == 403
    assert world.client().app.state.watch_terms.history("Acme") == []  # type: ignore[attr-defined]
    token = csrf_of(editor.get("/watch-terms/Acme").text)
    answer = editor.put(
        "/api/watch-terms/Acme", json={"queries": ["acme phone"]}, headers={"X-CSRF-Token": token}
    )
    assert answer.status_code == 200
    assert editor.post("/logout").status_code == 403  # even logging out needs the token


def test_api_tokens_work_for_scripts_without_csrf(world: WebWorld) -> None:
    world.accounts.add_user("bot", "editor", PASSWORD)
    token = world.accounts.issue_token("bot", "nightly export")
    client = world.client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers=headers).json()["name"] == "bot"
    assert client.put("/api/watch-terms/Acme", json={"queries": ["acme"]}, headers=headers).status_code == 200
    assert token not in _everything_stored(world.accounts.path)


def test_roles_decide_what_each_user_may_do(world: WebWorld) -> None:
    seed(world.store)
    viewer = world.user("vic", "viewer")
    assert viewer.get("/search?q=acme").status_code == 200
    token = csrf_of(viewer.get("/watch-terms/Acme").text)
    answer = viewer.put("/api/watch-terms/Acme", json={"queries": ["acme"]}, headers={"X-CSRF-Token": token})
    assert answer.status_code == 403
    assert (
        viewer.post(
            "/api/users",
            json={"name": "x", "role": "admin", "password": PASSWORD},
            headers={"X-CSRF-Token": token},
        ).status_code
        == 403
    )
    brand_editor = world.user("gail", "editor", "Globex")
    token = csrf_of(brand_editor.get("/watch-terms/Acme").text)
    assert (
        brand_editor.put(
            "/api/watch-terms/Acme", json={"queries": ["acme"]}, headers={"X-CSRF-Token": token}
        ).status_code
        == 403
    )
    assert (
        brand_editor.put(
            "/api/watch-terms/Globex", json={"queries": ["globex corp"]}, headers={"X-CSRF-Token": token}
        ).status_code
        == 200
    )
    admin = world.user("root", "admin")
    token = csrf_of(admin.get("/search").text)
    assert (
        admin.post(
            "/api/users",
            json={"name": "newbie", "role": "viewer", "password": PASSWORD},
            headers={"X-CSRF-Token": token},
        ).status_code
        == 201
    )


def test_logging_out_ends_the_session(world: WebWorld) -> None:
    client = world.user("ann", "viewer")
    token = csrf_of(client.get("/search").text)
    stolen = client.cookies.get("listener_session")
    assert client.post("/logout", data={"csrf": token}).status_code == 303
    other = world.client()
    other.cookies.set("listener_session", stolen or "")
    assert other.get("/api/me").status_code == 401


def test_every_page_forbids_inline_scripts(world: WebWorld) -> None:
    client = world.user("ann", "viewer")
    for path in ("/login", "/search", "/dashboard", "/watch-terms", "/healthz"):
        csp = client.get(path).headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
    html = client.get("/search").text + client.get("/dashboard").text
    assert "<script>" not in html and " on" + "click=" not in html


def test_users_add_creates_the_first_admin_from_stdin(tmp_path: Path) -> None:
    config = tmp_path / "watch.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nbrands:\n  - name: Acme\n    queries: [acme]\n")
    done = subprocess.run(
        [sys.executable, "-m", "listener.cli", "users", "add", "Root", "--role", "admin", "-c", str(config)],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "added root (admin)" in done.stdout
    assert AccountStore(tmp_path / "data" / "web.db").authenticate("root", PASSWORD) is not None
    world_client_login = AccountStore(tmp_path / "data" / "web.db").user("root")
    assert world_client_login is not None and world_client_login.role == "admin"


def test_login_then_logout_round_trip(world: WebWorld) -> None:
    world.accounts.add_user("ann", "responder", PASSWORD)
    client = world.client()
    login(client, "ann", PASSWORD)
    assert client.get("/api/me").json() == {"name": "ann", "role": "responder", "brands": []}


def test_guessing_a_password_is_cut_off_after_five_tries(world: WebWorld) -> None:
    world.accounts.add_user("ann", "viewer", PASSWORD)
    client = world.client()
    codes = [
        client.post("/login", data=login_form(client, "ann", f"guess number {i}")).status_code
        for i in range(6)
    ]
    assert codes == [401, 401, 401, 401, 429, 429]
    locked = client.post("/login", data=login_form(client, "ann", PASSWORD))
    assert locked.status_code == 429 and "Too many failed attempts" in locked.text  # even the right one waits
    other = world.client()
    world.accounts.add_user("bob", "viewer", PASSWORD)
    assert other.post("/login", data=login_form(other, "bob", PASSWORD)).status_code == 303
