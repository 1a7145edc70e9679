"""`watch.yaml`: brands, watch terms, sources, alert rules and engines.

Everything is validated when the file is loaded, so a typo fails at start-up
with `file:line: field: message` instead of at 3 a.m. in a stage. Secrets come
from the environment through `${VAR}` and are held as `SecretStr` so they never
appear in logs or reprs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from listener.errors import ConfigError, QuerySyntaxError

__all__ = [
    "AlertRule",
    "AppStoreSourceConfig",
    "BlueskySourceConfig",
    "BrandConfig",
    "BusConfig",
    "ClassifierConfig",
    "Config",
    "ElasticsearchConfig",
    "EscalationLevel",
    "FeedSourceConfig",
    "GoogleNewsSourceConfig",
    "HackerNewsSourceConfig",
    "JetstreamSourceConfig",
    "KafkaConfig",
    "Limits",
    "MastodonSourceConfig",
    "MastodonStreamSourceConfig",
    "OnCallConfig",
    "PostgresConfig",
    "RedditSourceConfig",
    "Responder",
    "SitemapSourceConfig",
    "SlackChannel",
    "SlackConfig",
    "SourceConfig",
    "SpiderSelectors",
    "SpiderSourceConfig",
    "StateConfig",
    "StoreConfig",
    "load_config",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def parse_duration(value: object) -> float:
    """`90`, `"90s"`, `"5m"`, `"1.5h"`, `"7d"` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h or 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration such as 30s, 5m, 1h or 7d")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Limits(_Section):
    """Politeness and safety limits shared by every source."""

    user_agent: str = "Listener/0.1 (brand monitoring; +https://github.com/listener-monitor/listener)"
    timeout: Duration = 20.0
    max_document_bytes: int = Field(default=2_000_000, gt=0)
    per_host_concurrency: int = Field(default=2, ge=1)
    per_host_delay: Duration = 1.0
    obey_robots_txt: bool = True


class FeedSourceConfig(_Section):
    type: Literal["feed"]
    name: str = Field(min_length=1)
    url: str
    poll_interval: Duration = 300.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value


class SpiderSelectors(_Section):
    """CSS selectors, or XPath when the selector starts with `/` or `(`."""

    links: str | None = Field(default=None, description="item links on a listing page")
    next_page: str | None = None
    item: str | None = Field(default=None, description="containers when items sit inline")
    text: str
    title: str | None = None
    author: str | None = None
    date: str | None = None


class SpiderSourceConfig(_Section):
    type: Literal["spider"]
    name: str = Field(min_length=1)
    start_urls: list[str] = Field(min_length=1)
    selectors: SpiderSelectors
    max_pages: int = Field(default=50, ge=1)
    poll_interval: Duration = 900.0

    @field_validator("start_urls")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not re.match(r"^https?://[^\s/]+", url):
                raise ValueError(f"{url!r} must be an http:// or https:// URL")
        return value


class SitemapSourceConfig(SpiderSourceConfig):
    """A news site's sitemaps read with Scrapy's SitemapSpider; `start_urls` are sitemap
    (or robots.txt) URLs, and each page listed is read with `selectors`."""

    type: Literal["sitemap"]  # type: ignore[assignment]
    follow: list[str] = Field(default_factory=list, description="regexes of sub-sitemaps to follow")
    allow: list[str] = Field(default_factory=list, description="regexes of page URLs to read")
    max_age: Duration | None = Field(default=None, description="skip pages whose lastmod is older")

    @field_validator("follow", "allow")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value


def _base_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


BaseUrl = Annotated[str, AfterValidator(_base_url)]


class HackerNewsSourceConfig(_Section):
    """Hacker News stories and comments, newest first, through the Algolia search API."""

    type: Literal["hackernews"]
    name: str = Field(min_length=1)
    query: str = Field(min_length=1)
    tags: list[Literal["story", "comment"]] = Field(default=["story", "comment"], min_length=1)
    base_url: BaseUrl = "https://hn.algolia.com/api/v1"
    hits_per_page: int = Field(default=100, ge=1, le=1000)
    max_pages: int = Field(default=5, ge=1)
    poll_interval: Duration = 300.0


