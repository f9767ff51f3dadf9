"""The feedback board: a column per stage, cards showing how many customers asked.

Everything goes through the DeskService (``desk.cards``) on the worker; the board
refreshes itself when ``service.changed`` reports card changes (ours or a
teammate's, from sync). A drag between columns moves the card on screen at once
and publishes the move; moving a card to Shipped offers to tell its customers
("Tell the N customers"), with a preview of each personalised email.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from helpdesk import team_settings
from ui import style
from ui.banner import MessageBar
from ui.card_dialogs import CardDialog, CardNoteDialog, MergeDialog, NotifyDialog, guarded
from ui.delegates import pill
from ui.style import C
from ui.widgets import plain_tooltip
from ui.worker import Changes, DeskService

__all__ = ["BoardWindow", "CardColumnModel"]

MIME = "application/x-helpdesk-cards"
SHIPPED = "shipped"
CARD_ROLE = Qt.ItemDataRole.UserRole + 1   # dict: the card as desk.cards.cards() gives it
ID_ROLE = Qt.ItemDataRole.UserRole + 2     # str
VOTES_ROLE = Qt.ItemDataRole.UserRole + 3  # int: distinct customers
SORTS = (("votes", "Most customers"), ("age", "Oldest first"))

Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()


def customers_text(n: int) -> str:
    return f"{n} customer" + ("" if n == 1 else "s")


def pending(card: dict[str, Any]) -> int:
    """Customers on the card not yet told it shipped."""
    return len(set(card["customers"]) - set(card["notified"]))


def _drafts_by_language(desk: Any, card_id: str
                        ) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The default drafts, and the same drafts in each language the team wrote."""
    drafts: list[dict[str, Any]] = desk.cards.notification_drafts(card_id)
    languages = drafts[0].get("languages", []) if drafts else []
    alternatives = {lang: desk.cards.notification_drafts(
        card_id, {d["email"]: lang for d in drafts}) for lang in languages}
    return drafts, alternatives


class CardColumnModel(QAbstractListModel):
    """The cards of one board column; drops of cards from other columns land here."""

    dropped = Signal(list, str)  # card ids, this column's id

    def __init__(self, column_id: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.column_id = column_id
        self.cards: list[dict[str, Any]] = []

    def set_cards(self, cards: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.cards = list(cards)
        self.endResetModel()

    def row_of(self, card_id: str) -> int:
        return next((i for i, c in enumerate(self.cards) if c["id"] == card_id), -1)

    def take(self, card_id: str) -> dict[str, Any] | None:
        row = self.row_of(card_id)
        if row < 0:
            return None
        self.beginRemoveRows(_ROOT, row, row)
        card = self.cards.pop(row)
        self.endRemoveRows()
        return card

    def put(self, card: dict[str, Any]) -> None:
        """Insert where the current order (most customers first) puts it."""
        row = next((i for i, c in enumerate(self.cards) if c["votes"] < card["votes"]),
                   len(self.cards))
        self.beginInsertRows(_ROOT, row, row)
        self.cards.insert(row, {**card, "column": self.column_id})
        self.endInsertRows()

    # --- Qt model ---------------------------------------------------------------------

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.cards)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.cards):
            return None
        card = self.cards[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return card["title"]
        if role == Qt.ItemDataRole.ToolTipRole:
            text = card["description"] or card["title"]
            return plain_tooltip(f"{text}\n\n{customers_text(card['votes'])}")
        if role == CARD_ROLE:
            return card
        if role == ID_ROLE:
            return card["id"]
        if role == VOTES_ROLE:
            return card["votes"]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | \
            Qt.ItemFlag.ItemIsDragEnabled | Qt.ItemFlag.ItemNeverHasChildren

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [MIME]

    def mimeData(self, indexes: list[QModelIndex]) -> QMimeData:  # type: ignore[override]
        data = QMimeData()
        cards = [self.cards[i.row()] for i in indexes if i.isValid()]
        data.setData(MIME, QByteArray(json.dumps(cards).encode("utf-8")))
        return data

    def canDropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int,
                        parent: Index) -> bool:
        return data.hasFormat(MIME) and action == Qt.DropAction.MoveAction

    def dropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int,
                     parent: Index) -> bool:
        if not self.canDropMimeData(data, action, row, column, parent):
            return False
        try:
            cards = json.loads(bytes(data.data(MIME).data()).decode("utf-8"))
        except ValueError:
            return False
        ids = [c["id"] for c in cards if self.row_of(c["id"]) < 0]
        if not ids:
            return False  # dropped back on its own column: the order is the sort order
        self.dropped.emit(ids, self.column_id)
        return True


