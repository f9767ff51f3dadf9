"""The duty rota as pure values: who is on duty on a date, the week ahead, the team's day.

A rota is team state (folded from ``rota`` events, see :mod:`helpdesk.rota.fold`); this
module only computes with it, so every desktop that folded the same log answers alike.
Nothing here reads a clock or the machine's time zone: a *date* is a calendar date in the
team's time zone, and turning an instant into one (:func:`team_date`) takes the instant
(the server's clock) and the zone from the caller.

How a date's person is found (:func:`on_duty`):

- Only working days (``weekdays``, Monday = 0) have someone on duty.
- Working days are counted from ``start`` (the first day of the first shift, fixed in
  the event that set the rota, so it is the same everywhere): working day number ``i``
  belongs to shift ``i // days``, and shift ``s`` to ``people[s % len(people)]``. Days
  before ``start`` count backwards alike, so any date has an answer.
- A swap for the date (``rota-swap``, the last one in log order) overrides it.
- ``covers`` names each person's backup (who covers whom); without one the backup is
  the next person in the rotation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_PEOPLE, MAX_NAME, MAX_DAYS = 50, 200, 366
MAX_HANDOFF_MINUTES = 7 * 24 * 60
_NAME = re.compile(r"[^\x00-\x1f\x7f-\x9f,]+")


class RotaError(ValueError):
    """A rota value that cannot be used (the reason in words)."""


@dataclass(frozen=True)
class Rota:
    """The team's rotation. ``handoff_minutes`` None: no automatic hand-off."""

    people: tuple[str, ...]
    days: int = 1
    weekdays: frozenset[int] = frozenset(range(5))
    start: date = date(2026, 1, 5)
    timezone: str = "UTC"
    covers: Mapping[str, str] = field(default_factory=dict)
    handoff_minutes: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"people": list(self.people), "days": self.days,
                "weekdays": [DAY_NAMES[d] for d in sorted(self.weekdays)],
                "start": self.start.isoformat(), "timezone": self.timezone,
                "covers": dict(sorted(self.covers.items())),
                "handoff_minutes": self.handoff_minutes}


def clean_name(value: Any) -> str:
    if not isinstance(value, str):
        raise RotaError("a name is not text")
    name = " ".join(value.split())
    if not name or len(name) > MAX_NAME or not _NAME.fullmatch(name):
        raise RotaError(f"'{name[:40]}' is not a teammate's name")
    return name


def clean_zone(value: Any) -> str:
    """An IANA time zone name this machine knows (``Europe/Berlin``, ``UTC``)."""
    if not isinstance(value, str) or not value or len(value) > 64 or ".." in value \
            or value.startswith("/"):
        raise RotaError("not a time zone name like 'Europe/Berlin'")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise RotaError(f"'{value}' is not a time zone this computer knows") from None
    return value


def parse_weekdays(text: str) -> frozenset[int]:
    """``mon-fri``, ``mon,wed,fri``, ``sat-sun``, ``mon-sun`` (a range may wrap: ``fri-mon``)."""
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        if lo not in DAY_NAMES or (hi and hi not in DAY_NAMES):
            raise RotaError(f"'{part}' is not a day like mon, or a range like mon-fri")
        a = DAY_NAMES.index(lo)
        b = DAY_NAMES.index(hi) if hi else a
        i = a
        while True:
            days.add(i)
            if i == b:
                break
            i = (i + 1) % 7
    if not days:
        raise RotaError("a rota needs at least one working day")
    return frozenset(days)


