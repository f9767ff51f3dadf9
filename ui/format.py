"""Plain-language times and sizes for the screen ("4 min ago", "2.3 MB").

One wording of time everywhere: :func:`ago` on screen ("just now", "4 min ago",
"yesterday 14:05"), with :func:`exact` ("Tue 3 Feb 2026, 14:05") on hover.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def parse_time(value: Any) -> datetime | None:
    """Naive UTC datetime from a store value (datetime, 'YYYY-MM-DD HH:MM:SS' or ISO 'Z')."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else \
            value.astimezone(UTC).replace(tzinfo=None)
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def local(value: datetime) -> datetime:
    """A naive UTC time as naive local time."""
    return value.replace(tzinfo=UTC).astimezone().replace(tzinfo=None)


def duration(delta: timedelta) -> str:
    """Short span: '40 s', '4 min', '3 h', '2 d', '5 wk'."""
    s = max(0, int(delta.total_seconds()))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h"
    if s < 86400 * 14:
        return f"{s // 86400} d"
    return f"{s // (86400 * 7)} wk"


def age(value: Any, now: datetime | None = None) -> str:
    when = parse_time(value)
    if when is None:
        return ""
    return duration((now or utcnow()) - when)


def ago(value: Any, now: datetime | None = None) -> str:
    """Relative, the one wording of time on screen: 'just now', '4 min ago', '3 h ago',
    'yesterday', '5 d ago', '3 wk ago'; older than eight weeks, the date ('12 Mar',
    '12 Mar 2024'). :func:`exact` gives the exact time for a tooltip."""
    when = parse_time(value)
    if when is None:
        return "never"
    current = now or utcnow()
    delta = current - when
    if delta < timedelta(seconds=45):
        return "just now"
    if delta < timedelta(days=1):
        return duration(delta) + " ago"
    days = (local(current).date() - local(when).date()).days
    if days <= 1:
        return "yesterday"
    if days < 14:
        return f"{days} d ago"
    if days < 56:
        return f"{days // 7} wk ago"
    here = local(when)
    if here.year == local(current).year:
        return f"{here.day} {here.strftime('%b')}"
    return f"{here.day} {here.strftime('%b %Y')}"


def exact(value: Any) -> str:
    """The exact local time, for tooltips: 'Tue 3 Feb 2026, 14:05'."""
    when = parse_time(value)
    if when is None:
        return ""
    here = local(when)
    return f"{here.strftime('%a')} {here.day} {here.strftime('%b %Y, %H:%M')}"


def stamp(value: Any, now: datetime | None = None) -> str:
    """Message time in local time: '14:05', 'Yesterday 14:05', 'Tue 14:05', '12 Mar 2024'."""
    when = parse_time(value)
    if when is None:
        return ""
    here = local(when)
    today = local(now or utcnow()).date()
    clock = here.strftime("%H:%M")
    days = (today - here.date()).days
    if days == 0:
        return clock
    if days == 1:
        return f"Yesterday {clock}"
    if 1 < days < 7:
        return f"{here.strftime('%a')} {clock}"
    if here.year == today.year:
        return f"{here.day} {here.strftime('%b')} {clock}"
    return f"{here.day} {here.strftime('%b %Y')}"


def waiting_level(value: Any, now: datetime | None = None) -> int:
    """0 fresh, 1 waiting more than 4 hours, 2 more than a day (for colour)."""
    when = parse_time(value)
    if when is None:
        return 0
    hours = ((now or utcnow()) - when).total_seconds() / 3600
    return 2 if hours >= 24 else 1 if hours >= 4 else 0


def size(n: int | None) -> str:
    if not n:
        return "0 B"
    units = ("B", "KB", "MB", "GB")
    value = float(n)
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit in ("B", "KB") else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def display_name(name: str | None, email: str | None) -> str:
    return (name or "").strip() or (email or "").strip() or "Unknown sender"


def initials(name: str | None, email: str | None) -> str:
    text = display_name(name, email)
    words = [w for w in text.replace("@", " ").replace(".", " ").split() if w[:1].isalnum()]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][:2].upper()
    return (words[0][0] + words[-1][0]).upper()
