"""The Desk: one facade whose methods are the user's intents.

The GUI and the CLI both talk to the core only through this class. It builds the
session (helpdesk/session.py: store, team log, outbox, mail sync and the serial
worker that owns every change) and the services on top of it; every method that
changes something runs on that worker (``@intent``), reads run on the caller's
thread. Services depend on the session, never on the desk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import imapclient

from helpdesk.cards.service import FeedbackCards
from helpdesk.changes import Changes
from helpdesk.claims import Claims
from helpdesk.config import Profile
from helpdesk.digest.service import Digest
from helpdesk.errors import HelpdeskError
from helpdesk.mail.backfill import SyncProgress
from helpdesk.mail.compose import FileAttachment
from helpdesk.mail.push import LoopStatus, Push
from helpdesk.mail.sync import MailSync, SyncResult, refresh_tickets
from helpdesk.metrics.service import ServiceMetrics
from helpdesk.replies import Draft, Replies
from helpdesk.rota.service import RotaService
from helpdesk.session import ImapLink, Session, describe, intent
from helpdesk.store import Store
from helpdesk.store import queries as q
from helpdesk.store.aliases import canonical
from helpdesk.team.events import Event
from helpdesk.team.fold import FoldResult
from helpdesk.team.log import TeamLog
from helpdesk.team.registers import PROFILE_FIELDS
from helpdesk.team.upkeep import LogUpkeep
from helpdesk.teamwork import Teamwork
from helpdesk.tickets import ClaimInfo, TicketBook, check_birthday, normalise_email

log = logging.getLogger(__name__)

__all__ = ["Changes", "ClaimInfo", "Desk", "Draft", "FileAttachment"]


class Desk:
    """Everything an agent can do, for one profile and one local store."""

    def __init__(self, profile: Profile, store: Store | None = None,
                 connect_imap: Callable[[], imapclient.IMAPClient] | None = None) -> None:
        self.session = Session(profile, store, connect_imap)
        self.book = TicketBook(self.session)
        self.claims = Claims(self.session, self.book)
        self.replies = Replies(self.session, self.book, self.claims)
        self.cards = FeedbackCards(self.session, self.book, self.replies)
        self.metrics = ServiceMetrics(self.session, self.book, self.replies)
        self.rota = RotaService(self.session)
        self.digest = Digest(self.session, self.metrics, self.replies, self.rota.alarm)
        self.teamwork = Teamwork(self.session, self.book)
        self.session.batch_hooks.append(self._score_answers)
        self.upkeep = LogUpkeep(self.session)
        # After the replay, before the outbox: the log's upkeep (snapshots, compaction);
        # hand-offs are decided on the folded log, and a digest staged at the period
        # boundary goes in the same pass.
        self.session.sync_steps += [("team log", self._replay_team),
                                    ("team log upkeep", self.upkeep.run),
                                    ("rota", self._rota_step),
                                    ("outbox", self._flush_outbox)]
        self._push: Push | None = None

    # --- what the desk is made of -----------------------------------------------------

    @property
    def profile(self) -> Profile:
        return self.session.profile

    @property
    def store(self) -> Store:
        return self.session.store

    @property
    def mail(self) -> MailSync:
        return self.session.mail

    @property
    def team(self) -> TeamLog:
        return self.session.team

    @property
    def agent(self) -> str:
        return self.session.agent

    def close(self) -> None:
        self.rota.close()
        if self._push is not None:
            self._push.stop()
            self._push = None
        self.session.close()
        self.replies.close()

    # --- sync -----------------------------------------------------------------------------

    def sync_once(self, on_progress: Callable[[SyncProgress], None] | None = None
                  ) -> Changes:
        """Sync everything: passes (mail folders, team log, outbox, a slice of older
        mail) until no older mail (or team history a snapshot began) is left to bring
        in; ``on_progress`` hears after each pass that left some. Intents queued
        meanwhile run between batches and passes."""
        changes = self.session.sync_pass()
        while (progress := self.session.progress) is not None and progress.more:
            if on_progress is not None:
                on_progress(progress)
            changes.merge(self.session.sync_pass())
        return changes

    def sync_progress(self) -> SyncProgress:
        """How much of the synced folders is in the store (a read)."""
        return self.session.backfill.progress()

    def _score_answers(self, batch: SyncResult) -> Changes:
        """Survey answers among new mail become NPS scores (every desktop alike), batch by
        batch: nothing kept grows with the mailbox."""
        return self._scored(self.metrics.after_sync(set(batch.tickets)))

    def _scored(self, scored: set[str]) -> Changes:
        if scored - {"*"}:
            with self.store.begin() as conn:
                refresh_tickets(conn, scored - {"*"})
        return Changes(scored, set())

    def _replay_team(self, link: ImapLink) -> Changes:
        changes = self.session.replay(link, live_first=True)
        # Tickets surveyed since the last check are re-checked (an answer may have come
        # before its survey-sent event was folded).
        changes.merge(self._scored(self.metrics.after_sync(changes.tickets)))
        return changes

    def _rota_step(self, link: ImapLink) -> Changes:
        changes = self.rota.handoff_pass(link)
        changes.merge(self.digest.boundary_pass(link))
        return changes

    def _flush_outbox(self, link: ImapLink) -> Changes:
        return self.replies.flush(link)

    def push_loop(self, on_status: Callable[[LoopStatus], None] | None = None,
                  on_changes: Callable[[Changes], None] | None = None) -> Push:
        """Keep this desk synced (IDLE, else polling) until the returned Push is stopped."""
        push: Push

        def reported(changes: Changes | None, error: BaseException | None) -> None:
            if error is not None:
                status = LoopStatus(ok=False, message=describe(error, self.profile),
                                    retry_in=self.session.retry_in)
                log.warning("sync failed: %s", status.message)
            else:
                status = LoopStatus(ok=True, progress=self.session.progress)
                push.watch = self.session.watched_folders()
                push.start_watchers()
                if on_changes is not None and changes:
                    on_changes(changes)
            if on_status is not None:
                on_status(status)

        push = Push(self.session.connect_imap, watch=self.watched_folders(),
                    poll_seconds=self.profile.imap.poll_seconds,
                    request_sync=self.session.request_sync, every=self.session.every)
        self.session.on_pass = reported
        self.rota.alarm.enabled = True  # hand-offs and the digest's week end wake the loop
        self._push = push
        return push

    def watched_folders(self) -> list[str]:
        return self.session.watched_folders()

    # --- reading (helpdesk/tickets.py) -----------------------------------------------------

    def server_now(self) -> Any:
        return self.session.server_now()

    def ticket_query(self, view: str = "open", search: str = "", **kw: Any) -> q.TicketQuery:
        return self.book.ticket_query(view, search, **kw)

    def ticket_ids(self, view: str = "open", search: str = "", limit: int | None = None,
                   cancelled: Callable[[], bool] | None = None, **kw: Any) -> list[str]:
        return self.book.ticket_ids(view, search, limit, cancelled, **kw)

    def ticket_rows(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return self.book.ticket_rows(ids)

    def tickets(self, view: str = "open", search: str = "", tags: tuple[str, ...] = ()
                ) -> list[dict[str, Any]]:
        """A view's tickets as JSON rows (``tags``: only tickets with all of them)."""
        return self.book.tickets(view, search, tags)

    def tag_counts(self) -> dict[str, int]:
        """Every tag in use and how many tickets carry it (the sidebar's list)."""
        return self.book.tag_counts()

    def agents(self) -> list[str]:
        """Agents known from the team log (and this one), for picking an assignee."""
        return self.book.agents()

    def spam_blocks(self) -> dict[str, str]:
        """Blocked senders: pattern (address or domain) -> kind."""
        return self.book.spam_blocks()

    def resolve_ticket(self, ticket: str) -> str:
        return self.book.resolve(ticket)

    def ticket(self, ticket: str) -> dict[str, Any]:
        return self.book.ticket(ticket)

    def holder(self, ticket_id: str) -> ClaimInfo:
        return self.book.holder(ticket_id)

    def status(self) -> dict[str, Any]:
        return self.book.status()

    def log_status(self) -> dict[str, Any]:
        """Snapshots and compaction of the team log (keys: see README, ``status``)."""
        return self.book.log_status()

    def customer(self, email: str) -> dict[str, Any]:
        return self.book.customer(email)

    # --- team intents ------------------------------------------------------------------------

    def event(self, etype: str, subject: str, **data: Any) -> Event:
        return self.session.event(etype, subject, **data)

    def publish(self, *events: Event) -> tuple[Changes, FoldResult]:
        """Append events to the team log and fold up to them (on the worker)."""
        return self.session.publish(*events)

    def refresh_team(self) -> Changes:
        """Fold teammates' new events now (what a claim attempt does first)."""
        return self.session.replay()

    def claim(self, ticket: str) -> ClaimInfo:
        """Claim ``ticket`` for this agent; raise ConflictError naming the holder."""
        return self.claims.claim(self.book.resolve(ticket))

    def renew(self, ticket: str) -> bool:
        """Extend this agent's lease (an open composer calls this); False if not held."""
        return self.claims.renew(self.book.resolve(ticket))

    def release(self, ticket: str) -> Changes:
        return self.claims.release(self.book.resolve(ticket))

    def takeover(self, ticket: str) -> ClaimInfo:
        """Take a ticket over from its holder (who is told); ConflictError if it moved on."""
        return self.claims.takeover(self.book.resolve(ticket))

    @intent
    def set_status(self, /, ticket: str, status: str, **extra: Any) -> Changes:
        tid = self.book.resolve(ticket)
        return self.session.publish(self.event("status", tid, status=status, **extra))[0]

    @intent
    def merge(self, ticket: str, into: str) -> Changes:
        """Merge ``ticket`` into ``into`` for the whole team (a ``merge`` event): its
        messages, state, drafts and queued mail follow, and its id resolves to ``into``
        from then on (helpdesk/team/merges.py). HelpdeskError for a ticket into itself
        or into one already merged into it; there is no undo."""
        src, dst = self.book.resolve(ticket), self.book.resolve(into)
        if src == dst:
            if ticket.strip().lstrip("#").lower() == into.strip().lstrip("#").lower():
                raise HelpdeskError(f"Ticket {src} cannot be merged into itself.")
            raise HelpdeskError(f"Tickets {ticket.strip()} and {into.strip()} are already one "
                                f"ticket ({dst}): merging them again would make a cycle.")
        changes = self.session.publish(self.event("merge", src, into=dst))[0]
        if self.book.resolve(src) != dst:
            raise HelpdeskError(f"Ticket {src} could not be merged into {dst}: the team log "
                                f"refused it (see the log file).")
        changes.tickets |= {src, dst}
        return changes

    def close_ticket(self, ticket: str, cared: bool | None = None) -> Changes:
        """Close (which also releases the claim); ``cared`` is the agent's self-check."""
        extra = {} if cared is None else {"cared": cared}
        return self.set_status(ticket, "closed", **extra)

    def reopen(self, ticket: str) -> Changes:
        return self.set_status(ticket, "open")

    # --- teamwork on a ticket (helpdesk/teamwork.py) ------------------------------------

    def note(self, ticket: str, text: str) -> dict[str, Any]:
        """An internal note on the ticket (never sent to the customer); ``@agent`` in the
        text tells that agent. Returns ``{id, ticket, mentions}``."""
        return self.teamwork.note(ticket, text)

    def assign(self, ticket: str, agent: str) -> Changes:
        """Make ``agent`` the ticket's lasting owner (they are told); no claim is taken."""
        return self.teamwork.assign(ticket, agent)

    def unassign(self, ticket: str) -> Changes:
        return self.teamwork.assign(ticket, None)

    def snooze(self, ticket: str, *, until: Any = None, seconds: int | None = None) -> Changes:
        """Hide the ticket from open views until ``until`` (naive UTC) or for ``seconds``
        by the server's clock; it comes back by itself, or when the customer writes."""
        return self.teamwork.snooze(ticket, until=until, seconds=seconds)

    def unsnooze(self, ticket: str) -> Changes:
        return self.teamwork.unsnooze(ticket)

    def tag(self, ticket: str, add: list[str] | tuple[str, ...] = (),
            remove: list[str] | tuple[str, ...] = ()) -> Changes:
        return self.teamwork.tag(ticket, add, remove)

    def spam(self, ticket: str, domain: bool = False) -> dict[str, Any]:
        """Close the ticket; later mail from its sender (or domain) goes to the spam view."""
        return self.teamwork.spam(ticket, domain)

    def unspam(self, address: str) -> list[str]:
        """Lift the block of an address (and of its domain); returns what was lifted."""
        return self.teamwork.unspam(address)

    # --- replies (helpdesk/replies.py) ---------------------------------------------------------

    def composer(self, ticket: str) -> dict[str, Any]:
        """Recipient, subject, greeting by preferred name, VIP / white-glove reminders."""
        return self.replies.composer(ticket)

    def reply(self, ticket: str, body: str, close: bool = False,
              cared: bool | None = None, draft: Draft | None = None) -> dict[str, Any]:
        """Send (or safely queue) a reply; ConflictError if a teammate holds the ticket.

        With ``close`` the ticket closes once the reply is sent, recording the agent's
        ``cared`` self-check in the same event. ``draft`` carries the rest of the
        composer (recipients, reply-all, attachments, formatting, quote, signature,
        ``now``). Unless ``now`` (or ``send_delay_seconds = 0``) it waits out the undo
        window in the outbox: ``state`` is then ``queued`` and ``not_before`` says until
        when; :meth:`cancel_outbox` undoes it.
        """
        return self.replies.reply(ticket, body, close, cared, draft)

    def forward(self, ticket: str, to: list[str], draft: Draft | None = None,
                message: int | None = None) -> dict[str, Any]:
        """Forward message ``message`` (1 = the ticket's first; default the customer's
        latest) with its attachments; recorded in the ticket."""
        return self.replies.forward(ticket, to, draft, message)

    def compose(self, to: list[str], subject: str, draft: Draft) -> dict[str, Any]:
        """Start a new conversation; the result's ``ticket`` is its ticket id (claimed
        by this agent when it is sent)."""
        return self.replies.compose(to, subject, draft)

    def cancel_outbox(self, item_id: int) -> dict[str, Any]:
        """Undo a send still in its window (or failed, or held): nothing goes and the
        draft is back; HelpdeskError when it is being sent or was sent (it goes once)."""
        return self.replies.cancel(item_id)

    def send_due(self, item_id: int) -> dict[str, Any]:
        """Send this item if its undo window is over (a cancelled one stays cancelled)."""
        return self.replies.send_due(item_id)

    def send_now(self, item_id: int) -> dict[str, Any]:
        """Skip the rest of an item's undo window."""
        return self.replies.send_now(item_id)

    def signatures(self) -> dict[str, str]:
        """``{'team': ..., 'personal': ...}`` (text with placeholders; empty: none)."""
        return self.replies.signatures()

    def set_signature(self, body: str, team: bool = False) -> Changes:
        return self.replies.set_signature(body, team)

    def forwards(self, ticket: str) -> list[dict[str, Any]]:
        from helpdesk.outgoing import forwards

        tid = self.book.resolve(ticket)
        with self.store.read() as conn:
            return forwards(conn, tid)

    def queue_mail(self, *, kind: str, to: str | list[str], subject: str, body: str,
                   ticket_id: str | None = None, in_reply_to: str | None = None,
                   references: list[str] | None = None, meta: dict[str, Any] | None = None,
                   message_id: str | None = None) -> tuple[int, str]:
        """Queue other outgoing mail (surveys, shipped-feature notes); sync sends it."""
        return self.replies.queue_mail(kind=kind, to=to, subject=subject, body=body,
                                       ticket_id=ticket_id, in_reply_to=in_reply_to,
                                       references=references, meta=meta,
                                       message_id=message_id)

    @intent
    def flush_outbox(self, force: bool = False) -> Changes:
        """Send what is due now (``force``: also what is waiting out a back-off)."""
        if not force:
            return self.replies.flush(self.session.intents)
        due = [i.id for i in self.session.outbox.pending()]
        return self.replies.flush(self.session.intents, ids=due)

    def outbox(self, ticket: str | None = None, pending_only: bool = False
               ) -> list[dict[str, Any]]:
        from helpdesk.mail.outbox import PENDING_STATES, VISIBLE_STATES

        states = PENDING_STATES if pending_only else VISIBLE_STATES
        return [i.public() for i in self.session.outbox.items(ticket, states)]

    @intent
    def retry_outbox(self, item_id: int) -> None:
        """Send a failed, held or uncertain item again; refuses sent and unknown ones."""
        self.session.outbox.requeue(item_id)

    @intent
    def discard_outbox(self, item_id: int) -> None:
        self.session.outbox.discard(item_id)

    def templates(self) -> list[dict[str, str]]:
        return self.replies.templates()

    @intent
    def save_template(self, name: str, body: str) -> Changes:
        if not name.strip() or not body.strip():
            raise HelpdeskError("A saved reply needs a name and a text.")
        return self.session.publish(self.event("template", name.strip(), body=body))[0]

    @intent
    def delete_template(self, name: str) -> Changes:
        return self.session.publish(self.event("template-delete", name.strip()))[0]

    def render_template(self, body: str, ticket: str) -> str:
        return self.replies.render_template(body, ticket)

    def save_draft(self, ticket: str, body: str, meta: dict[str, Any] | None = None,
                   attachments: list[FileAttachment] | None = None) -> None:
        """Autosave the composer (local only; survives a crash)."""
        self.replies.save_draft(self._draft_key(ticket), body, meta, attachments)

    def draft(self, ticket: str) -> str | None:
        found = self.replies.load_draft(self._draft_key(ticket))
        return None if found is None else str(found["body"])

    def load_draft(self, key: str) -> dict[str, Any] | None:
        """A draft with its composer fields and files (an undone send comes back here)."""
        return self.replies.load_draft(self._draft_key(key))

    def discard_draft(self, ticket: str) -> None:
        self.replies.drop_draft(self._draft_key(ticket))

    def _draft_key(self, key: str) -> str:
        """Drafts of a merged-away ticket live with the ticket it went into (any other
        key, such as a new conversation's, is itself)."""
        with self.session.store.read() as conn:
            return canonical(conn, key) if len(key) <= 64 else key

    def attachment(self, message_pk: int, index: int) -> tuple[str, str, bytes]:
        """(filename, content type, bytes), fetched from the server on demand."""
        return self.replies.attachment(message_pk, index)

    def inline_images(self, message_pk: int) -> dict[str, bytes]:
        """Inline ``cid:`` images of a message, by Content-ID."""
        return self.replies.inline_images(message_pk)

    # --- customers -------------------------------------------------------------------------

    @intent
    def update_customer(self, /, email: str, *, vip: bool | None = None, tier: str | None = None,
                        white_glove: bool | None = None, note: str | None = None,
                        **profile: str | None) -> Changes:
        """Publish every requested change to a customer as one batch of events."""
        email = normalise_email(email)
        fields = {k: v for k, v in profile.items() if k in PROFILE_FIELDS}
        unknown = set(profile) - set(PROFILE_FIELDS)
        if unknown:
            raise HelpdeskError(f"Unknown customer fields: {', '.join(sorted(unknown))}")
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
        return self.session.publish(*events)[0]

    @intent
    def delete_note(self, email: str, note_id: str) -> Changes:
        return self.session.publish(self.event("note-delete", normalise_email(email),
                                               note=note_id))[0]
