"""Stories: near-duplicate mentions folded into one thing to respond to.

One article syndicated to 140 sites, a post reposted and quoted, a thread
crossposted to three subreddits: each copy is a mention, but a responder wants
one story with its size, not 140 rows. Mentions are compared by MinHash
signatures (datasketch) of their word 3-shingles, indexed with LSH so a new
mention is compared only with the stories likely to match; it joins the best
one whose estimated Jaccard similarity reaches `threshold`, or starts its own.

Per story the index keeps a representative text (the first member's), the
first-seen time (earliest publication among members), the member count and
the reach: members plus their reposts, likes and replies where the source
reports them, so one viral post weighs more than one quiet copy.

State is one SQLite file; signatures of stories younger than `horizon` are
loaded back into LSH at start-up, so a restart does not split a running story.
Adding a mention is idempotent by mention id (at-least-once delivery).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from datasketch import MinHash, MinHashLSH

from listener.records import Mention

__all__ = ["Story", "StoryIndex", "shingles", "signature", "similarity"]

NUM_PERM = 128
SCHEME = "affine32"  # datasketch's hashing scheme, pinned so stored signatures stay comparable
SHINGLE = 3
MAX_WORDS = 400  # a long article's opening is enough to recognise it
_WORD = re.compile(r"[^\W_]+")
_URL = re.compile(r"https?://\S+|www\.\S+")
_REPOST = re.compile(r"^\s*(rt|repost|via|crosspost(ed)?)\b[^:]{0,60}:\s*", re.IGNORECASE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS story (
    id TEXT PRIMARY KEY,
    brand TEXT NOT NULL,
    representative TEXT NOT NULL,
    url TEXT,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    members INTEGER NOT NULL,
    reach INTEGER NOT NULL,
    signature BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS story_by_brand ON story (brand, last_seen);
CREATE TABLE IF NOT EXISTS story_member (
    mention_id TEXT PRIMARY KEY,
    story_id TEXT NOT NULL,
    source TEXT NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Story:
    id: str
    brand: str
    representative: str
    url: str | None
    first_seen: datetime
    last_seen: datetime
    members: int
    reach: int


def shingles(text: str, k: int = SHINGLE) -> set[bytes]:
    """Word k-shingles of the normalised text (case, punctuation, URLs and repost prefixes dropped)."""
    words = _WORD.findall(_URL.sub(" ", _REPOST.sub("", text)).casefold())[:MAX_WORDS]
    if len(words) <= k:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + k]).encode() for i in range(len(words) - k + 1)}


_PERMUTATIONS: dict[int, object] = {}


def signature(text: str, num_perm: int = NUM_PERM) -> MinHash:
    # Drawing the permutations is most of a fresh MinHash's cost; they depend only on seed and size.
    perms = _PERMUTATIONS.get(num_perm)
    if perms is None:
        perms = _PERMUTATIONS[num_perm] = MinHash(num_perm=num_perm, seed=7, scheme=SCHEME).permutations
    sketch = MinHash(num_perm=num_perm, seed=7, permutations=perms, scheme=SCHEME)
    sketch.update_batch(sorted(shingles(text)))
    return sketch


def similarity(a: str, b: str) -> float:
    """Estimated Jaccard similarity of two texts' shingle sets."""
    return float(signature(a).jaccard(signature(b)))


def _mention_text(mention: Mention) -> str:
    title = mention.title or ""
    return mention.text if title and mention.text.startswith(title) else f"{title}\n{mention.text}".strip()


def _reach(mention: Mention) -> int:
    e = mention.engagement
    return 1 + sum(max(0, e.get(key, 0)) for key in ("reposts", "likes", "replies"))


