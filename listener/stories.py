"""Stories: near-duplicate mentions folded into one thing to respond to.

One article syndicated to 140 sites, a post reposted and quoted, a thread
crossposted to three subreddits: each copy is a mention, but a responder wants
one story with its size, not 140 rows. Mentions are compared by MinHash
signatures (datasketch) of their word 3-shingles, indexed with LSH so a new
mention is compared only with the stories likely to match; it joins the best
one whose estimated Jaccard similarity reaches `threshold`, or starts its own.

A wire story's teaser (headline and first two sentences) shares only a quarter
of its shingles with the full article, so Jaccard alone never joins them. Each
story is therefore also indexed by the signature of its lead (first
`LEAD_WORDS` words), and a lead candidate that fails Jaccard joins when the
shorter text's shingles are nearly all in the longer one's (exact containment
against the stored representative, `contain_threshold`), provided the shorter
text has at least `MIN_CONTAINED` shingles: two short posts sharing a brand
name and a few common words never qualify.

Memory is bounded: the index keeps per story only a compact signature, its
LSH bucket entries and its last-seen time, and every `sweep_every` mentions it
evicts the stories not seen within `horizon` of the newest publication time it
has handled (checking the database first, since another copy may have joined
them since). Eviction only forgets a story in memory; the database keeps it.

Per story the index keeps a representative text (the first member's), the
first-seen time (earliest publication among members), the member count and
the reach: members plus their reposts, likes and replies where the source
reports them, so one viral post weighs more than one quiet copy.

State lives in the state database (`stories.db` embedded, PostgreSQL when
distributed); signatures of stories seen within `horizon` are loaded back
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
from datasketch import MinHash

from listener.records import Mention
from listener.statedb import StateDB, StateRow, ensure_schema, open_state
from listener.story_shelf import Shelf, jaccard

__all__ = [
    "MIGRATIONS",
    "Story",
    "StoryIndex",
    "containment",
    "shingles",
    "signature",
    "similarity",
]

NUM_PERM = 128
SCHEME = "affine32"  # datasketch's hashing scheme, pinned so stored signatures stay comparable
SHINGLE = 3
MAX_WORDS = 400  # a long article's opening is enough to recognise it
LEAD_WORDS = 30  # a teaser's lead: its first words are the article's first words
LEAD_PERM = 48
MIN_CONTAINED = 12  # shingles the shorter text needs before containment may join it
CONTAIN_THRESHOLD = 0.8
_LEAD_CHECKS = 4  # lead candidates checked for containment per mention (a database read each)
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
    # The lead's signature, so teasers find their story (NULL for stories stored before).
    "ALTER TABLE story ADD COLUMN lead BLOB;",
)
_STORY_COLUMNS = "id, brand, representative, url, first_seen, last_seen, members, reach"
_SKETCH_COLUMNS = "id, brand, signature, lead, last_seen"
_IN_CHUNK = 500  # ids per `IN (...)` lookup, well under SQLite's variable limit


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


def _words(text: str) -> list[str]:
    return _WORD.findall(_URL.sub(" ", _REPOST.sub("", text)).casefold())[:MAX_WORDS]


def _shingled(words: list[str], k: int = SHINGLE) -> set[bytes]:
    if len(words) <= k:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + k]).encode() for i in range(len(words) - k + 1)}


def shingles(text: str, k: int = SHINGLE) -> set[bytes]:
    """Word k-shingles of the normalised text (case, punctuation, URLs and repost prefixes dropped)."""
    return _shingled(_words(text), k)


_PERMUTATIONS: dict[int, np.ndarray] = {}


def _permutations(num_perm: int) -> np.ndarray:
    # Drawing the permutations is most of a fresh MinHash's cost; they depend only on seed and size.
    perms = _PERMUTATIONS.get(num_perm)
    if perms is None:
        perms = _PERMUTATIONS[num_perm] = MinHash(num_perm=num_perm, seed=7, scheme=SCHEME).permutations
    return perms


def _minhash(parts: set[bytes], perms: np.ndarray) -> MinHash:
    sketch = MinHash(num_perm=perms.shape[1], seed=7, permutations=perms, scheme=SCHEME)
    sketch.update_batch(sorted(parts))
    return sketch


def signature(text: str, num_perm: int = NUM_PERM) -> MinHash:
    return _minhash(shingles(text), _permutations(num_perm))


def similarity(a: str, b: str) -> float:
    """Estimated Jaccard similarity of two texts' shingle sets."""
    return float(signature(a).jaccard(signature(b)))


