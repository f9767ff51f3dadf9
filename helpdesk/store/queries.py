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

VIEWS = ("open", "unclaimed", "mine", "vip", "pending", "closed", "mentions", "snoozed",
         "spam", "all")
_TAG_TERM = re.compile(r"(?<!\S)tag:(\S+)", re.IGNORECASE)
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
    # Only tickets with every one of these tags (normalised, as stored); ``tag:x`` in
    # ``search`` adds to them.
    tags: tuple[str, ...] = ()


def split_search(search: str) -> tuple[str, tuple[str, ...]]:
    """(the words to search for, the tags named as ``tag:x``)."""
    from helpdesk.team.ticket_marks import normalise_tag

    tags = tuple(t for t in (normalise_tag(m) for m in _TAG_TERM.findall(search or "")) if t)
    return _TAG_TERM.sub(" ", search or "").strip(), tags


# A customer writing after a ticket was closed (or set pending) reopens it, on every
# desktop alike and without an event: last_in_at is the customer's latest message
# (auto-replies, bounces and survey answers excluded).
STATUS = ("(CASE WHEN s.status IN ('closed', 'pending') "
          "AND julianday(t.last_in_at) > julianday(s.status_at) "
          "THEN 'open' ELSE coalesce(s.status, 'open') END)")
# The counts' pass over every ticket reads only the ticket and its state (see
# count_views; the VIP customers are a set, probed: a join per ticket doubles the pass).
COUNT_FROM = "FROM tickets t LEFT JOIN ticket_state s ON s.ticket_id = t.id"
# Lists and rows also read the customer, the assignee and the snooze.
FROM = (COUNT_FROM + " LEFT JOIN customers c ON c.email = t.customer_email "
        "LEFT JOIN ticket_work w ON w.ticket_id = t.id")
# The VIP customers, a set read once per query.
VIP_EMAILS = "SELECT email FROM customers WHERE vip = 1"
# A snooze holds until its time (server clock) or until the customer writes after it.
SNOOZED = ("(w.snoozed_until IS NOT NULL AND w.snoozed_until > :now AND "
           "(t.last_in_at IS NULL OR julianday(t.last_in_at) <= julianday(w.snoozed_at)))")
# Each teamwork set below is read once per query (SQLite keeps a non-correlated IN list)
# and probed per ticket: never NULL, and cheap while the set is small.
ASSIGNED = "t.id IN (SELECT ticket_id FROM ticket_work WHERE assignee = :agent)"
# The customer, or the customer's domain, is blocked (each list read once per query).
SPAM = ("(t.customer_email IS NOT NULL AND (t.customer_email IN (SELECT pattern FROM "
        "spam_blocks WHERE active AND kind = 'address') OR "
        "substr(t.customer_email, instr(t.customer_email, '@') + 1) IN "
        "(SELECT pattern FROM spam_blocks WHERE active AND kind = 'domain')))")
MENTIONED = "t.id IN (SELECT ticket_id FROM ticket_mentions WHERE agent = :agent)"


# A claim is live while server time is before its last activity plus its own lease.
LIVE_CLAIM = ("(s.claimed_by IS NOT NULL AND "
              "datetime(s.claim_active_at, '+' || s.claim_lease || ' seconds') > :now)")
# What the views are made of: per ticket, each of these facts (every one NULL-safe, so
# a list's WHERE and the counts' one pass agree).
FLAGS: dict[str, str] = {
    "st": STATUS,
    "live": LIVE_CLAIM,
    "held": f"(s.claimed_by IS NOT NULL AND s.claimed_by = :agent AND {LIVE_CLAIM})",
    "assigned": ASSIGNED,
    "vip": f"(t.customer_email IS NOT NULL AND t.customer_email IN ({VIP_EMAILS}))",
    "mentioned": MENTIONED,
    "snoozed": SNOOZED,
    "spam": SPAM,
}
# Each view in terms of the flags. Open views leave out snoozed tickets (until they wake)
# and spam; only the spam view (and all) shows spam. Each rule is (gate, rest): a list
# tests the gate first, inside a CASE (SQLite would otherwise test the teamwork sets,
# which need only ``t``, on every ticket before joining its state, and a view that lists
# few, such as Pending, would pay for it); a count needs no CASE (AND stops early there).
_AWAKE = "NOT {snoozed} AND NOT {spam}"
RULES: dict[str, tuple[str, str]] = {
    "open": ("{st} = 'open'", _AWAKE),
    "unclaimed": ("{st} != 'closed' AND NOT {live}", _AWAKE),
    "mine": ("{st} != 'closed' AND ({held} OR {assigned})", _AWAKE),
    "vip": ("{st} != 'closed' AND {vip}", _AWAKE),
    "pending": ("{st} = 'pending'", _AWAKE),
    "closed": ("{st} = 'closed'", "NOT {spam}"),
    "mentions": ("", "{mentioned} AND NOT {spam}"),
    "snoozed": ("", "{snoozed} AND {st} != 'closed' AND NOT {spam}"),
    "spam": ("", "{spam}"),
    "all": ("", "1 = 1"),
}


