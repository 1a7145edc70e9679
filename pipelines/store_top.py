"""Top values (sources, sites, authors) for a search, on whichever store the deployment runs.

The dashboard's "who is talking" tables. Each engine answers with its own
aggregation (a GROUP BY on the embedded store, a terms aggregation on
Elasticsearch) over the same normal form of the field, so both give the same
rows, as the shared store contract checks.
"""

from __future__ import annotations

from typing import Literal

from pipelines.store import MentionStore, SearchRequest

__all__ = ["TopField", "top_values"]

TopField = Literal["source", "site", "author"]


def top_values(
    store: MentionStore, request: SearchRequest, field: TopField, limit: int = 10
) -> list[tuple[str, int]]:
    """The `limit` most frequent non-empty values of `field` among the matching mentions, most
    frequent first, ties by value; an engine without the aggregation gives no rows."""
    own = getattr(store, "top_values", None)
    if callable(own):
        return list(own(request, field, limit))
    from pipelines.store_sqlite import EmbeddedStore

    if isinstance(store, EmbeddedStore):
        from pipelines import store_aggregates

        return store_aggregates.top_values(store, request, field, limit)
    return []
