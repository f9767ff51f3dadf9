"""The middle column (search box, view title, sort menu, the ticket list) and the sidebar."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui import style
from ui.delegates import SidebarDelegate, TicketDelegate
from ui.help_sheet import tip
from ui.models import TAG_VIEW, VIEWS, TagsModel, TicketModel, ViewsModel, view_label
from ui.style import C

SEARCH_DEBOUNCE_MS = 150
SORTS = (("updated", "Last activity"), ("created", "Newest tickets"),
         ("waiting", "Waiting longest"))


class Sidebar(QFrame):
    """Views with live counts; the agent's name at the bottom."""

    view_selected = Signal(str)

    def __init__(self, model: ViewsModel, agent: str, parent: QWidget | None = None,
                 tags: TagsModel | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.model = model
        self.tags_model = tags or TagsModel(self)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 14, 0, 10)
        lay.setSpacing(4)
        brand = QHBoxLayout()
        brand.setContentsMargins(16, 0, 12, 6)
        logo = QLabel()
        logo.setPixmap(style.app_icon().pixmap(22, 22))
        brand.addWidget(logo)
        name = QLabel("Help desk")
        name.setObjectName("brand")
        brand.addWidget(name, 1)
        lay.addLayout(brand)
        head = QLabel("VIEWS")
        head.setObjectName("sidebarHead")
        lay.addWidget(head)
        self.list = QListView()
        self.list.setObjectName("viewList")
        self.list.setModel(model)
        self.list.setItemDelegate(SidebarDelegate(self.list))
        self.list.setFrameShape(QFrame.Shape.NoFrame)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.list.selectionModel().currentChanged.connect(
            lambda cur, _prev: self._picked(VIEWS[cur.row()][0]) if cur.isValid() else None)
        self.list.setSizeAdjustPolicy(QAbstractItemView.SizeAdjustPolicy.AdjustToContents)
        lay.addWidget(self.list)
        self.tags_head = QLabel("TAGS")
        self.tags_head.setObjectName("sidebarHead")
        lay.addWidget(self.tags_head)
        # Tags come from team data: painted as plain text by the delegate, never markup.
        self.tag_list = QListView()
        self.tag_list.setObjectName("tagList")
        self.tag_list.setModel(self.tags_model)
        self.tag_list.setItemDelegate(SidebarDelegate(self.tag_list))
        self.tag_list.setFrameShape(QFrame.Shape.NoFrame)
        self.tag_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tag_list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tag_list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.tag_list.selectionModel().currentChanged.connect(
            lambda cur, _prev: self._picked(TAG_VIEW + self.tags_model.tags()[cur.row()])
            if cur.isValid() and cur.row() < len(self.tags_model.tags()) else None)
        lay.addWidget(self.tag_list, 1)
        self.current = ""
        self.tags_model.modelReset.connect(self._tags_reset)
        self._tags_reset()
        me = QHBoxLayout()
        me.setContentsMargins(16, 6, 12, 0)
        icon = QLabel()
        icon.setPixmap(style.pixmap("mine", C.muted, 16))
        me.addWidget(icon)
        self.agent_label = QLabel(agent)
        self.agent_label.setObjectName("muted")
        self.agent_label.setToolTip("You are signed in as this agent")
        me.addWidget(self.agent_label, 1)
        lay.addLayout(me)

    def _picked(self, key: str) -> None:
        """One list's choice clears the other's: one view is current."""
        self.current = key
        other = self.list if key.startswith(TAG_VIEW) else self.tag_list
        other.selectionModel().blockSignals(True)
        other.selectionModel().clear()
        other.setCurrentIndex(other.model().index(-1, 0))
        other.selectionModel().blockSignals(False)
        other.viewport().update()
        self.view_selected.emit(key)

    def _tags_reset(self) -> None:
        has = self.tags_model.rowCount() > 0
        self.tags_head.setVisible(has)
        self.tag_list.setVisible(has)
        if self.current.startswith(TAG_VIEW):  # keep the tag picked across a reset
            row = self.tags_model.row_of(self.current[len(TAG_VIEW):])
            if row >= 0:
                self.tag_list.selectionModel().blockSignals(True)
                self.tag_list.setCurrentIndex(self.tags_model.index(row))
                self.tag_list.selectionModel().blockSignals(False)

    def select(self, key: str) -> None:
        if key.startswith(TAG_VIEW):
            row = self.tags_model.row_of(key[len(TAG_VIEW):])
            if row >= 0:
                self.tag_list.setCurrentIndex(self.tags_model.index(row))
            return
        row = self.model.row_of(key)
        if row >= 0:
            self.list.setCurrentIndex(self.model.index(row))