class RedditSourceConfig(_Section):
    """Reddit posts (search listings) and comments (subreddit comment listings)."""

    type: Literal["reddit"]
    name: str = Field(min_length=1)
    query: str = Field(min_length=1)
    subreddits: list[str] = Field(default_factory=list, description="limit search; also read their comments")
    comments: bool = True
    user_agent: str = Field(
        default="python:listener:0.1 (by /u/listener-monitor)",
        pattern=r"^[^:\s]+:[^:\s]+:[^:\s]+ \(by /u/[A-Za-z0-9_-]+\)$",
        description="Reddit's required form: <platform>:<app id>:<version> (by /u/<username>)",
    )
    client_id: str | None = None
    client_secret: SecretStr | None = None
    base_url: BaseUrl = "https://www.reddit.com"
    oauth_base_url: BaseUrl = "https://oauth.reddit.com"
    limit: int = Field(default=100, ge=1, le=100)
    max_pages: int = Field(default=3, ge=1)
    poll_interval: Duration = 300.0


class MastodonSourceConfig(_Section):
    """Hashtag timelines on any instance; full-text search when an access token is set."""

    type: Literal["mastodon"]
    name: str = Field(min_length=1)
    instance: BaseUrl
    hashtags: list[str] = Field(default_factory=list)
    query: str | None = Field(default=None, description="needs access_token")
    access_token: SecretStr | None = None
    limit: int = Field(default=40, ge=1, le=40)
    max_pages: int = Field(default=5, ge=1)
    poll_interval: Duration = 120.0


class MastodonStreamSourceConfig(_Section):
    """Mastodon's streaming API (server-sent events): hashtag statuses as they are posted."""

    type: Literal["mastodon_stream"]
    name: str = Field(min_length=1)
    instance: BaseUrl
    access_token: SecretStr = Field(description="the streaming API needs a token on current Mastodon")
    hashtags: list[str] = Field(min_length=1)
    local: bool = Field(default=False, description="only statuses from this instance")
    buffer: int = Field(default=10_000, ge=1, description="statuses held between polls")
    idle_timeout: Duration = Field(default=90.0, description="reconnect after this long without a heartbeat")
    poll_interval: Duration = 5.0


class BlueskySourceConfig(_Section):
    """Bluesky post search (app.bsky.feed.searchPosts); app-password auth when configured."""

    type: Literal["bluesky"]
    name: str = Field(min_length=1)
    query: str = Field(min_length=1)
    base_url: BaseUrl = "https://public.api.bsky.app"
    service_url: BaseUrl = Field(default="https://bsky.social", description="PDS for createSession")
    identifier: str | None = None
    app_password: SecretStr | None = None
    limit: int = Field(default=100, ge=1, le=100)
    max_pages: int = Field(default=5, ge=1)
    poll_interval: Duration = 120.0


class GoogleNewsSourceConfig(_Section):
    """Google News search results as RSS, read by the feed reader."""

    type: Literal["googlenews"]
    name: str = Field(min_length=1)
    query: str = Field(min_length=1)
    language: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    country: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    base_url: BaseUrl = "https://news.google.com"
    poll_interval: Duration = 600.0


class AppStoreSourceConfig(_Section):
    """Apple App Store customer reviews of one app, from Apple's public review feed."""

    type: Literal["appstore"]
    name: str = Field(min_length=1)
    app_id: int = Field(gt=0)
    country: str = Field(default="us", pattern=r"^[a-z]{2}$")
    base_url: BaseUrl = "https://itunes.apple.com"
    max_pages: int = Field(default=3, ge=1, le=10)
    poll_interval: Duration = 3600.0


