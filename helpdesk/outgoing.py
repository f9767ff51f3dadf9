"""Team state of outgoing mail, folded from the team log: signatures and forwards.

- ``signature`` (subject ``team``, or ``agent:<name>`` for a personal one; data
  ``body``): last-writer-wins per scope, stamped with the event's UID. An empty body
  removes it. A personal signature is written only by its own agent: an event naming
  another agent's scope is skipped (anyone with the mailbox password can write events).
- ``forwarded`` (subject the ticket; data ``message_id``, ``to`` and ``original``):
  a forward recorded in its ticket, add-only by event id.

Signatures hold placeholders like saved replies (``{agent}``, ``{first_name}``,
``{ticket}``, ...), filled when a message is composed.
"""

from __future__ import annotations

import json
import sqlite3

from sqlalchemy import Connection, text

from helpdesk.team.fold import BadData, FoldContext, Handlers, db_time, required_text, text_field

HANDLERS = Handlers("outgoing")

MAX_SIGNATURE = 4000
TEAM = "team"


def scope_of(agent: str | None) -> str:
    """The register a signature lives in: the team's, or one agent's."""
    return TEAM if agent is None else f"agent:{agent}"


@HANDLERS.on("signature")
def _signature(ctx: FoldContext) -> None:
    scope = ctx.event.subject
    if scope != TEAM and scope != scope_of(ctx.event.agent):
        raise BadData("a personal signature can only be set by its own agent")
    body = required_text(ctx.event.data, "body")[:MAX_SIGNATURE]
    ctx.cur.execute("INSERT INTO signatures (scope, body, stamp, agent) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (scope) DO UPDATE SET body = excluded.body, "
                    "stamp = excluded.stamp, agent = excluded.agent "
                    "WHERE signatures.stamp < excluded.stamp",
                    (scope, body, ctx.uid, ctx.event.agent))


@HANDLERS.on("forwarded")
def _forwarded(ctx: FoldContext) -> None:
    to = ctx.event.data.get("to")
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a
                                                     for a in to):
        raise BadData("to must be a list of addresses")
    message_id = required_text(ctx.event.data, "message_id")[:1000]
    text_field(ctx.event.data, "original")
    ctx.cur.execute("INSERT OR IGNORE INTO forwards (event_id, ticket_id, agent, message_id, "
                    "to_addrs, at) VALUES (?, ?, ?, ?, ?, ?)",
                    (ctx.event.id, ctx.event.subject, ctx.event.agent, message_id,
                     json.dumps([a[:320] for a in to[:100]]), db_time(ctx.at)))
    ctx.result.tickets.add(ctx.event.subject)


@HANDLERS.reset
def _reset(cur: sqlite3.Cursor) -> None:
    cur.execute("DELETE FROM signatures")
    cur.execute("DELETE FROM forwards")


# --- reading ------------------------------------------------------------------------

def signatures(conn: Connection, agent: str) -> dict[str, str]:
    """{'team': ..., 'personal': ...} as folded (empty text: none set)."""
    found = conn.execute(text("SELECT scope, body FROM signatures WHERE scope IN (:t, :a)"),
                         {"t": TEAM, "a": scope_of(agent)}).all()
    rows: dict[str, str] = {str(r[0]): str(r[1]) for r in found}
    return {"team": str(rows.get(TEAM) or ""), "personal": str(rows.get(scope_of(agent)) or "")}


def signature_for(conn: Connection, agent: str) -> str:
    """The signature mail from ``agent`` carries: the personal one, else the team's."""
    found = signatures(conn, agent)
    return found["personal"] or found["team"]


def forwards(conn: Connection, ticket_id: str) -> list[dict[str, object]]:
    rows = conn.execute(text("SELECT agent, message_id, to_addrs, at FROM forwards WHERE "
                             "ticket_id = :t ORDER BY at, event_id"), {"t": ticket_id})
    return [{"agent": r[0], "message_id": r[1], "to": json.loads(r[2]), "at": r[3]}
            for r in rows]
