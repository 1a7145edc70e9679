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

State lives in the state database (`stories.db` embedded, PostgreSQL when
distributed); signatures of stories younger than `horizon` are loaded back
into LSH at start-up, so a restart does not split a running story. Adding a
mention is idempotent by mention id (at-least-once delivery): a redelivered
mention gets its first story back.

Several `index` copies may share the database. Stories are keyed by brand: a
batch locks its brands' rows in `story_brand` (in name order, so two copies
never wait on each other in a circle) before it reads or starts a story, so
two copies adding near-duplicates of one brand at once take turns and the
second joins the first's story. Each brand counts the stories started for it;
a copy that finds the count beyond what it has seen loads the stories other
copies started in between into its LSH before matching.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from datasketch import MinHash, MinHashLSH

from listener.records import Mention
from listener.statedb import StateDB, StateRow, ensure_schema, open_state

__all__ = ["MIGRATIONS", "Story", "StoryIndex", "shingles", "signature", "similarity"]

NUM_PERM = 128
SCHEME = "affine32"  # datasketch's hashing scheme, pinned so stored signatures stay comparable
SHINGLE = 3
MAX_WORDS = 400  # a long article's opening is enough to recognise it
_WORD = re.compile(r"[^\W_]+")
_URL = re.compile(r"https?://\S+|www\.\S+")
_REPOST = re.compile(r"^\s*(rt|repost|via|crosspost(ed)?)\b[^:]{0,60}:\s*", re.IGNORECASE)

