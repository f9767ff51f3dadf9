"""Small dialogs for teamwork on a ticket: assign, snooze, tags, spam.

Each is opened with ``open()`` (never a nested event loop) and says what was chosen
through a signal; the ticket pane turns that into one Desk intent. Every name shown
(agents, tags, the customer) is team or mail data: plain-text labels only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import QDateTime, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QDateTimeEdit,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ui.widgets import plain_label

SNOOZE_CHOICES: tuple[tuple[str, int], ...] = (
    ("1 hour", 3600), ("4 hours", 4 * 3600), ("1 day", 86400), ("3 days", 3 * 86400),
    ("1 week", 7 * 86400),
)


def _title(text: str) -> QLabel:
    label = plain_label(text)
    label.setObjectName("sheetTitle")
    return label


def _buttons(dialog: QDialog, ok_text: str) -> tuple[QHBoxLayout, QPushButton]:
    row = QHBoxLayout()
    row.addStretch(1)
    cancel = QPushButton("Cancel")
    ok = QPushButton(ok_text)
    ok.setObjectName("primary")
    ok.setDefault(True)
    row.addWidget(cancel)
    row.addWidget(ok)
    cancel.clicked.connect(dialog.reject)
    return row, ok


class AssignDialog(QDialog):
    """Pick the agent who owns the ticket (or nobody)."""

    chosen = Signal(object)  # the agent name, or None to unassign

    def __init__(self, agents: list[str], current: str | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("assignDialog")
        self.setWindowTitle("Assign ticket")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 20, 24, 18)
        lay.addWidget(_title("Assign this ticket to"))
        self.agent = QComboBox()
        self.agent.setEditable(True)  # a teammate who has not used the app yet
        self.agent.addItems(agents)
        if current:
            self.agent.setCurrentText(current)
        lay.addWidget(self.agent)
        lay.addWidget(plain_label("They are told, and it shows in their Mine view. "
                                  "Assigning does not claim it."))
        row, ok = _buttons(self, "Assign")
        self.unassign_button = QPushButton("Assign to nobody")
        self.unassign_button.setEnabled(bool(current))
        row.insertWidget(0, self.unassign_button)
        lay.addLayout(row)
        ok.clicked.connect(self._ok)
        self.unassign_button.clicked.connect(lambda: self._done(None))

    def _ok(self) -> None:
        name = self.agent.currentText().strip()
        if name:
            self._done(name)

    def _done(self, agent: str | None) -> None:
        self.chosen.emit(agent)
        self.accept()


class SnoozeDialog(QDialog):
    """For how long, or until when (this desktop's time zone), a ticket sleeps."""

    chosen = Signal(object, object)  # seconds (int) or None, until (naive UTC) or None
    unsnooze = Signal()

    def __init__(self, snoozed: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("snoozeDialog")
        self.setWindowTitle("Snooze ticket")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 20, 24, 18)
        lay.addWidget(_title("Snooze until"))
        self.options: list[tuple[QRadioButton, int]] = []
        for label, seconds in SNOOZE_CHOICES:
            button = QRadioButton(label)
            lay.addWidget(button)
            self.options.append((button, seconds))
        self.options[2][0].setChecked(True)
        self.at_button = QRadioButton("A time:")
        self.at = QDateTimeEdit(QDateTime.currentDateTime().addDays(1))
        self.at.setCalendarPopup(True)
        self.at.setDisplayFormat("yyyy-MM-dd HH:mm")
        at_row = QHBoxLayout()
        at_row.addWidget(self.at_button)
        at_row.addWidget(self.at, 1)
        lay.addLayout(at_row)
        lay.addWidget(plain_label("It comes back by itself then, on every desktop, or as "
                                  "soon as the customer writes."))
        row, ok = _buttons(self, "Snooze")
        self.wake_button = QPushButton("Wake now")
        self.wake_button.setVisible(snoozed)
        row.insertWidget(0, self.wake_button)
        lay.addLayout(row)
        ok.clicked.connect(self._ok)
        self.wake_button.clicked.connect(self._wake)

    def _ok(self) -> None:
        if self.at_button.isChecked():
            local = self.at.dateTime().toPython()
            until = local.astimezone(UTC).replace(tzinfo=None)
            self.chosen.emit(None, until)
        else:
            seconds = next(s for b, s in self.options if b.isChecked())
            self.chosen.emit(seconds, None)
        self.accept()

    def _wake(self) -> None:
        self.unsnooze.emit()
        self.accept()


class TagDialog(QDialog):
    """Add tags (comma or space separated) and untick tags to remove."""

    chosen = Signal(list, list)  # add, remove

    def __init__(self, current: list[str], known: list[str],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tagDialog")
        self.setWindowTitle("Tags")
        self.current = list(current)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 20, 24, 18)
        lay.addWidget(_title("Tags of this ticket"))
        self.boxes: list[QCheckBox] = []
        for tag in current:
            box = QCheckBox(tag)  # a check box's text is never markup
            box.setChecked(True)
            lay.addWidget(box)
            self.boxes.append(box)
        self.add = QLineEdit()
        self.add.setPlaceholderText("Add tags: billing, refund")
        if known:
            self.add.setCompleter(QCompleter(known, self.add))
        lay.addWidget(self.add)
        row, ok = _buttons(self, "Save")
        lay.addLayout(row)
        ok.clicked.connect(self._ok)

    def _ok(self) -> None:
        words = [w for w in self.add.text().replace(",", " ").split() if w]
        remove = [b.text() for b in self.boxes if not b.isChecked()]
        self.chosen.emit(words, remove)
        self.accept()


class SpamDialog(QDialog):
    """Mark as spam: the sender alone, or everyone at the sender's domain."""

    chosen = Signal(bool)  # domain

    def __init__(self, sender: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("spamDialog")
        self.setWindowTitle("Mark as spam")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 20, 24, 18)
        lay.addWidget(_title("Mark as spam?"))
        lay.addWidget(plain_label("The ticket is closed; later mail goes to the Spam view, "
                                  "with no notifications. 'unspam' undoes it."))
        domain = sender.rpartition("@")[2]
        self.sender_button = QRadioButton(f"Only {sender}")
        self.domain_button = QRadioButton(f"Everyone at {domain}")
        self.sender_button.setChecked(True)
        lay.addWidget(self.sender_button)
        lay.addWidget(self.domain_button)
        row, ok = _buttons(self, "Mark as spam")
        lay.addLayout(row)
        ok.clicked.connect(self._ok)

    def _ok(self) -> None:
        self.chosen.emit(self.domain_button.isChecked())
        self.accept()


def snooze_text(until_iso: str | None) -> str:
    """'Snoozed until 2026-12-24 09:00' in this desktop's time zone."""
    if not until_iso:
        return ""
    moment = datetime.fromisoformat(until_iso.removesuffix("Z")).replace(tzinfo=UTC)
    local = moment.astimezone()
    return f"Snoozed until {local:%Y-%m-%d %H:%M}"
