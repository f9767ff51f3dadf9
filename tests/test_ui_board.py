"""The feedback board and the card picker with pytest-qt, on a real Dovecot."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile
from PySide6.QtCore import QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QListView, QPushButton
from pytestqt.qtbot import QtBot
from test_feedback import REQUESTS, put_requests, ticket_of

from helpdesk.desk import Desk
from ui.board import BoardWindow
from ui.card_dialogs import CardDialog, MergeDialog, NotifyDialog
from ui.card_picker import CardPicker
from ui.worker import DeskService


@pytest.fixture
def requests_server(dovecot: Any) -> Any:
    return put_requests(dovecot)


@pytest.fixture
def board_desk(requests_server: Any, smtp_sink: Any, tmp_path: Path) -> Iterator[Desk]:
    desk = Desk(make_profile(requests_server, tmp_path, "agent-a", smtp=smtp_sink))
    desk.sync_once()
    yield desk
    desk.close()


@pytest.fixture
def service(board_desk: Desk, qapp: QApplication) -> Iterator[DeskService]:
    svc = DeskService(board_desk)
    yield svc
    svc.stop()


def tickets(desk: Desk) -> dict[str, str]:
    return {r[1].split("@")[0].split(".")[0]: ticket_of(desk, r[1]) for r in REQUESTS}


def seed(desk: Desk) -> dict[str, str]:
    t = tickets(desk)
    return {
        "dark": desk.cards.add(t["liam"], title="Dark mode", quote="the white page is blinding",
                               description="A dark theme; true black for night work."),
        "calendar": desk.cards.create("Calendar integration",
                                      "Google Calendar and Outlook events next to notes"),
        "font": desk.cards.create("Bigger text size", "Enlarge fonts for readability"),
    }


def outbox(desk: Desk) -> list[tuple[str, str]]:
    con = sqlite3.connect(desk.profile.database)
    try:
        return con.execute("SELECT kind, body FROM outbox ORDER BY id").fetchall()
    finally:
        con.close()


def drop_on(view: QListView, source: QListView, row: int) -> None:
    """The events a drag from ``source`` ending over ``view`` delivers to ``view``."""
    mime = source.model().mimeData([source.model().index(row, 0)])
    where = view.viewport().rect().center()
    move = Qt.DropAction.MoveAction
    left, none = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    for event in (QDragEnterEvent(where, move, mime, left, none),
                  QDragMoveEvent(where, move, mime, left, none),
                  QDropEvent(QPointF(where), move, mime, left, none)):
        event.ignore()  # as Qt delivers them: the view accepts what its model takes
        QApplication.sendEvent(view.viewport(), event)


def test_picker_ranks_filters_and_enter_adds(board_desk: Desk, service: DeskService,
                                             qtbot: QtBot, qtmodeltester: Any) -> None:
    ids = seed(board_desk)
    t = tickets(board_desk)
    picker = CardPicker(service, t["tom"], "a black background when working late")
    qtbot.addWidget(picker)
    qtbot.waitUntil(lambda: picker.loaded)
    qtmodeltester.check(picker.model)
    assert picker.titles()[0].startswith("Dark mode")
    with qtbot.waitSignal(picker.added, timeout=20000) as added:
        qtbot.keyClick(picker.input, Qt.Key.Key_Return)
    assert added.args == [ids["dark"]]
    card = board_desk.cards.card(ids["dark"])
    assert [(c["email"], c["quote"]) for c in card["customers"]] == [
        ("liam@chenstudio.example", "the white page is blinding"),
        ("tom.becker@example.org", "a black background when working late")]

    # Filter as you type (typos too); the arrows pick another row; Enter adds to it.
    picker = CardPicker(service, t["nina"])
    qtbot.addWidget(picker)
    qtbot.waitUntil(lambda: picker.loaded)
    qtbot.keyClicks(picker.input, "calender")
    assert picker.titles()[0].startswith("Calendar integration")
    assert picker.titles()[-1] == "Create card “calender”"
    qtbot.keyClick(picker.input, Qt.Key.Key_Down)
    assert picker.list.currentIndex().row() == 1
    qtbot.keyClick(picker.input, Qt.Key.Key_Up)
    with qtbot.waitSignal(picker.added, timeout=20000) as added:
        qtbot.keyClick(picker.input, Qt.Key.Key_Enter)
    assert added.args == [ids["calendar"]]

    # A title no card matches: Enter creates the card with the customer on it.
    picker = CardPicker(service, t["harold"])
    qtbot.addWidget(picker)
    qtbot.waitUntil(lambda: picker.loaded)
    qtbot.keyClicks(picker.input, "Offline mode")
    assert picker.titles() == ["Create card “Offline mode”"]
    with qtbot.waitSignal(picker.added, timeout=20000) as added:
        qtbot.keyClick(picker.input, Qt.Key.Key_Return)
    created = board_desk.cards.card(added.args[0])
    assert created["title"] == "Offline mode"
    assert [c["email"] for c in created["customers"]] == ["harold.finch@example.net"]


def test_board_drag_ship_notify_merge_search(board_desk: Desk, service: DeskService,
                                             qtbot: QtBot, qtmodeltester: Any,
                                             tmp_path: Path) -> None:
    ids = seed(board_desk)
    t = tickets(board_desk)
    board_desk.cards.add(t["aisha"], card_id=ids["dark"])
    night = board_desk.cards.add(t["tom"], title="Night theme")
    board = BoardWindow(service)
    qtbot.addWidget(board)
    board.show()
    qtbot.waitUntil(lambda: len(board.all_cards()) == 4)
    assert list(board.columns) == ["ideas", "known-issues", "next-up", "in-progress",
                                   "shipped"]
    ideas = board.columns["ideas"]
    assert ideas.header.text() == "Ideas  ·  4"
    assert ideas.model.cards[0]["title"] == "Dark mode"
    # Tooltips escape team data (a card text is never markup).
    assert ideas.model.data(ideas.model.index(0), Qt.ItemDataRole.ToolTipRole).endswith(
        "2 customers</p>")
    qtmodeltester.check(ideas.model)

    # Drag "Dark mode" to Next up: on screen at once, then published.
    drop_on(board.columns["next-up"].view, ideas.view, 0)
    assert board.column_of(ids["dark"]) == "next-up"
    assert ideas.header.text() == "Ideas  ·  3"
    assert board.columns["next-up"].header.text() == "Next up  ·  1"
    qtbot.waitUntil(lambda: board_desk.cards.card(ids["dark"])["column"] == "next-up",
                    timeout=20000)
    # Dropping a card on its own column changes nothing.
    drop_on(board.columns["next-up"].view, board.columns["next-up"].view, 0)
    assert board.columns["next-up"].model.rowCount() == 1

    # Shipping offers to tell the customers; the preview can be edited, then it queues.
    board.move_card(ids["dark"], "shipped")
    qtbot.waitUntil(lambda: any("Dark mode" in text and "shipped" in text
                                for text in board.messages.texts()), timeout=20000)
    offer = next(b for b in board.messages.findChildren(QPushButton)
                 if b.text() == "Tell the 2 customers")
    offer.click()
    qtbot.waitUntil(lambda: any(isinstance(d, NotifyDialog) for d in board._dialogs),
                    timeout=20000)
    dialog = next(d for d in board._dialogs if isinstance(d, NotifyDialog))
    assert dialog.send_button.text() == "Queue 2 emails"
    assert dialog.body.toPlainText().startswith("Hi Liam,")
    dialog.edit(1, body="Hi Aisha,\n\nDark mode is out. Thank you!\n")
    dialog.send_button.click()
    qtbot.waitUntil(lambda: len(outbox(board_desk)) == 2, timeout=20000)
    bodies = sorted(body for kind, body in outbox(board_desk) if kind == "notify")
    assert bodies[0] == "Hi Aisha,\n\nDark mode is out. Thank you!\n"
    assert bodies[1].startswith("Hi Liam,")
    qtbot.waitUntil(lambda: (board.card(ids["dark"]) or {}).get("notified") is not None
                    and len(board.card(ids["dark"])["notified"]) == 2, timeout=20000)

    # Merge "Night theme" into "Dark mode": one card, every customer counted once.
    board.ask_merge(night)
    merge = next(d for d in board._dialogs if isinstance(d, MergeDialog))
    merge.filter.setText("dark")
    assert merge.list.item(0).text().startswith("Dark mode")
    merge.merge_button.click()
    qtbot.waitUntil(lambda: board.card(night) is None and board.card(ids["dark"]) is not None
                    and board.card(ids["dark"])["votes"] == 3, timeout=20000)

    # A card's details: every customer with their words and a link to the ticket.
    board.open_card(ids["dark"])
    details = next(d for d in board._dialogs if isinstance(d, CardDialog))
    qtbot.waitUntil(lambda: details.card is not None, timeout=20000)
    shown = details.customers.toPlainText()
    assert "Liam Chen" in shown and "the white page is blinding" in shown
    assert "Tom Becker" in shown and f"ticket #{t['tom']}" in shown
    with qtbot.waitSignal(board.openTicket) as opened:
        details.customers.anchorClicked.emit(QUrl(f"ticket:{t['tom']}"))
    assert opened.args == [t["tom"]]
    details.title.setText("Dark mode (follows the OS)")
    details.title.textEdited.emit(details.title.text())
    details.save_button.click()
    qtbot.waitUntil(lambda: (board.card(ids["dark"]) or {}).get("title")
                    == "Dark mode (follows the OS)", timeout=20000)
    details.reject()

    # Search, sort, rename a column, export.
    board.search.setText("outlook")
    qtbot.waitUntil(lambda: [c["title"] for c in board.all_cards()] ==
                    ["Calendar integration"], timeout=20000)
    board.search.clear()
    board.sort.setCurrentIndex(board.sort.findData("age"))
    qtbot.waitUntil(lambda: [c["title"] for c in board.columns["ideas"].model.cards] ==
                    ["Calendar integration", "Bigger text size"], timeout=20000)
    board.rename_column("ideas", "Wishlist")
    assert board.columns["ideas"].header.text() == "Wishlist  ·  2"
    qtbot.waitUntil(lambda: board_desk.cards.columns()[0]["name"] == "Wishlist", timeout=20000)
    target = tmp_path / "board.md"
    board.export_to("md", str(target))
    qtbot.waitUntil(lambda: any("exported" in text for text in board.messages.texts()),
                    timeout=20000)
    assert "## Wishlist (2)" in target.read_text(encoding="utf-8")


def test_board_follows_a_teammate(board_desk: Desk, service: DeskService, qtbot: QtBot,
                                  requests_server: Any, tmp_path: Path) -> None:
    ids = seed(board_desk)
    board = BoardWindow(service)
    qtbot.addWidget(board)
    qtbot.waitUntil(lambda: len(board.all_cards()) == 3)
    teammate = Desk(make_profile(requests_server, tmp_path, "agent-b"))
    teammate.sync_once()
    teammate.cards.add(tickets(teammate)["aisha"], card_id=ids["calendar"])
    teammate.cards.move(ids["font"], "in-progress")
    teammate.close()
    service.run(lambda desk: desk.sync_once())  # what the push loop does; emits changed
    qtbot.waitUntil(lambda: board.column_of(ids["font"]) == "in-progress"
                    and (board.card(ids["calendar"]) or {}).get("votes") == 1, timeout=20000)
    assert board.columns["in-progress"].header.text() == "In progress  ·  1"
