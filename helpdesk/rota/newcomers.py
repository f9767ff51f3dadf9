"""Newcomer weeks: a learning teammate's replies wait for a second pair of eyes.

A teammate marked learning (``learning`` event, until a date in the team's zone) keeps
writing replies as usual. The outbox sends nothing of theirs unapproved: at the claim
fence (:mod:`helpdesk.sending`) such a reply goes ``claiming -> held`` ("Waiting for
approval") and its ``approval-request`` event (the text, recipients, file names) is
published, so teammates on any desktop can read it. A teammate approves in one click
(an ``approval`` event; the first one folded counts, the author's own never does). The
author's desktop, on its next pass, moves the held item ``held -> queued`` by
compare-and-swap and the outbox sends it exactly once (two approvers at once: two
events, one approval, one move, one mail).

The reads here take a connection and the server's clock; nothing here sends.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

from helpdesk.mail.outbox import WAITING_FOR_APPROVAL
from helpdesk.rota import schedule
from helpdesk.rota.fold import LEARNING_PREFIX, ROTA_KEY

WAITING = WAITING_FOR_APPROVAL
MAX_TEXT = 40000


def team_zone(conn: Connection) -> str:
    """The team's time zone (the rota's; UTC when the team set none)."""
    value = conn.execute(text("SELECT value FROM meta WHERE key = :k"), {"k": ROTA_KEY}).scalar()
    try:
        zone = json.loads(value or "{}").get("timezone") or "UTC"
        return schedule.clean_zone(zone)
    except (ValueError, AttributeError, schedule.RotaError):
        return "UTC"


def learning_until(conn: Connection, agent: str) -> date | None:
    value = conn.execute(text("SELECT value FROM meta WHERE key = :k"),
                         {"k": LEARNING_PREFIX + agent}).scalar()
    try:
        until = json.loads(value or "{}").get("until")
        return date.fromisoformat(until) if isinstance(until, str) else None
    except (ValueError, AttributeError):
        return None


def is_learning(conn: Connection, agent: str, now: datetime) -> bool:
    """Whether ``agent``'s replies are held at server time ``now`` (through ``until``)."""
    until = learning_until(conn, agent)
    return until is not None and schedule.team_date(now, team_zone(conn)) <= until


def approved(conn: Connection, message_id: str) -> str | None:
    """Who approved the held reply ``message_id`` (None: nobody yet)."""
    value = conn.execute(text("SELECT agent FROM approvals WHERE message_id = :m"),
                         {"m": message_id}).scalar()
    return str(value) if value else None


def request_id(message_id: str) -> str:
    """The event id of a reply's approval request: a retried request is one event."""
    return hashlib.sha256((message_id + "/approval-request").encode()).hexdigest()[:32]


def requests(conn: Connection, *, pending_only: bool = True) -> list[dict[str, Any]]:
    """Held replies as teammates see them: ``{id, message_id, ticket, agent, subject, to,
    text, attachments, requested_at, approved_by, approved_at}``, oldest first. ``id`` is
    a short key for ``outbox --approve``."""
    rows = conn.execute(text(
        "SELECT r.*, a.agent AS approved_by, a.at AS approved_at FROM approval_requests r "
        "LEFT JOIN approvals a ON a.message_id = r.message_id "
        + ("WHERE a.message_id IS NULL " if pending_only else "") + "ORDER BY r.uid"
    )).mappings().all()
    return [{"id": short_key(r["message_id"]), "message_id": r["message_id"],
             "ticket": r["ticket_id"], "agent": r["agent"], "subject": r["subject"],
             "to": json.loads(r["to_addrs"] or "[]"), "text": r["text"],
             "attachments": json.loads(r["attachments"] or "[]"),
             "requested_at": r["at"], "approved_by": r["approved_by"],
             "approved_at": r["approved_at"]} for r in rows]


def short_key(message_id: str) -> str:
    return hashlib.sha256(message_id.encode()).hexdigest()[:10]


def find_request(conn: Connection, key: str) -> dict[str, Any] | None:
    """The request named by its short key (or Message-ID), pending or not."""
    key = key.strip().strip("<>")
    for r in requests(conn, pending_only=False):
        if key and ((r["id"].startswith(key.lower()) and len(key) >= 4)
                    or r["message_id"] == key):
            return r
    return None
