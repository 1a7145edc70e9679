"""Listener's web app: search, dashboards, watch terms and feedback, behind accounts."""

from __future__ import annotations

from listener.web.app import create_app

__all__ = ["create_app"]
