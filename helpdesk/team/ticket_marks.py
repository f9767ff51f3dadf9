"""Assignment, snooze, tags and spam blocks, folded from the team log.

- ``assign`` (subject: the ticket; ``assignee``: an agent, or null to unassign): the
  ticket's lasting owner, a last-writer-wins register stamped with the event's UID. It
  is separate from the claim lock: assigning never claims, and a live claim still
  decides who may send.
- ``snooze`` (``until``: ISO UTC time, or ``seconds`` after the event's own server time,
  or neither to unsnooze): a last-writer-wins register too. The snooze holds while the
  server's clock is before ``snoozed_until`` and the customer has not written since the
  event (``snoozed_at``, its server time); both are judged at read time, so a ticket
  comes back by itself on every desktop at the same server time, with no event.
- ``tag`` (``add`` and ``remove``: lists of tags): applied in log order, removes first,
  so per tag the later event wins (a last-writer-wins set by UID; within one event an
  add beats a remove of the same tag). Two desktops adding and removing at once end
  alike: the order the server gave their events decides.
- ``spam`` (subject: an address or a domain; ``on``; ``kind``: address | domain): a
  last-writer-wins register per pattern. A ticket whose customer (or customer's domain)
  is blocked is in the ``spam`` view only, and tells nobody about its mail.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime, timedelta
from typing import Any

from helpdesk.team.fold import (
    BadData,
    FoldContext,
    Handlers,
    db_time,
    flag_field,
    text_field,
)
from helpdesk.team.ticket_notes import ticket_of

HANDLERS = Handlers("ticket-marks")

MAX_SNOOZE = timedelta(days=366 * 5)
MAX_TAGS_PER_EVENT = 50
_TAG = re.compile(r"[\w][\w.+-]{0,39}")
_AGENT_BAD = re.compile(r"\s")
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,252}[a-z0-9])?")


def normalise_tag(value: str) -> str | None:
    """A tag as stored: lower case, without a leading '#'; None when it is no tag
    (letters, digits and ``_ . + -``, at most 40, starting with a letter or digit)."""
    tag = value.strip().lstrip("#").casefold()
    return tag if _TAG.fullmatch(tag) else None


def valid_agent(value: str) -> bool:
    return bool(value) and len(value) <= 200 and not _AGENT_BAD.search(value)


def block_pattern(value: str) -> tuple[str, str] | None:
    """(pattern, kind) for an address or a domain; None when it is neither."""
    pattern = value.strip().lower()
    if "@" in pattern:
        local, _, domain = pattern.rpartition("@")
        if local and _DOMAIN.fullmatch(domain) and not _AGENT_BAD.search(pattern):
            return pattern, "address"
        return None
    return (pattern, "domain") if _DOMAIN.fullmatch(pattern) and "." in pattern else None


def _work_row(cur: sqlite3.Cursor, ticket: str) -> None:
    cur.execute("INSERT OR IGNORE INTO ticket_work (ticket_id) VALUES (?)", (ticket,))


@HANDLERS.on("assign")
def _assign(ctx: FoldContext) -> None:
    ticket = ticket_of(ctx)
    assignee = text_field(ctx.event.data, "assignee")
    if assignee is not None and not valid_agent(assignee):
        raise BadData("assignee is not an agent name")
    _work_row(ctx.cur, ticket)
    ctx.cur.execute("UPDATE ticket_work SET assignee = ?, assigned_by = ?, assigned_at = ?, "
                    "assign_stamp = ? WHERE ticket_id = ? AND assign_stamp < ?",
                    (assignee, ctx.event.agent if assignee else None,
                     db_time(ctx.at) if assignee else None, ctx.uid, ticket, ctx.uid))
    if ctx.cur.rowcount and assignee:
        ctx.result.assigned.append((ticket, assignee, ctx.event.agent))
    ctx.result.tickets.add(ticket)


def _snooze_until(ctx: FoldContext) -> datetime | None:
    data = ctx.event.data
    until = text_field(data, "until")
    seconds = data.get("seconds")
    if until is not None:
        try:
            moment = datetime.fromisoformat(until.removesuffix("Z"))
        except ValueError:
            raise BadData("until is not a time") from None
        if moment.tzinfo is not None:
            raise BadData("until must be UTC without an offset")
        return moment
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
            raise BadData("seconds must be a positive whole number")
        if seconds > MAX_SNOOZE.total_seconds():
            raise BadData("snoozed for too long")
        return ctx.at + timedelta(seconds=seconds)
    return None


@HANDLERS.on("snooze")
def _snooze(ctx: FoldContext) -> None:
    ticket = ticket_of(ctx)
    until = _snooze_until(ctx)
    if until is not None and until > ctx.at + MAX_SNOOZE:
        raise BadData("snoozed for too long")
    _work_row(ctx.cur, ticket)
    ctx.cur.execute("UPDATE ticket_work SET snoozed_until = ?, snoozed_at = ?, snoozed_by = ?, "
                    "snooze_stamp = ? WHERE ticket_id = ? AND snooze_stamp < ?",
                    (db_time(until) if until else None, db_time(ctx.at) if until else None,
                     ctx.event.agent if until else None, ctx.uid, ticket, ctx.uid))
    ctx.result.tickets.add(ticket)


def _tag_list(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_TAGS_PER_EVENT:
        raise BadData(f"{key} must be a list of at most {MAX_TAGS_PER_EVENT} tags")
    out = []
    for item in value:
        tag = normalise_tag(item) if isinstance(item, str) else None
        if tag is None:
            raise BadData(f"{key} holds something that is no tag")
        out.append(tag)
    return out


@HANDLERS.on("tag")
def _tag(ctx: FoldContext) -> None:
    ticket = ticket_of(ctx)
    add, remove = _tag_list(ctx.event.data, "add"), _tag_list(ctx.event.data, "remove")
    for tag in remove:
        ctx.cur.execute("DELETE FROM ticket_tags WHERE ticket_id = ? AND tag = ? AND stamp < ?",
                        (ticket, tag, ctx.uid))
    for tag in add:
        ctx.cur.execute("INSERT INTO ticket_tags (ticket_id, tag, stamp) VALUES (?, ?, ?) "
                        "ON CONFLICT (ticket_id, tag) DO UPDATE SET stamp = excluded.stamp "
                        "WHERE excluded.stamp > ticket_tags.stamp", (ticket, tag, ctx.uid))
    ctx.result.tickets.add(ticket)
    ctx.result.tags = True


@HANDLERS.on("spam")
def _spam(ctx: FoldContext) -> None:
    found = block_pattern(ctx.event.subject)
    if found is None:
        raise BadData("spam names neither an address nor a domain")
    pattern, kind = found
    declared = text_field(ctx.event.data, "kind")
    if declared is not None and declared != kind:
        raise BadData("spam kind does not match its subject")
    on = flag_field(ctx.event.data, "on")
    ticket = text_field(ctx.event.data, "ticket")
    ctx.cur.execute("INSERT INTO spam_blocks (pattern, kind, active, stamp, agent, at, ticket_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pattern) DO UPDATE SET "
                    "active = excluded.active, stamp = excluded.stamp, agent = excluded.agent, "
                    "at = excluded.at, ticket_id = excluded.ticket_id "
                    "WHERE excluded.stamp > spam_blocks.stamp",
                    (pattern, kind, on, ctx.uid, ctx.event.agent, db_time(ctx.at),
                     ticket[:64] if ticket else None))
    ctx.result.tickets.add("*")  # every ticket of that sender moves between views
    ctx.result.tags = True


@HANDLERS.reset
def _reset(cur: sqlite3.Cursor) -> None:
    cur.execute("DELETE FROM ticket_work")
    cur.execute("DELETE FROM ticket_tags")
    cur.execute("DELETE FROM spam_blocks")
