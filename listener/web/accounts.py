"""Accounts, sessions and API tokens for the web app, in `<data_dir>/web.db`.

Passwords are hashed with Argon2id (argon2-cffi's defaults follow RFC 9106).
Session ids and API tokens are random 256-bit values; only their SHA-256
digests are stored, so a copy of the database does not log anyone in.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from listener.errors import ListenerError
from listener.statedb import StateDB, StateRow, ensure_schema, open_state

__all__ = ["MIGRATIONS", "ROLES", "AccountError", "AccountStore", "Role", "Session", "User", "can"]

Role = Literal["viewer", "editor", "responder", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "responder", "admin")
SESSION_SECONDS = 12 * 3600
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-@")

# What each role may do beyond reading; admin may do everything.
_GRANTS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read", "feedback"}),
    "editor": frozenset({"read", "feedback", "watch_terms"}),
    "responder": frozenset({"read", "feedback", "incidents"}),
}

# Schema steps, oldest first; never edit a released step, append a new one. `user` is a
# reserved word in PostgreSQL, so that column is always written quoted.
MIGRATIONS = (
    """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL,
    brands TEXT NOT NULL DEFAULT '', created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    digest TEXT PRIMARY KEY, "user" TEXT NOT NULL, csrf TEXT NOT NULL, expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS login_links (
    digest TEXT PRIMARY KEY, "user" TEXT NOT NULL, expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY, "user" TEXT NOT NULL, label TEXT NOT NULL, created REAL NOT NULL
);
""",
)


class AccountError(ListenerError):
    """A user could not be created or changed (bad name, role or password)."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    brands: tuple[str, ...] = ()  # an editor's brands; empty means every brand

    def may_edit_brand(self, brand: str) -> bool:
        if self.role == "admin":
            return True
        return can(self, "watch_terms") and (
            not self.brands or brand.casefold() in {b.casefold() for b in self.brands}
        )


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf: str


def can(user: User, action: str) -> bool:
    """Whether `user`'s role grants `action` (read, feedback, watch_terms, incidents, users)."""
    return user.role == "admin" or action in _GRANTS.get(user.role, frozenset())


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class AccountStore:
    """Users, sessions and tokens, in the web app's state database.

    Every web process (and the CLI's `listener users`) reads and writes the same
    rows, so a session opened by one web copy is valid on all of them.
    """

    def __init__(self, db: StateDB | str | Path) -> None:
        # The file, when opened from one (tests read it back to check nothing secret is stored).
        self.path = Path(db) if isinstance(db, str | Path) else None
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "accounts", MIGRATIONS)
        self._hasher = PasswordHasher()

    def close(self) -> None:
        if self._owned:
            self._db.close()

    # --- users ------------------------------------------------------------------------------

    def add_user(self, name: str, role: str, password: str, brands: tuple[str, ...] = ()) -> User:
        name = name.strip().casefold()
        if not name or len(name) > 64 or not set(name) <= _NAME_OK:
            raise AccountError("a user name is 1-64 characters of a-z, 0-9, '.', '_', '-', '@'")
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if len(password) < 10:
            raise AccountError("a password needs at least 10 characters")
        hashed = self._hasher.hash(password)
        added = self._db.execute(
            "INSERT INTO users (name, role, password, brands, created) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING RETURNING name",
            (name, role, hashed, "\n".join(brands), time.time()),
        ).fetchone()
        if added is None:
            raise AccountError(f"user {name!r} already exists")
        return User(name, role, tuple(brands))

    def user(self, name: str) -> User | None:
        row = self._db.execute("SELECT name, role, brands FROM users WHERE name = ?", (name,)).fetchone()
        return None if row is None else _user(row)

    def users(self) -> list[User]:
        return [
            _user(row) for row in self._db.execute("SELECT name, role, brands FROM users ORDER BY name").rows
        ]

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is right; a wrong name costs as much time as a wrong password."""
        name = name.strip().casefold()
        stored_hash = self._db.execute("SELECT password FROM users WHERE name = ?", (name,)).scalar()
        stored = stored_hash if stored_hash is not None else self._hasher.hash(secrets.token_hex(8))
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if stored_hash is None:
            return None
        if self._hasher.check_needs_rehash(stored):
            self._db.execute(
                "UPDATE users SET password = ? WHERE name = ?", (self._hasher.hash(password), name)
            )
        return self.user(name)

    # --- sessions ---------------------------------------------------------------------------

    def open_session(self, user: User) -> tuple[str, Session]:
        """A new session id (for the cookie) and its CSRF token."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = time.time()
        with self._db.transaction():
            self._db.execute("DELETE FROM sessions WHERE expires < ?", (now,))
            self._db.execute(
                'INSERT INTO sessions (digest, "user", csrf, expires) VALUES (?, ?, ?, ?)',
                (_digest(sid), user.name, csrf, now + SESSION_SECONDS),
            )
        return sid, Session(user, csrf)

    def session(self, sid: str) -> Session | None:
        row = self._db.execute(
            'SELECT "user", csrf FROM sessions WHERE digest = ? AND expires >= ?',
            (_digest(sid), time.time()),
        ).fetchone()
        if row is None:
            return None
        user = self.user(row["user"])
        return None if user is None else Session(user, row["csrf"])

    def close_session(self, sid: str) -> None:
        self._db.execute("DELETE FROM sessions WHERE digest = ?", (_digest(sid),))

    # --- API tokens -------------------------------------------------------------------------

    def issue_token(self, name: str, label: str = "") -> str:
        """A new bearer token for `name`; shown once, stored only as a digest."""
        if self.user(name) is None:
            raise AccountError(f"no user {name!r}")
        token = "lst_" + secrets.token_urlsafe(32)
        self._db.execute(
            'INSERT INTO tokens (digest, "user", label, created) VALUES (?, ?, ?, ?)',
            (_digest(token), name, label, time.time()),
        )
        return token

    def token_user(self, token: str) -> User | None:
        name = self._db.execute('SELECT "user" FROM tokens WHERE digest = ?', (_digest(token),)).scalar()
        return None if name is None else self.user(name)

    # --- one-time login links (the demo's first login) --------------------------------------

    def issue_login_link(self, name: str, ttl_s: float = 3600.0) -> str:
        """A secret for `/login/link/SECRET`: logs `name` in once, within `ttl_s`."""
        if self.user(name) is None:
            raise AccountError(f"no user {name!r}")
        secret = secrets.token_urlsafe(32)
        self._db.execute(
            'INSERT INTO login_links (digest, "user", expires) VALUES (?, ?, ?)',
            (_digest(secret), name, time.time() + ttl_s),
        )
        return secret

    def redeem_login_link(self, secret: str) -> User | None:
        """The link's user, once; the link is gone afterwards whether or not it had expired.

        One DELETE both reads and spends the link, so two web processes redeeming
        the same link at once cannot both log in with it.
        """
        row = self._db.execute(
            'DELETE FROM login_links WHERE digest = ? RETURNING "user", expires', (_digest(secret),)
        ).fetchone()
        if row is None or row["expires"] < time.time():
            return None
        return self.user(row["user"])


def _user(row: StateRow) -> User:
    return User(row["name"], cast(Role, row["role"]), tuple(b for b in row["brands"].split("\n") if b))
