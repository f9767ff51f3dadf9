"""Internal notes inside the conversation: the note cards and the note composer.

A note is team-only (never sent, never quoted): its card is tinted and dashed and says
"Internal note", so nobody mistakes it for mail. Cards are kept per note id and reused
while the same ticket is shown (notes are add-only), so a refresh creates widgets only
for new notes. Every text here is team data: plain-text labels only.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui import format as fmt
from ui import style
from ui.style import C
from ui.widgets import plain_label


class NoteCard(QFrame):
    """One internal note: who, when, whom it mentions, the text."""

    def __init__(self, note: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("noteCard")
        self.note_id = str(note.get("id") or "")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 8, 14, 10)
        lay.setSpacing(4)
        head = QHBoxLayout()
        icon = QLabel()
        icon.setPixmap(style.pixmap("note", "#8a5a00", 16))
        head.addWidget(icon)
        self.badge = plain_label()
        self.badge.setObjectName("noteBadge")
        head.addWidget(self.badge, 1)
        self.when = plain_label()
        self.when.setObjectName("muted")
        head.addWidget(self.when)
        lay.addLayout(head)
        self.text = plain_label()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.text)
        self.update_note(note)

    def update_note(self, note: dict[str, Any]) -> None:
        """Show ``note`` (every part: the card may have shown another note before)."""
        self.note_id = str(note.get("id") or "")
        mentions = [str(m) for m in note.get("mentions") or []]
        told = f" · for {', '.join('@' + m for m in mentions)}" if mentions else ""
        self.badge.setText(f"Internal note by {note.get('agent')}{told}")
        self.when.setText(fmt.ago(note.get("at")) if note.get("at") else "")
        self.when.setToolTip(fmt.exact(note.get("at")) if note.get("at") else "")
        self.text.setText(str(note.get("text") or ""))


class NoteComposer(QFrame):
    """Write an internal note; ``@agent`` tells that teammate. Ctrl+Enter adds it."""

    submitted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("noteComposer")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(14, 6, 14, 6)
        self.editor = _NoteEditor(self)
        self.editor.setObjectName("noteEditor")
        self.editor.setPlaceholderText("Internal note for the team (never sent to the "
                                       "customer); @name tells that teammate")
        self.editor.setFixedHeight(54)
        self.editor.send.connect(self._submit)
        lay.addWidget(self.editor, 1)
        self.button = QPushButton("Add note")
        self.button.setIcon(style.icon("note", C.text))
        self.button.setToolTip("Add this note to the ticket (Ctrl+Enter)")
        self.button.clicked.connect(self._submit)
        lay.addWidget(self.button)

    def _submit(self) -> None:
        text = self.editor.toPlainText().strip()
        if text:
            self.submitted.emit(text)

    def sent(self, text: str) -> None:
        """The note went into the team log: clear the box (unless typed on since)."""
        if self.editor.toPlainText().strip() == text:
            self.editor.clear()

    def set_busy(self, busy: bool) -> None:
        self.button.setEnabled(not busy)


class _NoteEditor(QPlainTextEdit):
    send = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and \
                event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.send.emit()
            return
        super().keyPressEvent(event)
