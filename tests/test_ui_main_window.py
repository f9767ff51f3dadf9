"""The main window on a real store: list, counts, search, conversation, keyboard, panel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QPushButton
from pytestqt.qtbot import QtBot
from test_ui_support import *  # noqa: F403 (fixtures: app, filled_dovecot)
from test_ui_support import PNG, App, ticket_with_subject

from helpdesk.mail.push import LoopStatus
from ui.help_sheet import HelpSheet
from ui.models import COUNT_ROLE
from ui.ticket_pane import CaredDialog


def test_window_opens_with_counts_list_and_conversation(app: App, qtbot: QtBot) -> None:
    w = app.window
    desk = app.desk
    counts = desk.status()["counts"]
    qtbot.waitUntil(lambda: w.views_model.count("all") == counts["all"], timeout=10_000)
    for key, n in counts.items():
        row = w.views_model.row_of(key)
        if row >= 0:
            assert w.views_model.data(w.views_model.index(row), COUNT_ROLE) == n
    assert w.view == "unclaimed"
    assert w.model.ids == desk.ticket_ids("unclaimed")
    # The first ticket opens by itself, messages in order.
    tid = w.model.ids[0]
    qtbot.waitUntil(lambda: w.pane.conversation.ticket_id == tid, timeout=10_000)
    data = desk.ticket(tid)
    cards = w.pane.conversation.cards
    assert [c.pk for c in cards] == [m["id"] for m in data["messages"]]
    assert w.pane.header.subject.text() == data["subject"]
    assert w.pane.banner.state == "unclaimed"
    assert "Claim (C)" in w.pane.banner.button.text()
    qtbot.waitUntil(lambda: w.pane.customer.email == data["customer"]
                    and w.pane.customer.data is not None, timeout=10_000)
    assert w.pane.customer.address.full_text() == data["customer"]


def test_search_filters_as_you_type_in_sql(app: App, qtbot: QtBot) -> None:
    w = app.window
    app.select_view("all")
    everything = list(w.model.ids)
    qtbot.keyClicks(w.column.search, "contract")
    qtbot.waitUntil(lambda: w.model.ids == app.desk.ticket_ids("all", "contract"),
                    timeout=10_000)
    assert 0 < len(w.model.ids) < len(everything)
    w.column.search.clear()
    qtbot.waitUntil(lambda: w.model.ids == everything, timeout=10_000)
    qtbot.keyClicks(w.column.search, "zzzznothing")
    qtbot.waitUntil(lambda: w.model.rowCount() == 0 and w.column.empty.isVisible(),
                    timeout=10_000)
    assert "zzzznothing" in w.column.empty.text()


def test_keyboard_moves_claims_searches_and_closes(app: App, qtbot: QtBot) -> None:
    w = app.window
    with qtbot.waitActive(w):
        w.activateWindow()
    w.column.list.setFocus()
    first = w.model.ids[0]
    qtbot.waitUntil(lambda: w.pane.ticket_id == first, timeout=10_000)
    qtbot.keyClick(w.column.list, Qt.Key.Key_J)
    qtbot.waitUntil(lambda: w.pane.ticket_id == w.model.ids[1], timeout=10_000)
    qtbot.keyClick(w.column.list, Qt.Key.Key_K)
    qtbot.waitUntil(lambda: w.pane.ticket_id == first, timeout=10_000)
    qtbot.waitUntil(lambda: w.pane.conversation.ticket_id == first and bool(w.pane.row))

    # / goes to the search box, Esc comes back to the list.
    qtbot.keyClick(w.column.list, Qt.Key.Key_Slash)
    assert w.focusWidget() is w.column.search
    qtbot.keyClicks(w.column.search, "c")  # typed letters do not trigger shortcuts
    assert w.column.search.text() == "c"
    qtbot.keyClick(w.column.search, Qt.Key.Key_Escape)
    assert w.column.search.text() == "" and w.focusWidget() is w.column.list
    qtbot.waitUntil(lambda: w.model.rowCount() > 1 and w.pane.ticket_id == first)

    # C claims: the banner says so once the team log confirms it.
    qtbot.keyClick(w.column.list, Qt.Key.Key_C)
    qtbot.waitUntil(lambda: w.pane.banner.state == "mine", timeout=10_000)
    assert w.pane.banner.label.text() == "You are handling this"
    assert app.desk.holder(first).agent == "agent-a"
    qtbot.waitUntil(lambda: w.views_model.count("mine") == 1, timeout=10_000)

    # E asks whether the customer felt cared for, then closes.
    qtbot.keyClick(w.column.list, Qt.Key.Key_E)
    dialog = _wait_for(qtbot, CaredDialog)
    qtbot.mouseClick(dialog.yes_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: app.desk.ticket_rows([first])[first]["status"] == "closed",
                    timeout=10_000)
    qtbot.waitUntil(lambda: w.pane.banner.state == "closed", timeout=10_000)
    with qtbot.waitActive(w):
        w.activateWindow()

    # ? shows the shortcuts; Ctrl+2 switches to Mine; I hides the customer panel.
    qtbot.keyClicks(w.column.list, "?")
    sheet = _wait_for(qtbot, HelpSheet)
    assert "Claim the ticket" in " ".join(lbl.text() for lbl in sheet.findChildren(
        type(w.pane.header.subject)))
    sheet.close()
    qtbot.keyClick(w.column.list, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: w.view == "mine")
    assert w.pane.customer.isVisible()
    qtbot.keyClick(w.column.list, Qt.Key.Key_I)
    assert not w.pane.customer.isVisible()
    assert "(C)" in w.ticket_actions["claim"].toolTip()


def test_customer_panel_edits_reach_the_team_state(app: App, qtbot: QtBot) -> None:
    w = app.window
    tid = ticket_with_subject(app.desk, "Contract attached")
    app.open(tid)
    panel = w.pane.customer
    qtbot.waitUntil(lambda: panel.email == "vera@bigclient.example" and panel.data is not None,
                    timeout=10_000)
    panel.tier.setCurrentText("Platinum")
    panel.vip.setChecked(True)
    qtbot.waitUntil(lambda: app.desk.customer("vera@bigclient.example")["vip"], timeout=10_000)
    assert app.desk.customer("vera@bigclient.example")["vip_tier"] == "Platinum"
    # The list row picks up the VIP mark without a manual refresh.
    qtbot.waitUntil(lambda: (w.model.cached(tid) or {}).get("vip") == 1
                    if w.model.row_of(tid) >= 0 else True, timeout=10_000)
    qtbot.waitUntil(lambda: w.views_model.count("vip") == 1, timeout=10_000)

    panel.preferred.setText("Vee")
    panel.preferred.editingFinished.emit()
    panel.birthday.setText("not a date")
    panel.birthday.editingFinished.emit()
    assert "1980-04-23" in panel.field_error.text()
    qtbot.waitUntil(lambda: app.desk.customer("vera@bigclient.example")["preferred_name"]
                    == "Vee", timeout=10_000)

    panel.new_note.setPlainText("Prefers calls after 3 pm.")
    qtbot.mouseClick(panel.add_note, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any("after 3 pm" in n["text"] for n in
                                app.desk.customer("vera@bigclient.example")["notes"]),
                    timeout=10_000)
    qtbot.waitUntil(lambda: len(_note_cards(panel)) == 1, timeout=10_000)
    card = _note_cards(panel)[0]
    qtbot.mouseClick(card.button, Qt.MouseButton.LeftButton)  # arms
    assert app.desk.customer("vera@bigclient.example")["notes"]
    qtbot.mouseClick(card.button, Qt.MouseButton.LeftButton)  # removes
    qtbot.waitUntil(lambda: not app.desk.customer("vera@bigclient.example")["notes"],
                    timeout=10_000)
    qtbot.waitUntil(lambda: not _note_cards(panel), timeout=10_000)


def test_conversation_attachments_inline_images_and_remote_content(
        app: App, qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = app.window
    news = ticket_with_subject(app.desk, "Newsletter with pictures")
    app.open(news)
    card = w.pane.conversation.cards[0]
    assert card.view is not None
    # Remote images are blocked until asked for; the cid: image comes from the message.
    assert card.view.remote_blocked == 2
    qtbot.waitUntil(card.remote_bar.isVisible)  # cards show on the next event-loop turn
    assert "2 remote images blocked" in card.remote_label.text()
    qtbot.waitUntil(lambda: card.inline_images != {}, timeout=10_000)
    assert list(card.inline_images.values()) == [PNG]
    assert not any(u.startswith("http") for u in card.view.requested_urls)

    contract = ticket_with_subject(app.desk, "Contract attached")
    app.open(contract)
    card = w.pane.conversation.cards[0]
    buttons = [b for b in card.attachments.findChildren(QPushButton)]
    assert len(buttons) == 1 and "contract.pdf" in buttons[0].text()
    target = tmp_path / "saved.pdf"
    monkeypatch.setattr("ui.conversation.QFileDialog.getSaveFileName",
                        lambda *a, **k: (str(target), ""))
    qtbot.mouseClick(buttons[0], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(target.exists, timeout=10_000)
    assert target.read_bytes() == b"%PDF-1.4 contract bytes"
    qtbot.waitUntil(lambda: any("saved.pdf" in t for _k, t in w.message_bar.history))


def test_status_bar_reports_offline_in_plain_words(app: App, qtbot: QtBot) -> None:
    w = app.window
    w.on_sync_status(LoopStatus(ok=False, message="The IMAP server x:1 did not answer in time. "
                                "You may be offline.", retry_in=20))
    assert "Offline, retrying in 20 s" in w.sync_label.text() or \
        "Offline, retrying in 19 s" in w.sync_label.text()
    assert any("did not answer" in t for t in w.message_bar.texts())
    w.on_sync_status(LoopStatus(ok=True))
    assert w.sync_label.text().startswith("Synced")
    assert not any("did not answer" in t for t in w.message_bar.texts())


def _wait_for(qtbot: QtBot, kind: type) -> Any:
    found: list[Any] = []

    def seen() -> bool:
        found[:] = [x for x in QApplication.topLevelWidgets()
                    if isinstance(x, kind) and x.isVisible()]
        return bool(found)

    qtbot.waitUntil(seen, timeout=5_000)
    return found[0]


def _note_cards(panel: Any) -> list[Any]:
    from ui.customer_panel import NoteCard
    return [c for c in panel.findChildren(NoteCard) if c.isVisible()]



def test_a_new_query_paints_a_first_page_then_appends_the_rest(
        qtbot: QtBot, filled_dovecot: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The first rows come before the full list."""
    from helpers import make_profile

    from helpdesk.desk import Desk

    monkeypatch.setattr("ui.main_window.FIRST_PAGE", 3)
    desk = Desk(make_profile(filled_dovecot, tmp_path))
    desk.sync_once()
    a = App(qtbot, desk)
    try:
        w = a.window
        full = desk.ticket_ids("all")
        qtbot.waitUntil(lambda: w.model.ids == desk.ticket_ids("unclaimed"), timeout=10_000)
        sizes: list[int] = []
        w.list_applied.connect(lambda _s: sizes.append(w.model.rowCount()))
        resets: list[int] = []
        w.model.modelReset.connect(lambda: resets.append(1))
        w.sidebar.select("all")
        qtbot.waitUntil(lambda: len(sizes) == 2, timeout=10_000)
        assert sizes == [3, len(full)] and w.model.ids == full
        assert len(resets) == 1  # the rest was appended, not reset
        # A refresh of the same query does not shrink the list to a page again.
        sizes.clear()
        w.refresh_list()
        qtbot.waitUntil(lambda: bool(sizes), timeout=10_000)
        assert sizes == [len(full)]
    finally:
        a.stop()


def test_lists_and_tickets_open_while_an_intent_holds_the_worker(app: App, qtbot: QtBot) -> None:
    """Reads go to their own worker: a slow intent (a claim over a slow network, say)
    does not hold up switching views or opening a ticket."""
    import threading

    release = threading.Event()
    started = threading.Event()

    def slow_intent(_desk: Any) -> None:
        started.set()
        release.wait(20)

    app.service.run(slow_intent)
    try:
        qtbot.waitUntil(started.is_set, timeout=5000)
        app.select_view("all")  # waits for the list to be applied
        tid = app.window.model.id_at(0)
        assert tid
        app.open(tid)  # conversation and row loaded
        assert not release.is_set()  # ...while the intent still held the serial worker
    finally:
        release.set()
    app.settle()
