"""How the embedded store runs a search: which side drives, and a page whose records are read last.

At a million mentions SQLite's own choice went wrong both ways. With a brand
and a time range it walked the brand/published index and re-ran the FTS5
MATCH for every row (seconds for an OR of common words); with words alone it
looked up every matching mention and sorted all of their records for a page
of twenty. So a search picks its drive from two cheap counts:

* `Drive.FTS`: the MATCH yields rowids and each one is looked up in
  `mentions`; right when the MATCH is selective, and always for relevance
  order, since bm25 exists only inside the FTS scan;
* `Drive.INDEX`: the MATCH becomes a rowid set (built once per statement,
  in rowid order, which is cheap) and the `mentions` indexes drive: newest
  first, the published index stops as soon as a page of hits is found; with
  a brand, sentiment or source filter that index bounds the rows visited.

The sort for a page carries rowids and keys, never records: records are read
for the page's rows alone, and the bm25 score a hit has always carried is
computed for those rows by one more pass over the MATCH. Which rows match, in
which order, with which score, does not depend on the drive.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import Enum

from listener.query.tokens import normalise
from pipelines.fts import FTS_TABLE, Compiled, field_key
from pipelines.store import SearchRequest

__all__ = [
    "FTS_FIRST_MAX",
    "Drive",
    "Plan",
    "choose_drive",
    "epoch",
    "filters",
    "match_size",
    "page_scores",
    "stories_page",
]

# Looking a matching rowid up in `mentions` costs about a microsecond; past a few
# thousand matches, probing a rowid set from the mentions indexes is cheaper.
FTS_FIRST_MAX = 5000
_BM25 = f"bm25({FTS_TABLE}, 2.0, 1.0)"  # a match in the title counts double
_STORY_JOIN = " JOIN mention_stories AS st ON st.seq = m.seq"


class Drive(Enum):
    """Which side of a MATCH-with-filters query SQLite starts from."""

    SQLITE = "sqlite"  # the planner's own choice
    FTS = "fts"
    INDEX = "index"


def epoch(moment: datetime) -> int:
    """UTC epoch seconds; a naive datetime is taken to be UTC, as records do."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.floor(moment.timestamp())


def filters(request: SearchRequest) -> tuple[list[str], list[object]]:
    """The request's own filters; `since` is inclusive and `until` exclusive."""
    clauses: list[str] = []
    params: list[object] = []
    for sql, value in (
        ("m.brand = ?", None if request.brand is None else normalise(request.brand)),
        ("m.sentiment = ?", request.sentiment),
        ("m.source_key = ?", None if request.source is None else field_key("source", request.source)),
        ("m.published >= ?", None if request.since is None else epoch(request.since)),
        ("m.published < ?", None if request.until is None else epoch(request.until)),
    ):
        if value is not None:
            clauses.append(sql)
            params.append(value)
    return clauses, params


def _capped(conn: sqlite3.Connection, source_where: str, params: Sequence[object], cap: int) -> int:
    sql = f"SELECT count(*) FROM (SELECT 1 {source_where} LIMIT ?)"
    return int(conn.execute(sql, (*params, cap)).fetchone()[0])


