"""Feedback cards as team state: the fold handlers and the board's constants.

See :mod:`helpdesk.cards` for the events and how they merge.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from typing import Any, Literal

from helpdesk.cards import rank as card_rank
from helpdesk.store.aliases import canonical
from helpdesk.team.fold import (
    BadData,
    FoldContext,
    Handlers,
    db_time,
    flag_field,
    required_text,
    text_field,
)

log = logging.getLogger(__name__)

HANDLERS = Handlers("cards")


DEFAULT_COLUMNS = (("ideas", "Ideas"), ("known-issues", "Known issues"), ("next-up", "Next up"),
                   ("in-progress", "In progress"), ("shipped", "Shipped"))
SHIPPED = "shipped"
COLUMN_SUBJECT = "column:"
MAX_TITLE, MAX_DESCRIPTION, MAX_QUOTE, MAX_COLUMN_NAME = 200, 5000, 2000, 60
SORTS = ("votes", "age")
Sort = Literal["votes", "age"]
_CARD_ID = re.compile(r"[0-9a-f]{8,64}")

# Every card id with the id of the board card it counts for (merge chains resolved).
_TREE = """WITH RECURSIVE tree(id, root) AS (
    SELECT id, id FROM cards WHERE merged_into IS NULL
    UNION SELECT c.id, tree.root FROM cards c JOIN tree ON c.merged_into = tree.id)"""
# The board card a card counts for (itself unless merged), by following merged_into.
_ROOT = """WITH RECURSIVE up(id, next, depth) AS (
    SELECT id, merged_into, 0 FROM cards WHERE id = :id
    UNION ALL SELECT c.id, c.merged_into, up.depth + 1 FROM cards c JOIN up ON c.id = up.next
    WHERE up.depth < 1000)