def _rule(view: str, gated: bool) -> str:
    gate, rest = RULES.get(view, ("", "1 = 1"))
    if not gate:
        return rest
    return f"(CASE WHEN {gate} THEN {rest} ELSE 0 END)" if gated else f"{gate} AND {rest}"
# The tickets of blocked senders, from the two lists read beforehand (:spam_addresses,
# :spam_domains, JSON; see spam_lists): by address from ix_tickets_customer_email, by
# domain from the expression index of migration 0015 (named: with a few domains in the
# store SQLite's estimate prefers reading every ticket).
SPAM_IDS = ("SELECT id FROM tickets INDEXED BY ix_tickets_customer_email WHERE customer_email "
            "IN (SELECT value FROM json_each(:spam_addresses)) UNION "
            "SELECT id FROM tickets INDEXED BY ix_tickets_customer_domain WHERE "
            "substr(customer_email, instr(customer_email, '@') + 1) IN "
            "(SELECT value FROM json_each(:spam_domains))")
# The views that list few tickets, each with the set of ticket ids (distinct, as ``id``)
# it starts from: always a superset of the view (its rule still decides), read first and
# sorted, rather than walking the whole list order until a page is full (a walk steps
# over every ticket when the view holds less than a page). Mine is found from who holds
# and who is assigned what (two indexes).
DRIVERS: dict[str, str] = {
    "mine": ("SELECT ticket_id AS id FROM ticket_state WHERE claimed_by = :agent "
             "UNION SELECT ticket_id FROM ticket_work WHERE assignee = :agent"),
    "mentions": "SELECT ticket_id AS id FROM ticket_mentions WHERE agent = :agent",
    "snoozed": "SELECT ticket_id AS id FROM ticket_work WHERE snoozed_until > :now",
    "spam": SPAM_IDS,
    "pending": "SELECT ticket_id AS id FROM ticket_state WHERE status = 'pending'",
    "vip": f"SELECT id FROM tickets WHERE customer_email IN ({VIP_EMAILS})",
}


def driven(driver: str) -> str:
    """The clause that makes SQLite start from ``driver``'s ids (a list then orders them
    by a "+" column, which no index gives: see _order). Not a CROSS JOIN from the set:
    with a join SQLite may first build a Bloom filter over every ticket."""
    return f"t.id IN ({driver})"


# Counted from their sets (see count_views); pending is counted in the pass over every
# ticket, which reads its status anyway.
SPARSE_VIEWS = ("mine", "mentions", "snoozed", "spam")


def _view_clause(q: TicketQuery, params: dict[str, Any],
                 absent: frozenset[str] = frozenset(), gated: bool = True) -> str:
    """The WHERE clause of ``q``'s view; ``absent``: flags known to be false for every
    ticket right now (see :func:`absent_flags`), left out of the work; ``gated``: for a
    list (see RULES)."""
    params["now"] = (q.now or datetime.min).isoformat(sep=" ", timespec="microseconds")
    params["agent"] = q.agent
    flags = {k: "0" if k in absent else sql for k, sql in FLAGS.items()}
    return _rule(q.view, gated).format(**flags)


def spam_lists(conn: Connection, params: dict[str, Any]) -> None:
    """Put the blocked addresses and domains into ``params`` (for SPAM_IDS), once."""
    if "spam_addresses" in params:
        return
    rows = conn.execute(text("SELECT kind, pattern FROM spam_blocks WHERE active")).all()
    params["spam_addresses"] = json.dumps([p for k, p in rows if k == "address"])
    params["spam_domains"] = json.dumps([p for k, p in rows if k == "domain"])


def _driver(conn: Connection, view: str, params: dict[str, Any]) -> str | None:
    """The set ``view`` starts from (DRIVERS), its parameters put into ``params``."""
    if view == "spam":
        spam_lists(conn, params)
    return DRIVERS.get(view)


