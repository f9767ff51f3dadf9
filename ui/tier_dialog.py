"""The team's order of VIP tiers: highest first, set once, for every desktop."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class TierOrderDialog(QDialog):
    """Drag (or move with the buttons) the tiers into the team's order; Save publishes."""

    chosen = Signal(list)  # tier names, highest first

    def __init__(self, order: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("VIP tier order")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(22, 18, 22, 18)
        lay.setSpacing(10)
        intro = QLabel("Highest tier first. The whole team shares this order: VIP-first "
                       "lists and tier pickers follow it.")
        intro.setWordWrap(True)
        lay.addWidget(intro)
        self.list = QListWidget()
        self.list.addItems(order)  # QListWidget items are plain text
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        if order:
            self.list.setCurrentRow(0)
        lay.addWidget(self.list, 1)
        moves = QHBoxLayout()
        moves.setSpacing(8)
        up, down = QPushButton("Move up"), QPushButton("Move down")
        add = QPushButton("Add tier…")
        up.clicked.connect(lambda: self.move(-1))
        down.clicked.connect(lambda: self.move(1))
        add.clicked.connect(self._add)
        for b in (up, down, add):
            moves.addWidget(b)
        moves.addStretch(1)
        lay.addLayout(moves)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 8, 0, 0)
        buttons.addStretch(1)
        cancel = QPushButton("Cancel")
        cancel.clicked.connect(self.reject)
        self.save_button = QPushButton("Save for the team")
        self.save_button.setObjectName("primary")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self._save)
        buttons.addWidget(cancel)
        buttons.addWidget(self.save_button)
        lay.addLayout(buttons)
        self.resize(360, 380)

    def order(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def move(self, step: int) -> None:
        row = self.list.currentRow()
        target = row + step
        if row < 0 or not 0 <= target < self.list.count():
            return
        item = self.list.takeItem(row)
        self.list.insertItem(target, item)
        self.list.setCurrentRow(target)

    def _add(self) -> None:
        name, ok = QInputDialog.getText(self, "Add tier", "Tier name:")
        if ok and name.strip():
            self.list.addItem(" ".join(name.split()))

    def _save(self) -> None:
        self.chosen.emit(self.order())
        self.accept()


__all__ = ["TierOrderDialog"]
