"""The Slack notifier: one Block Kit message per alert through slack-sdk's WebClient.

Every piece of mention text is escaped by `alerts.mrkdwn`, and the message is
posted with `link_names`, `unfurl_links` and `unfurl_media` off, so a post can
neither ping a channel nor make Slack fetch an attacker's page.

Retries belong to the caller (`NotifyStage`), not to the WebClient: the client
built by `from_config` has *no* retry handlers. slack-sdk's default
`ConnectionErrorRetryHandler` re-sends after a connection reset, which can post
the same alert twice when Slack had already accepted the first request, and it
would do so silently. Here every failure surfaces as a `NotifierError` that
says whether trying again can help.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from alerts.mrkdwn import SECTION_LIMIT, escape, escape_text, link
from alerts.render import (
    clean_line,
    climb_text,
    format_window,
    mix_text,
    stories_headline,
    story_line,
    usual_text,
)
from listener.config import BrandConfig, SlackConfig
from listener.errors import ConfigError, NotifierError
from listener.records import Alert, ScoredMention

__all__ = [
    "ACTION_PREFIX",
    "ChannelLookup",
    "SlackNotifier",
    "action_buttons",
    "build_blocks",
    "fallback_text",
    "to_notifier_error",
]

log = logging.getLogger(__name__)

HEADER_LIMIT = 150
EXCERPT_LIMIT = 500
# ok:false codes that mean "Slack had a bad moment", not "your request is wrong".
RETRYABLE_CODES = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)

ACTION_PREFIX = "listener."
INCIDENT_STAYS_OPEN = "The incident stays open until someone resolves it."
ChannelLookup = Callable[[str], str | None] | Mapping[str, str | None]
Block = dict[str, Any]


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}


def _header(alert: Alert) -> Block:
    verb = {"firing": "Negative spike", "update": "Still rising", "resolved": "Spike ended"}[alert.status]
    if alert.trigger == "climb" and alert.status == "firing":
        verb = "Negative climb"
    title = clean_line(f"{verb}: {alert.brand}", HEADER_LIMIT)
    return {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": False}}


def _counts(alert: Alert) -> Block:
    ratio = f"{alert.observed / alert.expected:.1f}× baseline" if alert.expected > 0 else "no baseline"
    if alert.trigger == "climb" and alert.status != "resolved":
        first = escape(climb_text(alert), 300)
    elif alert.status != "resolved":
        first = f"*{alert.observed}* negative mentions vs *{alert.expected:.1f}* expected ({ratio})"
    else:
        first = (
            f"The spike is over: negative volume is back to *{alert.observed}*"
            f" (expected *{alert.expected:.1f}*)"
        )
    second = (
        f"{alert.total} mentions in the window, *{alert.negative_share:.0%}* negative{usual_text(alert)}"
        f" · rule {escape(alert.rule, 80)}"
    )
    return {"type": "section", "text": _mrkdwn(f"{first}\n{second}")}


def _evidence(alert: Alert) -> Block | None:
    """Mix, over-represented words and top sites; every name escaped, none can ping or link."""
    lines = []
    if alert.mix:
        lines.append(f"*Mix* {escape(mix_text(alert.mix), 200)}")
    if alert.top_terms:
        words = ", ".join(f"`{escape_text(t, 40)}` ({n})" for t, n in alert.top_terms)
        lines.append(f"*Words* {words}")
    if alert.top_sources:
        sources = ", ".join(f"{escape_text(s, 80)} ({n})" for s, n in alert.top_sources)
        lines.append(f"*Sources* {sources}")
    return {"type": "section", "text": _mrkdwn("\n".join(lines))} if lines else None


def _stories(alert: Alert) -> Block | None:
    """The biggest stories among the negatives, before anything else: answer an article once."""
    if not alert.top_stories:
        return None
    lines = [f"*Stories* {escape(stories_headline(alert), 200)}"]
    for story in alert.top_stories:
        text = escape_text(story.text, 300)
        lines.append(f"• {link(story.url, story_line(story), 300)}\n&gt; {text}")
    return {"type": "section", "text": _mrkdwn("\n".join(lines))}


def _sample(number: int, mention: ScoredMention) -> Block:
    label = mention.title or mention.site or "open the post"
    author = escape_text(mention.author, 80) or "unknown author"
    reach = sum(max(0, v) for v in mention.engagement.values())
    engaged = f" · engagement {reach}" if reach else ""
    head = (
        f"{number}. {link(mention.url, label, 150)} · {author}"
        f" · negative {mention.sentiment.negative:.2f}{engaged}"
    )
    body = escape_text(mention.text or mention.title, EXCERPT_LIMIT)
    return {"type": "section", "text": _mrkdwn(f"{head}\n&gt; {body}" if body else head)}


def _context(alert: Alert) -> Block:
    window = format_window(alert.window_start, alert.window_end)
    return {"type": "context", "elements": [_mrkdwn(f"Window {window} · alert {escape(alert.id, 64)}")]}


def action_buttons(alert_id: str, state: str = "open") -> Block:
    """The response buttons; each carries the alert id, which names its incident."""
    by_state: dict[str, list[tuple[str, str, str | None]]] = {
        "open": [("ack", "Acknowledge", "primary"), ("resolve", "Resolve", None)],
        "acknowledged": [("resolve", "Resolve", "primary")],
    }
    wanted = by_state.get(state, [])
    wanted = [*wanted, ("mute", "Mute 1h", None), ("not_real", "Not a real issue", "danger")]
    elements: list[Block] = []
    for action, label, style in wanted:
        button: Block = {
            "type": "button",
            "action_id": ACTION_PREFIX + action,
            "text": {"type": "plain_text", "text": label, "emoji": False},
            "value": alert_id,
        }
        if style is not None:
            button["style"] = style
        elements.append(button)
    return {"type": "actions", "block_id": "listener.actions", "elements": elements}


def build_blocks(alert: Alert, *, buttons: bool = False) -> list[Block]:
    """Header, counts, one section per sample mention, the window, and (firing) the buttons."""
    blocks = [_header(alert), _counts(alert)]
    for found in (_stories(alert), _evidence(alert)):
        if found is not None:
            blocks.append(found)
    blocks.extend(_sample(n, m) for n, m in enumerate(alert.samples, start=1))
    blocks.append(_context(alert))
    if buttons and alert.status == "firing":
        blocks.append(action_buttons(alert.id))
    if buttons and alert.status == "resolved":
        # The end of the spike is not the end of the incident: someone still has to close it.
        blocks.append({"type": "context", "elements": [_mrkdwn(INCIDENT_STAYS_OPEN)]})
    return blocks


def fallback_text(alert: Alert) -> str:
    """The notification text (and what screen readers use); mrkdwn, so escaped too."""
    brand = escape(clean_line(alert.brand, 80))
    if alert.status == "resolved":
        return f"Spike ended: the negative spike for {brand} is over ({alert.observed} in the window)"
    if alert.trigger == "climb":
        return f"Negative climb for {brand}: {escape(climb_text(alert), 300)}"
    if alert.status == "update":
        return f"Still rising for {brand}: {alert.observed} negative vs {alert.expected:.1f} expected"
    return (
        f"Negative spike for {brand}: {alert.observed} negative mentions "
        f"vs {alert.expected:.1f} expected, {alert.negative_share:.0%} negative"
    )


def _retry_after(headers: Mapping[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def to_notifier_error(exc: BaseException) -> NotifierError:
    """Map what slack-sdk raised to retryable or not (rate limit, 5xx, network: retryable)."""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        code = str(data.get("error") or f"HTTP {status}")
        if status == 429:
            wait = _retry_after(exc.response.headers)
            return NotifierError(
                f"Slack rate limited the post (429, retry after {wait}s)", retryable=True, retry_after=wait
            )
        if status >= 500:
            return NotifierError(f"Slack answered HTTP {status}: {code}", retryable=True)
        retryable = code in RETRYABLE_CODES
        return NotifierError(f"Slack refused the post: {code}", retryable=retryable)
    if isinstance(exc, OSError | http.client.HTTPException):
        # URLError (refused, DNS), timeouts and resets are all OSError subclasses.
        return NotifierError(f"cannot reach Slack: {exc}", retryable=True)
    if isinstance(exc, SlackClientError):
        return NotifierError(f"Slack client error: {exc}", retryable=False)
    return NotifierError(f"unexpected error posting to Slack: {exc!r}", retryable=False)


class SlackNotifier:
    """Posts alerts to the brand's channel (the alert's, the lookup's, then the default).

    Satisfies `alerts.notifier.Notifier` and, with `post_text`, `alerts.escalation.Announcer`.
    """

    def __init__(
        self,
        client: WebClient,
        channel_for_brand: ChannelLookup | None = None,
        default_channel: str | None = None,
        *,
        buttons: bool = False,
        chart: Callable[[Alert], bytes] | None = None,
        charts: bool = True,
    ) -> None:
        self.client = client
        self.channel_for_brand = channel_for_brand
        self.default_channel = default_channel
        self.buttons = buttons
        self.charts = charts
        self._chart = chart

    @classmethod
    def from_config(
        cls,
        config: SlackConfig,
        brands: Sequence[BrandConfig],
        *,
        timeout: int = 10,
        channels: ChannelLookup | None = None,
    ) -> SlackNotifier:
        """`channels` (e.g. `LiveBrands.channel`) replaces the watch.yaml brands' channels."""
        if config.bot_token is None:
            raise ConfigError(["slack.bot_token: required to post alerts to Slack (use ${SLACK_BOT_TOKEN})"])
        options: dict[str, Any] = {"token": config.bot_token.get_secret_value(), "timeout": timeout}
        if config.base_url:
            options["base_url"] = config.base_url
        # No built-in retry handlers: NotifyStage retries, visibly, and only what is retryable.
        client = WebClient(**options, retry_handlers=[])
        if channels is None:
            channels = {brand.name.casefold(): brand.slack_channel for brand in brands}
        return cls(client, channels, config.default_channel, buttons=config.signing_secret is not None)

    def channel(self, alert: Alert) -> str:
        """The alert's own channel, else its brand's, else the default; none is a refusal."""
        found: str | None = alert.channel
        if found is None and self.channel_for_brand is not None:
            if callable(self.channel_for_brand):
                found = self.channel_for_brand(alert.brand)
            else:
                lookup = self.channel_for_brand
                found = lookup.get(alert.brand, lookup.get(alert.brand.casefold()))
        found = found or self.default_channel
        if not found:
            raise NotifierError(f"no Slack channel configured for brand {alert.brand!r}", retryable=False)
        return found

    def send(self, alert: Alert) -> str | None:
        return self._post(alert, None)

    def reply(self, alert: Alert, thread_ref: str) -> str | None:
        """Post in the firing message's thread (`thread_ref` is its ts); the end is echoed to
        the channel, updates are not."""
        return self._post(alert, thread_ref)

    def post_text(self, channel: str, text: str, thread_ts: str | None = None) -> str | None:
        """A plain mrkdwn line (escalations, reminders); the caller has escaped what it quotes."""
        thread: dict[str, Any] = {} if thread_ts is None else {"thread_ts": thread_ts}
        return self._call("chat_postMessage", channel=channel, text=text, unfurl_links=False, **thread)

    def update_message(self, channel: str, ts: str, text: str, blocks: list[Block]) -> None:
        """Rewrite a posted message in place (the alert showing its incident's state)."""
        self._call("chat_update", channel=channel, ts=ts, text=text, blocks=blocks)

    def _call(self, method: str, **fields: Any) -> str | None:
        try:
            response = getattr(self.client, method)(**fields)
        except Exception as exc:
            error = to_notifier_error(exc)
            log.warning("slack: %s to %s failed: %s", method, fields.get("channel"), error)
            raise error from exc
        ts = response.get("ts")
        return str(ts) if ts is not None else None

    def _post(self, alert: Alert, thread_ts: str | None) -> str | None:
        channel = self.channel(alert)
        thread: dict[str, Any] = (
            {}
            if thread_ts is None
            else {"thread_ts": thread_ts, "reply_broadcast": alert.status == "resolved"}
        )
        try:
            response = self.client.chat_postMessage(
                channel=channel,
                text=fallback_text(alert),
                blocks=build_blocks(alert, buttons=self.buttons),
                link_names=False,
                unfurl_links=False,
                unfurl_media=False,
                **thread,
            )
        except Exception as exc:
            error = to_notifier_error(exc)
            log.warning("slack: posting %s alert %s to %s failed: %s", alert.status, alert.id, channel, error)
            raise error from exc
        ts = response.get("ts")
        if ts is not None and alert.status == "firing" and alert.history and self.charts:
            self.attach_chart(alert, str(response.get("channel") or channel), str(ts))
        return str(ts) if ts is not None else None

    def attach_chart(self, alert: Alert, channel: str, ts: str) -> str | None:
        """Upload the 24-hour chart into the alert's thread; the file id, or None if it failed.

        The alert is already posted and recorded when this runs: a chart that
        cannot be drawn or uploaded is logged and dropped, never retried in a
        way that would post the alert twice or hold it back.
        """
        try:
            if self._chart is None:
                from alerts.chart import render_chart

                self._chart = render_chart
            png = self._chart(alert)
            name = "".join(c if c.isalnum() else "-" for c in alert.brand.casefold())[:40] or "brand"
            response = self.client.files_upload_v2(
                channel=channel,
                thread_ts=ts,
                content=png,
                filename=f"{name}-negative-24h.png",
                title=f"{clean_line(alert.brand, 80)}: negative mentions, last 24 h",
                alt_txt="Negative mentions per window over the last 24 hours against the expected band",
            )
        except Exception as exc:  # the alert itself went out; the picture is a nicety
            log.error("slack: chart for alert %s in %s not attached: %s", alert.id, channel, exc)
            return None
        file = response.get("file")
        return str(file.get("id")) if isinstance(file, dict) else None
