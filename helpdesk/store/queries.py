"""Read-side queries: ticket lists by view and search, one ticket with messages.

Sorting and filtering happen in SQL so lists stay fast at 100,000 tickets;
list callers get ids first and fetch rows for the ids they show.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

VIEWS = ("open", "unclaimed", "mine", "vip", "pending", "closed", "all")
_TOKEN_RE = re.compile(r"\w[\w'@.+-]*", re.UNICODE)


def fts_query(search: str) -> str | None:
    """Turn what a person types into a safe FTS5 query (every word, as a prefix)."""
    words = _TOKEN_RE.findall(search or "")
    if not words:
        return None
    return " AND ".join('"' + w.replace('"', "") + '"*' for w in words[:12])


@dataclass(frozen=True)
class TicketQuery:
    view: str = "open"
    search: str = ""
    agent: str = ""
    vip_first: bool = False
    sort: str = "updated"  # updated | created | waiting
    descending: bool = True
    now: datetime | None = None  # server-time estimate, for lease expiry


# A customer writing after a ticket was closed (or set pending) reopens it, on every
# desktop alike and without an event: last_in_at is the customer's latest message
# (auto-replies, bounces and survey answers excluded).
STATUS = ("(CASE WHEN s.status IN ('closed', 'pending') "
          "AND julianday(t.last_in_at) > julianday(s.status_at) "
          "THEN 'open' ELSE coalesce(s.status, 'open') END)")
FROM = ("FROM tickets t LEFT JOIN ticket_state s ON s.ticket_id = t.id "
        "LEFT JOIN customers c ON c.email = t.customer_email")


def _view_clause(q: TicketQuery, params: dict[str, Any]) -> str:
    # A claim is live while server time is before its last activity plus its own lease.
    live_claim = ("(s.claimed_by IS NOT NULL AND "
                  "datetime(s.claim_active_at, '+' || s.claim_lease || ' seconds') > :now)")
    params["now"] = (q.now or datetime.min).isoformat(sep=" ")
    if q.view in ("open", "pending", "closed"):
        params["status"] = q.view
        return f"{STATUS} = :status"
    if q.view == "unclaimed":
        return f"{STATUS} != 'closed' AND NOT {live_claim}"
    if q.view == "mine":
        params["agent"] = q.agent
        return f"{STATUS} != 'closed' AND s.claimed_by = :agent AND {live_claim}"
    if q.view == "vip":
        return f"{STATUS} != 'closed' AND c.vip = 1"
    return "1 = 1"


def ticket_ids(conn: Connection, q: TicketQuery, limit: int | None = None) -> list[str]:
    params: dict[str, Any] = {}
    where = [_view_clause(q, params)]
    match = fts_query(q.search)
    if match:
        params["match"] = match
        where.append("t.id IN (SELECT ticket_id FROM messages_fts WHERE messages_fts "
                     "MATCH :match)")
    column = {"updated": "t.updated_at", "created": "t.created_at",
              "waiting": "coalesce(t.waiting_since, '9999')"}.get(q.sort, "t.updated_at")
    order = f"{column} {'DESC' if q.descending else 'ASC'}, t.id"
    if q.vip_first:
        order = "coalesce(c.vip, 0) DESC, " + order
    sql = f"SELECT t.id {FROM} WHERE {' AND '.join(where)} ORDER BY {order}"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return [r[0] for r in conn.execute(text(sql), params)]


def count_views(conn: Connection, q: TicketQuery) -> dict[str, int]:
    """Every view's count in one pass over the tickets."""
    params: dict[str, Any] = {}
    sums = []
    for view in VIEWS:
        view_params: dict[str, Any] = {}
        clause = _view_clause(TicketQuery(view=view, agent=q.agent, now=q.now), view_params)
        for key, value in view_params.items():  # status values differ per view: rename
            clause = clause.replace(f":{key}", f":{view}_{key}")
            params[f"{view}_{key}"] = value
        sums.append(f"coalesce(sum(CASE WHEN {clause} THEN 1 ELSE 0 END), 0)")
    row = conn.execute(text(f"SELECT {', '.join(sums)} {FROM}"), params).one()
    return {view: int(value) for view, value in zip(VIEWS, row, strict=True)}


TICKET_COLUMNS = (
    "t.id, t.subject, t.customer_email, c.name AS customer_name, c.preferred_name, "
    f"{STATUS} AS status, s.claimed_by, s.claimed_at, s.claim_active_at, s.claim_lease, "
    "s.claim_event, coalesce(c.vip, 0) AS vip, c.vip_tier, "
    "coalesce(c.white_glove, 0) AS white_glove, t.message_count, t.created_at, t.updated_at, "
    "t.snippet, t.waiting_since, s.closed_at, t.first_in_at, t.first_out_at")


def ticket_rows(conn: Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Rows for ``ids`` (any order), keyed by id."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 500):
        # One statement text for any chunk length (no compiled-cache entry per length).
        chunk = ids[i:i + 500]
        for r in conn.execute(text(
                f"SELECT {TICKET_COLUMNS} {FROM} WHERE t.id IN "
                f"(SELECT value FROM json_each(:ids))"), {"ids": json.dumps(chunk)}).mappings():
            out[r["id"]] = dict(r)
    return out


def ticket_messages(conn: Connection, ticket_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(text(
        "SELECT id, message_id, subject, from_addr, from_name, to_addrs, cc_addrs, reply_to, "
        'date_header, received_at, direction, auto_kind, text, html, attachments, defects, '
        '"references", in_reply_to FROM messages WHERE ticket_id = :t ORDER BY received_at, id'),
        {"t": ticket_id}).mappings().all()
    out = []
    for r in rows:
        d = dict(r)
        d["to_addrs"] = json.loads(d["to_addrs"] or "[]")
        d["cc_addrs"] = json.loads(d["cc_addrs"] or "[]")
        d["attachments"] = json.loads(d["attachments"] or "[]")
        d["defects"] = json.loads(d["defects"]) if d["defects"] else []
        out.append(d)
    return out


def customer_ticket_ids(conn: Connection, email: str) -> list[str]:
    return [r[0] for r in conn.execute(text(
        "SELECT id FROM tickets WHERE customer_email = :e ORDER BY created_at DESC"),
        {"e": email})]
