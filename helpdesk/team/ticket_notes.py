"""Internal notes on a ticket and the @mentions in them, folded from the team log.

A ``ticket-note`` event (subject: the ticket) carries ``text``; the agents it mentions
are read from the text by the fold itself (``@agent-b``), so every desktop derives the
same mentions whatever a writer claims. Notes are add-only by event id and ordered by
UID; they live in their own table and never in ``messages``, so no reply, quote,
forward or digest can carry one to a customer.

A mention stays owed (``ticket_mentions``, the ``mentions`` view) until the mentioned
agent answers on that ticket: a reply sent (``reply-sent`` of kind reply) or a note of
their own, folded after it. Both are decided by log order, so every desktop agrees.
"""

from __future__ import annotations

import json
import re
import sqlite3

from helpdesk.store.aliases import canonical
from helpdesk.team.fold import BadData, FoldContext, Handlers, db_time, required_text

HANDLERS = Handlers("ticket-notes")

MAX_NOTE = 10_000
MAX_MENTIONS = 20
# "@name" not preceded by a word character, a dot or another "@" (an e-mail address
# is no mention); a trailing dot or dash is punctuation, not part of the name.
_MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9](?:[\w.-]{0,198}[A-Za-z0-9_])?)")


def mentions_in(text: str) -> list[str]:
    """The agents ``text`` mentions, in order of first mention, without repeats."""
    found = dict.fromkeys(m.group(1) for m in _MENTION.finditer(text))
    return list(found)[:MAX_MENTIONS]


def ticket_of(ctx: FoldContext) -> str:
    """The event's ticket (its subject), resolved through merges."""
    ticket = ctx.event.subject.strip()
    if not ticket:
        raise BadData("the event names no ticket")
    return canonical(ctx.cur, ticket)


def answered(cur: sqlite3.Cursor, ticket: str, agent: str) -> None:
    """``agent`` answered on ``ticket``: mentions of them there are no longer owed."""
    cur.execute("DELETE FROM ticket_mentions WHERE agent = ? AND ticket_id = ?",
                (agent, ticket))


@HANDLERS.on("ticket-note")
def _ticket_note(ctx: FoldContext) -> None:
    ticket = ticket_of(ctx)
    text = required_text(ctx.event.data, "text").strip()[:MAX_NOTE]
    if not text:
        raise BadData("a note without text")
    author = ctx.event.agent
    mentioned = [a for a in mentions_in(text) if a != author]
    ctx.cur.execute("INSERT OR IGNORE INTO ticket_notes (event_id, ticket_id, agent, text, at, "
                    "uid, mentions) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (ctx.event.id, ticket, author, text, db_time(ctx.at), ctx.uid,
                     json.dumps(mentioned)))
    answered(ctx.cur, ticket, author)  # a note of one's own answers a mention
    for agent in mentioned:
        ctx.cur.execute("INSERT INTO ticket_mentions (agent, ticket_id, note_id, by_agent, uid, "
                        "at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (agent, ticket_id) DO UPDATE "
                        "SET note_id = excluded.note_id, by_agent = excluded.by_agent, "
                        "uid = excluded.uid, at = excluded.at "
                        "WHERE excluded.uid > ticket_mentions.uid",
                        (agent, ticket, ctx.event.id, author, ctx.uid, db_time(ctx.at)))
        ctx.result.mentions.append((ticket, agent, author))
    ctx.result.tickets.add(ticket)


@HANDLERS.reset
def _reset(cur: sqlite3.Cursor) -> None:
    cur.execute("DELETE FROM ticket_notes")
    cur.execute("DELETE FROM ticket_mentions")