def containment(a: str, b: str) -> float:
    """Share of the shorter text's shingles found in the longer's; 0 below `MIN_CONTAINED` shingles.

    Exact, not estimated: a teaser is a small part of a long article, where a
    MinHash estimate of containment is too noisy to trust.
    """
    left, right = shingles(a), shingles(b)
    short, long_ = (left, right) if len(left) <= len(right) else (right, left)
    return len(short & long_) / len(short) if len(short) >= MIN_CONTAINED else 0.0


def _sketches(text: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The text's signature, and its lead's (None when the text is too short to be contained).

    The lead uses the first `LEAD_PERM` of the signature's permutations, so a
    text no longer than its lead reuses the signature instead of hashing again.
    """
    words = _words(text)
    sig = np.asarray(_minhash(_shingled(words), _permutations(NUM_PERM)).hashvalues, dtype=np.uint32)
    if len(words) < MIN_CONTAINED + SHINGLE - 1:
        return sig, None
    if len(words) <= LEAD_WORDS:
        return sig, sig[:LEAD_PERM].copy()
    perms = _PERMUTATIONS.get(-LEAD_PERM)
    if perms is None:  # cached under a negative size: a prefix of the signature's, not a fresh draw
        perms = _PERMUTATIONS[-LEAD_PERM] = np.ascontiguousarray(_permutations(NUM_PERM)[:, :LEAD_PERM])
    lead = _minhash(_shingled(words[:LEAD_WORDS]), perms).hashvalues
    return sig, np.asarray(lead, dtype=np.uint32)


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
        contain_threshold: float = CONTAIN_THRESHOLD,
        horizon: float = 3 * 86400.0,
        sweep_every: int = 1000,
    ) -> None:
        self.threshold = threshold
        self.contain_threshold = contain_threshold
        self.horizon = horizon
        self.sweep_every = sweep_every
        self._lock = threading.Lock()
        self._db, self._owned = open_state(db)
        ensure_schema(self._db, "stories", MIGRATIONS)
        self._shelves: dict[str, Shelf] = {}
        self._seen: dict[str, int] = {}  # brand -> stories started for it that our LSH holds
        self._clock = 0.0  # newest publication time handled (never ahead of the wall clock)
        self._since_sweep = 0
        self._reload(max(time.time() - horizon, 0.0))

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def held(self) -> int:
        """How many stories the index holds in memory (the rest live only in the database)."""
        return sum(len(shelf.sigs) for shelf in self._shelves.values())

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
            self._tick(batch)
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

    def _sweep(self) -> int:
        """Forget the stories not seen within `horizon` of the clock; how many were forgotten.

        A story another copy joined since we last saw it is kept: the database's
        last-seen time decides, not ours.
        """
        cutoff = self._clock - self.horizon
        gone = 0
        for shelf in self._shelves.values():
            stale = [sid for sid, last in shelf.last.items() if last < cutoff]
            for start in range(0, len(stale), _IN_CHUNK):
                chunk = stale[start : start + _IN_CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = self._db.execute(f"SELECT id, last_seen FROM story WHERE id IN ({marks})", chunk).rows
                fresh = {str(sid): float(last) for sid, last in rows}
                for sid in chunk:
                    if fresh.get(sid, cutoff - 1) >= cutoff:
                        shelf.last[sid] = fresh[sid]
                    else:
                        shelf.remove(sid)
                        gone += 1
        return gone

    def _tick(self, batch: list[Mention]) -> None:
        """Advance the clock; sweep every `sweep_every` mentions (a pass over the held stories)."""
        newest = max(m.published.timestamp() for m in batch)
        self._clock = max(self._clock, min(newest, time.time()))
        self._since_sweep += len(batch)
        if self._since_sweep >= self.sweep_every:
            self._since_sweep = 0
            self._sweep()

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
                    f"SELECT {_SKETCH_COLUMNS} FROM story WHERE brand = ? AND brand_seq > ?",
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
        text = _mention_text(mention)
        sig, lead = _sketches(text)
        story_id = self._best_match(brand, text, sig, lead)
        while story_id is not None and not self._join(brand, story_id, mention):
            # Started in a transaction a caller rolled back after this index had committed to it.
            self._forget([(brand, story_id)])
            story_id = self._best_match(brand, text, sig, lead)
        if story_id is None:
            counts[brand] += 1
            story_id = self._start(mention, sig, lead, counts[brand])
            started.append((brand, story_id))
        return story_id

    def _save_counts(self, counts: dict[str, int], started: list[tuple[str, str]]) -> None:
        for brand in sorted({brand for brand, _ in started}):
            self._db.execute("UPDATE story_brand SET stories = ? WHERE brand = ?", (counts[brand], brand))

    def _shelf(self, brand: str) -> Shelf:
        key = brand.casefold()
        if key not in self._shelves:
            self._shelves[key] = Shelf()
        return self._shelves[key]

    def _best_match(self, brand: str, text: str, sig: np.ndarray, lead: np.ndarray | None) -> str | None:
        """The most similar story by Jaccard; failing that, a lead candidate that contains or is contained."""
        shelf = self._shelf(brand)
        near, leads = shelf.candidates(sig, lead)
        scored = max(((jaccard(shelf.sigs[sid], sig), sid) for sid in near), default=(0.0, ""))
        if scored[0] >= self.threshold:
            return scored[1]
        ranked = sorted(((jaccard(shelf.sigs[sid], sig), sid) for sid in leads), reverse=True)
        for _, sid in ranked[:_LEAD_CHECKS]:
            held = self._db.execute("SELECT representative FROM story WHERE id = ?", (sid,)).scalar()
            if held is not None and containment(text, str(held)) >= self.contain_threshold:
                return sid
        return None

    def _start(self, mention: Mention, sig: np.ndarray, lead: np.ndarray | None, number: int) -> str:
        brand = mention.brand.casefold()
        seed = f"story\x1f{brand}\x1f{mention.id}"
        story_id = hashlib.sha256(seed.encode()).hexdigest()[:24]
        when = mention.published.timestamp()
        text = _mention_text(mention)[:2000]
        blob = sig.astype(np.uint64).tobytes()
        self._db.execute(
            "INSERT INTO story (id, brand, representative, url, first_seen, last_seen, members, reach,"
            " signature, brand_seq, lead) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
            (story_id, brand, text, mention.url, when, when, _reach(mention), blob, number, _bytes(lead)),
        )
        self._shelf(brand).add(story_id, sig, lead, when)
        return story_id

    def _join(self, brand: str, story_id: str, mention: Mention) -> bool:
        """Counts the mention into the story; False when no such story is stored."""
        when = mention.published.timestamp()
        updated = self._db.execute(
            "UPDATE story SET members = members + 1, reach = reach + ?,"
            " first_seen = CASE WHEN first_seen < ? THEN first_seen ELSE ? END,"
            " last_seen = CASE WHEN last_seen > ? THEN last_seen ELSE ? END WHERE id = ?",
            (_reach(mention), when, when, when, when, story_id),
        )
        shelf = self._shelf(brand)
        shelf.last[story_id] = max(shelf.last.get(story_id, when), when)
        return updated.rowcount > 0

    def _remember(self, rows: Iterable[StateRow]) -> None:
        """Stories read from the database into LSH; ones it holds already are skipped."""
        for story_id, brand, blob, lead, last_seen in rows:
            shelf = self._shelf(str(brand))
            if story_id in shelf.sigs:
                continue
            sig = np.frombuffer(bytes(blob), dtype=np.uint64).astype(np.uint32)
            leads = None if lead is None else np.frombuffer(bytes(lead), dtype=np.uint32).copy()
            shelf.add(str(story_id), sig, leads, float(last_seen))

    def _forget(self, started: list[tuple[str, str]]) -> None:
        """Takes the stories of a rolled-back batch out of LSH again."""
        for brand, story_id in started:
            self._shelf(brand).remove(story_id)

    def _reload(self, since: float) -> None:
        # Counts first: a story started between the two reads is loaded again later, harmlessly.
        counts = self._db.execute("SELECT brand, stories FROM story_brand").rows
        rows = self._db.execute(f"SELECT {_SKETCH_COLUMNS} FROM story WHERE last_seen >= ?", (since,)).rows
        with self._lock:
            self._remember(rows)
            self._seen = {str(brand): int(n) for brand, n in counts}


def _bytes(lead: np.ndarray | None) -> bytes | None:
    return None if lead is None else lead.tobytes()


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
