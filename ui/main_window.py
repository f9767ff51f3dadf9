"""The main window: sidebar of views, the ticket list, and the ticket on the right.

The window owns the query (view, search text, sort, VIP first); the core sorts
and filters in SQL on the worker and hands back ids. Changes reported by the
core (local intents and background sync alike) mark list rows stale, re-run the
query and refresh the counts, debounced so a burst of changes costs one query.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from helpdesk import team_settings
from helpdesk.auth.errors import offers_sign_in
from helpdesk.desk import Changes
from helpdesk.mail.push import LoopStatus
from helpdesk.store.queries import QueryCancelled
from ui import format as fmt
from ui import style
from ui.banner import MessageBar
from ui.models import TAG_VIEW, TagsModel, TicketModel, ViewsModel, view_label
from ui.notify import Notifier
from ui.rota_dialog import DutyLabel
from ui.style import C
from ui.ticket_list import ListColumn, Sidebar
from ui.ticket_pane import TicketPane
from ui.widgets import plain_tooltip
from ui.window_menus import WindowMenus
from ui.worker import DeskService

CHANGES_DEBOUNCE_MS = 120
FIRST_PAGE = 200
COUNTS_REFRESH_MS = 60_000
SELECT_DEBOUNCE_MS = 40


class MainWindow(QMainWindow, WindowMenus):
    """See the module docstring."""

    list_applied = Signal(float)   # seconds from query start to model updated (bench, tests)

    def __init__(self, service: DeskService, *, persist: bool = True,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.desk = service.desk
        self.agent = self.desk.agent
        self.persist = persist
        self.view = "unclaimed"
        self.counts: dict[str, int] = {}
        self.last_sync: Any = None
        self.sync_state = LoopStatus(ok=True)
        self._retry_at = 0.0
        self._list_busy = False
        self._list_again = False
        # Set to stop the full-list read running for a query that typing has replaced.
        self._full_read_cancel: threading.Event | None = None
        self._full_read_query: tuple[str, str, bool, str] | None = None
        self._first_list = True
        self._board: QWidget | None = None
        self._dashboard: QWidget | None = None
        self._shown_query: tuple[Any, ...] | None = None
        self._shown_once = False
        self.tier_rank: tuple[str, ...] = ()
        self.setWindowTitle(f"Help desk — {self.agent}")
        self.setWindowIcon(style.app_icon())
        self.resize(1380, 860)

        self.model = TicketModel(self._fetch_rows, self.agent, self)
        self.views_model = ViewsModel(self)
        self.tags_model = TagsModel(self)
        self.sidebar = Sidebar(self.views_model, self.agent, tags=self.tags_model)
        self.duty = DutyLabel(service)  # "On duty today: kim" and the week ahead
        side = self.sidebar.layout()
        side.insertWidget(side.count() - 1, self.duty)
        self.column = ListColumn(self.model, self.agent)
        self.message_bar = MessageBar()
        self.pane = TicketPane(service, self.notify, notes=self.message_bar)
        self.notifier = Notifier(service, self, self.notify)

        central = QWidget()
        central.setObjectName("central")
        outer = QVBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setHandleWidth(1)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(self.column)
        self.splitter.addWidget(self.pane)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setStretchFactor(2, 1)
        self.splitter.setSizes([180, 350, 850])
        self.sidebar.setMinimumWidth(170)
        self.column.setMinimumWidth(300)
        outer.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self._build_status_bar()
        self._build_actions()

        self._changes_timer = self._timer(CHANGES_DEBOUNCE_MS, self._apply_changes)
        self._select_timer = self._timer(SELECT_DEBOUNCE_MS, self._show_selected)
        self._counts_timer = QTimer(self)
        self._counts_timer.setInterval(COUNTS_REFRESH_MS)
        self._counts_timer.timeout.connect(self._periodic)
        self._counts_timer.start()
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._update_status_text)
        self._tick.start()
        self._pending_changes = Changes(set(), set())

        self.sidebar.view_selected.connect(self.set_view)
        self.column.query_changed.connect(self.refresh_list)
        self.column.current_ticket.connect(lambda _t: self._select_timer.start())
        self.column.list.activated.connect(lambda _i: self.open_current())
        self.pane.open_ticket.connect(self.open_ticket)
        self.pane.ticket_changed.connect(
            lambda tid: self.on_changed(Changes({tid}, set())))
        self.notifier.open_ticket.connect(self.open_ticket)
        service.changed.connect(self.on_changed)
        service.sync_status.connect(self.on_sync_status)
        service.error.connect(lambda m: self.notify(m, "error", key=f"error:{m}"))
        service.conflict.connect(self._on_conflict)

        self._restore_layout()
        self.sidebar.select(self.view)
        # The list first: the counts (several COUNT queries) wait until rows are on screen.
        self._counts_loaded = False
        self.model.rows_loaded.connect(self._first_rows)
        self.refresh_list()
        self._load_tier_order()
        self.duty.refresh()
        # Keyboard first: single-key shortcuts (J, K, C, R...) work from the start.
        self.column.list.setFocus(Qt.FocusReason.OtherFocusReason)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            self.column.list.setFocus(Qt.FocusReason.ActiveWindowFocusReason)

    def _first_rows(self, _ids: list[str]) -> None:
        self.model.rows_loaded.disconnect(self._first_rows)
        if not self._counts_loaded:
            self.refresh_counts()

    def _timer(self, ms: int, slot: Any) -> QTimer:
        t = QTimer(self)
        t.setSingleShot(True)
        t.setInterval(ms)
        t.timeout.connect(slot)
        return t

    # --- chrome ---------------------------------------------------------------------

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        box = QWidget()
        lay = QHBoxLayout(box)
        lay.setContentsMargins(8, 0, 8, 0)
        self.sync_icon = QLabel()
        self.sync_label = QLabel("Starting…")
        self.sync_label.setTextFormat(Qt.TextFormat.PlainText)  # quotes the server
        self.sync_label.setObjectName("statusText")
        lay.addWidget(self.sync_icon)
        lay.addWidget(self.sync_label)
        # A first sync of a big mailbox: the newest mail is shown at once, older mail
        # fills in behind (helpdesk/mail/backfill.py); the bar says how far it is.
        self.sync_progress = QProgressBar()
        self.sync_progress.setObjectName("olderMail")
        self.sync_progress.setFormat("Older mail: %v of %m")
        self.sync_progress.setMaximumWidth(240)
        self.sync_progress.setMaximumHeight(16)
        self.sync_progress.hide()
        lay.addWidget(self.sync_progress)
        # Permanent widgets all: a menu's status tips never hide them. The notes sit in
        # the status bar, one fixed line: they never push the window's layout around.
        bar.addPermanentWidget(box)
        bar.addPermanentWidget(self.message_bar, 1)
        self.agent_status = QLabel(f"Signed in as {self.agent}")
        self.agent_status.setTextFormat(Qt.TextFormat.PlainText)
        self.agent_status.setObjectName("statusText")
        bar.addPermanentWidget(self.agent_status)

    # --- the list -------------------------------------------------------------------

    def _fetch_rows(self, ids: list[str], done: Any, failed: Any) -> None:
        self.service.read(lambda d: d.ticket_rows(ids), on_done=done, on_error=failed)

    def set_view(self, view: str) -> None:
        if view != self.view:
            self.view = view
            self.column.set_title(view, self._count_of(view))
            self.refresh_list()

    def _count_of(self, view: str) -> int | None:
        if view.startswith(TAG_VIEW):
            return self.tags_model.count(view[len(TAG_VIEW):])
        return self.counts.get(view)

    def _list_query(self) -> tuple[str, str, bool, str]:
        """What the list shows: view, search text, VIP first, sort."""
        return self.view, self.column.search_text(), self.column.vip_first, self.column.sort

    def refresh_list(self) -> None:
        """Re-run the query on the worker; at most one in flight, the latest wins.

        When the core can limit a query, the first page comes first (painted while
        the full list of ids is still being read), then the rest is appended.
        """
        if self._list_busy:
            self._list_again = True
            if (self._full_read_cancel is not None
                    and self._list_query() != self._full_read_query):
                # Typing replaced the query: its full list is no longer wanted. (A refresh
                # of the same query, e.g. after new mail, waits and runs after it.)
                self._full_read_cancel.set()
            return
        self._list_busy = True
        query = self._list_query()
        view, search, vip_first, sort = query
        tier_rank = self.tier_rank
        started = time.perf_counter()

        def ids_job(limit: int | None, cancel: threading.Event | None = None
                    ) -> Callable[[Any], tuple[list[str], dict[str, int]] | None]:
            def work(d: Any) -> tuple[list[str], dict[str, int]] | None:
                kw: dict[str, Any] = {"vip_first": vip_first, "sort": sort}
                core_view = view
                if view.startswith(TAG_VIEW):  # a tag in the sidebar: every ticket with it
                    core_view = "all"
                    kw["tags"] = (view[len(TAG_VIEW):],)
                if vip_first and tier_rank:
                    kw["tier_rank"] = tier_rank  # VIP tickets by the team's tier order
                if limit:
                    kw["limit"] = limit
                if cancel is not None:
                    kw["cancelled"] = cancel.is_set
                try:
                    ids = d.ticket_ids(core_view, search, **kw)
                except QueryCancelled:
                    return None
                return ids, {t: i for i, t in enumerate(ids)}
            return work

        def done(result: tuple[list[str], dict[str, int]] | None, page: bool) -> None:
            if not shiboken6.isValid(self):
                return
            self._full_read_cancel = None
            current = self._list_query()
            if result is None:  # a full read stopped for a newer query: run that one
                self._list_busy = self._list_again = False
                self.refresh_list()
                return
            complete = not page or len(result[0]) < FIRST_PAGE
            if current == query:
                self._apply_ids(*result)
                self._shown_query = query
                self.list_applied.emit(time.perf_counter() - started)
                if not complete and not self._list_again:
                    self._full_read_cancel = threading.Event()
                    self._full_read_query = query
                    self.service.read(ids_job(None, self._full_read_cancel),
                                     on_done=lambda r: done(r, False), on_error=failed)
                    return
            self._list_busy = False
            if self._list_again or current != query:
                self._list_again = False
                self.refresh_list()

        def failed(message: str) -> None:
            if shiboken6.isValid(self):
                self._full_read_cancel = None
                self._list_busy = False
                self.notify(message, "error")

        # A first page only for a new query: a refresh of the same list must not shrink
        # it under the reader's scroll position.
        page = query != self._shown_query
        self.service.read(ids_job(FIRST_PAGE if page else None),
                         on_done=lambda r: done(r, page), on_error=failed)

    def _apply_ids(self, ids: list[str], index: dict[str, int]) -> None:
        selected = self.column.list.currentIndex()
        current = (self.model.id_at(selected.row()) if selected.isValid() else None) \
            or self.pane.ticket_id
        top = self.column.top_visible_id()
        if self.model.set_ids(ids, index):
            row = self.model.row_of(current)
            if row >= 0:
                self.column.select_row(row, scroll=False)
            top_row = self.model.row_of(top)
            if top_row >= 0:
                self.column.list.scrollTo(self.model.index(top_row, 0),
                                          self.column.list.ScrollHint.PositionAtTop)
        total = len(ids)
        self.column.set_title(self.view, total)
        search = self.column.search_text()
        if total == 0 and not self._counts_loaded:
            self.refresh_counts()
        if total == 0:
            self.column.show_empty(f"No tickets match “{search}”." if search else
                                   _empty_text(self.view))
        else:
            self.column.show_empty(None)
        if self._first_list and total and current is None:
            self._first_list = False
            self.column.select_row(0)
        self._mark_in_view()

    def _mark_in_view(self) -> None:
        """The open ticket never changes by itself: when a change takes it out of the
        view (claimed from Unclaimed, closed from Mine...) it stays open, marked so.
        """
        tid = self.pane.ticket_id
        if tid is None:
            return
        in_view = self.model.row_of(tid) >= 0
        self.pane.header.set_in_view(in_view, view_label(self.view))
        if not in_view:
            # No row stands for it now: no row may look current, or J/K/Enter/focus
            # would quietly put another ticket in its place.
            self.column.list.selectionModel().clear()

    def _show_selected(self) -> None:
        index = self.column.list.currentIndex()
        tid = self.model.id_at(index.row()) if index.isValid() else None
        if tid is not None and self.column.list.selectionModel().isSelected(index):
            # Only a row the person selected: Qt makes a row current on its own too
            # (focus coming back to the list, a model reset), and that is no choice.
            self.pane.show_ticket(tid)
            self._mark_in_view()

    def open_current(self) -> None:
        self._select_timer.stop()
        self._show_selected()
        self.pane.conversation.setFocus()

    def open_ticket(self, tid: str) -> None:
        row = self.model.row_of(tid)
        if row >= 0:
            self.column.select_row(row)
        self.pane.show_ticket(tid)
        self._mark_in_view()

    def focus_search(self) -> None:
        self.column.search.setFocus()
        self.column.search.selectAll()

    # --- counts and changes ----------------------------------------------------------

    def refresh_counts(self) -> None:
        self._counts_loaded = True

        def done(status: dict[str, Any]) -> None:
            if not shiboken6.isValid(self):
                return
            self.counts = dict(status.get("counts") or {})
            self.views_model.set_counts(self.counts)
            self.tags_model.set_counts(dict(status.get("tag_counts") or {}))
            self.column.set_title(self.view, self.model.rowCount())
            if status.get("last_sync"):
                self.last_sync = status["last_sync"]
            if status.get("last_error") and self.last_sync is None:
                self.sync_state = LoopStatus(ok=False, message=status["last_error"])
            self._update_status_text()
            note = (status.get("team_log") or {}).get("note")
            if note:
                self.notify(str(note), "warning", key="team-snapshot")

        self.service.read(lambda d: {**d.status(), "tag_counts": d.tag_counts()},
                          on_done=done, on_error=lambda _m: None)

    def on_changed(self, changes: Changes) -> None:
        self._pending_changes.merge(changes)
        if changes.customers or "*" in changes.tickets:
            self.model.invalidate(None)
        else:
            self.model.invalidate(changes.tickets)
        self.pane.on_changed(changes)
        self.notifier.handle(changes)
        if changes.taken_over:
            self.pane.reload_row()
        self._changes_timer.start()

    def _apply_changes(self) -> None:
        everything = "*" in self._pending_changes.tickets
        self._pending_changes = Changes(set(), set())
        if everything:  # a team-wide change, the tier order and the rota among them
            self._load_tier_order()
            self.duty.refresh()
        self.refresh_list()
        self.refresh_counts()

    def _load_tier_order(self) -> None:
        def done(order: list[str]) -> None:
            if shiboken6.isValid(self) and tuple(order) != self.tier_rank:
                self.tier_rank = tuple(order)
                if self.column.vip_first:
                    self._shown_query = None
                    self.refresh_list()

        self.service.read(lambda d: team_settings.tier_order(d), on_done=done,
                          on_error=lambda _m: None)

    def _periodic(self) -> None:
        # Leases lapse with time, not events: recount and repaint now and then.
        self.model.invalidate(None)
        self.refresh_counts()
        self.refresh_list()
        self.duty.refresh()  # the day turns at the team's midnight

    def _on_conflict(self, message: str) -> None:
        tid = self.pane.ticket_id
        self.notify(message, "warn", key=f"held:{tid}" if tid else None)
        self.pane.reload_row()

    # --- sync status -------------------------------------------------------------------

    def on_sync_status(self, status: LoopStatus) -> None:
        was_ok = self.sync_state.ok
        self.sync_state = status
        self._show_progress(status)
        if status.ok:
            self.last_sync = fmt.utcnow()
            self.notifier.armed = True
            self.message_bar.clear("sync")
        else:
            self._retry_at = time.monotonic() + float(status.retry_in or 0)
            if was_ok or status.message not in self.message_bar.texts():
                # A revoked or missing sign-in: the cure is signing in, not retrying.
                action = (("Sign in…", self.open_settings) if offers_sign_in(status.message)
                          else ("Retry now", self.sync_now))
                self.notify(status.message, "error", key="sync", action=action)
        self._update_status_text()

    def _show_progress(self, status: LoopStatus) -> None:
        progress = status.progress
        if not status.ok:
            return  # a failed pass says nothing new about what is in
        if progress is None or not progress.more:
            self.sync_progress.hide()
            return
        if not progress.pending:  # the mail is in; the team's history is going in
            self.sync_progress.setRange(0, 0)  # busy: stored in one step, not counted
            self.sync_progress.setFormat("Team history")
            self.sync_progress.setToolTip(plain_tooltip(
                "Tickets, claims and customers are in. The team's history (customer "
                "notes, cared answers, past status changes) is being stored; notes and "
                "reports are complete once this is gone."))
            self.sync_progress.show()
            return
        self.sync_progress.setFormat("Older mail: %v of %m")
        self.sync_progress.setRange(0, max(1, progress.total))
        self.sync_progress.setValue(min(progress.stored, progress.total))
        self.sync_progress.setToolTip(plain_tooltip(
            f"The newest mail is in; older mail is still coming in ({progress.stored} of "
            f"{progress.total} messages). Search covers what is in so far."))
        self.sync_progress.show()

    def _update_status_text(self) -> None:
        s = self.sync_state
        if s.ok:
            self.sync_icon.setPixmap(style.pixmap("check", C.ok, 14))
            text = "Synced " + fmt.ago(self.last_sync) if self.last_sync else "Syncing…"
        else:
            self.sync_icon.setPixmap(style.pixmap("offline", C.error, 14))
            left = max(0, round(self._retry_at - time.monotonic()))
            text = f"Offline, retrying in {left} s" if left else "Offline, retrying now…"
            if s.message:
                text += f"  —  {s.message}"
        self.sync_label.setText(text)
        tip = s.message or ""
        if s.ok and self.last_sync:
            tip = f"Last synced {fmt.exact(self.last_sync)}"
        self.sync_label.setToolTip(plain_tooltip(tip))

    def sync_now(self) -> None:
        self.service.sync_now()
        self.sync_label.setText("Syncing…")

    def notify(self, text: str, kind: str = "info", *, action: Any = None,
               key: str | None = None, timeout_ms: int | None = None) -> None:
        """A note for the person; ``key`` names its situation (one note each)."""
        if shiboken6.isValid(self):
            self.message_bar.show_message(text, kind, action=action, key=key,
                                          timeout_ms=timeout_ms)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.text() in ("?", "!") and \
                not event.modifiers() & ~Qt.KeyboardModifier.ShiftModifier:
            # Shifted keys: on layouts whose key mapper offers only the shifted form.
            (self.show_help if event.text() == "?" else self.pane.mark_spam)()
            return
        super().keyPressEvent(event)

    # --- window state --------------------------------------------------------------------

    def _restore_layout(self) -> None:
        if not self.persist:
            return
        s = QSettings()
        geometry = s.value("main/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = s.value("main/splitter")
        if isinstance(state, QByteArray):
            self.splitter.restoreState(state)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.pane.composer.is_open:
            self.pane.composer.save_draft()
        if self.persist:
            s = QSettings()
            s.setValue("main/geometry", self.saveGeometry())
            s.setValue("main/splitter", self.splitter.saveState())
        super().closeEvent(event)


def _empty_text(view: str) -> str:
    return {
        "unclaimed": "Every ticket has someone on it. Nice.",
        "mine": "You are not handling any tickets. Claim one from Unclaimed (C).",
        "vip": "No open tickets from VIP customers.",
        "pending": "Nothing is waiting for a customer.",
        "closed": "No closed tickets yet.",
        "mentions": "Nobody is waiting for your answer to a note.",
        "snoozed": "No snoozed tickets. Snooze one (Z) to bring it back later.",
        "spam": "No spam. Mark a ticket as spam (!) to send its sender here.",
    }.get(view, "No tickets here yet. New mail appears as it arrives.")
