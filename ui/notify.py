"""Desktop notifications: new mail from VIP customers, optionally any new unclaimed ticket;
with a duty rota, new tickets for the person on duty and the rest for whom they concern
(the decision is the core's: helpdesk/rota/notify.py); a teammate's @mention of you in a
note, a ticket assigned to you. Mail from a blocked sender (the spam view) tells nobody.

The tray is used when the desktop has one; every notification is also kept in
:attr:`Notifier.sent` (and shown in the window's message bar when the tray is
missing), so nothing depends on a tray being there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QSystemTrayIcon, QWidget

from helpdesk.desk import Changes
from helpdesk.rota.notify import Situation, concerns
from ui import format as fmt
from ui import style
from ui.worker import DeskService

BULK = 25  # more new messages than this in one pass is an import, not news


class Notifier(QObject):
    open_ticket = Signal(str)

    def __init__(self, service: DeskService, window: QWidget,
                 fallback: Callable[..., None]) -> None:
        super().__init__(window)
        self.service = service
        self.window = window
        self.fallback = fallback
        self.armed = False  # set after the first successful sync: no flood on start-up
        # (title, text, ticket id), newest last; bounded: the app runs all day.
        self.sent: deque[tuple[str, str, str]] = deque(maxlen=500)
        self._last_ticket: str | None = None
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(style.app_icon(), self)
            self.tray.setToolTip("Help desk")
            self.tray.activated.connect(lambda _r: self._raise())
            self.tray.messageClicked.connect(self._clicked)
            self.tray.show()

    def handle(self, changes: Changes) -> None:
        notify_unclaimed = bool(getattr(self.service.desk.profile, "notify_unclaimed", False))
        if changes.taken_over:
            self._taken_over(list(changes.taken_over))
        if self.armed and (changes.mentioned or changes.assigned):
            self._teamwork(list(changes.mentioned or [])[:BULK],
                           list(changes.assigned or [])[:BULK])
        inbound = changes.new_inbound or []
        if not self.armed or not inbound or changes.new_inbound_count > BULK:
            return
        ids = list(dict.fromkeys(t for t, _s in inbound))
        me = self.service.desk.agent

        def read(d: Any) -> tuple[dict[str, dict[str, Any]], str | None, bool, dict[str, str]]:
            rota, _swaps = d.rota.state()
            handed = d.rota.handoffs()
            return (d.ticket_rows(ids), d.rota.duty().agent, rota is not None,
                    {t: handed[t] for t in ids if t in handed})

        def done(found: tuple[dict[str, dict[str, Any]], str | None, bool, dict[str, str]]
                 ) -> None:
            if not shiboken6.isValid(self):
                return
            rows, on_duty, has_rota, handed = found
            for tid in ids:
                row = rows.get(tid)
                if not row or row.get("spam"):
                    continue
                new = int(row.get("message_count") or 0) <= 1
                situation = Situation(new_ticket=new, vip=bool(row.get("vip")),
                                      holder=row.get("claimed_by") or None,
                                      handed_to=row.get("assignee") or handed.get(tid),
                                      on_duty=on_duty,
                                      rota=has_rota, closed=row.get("status") == "closed")
                # Who hears of what is the core's decision (helpdesk/rota/notify.py).
                if not concerns(me, situation, notify_unclaimed=notify_unclaimed):
                    continue
                who = fmt.display_name(row.get("customer_name"), row.get("customer_email"))
                subject = str(row.get("subject") or "(no subject)")
                if row.get("vip"):
                    tier = row.get("vip_tier") or "VIP"
                    self._show(f"New mail from {who} ({tier})", subject, tid, "info")
                elif new and not row.get("claimed_by"):
                    self._show(f"New ticket from {who}", subject, tid, "info")
                else:
                    self._show(f"New mail from {who}", subject, tid, "info")

        self.service.run(read, on_done=done, on_error=lambda _m: None)

    def _taken_over(self, taken: list[Any]) -> None:
        """"agent-b took over “Invoice missing” (#k7f3q2ab)": the subject says which."""
        ids = [t[0] for t in taken]

        def done(rows: dict[str, dict[str, Any]]) -> None:
            if not shiboken6.isValid(self):
                return
            for ticket, _me, by in taken:
                subject = str((rows.get(ticket) or {}).get("subject") or "(no subject)")
                self._show("Ticket taken over", f"{by} took over “{subject}” (#{ticket}).",
                           ticket, "warn", key=f"takeover:{ticket}")

        def failed(_m: str) -> None:
            done({})

        self.service.read(lambda d: d.ticket_rows(ids), on_done=done, on_error=failed)

    def _teamwork(self, mentioned: list[tuple[str, str]],
                  assigned: list[tuple[str, str]]) -> None:
        """"agent-a mentioned you on “Invoice missing” (#k7f3q2ab)"; likewise assigned."""
        ids = list(dict.fromkeys([t for t, _by in mentioned] + [t for t, _by in assigned]))

        def done(rows: dict[str, dict[str, Any]]) -> None:
            if not shiboken6.isValid(self):
                return
            for ticket, by in mentioned:
                row = rows.get(ticket) or {}
                if row.get("spam"):
                    continue
                subject = str(row.get("subject") or "(no subject)")
                self._show("You were mentioned", f"{by} mentioned you on “{subject}” "
                           f"(#{ticket}).", ticket, "info", key=f"mention:{ticket}")
            for ticket, by in assigned:
                subject = str((rows.get(ticket) or {}).get("subject") or "(no subject)")
                self._show("Ticket assigned to you", f"{by} assigned “{subject}” "
                           f"(#{ticket}) to you.", ticket, "info", key=f"assigned:{ticket}")

        self.service.read(lambda d: d.ticket_rows(ids), on_done=done,
                          on_error=lambda _m: done({}))

    def _show(self, title: str, text: str, ticket: str, kind: str,
              key: str | None = None) -> None:
        self.sent.append((title, text, ticket))
        self._last_ticket = ticket
        if self.tray is not None and self.tray.supportsMessages():
            self.tray.showMessage(title, text, style.app_icon(), 8000)
        if self.tray is None or not self.window.isActiveWindow():
            self.fallback(f"{title}: {text}", kind, key=key)

    def _clicked(self) -> None:
        self._raise()
        if self._last_ticket:
            self.open_ticket.emit(self._last_ticket)

    def _raise(self) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()
