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
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
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
    FileAttachment,
    Outgoing,
    Quote,
    addresses,
    build,
    first_name,
    is_address,
    new_message_id,
    render_placeholders,
)
from helpdesk.mail.conversations import reply_subject, strip_subject, ticket_id_for_key
from helpdesk.mail.folders import FolderMap, ensure_folder
from helpdesk.mail.folders import append as append_message
from helpdesk.mail.imap import examine, logout_quietly
from helpdesk.mail.outbox import OutboxItem, new_owner, owner_alive, retire_owner
from helpdesk.mail.parse import extract_attachment, parse_date, parse_message
from helpdesk.outgoing import scope_of, signature_for
from helpdesk.outgoing import signatures as folded_signatures
from helpdesk.session import ImapLink, Session, intent
from helpdesk.team.events import Event
from helpdesk.tickets import TicketBook

log = logging.getLogger(__name__)

WHITE_GLOVE_REMINDER = ("White-glove customer: extra reassurance and politeness. Say what "
                        "happens next and when.")
UNCERTAIN_ADVICE = " Check with the customer (or in Sent), then send it again or discard it."
#: Mail a person wrote: it waits out the undo window and is fenced on the ticket's claim.
COMPOSED_KINDS = ("reply", "forward", "compose")


@dataclass
class Draft:
    """What a person composed (the GUI's composer, the CLI's options)."""

    body: str = ""
    #: Formatted text (composer HTML, sanitised when built); None: plain ``body``.
    html: str | None = None
    #: None: the composer's default (a reply: the customer; reply-all adds the others).
    to: list[str] | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    reply_all: bool = False
    attachments: list[FileAttachment] = field(default_factory=list)
    quote: bool = True
    signature: bool = True
    subject: str | None = None
    #: Send at once, without the undo window (``reply --now``).
    now: bool = False
    #: Over ``max_attachment_mb`` the person was warned and said send anyway.
    allow_large: bool = False


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

    # --- composing ----------------------------------------------------------------

    _MESSAGE_COLUMNS = ("id, message_id, \"references\", from_addr, from_name, reply_to, "
                        "subject, direction, auto_kind, to_addrs, cc_addrs, text, html, "
                        "date_header, received_at, attachments")

    def _answered(self, tid: str) -> dict[str, Any]:
        """The message a reply answers: the customer's latest real message, else the latest."""
        with self.session.store.read() as conn:
            row = conn.execute(text(
                f"SELECT {self._MESSAGE_COLUMNS} FROM messages WHERE ticket_id = :t ORDER BY "
                "(direction = 'in' AND auto_kind = 'none') DESC, received_at DESC, id DESC "
                "LIMIT 1"), {"t": tid}).mappings().first()
        if row is None:
            raise NotFoundError(f"Ticket {tid} has no messages to answer.")
        return dict(row)

    def _nth_message(self, tid: str, n: int) -> dict[str, Any]:
        """Message ``n`` (1 = the first) of the ticket, in the order ``show`` lists them."""
        with self.session.store.read() as conn:
            rows = conn.execute(text(
                f"SELECT {self._MESSAGE_COLUMNS} FROM messages WHERE ticket_id = :t "
                "ORDER BY received_at, id"), {"t": tid}).mappings().all()
        if not 1 <= n <= len(rows):
            raise NotFoundError(f"Ticket {tid} has {len(rows)} message(s); there is no "
                                f"message {n}.")
        return dict(rows[n - 1])

    def _ours(self, address: str) -> bool:
        return address.strip().lower() in self.profile.support_addresses

    def reply_all_cc(self, answered: dict[str, Any], to: list[str]) -> list[str]:
        """The others on the answered message (its From, To and Cc), never our own
        addresses nor the To already chosen: who reply-all adds as Cc."""
        found: list[str] = []
        pairs: list[Any] = [["", answered.get("from_addr") or ""]]
        for column in ("to_addrs", "cc_addrs"):
            try:
                value = json.loads(answered.get(column) or "[]")
            except ValueError:
                value = []
            pairs += value if isinstance(value, list) else []
        taken = {a.lower() for a in to}
        for pair in pairs:
            addr = pair[1] if isinstance(pair, list | tuple) and len(pair) == 2 else None
            if not isinstance(addr, str) or not is_address(addr.strip()):
                continue  # hostile or broken headers add nobody
            addr = addr.strip()
            if self._ours(addr) or addr.lower() in taken:
                continue
            taken.add(addr.lower())
            found.append(addr)
        return found

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
        with self.session.store.read() as conn:
            signature = signature_for(conn, self.session.agent)
        values = self._placeholders(tid, name, row.get("subject") or "",
                                    row.get("customer_email") or "", row.get("customer_name"),
                                    customer.get("preferred_name"))
        return {
            "ticket": tid, "to": to, "subject": reply_subject(row["subject"], tid),
            "cc_all": self.reply_all_cc(answered, [to] if to else []),
            "signature": render_placeholders(signature, values) if signature else "",
            "quote": {"attribution": self._quote_of(answered).attribution(),
                      "text": answered["text"] or ""},
            "message_pk": answered["id"],
            "max_attachment_mb": self.profile.max_attachment_mb,
            "send_delay_seconds": self.profile.send_delay_seconds,
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

    def _placeholders(self, tid: str, name: str | None, subject: str, customer: str,
                      customer_name: str | None = None,
                      preferred: str | None = None) -> dict[str, str]:
        return {"first_name": name or "there", "name": customer_name or name or "",
                "preferred_name": preferred or name or "there", "ticket": tid,
                "agent": self.session.agent, "subject": subject, "customer": customer,
                "greeting": f"Hi {name}," if name else "Hello,"}

    def _quote_of(self, msg: dict[str, Any], style: str = "reply") -> Quote:
        try:
            to = ", ".join(a for _n, a in json.loads(msg.get("to_addrs") or "[]"))
        except (ValueError, TypeError):
            to = ""
        when = msg.get("date_header") or msg.get("received_at")
        return Quote(text=msg.get("text") or "", html=msg.get("html"),
                     from_name=msg.get("from_name"), from_addr=msg.get("from_addr"),
                     date=when if isinstance(when, datetime) else parse_date_text(when),
                     subject=msg.get("subject") or "", to=to, style=style)

    def _signature(self, draft: Draft, values: dict[str, str]) -> str:
        if not draft.signature:
            return ""
        with self.session.store.read() as conn:
            sig = signature_for(conn, self.session.agent)
        return render_placeholders(sig, values) if sig else ""

    def _check_attachments(self, files: list[FileAttachment], allow_large: bool) -> None:
        total = sum(len(f.data) for f in files)
        limit = self.profile.max_attachment_mb * 1024 * 1024
        if total > limit and not allow_large:
            raise HelpdeskError(
                f"The attachments come to {total / 1024 / 1024:.1f} MB, over the limit of "
                f"{self.profile.max_attachment_mb} MB (max_attachment_mb in the profile); "
                f"many mail servers refuse such mail. Nothing was queued.")

    def _not_before(self, draft: Draft) -> datetime | None:
        delay = self.profile.send_delay_seconds
        return None if draft.now or delay <= 0 else utcnow() + timedelta(seconds=delay)

    def _fenced_by_teammate(self, tid: str) -> None:
        holder = self.book.holder(tid)
        if holder.agent and holder.agent != self.session.agent:
            raise ConflictError(holder.conflict_message() + " Your draft is kept.")

    @intent
    def reply(self, ticket: str, body: str, close: bool = False,
              cared: bool | None = None, draft: Draft | None = None) -> dict[str, Any]:
        """Queue a reply durably, then send it now or once its undo window is over.

        Returns ``{outbox_id, state, message, not_before}``; raises ConflictError
        (nothing queued or sent) when a teammate holds the ticket, HelpdeskError
        (nothing queued) for a bad address or attachments over the limit.
        """
        draft = draft or Draft()
        draft.body = body if body else draft.body
        if not draft.body.strip() and not (draft.html and draft.html.strip()):
            raise HelpdeskError("The reply is empty.")
        tid = self.book.resolve(ticket)
        self._fenced_by_teammate(tid)
        ctx = self.composer(tid)
        answered = self._answered(tid)
        to = addresses(draft.to) if draft.to else ([ctx["to"]] if ctx["to"] else [])
        if not to or not all(is_address(a) for a in to):
            raise HelpdeskError(f"Ticket {tid} has no customer address to reply to.")
        cc = addresses(draft.cc)
        if draft.reply_all:
            cc += [a for a in self.reply_all_cc(answered, to + cc)]
        bcc = addresses(draft.bcc)
        self._check_attachments(draft.attachments, draft.allow_large)
        row = self.book.ticket_rows([tid])[tid]
        values = self._placeholders(tid, ctx["first_name"], row.get("subject") or "",
                                    row.get("customer_email") or "",
                                    row.get("customer_name"), ctx["preferred_name"])
        refs = (answered["references"] or "").split()
        meta: dict[str, Any] = {"cared": cared} if cared is not None else {}
        item_id, _mid = self.queue_mail(
            kind="reply", to=to, cc=cc, bcc=bcc, subject=draft.subject or ctx["subject"],
            body=draft.body, html=draft.html, ticket_id=tid,
            in_reply_to=answered["message_id"], references=refs, close_after=close,
            meta=meta or None, attachments=draft.attachments,
            quote=self._quote_of(answered) if draft.quote else None,
            signature=self._signature(draft, values), not_before=self._not_before(draft),
            draft=self._draft_meta(draft, tid, "reply"))
        self._drop_draft(tid)
        return self._after_queue(item_id)

    def _after_queue(self, item_id: int) -> dict[str, Any]:
        """Send now (no undo window), else leave it for the window's end; what happened."""
        item = self.outbox.get(item_id)
        if item.not_before is None:
            try:
                self.flush(self.session.intents, ids=[item_id], force=True)
            except HelpdeskError as exc:
                log.info("outbox item %d not sent yet: %s", item_id, exc)
            item = self.outbox.get(item_id)
        else:
            self.wake_at(item.not_before)
        if item.state == "held":
            raise ConflictError(f"{item.last_error} Your mail was not sent and is kept in "
                                f"the outbox.")
        return {"outbox_id": item_id, "state": item.state, "message": describe(item),
                "not_before": item.not_before, "ticket": item.ticket_id}

    @intent
    def forward(self, ticket: str, to: list[str], draft: Draft | None = None,
                message: int | None = None) -> dict[str, Any]:
        """Forward one of the ticket's messages (default: the customer's latest), with its
        attachments (fetched from the server now), to ``to``; recorded in the ticket by
        the Sent copy and a ``forwarded`` event. Same undo window and fence as a reply."""
        draft = draft or Draft()
        tid = self.book.resolve(ticket)
        self._fenced_by_teammate(tid)
        rcpt = addresses(to)
        if not rcpt:
            raise HelpdeskError("Forward to whom? Give at least one address.")
        cc, bcc = addresses(draft.cc), addresses(draft.bcc)
        original = self._nth_message(tid, message) if message else self._answered(tid)
        own = list(draft.attachments)
        theirs = self._attachments_of(original)
        self._check_attachments(own + theirs, draft.allow_large)
        row = self.book.ticket_rows([tid])[tid]
        values = self._placeholders(tid, None, row.get("subject") or "",
                                    row.get("customer_email") or "")
        refs = (original["references"] or "").split()
        base = strip_subject(original["subject"] or row.get("subject") or "")
        subject = draft.subject or f"Fwd: {base} [#{tid}]"
        item_id, _mid = self.queue_mail(
            kind="forward", to=rcpt, cc=cc, bcc=bcc, subject=subject, body=draft.body,
            html=draft.html, ticket_id=tid, in_reply_to=original["message_id"],
            references=refs, attachments=own + theirs,
            quote=self._quote_of(original, "forward"),
            signature=self._signature(draft, values), not_before=self._not_before(draft),
            meta={"original": original["message_id"] or ""},
            draft=self._draft_meta(draft, f"forward:{tid}", "forward", own=len(own)))
        return self._after_queue(item_id)

    def _attachments_of(self, msg: dict[str, Any]) -> list[FileAttachment]:
        try:
            listed = json.loads(msg.get("attachments") or "[]")
        except ValueError:
            listed = []
        if not listed:
            return []
        raw = self.raw_message(int(msg["id"]))
        out = []
        for att in parse_message(raw).attachments:
            found = extract_attachment(raw, att.index)
            if found is not None:
                out.append(FileAttachment.of(found[0], found[2], found[1]))
        return out

    @intent
    def compose(self, to: list[str], subject: str, draft: Draft) -> dict[str, Any]:
        """A new conversation: its Message-ID is planned so its ticket id is known now;
        the fence claims that ticket for the sender before it goes, and the Sent copy
        makes the ticket on every desktop (the answer joins it by headers or token)."""
        rcpt = addresses(to)
        if not rcpt:
            raise HelpdeskError("A new conversation needs a recipient (--to).")
        subject = " ".join(subject.split())
        if not subject:
            raise HelpdeskError("A new conversation needs a subject.")
        if not draft.body.strip() and not (draft.html and draft.html.strip()):
            raise HelpdeskError("The message is empty.")
        cc, bcc = addresses(draft.cc), addresses(draft.bcc)
        self._check_attachments(draft.attachments, draft.allow_large)
        settings = self.profile.smtp
        if not settings.from_address:
            raise HelpdeskError("Sending needs an [smtp] section with host and from_address "
                                "in the profile.")
        message_id = new_message_id(settings.from_address)
        # What helpdesk/mail/conversations.py ticket_for computes for it (and its token).
        tid = ticket_id_for_key("id:" + message_id)
        name = first_name(None, rcpt[0])
        values = self._placeholders(tid, name, subject, rcpt[0])
        item_id, _mid = self.queue_mail(
            kind="compose", to=rcpt, cc=cc, bcc=bcc, subject=f"{subject} [#{tid}]",
            body=render_placeholders(draft.body, values) if draft.body else "",
            html=draft.html, ticket_id=tid, message_id=message_id,
            attachments=draft.attachments, signature=self._signature(draft, values),
            not_before=self._not_before(draft),
            draft=self._draft_meta(draft, f"compose:{tid}", "compose", subject=subject,
                                   to=rcpt))
        return self._after_queue(item_id)

    @intent
    def queue_mail(self, *, kind: str, to: str | list[str], subject: str, body: str,
                   ticket_id: str | None = None, in_reply_to: str | None = None,
                   references: list[str] | None = None, close_after: bool = False,
                   meta: dict[str, Any] | None = None, message_id: str | None = None,
                   publish: list[Event] | None = None, resolve: bool = True,
                   cc: list[str] | None = None, bcc: list[str] | None = None,
                   html: str | None = None, attachments: list[FileAttachment] | None = None,
                   quote: Quote | None = None, signature: str = "",
                   not_before: datetime | None = None,
                   draft: dict[str, Any] | None = None) -> tuple[int, str]:
        """Store an outgoing message durably (nothing sent yet); returns (id, Message-ID).

        The bytes stored are the bytes sent (attachments included), so a queued item
        survives any restart as it is. ``message_id`` may be planned by the caller (e.g.
        named in a team event first). With ``publish``, the mail is staged: those events
        are published first (now unless ``resolve`` is False, else by
        :meth:`resolve_staged` or a later flush), and it goes only if the folded log says
        so (see :meth:`_decided`). ``not_before``: the end of the undo window.
        """
        settings = self.profile.smtp
        if not settings.host or not settings.from_address:
            raise HelpdeskError("Sending needs an [smtp] section with host and from_address "
                                "in the profile.")
        rcpt = [to] if isinstance(to, str) else list(to)
        for addr in [*rcpt, *(cc or []), *(bcc or [])]:
            if not is_address(addr):
                raise HelpdeskError(f"'{addr}' is not an e-mail address.")
        if not rcpt:
            raise HelpdeskError("The message has no recipient.")
        message_id = message_id or new_message_id(settings.from_address)
        files = list(attachments or [])
        raw = build(Outgoing(from_address=settings.from_address, from_name=self._from_name(),
                             to=rcpt, cc=list(cc or []), subject=subject, body=body,
                             in_reply_to=in_reply_to, references=references or [],
                             ticket_id=ticket_id, html=html, attachments=files, quote=quote,
                             signature=signature), message_id)
        meta = dict(meta or {})
        if publish:
            meta["publish"] = [event_json(e) for e in publish]
        if files:
            meta["attachments"] = [{"filename": f.filename, "content_type": f.content_type,
                                    "size": len(f.data)} for f in files]
        if draft is not None:
            meta["draft"] = draft
        item_id = self.outbox.enqueue(kind=kind, ticket_id=ticket_id, message_id=message_id,
                                      agent=self.session.agent, to=rcpt, subject=subject,
                                      body=body, raw=raw, close_after=close_after, meta=meta,
                                      staged=bool(publish), cc=list(cc or []),
                                      bcc=list(bcc or []), not_before=not_before)
        if publish:
            _fault_point("staged")
            if resolve:
                self.resolve_staged([item_id])
        _fault_point("queued")
        return item_id, message_id

    # --- drafts (local only) --------------------------------------------------------

    def _drop_draft(self, key: str) -> None:
        with self.session.store.begin() as conn:
            conn.execute(text("DELETE FROM drafts WHERE ticket_id = :t"), {"t": key})
            conn.execute(text("DELETE FROM draft_attachments WHERE ticket_id = :t"), {"t": key})

    def drop_draft(self, key: str) -> None:
        self._drop_draft(key)

    def save_draft(self, key: str, body: str, meta: dict[str, Any] | None = None,
                   attachments: list[FileAttachment] | None = None) -> None:
        """Autosave the composer (local only; survives a crash). ``attachments`` None
        keeps the files already saved with the draft."""
        with self.session.store.begin() as conn:
            if attachments is None:
                conn.execute(text(
                    "INSERT INTO drafts (ticket_id, body, updated_at, meta) VALUES "
                    "(:t, :b, :u, :m) ON CONFLICT (ticket_id) DO UPDATE SET body = "
                    "excluded.body, updated_at = excluded.updated_at, meta = CASE WHEN "
                    ":keep THEN drafts.meta ELSE excluded.meta END"),
                    {"t": key, "b": body, "u": utcnow(), "m": json.dumps(meta or {}),
                     "keep": meta is None})
            else:
                _write_draft(conn, key, body, meta or {}, attachments)

    def load_draft(self, key: str) -> dict[str, Any] | None:
        """``{body, meta, attachments}`` of a saved or undone draft, or None."""
        with self.session.store.read() as conn:
            row = conn.execute(text("SELECT body, meta FROM drafts WHERE ticket_id = :t"),
                               {"t": key}).first()
            if row is None:
                return None
            files = [FileAttachment(str(r[0]), str(r[1]), bytes(r[2])) for r in conn.execute(
                text("SELECT filename, content_type, data FROM draft_attachments WHERE "
                     "ticket_id = :t ORDER BY position"), {"t": key})]
        try:
            meta = json.loads(row[1] or "{}")
        except ValueError:
            meta = {}
        return {"body": str(row[0]), "meta": meta if isinstance(meta, dict) else {},
                "attachments": files}

    # --- the undo window ----------------------------------------------------------

    @staticmethod
    def _draft_meta(draft: Draft, key: str, kind: str, own: int | None = None,
                    subject: str | None = None, to: list[str] | None = None
                    ) -> dict[str, Any]:
        """What an undo puts back in the composer (the text is the item's body)."""
        return {"key": key, "kind": kind, "to": to if to is not None else draft.to,
                "cc": draft.cc, "bcc": draft.bcc, "reply_all": draft.reply_all,
                "html": draft.html, "quote": draft.quote, "signature": draft.signature,
                "subject": subject if subject is not None else draft.subject,
                "own_attachments": len(draft.attachments) if own is None else own}

    @intent
    def cancel(self, item_id: int) -> dict[str, Any]:
        """Undo a send: the item leaves the outbox (compare-and-swap from queued, failed
        or held) and its draft is back, attachments included, in one transaction.
        HelpdeskError ("being sent", "already sent") when it is too late: it goes once."""
        def restore(conn: Any, item: OutboxItem) -> None:
            found = item.meta.get("draft")
            saved: dict[str, Any] = found if isinstance(found, dict) else {
                "key": item.ticket_id or f"outbox:{item.id}", "kind": item.kind,
                "own_attachments": len(item.meta.get("attachments") or [])}
            key = str(saved.get("key") or item.ticket_id or f"outbox:{item.id}")
            files = _attachments_in(item.raw)[:int(saved.get("own_attachments") or 0)]
            _write_draft(conn, key, item.body, {**saved, "outbox_id": item.id}, files)

        item = self.outbox.cancel(item_id, restore)
        key = (item.meta.get("draft") or {}).get("key") or item.ticket_id or f"outbox:{item.id}"
        return {"outbox_id": item.id, "state": "cancelled", "draft": str(key),
                "ticket": item.ticket_id,
                "message": "Cancelled: nothing was sent, and the draft is back."}

    @intent
    def send_now(self, item_id: int) -> dict[str, Any]:
        """End the undo window of a queued item and send it now."""
        self.outbox.send_now(item_id)
        return self.send_due(item_id)

    @intent
    def send_due(self, item_id: int) -> dict[str, Any]:
        """Send the item if its window is over; what became of it (cancelled included)."""
        try:
            self.flush(self.session.intents, ids=[item_id], force=True)
        except HelpdeskError as exc:
            log.info("outbox item %d not sent yet: %s", item_id, exc)
        item = self.outbox.get(item_id)
        return {"outbox_id": item_id, "state": item.state, "message": describe(item),
                "not_before": item.not_before, "ticket": item.ticket_id}

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
        values = self._placeholders(ctx["ticket"], ctx["first_name"], row.get("subject") or "",
                                    row.get("customer_email") or "",
                                    row.get("customer_name"), ctx["preferred_name"])
        return render_placeholders(body, values)

    # --- signatures (team state: helpdesk/outgoing.py) ------------------------------------

    def signatures(self) -> dict[str, str]:
        with self.session.store.read() as conn:
            return folded_signatures(conn, self.session.agent)

    @intent
    def set_signature(self, body: str, team: bool = False) -> Changes:
        """Set (empty text: remove) the team's signature or this agent's own."""
        scope = scope_of(None if team else self.session.agent)
        return self.session.publish(self.session.event("signature", scope, body=body))[0]


def parse_date_text(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return parse_date(str(value))


def _attachments_in(raw: bytes) -> list[FileAttachment]:
    out = []
    for att in parse_message(raw).attachments:
        found = extract_attachment(raw, att.index)
        if found is not None:
            out.append(FileAttachment.of(found[0], found[2], found[1]))
    return out


def _write_draft(conn: Any, key: str, body: str, meta: dict[str, Any],
                 files: list[FileAttachment]) -> None:
    conn.execute(text(
        "INSERT INTO drafts (ticket_id, body, updated_at, meta) VALUES (:t, :b, :u, :m) "
        "ON CONFLICT (ticket_id) DO UPDATE SET body = excluded.body, "
        "updated_at = excluded.updated_at, meta = excluded.meta"),
        {"t": key, "b": body, "u": utcnow(), "m": json.dumps(meta)})
    conn.execute(text("DELETE FROM draft_attachments WHERE ticket_id = :t"), {"t": key})
    for i, f in enumerate(files):
        conn.execute(text(
            "INSERT INTO draft_attachments (ticket_id, position, filename, content_type, data) "
            "VALUES (:t, :p, :f, :c, :d)"),
            {"t": key, "p": i, "f": f.filename, "c": f.content_type, "d": f.data})


def describe(item: OutboxItem) -> str:
    recipients = ", ".join(item.to + item.cc)
    if item.state == "cancelled":
        return "Cancelled: nothing was sent, and the draft is kept."
    if item.state == "sent":
        return f"Sent to {recipients}."
    if item.state == "queued" and item.not_before is not None \
            and item.not_before > utcnow():
        secs = max(1, round((item.not_before - utcnow()).total_seconds()))
        return (f"Sending in {secs} s to {recipients} (undo: outbox --cancel {item.id}).")
    if item.state == "queued":
        why = f" ({item.last_error})" if item.last_error else ""
        return f"Queued in the outbox; it will be sent when the server can be reached{why}."
    if item.state == "accepted":
        return (f"Sent to {recipients}; filing the copy in Sent and telling the team "
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
