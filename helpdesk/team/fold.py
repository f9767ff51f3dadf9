"""Fold team-log events into SQLite, in UID order: the machinery every handler shares.

Each module that owns team state (claims, customer registers, saved replies, cards,
metrics) declares its handlers in one :class:`Handlers` table; the list of those
tables is explicit in :mod:`helpdesk.team.registry`, so which handlers run never
depends on which modules happen to be imported.

How one event is applied (:func:`apply_event`):

- An event id already stored (a retried APPEND) is a duplicate: ignored.
- An event this build does not understand (no handler for its type, or a newer
  version than its handler reads) is kept, body and UID, in ``team_pending``: a
  build that understands it refolds the log from the store, in UID order
  (:func:`helpdesk.team.log.TeamLog.refold`).
- Otherwise it is recorded in ``team_events`` and its handler runs inside a
  SAVEPOINT. A handler that raises leaves no partial state: the event is skipped
  with one log line (bad data is the event's fault, whatever the exception type),
  except for real database trouble (disk full, locked, corrupt), which propagates
  so the replay cursor does not move past an event that was never folded.
- A claim's or take-over's outcome is stored with its event, so whoever folded it
  (another thread or process sharing the database) the publisher reads the truth.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from helpdesk.store.aliases import TICKET_EVENT_TYPES, canonical
from helpdesk.store.engine import db_time as db_time  # re-exported for fold handlers
from helpdesk.store.engine import parse_db_time as parse_db_time
from helpdesk.team.events import VERSION, Event

log = logging.getLogger(__name__)


def is_db_trouble(exc: BaseException) -> bool:
    """Trouble with the database itself (disk full, locked, I/O, corrupt), not the
    event's fault: the cursor must not move past the event. A constraint, a value of
    the wrong type bound to a statement, a string too big are the event's fault."""
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.DataError):
        return False
    return isinstance(exc, sqlite3.DatabaseError | MemoryError)


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
    mentions: list[tuple[str, str, str]] = field(default_factory=list)  # ticket, agent, by
    assigned: list[tuple[str, str, str]] = field(default_factory=list)  # ticket, agent, by
    tags: bool = False  # tag counts (or spam blocks) changed
    events: int = 0
    skipped: int = 0
    pending: int = 0  # kept for a build that understands them
    uids: set[int] = field(default_factory=set)  # log UIDs read (events or not)

    def merge(self, other: FoldResult) -> None:
        self.tickets |= other.tickets
        self.customers |= other.customers
        self.cards = self.cards or other.cards
        self.outcomes.update(other.outcomes)
        self.taken_over.extend(other.taken_over)
        self.mentions.extend(other.mentions)
        self.assigned.extend(other.assigned)
        self.tags = self.tags or other.tags
        self.events += other.events
        self.skipped += other.skipped
        self.pending += other.pending
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
        self.versions: dict[str, int] = {}
        self.resets: list[Reset] = []

    def on(self, *types: str, version: int = VERSION) -> Callable[[Handler], Handler]:
        """Register the handler of ``types``; it folds events up to ``version``."""
        def register(fn: Handler) -> Handler:
            for t in types:
                if t in self.by_type:
                    raise ValueError(f"{self.name}: two handlers for {t!r}")
                self.by_type[t] = fn
                self.versions[t] = version
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


class Registry:
    """What one build folds: a handler per event type, the newest version of each type
    it reads, and the resets that forget team state before a rebuild."""

    def __init__(self, handlers: Mapping[str, Handler], versions: Mapping[str, int],
                 resets: Iterable[Reset]) -> None:
        self.handlers = dict(handlers)
        self.versions = {t: versions.get(t, VERSION) for t in self.handlers}
        self.resets = tuple(resets)

    @classmethod
    def of(cls, tables: Iterable[Handlers]) -> Registry:
        tables = tuple(tables)
        versions = {t: v for table in tables for t, v in table.versions.items()}
        return cls(handler_table(tables), versions,
                   [fn for table in tables for fn in table.resets])

    def understands(self, etype: str, version: int) -> bool:
        return version <= self.versions.get(etype, 0)

    def without(self, *types: str) -> Registry:
        """This registry minus ``types``: what an older build folded (tests, tools)."""
        return Registry({t: fn for t, fn in self.handlers.items() if t not in types},
                        self.versions, self.resets)

    def reading(self, **versions: int) -> Registry:
        """This registry reading newer versions of some types (``reading(vip=2)``)."""
        return Registry(self.handlers, {**self.versions, **versions}, self.resets)


