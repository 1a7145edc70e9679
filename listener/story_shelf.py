"""One brand's stories in memory for the story index: compact signatures, LSH buckets, last-seen times.

datasketch's MinHashLSH keeps a bytes key, a set and a list per band per story
(about 10 KB a story with its MinHash object). A shelf keeps per story the
signature as 128 uint32, the lead's bucket keys, its last-seen time and one
dict entry per band keyed by a 64-bit int (a story id, or a tuple of them when
stories share a bucket), so the index can also evict stories cheaply.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BANDS", "LEAD_BANDS", "Shelf", "band_keys", "jaccard"]

# LSH bands (count, rows): the full signature's catch pairs near 0.5 Jaccard, the lead's near-identical leads.
BANDS = (25, 5)
LEAD_BANDS = (12, 4)


def band_keys(values: np.ndarray, bands: tuple[int, int], salt: int) -> list[int]:
    """One bucket key per band: its rows' hash values mixed into 64 bits (the salt keeps band sets apart)."""
    count, rows = bands
    block = values[: count * rows].astype(np.uint64).reshape(count, rows)
    with np.errstate(over="ignore"):
        mixed = (block * _MIX[:rows]).sum(axis=1, dtype=np.uint64) + _SALTS[:count] * np.uint64(salt)
    return [int(key) for key in mixed]


_MIX = np.random.default_rng(11).integers(1, 2**63, size=8, dtype=np.uint64) | np.uint64(1)
_SALTS = np.random.default_rng(13).integers(1, 2**63, size=64, dtype=np.uint64)


class Shelf:
    """One brand's stories in memory: signatures, LSH buckets and last-seen times, nothing more."""

    def __init__(self) -> None:
        self.sigs: dict[str, np.ndarray] = {}
        self.leads: dict[str, np.ndarray] = {}  # the lead's bucket keys (a signature is not kept)
        self.last: dict[str, float] = {}
        self.buckets: dict[int, str | tuple[str, ...]] = {}

    def add(self, story_id: str, sig: np.ndarray, lead: np.ndarray | None, last: float) -> None:
        self.sigs[story_id] = sig
        self.last[story_id] = last
        keys = band_keys(sig, BANDS, 1)
        if lead is not None:
            self.leads[story_id] = np.array(band_keys(lead, LEAD_BANDS, 2), dtype=np.uint64)
            keys += self.leads[story_id].tolist()
        for key in keys:
            held = self.buckets.get(key)
            self.buckets[key] = story_id if held is None else (*_ids(held), story_id)

    def remove(self, story_id: str) -> None:
        sig = self.sigs.pop(story_id, None)
        if sig is None:
            return
        del self.last[story_id]
        lead = self.leads.pop(story_id, None)
        for key in band_keys(sig, BANDS, 1) + ([] if lead is None else lead.tolist()):
            rest = tuple(sid for sid in _ids(self.buckets.pop(key, ())) if sid != story_id)
            if rest:
                self.buckets[key] = rest[0] if len(rest) == 1 else rest

    def candidates(self, sig: np.ndarray, lead: np.ndarray | None) -> tuple[set[str], set[str]]:
        """Stories sharing a band of the full signature, and those sharing one of the lead's."""
        found: list[set[str]] = [set(), set()]
        leads = [] if lead is None else band_keys(lead, LEAD_BANDS, 2)
        for n, keys in enumerate((band_keys(sig, BANDS, 1), leads)):
            for key in keys:
                held = self.buckets.get(key)
                if held is not None:
                    found[n].update(_ids(held))
        return found[0], found[1]


def _ids(held: str | tuple[str, ...]) -> tuple[str, ...]:
    return (held,) if isinstance(held, str) else held


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity: the share of signature positions that agree."""
    return float(np.count_nonzero(a == b)) / len(a)
