"""The outbox: outgoing mail stored durably before any network I/O.

States::

    queued ──▶ sending ──▶ accepted ──▶ sent
       ▲          │  (SMTP said 250)     (Sent copy + team event + close done)
       └──────────┘ temporary failure (retry with backoff)
    failed: permanent failure, with the server's words; the body is kept
    held:   a teammate holds the ticket; nothing was sent, the body is kept
    uncertain: the app stopped between SMTP and recording the answer and no
               copy was found in Sent; it is not re-sent automatically

Exactly once: ``sending`` is committed before the SMTP transaction and
``accepted`` right after it. A row found in ``sending`` at start-up may or may
not have reached the server; before re-sending we look for its Message-ID in
the Sent folder (servers that file sent mail themselves put it there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from helpdesk.clock import utcnow
from helpdesk.store import Store

PENDING_STATES = ("queued", "sending", "accepted")
VISIBLE_STATES = ("queued", "sending", "accepted", "failed", "held", "uncertain")
MAX_BACKOFF = timedelta(minutes=30)


def backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=15 * 2 ** max(0, attempts - 1)), MAX_BACKOFF)


@dataclass
class OutboxItem:
    id: int
    kind: str
    ticket_id: str | None
    message_id: str
    agent: str
    to: list[str]
    subject: str
    body: str
    raw: bytes
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    close_after: bool
    sent_copy_done: bool
    event_done: bool
    meta: dict[str, Any]

    def public(self) -> dict[str, Any]:
        from helpdesk.clock import iso
        return {"id": self.id, "ticket_id": self.ticket_id, "kind": self.kind,
                "state": self.state, "last_error": self.last_error, "attempts": self.attempts,
                "subject": self.subject, "to": self.to, "message_id": self.message_id,
                "created_at": iso(self.created_at), "sent_at": iso(self.sent_at),
                "next_attempt_at": iso(self.next_attempt_at), "close_after": self.close_after}


def _item(row: Any) -> OutboxItem:
    from helpdesk.team.fold import parse_db_time

    return OutboxItem(
        id=row["id"], kind=row["kind"], ticket_id=row["ticket_id"],
        message_id=row["message_id"], agent=row["agent"], to=json.loads(row["to_addrs"]),
        subject=row["subject"], body=row["body"], raw=row["raw"], state=row["state"],
        attempts=row["attempts"], next_attempt_at=parse_db_time(row["next_attempt_at"]),
        last_error=row["last_error"], created_at=parse_db_time(row["created_at"]) or utcnow(),
        sent_at=parse_db_time(row["sent_at"]), close_after=bool(row["close_after"]),
        sent_copy_done=bool(row["sent_copy_done"]), event_done=bool(row["event_done"]),
        meta=json.loads(row["meta"] or "{}"))


class Outbox:
    """Storage and state transitions; the sending itself lives in helpdesk/replies.py."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def enqueue(self, *, kind: str, ticket_id: str | None, message_id: str, agent: str,
                to: list[str], subject: str, body: str, raw: bytes, close_after: bool = False,
                meta: dict[str, Any] | None = None) -> int:
        with self.store.begin() as conn:
            return int(conn.execute(text(
                "INSERT INTO outbox (kind, ticket_id, message_id, agent, to_addrs, subject, body, "
                "raw, state, created_at, close_after, meta) VALUES (:k, :t, :m, :a, :to, :s, :b, "
                ":r, 'queued', :c, :close, :meta) RETURNING id"),
                {"k": kind, "t": ticket_id, "m": message_id, "a": agent, "to": json.dumps(to),
                 "s": subject, "b": body, "r": raw, "c": utcnow(), "close": close_after,
                 "meta": json.dumps(meta or {})}).scalar_one())

    def get(self, item_id: int) -> OutboxItem:
        with self.store.read() as conn:
            row = conn.execute(text("SELECT * FROM outbox WHERE id = :i"),
                               {"i": item_id}).mappings().one()
        return _item(row)

    def due(self, now: datetime | None = None, ids: list[int] | None = None) -> list[OutboxItem]:
        """Pending items whose retry time has come (or exactly ``ids``), oldest first."""
        now = now or utcnow()
        with self.store.read() as conn:
            rows = conn.execute(text(
                "SELECT * FROM outbox WHERE state IN ('queued', 'sending', 'accepted') "
                "ORDER BY id")).mappings().all()
        items = [_item(r) for r in rows]
        if ids is not None:
            return [i for i in items if i.id in ids]
        return [i for i in items if i.next_attempt_at is None or i.next_attempt_at <= now
                or i.state in ("sending", "accepted")]

    def items(self, ticket_id: str | None = None, states: tuple[str, ...] = VISIBLE_STATES
              ) -> list[OutboxItem]:
        marks = ", ".join(f"'{s}'" for s in states)
        sql = f"SELECT * FROM outbox WHERE state IN ({marks})"
        params: dict[str, Any] = {}
        if ticket_id:
            sql += " AND ticket_id = :t"
            params["t"] = ticket_id
        with self.store.read() as conn:
            return [_item(r) for r in conn.execute(text(sql + " ORDER BY id"),
                                                   params).mappings()]

    def update(self, item_id: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        with self.store.begin() as conn:
            conn.execute(text(f"UPDATE outbox SET {sets} WHERE id = :_id"),
                         {**fields, "_id": item_id})

    def retry_later(self, item: OutboxItem, error: str) -> None:
        self.update(item.id, state="queued", last_error=error,
                    next_attempt_at=utcnow() + backoff(item.attempts))

    def discard(self, item_id: int) -> None:
        with self.store.begin() as conn:
            conn.execute(text("DELETE FROM outbox WHERE id = :i AND state IN "
                              "('failed', 'held', 'uncertain', 'queued')"), {"i": item_id})

    def requeue(self, item_id: int) -> None:
        """Send a failed, held or uncertain item again (the person asked for it)."""
        self.update(item_id, state="queued", next_attempt_at=None, last_error=None)
