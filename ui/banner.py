"""Bars: the claim banner on a ticket, and the window's non-modal message bar."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui import format as fmt
from ui import style
from ui.help_sheet import tip
from ui.style import C


class ClaimBanner(QFrame):
    """'Unclaimed: Claim (C)', 'You are handling this', 'Held by agent-b for 4 min'."""

    claim_clicked = Signal()
    takeover_clicked = Signal()
    release_clicked = Signal()
    reopen_clicked = Signal()

    def __init__(self, agent: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.agent = agent
        self.setObjectName("claimBanner")
        self.state = ""
        self.holder: str | None = None
        self._since: Any = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 8, 10, 8)
        layout.setSpacing(10)
        self._icon = QLabel()
        self._icon.setFixedSize(18, 18)
        self.label = QLabel()
        self.label.setObjectName("bannerText")
        self.detail = QLabel()
        self.detail.setObjectName("bannerDetail")
        layout.addWidget(self._icon)
        layout.addWidget(self.label)
        layout.addWidget(self.detail, 1)
        self.button = QPushButton()
        self.button.setObjectName("bannerButton")
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.button.clicked.connect(self._clicked)
        self.secondary = QPushButton()
        self.secondary.setObjectName("bannerLink")
        self.secondary.setFlat(True)
        self.secondary.setCursor(Qt.CursorShape.PointingHandCursor)
        self.secondary.clicked.connect(self.release_clicked)
        layout.addWidget(self.secondary)
        layout.addWidget(self.button)
        self._tick = QTimer(self)
        self._tick.setInterval(30_000)
        self._tick.timeout.connect(self._refresh_detail)

    def show_row(self, row: dict[str, Any]) -> None:
        """Show the claim state of a ticket row (``desk.ticket_rows`` shape)."""
        holder = row.get("claimed_by")
        self.holder = holder
        self._since = row.get("claimed_at")
        status = row.get("status") or "open"
        self.secondary.hide()
        self.button.setEnabled(True)
        if status == "closed":
            self._set("closed", "closed", C.muted, "Closed",
                      f"{fmt.ago(row.get('closed_at'))}" if row.get("closed_at") else "",
                      "Reopen")
        elif not holder:
            self._set("unclaimed", "unclaimed", C.accent, "Unclaimed",
                      "Nobody is handling this yet.", "Claim (C)")
            self.button.setToolTip(tip("Claim this ticket so teammates know you have it",
                                       "claim"))
        elif holder == self.agent:
            self._set("mine", "check", C.ok, "You are handling this",
                      self._since_text(), "")
            self.secondary.setText("Release")
            self.secondary.setToolTip("Let a teammate pick this ticket up")
            self.secondary.show()
        else:
            self._set("other", "mine", C.warn, f"Held by {holder}", self._since_text(),
                      "Take over…")
            self.button.setToolTip(f"Take this ticket over from {holder} (they will be told)")
        if self.state in ("mine", "other"):
            self._tick.start()
        else:
            self._tick.stop()

    def set_busy(self, text: str) -> None:
        self.button.setEnabled(False)
        self.button.setText(text)

    def _since_text(self) -> str:
        since = fmt.parse_time(self._since)
        if since is None:
            return ""
        held = fmt.utcnow() - since
        return "since just now" if held.total_seconds() < 60 else f"for {fmt.duration(held)}"

    def _refresh_detail(self) -> None:
        if self.state in ("mine", "other"):
            self.detail.setText(self._since_text())

    def _set(self, state: str, icon_name: str, colour: str, text: str, detail: str,
             button: str) -> None:
        self.state = state
        self.setProperty("state", state)
        self.style().unpolish(self)
        self.style().polish(self)
        self._icon.setPixmap(style.pixmap(icon_name, colour, 18))
        self.label.setText(text)
        self.detail.setText(detail)
        self.button.setText(button)
        self.button.setVisible(bool(button))

    def _clicked(self) -> None:
        {"unclaimed": self.claim_clicked, "other": self.takeover_clicked,
         "closed": self.reopen_clicked}.get(self.state, self.claim_clicked).emit()

    @property
    def text(self) -> str:
        return f"{self.label.text()} {self.detail.text()}".strip()


class _Note(QFrame):
    def __init__(self, text: str, kind: str, action: tuple[str, Callable[[], None]] | None,
                 on_close: Callable[[_Note], None]) -> None:
        super().__init__()
        self.text = text
        self.kind = kind
        self.setObjectName("note")
        self.setProperty("kind", kind)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 6, 6)
        colour = {"error": C.error, "warn": C.warn, "ok": C.ok}.get(kind, C.accent)
        icon = QLabel()
        icon.setPixmap(style.pixmap({"error": "warning", "warn": "warning", "ok": "check"}
                                    .get(kind, "info"), colour, 16))
        layout.addWidget(icon)
        label = QLabel(text)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(label, 1)
        if action is not None:
            button = QPushButton(action[0])
            button.setObjectName("noteAction")
            button.clicked.connect(action[1])
            button.clicked.connect(lambda: on_close(self))
            layout.addWidget(button)
        close = QToolButton()
        close.setIcon(style.icon("close", C.muted))
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(lambda: on_close(self))
        layout.addWidget(close)


class MessageBar(QWidget):
    """Non-modal notes at the top of the window: errors stay, information fades."""

    MAX = 3

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(10, 6, 10, 0)
        self._layout.setSpacing(4)
        self._notes: list[_Note] = []
        self.history: list[tuple[str, str]] = []  # (kind, text), for tests and the log
        self.hide()

    def show_message(self, text: str, kind: str = "info", *, timeout_ms: int | None = None,
                     action: tuple[str, Callable[[], None]] | None = None) -> None:
        self.history.append((kind, text))
        for note in list(self._notes):
            if note.text == text:
                self._remove(note)
        note = _Note(text, kind, action, self._remove)
        self._notes.append(note)
        self._layout.addWidget(note)
        while len(self._notes) > self.MAX:
            self._remove(self._notes[0])
        if timeout_ms is None:
            timeout_ms = 0 if kind in ("error", "warn") else 8000
        if timeout_ms:
            QTimer.singleShot(timeout_ms, note, lambda: self._remove(note))
        self.show()

    def clear_kind(self, kind: str) -> None:
        for note in list(self._notes):
            if note.kind == kind:
                self._remove(note)

    def texts(self) -> list[str]:
        return [n.text for n in self._notes]

    def _remove(self, note: _Note) -> None:
        if note in self._notes:
            self._notes.remove(note)
            note.hide()
            note.deleteLater()
        if not self._notes:
            self.hide()