_default: Registry | None = None


def default_registry() -> Registry:
    """Every handler of this build (:mod:`helpdesk.team.registry`)."""
    global _default
    if _default is None:
        from helpdesk.team.registry import REGISTRY

        _default = REGISTRY
    return _default


class BadData(ValueError):
    """A field of an event's ``data`` has the wrong type or value: the event is skipped."""


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false",
            type(None): "null"}.get(type(value), "a number")


def text_field(data: Mapping[str, Any], key: str) -> str | None:
    """``data[key]`` as text; None when absent or null, BadData when not text."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadData(f"{key} must be text, not {_kind(value)}")
    return value


def required_text(data: Mapping[str, Any], key: str) -> str:
    """``data[key]`` as text; BadData when absent, null or not text."""
    value = text_field(data, key)
    if value is None:
        raise BadData(f"{key} is missing")
    return value


def flag_field(data: Mapping[str, Any], key: str, *, default: bool | None = None) -> bool:
    """``data[key]`` as true/false (absent: ``default``, else BadData)."""
    value = data.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, bool):
        raise BadData(f"{key} must be true or false, not {_kind(value)}")
    return value


def int_field(data: Mapping[str, Any], key: str, default: int) -> int:
    """``data[key]`` as a whole number (absent or null: ``default``)."""
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadData(f"{key} must be a whole number, not {_kind(value)}")
    return value


_OUTCOME_SQL = ("UPDATE team_events SET accepted = ?, holder = ?, since = ?, previous = ? "
                "WHERE uid = ?")
_INSERT_EVENT = ("INSERT OR IGNORE INTO team_events (uid, event_id, type, agent, at, subject, "
                 "body) VALUES (?, ?, ?, ?, ?, ?, ?)")


Note = tuple[int, str, tuple[Any, ...]]  # a log line held back: level, format, args


class Refused(Exception):
    """From ``apply_event(atomic=False)``: a handler refused the event. The caller undoes
    its whole batch and folds it again event by event (atomic), which skips this one."""


def note(notes: list[Note] | None, level: int, fmt: str, *args: Any) -> None:
    """Log now, or hold the line in ``notes`` until the caller's batch is kept."""
    if notes is None:
        log.log(level, fmt, *args)
    else:
        notes.append((level, fmt, args))


def apply_event(cur: sqlite3.Cursor, event: Event, uid: int, at: datetime, body: str,
                result: FoldResult, registry: Registry | None = None,
                kept: bool = True, *, atomic: bool = True,
                notes: list[Note] | None = None) -> str:
    """Record and apply one event, all or nothing (see the module docstring).

    Returns what became of it: ``"folded"``, ``"duplicate"`` (not stored again),
    ``"pending"``, ``"skipped"`` (its handler refused it; logged, stored as read) or
    ``"unstored"`` (refused and not even storable). Raises only for database trouble.

    ``kept``: False when the caller knows ``team_pending`` is empty (no look-up there).
    ``atomic=False``: no SAVEPOINT of its own (the caller holds one around a batch,
    the fast path); a refusal raises :class:`Refused` instead of skipping, and the
    handler writes into ``result`` directly. ``notes``: see :func:`note`.
    """
    registry = registry or default_registry()
    row = (uid, event.id, event.type, event.agent, db_time(at), event.subject, body)
    if not atomic:
        try:
            done = _apply(cur, event, uid, at, row, result, registry, kept, notes)
        except Exception as exc:
            if is_db_trouble(exc):
                raise
            raise Refused(event.id) from exc
        if done == "folded":
            result.events += 1
        return done
    folded = FoldResult()
    cur.execute("SAVEPOINT fold_event")
    try:
        done = _apply(cur, event, uid, at, row, folded, registry, kept, notes)
    except Exception as exc:
        if not _roll_back(cur) or is_db_trouble(exc):
            raise
        note(notes, logging.WARNING, "team log: skipped %s event %s (uid %d): bad data (%s: %s)",
             event.type, event.id[:8], uid, type(exc).__name__, str(exc)[:120])
        result.skipped += 1
        try:
            cur.execute(_INSERT_EVENT, row)  # read and refused: a later copy is a duplicate
        except Exception as again:
            if is_db_trouble(again):
                raise
            return "unstored"
        return "skipped"
    cur.execute("RELEASE fold_event")
    result.merge(folded)
    if done == "folded":
        result.events += 1
    return done


