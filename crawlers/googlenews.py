"""Google News search results, read as the RSS feed Google publishes for every search.

`{base}/rss/search?q=...&hl=en-US&gl=US&ceid=US:en` is the feed behind a
Google News search; `hl` (interface language), `gl` (edition country) and
`ceid` (country:language) pick the edition. Everything after the URL is the
feed reader's job, conditional GET and seen-item memory included.

Limits: no key, but no published quota either; Google answers 503 to clients
it thinks too eager, so keep `poll_interval` at ten minutes or more.
"""

from __future__ import annotations

from urllib.parse import urlencode

from crawlers.factory import register_source
from crawlers.feed import FeedSource
from crawlers.state import FetchState
from listener.config import FeedSourceConfig, GoogleNewsSourceConfig, Limits

__all__ = ["build_google_news", "google_news_url"]


def google_news_url(config: GoogleNewsSourceConfig) -> str:
    language = config.language.split("-")[0]
    interface = config.language if "-" in config.language else f"{language}-{config.country}"
    query = {"q": config.query, "hl": interface, "gl": config.country, "ceid": f"{config.country}:{language}"}
    return f"{config.base_url}/rss/search?{urlencode(query)}"


@register_source(GoogleNewsSourceConfig)
def build_google_news(config: GoogleNewsSourceConfig, limits: Limits, state: FetchState) -> FeedSource:
    feed = FeedSourceConfig(
        type="feed", name=config.name, url=google_news_url(config), poll_interval=config.poll_interval
    )
    return FeedSource(feed, limits, state)