SELECT id FROM up WHERE next IS NULL"""
# A board card and every card merged into it, directly or through others.
_GROUP = """WITH RECURSIVE grp(id) AS (
    SELECT :root UNION SELECT c.id FROM cards c JOIN grp ON c.merged_into = grp.id)"""


# --- fold ------------------------------------------------------------------------

def _line(value: Any, limit: int) -> str:
    """One line of text (titles, names): whitespace collapsed, at most ``limit`` long."""
    return " ".join(str(value or "").split())[:limit]


def _block(value: Any, limit: int) -> str:
    """Free text (descriptions, quotes): line breaks kept, ends trimmed."""
    return str(value or "").strip()[:limit]


def _root_of(cur: sqlite3.Cursor, card_id: str) -> str | None:
    row = cur.execute(_ROOT, {"id": card_id}).fetchone()
    return str(row[0]) if row else None


def _touch(ctx: FoldContext, card_id: str) -> None:
    root = _root_of(ctx.cur, card_id) or card_id
    ctx.cur.execute("UPDATE cards SET updated_at = ? WHERE id = ?", (db_time(ctx.at), root))
    ctx.result.cards = True


def _column_exists(cur: sqlite3.Cursor, column: str) -> bool:
    return cur.execute("SELECT 1 FROM board_columns WHERE id = ?", (column,)).fetchone() \
        is not None


def _title_key(title: str) -> str:
    return card_rank.normalise(title)


@HANDLERS.on("card-create")
def _card_create(ctx: FoldContext) -> None:
    card_id, data = ctx.event.subject, ctx.event.data
    if not _CARD_ID.fullmatch(card_id):
        raise BadData("bad card id")
    title = _line(required_text(data, "title"), MAX_TITLE)
    if not title:
        raise BadData("card without a title")
    description = _block(text_field(data, "description"), MAX_DESCRIPTION)
    by_title = flag_field(data, "by_title", default=False)
    column = text_field(data, "column") or "ideas"
    if not _column_exists(ctx.cur, column):
        column = "ideas"
    at = db_time(ctx.at)
    ctx.cur.execute(
        "INSERT OR IGNORE INTO cards (id, title, description, column_id, created_at, "
        "updated_at, created_by, title_stamp, column_stamp, shipped_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (card_id, title, description, column, at, at,
         ctx.event.agent, ctx.uid, ctx.uid, at if column == SHIPPED else None))
    if ctx.cur.rowcount and by_title:
        key = _title_key(title)
        for other, other_title in ctx.cur.execute(
                "SELECT c.id, c.title FROM cards c JOIN team_events e ON e.event_id = c.id "
                "WHERE c.merged_into IS NULL AND c.id != ? ORDER BY e.uid",
                (card_id,)).fetchall():
            if _title_key(other_title) == key:
                ctx.cur.execute("UPDATE cards SET merged_into = ? WHERE id = ?",
                                (other, card_id))
                break
    ctx.result.cards = True


@HANDLERS.on("card-update")
def _card_update(ctx: FoldContext) -> None:
    subject, data = ctx.event.subject, ctx.event.data
    if subject.startswith(COLUMN_SUBJECT):
        column = subject[len(COLUMN_SUBJECT):]
        name = _line(required_text(data, "name"), MAX_COLUMN_NAME)
        if not name or not _column_exists(ctx.cur, column):
            raise BadData(f"cannot rename column {column[:40]!r} to {name!r}")
        ctx.cur.execute("UPDATE board_columns SET name = ?, stamp = ? WHERE id = ? AND stamp < ?",
                        (name, ctx.uid, column, ctx.uid))
        ctx.result.cards = True
        return
    title, description = text_field(data, "title"), text_field(data, "description")
    if title is not None:
        title = _line(title, MAX_TITLE)
    if description is not None:
        description = _block(description, MAX_DESCRIPTION)
    if title == "":
        raise BadData("a card title cannot be empty")
    ctx.cur.execute(
        "UPDATE cards SET title = coalesce(?, title), description = coalesce(?, description), "
        "title_stamp = ? WHERE id = ? AND title_stamp < ?",
        (title, description, ctx.uid, subject, ctx.uid))
    _touch(ctx, subject)


@HANDLERS.on("card-move")
def _card_move(ctx: FoldContext) -> None:
    card_id, column = ctx.event.subject, required_text(ctx.event.data, "column")
    if not _column_exists(ctx.cur, column):
        raise BadData(f"unknown column {column[:40]!r}")
    at = db_time(ctx.at)
    ctx.cur.execute(
        "UPDATE cards SET shipped_at = CASE WHEN :col != 'shipped' THEN NULL "
        "WHEN column_id = 'shipped' THEN shipped_at ELSE :at END, column_id = :col, "
        "column_stamp = :uid WHERE id = :id AND column_stamp < :uid",
        {"col": column, "at": at, "uid": ctx.uid, "id": card_id})
    _touch(ctx, card_id)


@HANDLERS.on("card-add")
def _card_add(ctx: FoldContext) -> None:
    card_id, data = ctx.event.subject, ctx.event.data
    email = required_text(data, "email").strip().lower()
    if "@" not in email or len(email) > 320:
        raise BadData("customer is not an e-mail address")
    ticket = (text_field(data, "ticket") or "")[:64] or None
    if ticket:  # a merged-away ticket id names the ticket it went into
        ticket = canonical(ctx.cur, ticket)
    quote = _block(text_field(data, "quote"), MAX_QUOTE) or None
    ctx.cur.execute(
        "INSERT OR IGNORE INTO card_customers (card_id, email, ticket_id, quote, added_at, "
        "added_by, event_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (card_id, email, ticket, quote, db_time(ctx.at), ctx.event.agent, ctx.event.id))
    if not ctx.cur.rowcount:
        # Add-wins set: the earliest add stays; a later one only fills in the blanks.
        ctx.cur.execute("UPDATE card_customers SET ticket_id = coalesce(ticket_id, ?), "
                        "quote = coalesce(quote, ?) WHERE card_id = ? AND email = ?",
                        (ticket, quote, card_id, email))
    _touch(ctx, card_id)


@HANDLERS.on("card-merge")
def _card_merge(ctx: FoldContext) -> None:
    card_id, into = ctx.event.subject, required_text(ctx.event.data, "into")
    row = ctx.cur.execute("SELECT merged_into FROM cards WHERE id = ?", (card_id,)).fetchone()
    target = _root_of(ctx.cur, into)
    if row is None or target is None:
        raise BadData("merge of an unknown card")
    if row[0] is not None or target == card_id:
        log.info("team log: ignored merge of card %s into %s (already merged, or a cycle)",
                 card_id[:8], into[:8])
        return
    ctx.cur.execute("UPDATE cards SET merged_into = ?, updated_at = ? WHERE id = ?",
                    (into, db_time(ctx.at), card_id))
    _touch(ctx, target)


@HANDLERS.on("card-notified")
def _card_notified(ctx: FoldContext) -> None:
    email = required_text(ctx.event.data, "email").strip().lower()
    message_id = text_field(ctx.event.data, "message_id")
    root = _root_of(ctx.cur, ctx.event.subject)
    if root is None:
        raise BadData("notification for an unknown card")
    told = ctx.cur.execute(
        _GROUP + " SELECT 1 FROM card_notified n JOIN grp ON grp.id = n.card_id "
        "WHERE n.email = :email", {"root": root, "email": email}).fetchone()
    if told is None:
        ctx.cur.execute("INSERT INTO card_notified (card_id, email, at, message_id) "
                        "VALUES (?, ?, ?, ?)",
                        (root, email, db_time(ctx.at), message_id or None))
        ctx.result.cards = True


@HANDLERS.reset
def reset_cards(cur: sqlite3.Cursor) -> None:
    """Forget every card (a rebuild from the log); the board gets its default columns."""
    for table in ("card_notified", "card_customers", "cards", "board_columns"):
        cur.execute(f"DELETE FROM {table}")
    cur.executemany("INSERT INTO board_columns (id, name, position, stamp) VALUES (?, ?, ?, 0)",
                    [(cid, name, i) for i, (cid, name) in enumerate(DEFAULT_COLUMNS)])
