"""Who is on call for a brand at a given moment, and who comes next when nobody answers.

The rotation is the configured responder list taken in turns of
`handover_every`, counted from `handover_at` (any past hand-over instant), so
the schedule is a pure function of time: every process agrees on it without
sharing state, and a test can ask who is on call next Tuesday at 09:00.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from listener.config import BrandConfig, EscalationLevel, OnCallConfig, Responder

__all__ = ["OnCall", "Roster"]


@dataclass(frozen=True)
class OnCall:
    """One brand's on-call settings, with the lookups the workflow needs."""

    brand: str
    config: OnCallConfig

    def on_call(self, now: float) -> Responder:
        turn = math.floor((now - self.config.handover_at.timestamp()) / self.config.handover_every)
        return self.config.responders[turn % len(self.config.responders)]

    def next_handover(self, now: float) -> float:
        start = self.config.handover_at.timestamp()
        every = self.config.handover_every
        return start + (math.floor((now - start) / every) + 1) * every

    def level(self, number: int) -> EscalationLevel | None:
        """Escalation level `number` (1-based); None past the end of the chain."""
        chain = self.config.escalation
        return chain[number - 1] if 1 <= number <= len(chain) else None

    def responder(self, name: str | None) -> Responder | None:
        return next((r for r in self.config.responders if r.name == name), None)

    def identify(self, who: str) -> str:
        """A Slack user id or a name, as the responder's name when known (ownership compares names).

        Names match in any case: web accounts are stored lower-cased, so the account
        `dana` is the rota's Dana.
        """
        for responder in self.config.responders:
            if who == responder.slack_user or who.casefold() == responder.name.casefold():
                return responder.name
        return who

    def admins(self) -> frozenset[str]:
        return frozenset(self.identify(a) for a in self.config.admins)


class Roster:
    """Every brand's `OnCall`, by case-folded brand name; brands without on-call are absent.

    Given a callable instead of brands (`LiveBrands.current`), it asks it at
    each lookup and rebuilds when it hands back a different list, so a rota
    saved in the web app applies to the next escalation without a restart.
    """

    def __init__(
        self,
        brands: Sequence[BrandConfig] | Mapping[str, OnCallConfig] | Callable[[], Sequence[BrandConfig]],
    ) -> None:
        self._follow = brands if callable(brands) else None
        self._seen: object = None
        self._by_brand: dict[str, OnCall] = {}
        if not callable(brands):
            self._build(brands)

    def _build(self, brands: Sequence[BrandConfig] | Mapping[str, OnCallConfig]) -> None:
        pairs = (
            [(b.name, b.oncall) for b in brands] if not isinstance(brands, Mapping) else list(brands.items())
        )
        self._by_brand = {name.casefold(): OnCall(name, cfg) for name, cfg in pairs if cfg is not None}

    def get(self, brand: str) -> OnCall | None:
        if self._follow is not None:
            brands = self._follow()
            if brands is not self._seen:
                self._build(brands)
                self._seen = brands
        return self._by_brand.get(brand.casefold())

    def identify(self, brand: str, who: str) -> str:
        oncall = self.get(brand)
        return oncall.identify(who) if oncall is not None else who

    def admins(self, brand: str) -> frozenset[str]:
        oncall = self.get(brand)
        return oncall.admins() if oncall is not None else frozenset()
