"""Teamwork actions of the ticket pane (a mixin): internal notes, assign, snooze, tags,
spam, and the confirmation before replying to a ticket assigned to someone else.

Each action opens a small dialog (ui/teamwork_dialogs.py) with ``open()`` and runs one
Desk intent on the worker; the pane reloads when the core reports the change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from ui.notes_thread import NoteComposer
from ui.teamwork_dialogs import AssignDialog, SnoozeDialog, SpamDialog, TagDialog
from ui.worker import DeskService


def row_tags(row: dict[str, Any]) -> list[str]:
    value = row.get("tags")
    if isinstance(value, list):
        return [str(t) for t in value]
    try:
        return [str(t) for t in json.loads(value or "[]")]
    except (TypeError, ValueError):
        return []


def teamwork_bits(row: dict[str, Any], me: str) -> list[str]:
    """What the header adds: the assignee, the snooze, the tags (plain text)."""
    from ui import format as fmt

    bits = []
    assignee = row.get("assignee")
    if assignee:
        bits.append("Assigned to you" if assignee == me else f"Assigned to {assignee}")
    until = row.get("snoozed_until")
    if until:
        bits.append(f"Snoozed until {fmt.exact(until) or until}")
    tags = row_tags(row)
    if tags:
        bits.append(" ".join("#" + t for t in tags))
    if row.get("spam"):
        bits.append("Spam")
    return bits


class TicketTeamwork:
    """Mixed into :class:`ui.ticket_pane.TicketPane`."""

    service: DeskService
    ticket_id: str | None
    row: dict[str, Any]
    agent: str
    notify: Callable[..., None]
    note_box: NoteComposer
    _run: Callable[..., None]
    ticket_changed: Any  # Signal(str) of the pane

    def _dialog_parent(self) -> QWidget:
        assert isinstance(self, QWidget)
        return self

    # --- notes ---------------------------------------------------------------------

    def add_note(self, text: str) -> None:
        tid = self.ticket_id
        if tid is None:
            return
        self.note_box.set_busy(True)

        def done(out: dict[str, Any]) -> None:
            if not shiboken6.isValid(self.note_box):
                return
            self.note_box.set_busy(False)
            self.note_box.sent(text)
            self.ticket_changed.emit(tid)  # an intent that returns no Changes
            told = out.get("mentions") or []
            self.notify("Note added" + (f"; {', '.join(told)} will be told." if told else "."),
                        "ok", key=f"note:{tid}")

        def failed(message: str) -> None:
            if shiboken6.isValid(self.note_box):
                self.note_box.set_busy(False)
            self.notify(message, "warn", key=f"note:{tid}")

        self.service.run(lambda d: d.note(tid, text), on_done=done, on_error=failed)

    def focus_note(self) -> None:
        if self.ticket_id is not None:
            self.note_box.editor.setFocus(Qt.FocusReason.ShortcutFocusReason)

    # --- assign, snooze, tags, spam ------------------------------------------------------

    def assign(self) -> None:
        tid = self.ticket_id
        if tid is None:
            return
        current = self.row.get("assignee")

        def show(agents: list[str]) -> None:
            if not shiboken6.isValid(self._dialog_parent()) or tid != self.ticket_id:
                return
            dialog = AssignDialog(agents, current, self._dialog_parent())
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.chosen.connect(lambda agent: self._assign_to(tid, agent))
            dialog.open()

        self.service.read(lambda d: d.agents(), on_done=show, on_error=lambda _m: show([]))

    def _assign_to(self, tid: str, agent: str | None) -> None:
        if agent is None:
            self._run(lambda d: d.unassign(tid), done_text="Assigned to nobody.")
        else:
            self._run(lambda d: d.assign(tid, agent), done_text=f"Assigned to {agent}.")

    def snooze(self) -> None:
        tid = self.ticket_id
        if tid is None:
            return
        dialog = SnoozeDialog(bool(self.row.get("snoozed_until")), self._dialog_parent())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.chosen.connect(lambda seconds, until: self._snooze(tid, seconds, until))
        dialog.unsnooze.connect(lambda: self._run(lambda d: d.unsnooze(tid),
                                                  done_text="Back in the open views."))
        dialog.open()

    def _snooze(self, tid: str, seconds: int | None, until: datetime | None) -> None:
        self._run(lambda d: d.snooze(tid, seconds=seconds, until=until),
                  done_text="Snoozed: it comes back by itself, or when the customer writes.")

    def edit_tags(self) -> None:
        tid = self.ticket_id
        if tid is None:
            return
        current = row_tags(self.row)

        def show(known: dict[str, int]) -> None:
            if not shiboken6.isValid(self._dialog_parent()) or tid != self.ticket_id:
                return
            dialog = TagDialog(current, sorted(known), self._dialog_parent())
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.chosen.connect(lambda add, remove: self._tag(tid, add, remove))
            dialog.open()

        self.service.read(lambda d: d.tag_counts(), on_done=show, on_error=lambda _m: show({}))

    def _tag(self, tid: str, add: list[str], remove: list[str]) -> None:
        if add or remove:
            self._run(lambda d: d.tag(tid, add, remove), done_text="Tags saved.")

    def mark_spam(self) -> None:
        tid = self.ticket_id
        sender = str(self.row.get("customer_email") or "")
        if tid is None or "@" not in sender:
            return
        dialog = SpamDialog(sender, self._dialog_parent())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.chosen.connect(lambda domain: self._run(
            lambda d: d.spam(tid, domain), local_change=True,
            done_text="Marked as spam: later mail goes to the Spam view."))
        dialog.open()

    # --- replying to someone else's ticket ---------------------------------------------

    def confirm_reply(self, then: Callable[[], None]) -> None:
        """A ticket assigned to a teammate: ask before replying (a live claim by someone
        else is the claim banner's business and still blocks the send)."""
        assignee = self.row.get("assignee")
        if not assignee or assignee == self.agent:
            then()
            return
        box = QMessageBox(QMessageBox.Icon.Question, "Reply to this ticket?",
                          f"This ticket is assigned to {assignee}. Reply anyway?",
                          parent=self._dialog_parent())
        box.setObjectName("assignedConfirm")
        box.setTextFormat(Qt.TextFormat.PlainText)
        reply = box.addButton("Reply anyway", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _code: then() if box.clickedButton() is reply else None)
        box.open()