class JetstreamSourceConfig(_Section):
    """The Bluesky Jetstream firehose, filtered locally by keywords: a streaming source."""

    type: Literal["jetstream"]
    name: str = Field(min_length=1)
    keywords: list[str] = Field(min_length=1, description="a post is kept when it contains one (whole words)")
    url: str = "wss://jetstream2.us-east.bsky.network"
    rewind: Duration = Field(default=5.0, description="replayed on reconnect, as Jetstream advises")
    buffer: int = Field(default=10_000, ge=1, description="matched posts held between polls")
    poll_interval: Duration = 5.0

    @field_validator("url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        if not re.match(r"^wss?://[^\s/]+", value):
            raise ValueError("must be a ws:// or wss:// URL")
        return value.rstrip("/")


SourceConfig = Annotated[
    FeedSourceConfig
    | SpiderSourceConfig
    | SitemapSourceConfig
    | HackerNewsSourceConfig
    | RedditSourceConfig
    | MastodonSourceConfig
    | MastodonStreamSourceConfig
    | BlueskySourceConfig
    | GoogleNewsSourceConfig
    | AppStoreSourceConfig
    | JetstreamSourceConfig,
    Field(discriminator="type"),
]


# A spike's end needs this many windows of calm; a return within this many windows continues it.
HOLD_WINDOWS = 2
COOLDOWN_WINDOWS = 6


class AlertRule(_Section):
    """When negative volume for a brand is a spike worth waking someone for."""

    name: str = "negative-spike"
    bucket: Duration = Field(default=60.0, gt=0, description="counting interval")
    baseline: Duration = Field(default=3600.0, gt=0, description="history the baseline learns from")
    window: Duration = Field(default=300.0, gt=0, description="recent span compared to baseline")
    min_count: int = Field(default=5, ge=1, description="fewer negatives never alert")
    min_ratio: float = Field(default=3.0, gt=1.0, description="observed must exceed ratio x expected")
    min_share: float = Field(default=0.0, ge=0.0, le=1.0, description="negatives' share of all mentions")
    sensitivity: float = Field(
        default=4.5, gt=0.0, description="count and share tails, in standard deviations"
    )
    share_ratio: float = Field(
        default=2.0,
        ge=1.0,
        description="the negative share's odds must reach this multiple of usual (2: 12 % -> 21 %)",
    )
    share_baseline: Duration = Field(
        default=86400.0, gt=0, description="history the usual share is learnt from"
    )
    climb_ratio: float | None = Field(
        default=2.5,
        gt=1.0,
        description="a slow climb: the share's odds this many times usual for hours (null: off)",
    )
    resolve_ratio: float = Field(default=1.5, gt=0.0, description="spike ends below ratio x expected")
    hold: Duration = Field(
        default=HOLD_WINDOWS * 300.0, ge=0, description="calm it needs to end (default: two windows)"
    )
    cooldown: Duration = Field(
        default=COOLDOWN_WINDOWS * 300.0,
        ge=0,
        description="a spike back within this long continues (default: six windows)",
    )

    @model_validator(mode="before")
    @classmethod
    def _timing_from_window(cls, data: Any) -> Any:
        """`hold` and `cooldown` left out scale with the window: a 1-hour window needs a longer calm.

        An unreadable window is left for its own field to report.
        """
        if not isinstance(data, dict) or "window" not in data:
            return data
        try:
            window = parse_duration(data["window"])
        except ValueError:
            return data
        return {"hold": HOLD_WINDOWS * window, "cooldown": COOLDOWN_WINDOWS * window, **data}


def _valid_watch_query(query: str) -> str:
    from listener.query.parser import parse_watch_query

    try:
        parse_watch_query(query)
    except QuerySyntaxError as exc:
        raise ValueError(exc.render()) from None
    return query


WatchQuery = Annotated[str, AfterValidator(_valid_watch_query)]


_SLACK_CHANNEL = re.compile(r"^(#[\w.-]{1,80}|[CGD][A-Z0-9]{2,30})$")


def _slack_channel(value: str) -> str:
    if not _SLACK_CHANNEL.match(value):
        raise ValueError("a Slack channel is #name (no spaces) or a channel id such as C024BE91L")
    return value


# Checked so that a typo (or markup pasted into the web app) fails on saving, not at the first alert.
SlackChannel = Annotated[str, AfterValidator(_slack_channel)]


class Responder(_Section):
    """Someone who answers for a brand; `slack_user` (U…) is what escalation mentions."""

    name: str = Field(min_length=1)
    slack_user: str = Field(pattern=r"^[UW][A-Z0-9]{2,30}$", description="Slack user id, e.g. U024BE7LH")


class EscalationLevel(_Section):
    """One step of the chain: a responder to mention, a channel to post to, or both."""

    responder: str | None = Field(default=None, description="a responder's name")
    channel: SlackChannel | None = None

    @model_validator(mode="after")
    def _something(self) -> EscalationLevel:
        if self.responder is None and self.channel is None:
            raise ValueError("an escalation level needs a responder, a channel or both")
        return self


class OnCallConfig(_Section):
    """Who answers for a brand: a rotation, an escalation chain, and how long each may take."""

    responders: list[Responder] = Field(min_length=1, description="the rotation, in order")
    handover_every: Duration = Field(default=7 * 86400.0, gt=0)
    handover_at: datetime = Field(
        default=datetime(2024, 1, 1, 9, 0, tzinfo=UTC),
        description="any past hand-over instant; the first responder was on call from there",
    )
    escalation: list[EscalationLevel] = Field(default_factory=list)
    response_time: Duration = Field(default=900.0, gt=0, description="unacknowledged this long: escalate")
    remind_every: Duration = Field(default=1800.0, gt=0, description="reminders in an open alert's thread")
    admins: list[str] = Field(default_factory=list, description="names or Slack ids who may resolve any")
    digest: bool = Field(default=True, description="post a weekly recognition digest to the brand's channel")
    digest_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    digest_hour: int = Field(default=9, ge=0, le=23, description="UTC hour the weekly digest is posted")

    @model_validator(mode="after")
    def _known_names(self) -> OnCallConfig:
        names = {r.name for r in self.responders}
        for level in self.escalation:
            if level.responder is not None and level.responder not in names:
                raise ValueError(f"escalation responder {level.responder!r} is not among the responders")
        return self


class BrandConfig(_Section):
    name: str = Field(min_length=1)
    queries: list[WatchQuery] = Field(min_length=1)
    sources: list[SourceConfig] = Field(default_factory=list)
    alert: AlertRule = AlertRule()
    slack_channel: SlackChannel | None = None
    oncall: OnCallConfig | None = None


class ClassifierConfig(_Section):
    model: str = Field(
        default="default",
        description="'default', 'minilm-head' (frozen encoder + linear head), a model dir from "
        "`listener train`, or a Hugging Face dir/name",
    )
    batch_size: int = Field(default=32, ge=1)
    max_length: int = Field(default=128, ge=8)
    device: str = "auto"
    threads: int | None = Field(default=None, ge=1)
    int8: bool | None = Field(default=None, description="None: what the model dir validated")
    languages: list[str] = Field(
        default_factory=lambda: ["en"], description="ISO 639-1 codes the main model covers"
    )
    detect_languages: list[str] = Field(
        default_factory=lambda: ["en", "de", "fr", "es", "pt", "it", "nl"],
        description="candidates for language detection; [] trusts every text to the main model",
    )
    language_models: dict[str, str] = Field(
        default_factory=lambda: dict.fromkeys(("de", "es", "fr", "it", "pt"), "multilingual"),
        description="ISO 639-1 code -> model dir/name for that language ({} scores only `languages`)",
    )
    brand_targeting: bool = Field(default=True, description="read sentiment toward the mention's brand")

    @field_validator("languages", "detect_languages")
    @classmethod
    def _iso_codes(cls, value: list[str]) -> list[str]:
        for code in value:
            if not re.fullmatch(r"[a-z]{2}", code):
                raise ValueError(f"{code!r} is not a lower-case ISO 639-1 code such as 'en'")
        return value


class KafkaConfig(_Section):
    """Where the Kafka bus lives; used when `bus.engine` is `kafka`."""

    bootstrap_servers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"], min_length=1)
    topic_prefix: str = Field(default="listener.", pattern=r"^[A-Za-z0-9._-]{0,200}$")
    partitions: int = Field(default=6, ge=1, description="for topics Listener creates")
    replication_factor: int = Field(default=1, ge=1)
    max_poll_interval: Duration = Field(default=300.0, gt=0, description="longest batch before a rebalance")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None

    def client_options(self) -> dict[str, Any]:
        """kafka-python settings for the cluster's security; secrets are unwrapped only here."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.ssl_cafile is not None:
            options["ssl_cafile"] = str(self.ssl_cafile)
        return options


class ElasticsearchConfig(_Section):
    """Where the Elasticsearch store lives; used when `store.engine` is `elasticsearch`."""

    url: str = "http://127.0.0.1:9200"
    api_key: SecretStr | None = None
    index_prefix: str = Field(default="listener-mentions", pattern=r"^[a-z0-9._-]{1,200}$")
    ca_certs: Path | None = None
    verify_certs: bool = True


class BusConfig(_Section):
    engine: Literal["embedded", "kafka"] = "embedded"
    kafka: KafkaConfig = KafkaConfig()
    retention: Duration = Field(default=7 * 86400.0, gt=0, description="committed messages kept for replay")


class StoreConfig(_Section):
    engine: Literal["embedded", "elasticsearch"] = "embedded"
    elasticsearch: ElasticsearchConfig = ElasticsearchConfig()
    retention: Duration = 365 * 86400.0


class PostgresConfig(_Section):
    """Where shared control state lives when `state.engine` is `postgres`."""

    url: SecretStr = Field(description="postgresql://user:password@host:5432/listener; use ${ENV} for it")
    pool_size: int = Field(default=5, ge=1, le=100, description="connections per process")
    connect_timeout: Duration = Field(default=10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if not re.match(r"^(postgresql|postgres)://", text) and "=" not in text:
            raise ValueError("expected a postgresql:// URL or a libpq 'key=value' string")
        return value


class StateConfig(_Section):
    """Incidents, silences, outbox, detector state and the rest of the control state.

    `embedded` keeps them in SQLite files in `data_dir` (one machine); `postgres`
    keeps them in one shared database, so every stage copy and the web app see
    the same rows.
    """

    engine: Literal["embedded", "postgres"] = "embedded"
    postgres: PostgresConfig | None = None

    @model_validator(mode="after")
    def _postgres_needs_url(self) -> StateConfig:
        if self.engine == "postgres" and self.postgres is None:
            raise ValueError("state.engine 'postgres' needs a 'postgres:' section with its url")
        return self


class SlackConfig(_Section):
    bot_token: SecretStr | None = None
    base_url: str | None = Field(default=None, description="Web API base, for Slack-compatible servers")
    default_channel: SlackChannel | None = None
    signing_secret: SecretStr | None = Field(
        default=None, description="verifies button presses; set it to start the interactivity endpoint"
    )
    interactivity_host: str = "127.0.0.1"
    interactivity_port: int = Field(default=3000, ge=0, le=65535)


class Config(_Section):
    version: Literal[1] = 1
    data_dir: Path = Path("listener-data")
    brands: list[BrandConfig] = Field(min_length=1)
    limits: Limits = Limits()
    classifier: ClassifierConfig = ClassifierConfig()
    bus: BusConfig = BusConfig()
    store: StoreConfig = StoreConfig()
    slack: SlackConfig = SlackConfig()
    state: StateConfig = StateConfig()

    @field_validator("brands")
    @classmethod
    def _unique(cls, value: list[BrandConfig]) -> list[BrandConfig]:
        seen: set[str] = set()
        for brand in value:
            key = brand.name.casefold()
            if key in seen:
                raise ValueError(f"brand {brand.name!r} is defined twice")
            seen.add(key)
        return value

    def brand(self, name: str) -> BrandConfig:
        for brand in self.brands:
            if brand.name.casefold() == name.casefold():
                return brand
        raise KeyError(name)


# --- loading with line numbers ---------------------------------------------------------

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
Path_ = tuple[str | int, ...]


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Iterator[None]:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            lines[(*path, key)] = key_node.start_mark.line + 1
            yield from _walk(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _walk(item, (*path, index), lines)
    yield None


def _line_for(path: Path_, lines: dict[Path_, int]) -> int:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _expand_env(value: Any, path: Path_, problems: list[tuple[Path_, str]]) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, (*path, str(k)), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*path, i), problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found is not None:
            return found
        if default is not None:
            return default
        problems.append((path, f"environment variable {name} is not set"))
        return ""

    return _ENV.sub(substitute, value)


def load_config(path: str | Path) -> Config:
    """Load and validate; raise `ConfigError` listing every problem as `file:line: field: msg`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{path}:{line}: (syntax): {problem}"]) from None
    if not isinstance(data, dict) or root is None:
        raise ConfigError([f"{path}:1: (top level): expected a mapping with a 'brands' list"])
    lines: dict[Path_, int] = {}
    for _ in _walk(root, (), lines):
        pass
    env_problems: list[tuple[Path_, str]] = []
    data = _expand_env(data, (), env_problems)
    problems = [f"{path}:{_line_for(p, lines)}: {_dotted(p)}: {m}" for p, m in env_problems]
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(part for part in error["loc"] if not _is_union_tag(part))
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{path}:{_line_for(loc, lines)}: {_dotted(loc)}: {message}")
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    if not config.data_dir.is_absolute():
        config = config.model_copy(update={"data_dir": (path.parent / config.data_dir).resolve()})
    return config


_API_SOURCE_TAGS = (
    "sitemap", "hackernews", "reddit", "mastodon", "bluesky", "googlenews", "appstore", "jetstream",
)  # fmt: skip


def _is_union_tag(part: object) -> bool:
    # pydantic puts the discriminator value ('feed', 'spider') into error locations.
    return part in ("feed", "spider", *_API_SOURCE_TAGS)
