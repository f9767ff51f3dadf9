"""Replies: compose, fence on the claim, send exactly once, file in Sent, tell the team.

See helpdesk/mail/outbox.py for the states and the exactly-once argument. This
module holds the steps that need the whole desk: the claim fence, the SMTP
transaction, the Sent copy and the ``reply-sent`` team event.
"""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import imapclient
from sqlalchemy import text

from helpdesk.clock import utcnow
from helpdesk.errors import ConflictError, HelpdeskError, NotFoundError
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
from helpdesk.mail.imap import examine
from helpdesk.mail.outbox import Outbox, OutboxItem
from helpdesk.mail.parse import extract_attachment, parse_message
from helpdesk.team.events import Event

if TYPE_CHECKING:
    from helpdesk.changes import Changes
    from helpdesk.desk import Desk

log = logging.getLogger(__name__)

WHITE_GLOVE_REMINDER = ("White-glove customer: extra reassurance and politeness. Say what "
                        "happens next and when.")


def _fault_point(name: str) -> None:
    """Crash on purpose at a named point (tests of crash safety set HELPDESK_FAULT)."""
    if os.environ.get("HELPDESK_FAULT") == name:
        os._exit(70)


class Replies:
    """Reply-related intents of a desk."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.outbox = Outbox(desk.store)

    # --- composing ----------------------------------------------------------------

    def _answered(self, tid: str) -> dict[str, Any]:
        """The message a reply answers: the customer's latest real message, else the latest."""
        with self.desk.store.read() as conn:
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
        tid = self.desk.resolve_ticket(ticket)
        row = self.desk.ticket_rows([tid])[tid]
        answered = self._answered(tid)
        email = row["customer_email"]
        customer: dict[str, Any] = {}
        if email:
            try:
                customer = self.desk.customer(email)
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
        name = self.desk.profile.smtp.from_name
        return name.replace("{agent}", self.desk.agent) if name else ""

    def reply(self, ticket: str, body: str, close: bool = False,
              cared: bool | None = None) -> dict[str, Any]:
        """Queue a reply durably, then try to send it now.

        Returns ``{outbox_id, state, message}``; raises ConflictError (nothing
        queued or sent) when a teammate holds the ticket.
        """
        if not body.strip():
            raise HelpdeskError("The reply is empty.")
        tid = self.desk.resolve_ticket(ticket)
        holder = self.desk.holder(tid)
        if holder.agent and holder.agent != self.desk.agent:
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
        self.desk.discard_draft(tid)
        try:
            with self.desk.imap() as client:
                self.flush(client, ids=[item_id], force=True)
        except HelpdeskError as exc:
            self.outbox.retry_later(self.outbox.get(item_id), str(exc))
        item = self.outbox.get(item_id)
        if item.state == "held":
            raise ConflictError(f"{item.last_error} Your reply was not sent and is kept in "
                                f"the outbox.")
        return {"outbox_id": item_id, "state": "sent" if item.state == "sent" else item.state,
                "message": describe(item)}

    def queue_mail(self, *, kind: str, to: str, subject: str, body: str,
                   ticket_id: str | None = None, in_reply_to: str | None = None,
                   references: list[str] | None = None, close_after: bool = False,
                   meta: dict[str, Any] | None = None, message_id: str | None = None
                   ) -> tuple[int, str]:
        """Store an outgoing message durably (nothing sent yet); returns (id, Message-ID).

        ``message_id`` may be planned by the caller (e.g. named in a team event first).
        """
        settings = self.desk.profile.smtp
        if not settings.host or not settings.from_address:
            raise HelpdeskError("Sending needs an [smtp] section with host and from_address "
                                "in the profile.")
        if not is_address(to):
            raise HelpdeskError(f"'{to}' is not an e-mail address.")
        message_id = message_id or new_message_id(settings.from_address)
        raw = build(Outgoing(from_address=settings.from_address, from_name=self._from_name(),
                             to=[to], subject=subject, body=body, in_reply_to=in_reply_to,
                             references=references or [], ticket_id=ticket_id), message_id)
        item_id = self.outbox.enqueue(kind=kind, ticket_id=ticket_id, message_id=message_id,
                                      agent=self.desk.agent, to=[to], subject=subject,
                                      body=body, raw=raw, close_after=close_after, meta=meta)
        return item_id, message_id

    # --- sending ------------------------------------------------------------------

    def flush(self, client: imapclient.IMAPClient, ids: list[int] | None = None,
              force: bool = False) -> Changes:
        """Send what is due (or exactly ``ids``); every step is resumable."""
        from helpdesk.changes import Changes

        changes = Changes(set(), set())
        items = self.outbox.due(ids=ids) if ids is not None else self.outbox.due()
        if force and ids is None:
            items = self.outbox.due(ids=[i.id for i in self.outbox.items(
                states=("queued", "sending", "accepted"))])
        for item in items:
            try:
                self._advance(client, item)
            except (OSError, EOFError, imapclient.exceptions.IMAPClientError) as exc:
                # The IMAP side failed after SMTP: the next pass resumes from 'accepted'.
                log.warning("outbox item %d: %s", item.id, exc)
                raise
            if item.ticket_id:
                changes.tickets.add(item.ticket_id)
        return changes

    def _advance(self, client: imapclient.IMAPClient, item: OutboxItem) -> None:
        if item.state == "sending":
            if self._in_sent(client, item.message_id):
                self.outbox.update(item.id, state="accepted")
                item.state = "accepted"
            else:
                self.outbox.update(item.id, state="uncertain", last_error=(
                    "The app stopped while this message was being sent and no copy is in "
                    "Sent, so it may or may not have reached the customer. Check, then "
                    "send it again or discard it."))
                return
        if item.state == "queued":
            if not self._fence(client, item):
                return
            self.outbox.update(item.id, state="sending", attempts=item.attempts + 1)
            item.attempts += 1
            try:
                smtp.send(self.desk.profile.smtp, item.raw,
                          self.desk.profile.smtp.from_address, item.to)
            except smtp.SendError as exc:
                if exc.permanent:
                    self.outbox.update(item.id, state="failed", last_error=exc.message)
                else:
                    self.outbox.retry_later(item, exc.message)
                return
            _fault_point("after-smtp")
            self.outbox.update(item.id, state="accepted", smtp_accepted_at=utcnow())
            item.state = "accepted"
        if item.state == "accepted":
            self._finish(client, item)

    def _fence(self, client: imapclient.IMAPClient, item: OutboxItem) -> bool:
        """Replies go out only while this agent holds the ticket (claiming it if free)."""
        if item.kind != "reply" or not item.ticket_id:
            return True
        try:
            self.desk.claim_on(client, item.ticket_id)
            return True
        except ConflictError as exc:
            self.outbox.update(item.id, state="held", last_error=str(exc) + " Nothing was sent.")
            return False

    def _finish(self, client: imapclient.IMAPClient, item: OutboxItem) -> None:
        sent_folder = self.desk.profile.imap.sent_folder
        if self.desk.profile.smtp.save_sent and sent_folder and not item.sent_copy_done:
            if not self._in_sent(client, item.message_id):
                if not client.folder_exists(sent_folder):
                    client.create_folder(sent_folder)
                client.append(sent_folder, item.raw, flags=[imapclient.SEEN])
            self.outbox.update(item.id, sent_copy_done=True)
        if not item.event_done:
            events = [Event(type="reply-sent", agent=item.agent, subject=item.ticket_id or "",
                            data={"message_id": item.message_id, "kind": item.kind,
                                  "to": item.to},
                            id=hashlib.sha256(item.message_id.encode()).hexdigest()[:32])]
            if item.close_after and item.ticket_id:
                events.append(Event(type="status", agent=item.agent, subject=item.ticket_id,
                                    data={"status": "closed", **(
                                        {"cared": item.meta["cared"]}
                                        if isinstance(item.meta.get("cared"), bool) else {})},
                                    id=hashlib.sha256((item.message_id + "/close").encode())
                                    .hexdigest()[:32]))
            self.desk.publish(*events, client=client)
            self.outbox.update(item.id, event_done=True)
        self.outbox.update(item.id, state="sent", sent_at=utcnow(), last_error=None)
        if sent_folder and client.folder_exists(sent_folder):
            self.desk.mail.sync_folder(client, sent_folder, "sent")

    def _in_sent(self, client: imapclient.IMAPClient, message_id: str) -> bool:
        folder = self.desk.profile.imap.sent_folder
        if not folder or not client.folder_exists(folder):
            return False
        examine(client, folder)
        return bool(client.search(["HEADER", "Message-ID", f"<{message_id}>"]))

    # --- attachments on demand ----------------------------------------------------------

    def raw_message(self, message_pk: int) -> bytes:
        """The message's bytes: kept locally for defective mail, else fetched (read-only)."""
        with self.desk.store.read() as conn:
            row = conn.execute(text("SELECT raw, message_id FROM messages WHERE id = :i"),
                               {"i": message_pk}).first()
            if row is None:
                raise NotFoundError("That message is not in the local store.")
            if row[0]:
                return bytes(row[0])
            places = conn.execute(text(
                "SELECT f.name, l.uidvalidity, l.uid FROM locations l JOIN folders f "
                "ON f.id = l.folder_id WHERE l.message_pk = :i"), {"i": message_pk}).all()
        with self.desk.imap() as client:
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

    # --- templates and drafts -------------------------------------------------------------

    def templates(self) -> list[dict[str, str]]:
        with self.desk.store.read() as conn:
            return [dict(r) for r in conn.execute(text(
                "SELECT name, body FROM templates WHERE deleted = 0 ORDER BY name")).mappings()]

    def render_template(self, body: str, ticket: str) -> str:
        ctx = self.composer(ticket)
        row = self.desk.ticket_rows([ctx["ticket"]])[ctx["ticket"]]
        values = {"first_name": ctx["first_name"] or "there",
                  "name": row.get("customer_name") or ctx["first_name"] or "",
                  "preferred_name": ctx["preferred_name"] or ctx["first_name"] or "there",
                  "ticket": ctx["ticket"], "agent": self.desk.agent,
                  "subject": row.get("subject") or "", "customer": row.get("customer_email")
                  or "", "greeting": ctx["greeting"]}
        return render_placeholders(body, values)


def describe(item: OutboxItem) -> str:
    if item.state == "sent":
        return f"Sent to {', '.join(item.to)}."
    if item.state == "queued":
        why = f" ({item.last_error})" if item.last_error else ""
        return f"Queued in the outbox; it will be sent when the server can be reached{why}."
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
