"""Top values (sources, sites, authors) for a search, on whichever store the deployment runs.

The dashboard's "who is talking" tables. Each engine answers with its own
aggregation (a GROUP BY on the embedded store, a terms aggregation on
Elasticsearch) over the same normal form of the field, so both give the same
rows, as the shared store contract checks.
"""

from __future__ import annotations

from pipelines.store import MentionStore, SearchRequest, TopField

__all__ = ["TopField", "top_values"]


def top_values(
    store: MentionStore, request: SearchRequest, field: TopField, limit: int = 10
) -> list[tuple[str, int]]:
    """The `limit` most frequent non-empty values of `field` among the matching mentions, most
    frequent first, ties by value."""
    return store.top_values(request, field, limit)
