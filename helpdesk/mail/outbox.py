"""The outbox: outgoing mail stored durably before any network I/O, sent exactly once.

States and the only transitions there are (each one a compare-and-swap update,
``UPDATE ... WHERE id = ? AND state = <expected>``, that checks its row count, so two
processes sharing one database, the GUI and a CLI ``sync``, never both act)::

    staged ──▶ queued ──▶ claiming ──▶ sending ──▶ accepted ──▶ sent
      │          ▲  ▲         │  │        │  │  (SMTP said 250)   (Sent copy, team event,
      ▼          │  └─────────┘  │        │  │                     close: each once)
   (deleted)     │   fence failed│        │  └──▶ uncertain (the message may have gone:
                 │   (network)   ▼        │        the connection died after the whole
                 │             held       │        message was sent, or the app died
                 │     (a teammate holds  │        while sending and no copy is in Sent)
                 │      the ticket)       ├──▶ failed (permanent refusal, server's words)
                 └────────────────────────┘ temporary failure before the message went
    failed, held, uncertain ──▶ queued  only when the person asks (retry)
    held ──▶ queued  a newcomer's reply, once a teammate approved it (the team log says so)
    queued, failed, held ──▶ cancelled  the person undid the send: the draft is back

- ``queued`` with ``not_before``: the undo window. Nothing takes the item before that
  time (the sync pass leaves it queued); :meth:`Outbox.send_now` clears it. A cancel is
  the compare-and-swap ``queued -> cancelled`` and a take is ``queued -> claiming``, so
  when both race exactly one wins: either nothing is sent and the draft is back, or the
  cancel is refused ("being sent" / "already sent") and the mail goes once.

- ``staged``: written before a team event that decides whether it goes at all (a
  shipped-card note, a survey); promoted to ``queued`` once the event is folded.
- ``claiming``: taken by one session (``owner``); the claim fence runs; nothing sent.
- ``sending``: committed right before the SMTP transaction.
- ``accepted`` never goes back to ``queued``: what failed after SMTP said yes (filing
  the Sent copy, the ``reply-sent`` event) is retried on its own.

An owner is ``host:pid:nonce`` of a live session; work left by a dead one is taken
over (claiming: back to queued, nothing was sent; sending: look in Sent, else
uncertain; accepted: finish it).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from helpdesk.clock import iso, utcnow
from helpdesk.errors import HelpdeskError, NotFoundError
from helpdesk.store import Store
from helpdesk.store.engine import db_time, parse_db_time

PENDING_STATES = ("staged", "queued", "claiming", "sending", "accepted")
VISIBLE_STATES = ("staged", "queued", "claiming", "sending", "accepted", "failed", "held",
                  "uncertain")
RETRYABLE_STATES = ("failed", "held", "uncertain")
#: What an undo can still stop: nothing of these has gone to the SMTP server.
CANCELLABLE_STATES = ("queued", "failed", "held")
DISCARDABLE_STATES = ("staged", "queued", "failed", "held", "uncertain")
#: The ``last_error`` of a newcomer's reply held for a teammate's approval (helpdesk.rota).
WAITING_FOR_APPROVAL = "Waiting for approval by a teammate (newcomer weeks)."
MAX_BACKOFF = timedelta(minutes=30)
#: An owner on another host (or a process that outlived this) is presumed dead after this.
OWNER_LEASE = timedelta(minutes=30)

_HOST = socket.gethostname()
_LIVE: set[str] = set()  # owners (sessions) alive in this process
_LIVE_LOCK = threading.Lock()


def backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=15 * 2 ** max(0, attempts - 1)), MAX_BACKOFF)


def new_owner() -> str:
    """A fresh owner token for one session of this process (see :func:`owner_alive`)."""
    token = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    with _LIVE_LOCK:
        _LIVE.add(token)
    return token


def retire_owner(token: str) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(token)


def owner_alive(token: str | None, since: datetime | None, now: datetime | None = None) -> bool:
    """Whether the session named ``token`` may still be working on an item."""
    if not token:
        return False
    host, _, rest = token.partition(":")
    pid_text, _, _nonce = rest.partition(":")
    now = now or utcnow()
    if host == _HOST and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            with _LIVE_LOCK:
                return token in _LIVE
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
    return since is not None and now - since < OWNER_LEASE


@dataclass
class OutboxItem:
    id: int
    kind: str
    ticket_id: str | None
    message_id: str
    agent: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
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
    owner: str | None
    owner_at: datetime | None
    not_before: datetime | None = None

    @property
    def envelope(self) -> list[str]:
        """Every SMTP recipient: To, Cc and Bcc, each once (Bcc is in no header)."""
        return list(dict.fromkeys([*self.to, *self.cc, *self.bcc]))

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "ticket_id": self.ticket_id, "kind": self.kind,
                "state": self.state, "last_error": self.last_error, "attempts": self.attempts,
                "subject": self.subject, "to": self.to, "message_id": self.message_id,
                "created_at": iso(self.created_at), "sent_at": iso(self.sent_at),
                "next_attempt_at": iso(self.next_attempt_at), "close_after": self.close_after,
                "cc": self.cc, "bcc": self.bcc, "not_before": iso(self.not_before),
                "attachments": list(self.meta.get("attachments") or []),
                "waiting_for_approval": self.waiting_for_approval}

    @property
    def waiting_for_approval(self) -> bool:
        """A newcomer's reply held until a teammate approves it."""
        return self.state == "held" and self.last_error == WAITING_FOR_APPROVAL


