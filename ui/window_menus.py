"""The main window's menus, shortcuts and the other windows it opens (a mixin).

Every action is also added to the window itself, so its shortcut works wherever
the focus is (single letters give way to text fields, which take them as text).
"""

from __future__ import annotations

from typing import Any

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMessageBox, QWidget

from ui import style
from ui.help_sheet import HelpSheet, keys, tip
from ui.models import VIEWS, view_shortcut
from ui.style import C


class WindowMenus:
    """Mixed into :class:`ui.main_window.MainWindow` (uses its pane, list and service)."""

    _board: QWidget | None
    _dashboard: QWidget | None

    def _action(self, text: str, slot: Any, shortcut: str | None = None,
                icon_name: str | None = None, extra: list[QKeySequence] | None = None
                ) -> QAction:
        a = QAction(text, self)
        if icon_name:
            a.setIcon(style.icon(icon_name, C.muted))
        seqs = list(keys(shortcut)) if shortcut else []
        seqs += extra or []
        if seqs:
            a.setShortcuts(seqs)
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            if shortcut:
                a.setToolTip(tip(text.rstrip("…"), shortcut))
        a.triggered.connect(lambda _=False: slot())
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        mb = self.menuBar()
        app_menu = mb.addMenu("&Help desk")
        self.sync_action = self._action("Sync now", self.sync_now, "sync", "refresh")
        app_menu.addAction(self.sync_action)
        app_menu.addAction(self._action("Settings…", self.open_settings, None, "settings"))
        app_menu.addAction(self._action("Signatures…", self.open_signatures, None, "note"))
        app_menu.addSeparator()
        app_menu.addAction(self._action("Quit", self.close, None, None,
                                        [QKeySequence(QKeySequence.StandardKey.Quit)]))

        t = mb.addMenu("&Ticket")
        p = self.pane
        self.ticket_actions = {
            "claim": self._action("Claim", p.claim, "claim", "claim"),
            "takeover": self._action("Take over…", p.takeover, None, "takeover"),
            "release": self._action("Release", p.release, None, "release"),
            "reply": self._action("Reply", p.reply, "reply", "reply"),
            "close": self._action("Close…", p.close_ticket, "close", "closed"),
            "reopen": self._action("Reopen", p.reopen, None, "reopen"),
            "pending": self._action("Mark as pending", p.mark_pending, None, "pending"),
            "feedback": self._action("Add to feedback card…", p.add_to_card, "feedback",
                                     "card"),
            "forward": self._action("Forward…", p.forward, None, "send"),
            "merge": self._action("Merge into…", p.merge_into, None, "card"),
            "compose": self._action("New conversation…", self.new_conversation, "compose",
                                    "note"),
            "note": self._action("Internal note", p.focus_note, "note", "note"),
            "assign": self._action("Assign…", p.assign, "assign", "assign"),
            "snooze": self._action("Snooze…", p.snooze, "snooze", "snooze"),
            "tag": self._action("Tags…", p.edit_tags, "tag", "tag"),
            "spam": self._action("Mark as spam…", p.mark_spam, "spam", "spam"),
        }
        for name, action in self.ticket_actions.items():
            t.addAction(action)
            if name in ("release", "pending", "feedback", "compose"):
                t.addSeparator()
        self.next_action = self._action("Next ticket", lambda: self.column.move(1), None, None,
                                        [QKeySequence("J")])
        self.prev_action = self._action("Previous ticket", lambda: self.column.move(-1), None,
                                        None, [QKeySequence("K")])
        self.search_action = self._action("Search", self.focus_search, "search", "search")

        v = mb.addMenu("&View")
        for i, (key, label, icon_name) in enumerate(VIEWS):
            a = self._action(label, lambda k=key: self.sidebar.select(k), None, icon_name,
                             [QKeySequence(view_shortcut(i))])
            v.addAction(a)
        v.addSeparator()
        v.addAction(self.column.vip_action)
        v.addAction(self.search_action)
        v.addAction(self.next_action)
        v.addAction(self.prev_action)
        self.customer_action = self._action("Customer panel", p.toggle_customer_panel,
                                            "customer", "panel")
        v.addAction(self.customer_action)
        v.addSeparator()
        v.addAction(self._action("Feedback board", self.open_board, None, "board"))
        v.addAction(self._action("Service dashboard", self.open_dashboard, None, "chart"))
        v.addSeparator()
        v.addAction(self._action("Duty rota…", self.open_rota))
        v.addAction(self._action("Approvals…", self.open_approvals))
        v.addAction(self._action("What customers are telling us…", self.open_digest))

        h = mb.addMenu("H&elp")
        # '?' is Shift+/ on many layouts: the shortcut covers platforms whose key mapper
        # offers the unshifted form, keyPressEvent the rest.
        self.help_action = self._action("Keyboard shortcuts", self.show_help, "help",
                                        "keyboard")
        h.addAction(self.help_action)
        h.addAction(self._action("About Help desk", self._about))

    # --- other windows -----------------------------------------------------------------

    def new_conversation(self) -> None:
        """Write to a customer first: the message becomes a ticket claimed by you."""
        from ui.compose_dialog import ComposeDialog

        dialog = ComposeDialog.new_conversation(self.service, self.pane)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def sent(result: dict[str, Any]) -> None:
            tid = str(result.get("ticket") or "")
            kind = "error" if result.get("state") == "failed" else "ok"
            self.pane.notify(f"{result.get('message') or ''} New ticket #{tid}.", kind,
                             key=f"compose:{tid}")

        dialog.sent.connect(sent)
        dialog.show()

    def show_help(self) -> None:
        sheet = HelpSheet(self)
        sheet.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        sheet.open()

    def open_board(self) -> None:
        try:
            from ui.board import BoardWindow
        except ImportError:
            self.notify("The feedback board is not available yet.", "info")
            return
        if self._board is None or not shiboken6.isValid(self._board):
            self._board = BoardWindow(self.service, self)
            if hasattr(self._board, "openTicket"):
                self._board.openTicket.connect(self._open_from_elsewhere)
        self._raise(self._board)

    def open_dashboard(self) -> None:
        try:
            from ui.dashboard import DashboardWindow
        except ImportError:
            self.notify("The service dashboard is not available yet.", "info")
            return
        if self._dashboard is None or not shiboken6.isValid(self._dashboard):
            self._dashboard = DashboardWindow(self.service, self)
        self._raise(self._dashboard)

    def open_rota(self) -> None:
        from ui.rota_dialog import RotaDialog

        dialog = RotaDialog(self.service, self)  # type: ignore[attr-defined]
        dialog.changed.connect(self.duty.refresh)  # type: ignore[attr-defined]
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._rota_dialog = dialog
        dialog.open()

    def open_approvals(self) -> None:
        from ui.rota_dialog import ApprovalsDialog

        dialog = ApprovalsDialog(self.service, self)  # type: ignore[attr-defined]
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._approvals_dialog = dialog
        dialog.open()

    def open_digest(self) -> None:
        from ui.rota_dialog import DigestDialog

        dialog = DigestDialog(self.service, self)  # type: ignore[attr-defined]
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._digest_dialog = dialog
        dialog.open()

    @staticmethod
    def _raise(window: QWidget) -> None:
        window.show()
        window.raise_()
        window.activateWindow()

    def _open_from_elsewhere(self, tid: str) -> None:
        self._raise(self)
        if self.model.row_of(tid) < 0 and self.view != "all":
            self.sidebar.select("all")
        self.open_ticket(tid)

    def open_signatures(self) -> None:
        from ui.compose_dialog import SignatureDialog

        dialog = SignatureDialog(self.service, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.saved.connect(lambda: self.notify("Signatures saved for the team.", "ok"))
        dialog.open()

    def open_settings(self) -> None:
        from ui.setup_dialog import SetupDialog

        dialog = SetupDialog(profile=self.desk.profile, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.saved.connect(lambda _p: self.notify(
            "Settings saved. Restart the app to connect with them.", "ok"))
        # A new sign-in works at once: the next connection takes its token.
        dialog.signed_in.connect(lambda _side, ok, _m: self.sync_now() if ok else None)
        dialog.open()

    def _about(self) -> None:
        QMessageBox.about(self, "About Help desk",
                          "<b>Help desk</b><br>A shared support mailbox for small teams.<br>"
                          "Coordination happens through your IMAP server; no extra server.")
