"""Ticket aliases: which ticket an id names now, and how a ticket's state moves on a merge.

Two layers of aliases, both identical on every desktop:

- ``thread_aliases`` (derived from the messages alone, helpdesk/mail/threads.py): a
  message that names a message of another thread links the two; every id of a linked
  group points straight at the group's survivor.
- ``ticket_merges`` (team state, folded from ``merge`` events in log order,
  helpdesk/team/merges.py): ``merge TICKET INTO``.

:func:`canonical` follows both, alternately, to the surviving ticket. Every place a
ticket id enters the core from outside (a CLI or GUI argument, a subject token, a team
event's ticket, ``show``) resolves through it.

:data:`TICKET_KEYED_TABLES` lists every table keyed by a ticket id, each with its merge
policy; :func:`move_state` applies them when a ticket goes into another. Adding a table
is one line there (and, for a new event type whose subject is a ticket, one word in
:data:`TICKET_EVENT_TYPES`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection

from helpdesk.store.engine import parse_db_time, raw_cursor

# Event types whose subject is a ticket id: the fold resolves it through canonical()
# before the handler runs (helpdesk/team/fold.py), so a merged-away id acts on INTO.
TICKET_EVENT_TYPES: set[str] = {
    "claim", "renew", "release", "takeover", "status", "reply-sent", "survey-sent", "score",
    "cared", "forwarded", "merge",
    "rota-handoff",  # helpdesk.rota
    "ticket-note", "assign", "snooze", "tag",  # helpdesk.team.ticket_notes, ticket_marks
}

# How far canonical() follows aliases at most: far more than any real chain; a longer one
# is hostile and ends where the walk stopped.
MAX_HOPS = 64

Policy = Literal["repoint", "union", "newest", "survivor", "ticket_state", "drafts",
                 "registers"]


@dataclass(frozen=True)
class Keyed:
    """A table with a column holding a ticket id, and what a merge does with its rows.

    - ``repoint``: rows simply move (``UPDATE ... SET column = INTO``);
    - ``union``: a set keyed by (ticket, something): rows move, and a row INTO already
      has (same key) is a duplicate and goes;
    - ``survivor``: one row per ticket: INTO keeps its own; the merged one's moves only
      when INTO has none (else it stays under the old id, unseen but not lost);
    - ``ticket_state``: status and claim (see :func:`_merge_ticket_state`);
    - ``drafts``: ``survivor`` for the draft and its files together;
    - ``newest``: a set keyed by (ticket, ``key``): of two rows with the same key the one
      with the higher ``stamp`` (its event's UID: the later in log order) is kept;
    - ``registers``: one row per ticket holding last-writer-wins registers, each a group
      of columns with its own stamp (``groups``): per register the higher stamp wins.
    """

    table: str
    column: str
    policy: Policy
    where: str = ""  # an extra SQL condition on the rows that move
    key: str = ""  # ``newest``: the column that, with the ticket, identifies a row
    stamp: str = ""  # ``newest``: the column ordering two rows with the same key
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()  # ``registers``: (stamp, columns)


TICKET_KEYED_TABLES: list[Keyed] = [
    Keyed("ticket_state", "ticket_id", "ticket_state"),
    Keyed("messages", "ticket_id", "repoint"),
    Keyed("outbox", "ticket_id", "repoint"),  # queued and past mail follow the ticket
    Keyed("drafts", "ticket_id", "drafts"),
    Keyed("cared", "ticket_id", "repoint"),
    Keyed("forwards", "ticket_id", "repoint"),
    Keyed("surveys", "ticket_id", "repoint"),
    Keyed("scores", "ticket_id", "repoint"),
    Keyed("card_customers", "ticket_id", "repoint"),
    Keyed("rota_handoffs", "ticket_id", "survivor"),  # INTO's own hand-off stands
    Keyed("approval_requests", "ticket_id", "repoint"),
    # Teamwork (helpdesk/team/ticket_notes.py, ticket_marks.py): every note of both is kept;
    # a mention or a tag on either is on the merged ticket, the later event's row kept;
    # assignee and snooze are registers: per register the later event wins, the same rule
    # as within one ticket, so every desktop picks alike whichever id survives.
    Keyed("ticket_notes", "ticket_id", "repoint"),
    Keyed("ticket_mentions", "ticket_id", "newest", key="agent", stamp="uid"),
    Keyed("ticket_tags", "ticket_id", "newest", key="tag", stamp="stamp"),
    Keyed("ticket_work", "ticket_id", "registers", groups=(
        ("assign_stamp", ("assignee", "assigned_by", "assigned_at")),
        ("snooze_stamp", ("snoozed_until", "snoozed_at", "snoozed_by")))),
    # Stored events of a ticket (history, metrics): their subject as folded, resolved.
    Keyed("team_events", "subject", "repoint", where="type IN ({ticket_types})"),
]


Db = sqlite3.Cursor | Connection


def _cursor(db: Db) -> sqlite3.Cursor:
    return db if isinstance(db, sqlite3.Cursor) else raw_cursor(db)


def canonical(conn: Db, ticket_id: str) -> str:
    """The surviving ticket id for ``ticket_id``: itself when never merged.

    Follows thread aliases and merges, chains included. A cycle (hostile merge events
    meeting thread aliases) never loops: its members are one ticket, and the smallest
    id of the cycle stands for it, whichever member the walk entered by.
    """
    cur = _cursor(conn)
    # The usual answer (never merged) in one statement: both layers looked up at once.
    thread, merged = cur.execute(_BOTH, (ticket_id, ticket_id)).fetchone()
    if thread is None and merged is None:
        return ticket_id
    walk: list[str] = []
    here = ticket_id
    for _hop in range(MAX_HOPS):
        if thread is not None:
            here = str(thread)
            merged = cur.execute(_MERGED, (here,)).fetchone()
            merged = merged[0] if merged else None
        if here in walk:
            return min(walk[walk.index(here):])
        walk.append(here)
        if merged is None:
            return here
        here = str(merged)
        thread, merged = cur.execute(_BOTH, (here, here)).fetchone()
    return here


_BOTH = ("SELECT (SELECT into_id FROM thread_aliases WHERE ticket_id = ?), "
         "(SELECT into_id FROM ticket_merges WHERE ticket_id = ?)")
_MERGED = "SELECT into_id FROM ticket_merges WHERE ticket_id = ?"


def aliases_of(conn: Db, ticket_id: str) -> list[str]:
    """Every id that resolves to ``ticket_id`` (itself excluded), for ``show``."""
    cur = _cursor(conn)
    found: set[str] = set()
    frontier = [ticket_id]
    while frontier and len(found) < 10_000:
        here = frontier.pop()
        for (tid,) in cur.execute(
                "SELECT ticket_id FROM thread_aliases WHERE into_id = ? UNION "
                "SELECT ticket_id FROM ticket_merges WHERE into_id = ?", (here, here)):
            tid = str(tid)
            if tid not in found and tid != ticket_id:
                found.add(tid)
                frontier.append(tid)
    return sorted(t for t in found if canonical(cur, t) == ticket_id)


def has_team_state(cur: sqlite3.Cursor, ticket_id: str) -> bool:
    """Whether any folded event acted on ``ticket_id`` (a merge that moves it may then
    have to fold the log again: see helpdesk/mail/threads.py)."""
    return bool(cur.execute(
        "SELECT EXISTS (SELECT 1 FROM team_events WHERE subject = ?) OR EXISTS "
        "(SELECT 1 FROM ticket_merges WHERE into_id = ? OR ticket_id = ?)",
        (ticket_id, ticket_id, ticket_id)).fetchone()[0] == 1)


def move_state(cur: sqlite3.Cursor, old: str, into: str, at: datetime | None) -> None:
    """Move everything keyed by ticket ``old`` into ``into``, table by table, by policy.

    ``at``: the server time of the merge (a claim live then is kept); None for a
    merge found in the mail (every claim counts).
    """
    if old == into:
        return
    ensure_ticket_row(cur, into, old)  # messages may only point at a ticket row
    types = ", ".join(f"'{t}'" for t in sorted(TICKET_EVENT_TYPES))
    for keyed in TICKET_KEYED_TABLES:
        where = f" AND {keyed.where.format(ticket_types=types)}" if keyed.where else ""
        table, col = keyed.table, keyed.column
        if keyed.policy == "repoint":
            cur.execute(f"UPDATE {table} SET {col} = ? WHERE {col} = ?{where}", (into, old))
        elif keyed.policy == "union":
            cur.execute(f"UPDATE OR IGNORE {table} SET {col} = ? WHERE {col} = ?{where}",
                        (into, old))
            cur.execute(f"DELETE FROM {table} WHERE {col} = ?{where}", (old,))
        elif keyed.policy == "newest":
            # INTO's rows that the merged ticket has a later one for give way to it.
            cur.execute(f"DELETE FROM {table} AS d WHERE d.{col} = ? AND EXISTS (SELECT 1 "
                        f"FROM {table} AS s WHERE s.{col} = ? AND s.{keyed.key} = "
                        f"d.{keyed.key} AND s.{keyed.stamp} > d.{keyed.stamp})", (into, old))
            cur.execute(f"UPDATE OR IGNORE {table} SET {col} = ? WHERE {col} = ?", (into, old))
            cur.execute(f"DELETE FROM {table} WHERE {col} = ?", (old,))
        elif keyed.policy == "registers":
            _merge_registers(cur, keyed, old, into)
        elif keyed.policy == "survivor":
            if cur.execute(f"SELECT 1 FROM {table} WHERE {col} = ? LIMIT 1",
                           (into,)).fetchone() is None:
                cur.execute(f"UPDATE {table} SET {col} = ? WHERE {col} = ?{where}",
                            (into, old))
        elif keyed.policy == "drafts":
            if cur.execute("SELECT 1 FROM drafts WHERE ticket_id = ?", (into,)).fetchone() \
                    is None:
                cur.execute("UPDATE drafts SET ticket_id = ? WHERE ticket_id = ?", (into, old))
                cur.execute("DELETE FROM draft_attachments WHERE ticket_id = ?", (into,))
                cur.execute("UPDATE draft_attachments SET ticket_id = ? WHERE ticket_id = ?",
                            (into, old))
        elif keyed.policy == "ticket_state":
            _merge_ticket_state(cur, old, into, at)
    drop_if_empty(cur, old)


def _merge_registers(cur: sqlite3.Cursor, keyed: Keyed, old: str, into: str) -> None:
    """One row of last-writer-wins registers per ticket: per register, the higher stamp."""
    table, col = keyed.table, keyed.column
    if cur.execute(f"SELECT 1 FROM {table} WHERE {col} = ?", (into,)).fetchone() is None:
        cur.execute(f"UPDATE {table} SET {col} = ? WHERE {col} = ?", (into, old))
        return
    for stamp, cols in keyed.groups:
        sets = ", ".join(f"{c} = (SELECT {c} FROM {table} WHERE {col} = :old)"
                         for c in (stamp, *cols))
        cur.execute(f"UPDATE {table} SET {sets} WHERE {col} = :into AND {stamp} < "
                    f"(SELECT {stamp} FROM {table} WHERE {col} = :old)",
                    {"old": old, "into": into})
    cur.execute(f"DELETE FROM {table} WHERE {col} = ?", (old,))


_STATE_COLS = ("status", "status_stamp", "status_at", "closed_at", "claimed_by", "claim_event",
               "claimed_at", "claim_active_at", "claim_lease")


def _merge_ticket_state(cur: sqlite3.Cursor, old: str, into: str, at: datetime | None) -> None:
    """Status and claim of a merge: INTO keeps its own.

    - status: INTO's, unless no status event ever set it (then the merged ticket's);
    - claim: INTO's when it has one (live at ``at``); else the merged ticket's live
      claim carries over, so whoever was answering still holds the conversation.
    """
    cols = ", ".join(_STATE_COLS)
    src = cur.execute(f"SELECT {cols} FROM ticket_state WHERE ticket_id = ?", (old,)).fetchone()
    if src is None:
        return
    dst = cur.execute(f"SELECT {cols} FROM ticket_state WHERE ticket_id = ?",
                      (into,)).fetchone()
    cur.execute("DELETE FROM ticket_state WHERE ticket_id = ?", (old,))
    if dst is None:
        cur.execute(f"INSERT INTO ticket_state (ticket_id, {cols}) VALUES "
                    f"(?, {', '.join('?' * len(_STATE_COLS))})", (into, *src))
        return
    s, d = dict(zip(_STATE_COLS, src, strict=True)), dict(zip(_STATE_COLS, dst, strict=True))
    if not d["status_stamp"] and s["status_stamp"]:
        for k in ("status", "status_stamp", "status_at", "closed_at"):
            d[k] = s[k]
    if not _claim_live(d, at) and _claim_live(s, at) and d["status"] != "closed":
        for k in ("claimed_by", "claim_event", "claimed_at", "claim_active_at", "claim_lease"):
            d[k] = s[k]
    sets = ", ".join(f"{k} = ?" for k in _STATE_COLS)
    cur.execute(f"UPDATE ticket_state SET {sets} WHERE ticket_id = ?",
                (*(d[k] for k in _STATE_COLS), into))


def _claim_live(state: dict[str, Any], at: datetime | None) -> bool:
    if not state["claimed_by"]:
        return False
    if at is None:
        return True
    active = parse_db_time(state["claim_active_at"])
    return active is not None and active + timedelta(seconds=state["claim_lease"] or 0) > at


def place_messages(cur: sqlite3.Cursor, natural_ids: Iterable[str]) -> set[str]:
    """Put the messages of each thread id where :func:`canonical` says they live now,
    creating the survivor's ticket row and dropping rows left without messages.

    Returns every ticket id whose messages changed (to recompute their aggregates).
    The callers' :func:`move_state` has usually moved them already; this places the
    rest (a thread id whose messages lived elsewhere).
    """
    touched: set[str] = set()
    for natural in sorted(set(natural_ids)):
        target = canonical(cur, natural)
        olds = [str(r[0]) for r in cur.execute(
            "SELECT DISTINCT ticket_id FROM messages WHERE thread_ticket = ? AND ticket_id != ?",
            (natural, target))]
        if not olds:
            continue
        ensure_ticket_row(cur, target, olds[0])
        cur.execute("UPDATE messages SET ticket_id = ? WHERE thread_ticket = ?",
                    (target, natural))
        touched.add(target)
        for old in olds:
            drop_if_empty(cur, old)
            touched.add(old)
    return touched


def ensure_ticket_row(cur: sqlite3.Cursor, ticket_id: str, like: str | None) -> None:
    """A ``tickets`` row for ``ticket_id`` (copied from ``like``'s until its aggregates
    are recomputed), so messages may point at it."""
    cur.execute("INSERT INTO tickets (id, thread_key, subject, created_at, updated_at) "
                "SELECT ?, 'alias:' || ?, subject, created_at, updated_at FROM tickets "
                "WHERE id = ? ON CONFLICT (id) DO NOTHING", (ticket_id, ticket_id, like))


def drop_if_empty(cur: sqlite3.Cursor, ticket_id: str) -> None:
    cur.execute("DELETE FROM tickets WHERE id = ? AND NOT EXISTS "
                "(SELECT 1 FROM messages WHERE ticket_id = ?)", (ticket_id, ticket_id))


def settle(cur: sqlite3.Cursor) -> set[str]:
    """After the merges were folded again from scratch (a refold or rebuild of team
    state): every message where :func:`canonical` says, whatever moved. Reads every
    message's placement once (a rebuild is rare)."""
    wrong = [str(t) for (t,) in cur.execute(
        "SELECT DISTINCT thread_ticket FROM messages WHERE thread_ticket IS NOT NULL "
        "AND (thread_ticket != ticket_id OR thread_ticket IN (SELECT ticket_id FROM "
        "thread_aliases) OR thread_ticket IN (SELECT ticket_id FROM ticket_merges))")]
    return place_messages(cur, wrong)