class TicketListView(QTableView):
    """One full-width column painted by the delegate, rows of one fixed height.

    A table rather than a QListView: QListView lays out every item when the model
    resets (~100 ms at 20,000 rows), a table with fixed row heights does not.
    """

    def __init__(self, row_height: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ticketList")
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setCornerButtonEnabled(False)
        self.setTabKeyNavigation(False)
        self.horizontalHeader().hide()
        self.verticalHeader().hide()
        rows = self.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setMinimumSectionSize(10)
        rows.setDefaultSectionSize(row_height)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)

    def setModel(self, model: Any) -> None:
        super().setModel(model)
        model.modelReset.connect(self._hide_columns)
        self._hide_columns()

    def _hide_columns(self) -> None:
        model = self.model()
        for col in range(1, model.columnCount() if model is not None else 0):
            self.setColumnHidden(col, True)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Letters are shortcuts here (J, K, C, R, E...), not type-to-find: anything
        # printable that no shortcut took goes up to the window.
        text = event.text()
        if text and text.isprintable() and not text.isspace() and not (
                event.modifiers() & (Qt.KeyboardModifier.ControlModifier
                                     | Qt.KeyboardModifier.AltModifier)):
            event.ignore()
            return
        super().keyPressEvent(event)

    def focusInEvent(self, event: Any) -> None:
        super().focusInEvent(event)
        self.viewport().update()

    def focusOutEvent(self, event: Any) -> None:
        super().focusOutEvent(event)
        self.viewport().update()


