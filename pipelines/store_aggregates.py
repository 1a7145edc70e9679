"""Top values (sources, sites, authors) for a search, on the embedded store.

The dashboard's "who is talking" tables. They reuse the store's own query
plan, so the counts agree with what a search for the same request returns.
"""

from __future__ import annotations

from typing import Literal

from pipelines.fts import compile_query
from pipelines.store import SearchRequest
from pipelines.store_sqlite import EmbeddedStore, _validate

__all__ = ["TopField", "top_values"]

TopField = Literal["source", "site", "author"]
_COLUMNS: dict[str, str] = {"source": "m.source_key", "site": "m.site", "author": "m.author_key"}


def top_values(
    store: EmbeddedStore, request: SearchRequest, field: TopField, limit: int = 10
) -> list[tuple[str, int]]:
    """The `limit` most frequent non-empty values of `field` among the matching mentions."""
    if field not in _COLUMNS:
        raise ValueError(f"field must be one of {', '.join(_COLUMNS)}, not {field!r}")
    _validate(request)
    compiled = compile_query(request.query)
    column = _COLUMNS[field]
    with store._transaction(False, f"top {field}s") as conn:
        plan = store.plan(conn, compiled, request)
        sql = (
            f"SELECT {column} AS v, count(*) AS n {plan.source} WHERE {plan.where} AND {column} != ''"
            " GROUP BY v ORDER BY n DESC, v LIMIT ?"
        )
        rows = conn.execute(sql, (*plan.params, int(limit))).fetchall()
    return [(str(v), int(n)) for v, n in rows]
