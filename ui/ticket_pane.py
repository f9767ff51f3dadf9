"""The right-hand side: one ticket's header, claim banner, conversation, composer, customer.

Every action is an intent on the desk run by the worker; the pane reloads the
ticket when the core reports a change to it (from this desktop or a teammate's).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from helpdesk.desk import Changes
from ui import format as fmt
from ui import style
from ui.banner import ClaimBanner, MessageBar
from ui.composer import Composer
from ui.conversation import ConversationView
from ui.customer_panel import CustomerPanel
from ui.help_sheet import tip
from ui.notes_thread import NoteComposer
from ui.style import C
from ui.ticket_teamwork import TicketTeamwork, teamwork_bits
from ui.worker import DeskService

Notify = Callable[..., None]  # (text, kind, *, key=None, action=None)
ROW_REFRESH_MS = 60_000


class CaredDialog(QDialog):
    """'Did this customer feel we genuinely cared?' Yes / No / Skip (or cancel).

    The pane makes one and asks with it each time (:meth:`ask`), as a fresh dialog
    would: the new subject, the survey ticked, no answer, the focus where a new
    dialog puts it (a dialog per close kept references to None, see ui.pool)."""

    def __init__(self, subject: str = "", parent: QWidget | None = None, *,
                 offer_survey: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("caredDialog")
        self.setWindowTitle("Close ticket")
        self.answer: bool | None = None
        # (then, survey) of the question being asked. A list changed in place, never a
        # new attribute value: assigning fresh callables to a dialog's attributes costs
        # PySide 6.11 about 14 references to None per show (measured), for good.
        self._asked: list[tuple[Callable[[bool | None], None],
                                Callable[[bool], None] | None]] = []
        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 20, 24, 18)
        lay.setSpacing(8)
        title = QLabel("Close this ticket?")
        title.setObjectName("sheetTitle")
        lay.addWidget(title)
        self.subject = QLabel()
        self.subject.setTextFormat(Qt.TextFormat.PlainText)
        self.subject.setObjectName("muted")
        self.subject.setWordWrap(True)
        lay.addWidget(self.subject)
        lay.addSpacing(8)
        lay.addWidget(QLabel("Did this customer feel we genuinely cared?"))
        # survey = "ask": closing offers the one-question NPS survey (ticked: NPS needs
        # answers, and the person sees and can untick it).
        self.survey = QCheckBox("Send the customer the one-question satisfaction survey")
        lay.addWidget(self.survey)
        lay.addSpacing(6)
        row = QHBoxLayout()
        row.setSpacing(8)
        row.addStretch(1)
        self.cancel_button = QPushButton("Cancel")
        self.skip_button = QPushButton("Skip")
        self.no_button = QPushButton("No")
        self.yes_button = QPushButton("Yes")
        self.yes_button.setObjectName("primary")
        for b in (self.cancel_button, self.skip_button, self.no_button, self.yes_button):
            row.addWidget(b)
        lay.addLayout(row)
        self.cancel_button.clicked.connect(self.reject)
        self.skip_button.clicked.connect(lambda: self._done(None))
        self.no_button.clicked.connect(lambda: self._done(False))
        self.yes_button.clicked.connect(lambda: self._done(True))
        self.finished.connect(self._finished)
        self._fill(subject, offer_survey)

    def _fill(self, subject: str, offer_survey: bool) -> None:
        self.answer = None
        self.subject.setText(subject)
        self.survey.setChecked(True)
        self.survey.setVisible(offer_survey)
        for b in (self.cancel_button, self.skip_button, self.no_button):
            b.setDefault(False)
        self.yes_button.setDefault(True)

    def ask(self, subject: str, then: Callable[[bool | None], None], *,
            offer_survey: bool = False,
            survey: Callable[[bool], None] | None = None) -> None:
        """Ask about ``subject``; once answered, ``survey(send)`` then ``then(cared)``
        (neither if cancelled)."""
        if self.isVisible():
            self.reject()  # (a second ask replaces the first, as a new dialog did)
        self._fill(subject, offer_survey)
        self._asked.append((then, survey))
        focused = self.focusWidget()
        if focused is not None:
            focused.clearFocus()  # the last answer's button is not where the focus starts
        self.adjustSize()
        self.open()

    def _finished(self, code: int) -> None:
        if not self._asked:
            return
        then, survey = self._asked.pop()
        self._asked.clear()
        if code == QDialog.DialogCode.Accepted:
            if survey is not None:
                survey(self.send_survey)
            then(self.answer)

    def _done(self, answer: bool | None) -> None:
        self.answer = answer
        self.accept()

    @property
    def send_survey(self) -> bool:
        return self.survey.isVisibleTo(self) and self.survey.isChecked()


def _short(text: str | None, limit: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


class TicketHeader(QFrame):
    def __init__(self, parent: QWidget | None = None, agent: str = "") -> None:
        super().__init__(parent)
        self.agent = agent
        self.setObjectName("ticketHeader")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(20, 14, 14, 12)
        left = QVBoxLayout()
        left.setSpacing(3)
        self.subject = QLabel()
        self.subject.setTextFormat(Qt.TextFormat.PlainText)
        self.subject.setObjectName("ticketSubject")
        self.subject.setWordWrap(True)
        self.subject.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.meta = QLabel()
        self.meta.setTextFormat(Qt.TextFormat.PlainText)
        self.meta.setObjectName("muted")
        self.meta.setWordWrap(True)
        self.meta.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # The open ticket stays open when a change takes it out of the list's view
        # (claimed from Unclaimed, say); this says so instead of swapping tickets.
        self.out_of_view = QLabel()
        self.out_of_view.setObjectName("outOfView")
        self.out_of_view.setTextFormat(Qt.TextFormat.PlainText)
        self.out_of_view.setWordWrap(True)  # never widens the pane (or the window)
        self.out_of_view.hide()
        left.addWidget(self.subject)
        left.addWidget(self.meta)
        left.addWidget(self.out_of_view)
        lay.addLayout(left, 1)
        self.buttons = QHBoxLayout()
        self.buttons.setSpacing(6)
        lay.addLayout(self.buttons)

    def show_row(self, row: dict[str, Any]) -> None:
        self.subject.setText(str(row.get("subject") or "(no subject)"))
        bits = [f"#{row.get('id')}"]
        name = row.get("customer_name")
        email = row.get("customer_email") or ""
        bits.append(f"{name} <{email}>" if name else email)
        n = int(row.get("message_count") or 0)
        bits.append(f"{n} message{'s' if n != 1 else ''}")
        status = str(row.get("status") or "open")
        if status != "open":
            bits.append(status.capitalize())
        if row.get("waiting_since") and status != "closed":
            bits.append(f"oldest unanswered {fmt.ago(row['waiting_since'])}")
        bits += teamwork_bits(row, self.agent)
        self.meta.setText("  ·  ".join(bits))
        when = fmt.exact(row.get("waiting_since")) if status != "closed" else ""
        self.meta.setToolTip(f"Oldest unanswered message: {when}" if when else "")

    def set_in_view(self, in_view: bool, view_label: str) -> None:
        self.out_of_view.setText(f"No longer in {view_label}: it stays open here until you "
                                 "pick another ticket.")
        self.out_of_view.setVisible(not in_view)


class TicketPane(QStackedWidget, TicketTeamwork):
    """See the module docstring."""

    open_ticket = Signal(str)
    ticket_changed = Signal(str)   # a local intent that returns no Changes (claim, takeover)
    loaded = Signal(str)           # the ticket's conversation is on screen

    def __init__(self, service: DeskService, notify: Notify,
                 parent: QWidget | None = None, notes: MessageBar | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.notify = notify
        self.notes = notes
        self._survey_after_send: dict[str, bool] = {}
        self.merge_picker: Any = None  # the open "Merge into…" dialog (tests reach it)
        self.agent = service.desk.agent
        self.ticket_id: str | None = None
        self.row: dict[str, Any] = {}
        self._message_ids: list[int] = []
        self._seq = 0

        empty = QLabel("Select a ticket to read the conversation.")
        empty.setObjectName("emptyState")
        empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.addWidget(empty)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        left = QWidget()
        left.setObjectName("ticketColumn")
        col = QVBoxLayout(left)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        self.header = TicketHeader(agent=self.agent)
        col.addWidget(self.header)
        self.banner = ClaimBanner(self.agent)
        col.addWidget(self.banner)
        self.vsplit = QSplitter(Qt.Orientation.Vertical)
        self.vsplit.setChildrenCollapsible(False)
        self.conversation = ConversationView(service)
        self.composer = Composer(service)
        # The conversation with the note composer under it: notes are written where
        # they are read, apart from the reply composer (nothing of them is ever sent).
        thread = QWidget()
        thread_lay = QVBoxLayout(thread)
        thread_lay.setContentsMargins(0, 0, 0, 0)
        thread_lay.setSpacing(0)
        thread_lay.addWidget(self.conversation, 1)
        self.note_box = NoteComposer()
        self.note_box.submitted.connect(self.add_note)
        thread_lay.addWidget(self.note_box)
        self.vsplit.addWidget(thread)
        self.vsplit.addWidget(self.composer)
        self.vsplit.setStretchFactor(0, 3)
        self.vsplit.setStretchFactor(1, 2)
        col.addWidget(self.vsplit, 1)
        self.customer = CustomerPanel(service)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.customer)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setSizes([640, 290])
        self.addWidget(self.splitter)

        self.reply_button = self._button("Reply", "reply", tip("Reply to the customer", "reply"),
                                         self.reply)
        self.close_button = self._button("Close", "closed", tip("Close the ticket", "close"),
                                         self.close_ticket)
        more = QToolButton()
        more.setObjectName("moreButton")
        more.setIcon(style.icon("more", C.muted))
        more.setToolTip("More actions")
        more.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(more)
        self.pending_action = menu.addAction(style.icon("pending"), "Mark as pending",
                                             self.mark_pending)
        self.reopen_action = menu.addAction(style.icon("reopen"), "Reopen", self.reopen)
        self.release_action = menu.addAction(style.icon("release"), "Release", self.release)
        menu.addAction(style.icon("send"), "Forward…", self.forward)
        menu.addAction(style.icon("card"), "Merge into…", self.merge_into)
        menu.addSeparator()
        menu.addAction(style.icon("assign"), tip("Assign…", "assign"), self.assign)
        menu.addAction(style.icon("snooze"), tip("Snooze…", "snooze"), self.snooze)
        menu.addAction(style.icon("tag"), tip("Tags…", "tag"), self.edit_tags)
        menu.addAction(style.icon("note"), tip("Internal note", "note"), self.focus_note)
        self.spam_action = menu.addAction(style.icon("spam"), tip("Mark as spam…", "spam"),
                                          self.mark_spam)
        menu.addSeparator()
        menu.addAction(style.icon("card"), tip("Add to a feedback card…", "feedback"),
                       self.add_to_card)
        more.setMenu(menu)
        self.header.buttons.addWidget(more)

        self.banner.claim_clicked.connect(self.claim)
        self.banner.takeover_clicked.connect(self.takeover)
        self.banner.release_clicked.connect(self.release)
        self.banner.reopen_clicked.connect(self.reopen)
        self.conversation.link_activated.connect(self._open_link)
        self.conversation.outbox_changed.connect(lambda: self.reload())
        self.customer.open_ticket.connect(self.open_ticket)
        self.composer.sent.connect(self._reply_sent)
        self.composer.send_failed.connect(lambda m: self.notify(m, "warn"))
        self.composer.ask_cared = self._ask_cared
        self.composer.quote_source = self.conversation.quote_text
        self.composer.discarded.connect(self._draft_discarded)
        self.composer.opened.connect(lambda _t: self._keep_answer_in_view())
        self._cared: CaredDialog | None = None
        self._row_timer = QTimer(self)
        self._row_timer.setInterval(ROW_REFRESH_MS)
        self._row_timer.timeout.connect(self.reload_row)

    def _ask_cared(self, then: Callable[[bool | None], None]) -> None:
        """Send and close: the cared question, and the survey offer, as for Close."""
        tid = self.ticket_id
        if tid is None:
            return

        def want(send: bool) -> None:
            self._survey_after_send[tid] = send  # read once the reply (and close) went

        self._with_survey_offer(tid, lambda offer: self._cared_question(
            str(self.row.get("subject") or ""), then, offer_survey=offer, survey=want))

    def _cared_question(self, subject: str, then: Callable[[bool | None], None], *,
                  offer_survey: bool = False,
                  survey: Callable[[bool], None] | None = None) -> CaredDialog:
        """Ask the cared question (and offer the survey) with the pane's one dialog."""
        if self._cared is None:
            self._cared = CaredDialog(parent=self)
        self._cared.ask(subject, then, offer_survey=offer_survey, survey=survey)
        return self._cared

    def _button(self, text: str, icon_name: str, tooltip: str,
                slot: Callable[[], None]) -> QPushButton:
        b = QPushButton(text)
        b.setIcon(style.icon(icon_name, C.text))
        b.setToolTip(tooltip)
        b.clicked.connect(slot)
        self.header.buttons.addWidget(b)
        return b

    # --- loading ----------------------------------------------------------------------

    def show_ticket(self, ticket_id: str | None) -> None:
        if ticket_id == self.ticket_id:
            return
        if self.composer.is_open:
            self.composer.close_composer()
        if self.ticket_id is not None:
            self._clear_note(f"held:{self.ticket_id}")
        self.ticket_id = ticket_id
        self._message_ids = []
        self.header.out_of_view.hide()
        if ticket_id is None:
            self.setCurrentIndex(0)
            self._row_timer.stop()
            self.conversation.clear()
            self.conversation.ticket_id = None
            return
        self.setCurrentIndex(1)
        self._row_timer.start()
        self.reload(full=True)

    def reload(self, full: bool = False) -> None:
        tid = self.ticket_id
        if tid is None:
            return
        self._seq += 1
        seq = self._seq

        def load(d: Any) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
            data = d.ticket(tid)
            row = d.ticket_rows([tid]).get(tid, {})
            outbox = d.outbox(tid)
            return data, row, outbox

        def done(result: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]) -> None:
            if shiboken6.isValid(self) and seq == self._seq and tid == self.ticket_id:
                self._loaded(*result, full=full)

        def failed(message: str) -> None:
            if shiboken6.isValid(self) and seq == self._seq:
                self.notify(message, "error")

        self.service.read(load, on_done=done, on_error=failed)

    def reload_row(self) -> None:
        tid = self.ticket_id
        if tid is None:
            return
        seq = self._seq

        def done(rows: dict[str, Any]) -> None:
            if shiboken6.isValid(self) and seq == self._seq and tid in rows:
                self._show_row(rows[tid])

        self.service.read(lambda d: d.ticket_rows([tid]), on_done=done,
                         on_error=lambda _m: None)

    def _loaded(self, data: dict[str, Any], row: dict[str, Any],
                outbox: list[dict[str, Any]], full: bool) -> None:
        self._show_row(row or {**data, "customer_email": data.get("customer")})
        ids = [int(m["id"]) for m in data.get("messages") or []]
        if full or ids != self._message_ids:
            self.conversation.show_ticket(data, keep_scroll=not full)
            self._message_ids = ids
        self.conversation.show_outbox(outbox)
        self.conversation.show_notes(data)
        email = row.get("customer_email") or data.get("customer")
        if full or email != self.customer.email:
            self.customer.show_customer(email, self.ticket_id)
        self.loaded.emit(self.ticket_id or "")

    def _show_row(self, row: dict[str, Any]) -> None:
        self.row = row
        self.header.show_row(row)
        self.banner.show_row(row)
        closed = row.get("status") == "closed"
        self.close_button.setEnabled(not closed)
        self.reopen_action.setEnabled(closed)
        self.pending_action.setEnabled(not closed and row.get("status") != "pending")
        self.release_action.setEnabled(row.get("claimed_by") == self.agent)
        holder = row.get("claimed_by")
        if self.ticket_id and (closed or not holder or holder == self.agent):
            # "agent-a is handling this" is resolved once they are not, or it closed.
            self._clear_note(f"held:{self.ticket_id}")

    def _clear_note(self, key: str) -> None:
        if self.notes is not None:
            self.notes.clear(key)

    def on_changed(self, changes: Changes) -> None:
        tid = self.ticket_id
        if tid is None:
            return
        if "*" in changes.tickets or tid in changes.tickets:
            self.reload()
        elif self.row.get("customer_email") in changes.customers:
            self.reload_row()
        self.customer.on_changed(changes)

    # --- intents ----------------------------------------------------------------------

    def _run(self, fn: Callable[[Any], Any], busy: str | None = None,
             done_text: str | None = None, local_change: bool = False,
             then: Callable[[], None] | None = None) -> None:
        tid = self.ticket_id
        if tid is None:
            return
        if busy:
            self.banner.set_busy(busy)

        def done(_r: Any) -> None:
            if done_text:
                self.notify(done_text, "ok")
            if then is not None:
                then()
            if local_change:
                self.ticket_changed.emit(tid)
            if shiboken6.isValid(self) and tid == self.ticket_id:
                self.reload_row()

        def failed(message: str) -> None:
            self.notify(message, "warn", key=f"held:{tid}")
            if shiboken6.isValid(self) and tid == self.ticket_id:
                self.reload_row()
            if local_change:
                self.ticket_changed.emit(tid)

        self.service.run(lambda d: fn(d), on_done=done, on_error=failed)

    def claim(self) -> None:
        tid = self.ticket_id
        if tid is None:
            return
        if self.row.get("claimed_by") == self.agent:
            return
        if self.row.get("claimed_by"):
            self.takeover()
            return
        self._run(lambda d: d.claim(tid), busy="Claiming…", local_change=True)

    def takeover(self) -> None:
        tid = self.ticket_id
        holder = self.row.get("claimed_by")
        if tid is None or not holder or holder == self.agent:
            return
        subject = str(self.row.get("subject") or "(no subject)")
        box = QMessageBox(QMessageBox.Icon.Question, "Take over ticket",
                          f"Take “{subject}” (#{tid}) over from {holder}?", parent=self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setObjectName("takeoverBox")
        box.setInformativeText(f"{holder} is told that you took over. Do this when they are "
                               "away or asked you to.")
        take = box.addButton("Take over", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def finished(_code: int) -> None:
            if box.clickedButton() is take:
                self._run(lambda d: d.takeover(tid), busy="Taking over…",
                          done_text=f"You now hold “{subject}” (#{tid}); {holder} is told.",
                          local_change=True)

        box.finished.connect(finished)
        box.open()

    def release(self) -> None:
        tid = self.ticket_id
        if tid is not None:
            self._run(lambda d: d.release(tid))

    def close_ticket(self) -> None:
        tid = self.ticket_id
        if tid is None or self.row.get("status") == "closed":
            return

        subject = str(self.row.get("subject") or "")
        wanted = {"survey": False}

        def want(send: bool) -> None:
            wanted["survey"] = send

        def then(cared: bool | None) -> None:
            self._run(lambda d: d.close_ticket(tid, cared),
                      done_text=f"Closed “{subject}” (#{tid}).",
                      then=lambda: self._survey_after_close(tid, wanted["survey"]))
            if self.composer.is_open and self.composer.ticket_id == tid:
                self.composer.close_composer()

        self._with_survey_offer(tid, lambda offer: self._cared_question(
            subject, then, offer_survey=offer, survey=want))

    # --- the NPS survey (profile: survey = never | ask | always) -----------------------

    def _survey_policy(self) -> str:
        return str(getattr(self.service.desk.profile, "survey", "ask") or "ask")

    def _with_survey_offer(self, tid: str, ask: Callable[[bool], Any]) -> None:
        """Call ``ask(offer)``: offer is whether to offer the survey ("ask" only)."""
        if self._survey_policy() != "ask":
            ask(False)
            return

        def done(offer: bool) -> None:
            if shiboken6.isValid(self):
                ask(bool(offer))

        self.service.read(lambda d: d.metrics.should_offer_survey(tid), on_done=done,
                          on_error=lambda _m: done(False))

    def _survey_after_close(self, tid: str, asked_yes: bool) -> None:
        policy = self._survey_policy()
        if policy == "never" or (policy == "ask" and not asked_yes):
            return

        def send(d: Any) -> str | None:
            if policy == "always":
                result: str | None = d.metrics.survey_after_close(tid)
                return result
            return d.metrics.send_survey(tid) if d.metrics.should_offer_survey(tid) else None

        def done(message_id: str | None) -> None:
            if message_id:
                self.notify("The satisfaction survey is queued for the customer.", "ok",
                            key=f"survey:{tid}")

        self.service.run(send, on_done=done,
                         on_error=lambda m: self.notify(f"The survey was not sent: {m}",
                                                        "warn", key=f"survey:{tid}"))

    def reopen(self) -> None:
        tid = self.ticket_id
        if tid is not None:
            self._run(lambda d: d.reopen(tid), done_text=f"Ticket {tid} reopened.")

    def mark_pending(self) -> None:
        tid = self.ticket_id
        if tid is not None:
            self._run(lambda d: d.set_status(tid, "pending"),
                      done_text="Marked as pending: waiting for the customer.")

    def reply(self) -> None:
        if self.ticket_id is None:
            return
        self.confirm_reply(self._open_reply)

    def _open_reply(self) -> None:
        if self.ticket_id is None:
            return
        if self.row.get("claimed_by") not in (None, self.agent):
            self.notify(f"{self.row.get('claimed_by')} is handling this ticket. Take it over "
                        "first if you need to reply.", "warn", key=f"held:{self.ticket_id}")
        self.composer.open_for(self.ticket_id, unclaimed=not self.row.get("claimed_by"))

    def forward(self) -> None:
        """Forward the customer's latest message (with its files) to a colleague or vendor."""
        if self.ticket_id is None:
            return
        from ui.compose_dialog import ComposeDialog

        tid = self.ticket_id
        dialog = ComposeDialog.forward(self.service, tid, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.sent.connect(lambda result: self._reply_sent(tid, result))
        dialog.show()

    def merge_into(self) -> None:
        """Merge this ticket into one the agent picks (for the whole team; no undo)."""
        tid = self.ticket_id
        if tid is None:
            return
        from ui.merge_picker import MergePicker

        picker = MergePicker(self.service, tid, self.row.get("customer_email"), parent=self)
        picker.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def merged(into: str) -> None:
            self.notify(f"Ticket {tid} is merged into {into}.", "ok", key=f"merged:{tid}")
            self.ticket_changed.emit(tid)
            self.open_ticket.emit(into)

        picker.merged.connect(merged)
        picker.show()
        self.merge_picker = picker

    def _keep_answer_in_view(self) -> None:
        """The composer shares the column with the conversation: what is being
        answered stays readable above it (a splitter the person can move)."""
        total = sum(self.vsplit.sizes()) or self.vsplit.height()
        conversation = self.vsplit.sizes()[0]
        if conversation < total * 0.45:
            keep = int(total * 0.5)
            self.vsplit.setSizes([keep, total - keep])
        self.conversation.show_latest_incoming()

    def _draft_discarded(self, tid: str, text: str) -> None:
        def undo() -> None:
            def restored(_r: Any) -> None:
                if shiboken6.isValid(self) and self.ticket_id == tid:
                    self.composer.open_for(tid)

            self.service.run(lambda d: d.save_draft(tid, text), on_done=restored)

        self.notify("Draft discarded.", "info", key=f"discarded:{tid}", action=("Undo", undo),
                    timeout_ms=30_000)

    def _reply_sent(self, tid: str, result: dict[str, Any]) -> None:
        state = result.get("state")
        message = str(result.get("message") or "")
        kind = "ok" if state == "sent" else "error" if state == "failed" else "warn"
        self.notify(message or f"Reply {state}.", kind, key=f"reply:{tid}")
        if tid in self._survey_after_send and state in ("sent", "queued", "accepted"):
            self._survey_after_close(tid, self._survey_after_send.pop(tid))
        self.ticket_changed.emit(tid)
        if tid == self.ticket_id:
            self.reload()

    def add_to_card(self) -> None:
        tid = self.ticket_id
        if tid is None:
            return
        try:
            from ui.card_picker import CardPicker
        except ImportError:
            self.notify("Feedback cards are not available yet.", "info")
            return
        picker = CardPicker(self.service, tid, self.conversation.quote_text(), self)
        who = fmt.display_name(self.row.get("customer_name"), self.row.get("customer_email"))

        def added(_card_id: str) -> None:
            words = f" with their words “{_short(picker.added_quote)}”" \
                if picker.added_quote else ""
            self.notify(f"{who} is now on the card “{picker.added_label}”{words}.", "ok",
                        key=f"card:{tid}")
            self.customer.reload()

        picker.added.connect(added)
        picker.exec()

    def _open_link(self, url: QUrl) -> None:
        if url.scheme() not in ("http", "https", "mailto"):
            self.notify(f"Links of type '{url.scheme() or 'unknown'}' are not opened.", "warn")
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Open link",
                          "Open this link in your browser?", parent=self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setInformativeText(html.escape(url.toDisplayString()))
        open_button = box.addButton("Open", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _code: QDesktopServices.openUrl(url)
                             if box.clickedButton() is open_button else None)
        box.open()

    def toggle_customer_panel(self) -> None:
        self.customer.setVisible(not self.customer.isVisible())
