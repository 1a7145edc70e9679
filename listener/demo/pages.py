"""What the demo server sends: three feed formats and a small HTML site.

Each feed is a different format on purpose (RSS 2.0, Atom 1.0, RSS 1.0/RDF),
because real sources are, and the feed reader has to take all of them. The
review site has no feed at all, which is what the Scrapy spider is for.

All text is escaped here. Entry bodies are HTML carried inside XML, so the
text is escaped once as HTML and again as XML: a post that *says*
`<script>` arrives at the reader as those characters, never as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape

from listener.demo.world import Channel, World, WorldItem

__all__ = [
    "FEEDS",
    "REVIEWS_PER_PAGE",
    "ROBOTS_TXT",
    "SITE_NAMES",
    "atom_feed",
    "index_page",
    "item_page",
    "rdf_feed",
    "review_listing",
    "rss2_feed",
]

REVIEWS_PER_PAGE = 10

SITE_NAMES: dict[Channel, str] = {
    "social": "Chirp public firehose",
    "news": "The Metro Wire",
    "forum": "BroadbandTalk forum",
    "reviews": "ReviewNest",
}

# path -> channel served there
FEEDS: dict[str, Channel] = {
    "/feeds/social.rss": "social",
    "/feeds/news.atom": "news",
    "/feeds/forum.rdf": "forum",
}

ROBOTS_TXT = "User-agent: *\nDisallow: /admin/\nAllow: /reviews/\nAllow: /\n"


def _x(text: str) -> str:
    """Escape for XML character data and attribute values."""
    return escape(text, quote=True)


def _rfc822(when: int) -> str:
    return format_datetime(datetime.fromtimestamp(when, UTC), usegmt=True)


def _iso(when: int) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _body_html(item: WorldItem) -> str:
    return item.html if item.html is not None else escape(item.text, quote=False)


def _newest(items: Sequence[WorldItem], world: World) -> int:
    return items[0].published if items else world.t0


def rss2_feed(world: World, items: Sequence[WorldItem], base: str) -> bytes:
    """Short social posts: no titles, `dc:creator` for handles (RSS 2.0 `author` wants an email)."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n'
        f"<title>{_x(SITE_NAMES['social'])}</title>\n<link>{_x(base)}/social/</link>\n"
        "<description>Public posts, newest first</description>\n<language>en</language>\n"
        f'<atom:link href="{_x(base)}/feeds/social.rss" rel="self" type="application/rss+xml"/>\n'
        f"<lastBuildDate>{_rfc822(_newest(items, world))}</lastBuildDate>\n"
    ]
    for item in items:
        title = f"<title>{_x(item.title)}</title>" if item.title else ""
        parts.append(
            f'<item>{title}<guid isPermaLink="false">{_x(item.guid)}</guid>'
            f"<link>{_x(base + item.path)}</link><dc:creator>{_x(item.author)}</dc:creator>"
            f"<pubDate>{_rfc822(item.published)}</pubDate>"
            f"<description>{_x(_body_html(item))}</description></item>\n"
        )
    parts.append("</channel>\n</rss>\n")
    return "".join(parts).encode("utf-8")


def atom_feed(world: World, items: Sequence[WorldItem], base: str) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">\n'
        f"<title>{_x(SITE_NAMES['news'])}</title>\n<id>{_x(base)}/news/</id>\n"
        f'<link rel="self" href="{_x(base)}/feeds/news.atom"/>\n'
        f'<link rel="alternate" type="text/html" href="{_x(base)}/news/"/>\n'
        f"<updated>{_iso(_newest(items, world))}</updated>\n"
    ]
    for item in items:
        parts.append(
            f"<entry><id>{_x(item.guid)}</id><title>{_x(item.title)}</title>"
            f'<link rel="alternate" type="text/html" href="{_x(base + item.path)}"/>'
            f"<published>{_iso(item.published)}</published><updated>{_iso(item.published)}</updated>"
            f"<author><name>{_x(item.author)}</name></author>"
            f'<content type="html">{_x(_body_html(item))}</content></entry>\n'
        )
    parts.append("</feed>\n")
    return "".join(parts).encode("utf-8")


