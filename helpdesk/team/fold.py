"""Fold team-log events into SQLite, in UID order: the machinery every handler shares.

Each module that owns team state (claims, customer registers, saved replies, cards,
metrics) declares its handlers in one :class:`Handlers` table; the list of those
tables is explicit in :mod:`helpdesk.team.registry`, so which handlers run never
depends on which modules happen to be imported.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from helpdesk.store.engine import db_time as db_time  # re-exported for fold handlers
from helpdesk.store.engine import parse_db_time as parse_db_time
from helpdesk.team.events import Event

log = logging.getLogger(__name__)


@dataclass
class ClaimOutcome:
    """How a claim or take-over event was decided."""

    ticket: str
    accepted: bool
    holder: str | None
    since: datetime | None
    previous: str | None = None


@dataclass
class FoldResult:
    tickets: set[str] = field(default_factory=set)
    customers: set[str] = field(default_factory=set)
    cards: bool = False
    outcomes: dict[str, ClaimOutcome] = field(default_factory=dict)
    taken_over: list[tuple[str, str, str]] = field(default_factory=list)  # ticket, from, by
    events: int = 0
    skipped: int = 0
    uids: set[int] = field(default_factory=set)  # log UIDs read (events or not)

    def merge(self, other: FoldResult) -> None:
        self.tickets |= other.tickets
        self.customers |= other.customers
        self.cards = self.cards or other.cards
        self.outcomes.update(other.outcomes)
        self.taken_over.extend(other.taken_over)
        self.events += other.events
        self.skipped += other.skipped
        self.uids |= other.uids


@dataclass
class FoldContext:
    cur: sqlite3.Cursor
    event: Event
    uid: int
    at: datetime
    result: FoldResult


Handler = Callable[[FoldContext], None]
Reset = Callable[[sqlite3.Cursor], None]


class Handlers:
    """One module's fold handlers (by event type) and what it forgets on a rebuild."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.by_type: dict[str, Handler] = {}
        self.resets: list[Reset] = []

    def on(self, *types: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            for t in types:
                if t in self.by_type:
                    raise ValueError(f"{self.name}: two handlers for {t!r}")
                self.by_type[t] = fn
            return fn
        return register

    def reset(self, fn: Reset) -> Reset:
        self.resets.append(fn)
        return fn


def handler_table(tables: Iterable[Handlers]) -> dict[str, Handler]:
    """Every event type's handler; a type claimed by two modules is a programming error."""
    out: dict[str, Handler] = {}
    for table in tables:
        for etype, fn in table.by_type.items():
            if etype in out:
                raise ValueError(f"event type {etype!r} has two handlers ({table.name})")
            out[etype] = fn
    return out


def apply_event(cur: sqlite3.Cursor, event: Event, uid: int, at: datetime, body: str,
                result: FoldResult, handlers: dict[str, Handler] | None = None) -> None:
    """Record and apply one event (idempotent: a repeated event id is ignored)."""
    if handlers is None:
        from helpdesk.team.registry import HANDLERS

        handlers = HANDLERS
    cur.execute("INSERT OR IGNORE INTO team_events (uid, event_id, type, agent, at, subject, "
                "body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (uid, event.id, event.type, event.agent, db_time(at), event.subject, body))
    if cur.rowcount == 0:
        return  # the same event appended twice (a retried APPEND): applied once
    fn = handlers.get(event.type)
    if fn is None:
        return
    try:
        fn(FoldContext(cur, event, uid, at, result))
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("team log: skipped %s event %s (uid %d): bad data (%s)",
                    event.type, event.id[:8], uid, exc)
        result.skipped += 1
        return
    result.events += 1


def reset_team_state(cur: sqlite3.Cursor) -> None:
    """Forget everything folded from the log (a rebuild, e.g. after UIDVALIDITY changed)."""
    from helpdesk.team.registry import TABLES

    cur.execute("DELETE FROM team_events")
    for table in TABLES:
        for fn in table.resets:
            fn(cur)
