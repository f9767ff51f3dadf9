"""Automatic hand-off of a new unclaimed ticket to the person on duty.

Two halves:

- Which tickets are due (:func:`due_handoffs`): open, held by nobody, not handed off
  yet, whose first customer message arrived (server INTERNALDATE) after the hand-off
  setting was made and at least ``handoff_minutes`` before the server's clock. Each
  desktop asks this after folding the log and publishes a ``rota-handoff`` event per
  ticket; the fold (:mod:`helpdesk.rota.fold`) keeps the first per ticket in log order,
  so however many desktops publish at once, every replica records one hand-off, to one
  person.

- What the winning hand-off does (:func:`apply_assignment`): it assigns the ticket to
  that person through teamwork's assignment register (helpdesk/team/ticket_marks.py),
  inside the same fold transaction, unless someone assigned it earlier in log order. The
  rota also keeps its own record (``rota_handoffs``, read by :func:`assigned_to`). It is
  called only from the fold, in log order, once per ticket, with the fold's cursor.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from helpdesk.store.engine import db_time, parse_db_time
from helpdesk.store.queries import STATUS


def apply_assignment(cur: sqlite3.Cursor, ticket: str, agent: str, at: datetime,
                     uid: int) -> bool:
    """Assign ``ticket`` to ``agent`` as of server time ``at``, log position ``uid``:
    teamwork's assignment register (helpdesk/team/ticket_marks.py), in the fold's
    transaction, so anyone can still step in or reassign.

    An assignment someone made earlier in log order stands (a person's choice beats the
    rota). Deterministic (no clocks, no mail data): every replica decides alike. Returns
    whether the ticket was assigned (the assignee is then told, like any assignment).
    """
    cur.execute("INSERT OR IGNORE INTO ticket_work (ticket_id) VALUES (?)", (ticket,))
    cur.execute("UPDATE ticket_work SET assignee = ?, assigned_by = 'rota', assigned_at = ?, "
                "assign_stamp = ? WHERE ticket_id = ? AND assignee IS NULL AND assign_stamp < ?",
                (agent, db_time(at), uid, ticket, uid))
    return cur.rowcount > 0


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
        f"AND NOT EXISTS (SELECT 1 FROM ticket_work w WHERE w.ticket_id = t.id "
        f"AND w.assignee IS NOT NULL) "
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
