"""Replies: compose, fence on the claim, send exactly once, file in Sent, tell the team.

The states and their compare-and-swap transitions are in helpdesk/mail/outbox.py.
This module drives them, on the serial worker: take an item (``claiming``), fence
on the claim, commit ``sending``, the SMTP transaction, ``accepted``, then the
finishing steps (Sent copy, ``reply-sent`` event, close), each done once and retried
alone when it fails. Mail whose sending a team event decides (a shipped-card note,
a survey) is *staged* first, the event published, and the mail promoted only when
the folded log says it is ours to send: never told twice, never marked told without
a mail.
"""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import date, datetime
from typing import Any

import imapclient
from sqlalchemy import text

from helpdesk.changes import Changes
from helpdesk.claims import Claims
from helpdesk.clock import utcnow
from helpdesk.config import Profile
from helpdesk.errors import ConflictError, HelpdeskError, MailError, NotFoundError
from helpdesk.mail import smtp
from helpdesk.mail.compose import (
    Outgoing,
    build,
    first_name,
    is_address,
    new_message_id,
    render_placeholders,
)
from helpdesk.mail.conversations import reply_subject
from helpdesk.mail.folders import FolderMap, ensure_folder
from helpdesk.mail.folders import append as append_message
from helpdesk.mail.imap import examine, logout_quietly
from helpdesk.mail.outbox import OutboxItem, new_owner, owner_alive, retire_owner
from helpdesk.mail.parse import extract_attachment, parse_message
from helpdesk.session import ImapLink, Session, intent
from helpdesk.team.events import Event
from helpdesk.tickets import TicketBook

log = logging.getLogger(__name__)

WHITE_GLOVE_REMINDER = ("White-glove customer: extra reassurance and politeness. Say what "
                        "happens next and when.")
UNCERTAIN_ADVICE = " Check with the customer (or in Sent), then send it again or discard it."


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


