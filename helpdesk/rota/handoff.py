"""Automatic hand-off of a new unclaimed ticket to the person on duty.

Two halves:

- Which tickets are due (:func:`due_handoffs`): open, held by nobody, not handed off
  yet, whose first customer message arrived (server INTERNALDATE) after the hand-off
  setting was made and at least ``handoff_minutes`` before the server's clock. Each
  desktop asks this after folding the log and publishes a ``rota-handoff`` event per
  ticket; the fold (:mod:`helpdesk.rota.fold`) keeps the first per ticket in log order,
  so however many desktops publish at once, every replica records one hand-off, to one
  person.

- **The seam** (:func:`apply_assignment`): what the winning hand-off does to the ticket.
  Assignment (a lasting owner per ticket, folded from team events) is being built on the
  ``teamwork`` branch in parallel and is not on main yet. Until it lands the rota keeps
  its own record (``rota_handoffs``, read by :func:`assigned_to`) and this function does
  nothing more; at merge time the lead points this one function at teamwork's
  assignment register (e.g. ``assignments.assign(cur, ticket, agent, at)``), inside the
  same fold transaction, and nothing else in the rota needs to change. It is called only
  from the fold, in log order, once per ticket, with the fold's cursor.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from helpdesk.store.engine import db_time, parse_db_time
from helpdesk.store.queries import STATUS


def apply_assignment(cur: sqlite3.Cursor, ticket: str, agent: str, at: datetime) -> None:
    """Assign ``ticket`` to ``agent`` as of server time ``at`` (the seam; see above).

    Today: nothing beyond the ``rota_handoffs`` row the fold already wrote (the rota's
    own register). With teamwork merged: teamwork's assignment, in this transaction.
    It must stay deterministic (no clocks, no mail data): every replica calls it alike.
    """
    del cur, ticket, agent, at  # assignment lands with the teamwork branch


def assigned_to(conn: Connection, ticket: str) -> str | None:
    """Who the rota handed ``ticket`` to (None: nobody)."""
    value = conn.execute(text("SELECT agent FROM rota_handoffs WHERE ticket_id = :t"),
                         {"t": ticket}).scalar()
    return str(value) if value else None


def due_handoffs(conn: Connection, now: datetime, minutes: int, since: datetime,
                 limit: int = 200) -> list[str]:
    """Tickets due a hand-off at server time ``now`` (oldest first)."""
    live_claim = ("(s.claimed_by IS NOT NULL AND "
                  "datetime(s.claim_active_at, '+' || s.claim_lease || ' seconds') > :now)")
    rows = conn.execute(text(
        f"SELECT t.id FROM tickets t LEFT JOIN ticket_state s ON s.ticket_id = t.id "
        f"WHERE {STATUS} != 'closed' AND NOT {live_claim} AND t.first_in_at IS NOT NULL "
        f"AND t.first_in_at >= :since AND t.first_in_at <= :due "
        f"AND NOT EXISTS (SELECT 1 FROM rota_handoffs h WHERE h.ticket_id = t.id) "
        f"ORDER BY t.first_in_at, t.id LIMIT :limit"),
        {"now": db_time(now), "since": db_time(since),
         "due": db_time(now - timedelta(minutes=minutes)), "limit": limit}).scalars().all()
    return [str(r) for r in rows]


def next_due(conn: Connection, now: datetime, minutes: int, since: datetime) -> datetime | None:
    """When the next ticket not yet due will be (its arrival plus ``minutes``), if any."""
    live_claim = ("(s.claimed_by IS NOT NULL AND "
                  "datetime(s.claim_active_at, '+' || s.claim_lease || ' seconds') > :now)")
    value = conn.execute(text(
        f"SELECT min(t.first_in_at) FROM tickets t LEFT JOIN ticket_state s "
        f"ON s.ticket_id = t.id WHERE {STATUS} != 'closed' AND NOT {live_claim} "
        f"AND t.first_in_at > :due AND t.first_in_at >= :since "
        f"AND NOT EXISTS (SELECT 1 FROM rota_handoffs h WHERE h.ticket_id = t.id)"),
        {"now": db_time(now), "since": db_time(since),
         "due": db_time(now - timedelta(minutes=minutes))}).scalar()
    first = parse_db_time(value)
    return first + timedelta(minutes=minutes) if first is not None else None
