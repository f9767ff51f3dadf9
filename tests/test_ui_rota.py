"""The rota in the window: "On duty today" in the sidebar, Take this day, approvals, digest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import make_profile
from pytestqt.qtbot import QtBot
from test_rota import mail
from test_ui_support import App, synced_desk

from helpdesk.clock import utcnow
from helpdesk.desk import Desk
from ui.rota_dialog import ApprovalsDialog, DigestDialog, RotaDialog


def test_on_duty_in_the_sidebar_and_take_this_day_in_one_click(
        qtbot: QtBot, dovecot: Any, tmp_path: Path) -> None:
    dovecot.append("INBOX", mail("zoe@customer.example", "Hello", "Hi"))
    other = synced_desk(dovecot, tmp_path, "<b>lee</b>")
    other.rota.set_rota(["<b>lee</b>", "agent-a"], weekdays="mon-sun")
    app = App(qtbot, synced_desk(dovecot, tmp_path, "agent-a"))
    try:
        duty = app.window.duty
        qtbot.waitUntil(lambda: duty.isVisible() and "On duty today: <b>lee</b>" in duty.text(),
                        timeout=10_000)
        assert duty.textFormat().name == "PlainText"
        dialog = RotaDialog(app.service, app.window)
        qtbot.addWidget(dialog)
        qtbot.waitUntil(lambda: len(dialog.take_buttons) == 14, timeout=10_000)
        today = other.rota.show()["today"]["date"]
        button = dialog.take_buttons[today]
        assert button.isEnabled()
        button.click()
        qtbot.waitUntil(lambda: "You are on duty" in dialog.status.text(), timeout=10_000)
        other.sync_once()
        assert other.rota.show()["today"]["agent"] == "agent-a"
        assert other.rota.show()["today"]["swapped"] is True
        qtbot.waitUntil(lambda: "On duty today: agent-a" in duty.text(), timeout=10_000)
        dialog.close()
    finally:
        app.stop()
        other.close()


def test_approve_a_newcomer_s_reply_in_one_click(qtbot: QtBot, dovecot: Any,
                                                 smtp_sink: Any, tmp_path: Path) -> None:
    dovecot.append("INBOX", mail("zoe@customer.example", "Export broken", "It fails."))
    nia = Desk(make_profile(dovecot, tmp_path, "nia", smtp=smtp_sink))
    nia.sync_once()
    app = App(qtbot, synced_desk(dovecot, tmp_path, "agent-a", smtp=smtp_sink))
    try:
        done: list[Any] = []
        app.service.run(lambda d: d.rota.set_learning("nia", "2099-01-01"),
                        on_done=done.append)
        qtbot.waitUntil(lambda: bool(done), timeout=10_000)
        nia.sync_once()
        tid = nia.tickets("all")[0]["id"]
        result = nia.reply(tid, "<script>alert(1)</script> Try again please.")
        assert result["state"] == "held" and "Waiting for approval" in result["message"]
        dialog = ApprovalsDialog(app.service, app.window)
        qtbot.addWidget(dialog)
        qtbot.waitUntil(lambda: len(dialog.approve_buttons) == 1, timeout=10_000)
        (button,) = dialog.approve_buttons.values()
        button.click()
        qtbot.waitUntil(lambda: "Approved nia's reply" in dialog.status.text(),
                        timeout=10_000)
        assert smtp_sink.messages == []
        nia.sync_once()
        smtp_sink.wait_for(1)
        nia.sync_once()
        assert len(smtp_sink.messages) == 1
        dialog.close()
    finally:
        app.stop()
        nia.close()


def test_digest_view_shows_last_week_in_plain_text(qtbot: QtBot, dovecot: Any,
                                                  tmp_path: Path) -> None:
    from datetime import UTC

    from test_rota import last_week_noon
    at = last_week_noon()
    dovecot.append("INBOX", mail("zoe@customer.example", "Export broken",
                                 "<b>bold</b> words from the customer", at=at),
                   date=at.replace(tzinfo=UTC))
    app = App(qtbot, synced_desk(dovecot, tmp_path, "agent-a"))
    try:
        dialog = DigestDialog(app.service, app.window)
        qtbot.addWidget(dialog)
        qtbot.waitUntil(lambda: "What customers are telling us" in dialog.text.toPlainText(),
                        timeout=10_000)
        assert "> <b>bold</b> words from the customer" in dialog.text.toPlainText()
        assert utcnow() is not None
        dialog.close()
    finally:
        app.stop()


def test_the_person_on_duty_hears_of_new_tickets(qtbot: QtBot, dovecot: Any,
                                                 tmp_path: Path) -> None:
    """Without a rota (and without notify_unclaimed) a new ticket notifies nobody; the
    person on duty is told of it (the decision is helpdesk/rota/notify.py)."""
    dovecot.append("INBOX", mail("old@customer.example", "Old", "old"))
    desk = synced_desk(dovecot, tmp_path, "agent-a")
    desk.rota.set_rota(["agent-a"], weekdays="mon-sun")
    app = App(qtbot, desk)
    try:
        app.service.start_sync()
        qtbot.waitUntil(lambda: app.window.notifier.armed, timeout=10_000)
        loop = app.service._loop
        qtbot.waitUntil(lambda: loop is not None and bool(loop.watchers)
                        and all(w.ready.is_set() for w in loop.watchers), timeout=10_000)
        dovecot.append("INBOX", mail("Nina New <nina@new.example>", "First question", "hi"))
        qtbot.waitUntil(lambda: any(title == "New ticket from Nina New"
                                    for title, _t, _id in app.window.notifier.sent),
                        timeout=15_000)
    finally:
        app.stop()
