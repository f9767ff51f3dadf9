"""New conversations and forwards: a window of their own with the composer's parts.

``ComposeDialog.new_conversation(service)`` writes to a customer; the message becomes a
ticket claimed by the sender (``desk.compose``). ``ComposeDialog.forward(service,
ticket, message)`` forwards one of a ticket's messages, its attachments included
(``desk.forward``). Both wait out the undo window in the window itself: "Sending in 8
s... Undo"; Undo puts everything back as it was, files included.
"""

from __future__ import annotations

from typing import Any

import shiboken6
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from helpdesk.desk import Desk, Draft
from ui import style
from ui.compose_parts import Attachments, FormatBar, Recipients, RichEditor, SignatureRow, UndoBar
from ui.style import C
from ui.worker import DeskService


def draft_of(editor: RichEditor, recipients: Recipients, files: Attachments,
             signature: SignatureRow, allow_large: bool = False) -> Draft:
    """The composer's parts as one Draft for the desk."""
    to, cc, bcc = recipients.values()
    return Draft(body=editor.toPlainText(),
                 html=editor.toHtml() if editor.has_formatting() else None,
                 to=to or None, cc=cc, bcc=bcc, attachments=list(files.files),
                 signature=signature.include.isChecked(), allow_large=allow_large)


def confirm_large(parent: QWidget, files: Attachments) -> bool:
    """Over the limit: ask before sending (many servers refuse such mail)."""
    if not files.over_limit:
        return True
    answer = QMessageBox.question(
        parent, "Large attachments",
        f"The files come to more than {files.limit_mb} MB; many mail servers refuse "
        f"messages this large. Send anyway?")
    return answer == QMessageBox.StandardButton.Yes


class ComposeDialog(QDialog):
    """One message to write: a new conversation, or a forward of a ticket's message."""

    sent = Signal(dict)  # the desk's result once it went (or was queued after a failure)

    def __init__(self, service: DeskService, kind: str, ticket: str | None = None,
                 message: int | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.kind = kind
        self.ticket = ticket
        self.message = message
        self.result_: dict[str, Any] | None = None
        self.setWindowTitle("New conversation" if kind == "compose" else "Forward")
        self.resize(640, 520)
        lay = QVBoxLayout(self)
        self.recipients = Recipients()
        lay.addWidget(self.recipients)
        self.subject = QLineEdit()
        self.subject.setPlaceholderText("Subject")
        self.subject.setVisible(kind == "compose")
        lay.addWidget(self.subject)
        self.note = QLabel()
        self.note.setObjectName("muted")
        self.note.setWordWrap(True)
        lay.addWidget(self.note)
        self.editor = RichEditor()
        self.editor.setPlaceholderText("Write your message…" if kind == "compose" else
                                       "A note above the forwarded message (optional)…")
        self.format_bar = FormatBar(self.editor)
        tools = QHBoxLayout()
        tools.addWidget(self.format_bar, 1)
        self.attach_button = QToolButton()
        self.attach_button.setIcon(style.icon("attach", C.muted))
        self.attach_button.setText("Attach")
        self.attach_button.setToolTip("Attach files (or drop them on the text, or paste an "
                                      "image)")
        tools.addWidget(self.attach_button)
        lay.addLayout(tools)
        lay.addWidget(self.editor, 1)
        limit = int(getattr(service.desk.profile, "max_attachment_mb", 20))
        self.files = Attachments(limit)
        lay.addWidget(self.files)
        self.attach_button.clicked.connect(self.files.choose)
        self.editor.files_dropped.connect(self.files.add_paths)
        self.editor.image_pasted.connect(self.files.add_image)
        self.files.problem.connect(lambda m: self._state(m, "error"))
        self.signature = SignatureRow()
        lay.addWidget(self.signature)
        self.undo_bar = UndoBar()
        self.undo_bar.undo.connect(self._undo)
        self.undo_bar.elapsed.connect(self._window_over)
        lay.addWidget(self.undo_bar)
        foot = QHBoxLayout()
        self.state = QLabel()
        self.state.setWordWrap(True)
        foot.addWidget(self.state, 1)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.reject)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("primary")
        self.send_button.clicked.connect(self.send)
        foot.addWidget(self.cancel_button)
        foot.addWidget(self.send_button)
        lay.addLayout(foot)
        self.recipients.show_copies(False)
        self._load()

    @classmethod
    def new_conversation(cls, service: DeskService, parent: QWidget | None = None
                         ) -> ComposeDialog:
        return cls(service, "compose", parent=parent)

    @classmethod
    def forward(cls, service: DeskService, ticket: str, message: int | None = None,
                parent: QWidget | None = None) -> ComposeDialog:
        return cls(service, "forward", ticket, message, parent)

    def _load(self) -> None:
        def load(desk: Desk) -> dict[str, str]:
            return desk.signatures()

        def done(sigs: dict[str, str]) -> None:
            if shiboken6.isValid(self):
                self.signature.set_signature(sigs.get("personal") or sigs.get("team") or "")

        self.service.read(load, on_done=done)
        if self.kind == "forward":
            self.note.setText("The message is forwarded below your note, with its "
                              "attachments (fetched from the server when you send).")
        else:
            self.note.setText("The conversation becomes a ticket, claimed by you.")

    def _state(self, text: str, kind: str = "") -> None:
        self.state.setText(text)
        self.state.setProperty("kind", kind)

    def _busy(self, busy: bool) -> None:
        for w in (self.send_button, self.editor, self.recipients, self.subject,
                  self.attach_button, self.format_bar):
            w.setEnabled(not busy)

    def send(self) -> None:
        if not confirm_large(self, self.files):
            return
        draft = draft_of(self.editor, self.recipients, self.files, self.signature,
                         allow_large=self.files.over_limit)
        to = draft.to or []
        subject = self.subject.text()
        kind, ticket, message = self.kind, self.ticket, self.message
        self._busy(True)
        self._state("Preparing…")

        def work(desk: Desk) -> dict[str, Any]:
            if kind == "compose":
                return desk.compose(to, subject, draft)
            assert ticket is not None
            return desk.forward(ticket, to, draft, message)

        self.service.run(work, on_done=self._queued, on_error=self._failed)

    def _failed(self, message: str) -> None:
        if shiboken6.isValid(self):
            self._busy(False)
            self._state(message, "error")

    def _queued(self, result: dict[str, Any]) -> None:
        if not shiboken6.isValid(self):
            return
        self.result_ = result
        due = result.get("not_before")
        if result.get("state") == "queued" and due is not None:
            from helpdesk.clock import utcnow

            self._state("")
            self.undo_bar.start(int(result["outbox_id"]),
                                (due - utcnow()).total_seconds())
            return
        self._done(result)

    def _window_over(self, item_id: int) -> None:
        """The core sends it now; close once it is no longer waiting."""
        def look(desk: Desk) -> dict[str, Any]:
            return desk.send_due(item_id)

        def done(result: dict[str, Any]) -> None:
            from helpdesk.clock import utcnow

            due = result.get("not_before")
            if shiboken6.isValid(self) and result.get("state") == "queued" and \
                    due is not None and due > utcnow():
                # Our countdown ran a little ahead of the outbox's clock: look again then.
                wait = int((due - utcnow()).total_seconds() * 1000) + 100
                QTimer.singleShot(wait, self, lambda: self._window_over(item_id))
                return
            self._done(result)

        self.service.run(look, on_done=done, on_error=self._failed)

    def _done(self, result: dict[str, Any]) -> None:
        if not shiboken6.isValid(self):
            return
        self.undo_bar.stop()
        self.result_ = result
        self.sent.emit(result)
        if result.get("state") == "failed":
            self._busy(False)
            self._state(str(result.get("message") or ""), "error")
            return
        self.accept()

    def _undo(self, item_id: int) -> None:
        def cancel(desk: Desk) -> dict[str, Any]:
            done = desk.cancel_outbox(item_id)
            done["restored"] = desk.load_draft(str(done["draft"]))
            return done

        def undone(done: dict[str, Any]) -> None:
            if not shiboken6.isValid(self):
                return
            self.undo_bar.stop()
            self._busy(False)
            restored = done.get("restored") or {}
            self.files.set_files(list(restored.get("attachments") or []))
            self._state("Not sent: your message is back.")

        def refused(message: str) -> None:  # too late: it is being sent, or was sent
            if shiboken6.isValid(self):
                self._state(message, "error")
                self._window_over(item_id)  # close once it has gone, as without Undo

        self.service.run(cancel, on_done=undone, on_error=refused)


