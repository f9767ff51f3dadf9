"""The duty rota's pure rules: who is on duty on a date, the team's day, DST, notifications.

Property tests with a seeded generator (the same cases every run): the on-duty person
agrees with a brute-force day-by-day reference for random rotas and dates, and nothing
depends on the machine's own time zone (each desktop's TZ is tried).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest

from helpdesk.rota import schedule
from helpdesk.rota.notify import Situation, concerns
from helpdesk.rota.schedule import Rota, RotaError, on_duty, rota_of, team_date

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata",
         "Pacific/Chatham", "America/Sao_Paulo", "Pacific/Kiritimati"]


@pytest.fixture
def machine_zones() -> Iterator[list[str]]:
    """Lets a test run its body under several local time zones (each desktop's TZ)."""
    before = os.environ.get("TZ")
    yield ["UTC", "America/Los_Angeles", "Asia/Tokyo", "Europe/Berlin", "Pacific/Apia"]
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def reference(rota: Rota, day: date) -> str | None:
    """Walk working days one by one from the start (slow, obviously right)."""
    if day.weekday() not in rota.weekdays:
        return None
    index, d = 0, rota.start
    step = 1 if day >= rota.start else -1
    while d != day:
        if step == -1:
            d -= timedelta(days=1)
            if d.weekday() in rota.weekdays:
                index -= 1
        else:
            if d.weekday() in rota.weekdays:
                index += 1
            d += timedelta(days=1)
    shift = index // rota.days
    return rota.people[shift % len(rota.people)]


def random_rota(rng: random.Random) -> Rota:
    people = tuple(f"p{i}" for i in range(rng.randint(1, 6)))
    weekdays = frozenset(rng.sample(range(7), rng.randint(1, 7)))
    start = date(2024, 1, 1) + timedelta(days=rng.randint(0, 1500))
    return Rota(people, rng.randint(1, 5), weekdays, start, rng.choice(ZONES))


def test_on_duty_matches_the_day_by_day_reference_for_random_rotas_and_dates() -> None:
    rng = random.Random(1717)
    for _ in range(600):
        rota = random_rota(rng)
        day = rota.start + timedelta(days=rng.randint(-400, 400))
        assert schedule.scheduled(rota, day) == reference(rota, day), (rota, day)


def test_the_same_person_on_every_desktop_whatever_its_own_time_zone(
        machine_zones: list[str]) -> None:
    rng = random.Random(99)
    cases = []
    for _ in range(300):
        rota = random_rota(rng)
        instant = datetime(2026, 1, 1) + timedelta(minutes=rng.randint(0, 600 * 24 * 60))
        cases.append((rota, instant))
    answers: list[list[tuple[date, str | None]]] = []
    for tz in machine_zones:
        os.environ["TZ"] = tz
        time.tzset()
        answers.append([(team_date(i, r.timezone),
                         on_duty(r, team_date(i, r.timezone)).agent) for r, i in cases])
    assert all(a == answers[0] for a in answers[1:])


def test_daylight_saving_days_keep_the_rota_on_the_team_s_calendar() -> None:
    berlin = "Europe/Berlin"
    rota = Rota(("kim", "lee", "ana"), 1, frozenset(range(7)), date(2026, 3, 27), berlin)
    # 29 March 2026: clocks go 02:00 -> 03:00 (a 23-hour day); 25 October back (25 hours).
    assert schedule.day_start(date(2026, 3, 29), berlin) == datetime(2026, 3, 28, 23)
    assert schedule.day_start(date(2026, 3, 30), berlin) == datetime(2026, 3, 29, 22)
    assert schedule.day_start(date(2026, 10, 26), berlin) == datetime(2026, 10, 25, 23)
    # Every instant across both changes, every 10 minutes, against fixed offsets.
    for start, end, switch in ((datetime(2026, 3, 28), datetime(2026, 3, 31),
                                datetime(2026, 3, 29, 1)),
                               (datetime(2026, 10, 24), datetime(2026, 10, 27),
                                datetime(2026, 10, 25, 1))):
        summer_first = start.month == 10
        t = start
        while t < end:
            before = t < switch
            hours = (2 if before else 1) if summer_first else (1 if before else 2)
            expected = (t + timedelta(hours=hours)).date()
            assert team_date(t, berlin) == expected, t
            assert on_duty(rota, team_date(t, berlin)).agent == reference(rota, expected)
            t += timedelta(minutes=10)
    # 23:30 UTC on 29 March is already Monday 30 March in Berlin: Monday's person.
    assert team_date(datetime(2026, 3, 29, 22, 30), berlin) == date(2026, 3, 30)
    assert team_date(datetime(2026, 3, 29, 21, 30), berlin) == date(2026, 3, 29)
    assert [on_duty(rota, date(2026, 3, d)).agent for d in (28, 29, 30)] == [
        "lee", "ana", "kim"]
    # An aware instant means the same moment as the naive UTC one.
    aware = datetime(2026, 3, 29, 22, 30, tzinfo=UTC)
    assert team_date(aware, berlin) == date(2026, 3, 30)


def test_swaps_shifts_and_days_off() -> None:
    rota = Rota(("kim", "lee"), 2, schedule.parse_weekdays("mon-fri"), date(2026, 11, 30))
    week = [d.agent for d in schedule.week_ahead(rota, date(2026, 11, 30), {}, 14)]
    # Two-day shifts run on over the weekend: Friday starts kim's shift, Monday ends it.
    assert week == ["kim", "kim", "lee", "lee", "kim", None, None,
                    "kim", "lee", "lee", "kim", "kim", None, None]
    swapped = on_duty(rota, date(2026, 12, 1), {"2026-12-01": "ana"})
    assert (swapped.agent, swapped.swapped) == ("ana", True)
    assert on_duty(rota, date(2026, 11, 30)).backup == "lee"
    covered = Rota(("kim", "lee", "ana"), 1, frozenset(range(7)), date(2026, 1, 1),
                   covers={"kim": "ana"})
    assert schedule.backup_of(covered, "kim") == "ana"
    assert schedule.backup_of(covered, "lee") == "ana"  # the next in the rotation
    assert schedule.parse_weekdays("fri-mon") == frozenset({4, 5, 6, 0})
    assert on_duty(None, date(2026, 1, 1)).agent is None


@pytest.mark.parametrize("data, words", [
    ({"people": "kim"}, "1 to"),
    ({"people": []}, "1 to"),
    ({"people": ["kim"], "days": 0, "start": "2026-01-01"}, "shift"),
    ({"people": ["kim"], "days": True, "start": "2026-01-01"}, "shift"),
    ({"people": ["kim"], "start": "soon"}, "start"),
    ({"people": ["kim"], "start": "2026-01-01", "timezone": "Mars/Olympus"}, "time zone"),
    ({"people": ["kim"], "start": "2026-01-01", "timezone": "../../etc/passwd"}, "time zone"),
    ({"people": ["ki\x1bm"], "start": "2026-01-01"}, "name"),
    ({"people": ["kim"], "start": "2026-01-01", "weekdays": ["funday"]}, "day"),
    ({"people": ["kim"], "start": "2026-01-01", "handoff_minutes": -5}, "minutes"),
    ({"people": ["kim"], "start": "2026-01-01", "covers": ["kim"]}, "covers"),
])
def test_hostile_rota_data_is_refused_in_words(data: dict[str, object], words: str) -> None:
    with pytest.raises(RotaError, match=words):
        rota_of(data)


def test_who_hears_of_what() -> None:
    def s(**kw: object) -> Situation:
        base: dict[str, object] = {"new_ticket": True, "vip": False, "holder": None,
                                   "handed_to": None, "on_duty": "kim", "rota": True}
        base.update(kw)
        return Situation(**base)  # type: ignore[arg-type]

    # The person on duty hears of new tickets; the others do not.
    assert concerns("kim", s()) and not concerns("lee", s())
    assert not concerns("lee", s(), notify_unclaimed=True)
    # New mail in a ticket: its holder, else who it was handed to, else the person on duty.
    assert concerns("lee", s(new_ticket=False, holder="lee"))
    assert not concerns("kim", s(new_ticket=False, holder="lee"))
    assert concerns("ana", s(new_ticket=False, handed_to="ana"))
    assert concerns("kim", s(new_ticket=False))
    # A day off: as without a rota for new tickets.
    assert concerns("lee", s(on_duty=None), notify_unclaimed=True)
    assert not concerns("lee", s(on_duty=None))
    # No rota: as before (VIP mail to everyone; new tickets to who asked).
    assert concerns("lee", s(rota=False, on_duty=None, vip=True, holder="kim",
                             new_ticket=False))
    assert concerns("lee", s(rota=False, on_duty=None), notify_unclaimed=True)
    assert not concerns("lee", s(rota=False, on_duty=None))
    assert not concerns("kim", s(closed=True))
