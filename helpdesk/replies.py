"""Replies: compose, queue, undo; sending exactly once is helpdesk/sending.py.

What a person writes (a reply, a forward, a new conversation) is checked first
(addresses, attachment sizes: nothing is queued with a bad one), built into the
bytes that will be sent (helpdesk/mail/compose.py) and stored in the outbox before
any network I/O, with ``not_before`` = now + ``send_delay_seconds``: the undo
window. :meth:`Replies.cancel` is the compare-and-swap back to a draft (files
included); a take after the window is the compare-and-swap that starts the sending
(helpdesk/mail/outbox.py), so a cancel racing the send either cancels or is refused
and the mail goes once. A new conversation's Message-ID is planned so its ticket id is
known before it goes; the claim fence claims that ticket for the sender. Drafts are
local (the ``drafts`` tables); signatures are team state (helpdesk/outgoing.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import imapclient
from sqlalchemy import text

from helpdesk.changes import Changes
from helpdesk.claims import Claims
from helpdesk.clock import utcnow
from helpdesk.errors import ConflictError, HelpdeskError, MailError, NotFoundError
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
from helpdesk.mail.imap import examine, logout_quietly
from helpdesk.mail.outbox import OutboxItem
from helpdesk.mail.parse import extract_attachment, parse_date, parse_message
from helpdesk.outgoing import scope_of, signature_for
from helpdesk.outgoing import signatures as folded_signatures
from helpdesk.sending import OutboxSender, _fault_point, event_json
from helpdesk.session import Session, intent
from helpdesk.team.events import Event
from helpdesk.tickets import TicketBook

log = logging.getLogger(__name__)

WHITE_GLOVE_REMINDER = ("White-glove customer: extra reassurance and politeness. Say what "
                        "happens next and when.")


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


class Replies(OutboxSender):
    """Composing and queueing what people write (replies, forwards, new conversations),
    the undo window, drafts, signatures and saved replies; sending: OutboxSender."""

    def __init__(self, session: Session, book: TicketBook, claims: Claims) -> None:
        super().__init__(session, claims)
        self.book = book

    # --- composing ----------------------------------------------------------------

    _MESSAGE_COLUMNS = ("id, message_id, \"references\", from_addr, from_name, reply_to, "
                        "subject, direction, auto_kind, to_addrs, cc_addrs, text, html, "
                        "date_header, received_at, attachments")

    def _answered(self, tid: str) -> dict[str, Any]:
        """The message a reply answers: the customer's latest real message, else the latest."""
        with self.session.store.read() as conn:
            row = conn.execute(text(
                f"SELECT {self._MESSAGE_COLUMNS} FROM messages WHERE ticket_id = :t ORDER BY "
                "(direction = 'in' AND auto_kind = 'none') DESC, received_at DESC, "
                "date_header DESC, dedup_key DESC LIMIT 1"), {"t": tid}).mappings().first()
        if row is None:
            raise NotFoundError(f"Ticket {tid} has no messages to answer.")
        return dict(row)

    def _nth_message(self, tid: str, n: int) -> dict[str, Any]:
        """Message ``n`` (1 = the first) of the ticket, in the order ``show`` lists them."""
        with self.session.store.read() as conn:
            rows = conn.execute(text(
                f"SELECT {self._MESSAGE_COLUMNS} FROM messages WHERE ticket_id = :t "
                "ORDER BY received_at, date_header, dedup_key"), {"t": tid}).mappings().all()
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
        if item.state == "held" and not item.waiting_for_approval:
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
            kind="forward", extra_headers={"X-Helpdesk-Kind": "forward"}, to=rcpt, cc=cc,
            bcc=bcc, subject=subject, body=draft.body,
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
                   draft: dict[str, Any] | None = None,
                   extra_headers: dict[str, str] | None = None) -> tuple[int, str]:
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
                             signature=signature, extra_headers=dict(extra_headers or {})),
                     message_id)
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
    if item.waiting_for_approval:
        return ("Waiting for approval: a teammate reads it first (newcomer weeks); it goes "
                "once they approve it.")
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