def _apply(cur: sqlite3.Cursor, event: Event, uid: int, at: datetime, row: tuple[Any, ...],
           folded: FoldResult, registry: Registry, kept: bool, notes: list[Note] | None
           ) -> str:
    if not registry.understands(event.type, event.version):
        return _keep_pending(cur, event, row, folded, notes)
    if kept and _pending_id(cur, event.id):
        return "duplicate"
    if event.type in TICKET_EVENT_TYPES:
        # A merged-away ticket id acts on the ticket it lives in now (its raw form stays
        # in the stored body, so a refold resolves it again).
        resolved = canonical(cur, event.subject)
        if resolved != event.subject:
            event = replace(event, subject=resolved)
            row = (*row[:5], resolved, row[6])
    cur.execute(_INSERT_EVENT, row)
    if cur.rowcount == 0:
        return "duplicate"  # the same event appended twice (a retried APPEND)
    registry.handlers[event.type](FoldContext(cur, event, uid, at, folded))
    outcome = folded.outcomes.get(event.id)
    if outcome is not None:
        cur.execute(_OUTCOME_SQL, (outcome.accepted, outcome.holder,
                                   db_time(outcome.since) if outcome.since else None,
                                   outcome.previous, uid))
    return "folded"


def _roll_back(cur: sqlite3.Cursor) -> bool:
    """Undo the event's statements; False when SQLite already rolled back the whole
    transaction itself (disk full, I/O error): then there is nothing left to keep."""
    try:
        cur.execute("ROLLBACK TO fold_event")
        cur.execute("RELEASE fold_event")
    except sqlite3.Error:
        return False
    return True


def _pending_id(cur: sqlite3.Cursor, event_id: str) -> bool:
    return cur.execute("SELECT 1 FROM team_pending WHERE event_id = ?",
                       (event_id,)).fetchone() is not None


def _keep_pending(cur: sqlite3.Cursor, event: Event, row: tuple[Any, ...],
                  result: FoldResult, notes: list[Note] | None) -> str:
    if cur.execute("SELECT 1 FROM team_events WHERE event_id = ?",
                   (event.id,)).fetchone() is not None:
        return "duplicate"
    uid, eid, etype, agent, at, subject, body = row
    cur.execute("INSERT OR IGNORE INTO team_pending (uid, event_id, type, v, agent, at, "
                "subject, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (uid, eid, etype, event.version, agent, at, subject, body))
    if cur.rowcount == 0:
        return "duplicate"
    note(notes, logging.INFO, "team log: kept %s event %s (uid %d, version %d) for a newer "
         "Help desk", etype, eid[:8], uid, event.version)
    result.pending += 1
    return "pending"


def reset_team_state(cur: sqlite3.Cursor, registry: Registry | None = None) -> None:
    """Forget everything folded from the log (a rebuild, e.g. after UIDVALIDITY changed)."""
    cur.execute("DELETE FROM team_events")
    cur.execute("DELETE FROM team_pending")
    for fn in (registry or default_registry()).resets:
        fn(cur)
