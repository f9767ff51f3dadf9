"""The keyboard shortcuts: one table feeds the actions, their tooltips and the help sheet."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)


@dataclass(frozen=True)
class Shortcut:
    name: str
    keys: tuple[str, ...]  # QKeySequence strings; the first is shown
    text: str
    group: str


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("next", ("J", "Down"), "Next ticket", "Moving around"),
    Shortcut("previous", ("K", "Up"), "Previous ticket", "Moving around"),
    Shortcut("open", ("Return", "Enter"), "Open the ticket (read the conversation)",
             "Moving around"),
    Shortcut("search", ("/", "Ctrl+F"), "Search tickets", "Moving around"),
    Shortcut("views", ("Ctrl+1",), "Switch view (Ctrl+1 … Ctrl+9, Ctrl+0)", "Moving around"),
    Shortcut("claim", ("C",), "Claim the ticket", "Working a ticket"),
    Shortcut("reply", ("R",), "Reply", "Working a ticket"),
    Shortcut("close", ("E",), "Close the ticket", "Working a ticket"),
    Shortcut("feedback", ("F",), "Add to a feedback card", "Working a ticket"),
    Shortcut("customer", ("I",), "Show or hide the customer panel", "Working a ticket"),
    Shortcut("compose", ("N",), "New conversation (becomes a ticket of yours)",
             "Working a ticket"),
    Shortcut("note", ("M",), "Write an internal note (@agent tells them)", "Teamwork"),
    Shortcut("assign", ("A",), "Assign the ticket to a teammate", "Teamwork"),
    Shortcut("snooze", ("Z",), "Snooze the ticket until later", "Teamwork"),
    Shortcut("tag", ("T",), "Add or remove tags", "Teamwork"),
    Shortcut("spam", ("!",), "Mark as spam (later mail from the sender goes to Spam)",
             "Teamwork"),
    Shortcut("send", ("Ctrl+Return", "Ctrl+Enter"), "Send the reply", "Composer"),
    Shortcut("send_close", ("Ctrl+Shift+Return",), "Send and close", "Composer"),
    Shortcut("cancel", ("Esc",), "Leave the composer or search (draft is kept)", "Composer"),
    Shortcut("sync", ("F5",), "Sync now", "App"),
    Shortcut("help", ("?",), "This list of shortcuts", "App"),
)

BY_NAME = {s.name: s for s in SHORTCUTS}


def keys(name: str) -> list[QKeySequence]:
    return [QKeySequence(k) for k in BY_NAME[name].keys]


_SHOWN = {"Return": "Enter", "Ctrl+Return": "Ctrl+Enter", "Ctrl+Shift+Return": "Ctrl+Shift+Enter",
          "Down": "↓", "Up": "↑"}


def shown(name: str) -> str:
    """The key as a person reads it: 'C', 'Ctrl+Enter'."""
    first = BY_NAME[name].keys[0]
    return _SHOWN.get(first, first)


def tip(text: str, name: str) -> str:
    """Tooltip text with its shortcut, e.g. 'Claim this ticket (C)'."""
    return f"{text} ({shown(name)})"


class HelpSheet(QDialog):
    """A quiet sheet listing every shortcut, grouped."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("helpSheet")
        self.setWindowTitle("Keyboard shortcuts")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 16)
        title = QLabel("Keyboard shortcuts")
        title.setObjectName("sheetTitle")
        layout.addWidget(title)
        grid = QGridLayout()
        grid.setHorizontalSpacing(18)
        grid.setVerticalSpacing(6)
        row = 0
        group = ""
        for s in SHORTCUTS:
            if s.group != group:
                group = s.group
                head = QLabel(group)
                head.setObjectName("sheetGroup")
                grid.addWidget(head, row, 0, 1, 2)
                row += 1
            names = list(dict.fromkeys(_SHOWN.get(k, k) for k in s.keys))
            key = QLabel(", ".join(names))
            key.setObjectName("keyCap")
            grid.addWidget(key, row, 0, Qt.AlignmentFlag.AlignRight)
            grid.addWidget(QLabel(s.text), row, 1)
            row += 1
        layout.addLayout(grid)
        note = QLabel("Single-letter keys work when you are not typing in a text field.")
        note.setObjectName("muted")
        note.setWordWrap(True)
        layout.addSpacing(8)
        layout.addWidget(note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
