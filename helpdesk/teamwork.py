"""Teamwork on a ticket: internal notes, assignment, snooze, tags and spam blocks.

Each intent appends one or more events to the team log and folds up to them
(helpdesk/team/ticket_notes.py and helpdesk/team/ticket_marks.py say how they fold),
so every desktop computes the same state. Every argument a person typed is checked
here first, so a bad one gets a clear sentence and nothing is appended.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from helpdesk.changes import Changes
from helpdesk.errors import HelpdeskError, NotFoundError
from helpdesk.session import Session, intent
from helpdesk.team.ticket_marks import MAX_SNOOZE, block_pattern, normalise_tag, valid_agent
from helpdesk.team.ticket_notes import MAX_NOTE, mentions_in
from helpdesk.tickets import TicketBook

_DURATION = re.compile(r"\s*(\d{1,6})\s*([mhdw])\s*", re.IGNORECASE)
_UNIT = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> int:
    """Seconds in ``30m``, ``2h``, ``3d`` or ``1w``; HelpdeskError otherwise."""
    found = _DURATION.fullmatch(text or "")
    if not found or int(found.group(1)) == 0:
        raise HelpdeskError(f"'{text}' is not a duration: write it like 30m, 2h, 3d or 1w.")
    seconds = int(found.group(1)) * _UNIT[found.group(2).lower()]
    if seconds > MAX_SNOOZE.total_seconds():
        raise HelpdeskError("A ticket can be snoozed for five years at most.")
    return seconds


def parse_until(text: str) -> datetime:
    """``YYYY-MM-DDTHH:MM`` in this desktop's time zone (``Z`` at the end: UTC), as naive
    UTC; HelpdeskError otherwise."""
    value = (text or "").strip()
    utc = value.endswith(("Z", "z"))
    try:
        moment = datetime.strptime(value.rstrip("Zz").replace(" ", "T"), "%Y-%m-%dT%H:%M")
    except ValueError:
        raise HelpdeskError(f"'{text}' is not a time: write it like 2026-12-24T09:00.") \
            from None
    aware = moment.replace(tzinfo=UTC) if utc else moment.astimezone()
    return aware.astimezone(UTC).replace(tzinfo=None)


class Teamwork:
    """Notes, assignment, snooze, tags and spam: the intents (reads are in TicketBook)."""

    def __init__(self, session: Session, book: TicketBook) -> None:
        self.session = session
        self.book = book

    @property
    def agent(self) -> str:
        return self.session.agent

    def _publish(self, etype: str, subject: str, **data: Any) -> Changes:
        return self.session.publish(self.session.event(etype, subject, **data))[0]

    @intent
    def note(self, ticket: str, text: str) -> dict[str, Any]:
        """Add an internal note (never sent); returns ``{id, mentions}``."""
        tid = self.book.resolve(ticket)
        body = (text or "").strip()
        if not body:
            raise HelpdeskError("A note needs some text.")
        if len(body) > MAX_NOTE:
            raise HelpdeskError(f"A note can hold {MAX_NOTE} characters at most.")
        event = self.session.event("ticket-note", tid, text=body)
        self.session.publish(event)
        return {"id": event.id, "ticket": tid,
                "mentions": [a for a in mentions_in(body) if a != self.agent]}

    @intent
    def assign(self, ticket: str, agent: str | None) -> Changes:
        """Make ``agent`` the ticket's lasting owner (None: nobody); they are told."""
        tid = self.book.resolve(ticket)
        name = agent.strip() if agent is not None else None
        if name is not None and not valid_agent(name):
            raise HelpdeskError(f"'{agent}' is not an agent name (one word, no spaces).")
        return self._publish("assign", tid, assignee=name)

    @intent
    def snooze(self, ticket: str, *, until: datetime | None = None,
               seconds: int | None = None) -> Changes:
        """Out of the open views until ``until`` (naive UTC) or for ``seconds`` from now
        by the server's clock; back at once when the customer writes."""
        tid = self.book.resolve(ticket)
        if (until is None) == (seconds is None):
            raise HelpdeskError("Snooze needs either a time to wake up or a duration.")
        if until is not None:
            now = self.session.server_now()
            if until <= now:
                raise HelpdeskError("That time has already passed (by the server's clock).")
            if until - now > MAX_SNOOZE:
                raise HelpdeskError("A ticket can be snoozed for five years at most.")
            return self._publish("snooze", tid,
                                 until=until.replace(microsecond=0).isoformat() + "Z")
        return self._publish("snooze", tid, seconds=seconds)

    @intent
    def unsnooze(self, ticket: str) -> Changes:
        return self._publish("snooze", self.book.resolve(ticket))

    @intent
    def tag(self, ticket: str, add: list[str] | tuple[str, ...] = (),
            remove: list[str] | tuple[str, ...] = ()) -> Changes:
        """Add and remove tags in one event (a tag in both is added)."""
        tid = self.book.resolve(ticket)
        adds, removes = _tags(add), _tags(remove)
        if not adds and not removes:
            raise HelpdeskError("Name a tag to add or remove.")
        return self._publish("tag", tid, add=adds, remove=removes)

    @intent
    def spam(self, ticket: str, domain: bool = False) -> dict[str, Any]:
        """Close the ticket and send later mail from its sender (``domain``: from anyone
        at that domain) to the spam view, without notifications."""
        tid = self.book.resolve(ticket)
        email = self.book.ticket_rows([tid]).get(tid, {}).get("customer_email")
        if not email or "@" not in email:
            raise HelpdeskError(f"Ticket {tid} has no sender to block.")
        value = email.rpartition("@")[2] if domain else email
        found = block_pattern(value)
        if found is None:
            raise HelpdeskError(f"'{value}' cannot be blocked (it is not a plain address).")
        pattern, kind = found
        s = self.session
        s.publish(s.event("status", tid, status="closed"),
                  s.event("spam", pattern, on=True, kind=kind, ticket=tid))
        return {"ticket": tid, "blocked": pattern, "kind": kind}

    @intent
    def unspam(self, address: str) -> list[str]:
        """Stop treating mail from ``address`` (or a domain) as spam: lifts the block of
        that address and of its domain, whichever exist; returns what was lifted."""
        found = block_pattern(address)
        if found is None:
            raise HelpdeskError(f"'{address}' is neither an e-mail address nor a domain.")
        pattern, kind = found
        candidates = [(pattern, kind)]
        if kind == "address":
            candidates.append((pattern.rpartition("@")[2], "domain"))
        active = set(self.book.spam_blocks())
        lifted = [(p, k) for p, k in candidates if p in active]
        if not lifted:
            raise NotFoundError(f"Mail from {pattern} is not treated as spam.")
        s = self.session
        s.publish(*[s.event("spam", p, on=False, kind=k) for p, k in lifted])
        return [p for p, _k in lifted]


def _tags(values: list[str] | tuple[str, ...]) -> list[str]:
    out = []
    for value in values:
        tag = normalise_tag(value)
        if tag is None:
            raise HelpdeskError(f"'{value}' is not a tag: letters, digits and _ . + - only, "
                                f"at most 40, starting with a letter or digit.")
        out.append(tag)
    return list(dict.fromkeys(out))