def absent_flags(conn: Connection, q: TicketQuery) -> frozenset[str]:
    """The teamwork flags no ticket can have now (no sender blocked, nothing snoozed, no
    mention of this agent owed, nothing assigned to them): most desks most of the time,
    and then a view or a count costs what it did before teamwork."""
    row = conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM spam_blocks WHERE active), "
        "EXISTS (SELECT 1 FROM ticket_work WHERE snoozed_until > :now), "
        "EXISTS (SELECT 1 FROM ticket_mentions WHERE agent = :agent), "
        "EXISTS (SELECT 1 FROM ticket_work WHERE assignee = :agent)"),
        {"now": (q.now or datetime.min).isoformat(sep=" ", timespec="microseconds"),
         "agent": q.agent}).one()
    return frozenset(name for name, present in zip(
        ("spam", "snoozed", "mentioned", "assigned"), row, strict=True) if not present)


def _tag_clauses(tags: tuple[str, ...], params: dict[str, Any]) -> list[str]:
    out = []
    for i, tag in enumerate(dict.fromkeys(tags)):
        params[f"tag{i}"] = tag
        out.append(f"t.id IN (SELECT ticket_id FROM ticket_tags WHERE tag = :tag{i})")
    return out


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


def _order(q: TicketQuery, by_tier: bool = False, sorted_set: bool = False) -> str:
    column = {"updated": "t.updated_at", "created": "t.created_at",
              "waiting": "coalesce(t.waiting_since, '9999')"}.get(q.sort, "t.updated_at")
    if sorted_set:  # "+": no index gives this order, so SQLite reads the set, then sorts
        column = "+" + column
    # Waiting longest first is the *earliest* waiting_since first.
    newest_first = q.descending != (q.sort == "waiting")
    order = f"{column} {'DESC' if newest_first else 'ASC'}, t.id"
    if (q.vip_first or by_tier) and q.tier_rank:
        order = _tier_rank_sql(q.tier_rank) + ", " + order
    if q.vip_first:
        order = "coalesce(c.vip, 0) DESC, " + order
    return order


def _ids_sql(q: TicketQuery, where: list[str], limit: int | None, by_tier: bool = False,
             sorted_set: bool = False) -> str:
    sql = (f"SELECT t.id {FROM} WHERE {' AND '.join(where)} "
           f"ORDER BY {_order(q, by_tier, sorted_set)}")
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
VIP_TICKETS = f"t.customer_email IN ({VIP_EMAILS})"
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
    words, tags = split_search(q.search)
    where = [_view_clause(q, params, absent_flags(conn, q)), *extra,
             *_tag_clauses(q.tags + tags, params)]
    driver = _driver(conn, q.view, params)
    if driver:
        where.insert(0, driven(driver))
    match = fts_query(words)
    if match:
        params["match"] = match
        if in_order or driver:  # few tickets to check: probe each against the matches
            where.append(MATCH_IN_ORDER)
        else:
            # Where an index gives the list order, a first page walks it; other orders
            # sort every hit.
            if limit and _walkable(q):
                ids = _first_page_walking(conn, q, where, params, limit, stop)
                if ids is not None:
                    return ids
            where.append(MATCH_FROM_INDEX)
    sql = _ids_sql(q, where, limit, by_tier, sorted_set=driver is not None)
    if stop is _never:
        return [r[0] for r in conn.execute(text(sql), params)]
    ids = _stoppable_ids(conn, sql, params, stop)
    if ids is None:
        raise QueryCancelled
    return ids


# Flags true for few tickets but tested by most views: counts take them out of the
# pass over every ticket and patch the few tickets that have them (see count_views).
RARE_FLAGS = frozenset(("spam", "snoozed"))


def _sums(q: TicketQuery, views: tuple[str, ...], params: dict[str, Any],
          absent: frozenset[str]) -> list[str]:
    clauses = [_view_clause(TicketQuery(view=view, agent=q.agent, now=q.now), params, absent,
                            gated=False) for view in views]
    return [f"coalesce(sum(CASE WHEN {c} THEN 1 ELSE 0 END), 0)" for c in clauses]


