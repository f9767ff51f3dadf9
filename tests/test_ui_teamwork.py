"""Teamwork in the window: the notes thread, the mention notification, the tag sidebar,
the ticket menu's new actions and their shortcuts, the confirmation before replying to a
ticket assigned to someone else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox
from pytestqt.qtbot import QtBot
from test_ui_support import *  # noqa: F403 (fixtures: app, filled_dovecot)
from test_ui_support import App, fill, synced_desk

from ui.help_sheet import SHORTCUTS


def _box(qtbot: QtBot) -> QMessageBox:
    found: list[QMessageBox] = []

    def seen() -> bool:
        found[:] = [w for w in QApplication.topLevelWidgets()
                    if isinstance(w, QMessageBox) and w.isVisible()]
        return bool(found)

    qtbot.waitUntil(seen, timeout=5_000)
    return found[0]


def test_notes_thread_shows_notes_among_the_messages_as_plain_text(
        app: App, qtbot: QtBot, filled_dovecot: Any, tmp_path: Path) -> None:
    from ui.notes_thread import NoteCard

    w = app.window
    tid = app.desk.ticket_ids("all")[0]
    app.open(tid)
    conv = w.pane.conversation
    hostile = "<b>not bold</b> <img src='file:///etc/passwd'> @agent-b please look"
    w.pane.note_box.editor.setPlainText(hostile)
    qtbot.mouseClick(w.pane.note_box.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(conv.notes) == 1, timeout=10_000)
    card = next(iter(conv.notes.values()))
    assert isinstance(card, NoteCard) and card.objectName() == "noteCard"
    assert card.text.text() == hostile and card.text.textFormat() == Qt.TextFormat.PlainText
    assert all(lbl.textFormat() == Qt.TextFormat.PlainText
               for lbl in card.findChildren(QLabel) if lbl.text())
    assert "Internal note by agent-a" in card.badge.text() and "@agent-b" in card.badge.text()
    assert w.pane.note_box.editor.toPlainText() == ""
    # After the ticket's messages (written later), and visibly not one of them.
    layout = conv._layout
    assert layout.indexOf(card) > max(layout.indexOf(c) for c in conv.cards)
    assert card not in conv.cards
    # A teammate's note arrives by sync; the first card is reused, not recreated.
    teammate = synced_desk(filled_dovecot, tmp_path, "agent-b")
    teammate.note(tid, "Second")
    teammate.close()
    app.service.run(lambda d: d.sync_once())
    qtbot.waitUntil(lambda: len(conv.notes) == 2, timeout=10_000)
    assert card in conv.notes.values()
    assert conv.note_texts() == [hostile, "Second"]
    # Notes are never quoted into a reply.
    assert "not bold" not in conv.quote_text()


@pytest.fixture
def two(qtbot: QtBot, dovecot: Any, tmp_path: Path) -> Iterator[tuple[App, App]]:
    fill(dovecot, 8, extra=False)
    a = App(qtbot, synced_desk(dovecot, tmp_path, "agent-a"))
    b = App(qtbot, synced_desk(dovecot, tmp_path, "agent-b"))
    yield a, b
    a.stop()
    b.stop()


def test_mention_and_assignment_notify_the_teammate(two: tuple[App, App],
                                                    qtbot: QtBot) -> None:
    a, b = two
    t1, t2 = a.desk.ticket_ids("all")[:2]
    b.window.notifier.armed = True  # as after B's first successful sync
    a.service.run(lambda d: d.note(t1, "@agent-b can you take this one?"))
    a.service.run(lambda d: d.assign(t2, "agent-b"))
    a.settle()
    b.service.run(lambda d: d.sync_once())
    subject1 = b.desk.ticket_rows([t1])[t1]["subject"]
    qtbot.waitUntil(lambda: any(title == "You were mentioned" and
                                f"agent-a mentioned you on “{subject1}” (#{t1})" in text
                                for title, text, _t in b.window.notifier.sent), timeout=10_000)
    qtbot.waitUntil(lambda: any(title == "Ticket assigned to you" and t2 in text
                                for title, text, _t in b.window.notifier.sent), timeout=10_000)
    assert not any("mentioned" in text for _t, text, _id in a.window.notifier.sent)
    qtbot.waitUntil(lambda: b.window.views_model.count("mentions") == 1
                    and b.window.views_model.count("mine") == 1, timeout=10_000)


def test_tag_sidebar_lists_tags_with_live_counts(app: App, qtbot: QtBot) -> None:
    w = app.window
    t1, t2, t3 = app.desk.ticket_ids("all")[:3]
    assert not w.sidebar.tag_list.isVisible()  # no tags yet: no empty section
    app.service.run(lambda d: d.tag(t1, ["billing", "urgent"]))
    app.service.run(lambda d: d.tag(t2, ["billing"]))
    qtbot.waitUntil(lambda: w.tags_model.count("billing") == 2
                    and w.tags_model.count("urgent") == 1, timeout=10_000)
    assert w.sidebar.tag_list.isVisible()
    assert w.tags_model.tags() == ["billing", "urgent"]
    app.select_view("tag:billing")
    assert w.view == "tag:billing" and w.column.title.text() == "#billing"
    qtbot.waitUntil(lambda: sorted(w.model.ids) == sorted([t1, t2]), timeout=10_000)
    # One view is current: the views list shows nothing selected meanwhile.
    assert not w.sidebar.list.selectionModel().hasSelection()
    app.service.run(lambda d: d.tag(t3, ["billing"]))
    qtbot.waitUntil(lambda: w.tags_model.count("billing") == 3
                    and len(w.model.ids) == 3, timeout=10_000)
    app.service.run(lambda d: d.tag(t1, remove=["urgent"]))
    qtbot.waitUntil(lambda: w.tags_model.tags() == ["billing"], timeout=10_000)
    assert w.view == "tag:billing"  # the picked tag survives the list changing
    app.select_view("all")
    assert not w.sidebar.tag_list.selectionModel().hasSelection()


def test_ticket_menu_actions_have_shortcuts_that_clash_with_nothing(app: App) -> None:
    keys = [k for s in SHORTCUTS for k in s.keys]
    assert len(keys) == len(set(keys)), keys
    actions = app.window.ticket_actions
    for name, key in (("note", "M"), ("assign", "A"), ("snooze", "Z"), ("tag", "T"),
                      ("spam", "!")):
        assert actions[name].shortcut().toString() == key, name
        assert f"({key})" in actions[name].toolTip()
    every = [seq.toString() for a in app.window.actions() for seq in a.shortcuts()]
    assert len(every) == len(set(every)), sorted(every)


def test_replying_to_a_ticket_assigned_to_someone_else_asks_first(app: App,
                                                                  qtbot: QtBot) -> None:
    w = app.window
    tid = app.desk.ticket_ids("all")[0]
    app.service.run(lambda d: d.assign(tid, "agent-b"))
    app.settle()
    app.open(tid)
    qtbot.waitUntil(lambda: w.pane.row.get("assignee") == "agent-b", timeout=10_000)
    assert "Assigned to agent-b" in w.pane.header.meta.text()
    w.pane.reply()
    box = _box(qtbot)
    assert "assigned to agent-b" in box.text()
    box.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.waitUntil(lambda: not box.isVisible(), timeout=5_000)
    assert not w.pane.composer.is_open
    w.pane.reply()
    box = _box(qtbot)
    next(b for b in box.buttons() if b.text() == "Reply anyway").click()
    qtbot.waitUntil(lambda: w.pane.composer.is_open, timeout=5_000)


def test_snooze_and_spam_from_the_ticket_menu(app: App, qtbot: QtBot) -> None:
    from ui.teamwork_dialogs import SnoozeDialog, SpamDialog

    w = app.window
    tid = app.desk.ticket_ids("unclaimed")[0]
    app.open(tid)
    w.ticket_actions["snooze"].trigger()
    dialog = next(d for d in w.pane.findChildren(SnoozeDialog) if d.isVisible())
    dialog.options[0][0].setChecked(True)  # 1 hour
    dialog._ok()
    qtbot.waitUntil(lambda: app.desk.ticket(tid)["snoozed_until"] is not None, timeout=10_000)
    qtbot.waitUntil(lambda: w.model.row_of(tid) == -1
                    and w.views_model.count("snoozed") == 1, timeout=10_000)
    qtbot.waitUntil(lambda: "Snoozed until" in w.pane.header.meta.text(), timeout=10_000)
    w.ticket_actions["spam"].trigger()
    spam = next(d for d in w.pane.findChildren(SpamDialog) if d.isVisible())
    spam._ok()
    qtbot.waitUntil(lambda: app.desk.ticket(tid)["spam"], timeout=10_000)
    qtbot.waitUntil(lambda: w.views_model.count("spam") >= 1, timeout=10_000)


def test_new_mail_from_a_blocked_sender_notifies_nobody(app: App, qtbot: QtBot,
                                                        filled_dovecot: Any) -> None:
    from datetime import UTC, datetime, timedelta

    w = app.window
    w.notifier.armed = True
    app.service.run(lambda d: d.update_customer("vera@bigclient.example", vip=True,
                                                tier="Gold"))
    app.settle()

    seen: list[Any] = []
    app.service.changed.connect(lambda c: seen.append(c) if c.new_inbound else None)

    def vera_writes(n: int) -> None:
        later = datetime.now(UTC) + timedelta(seconds=2 * n)  # after the close, by the server
        with filled_dovecot.session() as c:
            c.append("INBOX", (f"From: Vera Vip <vera@bigclient.example>\r\n"
                               f"Subject: Also this {n}\r\nMessage-ID: <v{n}@bigclient.example>"
                               f"\r\n\r\nOne more thing.\r\n").encode(), msg_time=later)
        seen.clear()
        app.service.run(lambda d: d.sync_once())  # its Changes reach the notifier
        qtbot.waitUntil(lambda: bool(seen), timeout=10_000)  # (the window's slot ran first)
        app.service.wait_idle()  # the notifier's row read is done, its answer posted
        QApplication.processEvents()

    vera_writes(1)  # a VIP's new mail is news ...
    assert any("Vera" in title and "Gold" in title for title, _t, _i in w.notifier.sent)
    w.notifier.sent.clear()
    tid = next(t for t in app.desk.ticket_ids("all")
               if app.desk.ticket_rows([t])[t]["customer_email"] == "vera@bigclient.example")
    app.service.run(lambda d: d.spam(tid))
    app.settle()
    vera_writes(2)  # ... until she is blocked: her mail goes to Spam, quietly
    assert [t["customer"] for t in app.desk.tickets("spam")].count("vera@bigclient.example") >= 2
    assert list(w.notifier.sent) == []