def rota_of(data: Mapping[str, Any]) -> Rota:
    """A rota from event data (anything may be hostile); RotaError when unusable."""
    people_raw = data.get("people")
    if not isinstance(people_raw, list) or not 1 <= len(people_raw) <= MAX_PEOPLE:
        raise RotaError(f"a rota has 1 to {MAX_PEOPLE} people")
    people: list[str] = []
    for p in people_raw:
        name = clean_name(p)
        if name not in people:
            people.append(name)
    days = data.get("days", 1)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise RotaError(f"a shift lasts 1 to {MAX_DAYS} days")
    weekdays_raw = data.get("weekdays", list(DAY_NAMES[:5]))
    if not isinstance(weekdays_raw, list) or not all(isinstance(d, str) for d in weekdays_raw):
        raise RotaError("weekdays is not a list of day names")
    weekdays = parse_weekdays(",".join(weekdays_raw))
    start_raw = data.get("start")
    try:
        start = date.fromisoformat(start_raw) if isinstance(start_raw, str) else None
    except ValueError:
        start = None
    if start is None:
        raise RotaError("a rota needs its start date (YYYY-MM-DD)")
    zone = clean_zone(data.get("timezone") or "UTC")
    covers_raw = data.get("covers") or {}
    if not isinstance(covers_raw, dict):
        raise RotaError("covers is not an object")
    covers = {clean_name(k): clean_name(v) for k, v in covers_raw.items()}
    minutes = data.get("handoff_minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int)
                                or not 1 <= minutes <= MAX_HANDOFF_MINUTES):
        raise RotaError(f"the hand-off comes after 1 to {MAX_HANDOFF_MINUTES} minutes")
    return Rota(tuple(people), days, weekdays, start, zone, covers, minutes)


def team_date(instant: datetime, zone: str) -> date:
    """The calendar date of ``instant`` (naive = UTC, as the core keeps time) in ``zone``."""
    aware = instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(zone)).date()


def day_start(day: date, zone: str) -> datetime:
    """The instant (naive UTC) ``day`` begins in ``zone`` (a DST day is 23 or 25 hours)."""
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
    return local.astimezone(UTC).replace(tzinfo=None)


def _working_between(a: date, b: date, weekdays: frozenset[int]) -> int:
    """Working days in [a, b) for a <= b, counted in O(1) per call."""
    total = (b - a).days
    weeks, rest = divmod(total, 7)
    count = weeks * len(weekdays)
    wd = a.weekday()
    for i in range(rest):
        if (wd + i) % 7 in weekdays:
            count += 1
    return count


def scheduled(rota: Rota, day: date) -> str | None:
    """Who the rotation puts on duty on ``day`` (no swaps); None on a day off."""
    if day.weekday() not in rota.weekdays:
        return None
    if day >= rota.start:
        index = _working_between(rota.start, day, rota.weekdays)
    else:
        index = -_working_between(day, rota.start, rota.weekdays)
    shift = index // rota.days  # floor: days before the start belong to earlier shifts
    return rota.people[shift % len(rota.people)]


def backup_of(rota: Rota, person: str | None) -> str | None:
    """Who covers ``person``: their named cover, else the next in the rotation."""
    if person is None:
        return None
    if person in rota.covers and rota.covers[person] != person:
        return rota.covers[person]
    if person in rota.people and len(rota.people) > 1:
        return rota.people[(rota.people.index(person) + 1) % len(rota.people)]
    return None


@dataclass(frozen=True)
class Duty:
    day: date
    agent: str | None
    backup: str | None
    swapped: bool

    def as_json(self) -> dict[str, Any]:
        return {"date": self.day.isoformat(), "weekday": DAY_NAMES[self.day.weekday()],
                "agent": self.agent, "backup": self.backup, "swapped": self.swapped}


def on_duty(rota: Rota | None, day: date, swaps: Mapping[str, str] | None = None) -> Duty:
    """Who is on duty on ``day`` (a date in the team's zone), swaps applied."""
    if rota is None:
        return Duty(day, None, None, False)
    swapped = (swaps or {}).get(day.isoformat())
    agent = swapped or scheduled(rota, day)
    return Duty(day, agent, backup_of(rota, agent), swapped is not None)


def week_ahead(rota: Rota | None, today: date, swaps: Mapping[str, str] | None = None,
               days: int = 7) -> list[Duty]:
    """``today`` and the days after it, each with its person."""
    return [on_duty(rota, today + timedelta(days=i), swaps) for i in range(days)]


def iso_week(day: date) -> str:
    """The period key of ``day``'s ISO week: ``2026-W48``."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_bounds(day: date) -> tuple[date, date]:
    """(Monday, next Monday) of ``day``'s week."""
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=7)


def people_list(text: str | Sequence[str]) -> list[str]:
    items = text.split(",") if isinstance(text, str) else list(text)
    return [clean_name(p) for p in items if p.strip()]
