"""Where each kind of state lives: files in the data dir, or the shared PostgreSQL database.

Every place that opens a store asks this object instead of joining path
literals, so the embedded and distributed deployments differ in one place.
The component names are also the keys of `schema_migrations`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from listener.config import Config, StateConfig
from listener.statedb import PostgresStateDB, SqliteStateDB, StateDB

__all__ = ["COMPONENT_FILES", "DataDir", "StateDatabases"]

# component -> the SQLite file it keeps in the embedded deployment (several share web.db,
# the file the web app has always written).
COMPONENT_FILES: dict[str, str] = {
    "accounts": "web.db",
    "brand_settings": "web.db",
    "watch_versions": "web.db",
    "mention_feedback": "web.db",
    "sentiment_feedback": "feedback.db",
    "incidents": "incidents.db",
    "silences": "silences.db",
    "slack_replays": "incidents.db",
    "outbox": "outbox.db",
    "detector": "detector.db",
    "stories": "stories.db",
    "fetch": "fetch.db",
    "source_health": "fetch.db",
    "source_notices": "fetch.db",
    "digests": "digests.db",
}


@dataclass(frozen=True)
class DataDir:
    """The local folder: the embedded bus and store, model caches, exports.

    In the distributed deployment it holds only caches; the state is in PostgreSQL.
    """

    root: Path

    @property
    def bus(self) -> Path:
        return self.root / "bus.db"

    @property
    def store(self) -> Path:
        return self.root / "store.db"

    def file(self, component: str) -> Path:
        """The embedded file of a state component (see COMPONENT_FILES)."""
        try:
            return self.root / COMPONENT_FILES[component]
        except KeyError:
            raise KeyError(f"unknown state component {component!r}") from None


@dataclass
class StateDatabases:
    """Opens, once per process, the database each state component uses.

    Embedded: one `SqliteStateDB` per file, shared by the components in it.
    Postgres: one pool for every component.
    """

    data: DataDir
    state: StateConfig = field(default_factory=StateConfig)
    _open: dict[str, StateDB] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @classmethod
    def from_config(cls, config: Config) -> StateDatabases:
        return cls(DataDir(config.data_dir), config.state)

    @property
    def shared(self) -> bool:
        """True when other hosts see the same state (PostgreSQL)."""
        return self.state.engine == "postgres"

    def db(self, component: str) -> StateDB:
        key = "postgres" if self.shared else str(self.data.file(component))
        with self._lock:
            found = self._open.get(key)
            if found is None:
                found = self._connect(component)
                self._open[key] = found
            return found

    def _connect(self, component: str) -> StateDB:
        if self.state.engine == "postgres":
            pg = self.state.postgres
            assert pg is not None  # the config validator insists on it
            return PostgresStateDB(
                pg.url.get_secret_value(), pool_size=pg.pool_size, connect_timeout=pg.connect_timeout
            )
        return SqliteStateDB(self.data.file(component))

    def close(self) -> None:
        with self._lock:
            for db in self._open.values():
                db.close()
            self._open.clear()
