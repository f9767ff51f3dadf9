"""Read-side queries: ticket lists by view and search, one ticket with messages.

Sorting and filtering happen in SQL so lists stay fast at 100,000 tickets;
list callers get ids first and fetch rows for the ids they show.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from helpdesk.store.engine import raw_cursor

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
    # Most relevant first: latest activity, newest ticket, or the customer who has
    # waited longest (the oldest unanswered message; tickets nobody waits on last).
    descending: bool = True
    now: datetime | None = None  # server-time estimate, for lease expiry
    # VIP tiers highest first (the team's order, helpdesk.team_settings): with vip_first,
    # VIP tickets sort by tier rank, then by the list order.
    tier_rank: tuple[str, ...] = ()


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


# "The ticket has a message that matches", in two shapes that select the same tickets.
# From the index: the matching messages, then their tickets, joined on messages.id (an
# integer key; reading the FTS table's unindexed ticket_id instead costs a content-table
# lookup per matching message). Cost grows with the matches, first page or not: ~3 us
# each, so ~200 ms for a word used in most of 100,000 tickets.
MATCH_FROM_INDEX = ("t.id IN (SELECT m.ticket_id FROM messages_fts f CROSS JOIN messages m "
                    "ON m.id = f.rowid WHERE messages_fts MATCH :match)")
# In list order: the matching message ids as a set, probed ticket by ticket while walking
# ix_tickets_updated_at, so a first page stops at its last hit. Cost grows with the length
# of the walk: tiny when hits are dense among recent tickets, the whole list when not.
MATCH_IN_ORDER = ("EXISTS (SELECT 1 FROM messages m WHERE m.ticket_id = t.id AND m.id IN "
                  "(SELECT rowid FROM messages_fts WHERE messages_fts MATCH :match))")
# A first page walks when the search matches at least WALK_FROM messages (below that,
# starting from the matches takes a few ms), with a budget of SQLite VM steps per match
# (matches counted up to COUNT_CAP): starting from the matches takes ~15-35 steps each, a
# walk ~20-30 per ticket, so a walk that runs out (hits only in old tickets, or few in the
# view) wastes about half of what the other shape then costs.
WALK_FROM = 2000
COUNT_CAP = 25_000
WALK_STEPS_PER_MATCH = 20
_STEPS_PER_CHECK = 1000
# Orders with an index to walk (ix_tickets_updated_at, ix_tickets_created_at and, see
# migration 0005, ix_tickets_waiting). Waiting shortest first puts every ticket nobody
# waits on first, which a walk must step over: there the other shape is faster.
def _walkable(q: TicketQuery) -> bool:
    return not q.vip_first and (q.sort in ("updated", "created")
                                or (q.sort == "waiting" and q.descending))


def _tier_rank_sql(tiers: tuple[str, ...]) -> str:
    """A CASE giving each tier its rank (team data: quoted as SQL string literals)."""
    whens = " ".join(f"WHEN '{t.casefold().replace(chr(39), chr(39) * 2)}' THEN {i}"
                     for i, t in enumerate(tiers[:50]))
    return f"(CASE lower(coalesce(c.vip_tier, '')) {whens} ELSE {len(tiers[:50])} END)"


def _order(q: TicketQuery, by_tier: bool = False) -> str:
    column = {"updated": "t.updated_at", "created": "t.created_at",
              "waiting": "coalesce(t.waiting_since, '9999')"}.get(q.sort, "t.updated_at")
    # Waiting longest first is the *earliest* waiting_since first.
    newest_first = q.descending != (q.sort == "waiting")
    order = f"{column} {'DESC' if newest_first else 'ASC'}, t.id"
    if (q.vip_first or by_tier) and q.tier_rank:
        order = _tier_rank_sql(q.tier_rank) + ", " + order
    if q.vip_first:
        order = "coalesce(c.vip, 0) DESC, " + order
    return order


def _ids_sql(q: TicketQuery, where: list[str], limit: int | None, by_tier: bool = False) -> str:
    sql = f"SELECT t.id {FROM} WHERE {' AND '.join(where)} ORDER BY {_order(q, by_tier)}"
    return f"{sql} LIMIT {int(limit)}" if limit else sql


class QueryCancelled(Exception):
    """A list query stopped early because its answer is no longer wanted."""


def _never() -> bool:
    return False


def _stoppable_ids(conn: Connection, sql: str, params: dict[str, Any],
                   stop: Callable[[], bool]) -> list[str] | None:
    """Ids from ``sql``, asking ``stop`` every few thousand SQLite steps; None once it
    answered True (SQLite interrupts the statement)."""
    cur = raw_cursor(conn)
    cur.connection.set_progress_handler(stop, _STEPS_PER_CHECK)
    try:
        return [r[0] for r in cur.execute(sql, params)]
    except sqlite3.OperationalError:
        if stop():
            return None
        raise
    finally:
        cur.connection.set_progress_handler(None, 0)
        cur.close()


def _first_page_walking(conn: Connection, q: TicketQuery, where: list[str],
                        params: dict[str, Any], limit: int,
                        cancelled: Callable[[], bool] = _never) -> list[str] | None:
    """The first ``limit`` hits found by walking the list order, or None when a walk is
    not worth trying or runs out of budget."""
    matches = int(conn.execute(text(
        "SELECT count(*) FROM (SELECT 1 FROM messages_fts WHERE messages_fts MATCH :match "
        "LIMIT :cap)"), {"match": params["match"], "cap": COUNT_CAP}).scalar() or 0)
    if matches < WALK_FROM:
        return None
    checks = matches * WALK_STEPS_PER_MATCH // _STEPS_PER_CHECK
    seen = 0

    def over_budget() -> bool:
        nonlocal seen
        seen += 1
        return seen > checks or cancelled()

    ids = _stoppable_ids(conn, _ids_sql(q, [*where, MATCH_IN_ORDER], limit), params,
                         over_budget)
    if ids is None and cancelled():
        raise QueryCancelled
    return ids


# VIP first, as two lists: the VIP customers' tickets (few; found from the customers,
# each probed for a search match), then everyone else's (the usual plans, list order
# walks included). Same ids in the same order as sorting every ticket by VIP first.
VIP_TICKETS = "t.customer_email IN (SELECT email FROM customers WHERE vip = 1)"
NOT_VIP = "coalesce(c.vip, 0) = 0"


def ticket_ids(conn: Connection, q: TicketQuery, limit: int | None = None,
               cancelled: Callable[[], bool] | None = None) -> list[str]:
    """Ids of a view's tickets, searched and sorted in SQL (``limit``: the first page).

    ``cancelled`` is asked every few thousand SQLite steps; once it answers True the
    query stops and :class:`QueryCancelled` is raised (a list read superseded by typing).
    """
    stop = cancelled or _never
    if q.vip_first and limit:
        plain = replace(q, vip_first=False)
        vips = _ids(conn, plain, [VIP_TICKETS], limit, stop, in_order=True, by_tier=True)
        if len(vips) >= limit:
            return vips
        return vips + _ids(conn, plain, [NOT_VIP], limit - len(vips), stop)
    return _ids(conn, q, [], limit, stop)


def _ids(conn: Connection, q: TicketQuery, extra: list[str], limit: int | None,
         stop: Callable[[], bool], in_order: bool = False, by_tier: bool = False) -> list[str]:
    params: dict[str, Any] = {}
    where = [_view_clause(q, params), *extra]
    match = fts_query(q.search)
    if match:
        params["match"] = match
        if in_order:  # few tickets to check: probe each against the set of matches
            where.append(MATCH_IN_ORDER)
        else:
            # Where an index gives the list order, a first page walks it; other orders
            # sort every hit.
            if limit and _walkable(q):
                ids = _first_page_walking(conn, q, where, params, limit, stop)
                if ids is not None:
                    return ids
            where.append(MATCH_FROM_INDEX)
    sql = _ids_sql(q, where, limit, by_tier)
    if stop is _never:
        return [r[0] for r in conn.execute(text(sql), params)]
    ids = _stoppable_ids(conn, sql, params, stop)
    if ids is None:
        raise QueryCancelled
    return ids


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
    # A sender who is no customer (a mailing list, a newsletter) keeps the display name
    # its message header gives, as the conversation shows it.
    "t.id, t.subject, t.customer_email, coalesce(c.name, (SELECT m.from_name FROM messages m "
    "WHERE m.ticket_id = t.id AND m.from_addr = t.customer_email AND m.from_name != '' "
    "ORDER BY m.received_at LIMIT 1)) AS customer_name, c.preferred_name, "
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
        '"references", in_reply_to FROM messages WHERE ticket_id = :t '
        "ORDER BY received_at, date_header, dedup_key"),
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
