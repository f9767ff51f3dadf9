"""The Desk: one facade whose methods are the user's intents.

The GUI and the CLI both talk to the core only through this class. Methods that
touch the network open (or are handed) their own IMAP connection; callers in a
GUI run them on a worker thread.
"""

from __future__ import annotations

import imaplib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import imapclient
from sqlalchemy import text as sql_text

import helpdesk.metrics  # noqa: F401
from helpdesk.changes import Changes
from helpdesk.clock import iso, utcnow
from helpdesk.config import Profile
from helpdesk.errors import ConflictError, HelpdeskError, MailError, NotFoundError
from helpdesk.mail.imap import connect, logout_quietly
from helpdesk.mail.push import LoopStatus, PushLoop, describe_error
from helpdesk.mail.sync import (
    MailSync,
    SyncResult,
    refresh_tickets,
)
from helpdesk.replies import Replies
from helpdesk.store import Store, open_store
from helpdesk.store import queries as q
from helpdesk.team.events import Event
from helpdesk.team.fold import FoldResult, parse_db_time
from helpdesk.team.log import TeamLog
from helpdesk.team.registers import PROFILE_FIELDS

if TYPE_CHECKING:
    from helpdesk.cards import FeedbackCards
    from helpdesk.metrics import ServiceMetrics

log = logging.getLogger(__name__)


def _is_network_error(exc: BaseException) -> bool:
    import imaplib
    import socket

    import imapclient.exceptions

    return isinstance(exc, OSError | socket.timeout | imaplib.IMAP4.abort | imaplib.IMAP4.error
                      | imapclient.exceptions.IMAPClientError | EOFError)