def rdf_feed(world: World, items: Sequence[WorldItem], base: str) -> bytes:
    """RSS 1.0: the channel lists its items in an `rdf:Seq`, dates come from Dublin Core."""
    seq = "".join(f'<rdf:li rdf:resource="{_x(base + i.path)}"/>' for i in items)
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/">\n'
        f'<channel rdf:about="{_x(base)}/feeds/forum.rdf">\n'
        f"<title>{_x(SITE_NAMES['forum'])}</title>\n<link>{_x(base)}/forum/</link>\n"
        "<description>New threads</description>\n"
        f"<dc:date>{_iso(_newest(items, world))}</dc:date>\n"
        f"<items><rdf:Seq>{seq}</rdf:Seq></items>\n</channel>\n"
    ]
    for item in items:
        parts.append(
            f'<item rdf:about="{_x(base + item.path)}"><title>{_x(item.title)}</title>'
            f"<link>{_x(base + item.path)}</link><dc:identifier>{_x(item.guid)}</dc:identifier>"
            f"<dc:creator>{_x(item.author)}</dc:creator><dc:date>{_iso(item.published)}</dc:date>"
            f"<description>{_x(escape(item.text, quote=False))}</description>"
            f"<content:encoded>{_x(_body_html(item))}</content:encoded></item>\n"
        )
    parts.append("</rdf:RDF>\n")
    return "".join(parts).encode("utf-8")


def _page(title: str, body: str) -> bytes:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head>\n<body>\n"
        '<header><p class="site">ReviewNest &middot; <a href="/admin/">staff</a></p></header>\n'
        f"<main>\n{body}\n</main>\n"
        '<aside class="sponsored"><p>Sponsored: try Velmora Air rewards!</p></aside>\n'
        "</body></html>\n"
    ).encode()


def _stars(rating: int | None) -> str:
    return "" if rating is None else f'<span class="stars" data-rating="{rating}">{rating} of 5</span>'


def review_listing(items: Sequence[WorldItem], page: int, pages: int) -> bytes:
    """One listing page: links to review pages, newest first, with older/newer links."""
    rows = "\n".join(
        f'<li class="review-summary"><a class="review-link" href="{escape(i.path)}">'
        f"{escape(i.title)}</a> {_stars(i.rating)} "
        f'<time datetime="{_iso(i.published)}">{_iso(i.published)}</time></li>'
        for i in items
    )
    nav = []
    if page > 1:
        nav.append(f'<a class="prev" rel="prev" href="/reviews/?page={page - 1}">Newer reviews</a>')
    if page < pages:
        nav.append(f'<a class="next" rel="next" href="/reviews/?page={page + 1}">Older reviews</a>')
    body = (
        f'<h1>Latest reviews</h1>\n<p class="page">Page {page} of {max(pages, 1)}</p>\n'
        f'<ul class="reviews">\n{rows}\n</ul>\n<nav class="pagination">{" ".join(nav)}</nav>'
    )
    return _page(f"ReviewNest: latest reviews, page {page}", body)


def item_page(item: WorldItem) -> bytes:
    """A single post or review: the spider's selectors read title, author, date and body here."""
    title = item.title or f"Post by {item.author}"
    body = (
        f'<article class="item {item.channel}">\n'
        f'<h1 class="item-title">{escape(title)}</h1>\n'
        f'<p class="byline">by <span class="author">{escape(item.author)}</span> on '
        f'<time datetime="{_iso(item.published)}">{_rfc822(item.published)}</time></p>\n'
        f"{_stars(item.rating)}\n"
        f'<div class="item-body"><p>{escape(item.text)}</p></div>\n</article>'
    )
    return _page(f"{title} | {SITE_NAMES[item.channel]}", body)


def index_page(base: str) -> bytes:
    links = "".join(f'<li><a href="{escape(path)}">{escape(path)}</a></li>' for path in FEEDS)
    body = (
        f"<h1>Listener demo world</h1>\n<p>Serving from {escape(base)}</p>\n<ul>{links}"
        '<li><a href="/reviews/">/reviews/</a></li></ul>'
    )
    return _page("Listener demo world", body)