# Schema steps, oldest first; never edit a released step, append a new one.
MIGRATIONS = (
    """
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
);
""",
    # Per brand, how many stories were started (the row copies lock), and each story's number.
    """
CREATE TABLE IF NOT EXISTS story_brand (
    brand TEXT PRIMARY KEY,
    stories INTEGER NOT NULL
);
ALTER TABLE story ADD COLUMN brand_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS story_by_brand_seq ON story (brand, brand_seq);
""",
)
_STORY_COLUMNS = "id, brand, representative, url, first_seen, last_seen, members, reach"
_IN_CHUNK = 500  # mention ids per `IN (...)` lookup, well under SQLite's variable limit


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
    """Assigns mentions to stories; thread-safe; shareable between processes (see the module)."""

    def __init__(
        self,
        db: StateDB | str | Path,
        *,
        threshold: float = 0.5,
        num_perm: int = NUM_PERM,
        horizon: float = 3 * 86400.0,
    ) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.horizon = horizon
        self._lock = threading.Lock()
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "stories", MIGRATIONS)
        self._lsh: dict[str, MinHashLSH] = {}
        self._sketches: dict[str, MinHash] = {}
        self._seen: dict[str, int] = {}  # brand -> stories started for it that our LSH holds
        self._reload(time.time() - horizon)

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def add(self, mention: Mention) -> str:
        """The story id `mention` belongs to (joining or starting one)."""
        return self.add_many([mention])[0]

    def add_many(self, mentions: Iterable[Mention]) -> list[str]:
        """Assign a batch in one transaction (a commit per mention would dominate the cost).

        Stories this batch starts enter the LSH at once (a later copy in the same
        batch must find them) and leave it again if the transaction fails. Call it
        outside other transactions: it is meant to commit on its own.
        """
        batch = list(mentions)
        if not batch:
            return []
        started: list[tuple[str, str]] = []
        with self._lock:
            try:
                with self._db.transaction():
                    counts = self._lock_brands({m.brand.casefold() for m in batch})
                    assigned = self._members([m.id for m in batch])
                    joined: list[tuple[str, str, str]] = []
                    for mention in batch:
                        if mention.id not in assigned:
                            assigned[mention.id] = self._assign(mention, counts, started)
                            joined.append((mention.id, assigned[mention.id], mention.source))
                    self._db.executemany(
                        "INSERT INTO story_member (mention_id, story_id, source) VALUES (?, ?, ?)", joined
                    )
                    self._save_counts(counts, started)
            except BaseException:
                self._forget(started)
                raise
            self._seen.update(counts)
        return [assigned[m.id] for m in batch]

    def story_of(self, mention_id: str) -> str | None:
        found = self._db.execute(
            "SELECT story_id FROM story_member WHERE mention_id = ?", (mention_id,)
        ).scalar()
        return None if found is None else str(found)

    def stories(self, brand: str, *, since: datetime | None = None, limit: int = 20) -> list[Story]:
        """A brand's stories, biggest first (members, then reach)."""
        after = since.timestamp() if since else 0.0
        rows = self._db.execute(
            f"SELECT {_STORY_COLUMNS} FROM story WHERE brand = ? AND last_seen >= ?"
            " ORDER BY members DESC, reach DESC, first_seen, id LIMIT ?",
            (brand.casefold(), after, limit),
        ).rows
        return [_story(row) for row in rows]

    def get(self, story_id: str) -> Story | None:
        row = self._db.execute(f"SELECT {_STORY_COLUMNS} FROM story WHERE id = ?", (story_id,)).fetchone()
        return None if row is None else _story(row)

    # --- internals ----------------------------------------------------------------------

    def _lock_brands(self, brands: set[str]) -> dict[str, int]:
        """Lock each brand's row, in name order, and catch up on stories other copies started."""
        counts: dict[str, int] = {}
        for brand in sorted(brands):
            # An upsert that rewrites the row locks it on PostgreSQL, even when it is new.
            counts[brand] = int(
                self._db.execute(
                    "INSERT INTO story_brand (brand, stories) VALUES (?, 0) ON CONFLICT (brand)"
                    " DO UPDATE SET stories = story_brand.stories RETURNING stories",
                    (brand,),
                ).scalar()
            )
            if counts[brand] > self._seen.get(brand, 0):
                rows = self._db.execute(
                    "SELECT id, brand, signature FROM story WHERE brand = ? AND brand_seq > ?",
                    (brand, self._seen.get(brand, 0)),
                ).rows
                self._remember(rows)
        return counts

    def _members(self, mention_ids: list[str]) -> dict[str, str]:
        """The stories already holding any of these mentions (redelivered ones keep theirs)."""
        unique = list(dict.fromkeys(mention_ids))
        found: dict[str, str] = {}
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT mention_id, story_id FROM story_member WHERE mention_id IN ({marks})", chunk
            ).rows
            found.update((str(mention_id), str(story_id)) for mention_id, story_id in rows)
        return found

    def _assign(self, mention: Mention, counts: dict[str, int], started: list[tuple[str, str]]) -> str:
        brand = mention.brand.casefold()
        sketch = signature(_mention_text(mention), self.num_perm)
        story_id = self._best_match(brand, sketch)
        while story_id is not None and not self._join(story_id, mention):
            # Started in a transaction a caller rolled back after this index had committed to it.
            self._forget([(brand, story_id)])
            story_id = self._best_match(brand, sketch)
        if story_id is None:
            counts[brand] += 1
            story_id = self._start(mention, sketch, counts[brand])
            started.append((brand, story_id))
        return story_id

    def _save_counts(self, counts: dict[str, int], started: list[tuple[str, str]]) -> None:
        for brand in sorted({brand for brand, _ in started}):
            self._db.execute("UPDATE story_brand SET stories = ? WHERE brand = ?", (counts[brand], brand))

    def _lsh_for(self, brand: str) -> MinHashLSH:
        key = brand.casefold()
        if key not in self._lsh:
            self._lsh[key] = MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)
        return self._lsh[key]

    def _best_match(self, brand: str, sketch: MinHash) -> str | None:
        scored = [(self._sketches[sid].jaccard(sketch), sid) for sid in self._lsh_for(brand).query(sketch)]
        good = [(score, sid) for score, sid in scored if score >= self.threshold]
        return max(good)[1] if good else None

    def _start(self, mention: Mention, sketch: MinHash, number: int) -> str:
        brand = mention.brand.casefold()
        seed = f"story\x1f{brand}\x1f{mention.id}"
        story_id = hashlib.sha256(seed.encode()).hexdigest()[:24]
        when = mention.published.timestamp()
        text = _mention_text(mention)[:2000]
        blob = np.asarray(sketch.hashvalues, dtype=np.uint64).tobytes()
        self._db.execute(
            "INSERT INTO story (id, brand, representative, url, first_seen, last_seen, members, reach,"
            " signature, brand_seq) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
            (story_id, brand, text, mention.url, when, when, _reach(mention), blob, number),
        )
        self._lsh_for(brand).insert(story_id, sketch)
        self._sketches[story_id] = sketch
        return story_id

    def _join(self, story_id: str, mention: Mention) -> bool:
        """Counts the mention into the story; False when no such story is stored."""
        when = mention.published.timestamp()
        updated = self._db.execute(
            "UPDATE story SET members = members + 1, reach = reach + ?,"
            " first_seen = CASE WHEN first_seen < ? THEN first_seen ELSE ? END,"
            " last_seen = CASE WHEN last_seen > ? THEN last_seen ELSE ? END WHERE id = ?",
            (_reach(mention), when, when, when, when, story_id),
        )
        return updated.rowcount > 0

    def _remember(self, rows: Iterable[StateRow]) -> None:
        """Stories read from the database into LSH; ones it holds already are skipped."""
        for story_id, brand, blob in rows:
            if story_id in self._sketches:
                continue
            values = np.frombuffer(bytes(blob), dtype=np.uint64)
            sketch = MinHash(num_perm=self.num_perm, seed=7, hashvalues=values, scheme=SCHEME)
            self._lsh_for(brand).insert(story_id, sketch)
            self._sketches[story_id] = sketch

    def _forget(self, started: list[tuple[str, str]]) -> None:
        """Takes the stories of a rolled-back batch out of LSH again."""
        for brand, story_id in started:
            self._lsh_for(brand).remove(story_id)
            del self._sketches[story_id]

    def _reload(self, since: float) -> None:
        # Counts first: a story started between the two reads is loaded again later, harmlessly.
        counts = self._db.execute("SELECT brand, stories FROM story_brand").rows
        rows = self._db.execute("SELECT id, brand, signature FROM story WHERE last_seen >= ?", (since,)).rows
        with self._lock:
            self._remember(rows)
            self._seen = {str(brand): int(n) for brand, n in counts}


def _story(row: StateRow) -> Story:
    return Story(
        id=str(row["id"]),
        brand=str(row["brand"]),
        representative=str(row["representative"]),
        url=None if row["url"] is None else str(row["url"]),
        first_seen=datetime.fromtimestamp(float(row["first_seen"]), UTC),
        last_seen=datetime.fromtimestamp(float(row["last_seen"]), UTC),
        members=int(row["members"]),
        reach=int(row["reach"]),
    )