class Desk:
    """Everything an agent can do, for one profile and one local store."""

    def __init__(self, profile: Profile, store: Store | None = None,
                 connect_imap: Callable[[], imapclient.IMAPClient] | None = None) -> None:
        self.profile = profile
        self.store = store or open_store(profile.database)
        self._connect = connect_imap or (lambda: connect(profile.imap))
        self.mail = MailSync(self.store, profile)
        self.team = TeamLog(self.store, profile.imap.team_folder)
        self._sync_lock = threading.Lock()
        self._client_lock = threading.RLock()
        self._client: imapclient.IMAPClient | None = None

    @property
    def agent(self) -> str:
        return self.profile.agent

    @cached_property
    def replies(self) -> Replies:
        return Replies(self)

    @cached_property
    def cards(self) -> FeedbackCards:
        """Feedback cards: the board, adding customers, close-the-loop mail."""
        from helpdesk.cards import FeedbackCards
        return FeedbackCards(self)

    @cached_property
    def metrics(self) -> ServiceMetrics:
        """NPS, response and resolution times, the cared rate."""
        from helpdesk.metrics import ServiceMetrics
        return ServiceMetrics(self)

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                logout_quietly(self._client)
                self._client = None
        self.store.close()

    @contextmanager
    def imap(self) -> Iterator[imapclient.IMAPClient]:
        """This desk's own connection for intents (claims, notes), opened on first use.

        Serialised by a lock; a connection that failed is dropped and the call is
        retried once on a fresh one (intents are idempotent by event id).
        """
        with self._client_lock:
            if self._client is None:
                self._client = self._connect()
            try:
                yield self._client
            except (OSError, EOFError, imaplib.IMAP4.abort) as exc:
                logout_quietly(self._client)
                self._client = None
                raise MailError(describe_error(exc, self.profile.imap)) from exc

    # --- connections and sync ------------------------------------------------

    def connect_imap(self) -> imapclient.IMAPClient:
        return self._connect()

    def sync_with(self, client: imapclient.IMAPClient) -> Changes:
        """One full pass over ``client``: mail folders, then team log, then outbox."""
        with self._sync_lock:
            try:
                changes = Changes(set(), set())

                def stored(batch: SyncResult) -> None:
                    # Survey answers among the new mail become NPS scores (every desktop
                    # alike), batch by batch: nothing kept grows with the mailbox.
                    changes.merge(self._score_answers(batch.tickets))

                result = self.mail.sync_all(client, on_batch=stored)
                changes.merge(Changes.of_mail(result))
                others = Changes(set(), set())
                for hook in self._sync_hooks():
                    others.merge(hook(client))
                # After the team log: tickets surveyed since the last check are re-checked
                # (an answer may have come before its survey-sent event was folded).
                others.merge(self._score_answers(others.tickets))
                changes.merge(others)
            except HelpdeskError as exc:
                self._record_error(exc)
                raise
            except Exception as exc:
                message = self._record_error(exc)
                if not _is_network_error(exc):
                    log.exception("sync failed unexpectedly")
                raise MailError(message) from exc
            self._record_ok(result)
            return changes

    def _score_answers(self, tickets: set[str]) -> Changes:
        """Record scores from survey answers among ``tickets`` (see ``after_sync``)."""
        scored = self.metrics.after_sync(set(tickets))
        if scored - {"*"}:
            with self.store.begin() as conn:
                refresh_tickets(conn, scored - {"*"})
        return Changes(scored, set())

    def _sync_hooks(self) -> list[Callable[[imapclient.IMAPClient], Changes]]:
        """Extra work per sync pass after the mail folders."""
        return [self._replay_team, self._flush_outbox]

    def _replay_team(self, client: imapclient.IMAPClient) -> Changes:
        return self._changes(self.team.replay(client))

    def _flush_outbox(self, client: imapclient.IMAPClient) -> Changes:
        return self.replies.flush(client)

    def _changes(self, fold: FoldResult) -> Changes:
        if fold.taken_over:
            for ticket, previous, by in fold.taken_over:
                if previous == self.agent:
                    log.warning("%s took over ticket %s from you", by, ticket)
        return Changes(set(fold.tickets), set(fold.customers), fold.cards,
                       taken_over=[t for t in fold.taken_over if t[1] == self.agent])

    def sync_once(self) -> Changes:
        client = self.connect_imap()
        try:
            return self.sync_with(client)
        finally:
            logout_quietly(client)

    def push_loop(self, on_status: Callable[[LoopStatus], None] | None = None,
                  on_changes: Callable[[Changes], None] | None = None) -> PushLoop:
        """A loop that keeps this desk synced (IDLE, else polling) until stopped."""
        def work(client: imapclient.IMAPClient) -> None:
            changes = self.sync_with(client)
            if on_changes and changes:
                on_changes(changes)

        def status(s: LoopStatus) -> None:
            if not s.ok:
                self.store.set_meta("sync.last_error", s.message)
                self.store.set_meta("sync.last_error_at", iso(utcnow()))
            if on_status:
                on_status(s)

        return PushLoop(self._connect, work, watch=self.watched_folders(),
                        poll_seconds=self.profile.imap.poll_seconds, settings=self.profile.imap,
                        on_status=status)

    def watched_folders(self) -> list[str]:
        return [*self.profile.imap.folders, self.profile.imap.team_folder]

    def _record_ok(self, result: SyncResult) -> None:
        with self.store.begin() as conn:
            self.store.set_meta("sync.last_ok", iso(utcnow()), conn)
            self.store.set_meta("sync.last_error", None, conn)

    def _record_error(self, exc: BaseException) -> str:
        message = describe_error(exc, self.profile.imap)
        try:
            with self.store.begin() as conn:
                self.store.set_meta("sync.last_error", message, conn)
                self.store.set_meta("sync.last_error_at", iso(utcnow()), conn)
        except Exception:
            log.exception("could not record the sync error")
        return message

    # --- reading -------------------------------------------------------------

    def server_now(self) -> datetime:
        """Best estimate of the server's clock: ours plus the offset seen on our last event."""
        offset = self.store.get_meta("team.offset")
        return utcnow() + timedelta(seconds=float(offset or 0))

    def ticket_query(self, view: str = "open", search: str = "", **kw: Any) -> q.TicketQuery:
        return q.TicketQuery(view=view, search=search, agent=self.agent, now=self.server_now(),
                             **kw)

    def ticket_ids(self, view: str = "open", search: str = "", limit: int | None = None,
                   cancelled: Callable[[], bool] | None = None, **kw: Any) -> list[str]:
        """Ticket ids of a view, filtered and sorted in SQL (``limit``: first page only).

        With ``cancelled``, raises :class:`helpdesk.store.queries.QueryCancelled` once it
        answers True (checked while the query runs).
        """
        with self.store.read() as conn:
            return q.ticket_ids(conn, self.ticket_query(view, search, **kw), limit, cancelled)

    def ticket_rows(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        with self.store.read() as conn:
            rows = q.ticket_rows(conn, ids)
        now = self.server_now()
        for row in rows.values():
            self._decorate(row, now)
        return rows

    def _decorate(self, row: dict[str, Any], now: datetime | None = None) -> None:
        """Drop a claim whose lease has lapsed (judged on the server-time estimate)."""
        active = parse_db_time(row.get("claim_active_at"))
        if row.get("claimed_by") and active is not None:
            lapse = active + timedelta(seconds=row.get("claim_lease") or 0)
            if lapse <= (now or self.server_now()):
                row["claimed_by"] = None
                row["claimed_at"] = None

    def tickets(self, view: str = "open", search: str = "") -> list[dict[str, Any]]:
        if view not in q.VIEWS:
            raise NotFoundError(f"Unknown view '{view}'. Views: {', '.join(q.VIEWS)}.")
        ids = self.ticket_ids(view, search)
        rows = self.ticket_rows(ids)
        return [self.ticket_json(rows[i]) for i in ids if i in rows]

    @staticmethod
    def ticket_json(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": row["id"], "subject": row["subject"], "customer": row["customer_email"],
            "customer_name": row["customer_name"], "status": row["status"],
            "claimed_by": row["claimed_by"], "claimed_at": iso(row.get("claimed_at")),
            "vip": bool(row["vip"]), "vip_tier": row["vip_tier"],
            "white_glove": bool(row["white_glove"]), "messages": row["message_count"],
            "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
            "waiting_since": iso(row.get("waiting_since")), "snippet": row.get("snippet", ""),
        }

    def resolve_ticket(self, ticket: str) -> str:
        """Accept '#id', 'id' or an unambiguous prefix of at least 4 characters."""
        tid = ticket.strip().lstrip("#").lower()
        with self.store.read() as conn:
            exact = conn.execute(sql_text("SELECT id FROM tickets WHERE id = :t"),
                                 {"t": tid}).first()
            if exact:
                return str(exact[0])
            if len(tid) >= 4:
                found = [r[0] for r in conn.execute(
                    sql_text("SELECT id FROM tickets WHERE id LIKE :p LIMIT 2"),
                    {"p": tid + "%"})]
                if len(found) == 1:
                    return str(found[0])
        raise NotFoundError(f"No ticket '{ticket}' in the local store. Run 'sync' first, or "
                            f"list tickets with 'tickets --view all'.")

    def ticket(self, ticket: str) -> dict[str, Any]:
        tid = self.resolve_ticket(ticket)
        row = self.ticket_rows([tid])[tid]
        with self.store.read() as conn:
            messages = q.ticket_messages(conn, tid)
        out = self.ticket_json(row)
        out["messages"] = [{
            "id": m["id"], "message_id": m["message_id"], "from": m["from_addr"],
            "from_name": m["from_name"], "to": [a for _n, a in m["to_addrs"]],
            "date": iso(m["date_header"] or m["received_at"]),
            "received_at": iso(m["received_at"]), "direction": m["direction"],
            "auto": m["auto_kind"], "subject": m["subject"], "text": m["text"],
            "html": m["html"], "attachments": m["attachments"], "defects": m["defects"],
        } for m in messages]
        out["message_count"] = len(messages)
        return out

    def status(self) -> dict[str, Any]:
        with self.store.read() as conn:
            counts = q.count_views(conn, self.ticket_query())
            messages = conn.execute(sql_text("SELECT count(*) FROM messages")).scalar()
            folders = [dict(r) for r in conn.execute(sql_text(
                "SELECT name, role, uidvalidity, last_uid, synced_at FROM folders "
                "ORDER BY id")).mappings()]
            return {
                "agent": self.agent,
                "last_sync": self.store.get_meta("sync.last_ok", conn),
                "last_error": self.store.get_meta("sync.last_error", conn),
                "last_error_at": self.store.get_meta("sync.last_error_at", conn),
                "counts": counts, "messages": messages,
                "folders": [{**f, "synced_at": iso(f["synced_at"])} for f in folders],
            }

    # --- team intents ----------------------------------------------------------

    def publish(self, *events: Event, client: imapclient.IMAPClient | None = None
                ) -> tuple[Changes, FoldResult]:
        """Append events to the team log and fold up to them (confirmed, settle-checked).

        Uses ``client`` when the caller owns a connection (the sync thread), else
        this desk's own intent connection.
        """
        if client is None:
            with self.imap() as own:
                return self.publish(*events, client=own)
        before = utcnow()
        fold = self.team.publish(client, list(events))
        at = self.team.server_time_of_event(events[-1].id)
        if at is not None:
            # Server clock minus ours, measured at the midpoint of the round trip.
            mid = before + (utcnow() - before) / 2
            self.store.set_meta("team.offset", f"{(at - mid).total_seconds():.3f}")
        return self._changes(fold), fold

    def event(self, etype: str, subject: str, **data: Any) -> Event:
        return Event(type=etype, agent=self.agent, subject=subject, data=data)

    def refresh_team(self) -> Changes:
        """Fold teammates' new events now (what a claim attempt does first)."""
        with self.imap() as client:
            return self._changes(self.team.replay(client))

    def holder(self, ticket_id: str) -> ClaimInfo:
        """Who holds ``ticket_id`` right now, by the local fold and server-time estimate."""
        with self.store.read() as conn:
            row = q.ticket_rows(conn, [ticket_id]).get(ticket_id)
            if row is None:
                state = conn.execute(sql_text(
                    "SELECT claimed_by, claimed_at, claim_active_at, claim_lease, claim_event, "
                    "status FROM ticket_state WHERE ticket_id = :t"), {"t": ticket_id}
                ).mappings().first()
                row = dict(state) if state else {"claimed_by": None}
        self._decorate(row)
        return ClaimInfo(ticket_id, row.get("claimed_by"), parse_db_time(row.get("claimed_at")),
                         row.get("claim_event") if row.get("claimed_by") else None)

    def claim(self, ticket: str) -> ClaimInfo:
        """Claim ``ticket`` for this agent; raise ConflictError naming the holder."""
        tid = self.resolve_ticket(ticket)
        with self.imap() as client:
            return self.claim_on(client, tid)

    def claim_on(self, client: imapclient.IMAPClient, tid: str) -> ClaimInfo:
        """Claim on a connection the caller owns.

        When the local fold shows a teammate holding the ticket, catch up first (it
        may have been released) and refuse without appending if it is still held.
        Otherwise the log decides: APPEND, fold up to our event, settle check.
        """
        current = self.holder(tid)
        if current.agent and current.agent != self.agent:
            self._changes(self.team.replay(client))
            current = self.holder(tid)
            if current.agent and current.agent != self.agent:
                raise ConflictError(current.conflict_message())
        ev = self.event("claim", tid, lease=self.profile.lease_minutes * 60)
        _changes, fold = self.publish(ev, client=client)
        outcome = fold.outcomes.get(ev.id)
        if outcome is None or not outcome.accepted:
            raise ConflictError(self.holder(tid).conflict_message())
        return ClaimInfo(tid, self.agent, outcome.since, ev.id)

    def renew(self, ticket: str) -> bool:
        """Extend this agent's lease (an open composer calls this); False if not held."""
        tid = self.resolve_ticket(ticket)
        current = self.holder(tid)
        if current.agent != self.agent or not current.event:
            return False
        self.publish(self.event("renew", tid, claim=current.event))
        return self.holder(tid).agent == self.agent

    def release(self, ticket: str) -> Changes:
        tid = self.resolve_ticket(ticket)
        return self.publish(self.event("release", tid))[0]

    def takeover(self, ticket: str) -> ClaimInfo:
        """Take a ticket over from its holder (who is told); ConflictError if it moved on."""
        tid = self.resolve_ticket(ticket)
        self.refresh_team()
        current = self.holder(tid)
        ev = self.event("takeover", tid, replaces=current.event,
                        lease=self.profile.lease_minutes * 60)
        _changes, fold = self.publish(ev)
        outcome = fold.outcomes.get(ev.id)
        if outcome is None or not outcome.accepted:
            raise ConflictError(self.holder(tid).conflict_message())
        return ClaimInfo(tid, self.agent, outcome.since, ev.id, previous=outcome.previous)

    def set_status(self, ticket: str, status: str, **extra: Any) -> Changes:
        tid = self.resolve_ticket(ticket)
        return self.publish(self.event("status", tid, status=status, **extra))[0]

    def close_ticket(self, ticket: str, cared: bool | None = None) -> Changes:
        """Close (which also releases the claim); ``cared`` is the agent's self-check."""
        extra = {} if cared is None else {"cared": cared}
        return self.set_status(ticket, "closed", **extra)

    def reopen(self, ticket: str) -> Changes:
        return self.set_status(ticket, "open")

    # --- replies (helpdesk/replies.py) ---------------------------------------------

    def composer(self, ticket: str) -> dict[str, Any]:
        """Recipient, subject, greeting by preferred name, VIP / white-glove reminders."""
        return self.replies.composer(ticket)

    def reply(self, ticket: str, body: str, close: bool = False,
              cared: bool | None = None) -> dict[str, Any]:
        """Send (or safely queue) a reply; ConflictError if a teammate holds the ticket.

        With ``close`` the ticket closes once the reply is sent, recording the agent's
        ``cared`` self-check in the same event.
        """
        return self.replies.reply(ticket, body, close, cared)

    def queue_mail(self, *, kind: str, to: str, subject: str, body: str,
                   ticket_id: str | None = None, in_reply_to: str | None = None,
                   references: list[str] | None = None, meta: dict[str, Any] | None = None,
                   message_id: str | None = None) -> tuple[int, str]:
        """Queue other outgoing mail (surveys, shipped-feature notes); sync sends it."""
        return self.replies.queue_mail(kind=kind, to=to, subject=subject, body=body,
                                       ticket_id=ticket_id, in_reply_to=in_reply_to,
                                       references=references, meta=meta,
                                       message_id=message_id)

    def flush_outbox(self, force: bool = False) -> Changes:
        with self.imap() as client:
            return self.replies.flush(client, force=force)

    def outbox(self, ticket: str | None = None, pending_only: bool = False
               ) -> list[dict[str, Any]]:
        states: tuple[str, ...] = ("queued", "sending", "accepted", "failed", "held",
                                   "uncertain")
        if pending_only:
            states = ("queued", "sending", "accepted")
        return [i.public() for i in self.replies.outbox.items(ticket, states)]

    def retry_outbox(self, item_id: int) -> None:
        self.replies.outbox.requeue(item_id)

    def discard_outbox(self, item_id: int) -> None:
        self.replies.outbox.discard(item_id)

    def templates(self) -> list[dict[str, str]]:
        return self.replies.templates()

    def save_template(self, name: str, body: str) -> Changes:
        if not name.strip() or not body.strip():
            raise HelpdeskError("A saved reply needs a name and a text.")
        return self.publish(self.event("template", name.strip(), body=body))[0]

    def delete_template(self, name: str) -> Changes:
        return self.publish(self.event("template-delete", name.strip()))[0]

    def render_template(self, body: str, ticket: str) -> str:
        return self.replies.render_template(body, ticket)

    def save_draft(self, ticket: str, body: str) -> None:
        """Autosave the composer (local only; survives a crash)."""
        with self.store.begin() as conn:
            conn.execute(sql_text(
                "INSERT INTO drafts (ticket_id, body, updated_at) VALUES (:t, :b, :u) "
                "ON CONFLICT (ticket_id) DO UPDATE SET body = excluded.body, "
                "updated_at = excluded.updated_at"), {"t": ticket, "b": body, "u": utcnow()})

    def draft(self, ticket: str) -> str | None:
        with self.store.read() as conn:
            value = conn.execute(sql_text("SELECT body FROM drafts WHERE ticket_id = :t"),
                                 {"t": ticket}).scalar()
        return str(value) if value is not None else None

    def discard_draft(self, ticket: str) -> None:
        with self.store.begin() as conn:
            conn.execute(sql_text("DELETE FROM drafts WHERE ticket_id = :t"), {"t": ticket})

    def attachment(self, message_pk: int, index: int) -> tuple[str, str, bytes]:
        """(filename, content type, bytes), fetched from the server on demand."""
        return self.replies.attachment(message_pk, index)

    def inline_images(self, message_pk: int) -> dict[str, bytes]:
        """Inline ``cid:`` images of a message, by Content-ID."""
        return self.replies.inline_images(message_pk)

    # --- customers -------------------------------------------------------------

    def update_customer(self, email: str, *, vip: bool | None = None, tier: str | None = None,
                        white_glove: bool | None = None, note: str | None = None,
                        **profile: str | None) -> Changes:
        """Publish every requested change to a customer as one batch of events."""
        email = normalise_email(email)
        fields = {k: v for k, v in profile.items() if k in PROFILE_FIELDS}
        unknown = set(profile) - set(PROFILE_FIELDS)
        if unknown:
            raise ValueError(f"unknown customer fields: {', '.join(sorted(unknown))}")
        if fields.get("birthday"):
            check_birthday(str(fields["birthday"]))
        events = []
        if vip is not None:
            events.append(self.event("vip", email, vip=vip, tier=(tier or "VIP") if vip else None))
        if white_glove is not None:
            events.append(self.event("white-glove", email, on=white_glove))
        if note:
            events.append(self.event("note", email, text=note, **fields))
        elif fields:
            events.append(self.event("profile", email, **fields))
        if not events:
            return Changes(set(), set())
        return self.publish(*events)[0]

    def delete_note(self, email: str, note_id: str) -> Changes:
        return self.publish(self.event("note-delete", normalise_email(email), note=note_id))[0]

    def customer(self, email: str) -> dict[str, Any]:
        email = normalise_email(email)
        with self.store.read() as conn:
            row = conn.execute(sql_text("SELECT * FROM customers WHERE email = :e"),
                               {"e": email}).mappings().first()
            if row is None:
                raise NotFoundError(f"No customer {email} is known yet.")
            notes = conn.execute(sql_text(
                "SELECT n.id, n.agent, n.text, n.at FROM notes n LEFT JOIN team_events e "
                "ON e.event_id = n.id WHERE n.customer_email = :e AND n.deleted = 0 "
                "ORDER BY e.uid, n.id"), {"e": email}).mappings().all()
            tickets = q.customer_ticket_ids(conn, email)
        return {
            "email": row["email"], "name": row["name"], "organisation": row["organisation"],
            "vip": bool(row["vip"]), "vip_tier": row["vip_tier"],
            "white_glove": bool(row["white_glove"]), "preferred_name": row["preferred_name"],
            "birthday": row["birthday"], "heard_from": row["heard_from"],
            "notes": [{"id": n["id"], "agent": n["agent"], "text": n["text"],
                       "at": iso(n["at"])} for n in notes],
            "tickets": tickets,
        }


@dataclass
class ClaimInfo:
    ticket: str
    agent: str | None
    since: datetime | None
    event: str | None
    previous: str | None = None

    def conflict_message(self) -> str:
        since = self.since.strftime("%Y-%m-%d %H:%M UTC") if self.since else "just now"
        return f"Ticket {self.ticket} is held by {self.agent} since {since}."


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or " " in email:
        raise NotFoundError(f"'{email}' is not an e-mail address.")
    return email


def check_birthday(value: str) -> None:
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise HelpdeskError(f"Birthday '{value}' should look like 1980-04-23.") from None

