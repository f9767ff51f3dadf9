"""Shared registers folded from the team log: customers' marks and notes, saved replies.

Lasting data merges independent of order: VIP, white-glove and profile fields are
last-writer-wins registers stamped with the event's UID; notes are an add-only set
keyed by event id with delete events as tombstones; saved replies are registers by
name.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from helpdesk.team.fold import (
    BadData,
    FoldContext,
    Handlers,
    db_time,
    flag_field,
    required_text,
    text_field,
)

HANDLERS = Handlers("registers")

def _customer(cur: sqlite3.Cursor, email: str) -> str:
    email = email.strip().lower()
    if "@" not in email:
        raise BadData("customer is not an e-mail address")
    cur.execute("INSERT OR IGNORE INTO customers (email, organisation) VALUES (?, ?)",
                (email, _organisation(email)))
    return email


def _organisation(email: str) -> str | None:
    from helpdesk.mail.sync import organisation_for
    return organisation_for(email)


def _register(cur: sqlite3.Cursor, email: str, column: str, value: Any, uid: int) -> None:
    """Last-writer-wins by log order: write only if this event is newer than the value."""
    cur.execute(f"UPDATE customers SET {column} = ?, {column}_stamp = ? "
                f"WHERE email = ? AND {column}_stamp < ?", (value, uid, email, uid))


@HANDLERS.on("vip")
def _vip(ctx: FoldContext) -> None:
    email = _customer(ctx.cur, ctx.event.subject)
    on = flag_field(ctx.event.data, "vip")
    tier = text_field(ctx.event.data, "tier") if on else None
    ctx.cur.execute("UPDATE customers SET vip = ?, vip_tier = ?, vip_stamp = ? "
                    "WHERE email = ? AND vip_stamp < ?",
                    (on, tier[:60] if tier else None, ctx.uid, email, ctx.uid))
    ctx.result.customers.add(email)


@HANDLERS.on("white-glove")
def _white_glove(ctx: FoldContext) -> None:
    email = _customer(ctx.cur, ctx.event.subject)
    _register(ctx.cur, email, "white_glove", flag_field(ctx.event.data, "on"), ctx.uid)
    ctx.result.customers.add(email)


PROFILE_FIELDS = ("preferred_name", "birthday", "heard_from")


def _profile_fields(ctx: FoldContext, email: str) -> None:
    for name in PROFILE_FIELDS:
        if name in ctx.event.data:
            value = text_field(ctx.event.data, name)
            _register(ctx.cur, email, name, value[:200] if value else None, ctx.uid)


@HANDLERS.on("profile")
def _profile(ctx: FoldContext) -> None:
    email = _customer(ctx.cur, ctx.event.subject)
    _profile_fields(ctx, email)
    ctx.result.customers.add(email)


@HANDLERS.on("note")
def _note(ctx: FoldContext) -> None:
    email = _customer(ctx.cur, ctx.event.subject)
    text = (text_field(ctx.event.data, "text") or "")[:10000]
    if text:
        ctx.cur.execute("INSERT OR IGNORE INTO notes (id, customer_email, agent, text, at, "
                        "deleted) VALUES (?, ?, ?, ?, ?, 0)",
                        (ctx.event.id, email, ctx.event.agent, text, db_time(ctx.at)))
    _profile_fields(ctx, email)
    ctx.result.customers.add(email)


@HANDLERS.on("note-delete")
def _note_delete(ctx: FoldContext) -> None:
    email = _customer(ctx.cur, ctx.event.subject)
    ctx.cur.execute("UPDATE notes SET deleted = 1 WHERE id = ?",
                    (required_text(ctx.event.data, "note"),))
    ctx.result.customers.add(email)


@HANDLERS.on("template")
def _template(ctx: FoldContext) -> None:
    name = str(ctx.event.subject).strip()[:100]
    body = required_text(ctx.event.data, "body")[:20000]
    ctx.cur.execute("INSERT INTO templates (name, body, stamp, deleted, agent) "
                    "VALUES (?, ?, ?, 0, ?) ON CONFLICT (name) DO UPDATE SET body = excluded.body, "
                    "stamp = excluded.stamp, deleted = 0, agent = excluded.agent "
                    "WHERE templates.stamp < excluded.stamp",
                    (name, body, ctx.uid, ctx.event.agent))


@HANDLERS.on("template-delete")
def _template_delete(ctx: FoldContext) -> None:
    ctx.cur.execute("UPDATE templates SET deleted = 1, stamp = ? WHERE name = ? AND stamp < ?",
                    (ctx.uid, ctx.event.subject, ctx.uid))


@HANDLERS.reset
def _reset(cur: sqlite3.Cursor) -> None:
    cur.execute("DELETE FROM notes")
    cur.execute("UPDATE customers SET vip = 0, vip_tier = NULL, vip_stamp = 0, white_glove = 0, "
                "white_glove_stamp = 0, preferred_name = NULL, preferred_name_stamp = 0, "
                "birthday = NULL, birthday_stamp = 0, heard_from = NULL, heard_from_stamp = 0")
    cur.execute("DELETE FROM templates")
