"""Fold handlers of the rota, hand-offs, newcomers and approvals (team state).

* ``rota`` (subject ``team``): the whole rotation (see :func:`schedule.rota_of`); a
  last-writer-wins register in ``meta`` (``team.rota``).
* ``rota-swap`` (subject: a date ``YYYY-MM-DD``): ``{"agent": "kim"}`` puts ``kim`` on
  duty that day (``null``: back to the rotation); last writer wins per date.
* ``rota-handoff`` (subject: a ticket id): the first one per ticket in log order wins on
  every replica. The person it goes to is decided *here*, from the folded rota at the
  event's server time T(e) in the team's zone (the ``agent`` in the data is only what the
  publisher expected), so three desktops publishing at once hand the ticket over once, to
  one person, everywhere. The winner is recorded in ``rota_handoffs`` and handed to
  :func:`helpdesk.rota.handoff.apply_assignment`.
* ``learning`` (subject: an agent): ``{"until": "YYYY-MM-DD" | null}``: the agent's
  replies are held for approval through that date (null: no longer learning).
* ``approval-request`` (subject: a ticket id): ``{"message_id", "subject", "to", "bcc",
  "text", "attachments"}``, a newcomer's held reply, readable by every teammate.
* ``approval`` (subject: a Message-ID): the first approval by someone other than the
  reply's author wins; the author's desktop then sends it (exactly once, by the outbox).
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date
from typing import Any

from helpdesk.rota import schedule
from helpdesk.rota.handoff import apply_assignment
from helpdesk.team.fold import BadData, FoldContext, Handlers, db_time, required_text, text_field
from helpdesk.team_settings import put_meta as put

HANDLERS = Handlers("rota")

ROTA_KEY = "team.rota"
SWAP_PREFIX = "team.rota_swap."
LEARNING_PREFIX = "team.learning."
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def read_json(cur: sqlite3.Cursor, key: str) -> dict[str, Any] | None:
    row = cur.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    try:
        data = json.loads(row[0]) if row and row[0] else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def rota_in(cur: sqlite3.Cursor) -> schedule.Rota | None:
    """The folded rota (None: the team set none, or cleared it)."""
    data = read_json(cur, ROTA_KEY)
    if not data or not data.get("people"):
        return None
    try:
        return schedule.rota_of(data)
    except schedule.RotaError:
        return None


def swaps_in(cur: sqlite3.Cursor) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in cur.execute("SELECT key, value FROM meta WHERE key LIKE ?",
                                  (SWAP_PREFIX + "%",)).fetchall():
        try:
            agent = json.loads(value).get("agent")
        except (ValueError, AttributeError):
            continue
        if isinstance(agent, str) and agent:
            out[key[len(SWAP_PREFIX):]] = agent
    return out


def learning_in(cur: sqlite3.Cursor) -> dict[str, date]:
    """Each learning agent with the last day their replies are held."""
    out: dict[str, date] = {}
    for key, value in cur.execute("SELECT key, value FROM meta WHERE key LIKE ?",
                                  (LEARNING_PREFIX + "%",)).fetchall():
        try:
            until = json.loads(value).get("until")
            if isinstance(until, str):
                out[key[len(LEARNING_PREFIX):]] = date.fromisoformat(until)
        except (ValueError, AttributeError):
            continue
    return out


@HANDLERS.on("rota")
def _rota(ctx: FoldContext) -> None:
    data = ctx.event.data
    if not data.get("people"):
        value: dict[str, Any] = {"people": []}  # the rota switched off
    else:
        try:
            value = schedule.rota_of(data).as_json()
        except schedule.RotaError as exc:
            raise BadData(str(exc)) from None
    # Hand-offs apply to tickets that arrive after they were switched on (server time),
    # never to the backlog; changing the people later keeps that moment.
    before = read_json(ctx.cur, ROTA_KEY) or {}
    if value.get("handoff_minutes"):
        value["handoff_since"] = (before.get("handoff_since") if before.get("handoff_minutes")
                                  else None) or db_time(ctx.at)
    if put(ctx.cur, ROTA_KEY, value, ctx.uid):
        ctx.result.tickets.add("*")


@HANDLERS.on("rota-swap")
def _rota_swap(ctx: FoldContext) -> None:
    day = ctx.event.subject
    if not _DATE.fullmatch(day):
        raise BadData("a swap names a date YYYY-MM-DD")
    date.fromisoformat(day)
    agent = text_field(ctx.event.data, "agent")
    name = schedule.clean_name(agent) if agent else None
    if put(ctx.cur, SWAP_PREFIX + day, {"agent": name}, ctx.uid):
        ctx.result.tickets.add("*")  # every window's "on duty" line follows


@HANDLERS.on("rota-handoff")
def _rota_handoff(ctx: FoldContext) -> None:
    ticket = ctx.event.subject.strip()
    if not ticket:
        raise BadData("a hand-off names a ticket")
    if ctx.cur.execute("SELECT 1 FROM rota_handoffs WHERE ticket_id = ?",
                       (ticket,)).fetchone():
        return  # handed off already: the first in log order won
    rota = rota_in(ctx.cur)
    if rota is None:
        return  # no rota at T(e): nobody to hand it to
    day = schedule.team_date(ctx.at, rota.timezone)
    agent = schedule.on_duty(rota, day, swaps_in(ctx.cur)).agent
    if agent is None:
        return  # a day off: nobody is on duty
    ctx.cur.execute("INSERT INTO rota_handoffs (ticket_id, agent, day, at, uid, event_id, "
                    "by_agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (ticket, agent, day.isoformat(), db_time(ctx.at), ctx.uid, ctx.event.id,
                     ctx.event.agent))
    if apply_assignment(ctx.cur, ticket, agent, ctx.at, ctx.uid):
        ctx.result.assigned.append((ticket, agent, ctx.event.agent))
    ctx.result.tickets.add(ticket)


@HANDLERS.on("learning")
def _learning(ctx: FoldContext) -> None:
    agent = schedule.clean_name(ctx.event.subject)
    until = text_field(ctx.event.data, "until")
    if until is not None:
        if not _DATE.fullmatch(until):
            raise BadData("until is a date YYYY-MM-DD")
        date.fromisoformat(until)
    put(ctx.cur, LEARNING_PREFIX + agent, {"until": until}, ctx.uid)
    ctx.result.tickets.add("*")


@HANDLERS.on("approval-request")
def _approval_request(ctx: FoldContext) -> None:
    data = ctx.event.data
    mid = required_text(data, "message_id").strip()[:500]
    to = data.get("to") or []
    bcc = data.get("bcc") or []
    files = data.get("attachments") or []
    for value, name in ((to, "to"), (bcc, "bcc")):
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            raise BadData(f"{name} is a list of addresses")
    # Bcc is shown to the approver (it says who gets the mail), never in any header.
    to = to + [f"{a} (Bcc)" for a in bcc]
    if not isinstance(files, list) or not all(isinstance(a, str) for a in files):
        raise BadData("attachments is a list of file names")
    ctx.cur.execute(
        "INSERT OR IGNORE INTO approval_requests (message_id, ticket_id, agent, subject, "
        "to_addrs, text, attachments, at, uid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (mid, ctx.event.subject or None, ctx.event.agent,
         (text_field(data, "subject") or "")[:500], json.dumps(to[:50]),
         (text_field(data, "text") or "")[:40000], json.dumps(files[:50]),
         db_time(ctx.at), ctx.uid))
    if ctx.event.subject:
        ctx.result.tickets.add(ctx.event.subject)


@HANDLERS.on("approval")
def _approval(ctx: FoldContext) -> None:
    mid = ctx.event.subject.strip()
    row = ctx.cur.execute("SELECT agent, ticket_id FROM approval_requests WHERE message_id = ?",
                          (mid,)).fetchone()
    if row is None:
        raise BadData("no held reply has this Message-ID")
    if row[0] == ctx.event.agent:
        raise BadData("a newcomer cannot approve their own reply")
    ctx.cur.execute("INSERT OR IGNORE INTO approvals (message_id, agent, at, uid) "
                    "VALUES (?, ?, ?, ?)", (mid, ctx.event.agent, db_time(ctx.at), ctx.uid))
    if row[1]:
        ctx.result.tickets.add(row[1])


@HANDLERS.reset
def _reset(cur: sqlite3.Cursor) -> None:
    cur.execute("DELETE FROM meta WHERE key = ? OR key LIKE ? OR key LIKE ?",
                (ROTA_KEY, SWAP_PREFIX + "%", LEARNING_PREFIX + "%"))
    for table in ("rota_handoffs", "approvals", "approval_requests"):
        cur.execute(f"DELETE FROM {table}")
