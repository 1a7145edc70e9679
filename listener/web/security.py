"""Who is asking, and may they: sessions, bearer tokens, CSRF and security headers.

Every request except `/healthz`, the login page and static files must carry a
valid session cookie or `Authorization: Bearer` token; the gate is one
middleware, so a route added later cannot forget it. Unsafe methods under a
session cookie must echo the session's CSRF token (form field `csrf` or header
`X-CSRF-Token`); bearer requests carry no ambient credential, so need none.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from listener.web.accounts import AccountStore, Session, User, can

__all__ = [
    "COOKIE",
    "CSP",
    "PUBLIC_PATHS",
    "AdminUser",
    "Csrf",
    "EditorUser",
    "FeedbackUser",
    "Reader",
    "auth_middleware",
    "check_csrf",
    "current_user",
    "require",
    "session_of",
]

COOKIE = "listener_session"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/slack/actions"})  # Slack signs its requests
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Next = Callable[[Request], Awaitable[Response]]


def _identify(accounts: AccountStore, request: Request) -> tuple[User | None, Session | None]:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return accounts.token_user(token.strip()), None
    sid = request.cookies.get(COOKIE)
    session = accounts.session(sid) if sid else None
    return (session.user if session else None), session


def _harden(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def auth_middleware(request: Request, call_next: Next) -> Response:
    """Identifies the caller; anonymous requests go no further than the public paths."""
    accounts: AccountStore = request.app.state.accounts
    user, session = _identify(accounts, request)
    request.state.user = user
    request.state.session = session
    path = request.url.path
    public = path in PUBLIC_PATHS or path.startswith(("/static/", "/login/link/"))
    if user is None and not public:
        wants_page = "text/html" in request.headers.get("accept", "")
        if not wants_page or path.startswith("/api/") or "authorization" in request.headers:
            return _harden(JSONResponse({"detail": "authentication required"}, status_code=401))
        return _harden(RedirectResponse("/login", status_code=303))
    return _harden(await call_next(request))


def current_user(request: Request) -> User:
    user: User | None = getattr(request.state, "user", None)
    if user is None:  # the middleware already refused; this keeps the type honest
        raise HTTPException(401, "authentication required")
    return user


def session_of(request: Request) -> Session | None:
    session: Session | None = getattr(request.state, "session", None)
    return session


def require(action: str) -> Callable[[Request], User]:
    """A dependency that lets through only users whose role grants `action`."""

    def dependency(request: Request) -> User:
        user = current_user(request)
        if not can(user, action):
            raise HTTPException(403, f"your role ({user.role}) may not do this")
        return user

    return dependency


async def check_csrf(request: Request) -> None:
    """Refuses an unsafe cookie-authenticated request without the session's CSRF token."""
    if request.method not in _UNSAFE:
        return
    session = session_of(request)
    if session is None:
        return  # bearer token: nothing a third-party page could replay
    sent = request.headers.get("x-csrf-token", "")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form: Any = await request.form()
        value = form.get("csrf", "")
        sent = value if isinstance(value, str) else ""
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")


Reader = Annotated[User, Depends(require("read"))]
FeedbackUser = Annotated[User, Depends(require("feedback"))]
EditorUser = Annotated[User, Depends(require("watch_terms"))]
AdminUser = Annotated[User, Depends(require("users"))]
Csrf = [Depends(check_csrf)]