class Replies:
    """Reply-related intents, and the outbox's sending, for one session."""

    def __init__(self, session: Session, book: TicketBook, claims: Claims) -> None:
        self.session = session
        self.book = book
        self.claims = claims
        self.outbox = session.outbox
        self.owner = new_owner()

    @property
    def profile(self) -> Profile:
        return self.session.profile

    def close(self) -> None:
        retire_owner(self.owner)

    # --- composing ----------------------------------------------------------------

    def _answered(self, tid: str) -> dict[str, Any]:
        """The message a reply answers: the customer's latest real message, else the latest."""
        with self.session.store.read() as conn:
            row = conn.execute(text(
                "SELECT message_id, \"references\", from_addr, from_name, reply_to, subject, "
                "direction, auto_kind FROM messages WHERE ticket_id = :t ORDER BY "
                "(direction = 'in' AND auto_kind = 'none') DESC, received_at DESC, id DESC "
                "LIMIT 1"), {"t": tid}).mappings().first()
        if row is None:
            raise NotFoundError(f"Ticket {tid} has no messages to answer.")
        return dict(row)

    def composer(self, ticket: str) -> dict[str, Any]:
        """What the composer shows: recipient, subject, greeting and reminders."""
        tid = self.book.resolve(ticket)
        row = self.book.ticket_rows([tid])[tid]
        answered = self._answered(tid)
        email = row["customer_email"]
        customer: dict[str, Any] = {}
        if email:
            try:
                customer = self.book.customer(email)
            except NotFoundError:
                customer = {}
        to = answered["reply_to"] or (answered["from_addr"] if answered["direction"] == "in"
                                      else email)
        name = customer.get("preferred_name") or first_name(
            customer.get("name") or answered["from_name"], email)
        reminders = []
        if customer.get("white_glove"):
            reminders.append(WHITE_GLOVE_REMINDER)
        if customer.get("vip"):
            reminders.append(f"VIP customer ({customer.get('vip_tier') or 'VIP'}).")
        soon = birthday_soon(customer.get("birthday"))
        if soon is not None:
            reminders.append("Birthday today!" if soon == 0 else f"Birthday in {soon} days.")
        return {
            "ticket": tid, "to": to, "subject": reply_subject(row["subject"], tid),
            "greeting": f"Hi {name}," if name else "Hello,", "first_name": name,
            "preferred_name": customer.get("preferred_name"),
            "vip": bool(customer.get("vip")), "vip_tier": customer.get("vip_tier"),
            "white_glove": bool(customer.get("white_glove")),
            "reminder": " ".join(reminders) or None,
            "notes": [n["text"] for n in customer.get("notes", [])],
            "heard_from": customer.get("heard_from"),
        }

    def _from_name(self) -> str:
        name = self.profile.smtp.from_name
        return name.replace("{agent}", self.session.agent) if name else ""

    @intent
    def reply(self, ticket: str, body: str, close: bool = False,
              cared: bool | None = None) -> dict[str, Any]:
        """Queue a reply durably, then try to send it now.

        Returns ``{outbox_id, state, message}``; raises ConflictError (nothing
        queued or sent) when a teammate holds the ticket.
        """
        if not body.strip():
            raise HelpdeskError("The reply is empty.")
        tid = self.book.resolve(ticket)
        holder = self.book.holder(tid)
        if holder.agent and holder.agent != self.session.agent:
            raise ConflictError(holder.conflict_message() + " Your draft is kept.")
        ctx = self.composer(tid)
        answered = self._answered(tid)
        if not ctx["to"] or not is_address(ctx["to"]):
            raise HelpdeskError(f"Ticket {tid} has no customer address to reply to.")
        refs = (answered["references"] or "").split()
        item_id, _mid = self.queue_mail(kind="reply", to=ctx["to"], subject=ctx["subject"],
                                        body=body, ticket_id=tid,
                                        in_reply_to=answered["message_id"], references=refs,
                                        close_after=close,
                                        meta={"cared": cared} if cared is not None else None)
        with self.session.store.begin() as conn:
            conn.execute(text("DELETE FROM drafts WHERE ticket_id = :t"), {"t": tid})
        try:
            self.flush(self.session.intents, ids=[item_id], force=True)
        except HelpdeskError as exc:
            log.info("reply %d not sent yet: %s", item_id, exc)
        item = self.outbox.get(item_id)
        if item.state == "held":
            raise ConflictError(f"{item.last_error} Your reply was not sent and is kept in "
                                f"the outbox.")
        return {"outbox_id": item_id, "state": item.state, "message": describe(item)}

    @intent
    def queue_mail(self, *, kind: str, to: str, subject: str, body: str,
                   ticket_id: str | None = None, in_reply_to: str | None = None,
                   references: list[str] | None = None, close_after: bool = False,
                   meta: dict[str, Any] | None = None, message_id: str | None = None,
                   publish: list[Event] | None = None, resolve: bool = True
                   ) -> tuple[int, str]:
        """Store an outgoing message durably (nothing sent yet); returns (id, Message-ID).

        ``message_id`` may be planned by the caller (e.g. named in a team event first).
        With ``publish``, the mail is staged: those events are published first (now unless
        ``resolve`` is False, else by :meth:`resolve_staged` or a later flush), and it goes
        only if the folded log says so (see :meth:`_decided`).
        """
        settings = self.profile.smtp
        if not settings.host or not settings.from_address:
            raise HelpdeskError("Sending needs an [smtp] section with host and from_address "
                                "in the profile.")
        if not is_address(to):
            raise HelpdeskError(f"'{to}' is not an e-mail address.")
        message_id = message_id or new_message_id(settings.from_address)
        raw = build(Outgoing(from_address=settings.from_address, from_name=self._from_name(),
                             to=[to], subject=subject, body=body, in_reply_to=in_reply_to,
                             references=references or [], ticket_id=ticket_id), message_id)
        meta = dict(meta or {})
        if publish:
            meta["publish"] = [event_json(e) for e in publish]
        item_id = self.outbox.enqueue(kind=kind, ticket_id=ticket_id, message_id=message_id,
                                      agent=self.session.agent, to=[to], subject=subject,
                                      body=body, raw=raw, close_after=close_after, meta=meta,
                                      staged=bool(publish))
        if publish:
            _fault_point("staged")
            if resolve:
                self.resolve_staged([item_id])
        return item_id, message_id

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
        return changes

    def _take(self, item: OutboxItem, force: bool) -> bool:
        """Make this session the item's owner if it is ours to work on now."""
        me = self.owner
        if item.state == "queued":
            if not force and item.next_attempt_at is not None \
                    and item.next_attempt_at > utcnow():
                return False
            if not self.outbox.take(item.id, me):
                return False  # another session took it first
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
            smtp.send(self.profile.smtp, item.raw, self.profile.smtp.from_address, item.to)
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
        """Replies go out only while this agent holds the ticket (claiming it if free)."""
        if item.kind != "reply" or not item.ticket_id:
            return True
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
            sent_folder = link.use(self._sent)
            if self.profile.smtp.save_sent and sent_folder and not item.sent_copy_done:
                link.use(lambda c: self._file_sent_copy(c, item))
                self.outbox.step_done(item.id, me, "sent_copy_done")
            if not item.event_done:
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
                              "to": item.to},
                        id=hashlib.sha256(item.message_id.encode()).hexdigest()[:32])]
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
        if item.kind != "notify":
            return True
        with self.session.store.read() as conn:
            return conn.execute(text("SELECT 1 FROM card_notified WHERE message_id = :m"),
                                {"m": item.message_id}).first() is not None

    # --- attachments on demand ----------------------------------------------------------

    def raw_message(self, message_pk: int) -> bytes:
        """The message's bytes: kept locally for defective mail, else fetched (read-only,
        on a connection of its own, so it never waits behind a sync)."""
        with self.session.store.read() as conn:
            row = conn.execute(text("SELECT raw, message_id FROM messages WHERE id = :i"),
                               {"i": message_pk}).first()
            if row is None:
                raise NotFoundError("That message is not in the local store.")
            if row[0]:
                return bytes(row[0])
            places = conn.execute(text(
                "SELECT f.name, l.uidvalidity, l.uid FROM locations l JOIN folders f "
                "ON f.id = l.folder_id WHERE l.message_pk = :i"), {"i": message_pk}).all()
        try:
            client = self.session.connect_imap()
        except HelpdeskError:
            raise
        try:
            for folder, uidvalidity, uid in places:
                info = examine(client, folder)
                found = [uid] if int(info[b"UIDVALIDITY"]) == uidvalidity else []
                if not found and row[1]:
                    found = client.search(["HEADER", "Message-ID", f"<{row[1]}>"])
                if found:
                    data = client.fetch(found[:1], ["BODY.PEEK[]"])
                    for item in data.values():
                        if item.get(b"BODY[]"):
                            return bytes(item[b"BODY[]"])
        except (OSError, EOFError, imapclient.exceptions.IMAPClientError) as exc:
            from helpdesk.mail.imap import explain_network_error
            raise MailError(explain_network_error(exc, self.profile.imap, "IMAP")) from exc
        finally:
            logout_quietly(client)
        raise NotFoundError("The message is no longer on the server; its text is kept here, "
                            "but its attachments cannot be fetched.")

    def attachment(self, message_pk: int, index: int) -> tuple[str, str, bytes]:
        found = extract_attachment(self.raw_message(message_pk), index)
        if found is None:
            raise NotFoundError("That attachment is not in the message.")
        return found

    def inline_images(self, message_pk: int) -> dict[str, bytes]:
        raw = self.raw_message(message_pk)
        out: dict[str, bytes] = {}
        for att in parse_message(raw).attachments:
            if att.content_id and att.content_type.startswith("image/"):
                found = extract_attachment(raw, att.index)
                if found:
                    out[att.content_id] = found[2]
        return out

    # --- templates ----------------------------------------------------------------------

    def templates(self) -> list[dict[str, str]]:
        with self.session.store.read() as conn:
            return [dict(r) for r in conn.execute(text(
                "SELECT name, body FROM templates WHERE deleted = 0 ORDER BY name")).mappings()]

    def render_template(self, body: str, ticket: str) -> str:
        ctx = self.composer(ticket)
        row = self.book.ticket_rows([ctx["ticket"]])[ctx["ticket"]]
        values = {"first_name": ctx["first_name"] or "there",
                  "name": row.get("customer_name") or ctx["first_name"] or "",
                  "preferred_name": ctx["preferred_name"] or ctx["first_name"] or "there",
                  "ticket": ctx["ticket"], "agent": self.session.agent,
                  "subject": row.get("subject") or "", "customer": row.get("customer_email")
                  or "", "greeting": ctx["greeting"]}
        return render_placeholders(body, values)


def describe(item: OutboxItem) -> str:
    if item.state == "sent":
        return f"Sent to {', '.join(item.to)}."
    if item.state == "queued":
        why = f" ({item.last_error})" if item.last_error else ""
        return f"Queued in the outbox; it will be sent when the server can be reached{why}."
    if item.state == "accepted":
        return (f"Sent to {', '.join(item.to)}; filing the copy in Sent and telling the team "
                f"will be finished on the next sync ({item.last_error or 'pending'}).")
    if item.state == "failed":
        return f"Not sent: {item.last_error} The draft is kept in the outbox."
    return f"{item.state}: {item.last_error or ''}".strip()


def birthday_soon(value: str | None, today: date | None = None) -> int | None:
    """Days until the next birthday when within a week, else None."""
    if not value:
        return None
    try:
        born = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return None
    today = today or date.today()
    for year in (today.year, today.year + 1):
        try:
            nxt = born.replace(year=year)
        except ValueError:  # 29 February
            nxt = date(year, 3, 1)
        if nxt >= today:
            days = (nxt - today).days
            return days if days <= 7 else None
    return None
