"""Spike detection, alert rules and notifiers."""
