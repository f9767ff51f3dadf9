"""Claim rules and ticket status, folded from the team log (DESIGN.md "The team log").

Per ticket, a CLAIM is accepted if the ticket is unowned, already owned by the same
agent, or the owner's lease has expired at T(e); RENEW by the current claim extends
it; RELEASE by the owner frees it (a non-owner's release is ignored); TAKEOVER names
the claim it replaces and wins only if that claim is still current (or has lapsed).
Closing a ticket releases it. Each claim carries its own lease length, so every
replica judges expiry alike. Status is a last-writer-wins register stamped with the
event's UID.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from helpdesk.store.aliases import canonical
from helpdesk.team.events import Event
from helpdesk.team.fold import (
    BadData,
    ClaimOutcome,
    FoldContext,
    Handlers,
    db_time,
    flag_field,
    int_field,
    parse_db_time,
    required_text,
    text_field,
)
from helpdesk.team.ticket_notes import answered

HANDLERS = Handlers("claims")

DEFAULT_LEASE = 30 * 60
MIN_LEASE, MAX_LEASE = 60, 7 * 24 * 3600
STATUSES = ("open", "pending", "closed")

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
    return max(MIN_LEASE, min(MAX_LEASE, int_field(event.data, "lease", DEFAULT_LEASE)))


def _set_claim(ctx: FoldContext, claimed_at: datetime) -> None:
    ctx.cur.execute("UPDATE ticket_state SET claimed_by = ?, claim_event = ?, claimed_at = ?, "
                    "claim_active_at = ?, claim_lease = ? WHERE ticket_id = ?",
                    (ctx.event.agent, ctx.event.id, db_time(claimed_at), db_time(ctx.at),
                     _lease_of(ctx.event), ctx.event.subject))


def _clear_claim(cur: sqlite3.Cursor, ticket: str) -> None:
    cur.execute("UPDATE ticket_state SET claimed_by = NULL, claim_event = NULL, "
                "claimed_at = NULL, claim_active_at = NULL, claim_lease = NULL "
                "WHERE ticket_id = ?", (ticket,))


@HANDLERS.on("claim")
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


@HANDLERS.on("renew")
def _renew(ctx: FoldContext) -> None:
    ticket = ctx.event.subject
    st = _state(ctx.cur, ticket)
    if st["claim_event"] and st["claim_event"] == text_field(ctx.event.data, "claim") \
            and st["claimed_by"] == ctx.event.agent:
        ctx.cur.execute("UPDATE ticket_state SET claim_active_at = ? WHERE ticket_id = ?",
                        (db_time(ctx.at), ticket))
        ctx.result.tickets.add(ticket)


@HANDLERS.on("release")
def _release(ctx: FoldContext) -> None:
    ticket = ctx.event.subject
    st = _state(ctx.cur, ticket)
    if st["claimed_by"] == ctx.event.agent:
        _clear_claim(ctx.cur, ticket)
        ctx.result.tickets.add(ticket)


@HANDLERS.on("takeover")
def _takeover(ctx: FoldContext) -> None:
    ticket, agent = ctx.event.subject, ctx.event.agent
    st = _state(ctx.cur, ticket)
    replaces = text_field(ctx.event.data, "replaces")
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


@HANDLERS.on("status")
def _status(ctx: FoldContext) -> None:
    ticket = ctx.event.subject
    status = required_text(ctx.event.data, "status")
    if status not in STATUSES:
        raise BadData(f"unknown status {status[:20]!r}")
    cared = ctx.event.data.get("cared")
    if cared is not None:
        cared = flag_field(ctx.event.data, "cared")
    st = _state(ctx.cur, ticket)
    if cared is not None:
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


@HANDLERS.on("reply-sent")
def _reply_sent(ctx: FoldContext) -> None:
    if ctx.event.subject and text_field(ctx.event.data, "kind") in (None, "reply"):
        # Answering the customer answers the mentions of this agent on the ticket.
        answered(ctx.cur, canonical(ctx.cur, ctx.event.subject), ctx.event.agent)
    ctx.result.tickets.add(ctx.event.subject)


@HANDLERS.reset
def _reset(cur: sqlite3.Cursor) -> None:
    cur.execute("DELETE FROM ticket_state")
    cur.execute("DELETE FROM cared")
