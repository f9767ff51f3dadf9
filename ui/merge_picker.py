"""The merge picker: choose the ticket another one goes into ("Merge into…").

Lists the customer's other tickets first, then whatever the search finds (the core's
list reads, on the read worker). Enter or "Merge" merges the open ticket into the
highlighted one through ``desk.merge`` (a team event; there is no undo, which the
dialog says). Subjects and names are plain text, never markup.
"""

from __future__ import annotations

from typing import Any

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.worker import DeskService

__all__ = ["MergePicker"]

ID_ROLE = Qt.ItemDataRole.UserRole + 1


class MergePicker(QDialog):
    """Pick INTO for ``ticket_id``; ``merged(into)`` once the team log took the merge."""

    merged = Signal(str)
    failed = Signal(str)

    def __init__(self, service: DeskService, ticket_id: str, customer: str | None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.ticket_id = ticket_id
        self.customer = customer or ""
        self.setWindowTitle("Merge into…")
        self.setModal(True)
        lay = QVBoxLayout(self)
        self.explain = QLabel()
        self.explain.setTextFormat(Qt.TextFormat.PlainText)
        self.explain.setWordWrap(True)
        self.explain.setText(f"Merge ticket {ticket_id} into the ticket you pick: its "
                             "messages, notes, claim and drafts move there for the whole "
                             "team, and its number keeps opening it. This cannot be undone.")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search tickets (subject, customer, text)")
        self.list = QListWidget()
        self.list.setUniformItemSizes(True)
        self.error = QLabel()
        self.error.setTextFormat(Qt.TextFormat.PlainText)
        self.error.setWordWrap(True)
        self.error.setObjectName("errorText")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.merge_button = self.buttons.addButton("Merge",
                                                   QDialogButtonBox.ButtonRole.AcceptRole)
        self.merge_button.setEnabled(False)
        self.buttons.accepted.connect(self.do_merge)
        self.buttons.rejected.connect(self.reject)
        for w in (self.explain, self.search, self.list, self.error, self.buttons):
            lay.addWidget(w)
        self.list.currentItemChanged.connect(
            lambda item, _old: self.merge_button.setEnabled(item is not None))
        self.list.itemActivated.connect(lambda _item: self.do_merge())
        self._typing = QTimer(self, singleShot=True, interval=150)
        self._typing.timeout.connect(self.refresh)
        self.search.textChanged.connect(lambda _t: self._typing.start())
        self.search.returnPressed.connect(self.do_merge)
        self.resize(520, 420)
        self.refresh()

    def refresh(self) -> None:
        query = self.search.text().strip() or self.customer
        me = self.ticket_id

        def rows(desk: Any) -> list[dict[str, Any]]:
            return [r for r in desk.tickets("all", query) if r["id"] != me][:200]

        self.service.read(rows, on_done=self._show, on_error=self._error)

    def _error(self, message: str) -> None:
        if shiboken6.isValid(self):  # an answer may come after the dialog closed
            self.error.setText(message)

    def _show(self, rows: list[dict[str, Any]]) -> None:
        if not shiboken6.isValid(self):
            return
        self.list.clear()
        for r in rows:
            who = r.get("customer_name") or r.get("customer") or "?"
            item = QListWidgetItem(f"#{r['id']}  {r['subject'] or '(no subject)'}  ·  {who}  "
                                   f"·  {r['status']}")
            item.setData(ID_ROLE, r["id"])
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def do_merge(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        into = str(item.data(ID_ROLE))
        src = self.ticket_id
        self.merge_button.setEnabled(False)

        def done(_changes: Any) -> None:
            if shiboken6.isValid(self):
                self.merged.emit(into)
                self.accept()

        def failed(message: str) -> None:
            if not shiboken6.isValid(self):
                return
            self.error.setText(message)
            self.merge_button.setEnabled(True)
            self.failed.emit(message)

        self.service.run(lambda d: d.merge(src, into), on_done=done, on_error=failed)
