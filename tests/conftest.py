"""Suite-wide settings: nothing in the tests may reach beyond loopback."""

from __future__ import annotations

import os

# Models load from installed packages or repo files; a hub lookup would be a bug.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Keep proxies configured on a developer's machine away from loopback servers.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

# Real Kafka-protocol and Elasticsearch-compatible servers, started once per session when asked for.
from postgres_server import postgres_server_url  # noqa: F401
from scale_servers import elasticsearch_url, kafka_bootstrap  # noqa: F401
from state_engines import state_db, state_db_pair  # noqa: F401
