"""Sending the outbox exactly once: take, fence on the claim, SMTP, Sent copy, team event.

The states and their compare-and-swap transitions are in helpdesk/mail/outbox.py.
:class:`OutboxSender` drives them, on the serial worker: take an item
(``claiming``, only once its undo window is over), fence on the claim, commit
``sending``, the SMTP transaction, ``accepted``, then the finishing steps (Sent copy,
``reply-sent`` event, close), each done once and retried alone when it fails. Mail
whose sending a team event decides (a shipped-card note, a survey) is *staged* first,
the event published, and the mail promoted only when the folded log says it is ours
to send: never told twice, never marked told without a mail. A wake-up timer flushes
the outbox when the earliest undo window ends (helpdesk/replies.py composes and
queues; this module sends).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from datetime import datetime
from typing import Any

import imapclient
from sqlalchemy import text

from helpdesk.changes import Changes
from helpdesk.claims import Claims
from helpdesk.clock import utcnow
from helpdesk.config import Profile
from helpdesk.errors import ConflictError, HelpdeskError
from helpdesk.mail import smtp
from helpdesk.mail.folders import FolderMap, ensure_folder
from helpdesk.mail.folders import append as append_message
from helpdesk.mail.imap import examine
from helpdesk.mail.outbox import OutboxItem, new_owner, owner_alive, retire_owner
from helpdesk.rota import newcomers
from helpdesk.session import ImapLink, Session, intent
from helpdesk.team.events import Event

log = logging.getLogger(__name__)

UNCERTAIN_ADVICE = " Check with the customer (or in Sent), then send it again or discard it."
#: Mail a person wrote: it waits out the undo window and is fenced on the ticket's claim.
COMPOSED_KINDS = ("reply", "forward", "compose")


def _fault_point(name: str) -> None:
    """Crash on purpose at a named point (tests of crash safety set HELPDESK_FAULT)."""
    if os.environ.get("HELPDESK_FAULT") == name:
        os._exit(70)


def event_json(event: Event) -> dict[str, Any]:
    return {"type": event.type, "agent": event.agent, "subject": event.subject,
            "data": event.data, "id": event.id, "client_time": event.client_time}


def event_of(data: dict[str, Any]) -> Event:
    return Event(type=str(data["type"]), agent=str(data["agent"]),
                 subject=str(data["subject"]), data=dict(data.get("data") or {}),
                 id=str(data["id"]), client_time=str(data.get("client_time") or ""))


class OutboxSender:
    """The outbox's sending for one session: one owner token, one wake-up timer."""

    def __init__(self, session: Session, claims: Claims) -> None:
        self.session = session
        self.claims = claims
        self.outbox = session.outbox
        self.owner = new_owner()
        self._timer: threading.Timer | None = None
        self._timer_at: datetime | None = None
        self._timer_lock = threading.Lock()
        self._closed = False

    @property
    def profile(self) -> Profile:
        return self.session.profile

    def close(self) -> None:
        with self._timer_lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        retire_owner(self.owner)

    # --- the undo window's end ------------------------------------------------------
    def wake_at(self, when: datetime) -> None:
        """Flush the outbox on the worker when ``when`` (an undo window's end) comes."""
        delay = max(0.0, (when - utcnow()).total_seconds()) + 0.05
        with self._timer_lock:
            if self._closed:
                return
            if self._timer is not None and self._timer_at is not None \
                    and self._timer_at <= when and self._timer.is_alive():
                return  # an earlier wake-up flushes this one too (and re-arms)
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = threading.Timer(delay, self._window_over)
            self._timer.daemon = True
            self._timer.start()

    def _window_over(self) -> None:
        with self._timer_lock:
            self._timer, self._timer_at = None, None
            if self._closed:
                return
        try:
            future = self.session.submit(lambda: self.flush(self.session.intents),
                                         "send after the undo window")
        except HelpdeskError:
            return  # closing: the next start sends it

        def done(f: Any) -> None:
            if f.exception() is not None:
                log.info("sending after the undo window: %s (the next sync retries)",
                         f.exception())
        future.add_done_callback(done)

    @intent
    def resolve_staged(self, ids: list[int]) -> list[int]:
        """Publish the events of these staged items now and promote the ones that go;
        their ids. When the team log cannot be reached, they stay staged and a later
        flush finishes the job."""
        items = [i for i in self.outbox.items(states=("staged",)) if i.id in ids]
        try:
            self._resolve_staged(self.session.intents, items)
        except HelpdeskError as exc:
            log.info("outbox items %s staged until the team log can be reached: %s",
                     ids, exc)
        return [i.id for i in self.outbox.items(states=("queued",)) if i.id in ids]


    # --- sending ------------------------------------------------------------------

    def flush(self, link: ImapLink, ids: list[int] | None = None,
              force: bool = False) -> Changes:
        """Send what is due (or exactly ``ids``); every step is resumable. On the worker."""
        changes = Changes(set(), set())
        changes.tickets |= self._release_approved()
        pending = [i for i in self.outbox.pending() if ids is None or i.id in ids]
        self._resolve_staged(link, [i for i in pending if i.state == "staged"])
        for item in pending:
            if item.state == "staged":
                item = self.outbox.get(item.id)
            if not self._take(item, force or ids is not None):
                continue
            if item.ticket_id:
                changes.tickets.add(item.ticket_id)
            self._advance(link, item)
        due = self.outbox.next_due()
        if due is not None:
            self.wake_at(due)  # a reply still in its undo window goes when it ends
        return changes

    def _take(self, item: OutboxItem, force: bool) -> bool:
        """Make this session the item's owner if it is ours to work on now."""
        me = self.owner
        if item.state == "queued":
            if not force and item.next_attempt_at is not None \
                    and item.next_attempt_at > utcnow():
                return False
            if item.not_before is not None and item.not_before > utcnow():
                return False  # the undo window: nothing shortens it but send_now
            if not self.outbox.take(item.id, me):
                return False  # another session took it first, or it was cancelled
            item.state, item.owner = "claiming", me
            return True
        if item.state in ("claiming", "sending", "accepted"):
            if item.owner == me:
                return True
            if item.owner is not None and owner_alive(item.owner, item.owner_at):
                return False  # a live session is on it
            if not self.outbox.adopt(item, me):
                return False
            item.owner = me
            return True
        return False

    def _advance(self, link: ImapLink, item: OutboxItem) -> None:
        if item.state == "claiming":
            self._send(link, item)
        if item.state == "sending":  # adopted from a session that died mid-send
            self._recover_sending(link, item)
        if item.state == "accepted":
            self._finish(link, item)

    def _send(self, link: ImapLink, item: OutboxItem) -> None:
        me = self.owner
        if not self._fence(link, item):
            return
        attempts = item.attempts + 1
        if not self.outbox.start_sending(item.id, me, attempts):
            return
        item.state, item.attempts = "sending", attempts
        _fault_point("before-smtp")
        try:
            smtp.send(self.profile.smtp, item.raw, self.profile.smtp.from_address,
                      item.envelope)
        except smtp.SendError as exc:
            if exc.maybe_delivered:
                item.state = "uncertain"
                self.outbox.give_back(item, me, "uncertain", exc.message + UNCERTAIN_ADVICE)
            elif exc.permanent:
                item.state = "failed"
                self.outbox.give_back(item, me, "failed", exc.message)
            else:
                item.state = "queued"
                self.outbox.give_back(item, me, "queued", exc.message, retry=True)
            return
        _fault_point("after-smtp")
        if self.outbox.accepted(item.id, me):
            item.state = "accepted"

    def _fence(self, link: ImapLink, item: OutboxItem) -> bool:
        """Replies, forwards and new conversations go out only while this agent holds the
        ticket (claiming it if free; a new conversation's ticket is claimed here first)."""
        if item.kind not in COMPOSED_KINDS or not item.ticket_id:
            return True
        if self._needs_approval(item):
            return self._hold_for_approval(link, item)
        try:
            self.claims.claim(item.ticket_id, link=link)
            return True
        except ConflictError as exc:
            item.state = "held"
            self.outbox.give_back(item, self.owner, "held", str(exc) + " Nothing was sent.")
            return False
        except BaseException as exc:
            item.state = "queued"
            self.outbox.give_back(item, self.owner, "queued",
                                  f"Not sent yet: {exc}", retry=True)
            raise

    # --- newcomer weeks (helpdesk/rota/newcomers.py) ----------------------------------

    def _needs_approval(self, item: OutboxItem) -> bool:
        """A learning agent's mail that no teammate has approved yet."""
        with self.session.store.read() as conn:
            return (newcomers.is_learning(conn, item.agent, self.session.server_now())
                    and newcomers.approved(conn, item.message_id) is None)

    def _hold_for_approval(self, link: ImapLink, item: OutboxItem) -> bool:
        """claiming -> held, after publishing the reply's approval request (its text, so
        a teammate on any desktop can read it). Nothing is sent."""
        request = Event(type="approval-request", agent=item.agent, subject=item.ticket_id or "",
                        data={"message_id": item.message_id, "subject": item.subject,
                              "to": item.to + item.cc, "bcc": item.bcc,
                              "text": item.body[:newcomers.MAX_TEXT],
                              "attachments": [str(a.get("filename") if isinstance(a, dict)
                                                  else a) for a in
                                              item.meta.get("attachments") or []]},
                        id=newcomers.request_id(item.message_id))
        try:
            self.session.publish(request, link=link)
        except BaseException as exc:
            item.state = "queued"
            self.outbox.give_back(item, self.owner, "queued", f"Not sent yet: {exc}",
                                  retry=True)
            raise
        item.state = "held"
        self.outbox.give_back(item, self.owner, "held", newcomers.WAITING)
        return False

    def _release_approved(self) -> set[str]:
        """Held newcomer replies a teammate approved go back to the queue (once each)."""
        tickets: set[str] = set()
        held = [i for i in self.outbox.items(states=("held",))
                if i.last_error == newcomers.WAITING]
        if not held:
            return tickets
        with self.session.store.read() as conn:
            ok = [i for i in held if newcomers.approved(conn, i.message_id)]
        for item in ok:
            if self.outbox.release_held(item.id):
                log.info("outbox item %d approved by a teammate: sending", item.id)
                if item.ticket_id:
                    tickets.add(item.ticket_id)
        return tickets

    def _recover_sending(self, link: ImapLink, item: OutboxItem) -> None:
        """The session sending this died between SMTP and recording the answer."""
        if link.use(lambda c: self._in_sent(c, item.message_id)):
            if self.outbox.found_in_sent(item.id, self.owner):
                item.state = "accepted"
            return
        item.state = "uncertain"
        self.outbox.give_back(item, self.owner, "uncertain", (
            "The app stopped while this message was being sent and no copy is in Sent, so "
            "it may or may not have reached the customer." + UNCERTAIN_ADVICE))

    def _finish(self, link: ImapLink, item: OutboxItem) -> None:
        """Accepted by SMTP: file the Sent copy, tell the team, close; each once."""
        me = self.owner
        try:
            # The digest is no conversation: no copy in Sent (it would become a ticket)
            # and no reply-sent event; the digest-sending claim already records it.
            sent_folder = link.use(self._sent) if item.kind != "digest" else None
            if self.profile.smtp.save_sent and sent_folder and not item.sent_copy_done:
                link.use(lambda c: self._file_sent_copy(c, item))
                self.outbox.step_done(item.id, me, "sent_copy_done")
            if not item.event_done and item.kind != "digest":
                self.session.publish(*self._finishing_events(item), link=link)
                self.outbox.step_done(item.id, me, "event_done")
        except BaseException as exc:
            self.outbox.unfinished(item.id, me, f"Sent, but not yet filed: {exc}")
            raise
        if self.outbox.sent(item.id, me):
            item.state = "sent"
        if sent_folder:
            try:
                link.use(lambda c: self._sync_sent(c, sent_folder))
            except HelpdeskError as exc:  # the next sync pass brings it in
                log.info("could not sync %s after sending: %s", sent_folder, exc)

    def _finishing_events(self, item: OutboxItem) -> list[Event]:
        events = [Event(type="reply-sent", agent=item.agent, subject=item.ticket_id or "",
                        data={"message_id": item.message_id, "kind": item.kind,
                              "to": item.to, **({"cc": item.cc} if item.cc else {})},
                        id=hashlib.sha256(item.message_id.encode()).hexdigest()[:32])]
        if item.kind == "forward" and item.ticket_id:
            events.append(Event(type="forwarded", agent=item.agent, subject=item.ticket_id,
                                data={"message_id": item.message_id, "to": item.to + item.cc,
                                      "original": str(item.meta.get("original") or "")},
                                id=hashlib.sha256((item.message_id + "/forwarded").encode())
                                .hexdigest()[:32]))
        if item.close_after and item.ticket_id:
            cared = item.meta.get("cared")
            events.append(Event(type="status", agent=item.agent, subject=item.ticket_id,
                                data={"status": "closed",
                                      **({"cared": cared} if isinstance(cared, bool) else {})},
                                id=hashlib.sha256((item.message_id + "/close").encode())
                                .hexdigest()[:32]))
        return events

    def _sent(self, client: imapclient.IMAPClient) -> str | None:
        """The server's Sent folder (the profile's, mapped; else the one marked \\Sent)."""
        return FolderMap.of(client, self.profile.imap).sent_folder(client)

    def _file_sent_copy(self, client: imapclient.IMAPClient, item: OutboxItem) -> None:
        if self._in_sent(client, item.message_id):
            return
        fmap = FolderMap.of(client, self.profile.imap)
        folder = self._sent(client)
        if folder is None:
            return
        ensure_folder(client, fmap, fmap.profile_name(folder), "sent_folder")
        append_message(client, folder, item.raw, [imapclient.SEEN])  # never read-only

    def _sync_sent(self, client: imapclient.IMAPClient, folder: str) -> None:
        if client.folder_exists(folder):
            self.session.mail.sync_folder(client, folder, "sent")

    def _in_sent(self, client: imapclient.IMAPClient, message_id: str) -> bool:
        folder = self._sent(client)
        if not folder or not client.folder_exists(folder):
            return False
        examine(client, folder)
        return bool(client.search(["HEADER", "Message-ID", f"<{message_id}>"]))

    # --- staged mail ------------------------------------------------------------------

    def _resolve_staged(self, link: ImapLink, items: list[OutboxItem]) -> None:
        """Publish the staged items' events (one batch; idempotent by id), then promote
        each item the folded log says is ours to send, and drop the others."""
        events: list[Event] = []
        for item in items:
            try:
                events += [event_of(e) for e in item.meta.get("publish") or []]
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("outbox item %d: bad staged events (%s)", item.id, exc)
        if events:
            self.session.publish(*events, link=link)
        for item in items:
            if self._decided(item):
                self.outbox.promote(item.id)
            else:
                log.info("outbox item %d: a teammate's event won; not sending", item.id)
                self.outbox.drop_staged(item.id)

    def _decided(self, item: OutboxItem) -> bool:
        """Whether the folded log says this staged mail goes (ours is the winning event)."""
        table = {"notify": "card_notified", "digest": "digests"}.get(item.kind)
        if table is None:
            return True
        with self.session.store.read() as conn:
            return conn.execute(text(f"SELECT 1 FROM {table} WHERE message_id = :m"),
                                {"m": item.message_id}).first() is not None

