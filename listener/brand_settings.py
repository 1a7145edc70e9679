"""Brands, alert rules and sources changed in the web app: versioned, and followed while running.

watch.yaml is the starting point. The web app saves changes as new rows of
`brand_versions` in the state database (`<data_dir>/web.db` embedded, PostgreSQL
when distributed; beside the query versions of `listener.watch_versions`), each
with who and when:

* `brand`: a brand added in the web app (its name and first queries);
* `alert`: a brand's whole spike rule (`AlertRule`), replacing watch.yaml's;
* `sources`: which of the brand's sources are switched off, and the sources
  added in the web app (`{"disabled": [names], "added": [sections]}`), so the
  watch.yaml sections, which may hold `${VAR}` secrets, are never copied;
* `channel`: the brand's Slack channel (`{"slack_channel": "#name" or null}`,
  null meaning `slack.default_channel`), replacing watch.yaml's;
* `oncall`: the brand's whole on-call rota (`{"oncall": OnCallConfig or null}`),
  replacing watch.yaml's; it holds Slack user ids and names, nothing secret;
* `archived`: `{"archived": true}` takes the brand out of the pipeline (no
  matching, alerting or polling of its sources) while its stored mentions and
  incidents stay; a later `{"archived": false}` brings it back.

`effective_brands` folds the newest version of each part over watch.yaml; an
archived brand is left out unless asked for (the web app lists it, and the
incident desk keeps answering for its open incidents).
The running stages follow it the way `LiveMatchStage` follows queries: a
`BrandsWatcher` checks a cheap change number every few seconds, and the
match stage, the spike stage (`alerts.live_detect`) and the source scheduler
(`listener.live_sources`) rebuild what changed. Everything is validated with
the watch.yaml models before it is saved; a row that no longer validates is
logged and skipped, and the stages keep what they had.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import TypeAdapter, ValidationError

from listener.config import AlertRule, BrandConfig, OnCallConfig, SourceConfig
from listener.errors import QuerySyntaxError, StateError
from listener.statedb import StateDB, ensure_schema, open_state
from listener.textsafe import terminal_safe

if TYPE_CHECKING:
    from listener.watch_versions import WatchTermStore

__all__ = [
    "MIGRATIONS",
    "SOURCE_ADAPTER",
    "BrandSettingsStore",
    "BrandsWatcher",
    "Change",
    "LiveBrands",
    "Part",
    "apply_sources",
    "effective_brands",
]

log = logging.getLogger(__name__)

Part = Literal["brand", "alert", "sources", "channel", "oncall", "archived"]
SOURCE_ADAPTER: TypeAdapter[Any] = TypeAdapter(SourceConfig)
_FOLLOW_ERRORS = (
    sqlite3.Error,
    StateError,
    ValidationError,
    QuerySyntaxError,
    ValueError,
    KeyError,
    TypeError,
)

# Schema steps, oldest first; never edit a released step, append a new one.
MIGRATIONS = (
    """
