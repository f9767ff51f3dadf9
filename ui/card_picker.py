"""The card picker: one keystroke from a ticket to the right feedback card.

Opens with the board's cards ranked by how well they match the ticket (the core's
``desk.cards.rank``). Typing filters them (partial, typo-tolerant); the last row
offers to create a card with what was typed. Enter adds the ticket's customer (and
the selected quote) to the highlighted row, the top one unless the arrows moved;
Ctrl+Enter always creates a new card with the typed title.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QLabel,
    QLineEdit,
    QListView,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from helpdesk.cards.rank import normalise, typed_match
from ui import style
from ui.card_dialogs import guarded
from ui.models import flat_item_flags
from ui.style import C
from ui.widgets import plain_tooltip
from ui.worker import Changes, DeskService

__all__ = ["CardMatchModel", "CardPicker"]

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
ROW_ROLE = Qt.ItemDataRole.UserRole + 1  # dict: {kind: card|create, id, title, ...}
TYPED_MIN = 60  # below this a card does not match what was typed


class CardMatchModel(QAbstractListModel):
    """Ranked cards, then (when something is typed) "Create card …"."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []

    def set_rows(self, rows: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def flags(self, index: Index) -> Qt.ItemFlag:
        return flat_item_flags(index)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            if row["kind"] == "create":
                return f"Create card “{row['title']}”"
            n = row["votes"]
            already = " · already on this card" if row["has_customer"] else ""
            return f"{row['title']}   ({n} customer{'' if n == 1 else 's'}{already})"
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(str(row.get("description") or "")) or None
        if role == Qt.ItemDataRole.DecorationRole:
            return style.icon("card" if row["kind"] == "card" else "note", C.accent,
                              active=C.accent_text)
        if role == ROW_ROLE:
            return row
        return None


class CardPicker(QDialog):
    """Add a ticket's customer to a feedback card (see the module docstring)."""

    added = Signal(str)   # the card id the customer now counts for
    ranked = Signal()     # the ranked cards arrived

    def __init__(self, service: DeskService, ticket_id: str, quote: str | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.ticket_id = ticket_id
        self.quote = (quote or "").strip() or None
        self.added_label = ""
        self.added_quote: str | None = None
        self.matches: list[dict[str, Any]] = []
        self.loaded = False
        self.busy = False
        self.setWindowTitle("Add to feedback card")
        self.resize(520, 440)

        self.input = QLineEdit()
        self.input.setPlaceholderText("Search cards, or type a new card's title")
        self.input.setClearButtonEnabled(True)
        self.model = CardMatchModel(self)
        self.list = QListView()
        self.list.setModel(self.model)
        self.list.setUniformItemSizes(True)
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.list.activated.connect(lambda index: self.choose(index.row()))
        self.list.clicked.connect(lambda index: self.choose(index.row()))
        self.hint = QLabel("Enter adds the customer to the highlighted card · "
                           "Ctrl+Enter creates a new card · Esc closes")
        self.hint.setStyleSheet(f"color: {C.muted};")
        self.hint.setWordWrap(True)
        self.status = QLabel("Finding matching cards…")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 16)
        layout.setSpacing(8)
        # Their words, as they will be kept on the card: editable before adding (trim a
        # long mail to the sentence that matters, or fix a quote picked by accident).
        quote_title = QLabel("Their words (kept on the card; edit before adding)")
        quote_title.setStyleSheet(f"color: {C.muted};")
        self.quote_edit = QPlainTextEdit(self.quote or "")
        self.quote_edit.setObjectName("quoteEdit")
        self.quote_edit.setPlaceholderText("Optional: what the customer asked for, in their "
                                           "words")
        self.quote_edit.setTabChangesFocus(True)
        self.quote_edit.setFixedHeight(max(60, self.quote_edit.fontMetrics().height() * 4))
        layout.addWidget(quote_title)
        layout.addWidget(self.quote_edit)
        layout.addWidget(self.input)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.hint)
        self.input.textChanged.connect(lambda _t: self._refilter())
        self.input.installEventFilter(self)
        self.input.setFocus()
        ticket = ticket_id
        service.read(lambda desk: [m.to_dict() for m in desk.cards.rank(ticket, limit=200)],
                    on_done=guarded(self, self._ranked), on_error=guarded(self, self._failed))

    # --- rows -----------------------------------------------------------------------

    def _ranked(self, matches: list[dict[str, Any]]) -> None:
        self.matches = [{"kind": "card", **m} for m in matches]
        self.loaded = True
        self.status.setText("" if matches else "No cards yet: type a title to create one.")
        self._refilter()
        self.ranked.emit()

    def _refilter(self) -> None:
        typed = self.input.text().strip()
        rows = self.matches
        if typed:
            scored = [(typed_match(typed, m["title"], m["description"]), i, m)
                      for i, m in enumerate(self.matches)]
            rows = [m for s, _i, m in sorted(scored, key=lambda t: (-t[0], t[1]))
                    if s >= TYPED_MIN]
            if not any(normalise(m["title"]) == normalise(typed) for m in self.matches):
                rows = [*rows, {"kind": "create", "title": typed}]
        self.model.set_rows(rows)
        if rows:
            self.list.setCurrentIndex(self.model.index(0))

    def titles(self) -> list[str]:
        """What the list shows, top first (for tests and accessibility)."""
        return [str(self.model.data(self.model.index(r))) for r in range(self.model.rowCount())]

    # --- keys -------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.input and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = event.key()
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Up, Qt.Key.Key_PageDown, Qt.Key.Key_PageUp):
                self._step(key)
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
                    self.create_card(self.input.text())
                else:
                    self.choose(self.list.currentIndex().row())
                return True
        return super().eventFilter(watched, event)

    def _step(self, key: int) -> None:
        n = self.model.rowCount()
        if not n:
            return
        step = {Qt.Key.Key_Down: 1, Qt.Key.Key_Up: -1, Qt.Key.Key_PageDown: 5,
                Qt.Key.Key_PageUp: -5}[Qt.Key(key)]
        row = max(0, min(n - 1, self.list.currentIndex().row() + step))
        self.list.setCurrentIndex(self.model.index(row))

    # --- adding -----------------------------------------------------------------------

    def choose(self, row: int) -> None:
        """Add the customer to the card in ``row`` (or create the card it offers)."""
        if not 0 <= row < self.model.rowCount():
            if self.input.text().strip():
                self.create_card(self.input.text())
            return
        chosen = self.model.rows[row]
        if chosen["kind"] == "create":
            self.create_card(chosen["title"])
        else:
            self._add(card_id=chosen["id"], title=None, label=chosen["title"])

    def create_card(self, title: str) -> None:
        if title.strip():
            self._add(card_id=None, title=title.strip(), label=title.strip())

    def _add(self, card_id: str | None, title: str | None, label: str) -> None:
        if self.busy:
            return
        self.busy = True
        self.input.setEnabled(False)
        self.status.setText(f"Adding to “{label}”…")
        self.status.setStyleSheet("")
        ticket = self.ticket_id
        quote = self.quote_edit.toPlainText().strip() or None
        self.added_label = label
        self.added_quote = quote
        self.service.run(
            lambda desk: desk.cards.add(ticket, card_id=card_id, title=title, quote=quote),
            on_done=guarded(self, self._done), on_error=guarded(self, self._failed))

    def _done(self, card_id: str) -> None:
        self.busy = False
        self.added.emit(card_id)
        # Boards and panels refresh on this; add() itself reports a card id, not Changes.
        self.service.changed.emit(Changes(set(), set(), cards=True))
        self.accept()

    def _failed(self, message: str) -> None:
        self.busy = False
        self.input.setEnabled(True)
        self.input.setFocus()
        self.status.setText(message)
        self.status.setStyleSheet(f"color: {C.error};")
