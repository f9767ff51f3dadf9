"""Notifications: new mail from a VIP customer, and (when asked for) any new unclaimed ticket."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot
from test_ui_support import App, fill, synced_desk


@pytest.fixture
def live(qtbot: QtBot, dovecot: Any, tmp_path: Path) -> Iterator[App]:
    fill(dovecot, 4)
    a = App(qtbot, synced_desk(dovecot, tmp_path, "agent-a", notify_unclaimed=True))
    yield a
    a.stop()


def _mail(sender: str, subject: str) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "support@example.com"
    m["Subject"] = subject
    m["Message-ID"] = make_msgid(domain="example.org")
    m.set_content("Hello again")
    return bytes(m)


def test_vip_mail_and_new_tickets_notify(live: App, qtbot: QtBot, dovecot: Any) -> None:
    app = live
    done: list[Any] = []
    app.service.run(lambda d: d.update_customer("vera@bigclient.example", vip=True,
                                                tier="Gold"), on_done=done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    app.service.start_sync()
    qtbot.waitUntil(lambda: app.window.notifier.armed, timeout=10_000)
    loop = app.service._loop
    qtbot.waitUntil(lambda: loop is not None and bool(loop.watchers)
                    and all(w.ready.is_set() for w in loop.watchers), timeout=10_000)
    assert list(app.window.notifier.sent) == []  # nothing for mail that was already there

    with dovecot.session() as c:
        c.append("INBOX", _mail("Vera Vip <vera@bigclient.example>", "Urgent: contract"))
    qtbot.waitUntil(lambda: any("Vera Vip (Gold)" in title
                                for title, _t, _id in app.window.notifier.sent),
                    timeout=15_000)
    _title, text, tid = app.window.notifier.sent[-1]
    assert text == "Urgent: contract"
    # The list shows the new ticket without a refresh.
    app.select_view("all")
    qtbot.waitUntil(lambda: app.window.model.row_of(tid) >= 0, timeout=10_000)

    with dovecot.session() as c:
        c.append("INBOX", _mail("Nina New <nina@new.example>", "First question"))
    qtbot.waitUntil(lambda: any(title == "New ticket from Nina New"
                                for title, _t, _id in app.window.notifier.sent),
                    timeout=15_000)
    # Without a tray (offscreen), notifications also land in the window's message bar.
    assert any("Nina New" in t for _k, t in app.window.message_bar.history)