class CardDelegate(QStyledItemDelegate):
    """A card: title (wrapped) and the number of customers who asked for it."""

    PAD = 10
    GAP = 6

    def __init__(self, view: QListView) -> None:
        super().__init__(view)
        self.view = view

    def _title_rect(self, option: QStyleOptionViewItem, width: int, text: str) -> QRect:
        fm = QFontMetrics(style.font(option.font, bold=True))
        return fm.boundingRect(QRect(0, 0, max(40, width - 2 * self.PAD), 10_000),
                               Qt.TextFlag.TextWordWrap, text)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        width = self.view.viewport().width() or 200
        title = self._title_rect(option, width, str(index.data()))
        meta = QFontMetrics(option.font).height() + 4
        return QSize(width, title.height() + meta + 2 * self.PAD + self.GAP + 6)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        card: dict[str, Any] = index.data(CARD_ROLE)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        box = QRectF(option.rect.adjusted(2, 3, -2, -3))
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setPen(QPen(QColor(C.accent if selected else C.line), 1.5 if selected else 1))
        painter.setBrush(QColor(C.accent_soft if selected else C.surface))
        painter.drawRoundedRect(box, 6, 6)
        inner = box.toRect().adjusted(self.PAD, self.PAD, -self.PAD, -self.PAD)
        bold = style.font(option.font, bold=True)
        painter.setFont(bold)
        painter.setPen(QColor(C.text))
        title = self._title_rect(option, option.rect.width(), card["title"])
        painter.drawText(QRect(inner.left(), inner.top(), inner.width(), title.height()),
                         int(Qt.TextFlag.TextWordWrap), card["title"])
        meta_h = QFontMetrics(option.font).height() + 4
        top = inner.bottom() - meta_h + 1
        small = style.font(option.font, delta=-1)
        text = customers_text(card["votes"])
        right = inner.left() + QFontMetrics(small).horizontalAdvance(text) + 12
        lit = card["votes"] > 0
        pill(painter, right, top, meta_h, text, small, C.accent if lit else C.muted,
             C.accent_soft if lit else C.window)
        if card["notified"]:
            painter.setFont(small)
            painter.setPen(QColor(C.ok))
            painter.drawText(QRect(right + 8, top, max(0, inner.right() - right - 8), meta_h),
                             int(Qt.AlignmentFlag.AlignVCenter),
                             f"✓ {len(card['notified'])} told")
        painter.restore()


