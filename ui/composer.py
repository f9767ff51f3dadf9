"""The composer: reply in place, under the conversation.

Opening it loads the reply context (recipient, greeting by preferred name,
white-glove reminder, who reply-all copies, the signature, the quoted message), the
saved draft (its files and recipients too) and the saved replies. While it is open
the draft is autosaved every few seconds and the claim lease is renewed. Sending
goes through ``desk.reply`` on the worker with everything the parts hold
(ui/compose_parts.py: To/Cc/Bcc, formatting, files, quote, signature); a teammate
holding the ticket comes back as a conflict and the text stays where it is. A
reply waits out the undo window in the outbox: "Sending in 8 s... Undo"; Undo
cancels it (nothing is sent) and puts the draft back, files included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from helpdesk.desk import Draft
from ui import format as fmt
from ui import style
from ui.compose_parts import (
    Attachments,
    FormatBar,
    QuotedMessage,
    Recipients,
    RichEditor,
    SignatureRow,
    UndoBar,
)
from ui.help_sheet import keys, tip
from ui.style import C
from ui.widgets import ElidedLabel, plain_label, plain_tooltip
from ui.worker import DeskService

AUTOSAVE_MS = 3000
CaredAsk = Callable[[Callable[[bool | None], None]], None]


class Composer(QFrame):
    """Reply editor for one ticket (see the module docstring)."""

    sent = Signal(str, dict)   # ticket id, desk.reply result
    send_failed = Signal(str)  # plain-language reason (a conflict keeps the text)
    closed = Signal()
    opened = Signal(str)       # ticket id, once context and draft are in
    discarded = Signal(str, str)  # ticket id, the discarded text (for an undo)

    def __init__(self, service: DeskService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.ticket_id: str | None = None
        self.context: dict[str, Any] = {}
        self.templates: list[dict[str, str]] = []
        self.ask_cared: CaredAsk | None = None
        # The text being answered (the selection, else the customer's latest message).
        self.quote_source: Callable[[], str] | None = None
        self.unclaimed = False
        self._saved_text = ""
        self._initial_text = ""
        self._seq = 0
        self._sending = False
        self.setObjectName("composer")
        self.hide()

        lay = QVBoxLayout(self)
        lay.setContentsMargins(16, 10, 16, 12)
        lay.setSpacing(8)
        head = QHBoxLayout()
        head.setSpacing(8)
        icon = QLabel()
        icon.setPixmap(style.pixmap("reply", C.accent, 16))
        head.addWidget(icon)
        # Elided, so that a long recipient never widens the composer (and the pane).
        self.to_label = ElidedLabel(mode=Qt.TextElideMode.ElideMiddle)
        self.to_label.setObjectName("composerTo")
        head.addWidget(self.to_label, 2)
        self.subject_label = ElidedLabel()
        self.subject_label.setObjectName("muted")
        head.addWidget(self.subject_label, 1)
        self.templates_button = QToolButton()
        self.templates_button.setText("Saved replies")
        self.templates_button.setIcon(style.icon("note", C.muted))
        self.templates_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.templates_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.templates_button.setToolTip("Insert a saved reply ({first_name}, {ticket}, {agent} "
                                         "are filled in)")
        self.templates_menu = QMenu(self)
        self.templates_button.setMenu(self.templates_menu)
        self.quote_button = QToolButton()
        self.quote_button.setText("Quote")
        self.quote_button.setIcon(style.icon("reply", C.muted))
        self.quote_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.quote_button.setToolTip("Quote what you answer: the selected text, else the "
                                     "customer's latest message")
        self.quote_button.clicked.connect(self.insert_quote)
        head.addWidget(self.quote_button)
        head.addWidget(self.templates_button)
        close = QToolButton()
        close.setIcon(style.icon("close", C.muted))
        close.setAutoRaise(True)
        close.setToolTip("Close the composer; the draft is kept (Esc)")
        close.clicked.connect(lambda: self.close_composer())
        head.addWidget(close)
        lay.addLayout(head)

        self.reminder = plain_label()
        self.reminder.setObjectName("reminder")
        self.reminder.setWordWrap(True)
        self.reminder.hide()
        lay.addWidget(self.reminder)

        self.recipients = Recipients()
        lay.addWidget(self.recipients)

        self.editor = RichEditor()
        self.editor.setObjectName("editor")
        self.editor.setPlaceholderText("Write your reply…")
        self.editor.setMinimumHeight(150)
        tools = QHBoxLayout()
        tools.setSpacing(4)
        self.format_bar = FormatBar(self.editor)
        tools.addWidget(self.format_bar, 1)
        self.attach_button = QToolButton()
        self.attach_button.setText("Attach")
        self.attach_button.setIcon(style.icon("attach", C.muted))
        self.attach_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.attach_button.setToolTip("Attach files (or drop them on the text, or paste an "
                                      "image)")
        tools.addWidget(self.attach_button)
        lay.addLayout(tools)
        lay.addWidget(self.editor, 1)
        self.files = Attachments(int(getattr(service.desk.profile, "max_attachment_mb", 20)))
        self.files.setObjectName("composerFiles")
        lay.addWidget(self.files)
        self.attach_button.clicked.connect(self.files.choose)
        self.editor.files_dropped.connect(self.files.add_paths)
        self.editor.image_pasted.connect(self.files.add_image)
        self.files.problem.connect(lambda m: self._set_state(m, "error"))
        self.files.changed.connect(self._files_changed)
        self._files_dirty = False
        self.signature = SignatureRow()
        lay.addWidget(self.signature)
        self.quoted = QuotedMessage()
        lay.addWidget(self.quoted)
        self.undo_bar = UndoBar()
        self.undo_bar.undo.connect(self._undo)
        self.undo_bar.elapsed.connect(self._window_over)
        lay.addWidget(self.undo_bar)

        foot = QHBoxLayout()
        self.state = plain_label()
        self.state.setObjectName("composerState")
        self.state.setWordWrap(True)
        foot.addWidget(self.state, 1)
        self.discard_button = QPushButton("Discard")
        self.discard_button.setToolTip("Throw this draft away (you can undo it)")
        self.discard_button.clicked.connect(self.discard)
        foot.addWidget(self.discard_button)
        self.send_close_button = QPushButton("Send and close")
        self.send_close_button.setToolTip(tip("Send the reply and close the ticket", "send_close"))
        self.send_close_button.clicked.connect(lambda: self.send(close=True))
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("primary")
        self.send_button.setIcon(style.icon("send", "#ffffff"))
        self.send_button.setToolTip(tip("Send the reply", "send"))
        self.send_button.clicked.connect(lambda: self.send())
        foot.addWidget(self.send_close_button)
        foot.addWidget(self.send_button)
        lay.addLayout(foot)

        ctx = Qt.ShortcutContext.WidgetWithChildrenShortcut
        for seq in keys("send"):
            QShortcut(seq, self, lambda: self.send(), context=ctx)
        for seq in keys("send_close"):
            QShortcut(seq, self, lambda: self.send(close=True), context=ctx)
        QShortcut(QKeySequence("Esc"), self, lambda: self.close_composer(), context=ctx)

        self._autosave = QTimer(self)
        self._autosave.setInterval(AUTOSAVE_MS)
        self._autosave.timeout.connect(self.save_draft)
        self._renew = QTimer(self)
        self._renew.timeout.connect(self._renew_claim)

    # --- open / close -----------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.isVisible() and self.ticket_id is not None

    def open_for(self, ticket_id: str, unclaimed: bool = False) -> None:
        if self.ticket_id == ticket_id and self.isVisible():
            self.editor.setFocus()
            return
        if self.ticket_id and self.ticket_id != ticket_id:
            self.close_composer()
        self.ticket_id = ticket_id
        self.unclaimed = unclaimed
        self._seq += 1
        seq = self._seq
        self._set_sending(False)
        self.undo_bar.stop()
        self.editor.clear()
        self.files.set_files([])
        self.recipients.set_values([])
        self.signature.set_signature("")
        self.quoted.set_quote("", "")
        self.editor.setEnabled(False)
        self.to_label.setText("Preparing the reply…")
        self.subject_label.setText("")
        self.reminder.hide()
        self._set_state("")
        self.show()

        def load(desk: Any) -> tuple[dict[str, Any], dict[str, Any] | None,
                                     list[dict[str, str]]]:
            return desk.composer(ticket_id), desk.load_draft(ticket_id), desk.templates()

        def done(result: tuple[dict[str, Any], dict[str, Any] | None,
                               list[dict[str, str]]]) -> None:
            if shiboken6.isValid(self) and seq == self._seq:
                self._loaded(*result)

        def failed(message: str) -> None:
            if shiboken6.isValid(self) and seq == self._seq:
                self.to_label.setText("Cannot reply to this ticket")
                self._set_state(message, "error")

        self.service.run(load, on_done=done, on_error=failed)

    def _loaded(self, ctx: dict[str, Any], saved: dict[str, Any] | None,
                templates: list[dict[str, str]]) -> None:
        self.context = ctx
        to_text = f"Reply to {ctx.get('to') or ''}"
        self.to_label.setText(to_text)
        self.subject_label.setText(str(ctx.get("subject") or ""))
        reminder = ctx.get("reminder")
        self.reminder.setText(str(reminder or ""))
        self.reminder.setProperty("kind", "glove" if ctx.get("white_glove") else "vip")
        self.reminder.style().unpolish(self.reminder)
        self.reminder.style().polish(self.reminder)
        self.reminder.setVisible(bool(reminder))
        self._set_templates(templates)
        greeting = str(ctx.get("greeting") or "Hello,")
        self._initial_text = f"{greeting}\n\n"
        draft = str(saved["body"]) if saved else None
        meta: dict[str, Any] = dict(saved.get("meta") or {}) if saved else {}
        text = draft if draft else self._initial_text
        self._saved_text = text
        self.editor.setEnabled(True)
        if meta.get("html"):
            self.editor.setHtml(str(meta["html"]))
            self._saved_text = self.text()
        else:
            self.editor.setPlainText(text)
        to = meta.get("to") or ([ctx["to"]] if ctx.get("to") else [])
        self.recipients.set_values([str(a) for a in to], list(meta.get("cc") or []),
                                   list(meta.get("bcc") or []), list(ctx.get("cc_all") or []))
        if meta.get("reply_all"):
            self.recipients.add_others()
        self.files.set_files(list(saved.get("attachments") or []) if saved else [])
        self._files_dirty = False
        self.signature.set_signature(str(ctx.get("signature") or ""))
        self.signature.include.setChecked(meta.get("signature", True) is not False)
        quote = ctx.get("quote") or {}
        self.quoted.set_quote(str(quote.get("attribution") or ""), str(quote.get("text") or ""))
        self.quoted.include.setChecked(meta.get("quote", True) is not False)
        cursor = self.editor.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        self.editor.setTextCursor(cursor)
        self.editor.setFocus()
        if meta.get("outbox_id"):
            self._set_state("Not sent: your reply is back.")
        elif draft:
            self._set_state("Draft restored.")
        elif self.unclaimed:
            self._set_state("Sending will claim this ticket for you.")
        self._autosave.start()
        lease = int(getattr(self.service.desk.profile, "lease_minutes", 30))
        self._renew.start(max(60, lease * 60 // 3) * 1000)
        self._renew_claim()
        if self.ticket_id:
            self.opened.emit(self.ticket_id)

    def close_composer(self, save: bool = True) -> None:
        # A reply still in its undo window goes when the window ends (the core sends it).
        self.undo_bar.stop()
        if save:
            self.save_draft()
        self._autosave.stop()
        self._renew.stop()
        self._seq += 1
        self.ticket_id = None
        self.hide()
        self.closed.emit()

    # --- drafts and leases ------------------------------------------------------------

    def text(self) -> str:
        return self.editor.toPlainText()

    def _files_changed(self) -> None:
        self._files_dirty = True

    def _draft_meta(self) -> dict[str, Any]:
        to, cc, bcc = self.recipients.values()
        return {"to": to, "cc": cc, "bcc": bcc, "quote": self.quoted.include.isChecked(),
                "signature": self.signature.include.isChecked(),
                "html": self.editor.toHtml() if self.editor.has_formatting() else None}

    def save_draft(self, quiet: bool = False) -> None:
        tid = self.ticket_id
        text = self.text()
        dirty_files = self._files_dirty
        if not tid or not self.editor.isEnabled() or self._sending or \
                (text == self._saved_text and not dirty_files):
            return
        self._saved_text = text
        self._files_dirty = False
        if text.strip() in ("", self._initial_text.strip()) and not self.files.files:
            self.service.run(lambda d: d.discard_draft(tid), on_error=lambda _m: None)
            return
        meta = self._draft_meta()
        files = list(self.files.files) if dirty_files else None

        def saved(_r: Any) -> None:
            if (shiboken6.isValid(self) and not quiet and not self._sending
                    and self.ticket_id == tid and self.state.property("kind") != "error"):
                self._set_state("Draft saved just now.")
                self.state.setToolTip(f"Saved {fmt.exact(fmt.utcnow())}")

        self.service.run(lambda d: d.save_draft(tid, text, meta, files), on_done=saved)

    def discard(self) -> None:
        """Throw the draft away and close; ``discarded`` lets the window offer an undo."""
        tid = self.ticket_id
        if not tid or self._sending:
            return
        text = self.text()
        self._saved_text = text
        self.service.run(lambda d: d.discard_draft(tid), on_error=lambda _m: None)
        self.close_composer(save=False)
        if text.strip() and text.strip() != self._initial_text.strip():
            self.discarded.emit(tid, text)

    def insert_quote(self) -> None:
        """Insert what is being answered, each line quoted with "> "."""
        text = self.quote_source() if self.quote_source is not None else ""
        if not text.strip() or not self.editor.isEnabled():
            return
        quoted = "\n".join(f"> {line}" if line.strip() else ">"
                           for line in text.strip().splitlines())
        cursor = self.editor.textCursor()
        if cursor.positionInBlock() > 0:
            quoted = "\n" + quoted
        self.editor.insertPlainText(quoted + "\n\n")
        self.editor.setFocus()

    def _renew_claim(self) -> None:
        tid = self.ticket_id
        if tid:
            self.service.run(lambda d: d.renew(tid), on_error=lambda _m: None)

    # --- saved replies -----------------------------------------------------------------

    def _set_templates(self, templates: list[dict[str, str]]) -> None:
        if templates == self.templates and self.templates_menu.actions():
            return  # the same saved replies: no new actions (each QObject keeps refs to None)
        self.templates = templates
        menu = self.templates_menu
        menu.clear()
        if not templates:
            empty = QAction("No saved replies yet", menu)
            empty.setEnabled(False)
            menu.addAction(empty)
        for t in templates:
            action = QAction(t["name"], menu)
            action.setToolTip(plain_tooltip(t["body"][:200]))
            action.triggered.connect(lambda _=False, body=t["body"]: self.insert_template(body))
            menu.addAction(action)
        menu.addSeparator()
        save = QAction("Save this reply as a saved reply…", menu)
        save.triggered.connect(self._save_as_template)
        menu.addAction(save)

    def insert_template(self, body: str) -> None:
        tid = self.ticket_id
        if not tid:
            return

        def insert(text: str) -> None:
            if shiboken6.isValid(self) and self.ticket_id == tid:
                self.editor.insertPlainText(text)
                self.editor.setFocus()

        self.service.run(lambda d: d.render_template(body, tid), on_done=insert)

    def _save_as_template(self) -> None:
        body = self.text().strip()
        if not body:
            return
        name, ok = QInputDialog.getText(self, "Save reply", "Name for this saved reply:")
        if ok and name.strip():
            self.service.run(lambda d: d.save_template(name.strip(), body),
                             on_done=lambda _c: self._reload_templates())

    def _reload_templates(self) -> None:
        if shiboken6.isValid(self):
            self.service.run(lambda d: d.templates(), on_done=self._set_templates)

    # --- sending ----------------------------------------------------------------------

    def send(self, close: bool = False) -> None:
        if not self.ticket_id or self._sending or not self.editor.isEnabled():
            return
        if not self.text().strip() or self.text().strip() == self._initial_text.strip():
            self._set_state("Write something first: the reply is empty.", "error")
            return
        if close and self.ask_cared is not None:
            self.ask_cared(lambda cared: self._send(True, cared))
        else:
            self._send(close, None)

    def draft(self, allow_large: bool = False) -> Draft:
        """Everything the composer holds, for ``desk.reply``."""
        to, cc, bcc = self.recipients.values()
        return Draft(body=self.text(),
                     html=self.editor.toHtml() if self.editor.has_formatting() else None,
                     to=to or None, cc=cc, bcc=bcc, attachments=list(self.files.files),
                     quote=self.quoted.include.isChecked() and self.quoted.isVisibleTo(self),
                     signature=self.signature.include.isChecked(), allow_large=allow_large)

    def _send(self, close: bool, cared: bool | None) -> None:
        tid = self.ticket_id
        if not tid or not shiboken6.isValid(self):
            return
        if self.files.over_limit and QMessageBox.question(
                self, "Large attachments",
                f"The files come to more than {self.files.limit_mb} MB; many mail servers "
                f"refuse messages this large. Send anyway?") != QMessageBox.StandardButton.Yes:
            return
        body = self.text()
        draft = self.draft(allow_large=self.files.over_limit)
        self._set_sending(True)
        self._set_state("Sending…")

        def work(desk: Any) -> dict[str, Any]:
            result: dict[str, Any] = desk.reply(tid, body, close=close, cared=cared,
                                                draft=draft)
            return result

        def done(result: dict[str, Any]) -> None:
            if not shiboken6.isValid(self):
                return
            due = result.get("not_before")
            if result.get("state") == "queued" and due is not None and self.ticket_id == tid:
                self._saved_text = body
                self._set_state("")
                self.undo_bar.start(int(result["outbox_id"]),
                                    (due - fmt.utcnow()).total_seconds())
                return
            self._finished(tid, body, result)

        def failed(message: str) -> None:
            if not shiboken6.isValid(self):
                return
            self._set_sending(False)
            if self.ticket_id == tid:
                self._set_state(message, "error")
                self._saved_text = ""
                self.save_draft(quiet=True)
            self.send_failed.emit(message)

        self.service.run(work, on_done=done, on_error=failed)

    def _finished(self, tid: str, body: str, result: dict[str, Any]) -> None:
        self._set_sending(False)
        self.undo_bar.stop()
        if self.ticket_id == tid:
            self._saved_text = body
            self.close_composer(save=False)
        self.sent.emit(tid, result)

    def _window_over(self, item_id: int) -> None:
        """The countdown ended: the core sends it now; close once it has gone."""
        tid = self.ticket_id
        body = self.text()

        def done(result: dict[str, Any]) -> None:
            if not shiboken6.isValid(self) or not tid:
                return
            due = result.get("not_before")
            if result.get("state") == "queued" and due is not None and due > fmt.utcnow():
                # Our countdown ran a little ahead of the outbox's clock: look again then.
                wait = int((due - fmt.utcnow()).total_seconds() * 1000) + 100
                QTimer.singleShot(wait, self, lambda: self._window_over(item_id))
                return
            self._finished(tid, body, result)

        def failed(message: str) -> None:
            if shiboken6.isValid(self):
                self._set_sending(False)
                self._set_state(message, "error")

        self.service.run(lambda d: d.send_due(item_id), on_done=done, on_error=failed)

    def _undo(self, item_id: int) -> None:
        """Undo: nothing is sent and the draft (files, recipients) is back here."""
        tid = self.ticket_id

        def undone(_r: Any) -> None:
            if not shiboken6.isValid(self) or self.ticket_id != tid or tid is None:
                return
            self._set_sending(False)
            self.undo_bar.stop()
            self.ticket_id = None  # reopen: the restored draft, as it was
            self.open_for(tid, self.unclaimed)

        def refused(message: str) -> None:  # too late: being sent or sent; it goes once
            if shiboken6.isValid(self):
                self._set_state(message, "error")
                self._window_over(item_id)  # close once it has gone, as without Undo

        self.service.run(lambda d: d.cancel_outbox(item_id), on_done=undone, on_error=refused)

    def _set_sending(self, sending: bool) -> None:
        self._sending = sending
        for w in (self.send_button, self.send_close_button, self.editor, self.discard_button,
                  self.recipients, self.attach_button, self.format_bar):
            w.setEnabled(not sending)

    def _set_state(self, text: str, kind: str = "") -> None:
        self.state.setText(text)
        self.state.setProperty("kind", kind)
        self.state.style().unpolish(self.state)
        self.state.style().polish(self.state)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
