"""The web app factory: pages and JSON API over one store, behind one login gate."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from listener.config import Config
from listener.datadir import StateDatabases
from listener.watch_versions import WatchTermStore
from listener.web import (
    brand_alerting,
    brands,
    dashboard,
    feedback,
    incidents,
    review,
    search,
    silences,
    sources,
    watchterms,
)
from listener.web.accounts import AccountError, AccountStore, User
from listener.web.feedback import MentionFeedback
from listener.web.render import page
from listener.web.security import COOKIE, AdminUser, Csrf, Reader, auth_middleware, session_of
from pipelines.store import MentionStore

__all__ = ["create_app"]

_LOGIN_COOKIE = "listener_login"
_HERE = Path(__file__).parent


class UserIn(BaseModel):
    name: str
    role: str
    password: str
    brands: list[str] = []


def create_app(
    config: Config,
    store: MentionStore,
    *,
    state: StateDatabases | None = None,
    accounts: AccountStore | None = None,
) -> FastAPI:
    """The app for `config`'s brands over `store` and the state databases (the config's, by default).

    Accounts, settings, feedback, silences and incidents are read from `state`, so on
    PostgreSQL the web app steers the same rows every stage process reads.
    """
    app = FastAPI(
        title="Listener",
        summary="Search brand mentions, read dashboards, edit watch terms, give feedback.",
        docs_url=None,  # Swagger UI needs inline and third-party scripts; the schema is at /openapi.json
        redoc_url=None,
    )
    state = state or StateDatabases.from_config(config)
    app.state.config = config
    app.state.store = store
    app.state.state = state
    app.state.accounts = accounts or AccountStore(state.db("accounts"))
    app.state.login_throttle = LoginThrottle()
    app.state.watch_terms = WatchTermStore(state.db("watch_versions"))
    app.state.feedback = MentionFeedback(state.db("mention_feedback"), state.db("sentiment_feedback"))
    app.middleware("http")(auth_middleware)
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")
    app.state.incidents = incidents.IncidentDesk.from_config(config, state)
    slack_actions = incidents.slack_actions(config, app.state.incidents.desk, state)
    if slack_actions is not None:  # Slack's buttons, signed by Slack rather than logged in
        app.include_router(slack_actions)
    for module in (
        search,
        dashboard,
        watchterms,
        brands,
        brand_alerting,
        feedback,
        review,
        incidents,
        sources,
        silences,
    ):
        app.include_router(module.router)
    _session_routes(app)
    return app


class LoginThrottle:
    """At most `limit` failed logins per user name in `window_s`; then that name waits out the window.

    Per name rather than per address, so a guesser cannot rotate addresses; the
    cost is that someone can lock a name out for a few minutes, which is the
    lesser harm for a small team's tool. In memory: a restart forgets it.
    """

    def __init__(self, limit: int = 5, window_s: float = 900.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, name: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(name, []) if now - t < self.window_s]
        self._failures[name] = kept
        return kept

    def allowed(self, name: str) -> bool:
        with self._lock:
            return len(self._recent(name, time.monotonic())) < self.limit

    def failed(self, name: str) -> bool:
        """Records a failure; False once the name is locked out."""
        with self._lock:
            now = time.monotonic()
            recent = self._recent(name, now)
            recent.append(now)
            return len(recent) < self.limit

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _next(target: str) -> str:
    """Only a local path; an open redirect to another site is refused."""
    parts = urlsplit(target)
    ok = target.startswith("/") and not target.startswith("//") and not parts.netloc and "\\" not in target
    return target if ok else "/"


def _start_session(request: Request, user: User, target: str) -> Response:
    sid, _ = request.app.state.accounts.open_session(user)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE, sid, httponly=True, samesite="lax", secure=_secure(request), max_age=12 * 3600
    )
    response.delete_cookie(_LOGIN_COOKIE)
    return response


def _session_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["health"], summary="Liveness; the only anonymous endpoint")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/") -> Response:
        # Reuse the form's token if this browser has one, so two open login tabs both work.
        token = request.cookies.get(_LOGIN_COOKIE) or secrets.token_urlsafe(24)
        response = page(request, "login.html", login_csrf=token, next=_next(next))
        response.set_cookie(_LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request))
        return response

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        sent, cookie = str(form.get("login_csrf", "")), request.cookies.get(_LOGIN_COOKIE, "")
        if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
            raise HTTPException(403, "the login form expired; reload it and try again")
        accounts: AccountStore = request.app.state.accounts
        name = str(form.get("username", "")).strip().casefold()
        throttle: LoginThrottle = request.app.state.login_throttle
        user = None
        if throttle.allowed(name):
            user = accounts.authenticate(name, str(form.get("password", "")))
        if user is None:
            blocked = not throttle.failed(name)
            return page(
                request,
                "login.html",
                status_code=429 if blocked else 401,
                login_csrf=sent,
                next=_next(str(form.get("next", "/"))),
                error="Too many failed attempts; wait a few minutes."
                if blocked
                else "Wrong user name or password.",
            )
        throttle.succeeded(name)
        return _start_session(request, user, _next(str(form.get("next", "/"))))

    @app.get("/login/link/{secret}", include_in_schema=False)
    def login_link(request: Request, secret: str) -> Response:
        """A one-time link (the demo prints one) that opens a session without a password."""
        accounts: AccountStore = request.app.state.accounts
        user = accounts.redeem_login_link(secret)
        if user is None:
            return RedirectResponse("/login", status_code=303)
        return _start_session(request, user, "/")

    @app.post("/logout", include_in_schema=False, dependencies=Csrf)
    def logout(request: Request) -> Response:
        sid = request.cookies.get(COOKIE)
        if sid and session_of(request) is not None:
            request.app.state.accounts.close_session(sid)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/api/me", tags=["users"], summary="Who the caller is")
    def me(user: Reader) -> dict[str, Any]:
        return {"name": user.name, "role": user.role, "brands": list(user.brands)}

    @app.post(
        "/api/users", tags=["users"], status_code=201, summary="Create an account (admin)", dependencies=Csrf
    )
    def add_user(request: Request, _admin: AdminUser, body: UserIn) -> dict[str, Any]:
        try:
            user = request.app.state.accounts.add_user(
                body.name, body.role, body.password, tuple(body.brands)
            )
        except AccountError as exc:
            raise HTTPException(400, str(exc)) from None
        return {"name": user.name, "role": user.role, "brands": list(user.brands)}