class SignatureDialog(QDialog):
    """Your signature and the team's (team state: every desktop gets them), with the
    placeholders saved replies have ({agent}, {first_name}, {ticket}...)."""

    saved = Signal()

    def __init__(self, service: DeskService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from PySide6.QtWidgets import QPlainTextEdit

        self.service = service
        self.setWindowTitle("Signatures")
        self.resize(520, 420)
        lay = QVBoxLayout(self)
        hint = QLabel("Added below everything you send. {agent}, {first_name}, {ticket} and "
                      "{subject} are filled in. The team's is used by whoever has none.")
        hint.setWordWrap(True)
        hint.setObjectName("muted")
        lay.addWidget(hint)
        lay.addWidget(QLabel(f"Your signature ({service.desk.agent})"))
        self.personal = QPlainTextEdit()
        lay.addWidget(self.personal, 1)
        lay.addWidget(QLabel("The team's signature"))
        self.team = QPlainTextEdit()
        lay.addWidget(self.team, 1)
        foot = QHBoxLayout()
        self.state = QLabel()
        self.state.setWordWrap(True)
        foot.addWidget(self.state, 1)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.reject)
        self.save_button = QPushButton("Save")
        self.save_button.setObjectName("primary")
        self.save_button.clicked.connect(self.save)
        foot.addWidget(cancel)
        foot.addWidget(self.save_button)
        lay.addLayout(foot)
        self._was: dict[str, str] = {"personal": "", "team": ""}
        self.save_button.setEnabled(False)
        service.read(lambda d: d.signatures(), on_done=self._loaded)

    def _loaded(self, sigs: dict[str, str]) -> None:
        if not shiboken6.isValid(self):
            return
        self._was = dict(sigs)
        self.personal.setPlainText(sigs.get("personal") or "")
        self.team.setPlainText(sigs.get("team") or "")
        self.save_button.setEnabled(True)

    def save(self) -> None:
        changes = [(text, team) for text, team, key in (
            (self.personal.toPlainText().strip("\n"), False, "personal"),
            (self.team.toPlainText().strip("\n"), True, "team"))
            if text != (self._was.get(key) or "")]
        if not changes:
            self.accept()
            return
        self.save_button.setEnabled(False)
        self.state.setText("Saving for the team…")

        def work(desk: Desk) -> None:
            for text, team in changes:
                desk.set_signature(text, team=team)

        def done(_r: Any) -> None:
            if shiboken6.isValid(self):
                self.saved.emit()
                self.accept()

        def failed(message: str) -> None:
            if shiboken6.isValid(self):
                self.save_button.setEnabled(True)
                self.state.setText(message)

        self.service.run(work, on_done=done, on_error=failed)
