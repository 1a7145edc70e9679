"""A small PNG of the brand's last 24 hours of negatives against the expected band.

A responder should see at a glance whether this is a cliff or a wobble. The
chart draws each window's negative count, the expected count, and the band up
to the count at which the rule fires; the alert's own window is marked.

matplotlib is imported on first use (it costs a second or so), and only
through the object-oriented API with the Agg canvas: no pyplot global state,
no display, safe in a stage thread. Nothing a mention's author wrote is drawn;
the brand name (from config) is the only text, with mathtext's `$` escaped.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from alerts.render import clean_line
from listener.records import Alert

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["CHART_SIZE", "render_chart"]

CHART_SIZE = (600, 240)  # pixels: small enough for a Slack thread, big enough to read
_DPI = 100


def render_chart(alert: Alert) -> bytes:
    """PNG bytes; raises ValueError when the alert has no history to draw."""
    if not alert.history:
        raise ValueError(f"alert {alert.id} carries no history to chart")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(CHART_SIZE[0] / _DPI, CHART_SIZE[1] / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)
    _draw(figure.add_subplot(), alert)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=_DPI)
    return out.getvalue()


def _draw(axes: Axes, alert: Alert) -> None:
    """The band (expected up to what fires), the expected line, the observed line, the window."""
    # Hours relative to the alert's window end: "-3" reads faster than a clock time in a thread.
    ends = [(p.end - alert.window_end).total_seconds() / 3600 for p in alert.history]
    axes.fill_between(
        ends,
        [p.expected for p in alert.history],
        [p.threshold for p in alert.history],
        color="#9ecae1",
        alpha=0.5,
        step="pre",
        label="expected → fires",
    )
    axes.step(ends, [p.expected for p in alert.history], where="pre", color="#3182bd", linewidth=1)
    axes.step(
        ends,
        [p.observed for p in alert.history],
        where="pre",
        color="#de2d26",
        linewidth=1.5,
        label="negative mentions",
    )
    width = (alert.window_end - alert.window_start).total_seconds() / 3600
    axes.axvspan(-width, 0.0, color="#fc9272", alpha=0.35, linewidth=0)
    axes.set_xlabel("hours before the alert", fontsize=7)
    axes.set_ylim(bottom=0)
    axes.tick_params(labelsize=7)
    brand = clean_line(alert.brand, 60).replace("$", r"\$")
    axes.set_title(f"{brand}: negative mentions per window, last 24 h", fontsize=8)
    axes.legend(fontsize=6, loc="upper left", frameon=False)
