"""A long thread folds its middle: the first message, "N earlier messages", the last few.

Why: PySide (6.10.3 and 6.11.3 alike) keeps about 7-16 references to ``None`` for each
widget made and shown, and a message card is some twenty widgets. The card pool
(ui/pool.py) grows to the longest thread shown, and a ticket answered all day grows
without bound (bench/soak.py, 8 minutes: None +295/min in the second half, 49 widgets
made there). A folded thread shows a bounded number of cards however long it is; the
person can unfold it, and it stays unfolded while that ticket stays open.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QApplication, QPushButton
from pytestqt.qtbot import QtBot
from test_ui_support import App, NoneRise, synced_desk, ticket_with_subject, widgets_made

from ui.conversation import ConversationView, MessageCard, shown_messages

CUSTOMER = "Lena Long <lena@customers.example>"
SUPPORT = "Support <support@example.com>"   # filed in Sent: our replies


def _customer_then_support(i: int) -> str:
    return CUSTOMER if i % 2 == 0 else SUPPORT


def _answered_many_times(i: int) -> str:
    return CUSTOMER if i < 5 else SUPPORT


def _all_customer(_i: int) -> str:
    return CUSTOMER


# (subject, tag, messages, who wrote message i, {message index: attachment names})
THREADS: list[tuple[str, str, int, Callable[[int], str], dict[int, list[str]]]] = [
    ("Long thread of forty", "long", 40, _customer_then_support, {5: ["middle.pdf"]}),
    ("Answered many times", "answered", 12, _answered_many_times, {}),
    ("Short thread", "short", 2, _all_customer, {}),
    ("Growing thread", "growing", 3, _all_customer, {}),
]
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def body_of(tag: str, i: int) -> str:
    return f"{tag} message number {i}, words {tag}{i}x"


def message(t: int, i: int) -> bytes:
    subject, tag, _n, who, files = THREADS[t]
    m = EmailMessage()
    m["Subject"] = subject if i == 0 else f"Re: {subject}"
    m["From"] = who(i)
    m["To"] = "support@example.com"
    m["Date"] = format_datetime(START + timedelta(hours=t, minutes=i))
    root = f"<{tag}-0@customers.example>"
    m["Message-ID"] = f"<{tag}-{i}@customers.example>"
    if i:
        m["References"] = root
        m["In-Reply-To"] = root
    m.set_content(body_of(tag, i) + "\n")
    for name in files.get(i, []):
        m.add_attachment(f"bytes of {name}".encode(), maintype="application",
                         subtype="octet-stream", filename=name)
    return bytes(m)


@pytest.fixture
def fold_app(qtbot: QtBot, dovecot: Any, tmp_path: Path) -> Iterator[App]:
    with dovecot.session() as c:
        for t, (_s, _tag, n, _w, _f) in enumerate(THREADS):
            for i in range(n):
                c.append("Sent" if THREADS[t][3](i) == SUPPORT else "INBOX", message(t, i))
    a = App(qtbot, synced_desk(dovecot, tmp_path))
    a.select_view("all")
    yield a
    a.stop()


def index_of(card: MessageCard) -> int:
    """Which message of its thread a card shows (from its Message-ID)."""
    return int(str(card.msg["message_id"]).split("-")[-1].split("@")[0])


def shown_cards(conv: ConversationView) -> list[MessageCard]:
    cards = [c for c in conv.widget().findChildren(MessageCard) if c.isVisibleTo(conv)]
    return sorted(cards, key=lambda c: conv._layout.indexOf(c))


def shown_folds(conv: ConversationView) -> list[QPushButton]:
    folds = [b for b in conv.widget().findChildren(QPushButton, "foldButton")
             if b.isVisibleTo(conv)]
    return sorted(folds, key=lambda b: conv._layout.indexOf(b))


def open_thread(app: App, t: int) -> str:
    tid = ticket_with_subject(app.desk, THREADS[t][0])
    app.open(tid)
    return tid


def test_which_messages_a_thread_shows_before_it_is_unfolded() -> None:
    def thread(directions: str) -> list[dict[str, Any]]:
        return [{"direction": "in" if c == "i" else "out"} for c in directions]

    assert shown_messages(thread("")) == []
    assert shown_messages(thread("i" * 6)) == list(range(6))
    assert shown_messages(thread("i" * 7)) == [0, 4, 5, 6]
    assert shown_messages(thread("o" * 10)) == [0, 7, 8, 9]  # no customer message at all
    # The customer's latest stays shown, between two folds.
    assert shown_messages(thread("iiiiiooooooo")) == [0, 4, 9, 10, 11]
    # A fold would hold one message: that message shows instead.
    assert shown_messages(thread("iiiooooo")) == [0, 1, 2, 5, 6, 7]
    assert shown_messages(thread("ioooooo")) == [0, 4, 5, 6]


def test_a_long_thread_folds_its_middle_and_unfolds_for_that_ticket(
        fold_app: App, qtbot: QtBot, dovecot: Any) -> None:
    app = fold_app
    pane = app.window.pane
    conv = pane.conversation
    open_thread(app, 0)
    # The first message, one control for the 36 in between, the last three.
    assert [index_of(c) for c in shown_cards(conv)] == [0, 37, 38, 39]
    assert conv.cards == shown_cards(conv)
    assert len(conv._cards) <= 5, f"{len(conv._cards)} cards made for a folded thread"
    (fold,) = shown_folds(conv)
    assert fold.text() == "36 earlier messages"
    assert fold.focusPolicy() & Qt.FocusPolicy.TabFocus  # reachable by keyboard
    layout = conv._layout
    first, after = conv.cards[0], conv.cards[1]
    assert layout.indexOf(first) < layout.indexOf(fold) < layout.indexOf(after)
    assert conv.quote_text() == body_of("long", 38)

    # Space on the focused control shows every message of this ticket, in order.
    fold.setFocus()
    qtbot.keyClick(fold, Qt.Key.Key_Space)
    assert [index_of(c) for c in shown_cards(conv)] == list(range(40))
    assert conv.cards == shown_cards(conv)
    assert shown_folds(conv) == []
    middle = conv.cards[5]
    middle.set_expanded(True)
    assert middle.attachments is not None
    names = [b.text().split("  ·  ")[0] for b in middle.attachments.findChildren(QPushButton)
             if b.isVisibleTo(middle)]
    assert names == ["middle.pdf"]

    # A refresh of the same ticket keeps it unfolded; so does a new message.
    with qtbot.waitSignal(pane.loaded, timeout=10_000):
        pane.reload(full=True)
    assert [index_of(c) for c in shown_cards(conv)] == list(range(40))
    with dovecot.session() as c:
        c.append("INBOX", _extra_long_message(40))
    app.service.run(lambda d: d.sync_once())
    qtbot.waitUntil(lambda: len(shown_cards(conv)) == 41, timeout=10_000)
    assert [index_of(c) for c in shown_cards(conv)] == list(range(41))
    assert shown_folds(conv) == []

    # Another ticket folds again (this one is short: nothing to fold), and so does
    # this one when it is opened again.
    open_thread(app, 2)
    assert [index_of(c) for c in shown_cards(conv)] == [0, 1] and shown_folds(conv) == []
    open_thread(app, 0)
    assert [index_of(c) for c in shown_cards(conv)] == [0, 38, 39, 40]
    assert [b.text() for b in shown_folds(conv)] == ["37 earlier messages"]


def _extra_long_message(i: int) -> bytes:
    return message(0, i)


def test_the_customer_message_being_answered_stays_shown_among_the_folds(
        fold_app: App, qtbot: QtBot) -> None:
    """Five customer messages, then seven of ours: the customer's last one (the one a
    reply answers and quotes) stays shown between two folds."""
    app = fold_app
    conv = app.window.pane.conversation
    open_thread(app, 1)
    cards = shown_cards(conv)
    assert [index_of(c) for c in cards] == [0, 4, 9, 10, 11]
    folds = shown_folds(conv)
    assert [b.text() for b in folds] == ["3 earlier messages", "4 earlier messages"]
    layout = conv._layout
    places = [layout.indexOf(w) for w in (cards[0], folds[0], cards[1], folds[1], cards[2])]
    assert places == sorted(places)
    assert conv.quote_text() == body_of("answered", 4)
    conv.show_latest_incoming()
    assert cards[1].expanded and cards[1].view is not None
    assert body_of("answered", 4) in cards[1].view.toPlainText()
    qtbot.mouseClick(folds[1], Qt.MouseButton.LeftButton)
    assert [index_of(c) for c in shown_cards(conv)] == list(range(12))
    assert shown_folds(conv) == []


def _settle(app: App) -> None:
    """Let the worker finish and the event loop drain (cards show on its next turn).

    Not qtbot.wait: it makes a QEventLoop and a QTimer per call, and each object
    PySide makes keeps references to None too; this test counts them."""
    for _ in range(3):
        app.service.wait_idle()
        QApplication.processEvents()
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def test_a_thread_growing_by_one_message_per_refresh_makes_no_new_widgets(
        fold_app: App) -> None:
    """A ticket answered all day: each refresh shows one message more. After warm-up
    no card (nor any widget) is made and None's refcount stays where it was."""
    app = fold_app
    tid = ticket_with_subject(app.desk, THREADS[3][0])
    app.desk.note(tid, "Called her back, see the last message")
    ticket = app.desk.ticket(tid)
    # Its messages as the store gives them, repeated into a thread of 100 (made before
    # the counting starts: the count is the view's, not the test's).
    stored = ticket["messages"]
    thread = [{**stored[i % len(stored)], "id": 1_000_000 + i,
               "message_id": f"<growing-{i}@customers.example>",
               "text": body_of("growing", i)} for i in range(100)]
    note = next(t for t in ticket["timeline"] if t["kind"] == "note")
    timelines = [[*({"kind": "message", "id": m["id"]} for m in thread[:n]), note]
                 for n in range(101)]
    conv = app.window.pane.conversation
    open_thread(app, 2)  # the view starts from a short ticket

    def refresh(n: int) -> None:
        """What a refresh after the n-th message arrived shows (as ticket_pane does)."""
        data = {**ticket, "messages": thread[:n], "message_count": n,
                "timeline": timelines[n]}
        conv.show_ticket(data, keep_scroll=True)
        conv.show_notes(data)
        _settle(app)

    for n in range(8, 20):  # warm-up: the pool grows to a folded thread's cards once
        refresh(n)
    gc.collect()
    made = conv._cards.made
    alive = len(QApplication.allWidgets())
    with NoneRise() as nones:
        for n in range(20, 90):
            refresh(n)
    rise = nones.rise
    figures = (f"over 70 refreshes: {conv._cards.made - made} cards made, "
               f"{len(QApplication.allWidgets()) - alive:+} widgets alive, None {rise:+}")
    assert conv._cards.made == made, figures
    assert len(QApplication.allWidgets()) <= alive, figures
    assert rise < 200, figures

    with widgets_made() as counter:
        for n in range(90, 101):
            refresh(n)
    assert sum(counter.made.values()) == 0, f"widgets made: {counter.made}"
    assert [index_of(c) for c in shown_cards(conv)] == [0, 97, 98, 99]
    assert [b.text() for b in shown_folds(conv)] == ["96 earlier messages"]
    assert len(conv.notes) == 1
