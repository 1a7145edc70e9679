"""Stories among a spike's negatives: "one article on 40 sites" versus "40 complaints".

A count of 40 negative mentions means one thing when it is one wire story
syndicated to 40 news sites (answer the article) and another when it is 40
people complaining (answer the people). The detector files each negative
mention into a small list of groups for its bucket: a mention joins the group
whose representative text has an estimated Jaccard similarity of at least
`THRESHOLD` with its own (MinHash over word 3-shingles, the same signature as
`listener.stories`), or starts a new one. At alert time the groups of the
window's buckets are merged the same way, so a story that spans minutes is one
story.

Groups are kept in the detector's persisted state (plain JSON: text, url,
members, sites), so this works in the distributed detect stage too, without
reaching the index stage's story index. Each bucket keeps at most
`GROUPS_PER_BUCKET` groups; beyond that the smallest group gives way, so
`story_count` is then a lower bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from alerts.evidence import source_of
from listener.records import AlertStory, ScoredMention

if TYPE_CHECKING:
    from datasketch import MinHash

__all__ = ["GROUPS_PER_BUCKET", "THRESHOLD", "file_mention", "group_text", "top_stories"]

THRESHOLD = 0.5
GROUPS_PER_BUCKET = 40
TEXT_LIMIT = 500
SITES_PER_GROUP = 20

Group = dict[str, Any]  # {"text": str, "url": str | None, "n": int, "sites": {site: count}}


def group_text(mention: ScoredMention) -> str:
    """Title and text, once each (feeds often repeat the title as the text's first line)."""
    title = mention.title or ""
    text = mention.text if title and mention.text.startswith(title) else f"{title}\n{mention.text}"
    return text.strip()[:TEXT_LIMIT]


@lru_cache(maxsize=8192)
def _sketch(text: str) -> MinHash | None:
    """The text's signature, or None when it has no words (empty texts never match anything)."""
    from listener.stories import shingles, signature

    return signature(text) if shingles(text) else None


def _similar(a: str, b: str) -> bool:
    if a == b:
        return bool(a)
    left, right = _sketch(a), _sketch(b)
    return left is not None and right is not None and float(left.jaccard(right)) >= THRESHOLD


def file_mention(groups: list[Group], mention: ScoredMention) -> None:
    """Count `mention` into the bucket's groups (joining the most similar, or starting one)."""
    text = group_text(mention)
    site = source_of(mention)
    for group in groups:
        if _similar(group["text"], text):
            group["n"] += 1
            sites: dict[str, int] = group["sites"]
            if site in sites or len(sites) < SITES_PER_GROUP:
                sites[site] = sites.get(site, 0) + 1
            return
    if len(groups) >= GROUPS_PER_BUCKET:
        smallest = min(range(len(groups)), key=lambda i: (groups[i]["n"], -i))
        del groups[smallest]
    groups.append({"text": text, "url": mention.url, "n": 1, "sites": {site: 1}})


def _merge(buckets: Iterable[list[Group]]) -> list[Group]:
    merged: list[Group] = []
    for groups in buckets:
        for group in groups:
            into = next((m for m in merged if _similar(m["text"], group["text"])), None)
            if into is None:
                merged.append({**group, "sites": dict(group["sites"])})
                continue
            into["n"] += group["n"]
            for site, count in group["sites"].items():
                into["sites"][site] = into["sites"].get(site, 0) + count
    return merged


def top_stories(buckets: Iterable[list[Group]], limit: int = 3) -> tuple[tuple[AlertStory, ...], int]:
    """The `limit` biggest stories of the window (members, then sites) and how many there are."""
    merged = _merge(buckets)
    merged.sort(key=lambda g: (-g["n"], -len(g["sites"]), g["text"]))
    stories = tuple(
        AlertStory(
            text=g["text"],
            url=g.get("url"),
            members=g["n"],
            sites=tuple(sorted(g["sites"].items(), key=lambda kv: (-kv[1], kv[0]))),
        )
        for g in merged[:limit]
    )
    return stories, len(merged)