class BoardColumn(QFrame):
    """Header (name, count, menu) over a list of cards that accepts drops."""

    def __init__(self, column: dict[str, Any], board: BoardWindow) -> None:
        super().__init__(board)
        self.column_id = str(column["id"])
        self.name = str(column["name"])
        self.setObjectName("boardColumn")
        self.setStyleSheet(f"#boardColumn {{ background: {C.sidebar}; border-radius: 8px; }}")
        self.model = CardColumnModel(self.column_id, self)
        self.header = QLabel()
        self.header.setTextFormat(Qt.TextFormat.PlainText)  # column names: team data
        self.header.setFont(style.font(self.font(), bold=True))
        menu_button = QToolButton()
        menu_button.setIcon(style.icon("more"))
        menu_button.setAutoRaise(True)
        menu_button.setToolTip("Column actions")
        menu_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu_button.setStyleSheet("QToolButton::menu-indicator { image: none; }")
        menu = QMenu(menu_button)
        menu.addAction("Rename column…", lambda: board.ask_rename_column(self.column_id))
        menu_button.setMenu(menu)
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setItemDelegate(CardDelegate(self.view))
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.view.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.view.setDragDropOverwriteMode(False)
        self.view.setDropIndicatorShown(True)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setFrameShape(QFrame.Shape.NoFrame)
        self.view.setStyleSheet(f"QListView {{ background: {C.sidebar}; }}")
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(
            lambda pos: board.card_menu(self.view, self.view.indexAt(pos)))
        self.view.doubleClicked.connect(lambda idx: board.open_card(str(idx.data(ID_ROLE))))
        head = QHBoxLayout()
        head.setContentsMargins(8, 6, 2, 0)
        head.addWidget(self.header, 1)
        head.addWidget(menu_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(head)
        layout.addWidget(self.view, 1)
        self.model.rowsInserted.connect(self.update_header)
        self.model.rowsRemoved.connect(self.update_header)
        self.model.modelReset.connect(self.update_header)
        self.update_header()

    def set_name(self, name: str) -> None:
        self.name = name
        self.update_header()

    def update_header(self) -> None:
        self.header.setText(f"{self.name}  ·  {self.model.rowCount()}")


class BoardWindow(QWidget):
    """The team's feedback board (see the module docstring)."""

    openTicket = Signal(str)  # a ticket id, from a card's customer list
    loaded = Signal()         # fresh data is on screen

    def __init__(self, service: DeskService, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.service = service
        self.setWindowTitle("Feedback board")
        self.setWindowIcon(style.icon("board"))
        self.resize(1200, 760)
        self.columns: dict[str, BoardColumn] = {}
        self._generation = 0
        self._dialogs: list[QDialog] = []

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search cards, descriptions, customers…")
        self.search.setClearButtonEnabled(True)
        self.search.addAction(style.icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.sort = QComboBox()
        for key, label in SORTS:
            self.sort.addItem(label, key)
        self.new_button = QPushButton(style.icon("card"), "New card…")
        self.new_button.clicked.connect(self.ask_new_card)
        export = QPushButton(style.icon("download"), "Export")
        export_menu = QMenu(export)
        export_menu.addAction("CSV…", lambda: self.ask_export("csv"))
        export_menu.addAction("Markdown…", lambda: self.ask_export("md"))
        export.setMenu(export_menu)
        refresh = QToolButton()
        refresh.setIcon(style.icon("refresh"))
        refresh.setToolTip("Refresh")
        refresh.clicked.connect(self.refresh)
        bar = QHBoxLayout()
        bar.addWidget(self.search, 1)
        bar.addWidget(QLabel("Sort"))
        bar.addWidget(self.sort)
        bar.addWidget(self.new_button)
        bar.addWidget(export)
        bar.addWidget(refresh)

        self.messages = MessageBar(self)
        self._columns_row = QHBoxLayout()
        self._columns_row.setSpacing(10)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.messages)
        layout.addLayout(self._columns_row, 1)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(200)
        self._debounce.timeout.connect(self.refresh)
        self.search.textChanged.connect(lambda _t: self._debounce.start())
        self.sort.currentIndexChanged.connect(lambda _i: self.refresh())
        service.changed.connect(self._on_changed)
        self.refresh()

    # --- loading ------------------------------------------------------------------------

    def refresh(self) -> None:
        self._debounce.stop()
        self._generation += 1
        generation = self._generation
        search, sort = self.search.text(), str(self.sort.currentData())

        def load(desk: Any) -> dict[str, Any]:
            return {"columns": desk.cards.columns(), "cards": desk.cards.cards(search, sort)}

        self.service.read(load, on_done=guarded(self, lambda data: self._loaded(generation, data)),
                         on_error=guarded(self, self._error))

    def _loaded(self, generation: int, data: dict[str, Any]) -> None:
        if generation != self._generation:
            return  # a newer refresh is on its way
        ids = [str(c["id"]) for c in data["columns"]]
        if ids != list(self.columns):
            for column in self.columns.values():
                column.setParent(None)
                column.deleteLater()
            self.columns = {}
            for c in data["columns"]:
                column = BoardColumn(c, self)
                column.model.dropped.connect(self.move_cards)
                self.columns[column.column_id] = column
                self._columns_row.addWidget(column, 1)
        for c in data["columns"]:
            self.columns[str(c["id"])].set_name(str(c["name"]))
        for column_id, column in self.columns.items():
            column.model.set_cards([c for c in data["cards"] if c["column"] == column_id])
        self.loaded.emit()

    def _on_changed(self, changes: Changes) -> None:
        if changes.cards or "*" in changes.tickets:
            self._debounce.start()

    def _error(self, message: str) -> None:
        self.messages.show_message(message, "error")

    def _run(self, fn: Callable[[Any], Any], done: Callable[[Any], None] | None = None,
             refresh_on_error: bool = True) -> None:
        def failed(message: str) -> None:
            self._error(message)
            if refresh_on_error:
                self.refresh()

        self.service.run(fn, on_done=guarded(self, done) if done else None,
                         on_error=guarded(self, failed))

    # --- what the board shows (for tests and the main window) ------------------------------

    def model(self, column_id: str) -> CardColumnModel:
        return self.columns[column_id].model

    def card(self, card_id: str) -> dict[str, Any] | None:
        for column in self.columns.values():
            row = column.model.row_of(card_id)
            if row >= 0:
                return column.model.cards[row]
        return None

    def column_of(self, card_id: str) -> str | None:
        card = self.card(card_id)
        return None if card is None else str(card["column"])

    def all_cards(self) -> list[dict[str, Any]]:
        return [c for column in self.columns.values() for c in column.model.cards]

    # --- intents --------------------------------------------------------------------------

    def move_cards(self, card_ids: list[str], column_id: str) -> None:
        for card_id in card_ids:
            self.move_card(card_id, column_id)

    def move_card(self, card_id: str, column_id: str) -> None:
        """Move on screen now, publish the move; moving to Shipped offers to tell customers."""
        card = None
        for column in self.columns.values():
            card = column.model.take(card_id) or card
        if card is None or column_id not in self.columns:
            return
        self.columns[column_id].model.put(card)
        title = card["title"]

        def moved(_changes: Any) -> None:
            if column_id == SHIPPED:
                self.offer_notify(card_id, title, pending(card))

        self._run(lambda desk: desk.cards.move(card_id, column_id), moved)

    def offer_notify(self, card_id: str, title: str, waiting: int) -> None:
        if waiting <= 0:
            self.messages.show_message(f"“{title}” shipped.", "ok")
            return
        self.messages.show_message(
            f"“{title}” shipped. {customers_text(waiting).capitalize()} asked for it.", "ok",
            timeout_ms=0, action=(f"Tell the {waiting} customer" + ("" if waiting == 1 else "s"),
                                  lambda: self.tell_customers(card_id)))

    def tell_customers(self, card_id: str) -> None:
        """Preview each personalised email, then queue the ones the agent keeps."""
        self._run(lambda desk: (desk.cards.card(card_id)["title"],
                                *_drafts_by_language(desk, card_id)),
                  lambda result: self._preview(card_id, *result), refresh_on_error=False)

    def _preview(self, card_id: str, title: str, drafts: list[dict[str, Any]],
                 alternatives: dict[str, list[dict[str, Any]]]) -> None:
        if not drafts:
            self.messages.show_message(f"Everyone who asked for “{title}” has been told.", "ok")
            return
        dialog = NotifyDialog(title, drafts, self, alternatives=alternatives)
        dialog.accepted.connect(lambda: self.send_notifications(card_id, dialog.drafts()))
        dialog.write_language.connect(lambda: self.write_note(card_id, title, dialog))
        self._keep(dialog)
        dialog.open()
        self.notify_dialog = dialog

    def write_note(self, card_id: str, title: str, notify: NotifyDialog | None = None) -> None:
        """Add the card's shipped note in a language, for the whole team."""
        dialog = CardNoteDialog(title, notify or self)

        def written(lang: str, subject: str, body: str) -> None:
            def publish(desk: Any) -> dict[str, list[dict[str, Any]]]:
                team_settings.set_card_note(desk, card_id, lang, subject, body)
                return _drafts_by_language(desk, card_id)[1]

            def done(alternatives: dict[str, list[dict[str, Any]]]) -> None:
                if notify is not None and shiboken6.isValid(notify):
                    notify.set_alternatives(alternatives)

            self._run(publish, done, refresh_on_error=False)

        dialog.written.connect(written)
        self._keep(dialog)
        dialog.open()
        self.note_dialog = dialog

    def send_notifications(self, card_id: str, drafts: list[dict[str, Any]]) -> None:
        def queued(ids: list[int]) -> None:
            n = len(ids)
            skipped = len(drafts) - n
            text = f"Queued {n} email" + ("" if n == 1 else "s") + \
                "; they go out with the next sync."
            if skipped:
                text += f" {skipped} had already been told by a teammate."
            self.messages.show_message(text, "ok")
            self.service.sync_now()
            self.refresh()

        self._run(lambda desk: desk.cards.send_notifications(card_id, drafts), queued)

    def merge_cards(self, card_id: str, into_id: str) -> None:
        self._run(lambda desk: desk.cards.merge(card_id, into_id))

    def rename_column(self, column_id: str, name: str) -> None:
        if column_id in self.columns:
            self.columns[column_id].set_name(name)
        self._run(lambda desk: desk.cards.rename_column(column_id, name))

    def create_card(self, title: str, description: str = "") -> None:
        self._run(lambda desk: desk.cards.create(title, description),
                  lambda _id: self.refresh())

    def export_to(self, fmt: str, path: str) -> None:
        def write(desk: Any) -> str:
            Path(path).write_text(desk.cards.export(fmt), encoding="utf-8", newline="")
            return path

        self._run(write, lambda p: self.messages.show_message(f"Board exported to {p}.", "ok"),
                  refresh_on_error=False)

    # --- asking the agent -------------------------------------------------------------------

    def ask_rename_column(self, column_id: str) -> None:
        column = self.columns.get(column_id)
        if column is None:
            return
        name, ok = QInputDialog.getText(self, "Rename column", "Column name:",
                                        QLineEdit.EchoMode.Normal, column.name)
        if ok and name.strip() and name.strip() != column.name:
            self.rename_column(column_id, name.strip())

    def ask_new_card(self) -> None:
        title, ok = QInputDialog.getText(self, "New card", "Title of the request:")
        if ok and title.strip():
            self.create_card(title.strip())

    def ask_export(self, fmt: str) -> None:
        suffix = {"csv": "CSV files (*.csv)", "md": "Markdown files (*.md)"}[fmt]
        path, _filter = QFileDialog.getSaveFileName(self, "Export the board",
                                                    f"feedback-board.{fmt}", suffix)
        if path:
            self.export_to(fmt, path)

    def ask_merge(self, card_id: str) -> None:
        card = self.card(card_id)
        others = [c for c in self.all_cards() if c["id"] != card_id]
        if card is None or not others:
            return
        dialog = MergeDialog(card, others, self)
        dialog.accepted.connect(lambda: self.merge_cards(card_id, dialog.target_id or ""))
        self._keep(dialog)
        dialog.open()

    def open_card(self, card_id: str) -> None:
        dialog = CardDialog(self.service, card_id, self)
        dialog.openTicket.connect(self.openTicket)
        dialog.mergeRequested.connect(self.ask_merge)
        self._keep(dialog)
        dialog.show()

    def card_menu(self, view: QListView, index: QModelIndex) -> None:
        if not index.isValid():
            return
        card: dict[str, Any] = index.data(CARD_ROLE)
        card_id = card["id"]
        menu = QMenu(view)
        menu.addAction("Open", lambda: self.open_card(card_id))
        move = menu.addMenu("Move to")

        def mover(column_id: str) -> Callable[[], None]:
            return lambda: self.move_card(card_id, column_id)

        for column_id, column in self.columns.items():
            action = move.addAction(column.name, mover(column_id))
            action.setEnabled(column_id != card["column"])
        menu.addAction("Merge into…", lambda: self.ask_merge(card_id))
        if card["column"] == SHIPPED and pending(card):
            menu.addAction(f"Tell the {pending(card)} customers…",
                           lambda: self.tell_customers(card_id))
        menu.popup(view.viewport().mapToGlobal(view.visualRect(index).center()))

    def _keep(self, dialog: QDialog) -> None:
        """Hold a reference while a non-modal dialog is open."""
        self._dialogs.append(dialog)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def forget(_result: int) -> None:
            if dialog in self._dialogs:
                self._dialogs.remove(dialog)

        dialog.finished.connect(forget)
