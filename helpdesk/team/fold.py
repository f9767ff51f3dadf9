"""Fold team-log events into SQLite, in UID order.

Claims (DESIGN.md "The team log"): per ticket, a CLAIM is accepted if the ticket is
unowned, already owned by the same agent, or the owner's lease has expired at
T(e); RENEW by the current claim extends it; RELEASE by the owner frees it (a
non-owner's release is ignored); TAKEOVER names the claim it replaces and wins
only if that claim is still current (or has lapsed). Closing a ticket releases it.
Each claim carries its own lease length, so every replica judges expiry alike.

Lasting data merges independent of order: status, VIP, white-glove and profile
fields are last-writer-wins registers stamped with the event's UID; notes are an
add-only set keyed by event id with delete events as tombstones.

Handlers for event types owned by other modules (replies, cards, metrics)
register themselves with :func:`handler`.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from helpdesk.store.engine import db_time as db_time  # re-exported for fold handlers
from helpdesk.store.engine import parse_db_time as parse_db_time
from helpdesk.team.events import Event

log = logging.getLogger(__name__)

DEFAULT_LEASE = 30 * 60
MIN_LEASE, MAX_LEASE = 60, 7 * 24 * 3600
STATUSES = ("open", "pending", "closed")


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
HANDLERS: dict[str, Handler] = {}


def handler(*types: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for t in types:
            HANDLERS[t] = fn
        return fn
    return register


def apply_event(cur: sqlite3.Cursor, event: Event, uid: int, at: datetime, body: str,
                result: FoldResult) -> None:
    """Record and apply one event (idempotent: a repeated event id is ignored)."""
    cur.execute("INSERT OR IGNORE INTO team_events (uid, event_id, type, agent, at, subject, "
                "body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (uid, event.id, event.type, event.agent, db_time(at), event.subject, body))
    if cur.rowcount == 0:
        return  # the same event appended twice (a retried APPEND): applied once
    fn = HANDLERS.get(event.type)
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


# --- claims ----------------------------------------------------------------------

_STATE_SQL = ("SELECT claimed_by, claim_event, claimed_at, claim_active_at, claim_lease, "
              "status, status_stamp FROM ticket_state WHERE ticket_id = ?")


def _state(cur: sqlite3.Cursor, ticket: str) -> dict[str, Any]:
    row = cur.execute(_STATE_SQL, (ticket,)).fetchone()
    if row is None:
        cur.execute("INSERT INTO ticket_state (ticket_id) VALUES (?)", (ticket,))
        row = (None, None, None, None, None, "open", 0)
    keys = ("claimed_by", "claim_event", "claimed_at", "active_at", "lease", "status", "stamp")
    return dict(zip(keys, row, strict=True))


def _live(state: dict[str, Any], at: datetime) -> bool:
    if not state["claimed_by"]:
        return False
    active = parse_db_time(state["active_at"])
    return active is not None and active + timedelta(seconds=state["lease"] or 0) > at


def _lease_of(event: Event) -> int:
    lease = event.data.get("lease", DEFAULT_LEASE)
    if not isinstance(lease, int):
        raise ValueError("lease must be an integer")
    return max(MIN_LEASE, min(MAX_LEASE, lease))


def _set_claim(ctx: FoldContext, claimed_at: datetime) -> None:
    ctx.cur.execute("UPDATE ticket_state SET claimed_by = ?, claim_event = ?, claimed_at = ?, "
                    "claim_active_at = ?, claim_lease = ? WHERE ticket_id = ?",
                    (ctx.event.agent, ctx.event.id, db_time(claimed_at), db_time(ctx.at),
                     _lease_of(ctx.event), ctx.event.subject))


def _clear_claim(cur: sqlite3.Cursor, ticket: str) -> None:
    cur.execute("UPDATE ticket_state SET claimed_by = NULL, claim_event = NULL, "
                "claimed_at = NULL, claim_active_at = NULL, claim_lease = NULL "
                "WHERE ticket_id = ?", (ticket,))


@handler("claim")
def _claim(ctx: FoldContext) -> None:
    ticket, agent = ctx.event.subject, ctx.event.agent
    st = _state(ctx.cur, ticket)
    live = _live(st, ctx.at)
    if not live or st["claimed_by"] == agent:
        since = parse_db_time(st["claimed_at"]) if live else ctx.at
        _set_claim(ctx, since or ctx.at)
        ctx.result.outcomes[ctx.event.id] = ClaimOutcome(ticket, True, agent, since)
    else:
        ctx.result.outcomes[ctx.event.id] = ClaimOutcome(
            ticket, False, st["claimed_by"], parse_db_time(st["claimed_at"]))
    ctx.result.tickets.add(ticket)


@handler("renew")
def _renew(ctx: FoldContext) -> None:
    ticket = ctx.event.subject
    st = _state(ctx.cur, ticket)
    if st["claim_event"] and st["claim_event"] == ctx.event.data.get("claim") \
            and st["claimed_by"] == ctx.event.agent:
        ctx.cur.execute("UPDATE ticket_state SET claim_active_at = ? WHERE ticket_id = ?",
                        (db_time(ctx.at), ticket))
        ctx.result.tickets.add(ticket)


@handler("release")
def _release(ctx: FoldContext) -> None:
    ticket = ctx.event.subject
    st = _state(ctx.cur, ticket)
    if st["claimed_by"] == ctx.event.agent:
        _clear_claim(ctx.cur, ticket)
        ctx.result.tickets.add(ticket)


@handler("takeover")
def _takeover(ctx: FoldContext) -> None:
    ticket, agent = ctx.event.subject, ctx.event.agent
    st = _state(ctx.cur, ticket)
    replaces = ctx.event.data.get("replaces")
    live = _live(st, ctx.at)
    if not live or st["claim_event"] == replaces or st["claimed_by"] == agent:
        previous = st["claimed_by"] if live and st["claimed_by"] != agent else None
        _set_claim(ctx, ctx.at)
        ctx.result.outcomes[ctx.event.id] = ClaimOutcome(ticket, True, agent, ctx.at, previous)
        if previous:
            ctx.result.taken_over.append((ticket, previous, agent))
    else:
        ctx.result.outcomes[ctx.event.id] = ClaimOutcome(
            ticket, False, st["claimed_by"], parse_db_time(st["claimed_at"]))
    ctx.result.tickets.add(ticket)


@handler("status")
def _status(ctx: FoldContext) -> None:
    ticket = ctx.event.subject
    status = ctx.event.data["status"]
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    st = _state(ctx.cur, ticket)
    cared = ctx.event.data.get("cared")
    if isinstance(cared, bool):
        ctx.cur.execute("INSERT OR IGNORE INTO cared (event_id, ticket_id, agent, value, at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (ctx.event.id, ticket, ctx.event.agent, cared, db_time(ctx.at)))
    if ctx.uid <= st["stamp"]:
        return
    closed_at = db_time(ctx.at) if status == "closed" else None
    ctx.cur.execute("UPDATE ticket_state SET status = ?, status_stamp = ?, status_at = ?, "
                    "closed_at = ? WHERE ticket_id = ?",
                    (status, ctx.uid, db_time(ctx.at), closed_at, ticket))
    if status == "closed":
        _clear_claim(ctx.cur, ticket)
    ctx.result.tickets.add(ticket)


# --- customers -------------------------------------------------------------------

def _customer(cur: sqlite3.Cursor, email: str) -> str:
    email = email.strip().lower()
    if "@" not in email:
        raise ValueError("customer is not an e-mail address")
    cur.execute("INSERT OR IGNORE INTO customers (email, organisation) VALUES (?, ?)",
                (email, _organisation(email)))
    return email


def _organisation(email: str) -> str | None:
    from helpdesk.mail.sync import organisation_for
    return organisation_for(email)


def _register(cur: sqlite3.Cursor, email: str, column: str, value: Any, uid: int) -> None:
    """Last-writer-wins by log order: write only if this event is newer than the value."""
    cur.execute(f"UPDATE customers SET {column} = ?, {column}_stamp = ? "
                f"WHERE email = ? AND {column}_stamp < ?", (value, uid, email, uid))


@handler("vip")
def _vip(ctx: FoldContext) -> None:
    email = _customer(ctx.cur, ctx.event.subject)
    on = bool(ctx.event.data["vip"])
    tier = ctx.event.data.get("tier") if on else None
    ctx.cur.execute("UPDATE customers SET vip = ?, vip_tier = ?, vip_stamp = ? "
                    "WHERE email = ? AND vip_stamp < ?",
                    (on, str(tier)[:60] if tier else None, ctx.uid, email, ctx.uid))
    ctx.result.customers.add(email)


@handler("white-glove")
def _white_glove(ctx: FoldContext) -> None:
    email = _customer(ctx.cur, ctx.event.subject)
    _register(ctx.cur, email, "white_glove", bool(ctx.event.data["on"]), ctx.uid)
    ctx.result.customers.add(email)


PROFILE_FIELDS = ("preferred_name", "birthday", "heard_from")


def _profile_fields(ctx: FoldContext, email: str) -> None:
    for name in PROFILE_FIELDS:
        if name in ctx.event.data:
            value = ctx.event.data[name]
            _register(ctx.cur, email, name, str(value)[:200] if value else None, ctx.uid)


@handler("profile")
def _profile(ctx: FoldContext) -> None:
    email = _customer(ctx.cur, ctx.event.subject)
    _profile_fields(ctx, email)
    ctx.result.customers.add(email)


@handler("note")
def _note(ctx: FoldContext) -> None:
    email = _customer(ctx.cur, ctx.event.subject)
    text = str(ctx.event.data.get("text") or "")[:10000]
    if text:
        ctx.cur.execute("INSERT OR IGNORE INTO notes (id, customer_email, agent, text, at, "
                        "deleted) VALUES (?, ?, ?, ?, ?, 0)",
                        (ctx.event.id, email, ctx.event.agent, text, db_time(ctx.at)))
    _profile_fields(ctx, email)
    ctx.result.customers.add(email)


@handler("note-delete")
def _note_delete(ctx: FoldContext) -> None:
    email = _customer(ctx.cur, ctx.event.subject)
    ctx.cur.execute("UPDATE notes SET deleted = 1 WHERE id = ?", (str(ctx.event.data["note"]),))
    ctx.result.customers.add(email)


def reset_team_state(cur: sqlite3.Cursor) -> None:
    """Forget everything folded from the log (a rebuild, e.g. after UIDVALIDITY changed)."""
    cur.execute("DELETE FROM ticket_state")
    cur.execute("DELETE FROM notes")
    cur.execute("DELETE FROM team_events")
    cur.execute("DELETE FROM cared")
    cur.execute("UPDATE customers SET vip = 0, vip_tier = NULL, vip_stamp = 0, white_glove = 0, "
                "white_glove_stamp = 0, preferred_name = NULL, preferred_name_stamp = 0, "
                "birthday = NULL, birthday_stamp = 0, heard_from = NULL, heard_from_stamp = 0")
    for fn in RESETTERS:
        fn(cur)


RESETTERS: list[Callable[[sqlite3.Cursor], None]] = []