class StoryIndex:
    """Assigns mentions to stories; thread-safe; one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        threshold: float = 0.5,
        num_perm: int = NUM_PERM,
        horizon: float = 3 * 86400.0,
    ) -> None:
        self.path = Path(path)
        self.threshold = threshold
        self.num_perm = num_perm
        self.horizon = horizon
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._lsh: dict[str, MinHashLSH] = {}
        self._sketches: dict[str, MinHash] = {}
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        self._reload(time.time() - horizon)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def add(self, mention: Mention) -> str:
        """The story id `mention` belongs to (joining or starting one)."""
        return self.add_many([mention])[0]

    def add_many(self, mentions: Iterable[Mention]) -> list[str]:
        """Assign a batch in one transaction (a commit per mention would dominate the cost)."""
        with self._lock, self._conn:
            return [self._assign(m) for m in mentions]

    def _assign(self, mention: Mention) -> str:
        known = self._conn.execute(
            "SELECT story_id FROM story_member WHERE mention_id = ?", (mention.id,)
        ).fetchone()
        if known is not None:
            return str(known[0])
        sketch = signature(_mention_text(mention), self.num_perm)
        story_id = self._best_match(mention.brand, sketch)
        if story_id is None:
            story_id = self._start(mention, sketch)
        else:
            self._join(story_id, mention)
        member = (mention.id, story_id, mention.source)
        self._conn.execute("INSERT INTO story_member VALUES (?, ?, ?)", member)
        return story_id

    def story_of(self, mention_id: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT story_id FROM story_member WHERE mention_id = ?", (mention_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def stories(self, brand: str, *, since: datetime | None = None, limit: int = 20) -> list[Story]:
        """A brand's stories, biggest first (members, then reach)."""
        after = since.timestamp() if since else 0.0
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, brand, representative, url, first_seen, last_seen, members, reach FROM story"
                " WHERE brand = ? AND last_seen >= ? ORDER BY members DESC, reach DESC, first_seen LIMIT ?",
                (brand.casefold(), after, limit),
            ).fetchall()
        return [_story(row) for row in rows]

    def get(self, story_id: str) -> Story | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, brand, representative, url, first_seen, last_seen, members, reach FROM story"
                " WHERE id = ?",
                (story_id,),
            ).fetchone()
        return None if row is None else _story(row)

    # --- internals ----------------------------------------------------------------------

    def _lsh_for(self, brand: str) -> MinHashLSH:
        key = brand.casefold()
        if key not in self._lsh:
            self._lsh[key] = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)
        return self._lsh[key]

    def _best_match(self, brand: str, sketch: MinHash) -> str | None:
        scored = [(self._sketches[sid].jaccard(sketch), sid) for sid in self._lsh_for(brand).query(sketch)]
        good = [(score, sid) for score, sid in scored if score >= self.threshold]
        return max(good)[1] if good else None

    def _start(self, mention: Mention, sketch: MinHash) -> str:
        seed = f"story\x1f{mention.brand.casefold()}\x1f{mention.id}"
        story_id = hashlib.sha256(seed.encode()).hexdigest()[:24]
        when = mention.published.timestamp()
        text = _mention_text(mention)[:2000]
        blob = np.asarray(sketch.hashvalues, dtype=np.uint64).tobytes()
        self._conn.execute(
            "INSERT INTO story VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
            (story_id, mention.brand.casefold(), text, mention.url, when, when, _reach(mention), blob),
        )
        self._lsh_for(mention.brand).insert(story_id, sketch)
        self._sketches[story_id] = sketch
        return story_id

    def _join(self, story_id: str, mention: Mention) -> None:
        when = mention.published.timestamp()
        self._conn.execute(
            "UPDATE story SET members = members + 1, reach = reach + ?, first_seen = MIN(first_seen, ?),"
            " last_seen = MAX(last_seen, ?) WHERE id = ?",
            (_reach(mention), when, when, story_id),
        )

    def _reload(self, since: float) -> None:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, brand, signature FROM story WHERE last_seen >= ?", (since,)
            ).fetchall()
            for story_id, brand, blob in rows:
                values = np.frombuffer(blob, dtype=np.uint64)
                sketch = MinHash(num_perm=self.num_perm, seed=7, hashvalues=values, scheme=SCHEME)
                self._lsh_for(brand).insert(story_id, sketch)
                self._sketches[story_id] = sketch


def _story(row: tuple[object, ...]) -> Story:
    return Story(
        id=str(row[0]),
        brand=str(row[1]),
        representative=str(row[2]),
        url=None if row[3] is None else str(row[3]),
        first_seen=datetime.fromtimestamp(float(row[4]), UTC),  # type: ignore[arg-type]
        last_seen=datetime.fromtimestamp(float(row[5]), UTC),  # type: ignore[arg-type]
        members=int(row[6]),  # type: ignore[call-overload]
        reach=int(row[7]),  # type: ignore[call-overload]
    )