class ListColumn(QFrame):
    """Search box, title with count and sort menu, and the lazy ticket list."""

    query_changed = Signal()        # search text (debounced), sort or VIP-first changed
    current_ticket = Signal(object)  # str | None

    def __init__(self, model: TicketModel, agent: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("listColumn")
        self.model = model
        self.sort = "updated"
        self.vip_first = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)

        top = QFrame()
        top.setObjectName("listTop")
        tl = QVBoxLayout(top)
        tl.setContentsMargins(12, 12, 12, 8)
        tl.setSpacing(8)
        self.search = QLineEdit()
        self.search.setObjectName("search")
        self.search.setPlaceholderText("Search subject, text, customer")
        self.search.setToolTip(tip("Search tickets as you type", "search"))
        self.search.setClearButtonEnabled(True)
        self.search.addAction(style.icon("search", C.faint),
                              QLineEdit.ActionPosition.LeadingPosition)
        self.search.installEventFilter(self)
        tl.addWidget(self.search)
        row = QHBoxLayout()
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # a tag's name may be the title
        self.title.setObjectName("listTitle")
        self.count = QLabel()
        self.count.setObjectName("muted")
        row.addWidget(self.title)
        row.addWidget(self.count, 1)
        self.sort_button = QToolButton()
        self.sort_button.setObjectName("sortButton")
        self.sort_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.sort_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.sort_menu = QMenu(self.sort_button)
        group = QActionGroup(self)
        self.sort_actions: dict[str, QAction] = {}
        for key, label in SORTS:
            a = self.sort_menu.addAction(label)
            a.setCheckable(True)
            a.setChecked(key == self.sort)
            a.triggered.connect(lambda _=False, k=key: self.set_sort(k))
            group.addAction(a)
            self.sort_actions[key] = a
        self.sort_menu.addSeparator()
        self.vip_action = self.sort_menu.addAction(style.icon("star", C.vip_star), "VIP first")
        self.vip_action.setCheckable(True)
        self.vip_action.toggled.connect(self.set_vip_first)
        self.sort_button.setMenu(self.sort_menu)
        row.addWidget(self.sort_button)
        tl.addLayout(row)
        lay.addWidget(top)

        delegate = TicketDelegate(agent)
        self.list = TicketListView(delegate.row_height(self.font()))
        delegate.setParent(self.list)
        self.list.setModel(model)
        self.list.setItemDelegate(delegate)
        self.list.selectionModel().currentChanged.connect(
            lambda cur, _p: self.current_ticket.emit(model.id_at(cur.row()) if cur.isValid()
                                                     else None))
        # A row that was current without being chosen (Qt does that on focus) and is
        # then selected changes the selection only.
        self.list.selectionModel().selectionChanged.connect(
            lambda _s, _d: self.current_ticket.emit(self.selected_id()))
        lay.addWidget(self.list, 1)
        self.empty = QLabel(self.list)
        self.empty.setObjectName("emptyState")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.hide()

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.query_changed)
        self.search.textChanged.connect(lambda _t: self._debounce.start())
        self._update_sort_label()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.search and isinstance(event, QKeyEvent) \
                and event.type() == QEvent.Type.KeyPress:
            key = event.key()
            if key == Qt.Key.Key_Escape:
                if self.search.text():
                    self.search.clear()
                self.list.setFocus()
                return True
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._debounce.stop()
                self.query_changed.emit()
                self.list.setFocus()
                if not self.list.currentIndex().isValid() and self.model.rowCount() > 0:
                    self.select_row(0)
                return True
        return super().eventFilter(obj, event)

    def search_text(self) -> str:
        return self.search.text().strip()

    def set_sort(self, key: str) -> None:
        if key != self.sort:
            self.sort = key
            self.sort_actions[key].setChecked(True)
            self._update_sort_label()
            self.query_changed.emit()

    def set_vip_first(self, on: bool) -> None:
        if on != self.vip_first:
            self.vip_first = on
            self.vip_action.setChecked(on)
            self._update_sort_label()
            self.query_changed.emit()

    def _update_sort_label(self) -> None:
        label = dict(SORTS)[self.sort]
        self.sort_button.setText(("★ VIP, then " + label.lower()) if self.vip_first
                                 else label)
        self.sort_button.setToolTip("How the list is sorted")

    def set_title(self, view: str, total: int | None) -> None:
        self.title.setText(view_label(view))
        self.count.setText("" if total is None else f"  {total:,}")

    def show_empty(self, text: str | None) -> None:
        if text:
            self.empty.setText(text)
            self.empty.setGeometry(self.list.viewport().rect().adjusted(20, 40, -20, -40))
            self.empty.show()
        else:
            self.empty.hide()

    def select_row(self, row: int, scroll: bool = True) -> None:
        index = self.model.index(row, 0)
        if not index.isValid():
            return
        auto = self.list.hasAutoScroll()
        self.list.setAutoScroll(scroll)
        self.list.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.list.setAutoScroll(auto)
        if scroll:
            self.list.scrollTo(index)

    def move(self, step: int) -> None:
        current = self.list.currentIndex()
        row = current.row() + step if current.isValid() else 0
        row = max(0, min(self.model.rowCount() - 1, row))
        if self.model.rowCount():
            self.select_row(row)

    def selected_id(self) -> str | None:
        rows = self.list.selectionModel().selectedRows()
        return self.model.id_at(rows[0].row()) if rows else None

    def top_visible_id(self) -> str | None:
        index = self.list.indexAt(self.list.viewport().rect().topLeft())
        return self.model.id_at(index.row()) if index.isValid() else None
