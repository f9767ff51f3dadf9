"""The Desk: one facade whose methods are the user's intents.

The GUI and the CLI both talk to the core only through this class. Methods that
touch the network open (or are handed) their own IMAP connection; callers in a
GUI run them on a worker thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import imapclient

from helpdesk.config import Profile
from helpdesk.errors import HelpdeskError, MailError, NotFoundError
from helpdesk.mail.imap import connect, logout_quietly
from helpdesk.mail.push import LoopStatus, PushLoop, describe_error
from helpdesk.mail.sync import MailSync, SyncResult, utcnow
from helpdesk.store import Store, open_store
from helpdesk.store import queries as q

log = logging.getLogger(__name__)


def iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return str(value.replace(microsecond=0).isoformat() + "Z")


def _is_network_error(exc: BaseException) -> bool:
    import imaplib
    import socket

    import imapclient.exceptions

    return isinstance(exc, OSError | socket.timeout | imaplib.IMAP4.abort | imaplib.IMAP4.error
                      | imapclient.exceptions.IMAPClientError | EOFError)


@dataclass
class Changes:
    """What a mutation or a sync changed, so views refresh only what is affected."""

    tickets: set[str]
    customers: set[str]
    cards: bool = False
    new_inbound: list[tuple[str, str | None]] | None = None

    def __bool__(self) -> bool:
        return bool(self.tickets or self.customers or self.cards)


class Desk:
    """Everything an agent can do, for one profile and one local store."""

    def __init__(self, profile: Profile, store: Store | None = None,
                 connect_imap: Callable[[], imapclient.IMAPClient] | None = None) -> None:
        self.profile = profile
        self.store = store or open_store(profile.database)
        self._connect = connect_imap or (lambda: connect(profile.imap))
        self.mail = MailSync(self.store, profile)
        self._sync_lock = threading.Lock()

    @property
    def agent(self) -> str:
        return self.profile.agent

    def close(self) -> None:
        self.store.close()

    # --- connections and sync ------------------------------------------------

    def connect_imap(self) -> imapclient.IMAPClient:
        return self._connect()

    def sync_with(self, client: imapclient.IMAPClient) -> Changes:
        """One full pass over ``client``: mail folders, then team log, then outbox."""
        with self._sync_lock:
            try:
                result = self.mail.sync_all(client)
                changes = Changes(set(result.tickets), set(), new_inbound=result.new_inbound)
                for hook in self._sync_hooks():
                    extra = hook(client)
                    changes.tickets |= extra.tickets
                    changes.customers |= extra.customers
                    changes.cards = changes.cards or extra.cards
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

    def _sync_hooks(self) -> list[Callable[[imapclient.IMAPClient], Changes]]:
        """Extra work per sync pass (team log replay, outbox); extended by later layers."""
        return []

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
        return list(self.profile.imap.folders)

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
        """Best estimate of the server's clock (lease judgements use server time)."""
        return utcnow()

    def lease(self) -> timedelta:
        return timedelta(minutes=self.profile.lease_minutes)

    def ticket_query(self, view: str = "open", search: str = "", **kw: Any) -> q.TicketQuery:
        return q.TicketQuery(view=view, search=search, agent=self.agent, now=self.server_now(),
                             lease=self.lease(), **kw)

    def ticket_ids(self, view: str = "open", search: str = "", **kw: Any) -> list[str]:
        with self.store.read() as conn:
            return q.ticket_ids(conn, self.ticket_query(view, search, **kw))

    def ticket_rows(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        with self.store.read() as conn:
            rows = q.ticket_rows(conn, ids)
        for row in rows.values():
            self._decorate(row)
        return rows

    def _decorate(self, row: dict[str, Any]) -> None:
        """Drop a claim whose lease has lapsed (judged on the server-time estimate)."""
        active = row.get("claim_active_at")
        if row.get("claimed_by") and active is not None:
            if isinstance(active, str):
                active = datetime.fromisoformat(active)
            if active + self.lease() <= self.server_now() or row.get("status") == "closed":
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
            from sqlalchemy import text
            exact = conn.execute(text("SELECT id FROM tickets WHERE id = :t"), {"t": tid}).first()
            if exact:
                return str(exact[0])
            if len(tid) >= 4:
                found = [r[0] for r in conn.execute(
                    text("SELECT id FROM tickets WHERE id LIKE :p LIMIT 2"), {"p": tid + "%"})]
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
        from sqlalchemy import text
        with self.store.read() as conn:
            counts = q.count_views(conn, self.ticket_query())
            messages = conn.execute(text("SELECT count(*) FROM messages")).scalar()
            folders = [dict(r) for r in conn.execute(text(
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