def count_views(conn: Connection, q: TicketQuery) -> dict[str, int]:
    """Every view's count: the views of few tickets each from its set (DRIVERS), the
    others in one pass over the tickets.

    Spam and snoozed tickets are few, but nearly every view asks about them: the pass
    counts as if no ticket were either, then a second pass over just those tickets
    takes back what it counted for them and adds what their true flags give. Exact for
    any view, at about the cost of counting without teamwork.
    """
    params: dict[str, Any] = {}
    spam_lists(conn, params)  # for the sets of the patch pass and of the Spam view
    absent = absent_flags(conn, q)
    rare = RARE_FLAGS - absent
    dense = tuple(v for v in VIEWS if v not in SPARSE_VIEWS)
    counts: dict[str, int] = {}
    if dense:
        row = conn.execute(text(  # every rare flag taken as false: no snooze read
            f"SELECT {', '.join(_sums(q, dense, params, absent | RARE_FLAGS))} {COUNT_FROM}"),
            params).one()
        counts = {view: int(value) for view, value in zip(dense, row, strict=True)}
    if rare and dense:
        # The tickets that may have a rare flag, found from the sets (a superset: for a
        # ticket without the flag both sums agree), not by testing every ticket.
        few = " UNION ".join(DRIVERS[f] for f in sorted(rare))
        sums = _sums(q, dense, params, absent) + _sums(q, dense, params, absent | rare)
        patch = conn.execute(text(f"SELECT {', '.join(sums)} {FROM} WHERE {driven(few)}"),
                             params).one()
        for i, view in enumerate(dense):
            counts[view] += int(patch[i]) - int(patch[len(dense) + i])
    for view in (v for v in VIEWS if v in SPARSE_VIEWS):
        clause = _view_clause(replace(q, view=view), params, absent, gated=False)
        counts[view] = int(conn.execute(text(
            f"SELECT count(*) {FROM} WHERE {driven(DRIVERS[view])} AND {clause}"),
            params).scalar() or 0)
    return {view: counts[view] for view in VIEWS}


TICKET_COLUMNS = (
    # A sender who is no customer (a mailing list, a newsletter) keeps the display name
    # its message header gives, as the conversation shows it.
    "t.id, t.subject, t.customer_email, coalesce(c.name, (SELECT m.from_name FROM messages m "
    "WHERE m.ticket_id = t.id AND m.from_addr = t.customer_email AND m.from_name != '' "
    "ORDER BY m.received_at LIMIT 1)) AS customer_name, c.preferred_name, "
    f"{STATUS} AS status, s.claimed_by, s.claimed_at, s.claim_active_at, s.claim_lease, "
    "s.claim_event, coalesce(c.vip, 0) AS vip, c.vip_tier, "
    "coalesce(c.white_glove, 0) AS white_glove, t.message_count, t.created_at, t.updated_at, "
    "t.snippet, t.waiting_since, s.closed_at, t.first_in_at, t.first_out_at, t.last_in_at, "
    "w.assignee, w.snoozed_until, w.snoozed_at, "
    "(SELECT json_group_array(tag) FROM (SELECT tag FROM ticket_tags g WHERE g.ticket_id = t.id "
    f"ORDER BY tag)) AS tags, {SPAM} AS spam")


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


def tag_counts(conn: Connection) -> dict[str, int]:
    """Every tag in use and how many tickets carry it (spam left out), by name."""
    blocked = conn.execute(text("SELECT EXISTS (SELECT 1 FROM spam_blocks WHERE active)")
                           ).scalar()
    if not blocked:  # from the tag index alone
        return {str(r[0]): int(r[1]) for r in conn.execute(text(
            "SELECT tag, count(*) FROM ticket_tags GROUP BY tag ORDER BY tag"))}
    # Every tag's count from the index, less the few spam tickets' tags.
    counts = {str(r[0]): int(r[1]) for r in conn.execute(text(
        "SELECT tag, count(*) FROM ticket_tags GROUP BY tag ORDER BY tag"))}
    params: dict[str, Any] = {}
    spam_lists(conn, params)
    for tag, n in conn.execute(text(
            f"SELECT g.tag, count(*) FROM ({SPAM_IDS}) d CROSS JOIN ticket_tags g "
            "ON g.ticket_id = d.id GROUP BY g.tag"), params):
        counts[str(tag)] -= int(n)
    return {tag: n for tag, n in counts.items() if n > 0}


def ticket_notes(conn: Connection, ticket_id: str) -> list[dict[str, Any]]:
    """The ticket's internal notes, in log order."""
    return [{"id": r[0], "agent": r[1], "text": r[2], "at": r[3],
             "mentions": json.loads(r[4] or "[]")} for r in conn.execute(text(
                 "SELECT event_id, agent, text, at, mentions FROM ticket_notes "
                 "WHERE ticket_id = :t ORDER BY uid"), {"t": ticket_id})]


def customer_ticket_ids(conn: Connection, email: str) -> list[str]:
    return [r[0] for r in conn.execute(text(
        "SELECT id FROM tickets WHERE customer_email = :e ORDER BY created_at DESC"),
        {"e": email})]
