"""Item models: the lazy ticket list and the sidebar of views.

:class:`TicketModel` holds ticket ids only (already sorted and filtered in SQL by
the core). Rows are fetched on demand, a chunk around the row being painted, by a
``fetch`` function that runs on the worker and calls back on the main thread.
Fetched rows live in a bounded cache of the rows of the tickets listed now (a new list
drops the rows of tickets it no longer holds); a change marks rows stale: the stale
row keeps being shown (no flicker) while a fresh copy is fetched.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from enum import IntEnum
from typing import Any

import shiboken6
from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QIcon

from ui import format as fmt
from ui import style
from ui.widgets import plain_tooltip

Row = dict[str, Any]
Index = QModelIndex | QPersistentModelIndex
RowsFetch = Callable[[list[str], Callable[[dict[str, Row]], None], Callable[[str], None]], None]

_ROOT = QModelIndex()



def flat_item_flags(index: Index) -> Qt.ItemFlag:
    """Flags of a selectable row in a flat (list or table) model."""
    if not index.isValid():
        return Qt.ItemFlag.NoItemFlags
    return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | \
        Qt.ItemFlag.ItemNeverHasChildren

class Col(IntEnum):
    CUSTOMER = 0
    SUBJECT = 1
    WAITING = 2
    HOLDER = 3
    FLAGS = 4
    UPDATED = 5


HEADERS = {Col.CUSTOMER: "Customer", Col.SUBJECT: "Subject", Col.WAITING: "Waiting",
           Col.HOLDER: "Held by", Col.FLAGS: "Flags", Col.UPDATED: "Last activity"}

ID_ROLE = Qt.ItemDataRole.UserRole + 1       # str: the ticket id (always available)
ROW_ROLE = Qt.ItemDataRole.UserRole + 2      # dict | None: the whole row once fetched
LOADED_ROLE = Qt.ItemDataRole.UserRole + 3   # bool
VIP_ROLE = Qt.ItemDataRole.UserRole + 4      # bool


class TicketModel(QAbstractTableModel):
    """A list of ticket ids whose rows are fetched lazily (see the module docstring)."""

    rows_loaded = Signal(list)  # ids whose rows just arrived

    CHUNK = 80
    CACHE_LIMIT = 4000

    def __init__(self, fetch: RowsFetch, agent: str = "", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fetch = fetch
        self.agent = agent
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self._cache: OrderedDict[str, Row] = OrderedDict()
        self._stale: set[str] = set()
        self._missing: set[str] = set()
        self._pending: set[str] = set()
        self._queue: list[str] = []
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(0)
        self._flush_timer.timeout.connect(self._flush)

    # --- ids ---------------------------------------------------------------------

    @property
    def ids(self) -> list[str]:
        return self._ids

    def set_ids(self, ids: list[str], index: dict[str, int] | None = None) -> bool:
        """Show ``ids`` (in this order). Returns False when nothing changed.

        A re-ordering of the same tickets keeps selection and current row (persistent
        indexes are moved); a different set resets the model.
        """
        if ids == self._ids:
            return False
        if index is None:
            index = {t: i for i, t in enumerate(ids)}
        old_n = len(self._ids)
        if old_n and len(ids) > old_n and ids[:old_n] == self._ids:
            # The rest of a list whose first page is showing: append, keep everything.
            self.beginInsertRows(QModelIndex(), old_n, len(ids) - 1)
            self._ids, self._index = ids, index
            self.endInsertRows()
        elif len(ids) == len(self._ids) and index.keys() == self._index.keys():
            self.layoutAboutToBeChanged.emit()
            old = self.persistentIndexList()
            new = [self.index(index[self._ids[p.row()]], p.column()) for p in old]
            self._ids, self._index = ids, index
            self.changePersistentIndexList(old, new)
            self.layoutChanged.emit()
        else:
            self.beginResetModel()
            self._ids, self._index = ids, index
            self._missing.clear()
            self._forget_unlisted()
            self.endResetModel()
        return True

    def _forget_unlisted(self) -> None:
        """Drop the rows of tickets the list no longer holds.

        Kept, every ticket seen in a view all day (new mail, view switches, searches)
        would stay cached up to CACHE_LIMIT rows a list: memory and ~11 references to
        None per row (the soak's steady rise, bench/soak.py). A row the list shows
        again is fetched again, one chunk at a time as for any list.
        """
        gone = [t for t in self._cache if t not in self._index]
        for tid in gone:
            del self._cache[tid]
            self._stale.discard(tid)

    def row_of(self, ticket_id: str | None) -> int:
        return -1 if ticket_id is None else self._index.get(ticket_id, -1)

    def id_at(self, row: int) -> str | None:
        return self._ids[row] if 0 <= row < len(self._ids) else None

    def cached(self, ticket_id: str) -> Row | None:
        return self._cache.get(ticket_id)

    # --- cache -------------------------------------------------------------------

    def invalidate(self, ticket_ids: Iterable[str] | None = None) -> None:
        """Mark rows stale (all when ``None`` or containing '*'); visible ones refetch."""
        ids = None if ticket_ids is None else set(ticket_ids)
        if ids is None or "*" in ids:
            self._stale.update(self._cache.keys())
            self._missing.clear()
            changed = range(len(self._ids))
        else:
            hit = ids & self._cache.keys()
            self._stale.update(hit)
            self._missing -= ids
            changed = sorted(self._index[t] for t in hit if t in self._index)
        if changed:
            # Views repaint what they show; painting asks data(), which refetches.
            self.dataChanged.emit(self.index(min(changed), 0),
                                  self.index(max(changed), len(Col) - 1))

    def _want(self, row: int) -> None:
        start = row - row % self.CHUNK
        for tid in self._ids[start:start + self.CHUNK]:
            if tid in self._pending or tid in self._missing:
                continue
            if tid in self._cache and tid not in self._stale:
                continue
            self._pending.add(tid)
            self._queue.append(tid)
        if self._queue and not self._flush_timer.isActive():
            self._flush_timer.start()

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            return
        self._fetch(batch, lambda rows: self._arrived(batch, rows),
                    lambda _msg: self._failed(batch))

    def _failed(self, batch: list[str]) -> None:
        if shiboken6.isValid(self):
            self._pending.difference_update(batch)

    def _arrived(self, batch: list[str], rows: dict[str, Row]) -> None:
        if not shiboken6.isValid(self):
            return
        self._pending.difference_update(batch)
        for tid in batch:
            row = rows.get(tid)
            if tid not in self._index:  # the list moved on while the rows were read
                self._cache.pop(tid, None)
                self._stale.discard(tid)
            elif row is None:
                self._missing.add(tid)
                self._cache.pop(tid, None)
            else:
                self._cache[tid] = row
                self._cache.move_to_end(tid)
            self._stale.discard(tid)
        while len(self._cache) > self.CACHE_LIMIT:
            old, _ = self._cache.popitem(last=False)
            self._stale.discard(old)
        positions = [self._index[t] for t in batch if t in self._index]
        if positions:
            self.dataChanged.emit(self.index(min(positions), 0),
                                  self.index(max(positions), len(Col) - 1))
        self.rows_loaded.emit(batch)

    # --- Qt model interface --------------------------------------------------------

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._ids)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(Col)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole
                and 0 <= section < len(Col)):
            return HEADERS[Col(section)]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        return flat_item_flags(index)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._ids):
            return None
        tid = self._ids[index.row()]
        if role == ID_ROLE:
            return tid
        row = self._cache.get(tid)
        if row is None or tid in self._stale:
            self._want(index.row())
        if role == LOADED_ROLE:
            return row is not None
        if role == ROW_ROLE:
            return row
        if row is None:
            if role == Qt.ItemDataRole.DisplayRole:
                return "Loading…" if index.column() == Col.SUBJECT else ""
            return None
        if role == VIP_ROLE:
            return bool(row.get("vip"))
        col = Col(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(col, row)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(col, row)
        if role == Qt.ItemDataRole.DecorationRole and col == Col.FLAGS and row.get("vip"):
            return style.icon("star", style.C.vip_star)
        if role == Qt.ItemDataRole.ForegroundRole and col == Col.WAITING:
            level = fmt.waiting_level(row.get("waiting_since"))
            return QColor((style.C.muted, style.C.warn, style.C.error)[level])
        return None

    def _display(self, col: Col, row: Row) -> str:
        if col == Col.CUSTOMER:
            return fmt.display_name(row.get("customer_name"), row.get("customer_email"))
        if col == Col.SUBJECT:
            return str(row.get("subject") or "(no subject)")
        if col == Col.WAITING:
            return fmt.ago(row.get("waiting_since"))
        if col == Col.HOLDER:
            holder = row.get("claimed_by")
            return "" if not holder else ("You" if holder == self.agent else str(holder))
        if col == Col.FLAGS:
            flags = []
            if row.get("vip"):
                flags.append(str(row.get("vip_tier") or "VIP"))
            if row.get("white_glove"):
                flags.append("White-glove")
            return " · ".join(flags)
        return fmt.ago(row.get("updated_at"))

    def _tooltip(self, col: Col, row: Row) -> str | None:
        if col == Col.CUSTOMER:  # the list's one visible column: the whole row's tip
            lines = [str(row.get("customer_email") or "")]
            if row.get("waiting_since") and row.get("status") != "closed":
                lines.append(f"Oldest unanswered message: {fmt.exact(row['waiting_since'])}")
            if row.get("updated_at"):
                lines.append(f"Last activity: {fmt.exact(row['updated_at'])}")
            return plain_tooltip("\n".join(lines))
        if col == Col.WAITING and row.get("waiting_since"):
            return f"Oldest unanswered message: {fmt.exact(row['waiting_since'])}"
        if col == Col.SUBJECT:
            return plain_tooltip(str(row.get("snippet") or ""))
        if col == Col.UPDATED and row.get("updated_at"):
            return f"Last activity {fmt.exact(row['updated_at'])}"
        return None


# --- the sidebar ----------------------------------------------------------------------

KEY_ROLE = Qt.ItemDataRole.UserRole + 1
COUNT_ROLE = Qt.ItemDataRole.UserRole + 2

#: (view key understood by the core, label, icon)
VIEWS: tuple[tuple[str, str, str], ...] = (
    ("unclaimed", "Unclaimed", "unclaimed"),
    ("mine", "Mine", "mine"),
    ("vip", "VIP", "star"),
    ("mentions", "Mentions", "mention"),
    ("open", "All open", "inbox"),
    ("snoozed", "Snoozed", "snooze"),
    ("pending", "Pending", "pending"),
    ("closed", "Closed", "closed"),
    ("spam", "Spam", "spam"),
    ("all", "Everything", "all"),
)
#: A tag's list in the sidebar is the view key ``TAG_VIEW + tag`` (every ticket with it).
TAG_VIEW = "tag:"


def view_label(key: str) -> str:
    """What the list's title says for a view key (a tag shows as ``#tag``)."""
    if key.startswith(TAG_VIEW):
        return "#" + key[len(TAG_VIEW):]
    return next((v[1] for v in VIEWS if v[0] == key), key)


def view_shortcut(row: int) -> str:
    """Ctrl+1 ... Ctrl+9, then Ctrl+0 for the tenth view."""
    return f"Ctrl+{(row + 1) % 10}"


class ViewsModel(QAbstractListModel):
    """The sidebar: views with live counts (from ``desk.status()['counts']``)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._counts: dict[str, int] = {}

    def set_counts(self, counts: dict[str, int]) -> None:
        if counts == self._counts:
            return
        self._counts = dict(counts)
        self.dataChanged.emit(self.index(0), self.index(len(VIEWS) - 1))

    def count(self, key: str) -> int | None:
        return self._counts.get(key)

    def row_of(self, key: str) -> int:
        return next((i for i, v in enumerate(VIEWS) if v[0] == key), -1)

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(VIEWS)

    def flags(self, index: Index) -> Qt.ItemFlag:
        return flat_item_flags(index)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(VIEWS):
            return None
        key, label, icon_name = VIEWS[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return label
        if role == KEY_ROLE:
            return key
        if role == COUNT_ROLE:
            return self._counts.get(key)
        if role == Qt.ItemDataRole.DecorationRole:
            return view_icon(icon_name)
        if role == Qt.ItemDataRole.ToolTipRole:
            n = self._counts.get(key)
            shortcut = view_shortcut(index.row())
            return f"{label} ({shortcut})" if n is None else f"{label}: {n} ({shortcut})"
        return None


class TagsModel(QAbstractListModel):
    """The sidebar's tags, by name, each with how many tickets carry it."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tags: list[tuple[str, int]] = []

    def set_counts(self, counts: dict[str, int]) -> None:
        tags = sorted(counts.items())
        if tags == self._tags:
            return
        if [t for t, _n in tags] == [t for t, _n in self._tags]:
            self._tags = tags  # same tags: repaint the counts, keep the selection
            if tags:
                self.dataChanged.emit(self.index(0), self.index(len(tags) - 1))
            return
        self.beginResetModel()
        self._tags = tags
        self.endResetModel()

    def tags(self) -> list[str]:
        return [t for t, _n in self._tags]

    def count(self, tag: str) -> int | None:
        return dict(self._tags).get(tag)

    def row_of(self, tag: str) -> int:
        return next((i for i, (t, _n) in enumerate(self._tags) if t == tag), -1)

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._tags)

    def flags(self, index: Index) -> Qt.ItemFlag:
        return flat_item_flags(index)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._tags):
            return None
        tag, n = self._tags[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return tag
        if role == KEY_ROLE:
            return TAG_VIEW + tag
        if role == COUNT_ROLE:
            return n
        if role == Qt.ItemDataRole.DecorationRole:
            return view_icon("tag")
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"Tickets tagged {tag}: {n}"
        return None


def view_icon(name: str) -> QIcon:
    colour = style.C.vip_star if name == "star" else style.C.accent
    return style.icon(name, colour, active=style.C.accent_text)
