"""The contract every `Notifier` engine must keep, written once and run over each engine.

An engine's test class subclasses `NotifierContract`, says whether the engine
threads follow-ups (`threads`) and which raw text would act in its medium
(`live_markup`), and provides three fixtures:

* `notifier`: the engine, delivering somewhere the test can read back;
* `delivered`: a callable returning what reached people so far, one `Delivery`
  per message, oldest first;
* `failures`: the ways this engine can fail, each a `Failure` whose `arm()`
  returns a notifier whose next delivery meets it for real (a closed port, a
  broken pipe, a server answering 429), never a patched library.

    class TestConsoleNotifierContract(NotifierContract):
        threads = False
        @pytest.fixture
        def notifier(self, ...): ...

Everything else talks only through the `Notifier` protocol, which is exactly
what the notify step calls.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

import pytest
from alertstory import T0, make_alert, scored

from alerts.notifier import Notifier
from listener.errors import NotifierError
from listener.records import Alert

__all__ = ["HOSTILE_POST", "Delivered", "Delivery", "Failure", "NotifierContract"]

# What a stranger's post may carry: chat control sequences, HTML, terminal escapes,
# bidirectional overrides and a NUL, after one harmless word that must still be shown.
HOSTILE_POST = (
    "refund <!channel> <!here> <@U123> wake up! <http://evil.example|click> @here @channel @everyone "
    "*bold* _it_ ~strike~ `code` <script>alert(1)</script> <b>loud</b> &amp; "
    "\x1b[2J\x1b[31mRESOLVED\x1b[0m \x1b]0;pwned\x07 \u202egnp.exe\u202c nul\x00here"
)
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as people get it."""

    text: str  # everything a reader sees of it
    thread: str | None = None  # the reference of the message it went under; None at top level
    channel: str | None = None  # where it went, for engines with channels


@dataclass(frozen=True, slots=True)
class Failure:
    what: str  # e.g. "Slack answers 429 with Retry-After: 1"
    arm: Callable[[], Notifier]
    retryable: bool
    retry_after: float | None = None


Delivered = Callable[[], list[Delivery]]


def resolution(alert: Alert) -> Alert:
    return alert.model_copy(update={"status": "resolved", "observed": 1, "samples": ()})


def hostile_alert() -> Alert:
    post = scored(T0, text=HOSTILE_POST, author="<!channel> @here \x1b[31mroot", title="<b>official</b>")
    return make_alert(samples=(post,))


def unsafe_characters(text: str) -> list[str]:
    """Characters that act on a terminal or reorder what is read: controls other than a line
    break (C0, DEL, C1, so ESC and NUL too) and bidirectional overrides."""
    return sorted({repr(c) for c in text if c in _BIDI or (unicodedata.category(c) == "Cc" and c != "\n")})


class NotifierContract:
    """Behaviour the notify step relies on; any engine that passes can be listed as a channel."""

    threads: ClassVar[bool]  # follow-ups go under the firing message (send returns its reference)
    live_markup: ClassVar[tuple[str, ...]] = ()  # raw text that would ping, link or restyle here

    @pytest.fixture
    def notifier(self) -> Notifier:
        raise NotImplementedError("an engine's test class provides notifier")

    @pytest.fixture
    def delivered(self) -> Delivered:
        raise NotImplementedError("an engine's test class provides delivered")

    @pytest.fixture
    def failures(self) -> list[Failure]:
        raise NotImplementedError("an engine's test class provides failures")

    def test_an_alert_is_delivered_once_with_a_reference_where_the_engine_has_one(
        self, notifier: Notifier, delivered: Delivered
    ) -> None:
        ref = notifier.send(make_alert())
        [message] = delivered()
        assert "Acme" in message.text and "17" in message.text
        assert message.thread is None
        if self.threads:
            assert isinstance(ref, str) and ref.strip(), "a threading engine names the message it sent"
        else:
            assert ref is None

    def test_two_alerts_get_two_references(self, notifier: Notifier, delivered: Delivered) -> None:
        first = notifier.send(make_alert())
        second = notifier.send(
            make_alert(id=Alert.make_id("Acme", "negative-spike", T0 + timedelta(hours=1)))
        )
        assert len(delivered()) == 2
        if self.threads:
            assert first != second

    def test_a_follow_up_goes_under_its_firing_message_where_the_engine_threads(
        self, notifier: Notifier, delivered: Delivered
    ) -> None:
        firing = make_alert()
        ref = notifier.send(firing)
        answer = notifier.reply(resolution(firing), ref or "1700000000.000001")
        first, follow_up = delivered()
        # The spike ended; its incident is resolved by a person, so the follow-up never says so.
        assert "ended" in follow_up.text.casefold() and "resolved" not in follow_up.text.casefold()
        assert follow_up.thread == (ref if self.threads else None)
        assert follow_up.channel == first.channel, "a follow-up stays where its alert went"
        assert answer is None or (isinstance(answer, str) and answer != ref)

    def test_the_channel_it_names_is_where_the_alert_went(
        self, notifier: Notifier, delivered: Delivered
    ) -> None:
        for alert in (make_alert(), make_alert(channel="#from-the-alert")):
            notifier.send(alert)
            assert delivered()[-1].channel == notifier.channel(alert)

    def test_hostile_mention_text_is_shown_but_cannot_act_on_the_medium(
        self, notifier: Notifier, delivered: Delivered
    ) -> None:
        notifier.send(hostile_alert())
        [message] = delivered()
        assert "refund" in message.text, "the mention is still shown"
        assert unsafe_characters(message.text) == []
        assert [m for m in self.live_markup if m in message.text] == []

    def test_failures_raise_notifier_errors_that_say_whether_to_retry(self, failures: list[Failure]) -> None:
        assert failures, "an engine shows at least one way it fails"
        firing = make_alert()
        for failure in failures:
            for deliver in (
                lambda n: n.send(firing),
                lambda n: n.reply(resolution(firing), "1700000000.000001"),
            ):
                with pytest.raises(NotifierError) as caught:
                    deliver(failure.arm())
                assert caught.value.retryable is failure.retryable, failure.what
                if failure.retry_after is not None:
                    assert caught.value.retry_after == failure.retry_after, failure.what
