"""The rota's reads and intents over the session: show, set, swap, newcomers, approvals,
and the automatic hand-off pass run after each replay of the team log.

Every change is a team event (folded by :mod:`helpdesk.rota.fold`); "today" is the
server's clock (:meth:`Session.server_now`, our clock corrected by the offset measured
on our last event, as leases are judged) in the team's time zone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import text

from helpdesk.changes import Changes
from helpdesk.errors import HelpdeskError, NotFoundError
from helpdesk.rota import handoff, newcomers, schedule
from helpdesk.rota.alarm import Alarm
from helpdesk.rota.fold import ROTA_KEY, learning_in, read_json, rota_in, swaps_in
from helpdesk.session import ImapLink, Session, intent
from helpdesk.store.engine import parse_db_time, raw_cursor
from helpdesk.team_settings import TEAM_SUBJECT

log = logging.getLogger(__name__)

_KEEP: Any = object()  # "leave this setting as it is"


class RotaService:
    """The duty rota, newcomer weeks and approvals of one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.store = session.store
        #: Wakes the desk for a hand-off falling due (and the digest's week ending).
        self.alarm = Alarm(session.server_now, session.request_sync)

    def close(self) -> None:
        self.alarm.close()

    # --- reading ------------------------------------------------------------------

    def state(self) -> tuple[schedule.Rota | None, dict[str, str]]:
        with self.store.read() as conn:
            cur = raw_cursor(conn)
            return rota_in(cur), swaps_in(cur)

    def zone(self) -> str:
        rota, _ = self.state()
        return rota.timezone if rota else "UTC"

    def today(self, now: datetime | None = None) -> date:
        """Today in the team's time zone, on the server's clock."""
        return schedule.team_date(now or self.session.server_now(), self.zone())

    def duty(self, day: date | None = None) -> schedule.Duty:
        rota, swaps = self.state()
        return schedule.on_duty(rota, day or self.today(), swaps)

    def show(self, days: int = 7) -> dict[str, Any]:
        """The rota, today's person and the week ahead (the JSON of ``rota show``):
        ``{rota, today, week, learning}``; ``rota`` is null when the team set none."""
        rota, swaps = self.state()
        today = schedule.team_date(self.session.server_now(), rota.timezone if rota else "UTC")
        return {"rota": rota.as_json() if rota else None,
                "today": schedule.on_duty(rota, today, swaps).as_json(),
                "week": [d.as_json() for d in schedule.week_ahead(rota, today, swaps, days)],
                "learning": self.learning()}

    def learning(self) -> dict[str, str]:
        """Learning teammates and the last day their replies are held (past ones too)."""
        with self.store.read() as conn:
            return {a: d.isoformat() for a, d in sorted(learning_in(raw_cursor(conn)).items())}

    def is_learning(self, agent: str | None = None) -> bool:
        with self.store.read() as conn:
            return newcomers.is_learning(conn, agent or self.session.agent,
                                         self.session.server_now())

    def assigned_to(self, ticket: str) -> str | None:
        """Who the rota handed ``ticket`` to (None: nobody)."""
        with self.store.read() as conn:
            return handoff.assigned_to(conn, ticket)

    def handoffs(self) -> dict[str, str]:
        with self.store.read() as conn:
            return {str(t): str(a) for t, a in conn.execute(
                text("SELECT ticket_id, agent FROM rota_handoffs")).all()}

    # --- intents --------------------------------------------------------------------

    @intent
    def set_rota(self, people: Sequence[str], days: int = 1, weekdays: str | None = None,
                 timezone: str | None = None, covers: Mapping[str, str] | None = None,
                 handoff_minutes: Any = _KEEP, start: str | None = None) -> Changes:
        """Publish the team's rotation. Settings not given keep their current value; the
        first person's shift starts on ``start`` (default: today, in the team's zone)."""
        current, _ = self.state()
        try:
            zone = schedule.clean_zone(timezone) if timezone else (
                current.timezone if current else "UTC")
            wd = schedule.parse_weekdays(weekdays) if weekdays else (
                current.weekdays if current else frozenset(range(5)))
            first = date.fromisoformat(start) if start else schedule.team_date(
                self.session.server_now(), zone)
            minutes = (current.handoff_minutes if current else None) \
                if handoff_minutes is _KEEP else handoff_minutes
            data = {"people": [schedule.clean_name(p) for p in people], "days": days,
                    "weekdays": [schedule.DAY_NAMES[d] for d in sorted(wd)],
                    "start": first.isoformat(), "timezone": zone,
                    "covers": dict(covers) if covers is not None else (
                        dict(current.covers) if current else {}),
                    "handoff_minutes": minutes}
            schedule.rota_of(data)  # refused here, in words, rather than skipped by every fold
        except (schedule.RotaError, ValueError) as exc:
            raise HelpdeskError(f"The rota is not valid: {exc}.") from None
        return self.session.publish(self.session.event("rota", TEAM_SUBJECT, **data))[0]

    @intent
    def clear_rota(self) -> Changes:
        return self.session.publish(self.session.event("rota", TEAM_SUBJECT, people=[]))[0]

    @intent
    def swap(self, day: str, agent: str | None) -> Changes:
        """Put ``agent`` on duty on ``day`` (YYYY-MM-DD); None: back to the rotation."""
        try:
            when = date.fromisoformat(day.strip())
            name = schedule.clean_name(agent) if agent else None
        except (ValueError, schedule.RotaError) as exc:
            raise HelpdeskError(f"Cannot swap '{day}': {exc}.") from None
        return self.session.publish(self.session.event("rota-swap", when.isoformat(),
                                                       agent=name))[0]

    @intent
    def set_learning(self, agent: str, until: str | None) -> Changes:
        """Hold ``agent``'s replies for approval through ``until`` (None: no longer)."""
        try:
            name = schedule.clean_name(agent)
            day = date.fromisoformat(until.strip()).isoformat() if until else None
        except (ValueError, schedule.RotaError) as exc:
            raise HelpdeskError(f"Cannot mark '{agent}' as learning: {exc}.") from None
        return self.session.publish(self.session.event("learning", name, until=day))[0]

    def approvals(self, pending_only: bool = True) -> list[dict[str, Any]]:
        """Newcomers' held replies (see :func:`newcomers.requests`)."""
        with self.store.read() as conn:
            return newcomers.requests(conn, pending_only=pending_only)

    @intent
    def approve(self, key: str) -> dict[str, Any]:
        """Approve a newcomer's held reply (one click); its author's desktop sends it once.
        Returns the request with ``approved_by``; refuses one's own reply."""
        self.session.replay()
        with self.store.read() as conn:
            found = newcomers.find_request(conn, key)
        if found is None:
            raise NotFoundError(f"There is no reply waiting for approval named '{key}'.")
        if found["agent"] == self.session.agent:
            raise HelpdeskError("A reply of yours needs a teammate's approval, not your own.")
        if found["approved_by"] is None:
            self.session.publish(self.session.event("approval", found["message_id"]))
        with self.store.read() as conn:
            done = newcomers.find_request(conn, found["message_id"])
        assert done is not None
        return done

    # --- the automatic hand-off (a sync step, on the worker) ---------------------------

    def handoff_pass(self, link: ImapLink) -> Changes:
        """Hand each due ticket to the person on duty (a ``rota-handoff`` event each; the
        fold keeps the first per ticket)."""
        with self.store.read() as conn:
            cur = raw_cursor(conn)
            rota, swaps = rota_in(cur), swaps_in(cur)
            since = parse_db_time((read_json(cur, ROTA_KEY) or {}).get("handoff_since"))
            if rota is None or not rota.handoff_minutes or since is None:
                return Changes(set(), set())
            now = self.session.server_now()
            duty = schedule.on_duty(rota, schedule.team_date(now, rota.timezone), swaps)
            if duty.agent is None:
                return Changes(set(), set())  # a day off: nobody to hand it to
            due = handoff.due_handoffs(conn, now, rota.handoff_minutes, since)
            later = handoff.next_due(conn, now, rota.handoff_minutes, since)
        if later is not None:
            self.alarm.at(later)  # nothing on the server announces that moment
        if not due:
            return Changes(set(), set())
        events = [self.session.event("rota-handoff", t, agent=duty.agent, day=duty.day.isoformat())
                  for t in due]
        log.info("handing %d ticket(s) to %s (on duty)", len(events), duty.agent)
        return self.session.publish(*events, link=link)[0]