CREATE TABLE IF NOT EXISTS brand_versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    brand TEXT NOT NULL,
    part TEXT NOT NULL,
    body TEXT NOT NULL,
    author TEXT NOT NULL,
    at REAL NOT NULL
);
""",
)


@dataclass(frozen=True)
class Change:
    """One saved version of one part of one brand."""

    seq: int
    brand: str
    part: str
    body: dict[str, Any]
    author: str
    at: datetime


class BrandSettingsStore:
    """The `brand_versions` table, beside the web app's accounts and watch-term versions."""

    def __init__(self, db: StateDB | str | Path) -> None:
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "brand_settings", MIGRATIONS)

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Change]:
        rows = self._db.execute(
            f"SELECT seq, brand, part, body, author, at FROM brand_versions {sql}", params
        )
        return [
            Change(seq, brand, part, json.loads(body), author, datetime.fromtimestamp(at, UTC))
            for seq, brand, part, body, author, at in rows.rows
        ]

    def save(self, brand: str, part: Part, body: dict[str, Any], author: str) -> Change:
        now = time.time()
        text = json.dumps(body, ensure_ascii=False, sort_keys=True)
        seq = self._db.execute(
            "INSERT INTO brand_versions (brand, part, body, author, at) VALUES (?, ?, ?, ?, ?) RETURNING seq",
            (brand, part, text, author, now),
        ).scalar()
        return Change(int(seq), brand, part, json.loads(text), author, datetime.fromtimestamp(now, UTC))

    def history(self, brand: str) -> list[Change]:
        """Newest first. Brands compare case-folded in Python: SQLite's lower() folds only ASCII."""
        return [c for c in self._rows("ORDER BY seq DESC") if c.brand.casefold() == brand.casefold()]

    def latest(self, brand: str, part: Part) -> dict[str, Any] | None:
        found = next((c for c in self.history(brand) if c.part == part), None)
        return None if found is None else found.body

    def newest(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The newest body of every (case-folded brand, part), read in one query."""
        return {(c.brand.casefold(), c.part): c.body for c in self._rows("ORDER BY seq")}

    def added_brands(self) -> list[dict[str, Any]]:
        """Brands added in the web app, oldest first."""
        return [c.body for c in self._rows("WHERE part = 'brand' ORDER BY seq")]

    def latest_seq(self) -> int:
        """The newest version's number (0 when none)."""
        return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM brand_versions").scalar())

    def saved(self) -> int:
        """How many versions were ever saved: the change check running stages poll.

        Rows are only ever added, so the count grows with every commit, in whichever
        order two saves on PostgreSQL commit (the newest number could hide one).
        """
        return int(self._db.execute("SELECT COUNT(*) FROM brand_versions").scalar())


def apply_sources(configured: Sequence[Any], change: dict[str, Any] | None) -> list[Any]:
    """watch.yaml's sections plus the added ones, less the switched-off names."""
    if not change:
        return list(configured)
    added = [SOURCE_ADAPTER.validate_python(raw) for raw in change.get("added", [])]
    disabled = set(change.get("disabled", []))
    return [s for s in [*configured, *added] if s.name not in disabled]


def effective_brands(
    configured: Sequence[BrandConfig], db: StateDB | str | Path, *, archived: bool = False
) -> list[BrandConfig]:
    """watch.yaml's brands and the web app's, each with its newest queries, rule, sources,
    channel and rota; archived brands only when `archived` is true."""
    with _opened(db) as stores:
        if stores is None:
            return list(configured)
        return _fold(configured, *stores, archived=archived)


@contextmanager
def _opened(db: StateDB | str | Path) -> Iterator[tuple[WatchTermStore, BrandSettingsStore] | None]:
    """The two version stores over `db`; None for a web.db that does not exist yet (nothing
    saved), which reading must not create. A file opened here is closed afterwards."""
    from listener.watch_versions import WatchTermStore

    if isinstance(db, str | Path) and not Path(db).exists():
        yield None
        return
    state, owned = open_state(db)
    try:
        yield WatchTermStore(state), BrandSettingsStore(state)
    finally:
        if owned:
            state.close()


def _fold(
    configured: Sequence[BrandConfig],
    terms: WatchTermStore,
    settings: BrandSettingsStore,
    *,
    archived: bool,
) -> list[BrandConfig]:
    known = {b.name.casefold() for b in configured}
    brands = list(configured)
    for body in settings.added_brands():
        if body["name"].casefold() not in known:
            known.add(body["name"].casefold())
            brands.append(BrandConfig.model_validate(body))
    newest = settings.newest()
    out: list[BrandConfig] = []
    for brand in brands:
        saved = {part: body for (name, part), body in newest.items() if name == brand.name.casefold()}
        if saved.get("archived", {}).get("archived") and not archived:
            continue
        update: dict[str, Any] = {"queries": terms.effective(brand.name, list(brand.queries))}
        if "alert" in saved:
            update["alert"] = AlertRule.model_validate(saved["alert"])
        update["sources"] = apply_sources(brand.sources, saved.get("sources"))
        if "channel" in saved:
            update["slack_channel"] = saved["channel"]["slack_channel"]
        if "oncall" in saved:
            rota = saved["oncall"]["oncall"]
            update["oncall"] = None if rota is None else OnCallConfig.model_validate(rota)
        # model_validate, not model_copy: saved queries and channels are checked like watch.yaml's.
        out.append(BrandConfig.model_validate({**_fields(brand), **update}))
    return out


def _fields(brand: BrandConfig) -> dict[str, Any]:
    """A brand's fields as objects (not dumped), so secrets stay `SecretStr` through re-validation."""
    return {name: getattr(brand, name) for name in BrandConfig.model_fields}


@dataclass
class BrandsWatcher:
    """Says when the effective brands changed, at most every `check_every_s` seconds.

    `db` is the state database the web app saves to (or the embedded web.db's path):
    the web app is another process, so each check asks the database, never a cache.
    The stores are opened once, at the first check that finds the database.
    """

    configured: Sequence[BrandConfig]
    db: StateDB | str | Path
    check_every_s: float = 5.0
    archived: bool = False  # also the archived brands
    _seen: tuple[int, int] = field(default=(-1, -1), init=False)
    _next: float = field(default=0.0, init=False)
    _stores: tuple[WatchTermStore, BrandSettingsStore] | None = field(default=None, init=False)
    _state: StateDB | None = field(default=None, init=False, repr=False)

    def stores(self) -> tuple[WatchTermStore, BrandSettingsStore] | None:
        """The version stores, or None while the embedded web.db does not exist yet."""
        from listener.watch_versions import WatchTermStore

        if self._stores is None:
            if isinstance(self.db, str | Path) and not Path(self.db).exists():
                return None
            state, owned = open_state(self.db)
            self._state = state if owned else None
            self._stores = (WatchTermStore(state), BrandSettingsStore(state))
        return self._stores

    def version(self) -> tuple[int, int]:
        """(watch-term versions, brand-setting versions) saved so far."""
        stores = self.stores()
        if stores is None:
            return (0, 0)
        return (stores[0].saved(), stores[1].saved())

    def changed(self) -> list[BrandConfig] | None:
        """The new effective brands, or None when nothing changed (or they cannot be read)."""
        now = time.monotonic()
        if now < self._next:
            return None
        self._next = now + self.check_every_s
        try:
            seen = self.version()
            stores = self.stores()
            if seen == self._seen or stores is None:
                return None
            brands = _fold(self.configured, *stores, archived=self.archived)
        except _FOLLOW_ERRORS as exc:
            log.warning(
                "keeping the current brand settings; the saved ones cannot be used: %s",
                terminal_safe(str(exc)),
            )
            return None
        self._seen = seen
        return brands

    def close(self) -> None:
        """Closes the embedded file this watcher opened itself; a shared database stays open."""
        if self._state is not None:
            self._state.close()
            self._state, self._stores = None, None


class LiveBrands:
    """The effective brands for lookups by name (channel, rota), re-read when they change.

    For the stages that act on a brand rather than on a batch (the Slack
    notifier's channel, the escalation roster, the digest, source notices).
    Their lookups are rare (one per alert, escalation or notice), so by
    default each checks the change number: a save applies to the very next one.
    """

    def __init__(
        self,
        configured: Sequence[BrandConfig],
        db: StateDB | str | Path,
        *,
        check_every_s: float = 0.0,
        archived: bool = False,
    ) -> None:
        self.watcher = BrandsWatcher(configured, db, check_every_s, archived)
        self._brands: list[BrandConfig] = list(configured)

    def current(self) -> list[BrandConfig]:
        """The same list object until something changes (callers may compare by identity)."""
        changed = self.watcher.changed()
        if changed is not None:
            self._brands = changed
        return self._brands

    def get(self, name: str) -> BrandConfig | None:
        return next((b for b in self.current() if b.name.casefold() == name.casefold()), None)

    def channel(self, name: str) -> str | None:
        """The brand's own channel; None sends its messages to `slack.default_channel`."""
        found = self.get(name)
        return None if found is None else found.slack_channel