def match_size(conn: sqlite3.Connection, match: str) -> int:
    """How many rows the MATCH yields: the index alone counts 200,000 in about 15 ms, and a
    count capped lower would hide whether a filter selects fewer rows than the words do."""
    return int(
        conn.execute(f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?", (match,)).fetchone()[0]
    )


def choose_drive(
    conn: sqlite3.Connection,
    compiled: Compiled,
    request: SearchRequest,
    *,
    page: bool,
    matches: int | None = None,
) -> Drive:
    """FTS-first while the MATCH is small; otherwise the index side, when it has something to drive.

    For a page in newest order the published index drives even without filters
    (it stops after a page); for counts and aggregates, which visit every
    match, the index side drives only when the request's filters select fewer
    mentions than the MATCH does. `matches` is `match_size`, when already known.
    """
    if compiled.match is None:
        return Drive.SQLITE
    if page and request.order == "relevance":
        return Drive.FTS
    if matches is None:
        matches = match_size(conn, compiled.match)
    if matches <= FTS_FIRST_MAX:
        return Drive.FTS
    if page:
        return Drive.INDEX
    clauses, params = filters(request)
    if not clauses:
        return Drive.FTS
    selected = _capped(conn, f"FROM mentions AS m WHERE {' AND '.join(clauses)}", params, matches)
    return Drive.INDEX if selected < matches else Drive.FTS


class Plan:
    """The FROM and WHERE shared by search, count and aggregates for one request and drive."""

    def __init__(self, compiled: Compiled, request: SearchRequest, drive: Drive = Drive.SQLITE) -> None:
        clauses, params = filters(request)
        if compiled.where != "1":
            clauses.insert(0, compiled.where)
            params[:0] = compiled.params
        self.drive = drive if compiled.match is not None else Drive.SQLITE
        if compiled.match is None:
            self.source = "FROM mentions AS m"
        elif self.drive is Drive.INDEX:
            # The unary plus keeps SQLite from driving by the rowid set itself.
            self.source = "FROM mentions AS m"
            clauses.insert(0, f"+m.seq IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?)")
        else:
            join = "CROSS JOIN" if self.drive is Drive.FTS else "JOIN"
            self.source = f"FROM {FTS_TABLE} {join} mentions AS m ON m.seq = {FTS_TABLE}.rowid"
            clauses.insert(0, f"{FTS_TABLE} MATCH ?")
        if compiled.match is not None:
            params.insert(0, compiled.match)
        self.where = " AND ".join(clauses) or "1"
        self.params = tuple(params)
        self.compiled = compiled

    def count_sql(self, request: SearchRequest | None = None) -> tuple[str, tuple[object, ...]]:
        """The total (of stories, when collapsing); with a `count_limit`, counted no further
        than one past it, so that "more than the limit" is known without counting the rest."""
        stories = request is not None and request.collapse_story
        if self.params == (self.compiled.match,):
            # Words alone: the index counts without visiting a mention row (or visits only stories).
            source = f"FROM {FTS_TABLE}"
            if stories:
                source += f" CROSS JOIN mention_stories AS st ON st.seq = {FTS_TABLE}.rowid"
            source_where = f"{source} WHERE {FTS_TABLE} MATCH ?"
        else:
            source_where = f"{self.source}{_STORY_JOIN if stories else ''} WHERE {self.where}"
        if request is None or request.count_limit is None:
            what = "count(DISTINCT st.story)" if stories else "count(*)"
            return f"SELECT {what} {source_where}", self.params
        rows = "DISTINCT st.story" if stories else "1"
        sql = f"SELECT count(*) FROM (SELECT {rows} {source_where} LIMIT ?)"
        return sql, (*self.params, request.count_limit + 1)

    def page_sql(self, request: SearchRequest) -> tuple[str, tuple[object, ...]]:
        """Rows of (seq, record, score, members); in newest order with a MATCH the score is
        left at 0.0 here and `page_scores` fills it in for the page's rows."""
        source, params, score = self.source, self.params, "0.0"
        if request.order == "relevance":
            if self.compiled.match is not None:
                assert self.drive is not Drive.INDEX, "bm25 needs the FTS scan"
                score = f"-{_BM25}"
            elif self.compiled.rank is not None:
                source += (
                    f" LEFT JOIN (SELECT rowid AS r, {_BM25} AS b FROM {FTS_TABLE}"
                    f" WHERE {FTS_TABLE} MATCH ?) AS rk ON rk.r = m.seq"
                )
                params = (self.compiled.rank, *params)
                score = "coalesce(-rk.b, 0.0)"
        newest = "m.published DESC, m.id"
        order = newest if score == "0.0" else f"score DESC, {newest}"
        page = (*params, request.limit, request.offset)
        if request.collapse_story:
            inner = _collapsed(f"{source}{_STORY_JOIN} WHERE {self.where}", score, order)
        else:
            inner = (
                f"SELECT m.seq AS seq, {score} AS score, m.published AS published, m.id AS id, 1 AS members"
                f" {source} WHERE {self.where} ORDER BY {order} LIMIT ? OFFSET ?"
            )
        outer = order.replace("score", "p.score").replace("m.", "p.")
        sql = f"SELECT p.seq, r.record, p.score, p.members FROM ({inner}) AS p"
        return f"{sql} JOIN mentions AS r ON r.seq = p.seq ORDER BY {outer}", page


def _collapsed(source_where: str, score: str, order: str) -> str:
    """The best-ranked member of each story, with the story's matching member count.

    The index stage stamps each mention with its story id; `mention_stories`
    keeps it (or the mention's own id) beside the row, so grouping reads no records.
    """
    order = order.replace("m.", "")
    return (
        "SELECT seq, score, published, id, members FROM ("
        " SELECT seq, score, published, id, count(*) OVER (PARTITION BY k) AS members,"
        f" row_number() OVER (PARTITION BY k ORDER BY {order}) AS rn FROM ("
        f"  SELECT m.seq, {score} AS score, m.published, m.id, st.story AS k {source_where}))"
        f" WHERE rn = 1 ORDER BY {order} LIMIT ? OFFSET ?"
    )


def stories_page(
    conn: sqlite3.Connection, compiled: Compiled, request: SearchRequest, drive: Drive
) -> list[tuple[int, str, float, int]]:
    """One hit per story in newest order, read as a stream that stops after the page.

    A story's hit is its newest matching member, so the stories appear in the
    order of their first member in the newest-first stream of matches: no sort
    of all matches and no window over them. Rows of (seq, record, score, members);
    the score is filled in by `page_scores`.
    """
    plan = Plan(compiled, request, drive)
    newest = "ORDER BY m.published DESC, m.id"
    stream = conn.execute(
        f"SELECT m.seq, st.story {plan.source}{_STORY_JOIN} WHERE {plan.where} {newest}", plan.params
    )
    firsts: dict[str, int] = {}
    try:
        for seq, story in stream:
            if story not in firsts:
                firsts[story] = seq
                if len(firsts) == request.offset + request.limit:
                    break
    finally:
        stream.close()
    page = list(firsts.items())[request.offset :]
    if not page:
        return []
    probe = Plan(compiled, request, Drive.INDEX)
    members = dict(
        conn.execute(
            "SELECT st.story, count(*) FROM mention_stories AS st CROSS JOIN mentions AS m ON m.seq = st.seq"
            f" WHERE st.story IN (SELECT value FROM json_each(?)) AND {probe.where} GROUP BY st.story",
            (json.dumps([story for story, _ in page]), *probe.params),
        )
    )
    records = dict(
        conn.execute(
            "SELECT seq, record FROM mentions WHERE seq IN (SELECT value FROM json_each(?))",
            (json.dumps([seq for _, seq in page]),),
        )
    )
    return [(seq, records[seq], 0.0, int(members[story])) for story, seq in page]


def page_scores(conn: sqlite3.Connection, match: str, seqs: Sequence[int]) -> dict[int, float]:
    """bm25 of the page's rows, from one pass over the MATCH (the plus keeps FTS5 from
    being asked for each rowid alone, which would recompute the collection statistics)."""
    sql = (
        f"SELECT rowid, -{_BM25} FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH ?"
        " AND +rowid IN (SELECT value FROM json_each(?))"
    )
    return {int(seq): float(score) for seq, score in conn.execute(sql, (match, json.dumps(list(seqs))))}
