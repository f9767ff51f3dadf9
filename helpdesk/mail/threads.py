"""Threading that repairs itself: linked threads become one ticket, on every desktop alike.

A message's own ticket id (its *thread ticket*, helpdesk/mail/conversations.py) is a pure
function of the message. That is not enough: some mail clients answer with an
``In-Reply-To`` naming one of our replies and no ``References``, so the answer's own id
is not its conversation's. The rule (DESIGN.md "Tickets"):

- a message whose ``In-Reply-To`` or ``References`` names a stored message links their
  two thread tickets; the links found among all stored messages group the thread
  tickets (a union of groups: a ticket never splits);
- each group's **survivor** is the thread ticket whose earliest message (by its Date
  header, then id) is the oldest: the conversation's start, whichever part of it was
  stored first. Every other id of the group is a thread alias of it;
- the links are looked up from both ends (the ids a new message names, and the stored
  messages that named it: ``message_refs``), so the groups, hence the aliases, depend
  only on which messages are stored, never on the order they were synced in (Sent
  before INBOX, newest first...).

When a group forms or its survivor changes, the merged-away tickets' state moves into
the survivor (helpdesk/store/aliases.py). If a merged-away ticket had team events, the
store asks for a refold of the team log from its stored events (``team.refold``): the
claims and registers are then what they would be had the tickets always been one,
identical to a desktop that synced the mail in another order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from helpdesk.store import Store, aliases
from helpdesk.store.engine import raw_cursor

REFOLD_KEY = "team.refold"


def store_refs(cur: sqlite3.Cursor, pk: int, own: str | None, refs: Iterable[str]) -> None:
    cur.executemany("INSERT OR IGNORE INTO message_refs (ref_id, message_pk) VALUES (?, ?)",
                    [(r, pk) for r in set(refs) - {own, ""}])


def link(cur: sqlite3.Cursor, pk: int, natural: str, own: str | None,
         refs: Iterable[str]) -> set[str]:
    """Link the just-stored message ``pk`` (thread ticket ``natural``) with the stored
    messages it names and that name it; merge their groups. Returns every ticket id
    whose messages moved (empty when nothing was linked anew)."""
    named = sorted(set(refs) - {own, ""})
    linked: set[str] = {natural}
    if named:
        linked.update(str(t) for (t,) in cur.execute(
            "SELECT DISTINCT thread_ticket FROM messages WHERE message_id IN "
            "(SELECT value FROM json_each(?)) AND thread_ticket IS NOT NULL",
            (_json(named),)))
    if own:
        linked.update(str(t) for (t,) in cur.execute(
            "SELECT DISTINCT m.thread_ticket FROM message_refs r JOIN messages m "
            "ON m.id = r.message_pk WHERE r.ref_id = ? AND m.thread_ticket IS NOT NULL",
            (own,)))
    if linked == {natural} and cur.execute(
            "SELECT 1 FROM thread_aliases WHERE ticket_id = ? OR into_id = ? LIMIT 1",
            (natural, natural)).fetchone() is None:
        return set()  # the usual case: a thread of its own, linked to no other
    groups = {_survivor_of(cur, t) for t in linked}
    members = set(linked) | groups
    for g in groups:
        members.update(str(t) for (t,) in cur.execute(
            "SELECT ticket_id FROM thread_aliases WHERE into_id = ?", (g,)))
    survivor = _pick_survivor(cur, members)
    if len(groups) == 1 and survivor in groups:
        return set()  # one group already, same survivor: nothing moves
    before = {g: aliases.canonical(cur, g) for g in groups}
    cur.execute("DELETE FROM thread_aliases WHERE ticket_id = ?", (survivor,))
    cur.executemany("INSERT OR REPLACE INTO thread_aliases (ticket_id, into_id) VALUES (?, ?)",
                    [(m, survivor) for m in sorted(members - {survivor})])
    target = aliases.canonical(cur, survivor)
    refold = False
    for old in sorted(set(before.values()) - {target}):
        refold = refold or aliases.has_team_state(cur, old)
        aliases.move_state(cur, old, target, None)
    if refold:
        cur.execute("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) "
                    "DO UPDATE SET value = '1'", (REFOLD_KEY,))
    return aliases.place_messages(cur, members) | set(before.values()) | {target}


def _survivor_of(cur: sqlite3.Cursor, natural: str) -> str:
    row = cur.execute("SELECT into_id FROM thread_aliases WHERE ticket_id = ?",
                      (natural,)).fetchone()
    return str(row[0]) if row else natural


def _pick_survivor(cur: sqlite3.Cursor, members: set[str]) -> str:
    """The member whose earliest message (Date header, else none: last) is oldest; ties
    by id. A function of the stored messages only."""
    firsts = dict(cur.execute(
        "SELECT thread_ticket, min(coalesce(date_header, '9999')) FROM messages "
        "WHERE thread_ticket IN (SELECT value FROM json_each(?)) GROUP BY thread_ticket",
        (_json(sorted(members)),)).fetchall())
    return min(members, key=lambda t: (str(firsts.get(t) or "9999"), t))


def _json(items: list[str]) -> str:
    import json
    return json.dumps(items)


RETHREAD_KEY = "threads.rethread"  # set by migration 0010: links of older stores to find
RETHREAD_CHUNK = 2000


def rethread_stored(store: Store) -> set[str]:
    """Find the links among messages stored before this code knew them (a store migrated
    to 0010), a chunk of messages per transaction with its cursor in ``meta``, so a
    sync killed meanwhile goes on where it stopped. Returns the tickets that moved."""
    moved: set[str] = set()
    while True:
        with store.begin() as conn:
            cur = raw_cursor(conn)
            row = cur.execute("SELECT value FROM meta WHERE key = ?", (RETHREAD_KEY,)).fetchone()
            if row is None:
                return moved
            after = int(row[0] or 0)
            chunk = [int(pk) for (pk,) in cur.execute(
                "SELECT DISTINCT r.message_pk FROM message_refs r WHERE r.message_pk > ? "
                "AND EXISTS (SELECT 1 FROM messages m WHERE m.message_id = r.ref_id) "
                "ORDER BY r.message_pk LIMIT ?", (after, RETHREAD_CHUNK))]
            for pk in chunk:
                natural, own = cur.execute(
                    "SELECT thread_ticket, message_id FROM messages WHERE id = ?",
                    (pk,)).fetchone()
                refs = [str(r) for (r,) in cur.execute(
                    "SELECT ref_id FROM message_refs WHERE message_pk = ?", (pk,))]
                moved |= link(cur, pk, str(natural), own, refs)
            if len(chunk) < RETHREAD_CHUNK:
                cur.execute("DELETE FROM meta WHERE key = ?", (RETHREAD_KEY,))
            else:
                cur.execute("UPDATE meta SET value = ? WHERE key = ?", (str(chunk[-1]),
                                                                       RETHREAD_KEY))
            if moved:
                from helpdesk.mail.sync import refresh_tickets_cursor
                refresh_tickets_cursor(cur, moved)
