"""The web app in a background thread on a loopback port: how the demo serves it beside the pipeline."""

from __future__ import annotations

import secrets
import socket
import threading
import time

import uvicorn

from listener.config import Config
from listener.datadir import StateDatabases
from listener.web.accounts import AccountStore
from listener.web.app import create_app
from listener.wiring import open_store

__all__ = ["BackgroundWeb"]


class BackgroundWeb:
    """Serves `config`'s data dir on 127.0.0.1 until `stop()`; `first_login` is a one-time link."""

    def __init__(self, config: Config, *, admin: str = "demo") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.state = StateDatabases.from_config(config)
        accounts = AccountStore(self.state.db("accounts"))
        if accounts.user(admin) is None:
            # Nobody types this password: the one-time link below is the way in.
            accounts.add_user(admin, "admin", secrets.token_urlsafe(24))
        self.first_login = f"{self.url}/login/link/{accounts.issue_login_link(admin)}"
        self.store = open_store(config)
        app = create_app(config, self.store, state=self.state, accounts=accounts)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self._serve, name="web", daemon=True)

    def _serve(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self, wait_s: float = 10.0) -> BackgroundWeb:
        self.thread.start()
        deadline = time.monotonic() + wait_s
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.store.close()
        self.state.close()
        self.sock.close()
