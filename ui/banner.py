"""Bars: the claim banner on a ticket, and the window's non-modal message bar."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QWidget,
)

from ui import format as fmt
from ui import style
from ui.help_sheet import tip
from ui.style import C
from ui.widgets import plain_tooltip


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
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # names come from the team log
        self.detail = QLabel()
        self.detail.setObjectName("bannerDetail")
        self.detail.setTextFormat(Qt.TextFormat.PlainText)
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
        pending = status == "pending"
        self.setToolTip(plain_tooltip(f"Claimed {fmt.exact(self._since)}")
                        if holder and self._since else "")
        if status == "closed":
            self._set("closed", "closed", C.muted, "Closed",
                      f"{fmt.ago(row.get('closed_at'))}" if row.get("closed_at") else "",
                      "Reopen")
            self.setToolTip(plain_tooltip(f"Closed {fmt.exact(row.get('closed_at'))}")
                            if row.get("closed_at") else "")
        elif pending and not holder:
            self._set("pending", "pending", C.warn, "Pending: waiting for the customer",
                      "Nobody is handling it.", "Claim (C)")
        elif pending and holder == self.agent:
            self._set("pending", "pending", C.warn, "Pending: waiting for the customer",
                      f"You hold it, {self._since_text()}".strip(", "), "")
            self.secondary.setText("Release")
            self.secondary.setToolTip("Let a teammate pick this ticket up")
            self.secondary.show()
        elif pending:
            self._set("pending", "pending", C.warn, "Pending: waiting for the customer",
                      f"Held by {holder}, {self._since_text()}".strip(", "), "Take over…")
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
        if self.state in ("mine", "other", "pending"):
            self._tick.start()
        else:
            self._tick.stop()

    def set_busy(self, text: str) -> None:
        self.button.setEnabled(False)
        self.button.setText(text)

    def _since_text(self) -> str:
        if fmt.parse_time(self._since) is None:
            return ""
        return f"claimed {fmt.ago(self._since)}"

    def _refresh_detail(self) -> None:
        if self.state in ("mine", "other"):
            self.detail.setText(self._since_text())
        elif self.state == "pending" and self.holder:
            who = "You hold it" if self.holder == self.agent else f"Held by {self.holder}"
            self.detail.setText(f"{who}, {self._since_text()}".strip(", "))

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
        if self.state == "pending":
            (self.takeover_clicked if self.holder else self.claim_clicked).emit()
            return
        {"unclaimed": self.claim_clicked, "other": self.takeover_clicked,
         "closed": self.reopen_clicked}.get(self.state, self.claim_clicked).emit()

    @property
    def text(self) -> str:
        return f"{self.label.text()} {self.detail.text()}".strip()


SEVERITY = {"error": 3, "warn": 2, "ok": 1, "info": 0}


@dataclass
class Note:
    """One situation the person should know about, until it is resolved or dismissed."""

    key: str
    text: str
    kind: str
    action: tuple[str, Callable[[], None]] | None = None
    serial: int = 0


class MessageBar(QFrame):
    """The window's notes, one per situation, in one fixed line that never moves.

    A note has a key naming its situation (the sync being offline, a ticket held by a
    teammate, a reply that failed...): showing a note with a key that is already shown
    replaces it, and :meth:`clear` removes it once the situation is resolved. The bar
    has a fixed height and stays in its place whether it shows a note or not, so
    nothing under the pointer moves when a note comes or goes. It shows the most
    serious (then the newest) note; a "+N" button lists the others. Information
    fades by itself; errors and warnings stay until resolved or dismissed. Texts are
    plain: they quote servers, mail and teammates.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        self._notes: dict[str, Note] = {}
        self._serial = 0
        # When each fading note goes: (monotonic deadline, serial). One timer serves them
        # all (a QObject made per note would keep references to None, see ui.pool).
        self._deadlines: dict[str, tuple[float, int]] = {}
        self._expiry = QTimer(self)
        self._expiry.setSingleShot(True)
        self._expiry.timeout.connect(self._expire_due)
        # (kind, text), for tests and the log; bounded: the app runs all day.
        self.history: deque[tuple[str, str]] = deque(maxlen=500)
        self.current: Note | None = None
        self._pinned: str | None = None  # a note picked from the "+N" menu shows first
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 2, 4, 2)
        lay.setSpacing(8)
        self._icon = QLabel()
        self._icon.setFixedSize(16, 16)
        self.label = QLabel()
        self.label.setObjectName("noteText")
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.action_button = QPushButton()
        self.action_button.setObjectName("noteAction")
        self.action_button.clicked.connect(self._act)
        self.more = QToolButton()
        self.more.setObjectName("noteMore")
        self.more.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.more.setToolTip("Other notes")
        self._more_menu = QMenu(self.more)
        # Filled as it opens: a render (many an hour) makes no actions.
        self._more_menu.aboutToShow.connect(self._fill_more_menu)
        self.more.setMenu(self._more_menu)
        self.close_button = QToolButton()
        self.close_button.setIcon(style.icon("close", C.muted))
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self._dismiss)
        lay.addWidget(self._icon)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action_button)
        lay.addWidget(self.more)
        lay.addWidget(self.close_button)
        self.setFixedHeight(max(30, self.action_button.sizeHint().height() + 6))
        self._render()

    # --- the API ------------------------------------------------------------------

    def show_message(self, text: str, kind: str = "info", *, key: str | None = None,
                     timeout_ms: int | None = None,
                     action: tuple[str, Callable[[], None]] | None = None) -> None:
        """Show (or replace) the note for situation ``key`` (by default, its text)."""
        self.history.append((kind, text))
        key = key or f"text:{text}"
        for other in [k for k, n in self._notes.items() if n.text == text and k != key]:
            self._drop(other)
        self._serial += 1
        self._notes[key] = Note(key, text, kind, action, self._serial)
        self._deadlines.pop(key, None)
        if timeout_ms is None:
            timeout_ms = 0 if kind in ("error", "warn") or action is not None else 8000
        if timeout_ms:
            self._deadlines[key] = (time.monotonic() + timeout_ms / 1000, self._serial)
        self._arm()
        self._render()

    def clear(self, key: str) -> None:
        """The situation ``key`` is resolved: its note goes."""
        if self._drop(key):
            self._render()

    def clear_prefix(self, prefix: str) -> None:
        gone = [self._drop(k) for k in list(self._notes) if k.startswith(prefix)]
        if any(gone):
            self._render()

    def clear_kind(self, kind: str) -> None:
        gone = [self._drop(k) for k, n in list(self._notes.items()) if n.kind == kind]
        if any(gone):
            self._render()

    def texts(self) -> list[str]:
        return [n.text for n in self._ordered()]

    def keys(self) -> list[str]:
        return [n.key for n in self._ordered()]

    # --- inside -------------------------------------------------------------------

    def _ordered(self) -> list[Note]:
        return sorted(self._notes.values(), key=lambda n: (n.key != self._pinned,
                                                           -SEVERITY.get(n.kind, 0),
                                                           -n.serial))

    def _drop(self, key: str) -> bool:
        self._deadlines.pop(key, None)
        if key == self._pinned:
            self._pinned = None
        return self._notes.pop(key, None) is not None

    def _arm(self) -> None:
        """The timer fires when the soonest fading note is due (or stops: none fades)."""
        if not self._deadlines:
            self._expiry.stop()
            return
        due = min(d for d, _s in self._deadlines.values())
        self._expiry.start(max(0, math.ceil((due - time.monotonic()) * 1000)))

    def _expire_due(self) -> None:
        now = time.monotonic()
        gone = False
        for key, (due, serial) in list(self._deadlines.items()):
            note = self._notes.get(key)
            if due <= now and note is not None and note.serial == serial:
                gone = self._drop(key) or gone
            elif due <= now:
                self._deadlines.pop(key, None)
        self._arm()
        if gone:
            self._render()

    def _render(self) -> None:
        notes = self._ordered()
        self.current = note = notes[0] if notes else None
        kind = note.kind if note else ""
        self.setProperty("kind", kind)
        self.style().unpolish(self)
        self.style().polish(self)
        for w in (self._icon, self.label, self.close_button):
            w.setVisible(note is not None)
        if note is None:
            self.label.setText("")
            self.label.setToolTip("")
            self.action_button.hide()
            self.more.hide()
            return
        colour = {"error": C.error, "warn": C.warn, "ok": C.ok}.get(kind, C.accent)
        self._icon.setPixmap(style.pixmap({"error": "warning", "warn": "warning",
                                           "ok": "check"}.get(kind, "info"), colour, 16))
        self.label.setText(" ".join(note.text.split()))
        self.label.setToolTip(plain_tooltip(note.text))
        if note.action is not None:
            self.action_button.setText(note.action[0])
        self.action_button.setVisible(note.action is not None)
        others = notes[1:]
        self.more.setText(f"+{len(others)}")
        self.more.setVisible(bool(others))

    def _fill_more_menu(self) -> None:
        self._more_menu.clear()
        for other in self._ordered()[1:]:
            a = self._more_menu.addAction(_short(other.text))
            a.setToolTip(other.text)
            a.triggered.connect(lambda _=False, k=other.key: self._bring_forward(k))

    def _bring_forward(self, key: str) -> None:
        if key in self._notes:
            self._pinned = key
            self._render()

    def _act(self) -> None:
        note = self.current
        if note is not None and note.action is not None:
            callback = note.action[1]
            self.clear(note.key)
            callback()

    def _dismiss(self) -> None:
        if self.current is not None:
            self.clear(self.current.key)


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
