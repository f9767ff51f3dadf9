"""Time as the core keeps it: naive UTC datetimes, ISO text for people and JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    """Now, as naive UTC (what the store keeps)."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(value: Any) -> str | None:
    """``2026-11-23T12:00:00Z`` for a naive-UTC datetime or its stored text; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return str(value.replace(microsecond=0).isoformat() + "Z")