def _item(row: Any) -> OutboxItem:
    return OutboxItem(
        id=row["id"], kind=row["kind"], ticket_id=row["ticket_id"],
        message_id=row["message_id"], agent=row["agent"], to=json.loads(row["to_addrs"]),
        cc=json.loads(row["cc_addrs"] or "[]"), bcc=json.loads(row["bcc_addrs"] or "[]"),
        not_before=parse_db_time(row["not_before"]),
        subject=row["subject"], body=row["body"], raw=row["raw"], state=row["state"],
        attempts=row["attempts"], next_attempt_at=parse_db_time(row["next_attempt_at"]),
        last_error=row["last_error"], created_at=parse_db_time(row["created_at"]) or utcnow(),
        sent_at=parse_db_time(row["sent_at"]), close_after=bool(row["close_after"]),
        sent_copy_done=bool(row["sent_copy_done"]), event_done=bool(row["event_done"]),
        meta=json.loads(row["meta"] or "{}"), owner=row["owner"],
        owner_at=parse_db_time(row["owner_at"]))


class Outbox:
    """Storage and compare-and-swap state transitions (sending: helpdesk/replies.py).

    Every method that moves an item names the state(s) it expects and answers whether
    it moved it; ``owner`` methods also require the item to be held by ``owner``.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- reading ----------------------------------------------------------------------

    def get(self, item_id: int) -> OutboxItem:
        with self.store.read() as conn:
            row = conn.execute(text("SELECT * FROM outbox WHERE id = :i"),
                               {"i": item_id}).mappings().first()
        if row is None:
            raise NotFoundError(f"There is no item {item_id} in the outbox.")
        return _item(row)

    def items(self, ticket_id: str | None = None, states: tuple[str, ...] = VISIBLE_STATES
              ) -> list[OutboxItem]:
        sql = "SELECT * FROM outbox WHERE state IN (SELECT value FROM json_each(:states))"
        params: dict[str, Any] = {"states": json.dumps(list(states))}
        if ticket_id:
            sql += " AND ticket_id = :t"
            params["t"] = ticket_id
        with self.store.read() as conn:
            return [_item(r) for r in conn.execute(text(sql + " ORDER BY id"),
                                                   params).mappings()]

    # --- writing ----------------------------------------------------------------------

    def enqueue(self, *, kind: str, ticket_id: str | None, message_id: str, agent: str,
                to: list[str], subject: str, body: str, raw: bytes, close_after: bool = False,
                meta: dict[str, Any] | None = None, staged: bool = False,
                cc: list[str] | None = None, bcc: list[str] | None = None,
                not_before: datetime | None = None) -> int:
        """Store one message (its bytes, attachments included) before any network I/O."""
        with self.store.begin() as conn:
            return int(conn.execute(text(
                "INSERT INTO outbox (kind, ticket_id, message_id, agent, to_addrs, cc_addrs, "
                "bcc_addrs, subject, body, raw, state, created_at, close_after, meta, "
                "not_before) VALUES (:k, :t, :m, :a, :to, :cc, :bcc, :s, :b, :r, :state, :c, "
                ":close, :meta, :nb) RETURNING id"),
                {"k": kind, "t": ticket_id, "m": message_id, "a": agent, "to": json.dumps(to),
                 "cc": json.dumps(cc or []), "bcc": json.dumps(bcc or []),
                 "s": subject, "b": body, "r": raw, "c": utcnow(), "close": close_after,
                 "meta": json.dumps(meta or {}), "state": "staged" if staged else "queued",
                 "nb": db_time(not_before) if not_before else None}
            ).scalar_one())

    def _move(self, item_id: int, expect: tuple[str, ...], held_by: str | None,
              **fields: Any) -> bool:
        """The one compare-and-swap: set ``fields`` if the item is in ``expect`` (and held
        by ``held_by`` when given). True when this call moved it."""
        sets = ", ".join(f"{k} = :{k}" for k in fields)
        sql = (f"UPDATE outbox SET {sets} WHERE id = :_id AND state IN "
               f"(SELECT value FROM json_each(:_expect))")
        params = {**fields, "_id": item_id, "_expect": json.dumps(list(expect))}
        if held_by is not None:
            sql += " AND owner = :_owner"
            params["_owner"] = held_by
        with self.store.begin() as conn:
            return conn.execute(text(sql), params).rowcount == 1

    def promote(self, item_id: int) -> bool:
        """staged -> queued: the event that decided it is folded and says go."""
        return self._move(item_id, ("staged",), None, state="queued")

    def drop_staged(self, item_id: int) -> bool:
        """A staged item that must not go (a teammate's event won): gone for good."""
        with self.store.begin() as conn:
            return conn.execute(text("DELETE FROM outbox WHERE id = :i AND state = 'staged'"),
                                {"i": item_id}).rowcount == 1

    def take(self, item_id: int, owner: str) -> bool:
        """queued -> claiming by ``owner``, once its undo window is over; False when
        another session took it first, it was cancelled, or it is not due yet."""
        now = db_time(utcnow())
        with self.store.begin() as conn:
            return conn.execute(text(
                "UPDATE outbox SET state = 'claiming', owner = :o, owner_at = :now "
                "WHERE id = :i AND state = 'queued' AND (not_before IS NULL OR "
                "not_before <= :now)"), {"o": owner, "now": now, "i": item_id}).rowcount == 1

    def send_now(self, item_id: int) -> bool:
        """End the undo window of a queued item (\"send now\"); False if it is not queued."""
        return self._move(item_id, ("queued",), None, not_before=None)

    def next_due(self) -> datetime | None:
        """When the earliest undo window still running ends (None: none is)."""
        with self.store.read() as conn:
            value = conn.execute(text(
                "SELECT min(not_before) FROM outbox WHERE state = 'queued' AND "
                "not_before > :now"), {"now": db_time(utcnow())}).scalar()
        return parse_db_time(value)

    def adopt(self, item: OutboxItem, owner: str) -> bool:
        """Take over ``item`` in its state from the owner it had when read (dead or none)."""
        sql = ("UPDATE outbox SET owner = :me, owner_at = :now WHERE id = :i AND state = :s "
               "AND owner IS :was")
        with self.store.begin() as conn:
            return conn.execute(text(sql), {"me": owner, "now": utcnow(), "i": item.id,
                                            "s": item.state, "was": item.owner}).rowcount == 1

    def start_sending(self, item_id: int, owner: str, attempts: int) -> bool:
        """claiming -> sending, committed right before the SMTP transaction."""
        return self._move(item_id, ("claiming",), owner, state="sending", attempts=attempts,
                          owner_at=utcnow())

    def accepted(self, item_id: int, owner: str) -> bool:
        """sending -> accepted: the SMTP server took the message."""
        return self._move(item_id, ("sending",), owner, state="accepted",
                          smtp_accepted_at=utcnow(), last_error=None)

    def give_back(self, item: OutboxItem, owner: str, state: str, error: str | None,
                  retry: bool = False) -> bool:
        """claiming/sending -> queued (``retry``: after a back-off), held, failed or
        uncertain; the owner lets go."""
        if state not in ("queued", "held", "failed", "uncertain"):
            raise ValueError(state)
        next_at = utcnow() + backoff(item.attempts) if retry else None
        return self._move(item.id, ("claiming", "sending"), owner, state=state,
                          last_error=error, owner=None, owner_at=None, next_attempt_at=next_at)

    def step_done(self, item_id: int, owner: str, step: str) -> bool:
        """Record one finishing step of an accepted item (``sent_copy_done``, ``event_done``)."""
        if step not in ("sent_copy_done", "event_done"):
            raise ValueError(step)
        return self._move(item_id, ("accepted",), owner, **{step: True})

    def unfinished(self, item_id: int, owner: str, error: str) -> bool:
        """An accepted item whose finishing failed: stays accepted, owner lets go."""
        return self._move(item_id, ("accepted",), owner, last_error=error, owner=None,
                          owner_at=None)

    def sent(self, item_id: int, owner: str) -> bool:
        """accepted -> sent: Sent copy filed, team told, ticket closed if asked."""
        return self._move(item_id, ("accepted",), owner, state="sent", sent_at=utcnow(),
                          last_error=None, owner=None, owner_at=None)

    def found_in_sent(self, item_id: int, owner: str) -> bool:
        """sending -> accepted after the app died mid-send: the copy is in Sent."""
        return self._move(item_id, ("sending",), owner, state="accepted",
                          smtp_accepted_at=utcnow())

    # --- the person's decisions --------------------------------------------------------

    def requeue(self, item_id: int) -> None:
        """Send a failed, held or uncertain item again (the person asked for it)."""
        item = self.get(item_id)
        if item.state == "sent":
            raise HelpdeskError(f"Outbox item {item_id} was already sent "
                                f"({iso(item.sent_at) or 'earlier'}); it is not sent again.")
        if item.state not in RETRYABLE_STATES:
            raise HelpdeskError(f"Outbox item {item_id} is {item.state}, already on its way; "
                                f"only failed, held or uncertain items can be retried.")
        if not self._move(item_id, RETRYABLE_STATES, None, state="queued",
                          next_attempt_at=None, last_error=None, owner=None, owner_at=None):
            raise HelpdeskError(f"Outbox item {item_id} changed meanwhile; look again.")

    def cancel(self, item_id: int,
               restore: Callable[[Connection, OutboxItem], None] | None = None) -> OutboxItem:
        """Undo a send: queued, failed or held -> cancelled, and ``restore(conn, item)``
        puts the draft back in the same transaction. Refuses (a HelpdeskError saying
        "being sent" or "already sent") when a session took it first: then it goes once."""
        with self.store.begin() as conn:
            moved = conn.execute(text(
                "UPDATE outbox SET state = 'cancelled', owner = NULL, owner_at = NULL, "
                "not_before = NULL WHERE id = :i AND state IN "
                "(SELECT value FROM json_each(:ok))"),
                {"i": item_id, "ok": json.dumps(list(CANCELLABLE_STATES))}).rowcount == 1
            row = conn.execute(text("SELECT * FROM outbox WHERE id = :i"),
                               {"i": item_id}).mappings().first()
            if row is None:
                raise NotFoundError(f"There is no item {item_id} in the outbox.")
            item = _item(row)
            if moved and restore is not None:
                restore(conn, item)
        if moved:
            return item
        if item.state == "sent":
            raise HelpdeskError(f"Outbox item {item_id} was already sent "
                                f"({iso(item.sent_at) or 'earlier'}); it cannot be undone.")
        if item.state == "cancelled":
            raise HelpdeskError(f"Outbox item {item_id} was already cancelled; its draft "
                                f"is kept.")
        if item.state == "uncertain":
            raise HelpdeskError(f"Outbox item {item_id} may already have been sent "
                                f"(uncertain); check, then discard it.")
        raise HelpdeskError(f"Outbox item {item_id} is being sent right now ({item.state}); "
                            f"it can no longer be cancelled and will go once.")

    def discard(self, item_id: int) -> None:
        """Drop an unsent item; refuse one that is being sent or was sent."""
        item = self.get(item_id)
        with self.store.begin() as conn:
            gone = conn.execute(text(
                "DELETE FROM outbox WHERE id = :i AND state IN "
                "(SELECT value FROM json_each(:ok))"),
                {"i": item_id, "ok": json.dumps(list(DISCARDABLE_STATES))}).rowcount == 1
        if not gone:
            if item.state == "sent":
                raise HelpdeskError(f"Outbox item {item_id} was already sent; there is "
                                    f"nothing to discard.")
            raise HelpdeskError(f"Outbox item {item_id} is being sent right now "
                                f"({item.state}); it cannot be discarded.")

    # --- what is due ------------------------------------------------------------------

    def release_held(self, item_id: int) -> bool:
        """held -> queued once a teammate approved it (newcomer weeks); True when this
        call moved it, so however many passes see the approval, one sends it."""
        return self._move(item_id, ("held",), None, state="queued", next_attempt_at=None,
                          last_error=None, owner=None, owner_at=None)

    def pending(self) -> list[OutboxItem]:
        """Every item not yet sent, failed, held or uncertain, oldest first."""
        return self.items(states=PENDING_STATES)
