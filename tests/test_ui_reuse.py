"""Widgets are made once and reused: a day of ticket switches makes no new widgets.

PySide6 (6.10.3 and 6.11.3 alike, Python 3.11) keeps a reference to ``None`` for
every widget that is created and shown and never gives it back, so a window that
rebuilt its message cards, rows and panels on every refresh raised None's refcount
without bound over a working day. The conversation, the outbox rows, the customer
panel, the close dialog and the notes bar now keep their widgets and refill them.

The first tests say that a reused widget shows exactly the new content (nothing of
the previous ticket lingers: text, tooltip, attachment, chip, folding, selection,
armed buttons); the last one drives the real window on a real Dovecot and counts the
widgets made and None's refcount over many switches and refreshes.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication, QLabel, QPushButton, QToolButton, QWidget
from pytestqt.qtbot import QtBot
from test_ui_support import (
    App,
    NoneRise,
    fill,
    synced_desk,
    ticket_with_subject,
    widgets_made,
)

from ui.conversation import MessageCard
from ui.customer_panel import NoteCard
from ui.ticket_pane import CaredDialog

# (subject, sender, number of messages, {message index: attachments}, {index: auto})
THREADS: list[tuple[str, str, int, dict[int, list[str]], set[int]]] = [
    ("Thread of five", "Fiona Five", 5, {1: ["five-invoice.pdf"]}, {2}),
    ("Thread of two", "Tom Two", 2, {}, set()),
    ("Thread of seven", "Sven Seven", 7, {0: ["seven-a.txt", "seven-b.txt"], 6: ["last.pdf"]},
     set()),
]


def _sender_address(name: str) -> str:
    return name.split()[0].lower() + "@customers.example"


def body_of(subject: str, i: int) -> str:
    return f"{subject} body number {i}, unique words {subject.split()[-1]}{i}x"


def thread_messages() -> list[bytes]:
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    out: list[bytes] = []
    for t, (subject, sender, n, files, autos) in enumerate(THREADS):
        root = f"<root-{t}@customers.example>"
        for i in range(n):
            m = EmailMessage()
            m["Subject"] = subject if i == 0 else f"Re: {subject}"
            m["From"] = f"{sender} <{_sender_address(sender)}>"
            m["To"] = "support@example.com"
            m["Date"] = format_datetime(start + timedelta(hours=t, minutes=i))
            m["Message-ID"] = root if i == 0 else f"<m{i}-{t}@customers.example>"
            if i:
                m["References"] = root
                m["In-Reply-To"] = root
            if i in autos:
                m["Auto-Submitted"] = "auto-replied"
            m.set_content(body_of(subject, i) + "\n")
            for name in files.get(i, []):
                m.add_attachment(f"bytes of {name}".encode(), maintype="application",
                                 subtype="octet-stream", filename=name)
            out.append(bytes(m))
    return out


@pytest.fixture
def threads_app(qtbot: QtBot, dovecot: Any, tmp_path: Path) -> Iterator[App]:
    fill(dovecot)
    with dovecot.session() as c:
        for raw in thread_messages():
            c.append("INBOX", raw)
    a = App(qtbot, synced_desk(dovecot, tmp_path))
    a.select_view("all")
    yield a
    a.stop()


def shown_cards(app: App) -> list[MessageCard]:
    conv = app.window.pane.conversation
    cards = [c for c in conv.widget().findChildren(MessageCard) if c.isVisibleTo(conv)]
    return sorted(cards, key=lambda c: c.y())


def visible_texts(widget: Any, kind: type = QLabel) -> list[str]:
    return [w.text() for w in widget.findChildren(kind) if w.isVisibleTo(widget) and w.text()]


def assert_card_shows(card: MessageCard, subject: str, sender: str, i: int,
                      files: list[str], auto: bool, expanded: bool) -> None:
    body = body_of(subject, i)
    assert card.expanded is expanded
    name = card.findChild(QLabel, "senderName")
    assert name.full_text() == sender
    assert sender in name.toolTip()
    texts = " ".join(visible_texts(card))
    assert _sender_address(sender) in texts
    chips = [c.text() for c in card.findChildren(QLabel, "chip") if c.isVisibleTo(card)]
    assert chips == (["Auto-reply"] if auto else [])  # no empty pill either
    row = card.attachments
    buttons = [b.text() for b in card.findChildren(QPushButton, "attachment")
               if row is not None and b.isVisibleTo(row)]
    assert [b.split("  ·  ")[0] for b in buttons] == files
    # (a card builds its attachments row and remote bar the first time a message needs
    # them, then keeps them, hidden, for the messages that do not)
    area = card.attachments_area
    assert (area is not None and area.isVisibleTo(card)) is (expanded and bool(files))
    assert card.remote_bar is None or not card.remote_bar.isVisibleTo(card)
    if expanded:
        assert card.view is not None and card.view.isVisibleTo(card)
        assert body in card.view.toPlainText()
        assert not card.summary.isVisibleTo(card)
    else:
        assert card.summary.isVisibleTo(card)
        assert card.summary.full_text().startswith(body)
        assert card.view is None or not card.view.isVisibleTo(card)


def shown_of(n: int) -> list[int]:
    """The messages a thread of ``n`` (all from the customer) shows: all of them, or
    beyond 6 the first and the last three (the middle folds, see test_ui_fold)."""
    return list(range(n)) if n <= 6 else [0, n - 3, n - 2, n - 1]


def assert_conversation_shows(app: App, thread: int) -> None:
    subject, sender, n, files, autos = THREADS[thread]
    cards = shown_cards(app)
    shown = shown_of(n)
    assert len(cards) == len(shown), f"{subject}: {len(cards)} cards shown, not {len(shown)}"
    assert app.window.pane.conversation.cards == cards
    for i, card in zip(shown, cards, strict=True):
        folded = n > 4 and i < n - 2
        assert_card_shows(card, subject, sender, i, files.get(i, []), i in autos,
                          expanded=not folded)
    everything = " ".join(c.view.toPlainText() for c in cards if c.view is not None
                          and c.view.isVisibleTo(c)) + " ".join(" ".join(visible_texts(c))
                                                                 for c in cards)
    for other, (other_subject, other_sender, m, _f, _a) in enumerate(THREADS):
        if other != thread:
            assert other_sender not in everything
            assert not any(body_of(other_subject, i) in everything for i in range(m))


def open_thread(app: App, thread: int) -> str:
    tid = ticket_with_subject(app.desk, THREADS[thread][0])
    app.open(tid)
    app.qtbot.waitUntil(lambda: len(shown_cards(app)) == len(shown_of(THREADS[thread][2])),
                        timeout=10_000)
    return tid


def test_switching_between_5_2_and_7_messages_shows_exactly_those(threads_app: App) -> None:
    app = threads_app
    for thread in (0, 1, 2, 1, 0, 2, 0):
        open_thread(app, thread)
        assert_conversation_shows(app, thread)
        conv = app.window.pane.conversation
        assert conv.quote_text() == body_of(THREADS[thread][0], THREADS[thread][2] - 1)


def test_a_reused_card_forgets_what_the_person_did_with_the_last_ticket(threads_app: App,
                                                                        qtbot: QtBot) -> None:
    app = threads_app
    open_thread(app, 2)
    conv = app.window.pane.conversation
    # Unfold an old message and select words in it: both belong to that ticket only.
    first = shown_cards(app)[0]
    first.set_expanded(True)
    assert first.view is not None
    first.view.selectAll()
    assert body_of(THREADS[2][0], 0) in conv.quote_text()
    open_thread(app, 0)
    assert_conversation_shows(app, 0)
    assert conv.quote_text() == body_of(THREADS[0][0], 4)
    assert all(not c.view.textCursor().hasSelection() for c in shown_cards(app) if c.view)
    # Back to the first ticket: its messages are folded as on first sight.
    open_thread(app, 2)
    assert_conversation_shows(app, 2)


def test_outbox_rows_show_exactly_the_entries_given(threads_app: App) -> None:
    app = threads_app
    open_thread(app, 1)
    conv = app.window.pane.conversation
    failed = {"id": 1, "state": "failed", "last_error": "550 mailbox unavailable"}
    queued = {"id": 2, "state": "queued", "attempts": 3}
    conv.show_outbox([failed, queued])
    assert conv.outbox_texts() == ["Reply not sent: 550 mailbox unavailable",
                                   "Reply queued: it will be sent as soon as the mail "
                                   "server can be reached (tried 3×)."]
    rows = conv.outbox_rows()
    assert [b.text() for b in rows[0].findChildren(QPushButton) if b.isVisibleTo(rows[0])] \
        == ["Send again", "Discard"]
    conv.show_outbox([queued])
    assert len(conv.outbox_rows()) == 1
    row = conv.outbox_rows()[0]
    assert row.property("state") == "queued"
    assert not [b for b in row.findChildren(QPushButton) if b.isVisibleTo(row)]
    assert conv.outbox_texts() == ["Reply queued: it will be sent as soon as the mail "
                                   "server can be reached (tried 3×)."]
    conv.show_outbox([{"id": 3, "state": "sent"}])
    assert conv.outbox_rows() == [] and conv.outbox_texts() == []


def _panel_ready(app: App, email: str) -> bool:
    panel = app.window.pane.customer
    return panel.email == email and panel.data is not None and panel.data.get("email") == email


def test_the_customer_panel_shows_only_this_customers_notes_and_tickets(
        threads_app: App, qtbot: QtBot) -> None:
    app = threads_app
    five, two = _sender_address(THREADS[0][1]), _sender_address(THREADS[1][1])
    app.desk.update_customer(five, note="Prefers phone calls")
    app.desk.update_customer(five, note="Has two shops")
    open_thread(app, 0)
    panel = app.window.pane.customer
    qtbot.waitUntil(lambda: _panel_ready(app, five)
                    and len(panel.data.get("notes") or []) == 2, timeout=10_000)

    def notes() -> list[NoteCard]:
        return [n for n in panel.widget().findChildren(NoteCard) if n.isVisibleTo(panel)]

    qtbot.waitUntil(lambda: len(notes()) == 2, timeout=10_000)
    assert {visible_texts(n)[0] for n in notes()} == {"Prefers phone calls", "Has two shops"}
    assert "No notes yet." not in visible_texts(panel.widget())
    notes()[0].button.click()  # armed: "Remove"
    assert notes()[0].button.text() == "Remove"

    open_thread(app, 1)
    qtbot.waitUntil(lambda: _panel_ready(app, two), timeout=10_000)
    # (a widget added to a shown layout shows at the event loop's next turn)
    qtbot.waitUntil(lambda: "No notes yet." in visible_texts(panel.widget()), timeout=5_000)
    assert notes() == []
    tickets = [t for t in visible_texts(panel.widget()) if "Thread of" in t]
    assert len(tickets) == 1 and "Thread of two" in tickets[0]
    assert panel.name.text() == THREADS[1][1]

    # A teammate's note arrives (through the worker, as the window's own edits do).
    app.service.run(lambda d: d.update_customer(two, note="Only one note"))
    qtbot.waitUntil(lambda: len(notes()) == 1
                    and "No notes yet." not in visible_texts(panel.widget()), timeout=10_000)
    card = notes()[0]
    assert visible_texts(card)[0] == "Only one note"
    assert card.button.text() == "" and card.button.isEnabled()  # not armed any more


def test_the_close_dialog_asks_afresh_each_time(threads_app: App, qtbot: QtBot) -> None:
    app = threads_app

    def dialog_shown() -> CaredDialog:
        found: list[CaredDialog] = []

        def seen() -> bool:
            found[:] = [d for d in QApplication.topLevelWidgets()
                        if isinstance(d, CaredDialog) and d.isVisible()]
            return bool(found)

        qtbot.waitUntil(seen, timeout=10_000)
        return found[0]

    open_thread(app, 0)
    app.window.pane.close_ticket()
    d = dialog_shown()
    assert THREADS[0][0] in visible_texts(d)
    d.survey.setChecked(False)
    d.no_button.click()
    qtbot.waitUntil(lambda: app.window.pane.row.get("status") == "closed", timeout=10_000)
    open_thread(app, 1)
    app.window.pane.close_ticket()
    d = dialog_shown()
    texts = visible_texts(d)
    assert THREADS[1][0] in texts and THREADS[0][0] not in texts
    assert d.answer is None
    if d.survey.isVisibleTo(d):
        assert d.survey.isChecked()
    d.cancel_button.click()
    qtbot.waitUntil(lambda: not d.isVisible())
    app.settle()
    assert app.window.pane.row.get("status") == "open"


def test_asking_the_close_question_again_and_again_keeps_nones_count(qtbot: QtBot) -> None:
    """One dialog, asked 60 times, answered or cancelled: no widget made, and no
    reference to None kept per question (a fresh callable assigned to a shown-and-
    hidden dialog's attribute cost 14 each in PySide 6.11)."""
    host = QWidget()
    qtbot.addWidget(host)
    host.show()
    dialog = CaredDialog(parent=host)
    answers: list[Any] = []

    def one(i: int) -> None:
        dialog.ask(f"Subject {i}", lambda cared, i=i: answers.append((i, cared)),
                   offer_survey=bool(i % 2), survey=lambda send: answers.append(send))
        QApplication.processEvents()
        assert dialog.isVisible() and dialog.subject.text() == f"Subject {i}"
        (dialog.yes_button if i % 3 else dialog.cancel_button).click()
        QApplication.processEvents()
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)

    for i in range(10):
        one(i)
    with NoneRise() as nones:
        for i in range(10, 70):
            one(i)
        answers.clear()
    rise = nones.rise
    assert rise < 60, f"None's refcount rose by {rise} over 60 questions"
    one(70)
    assert answers == [False, (70, True)]  # (70 % 2 == 0: no survey offered, not sent)


def test_composer_file_rows_show_exactly_the_files_and_remove_the_right_one(
        qtbot: QtBot) -> None:
    from helpdesk.desk import FileAttachment
    from ui.compose_parts import Attachments

    files = Attachments()
    qtbot.addWidget(files)
    files.show()

    def removers() -> list[Any]:
        return [b for b in files.findChildren(QToolButton) if b.isVisibleTo(files)]

    files.set_files([FileAttachment.of(n, b"x" * (i + 1)) for i, n in
                     enumerate(["a.txt", "b.pdf", "c.png"])])
    assert files.names() == ["a.txt  (1 B)", "b.pdf  (2 B)", "c.png  (3 B)"]
    removers()[1].click()
    assert [f.filename for f in files.files] == ["a.txt", "c.png"]
    assert files.names() == ["a.txt  (1 B)", "c.png  (3 B)"]
    assert len(removers()) == 2
    visible = [lbl.text() for lbl in files.findChildren(QLabel, "attachmentName")
               if lbl.isVisibleTo(files)]
    assert visible == files.names()
    # Another draft's one file: one row, its own name and type; its × removes it.
    files.set_files([FileAttachment.of("z.pdf", b"zz")])
    assert files.names() == ["z.pdf  (2 B)"]
    (label,) = [lbl for lbl in files.findChildren(QLabel, "attachmentName")
                if lbl.isVisibleTo(files)]
    assert label.toolTip() == "application/pdf"
    (only,) = removers()
    only.click()
    assert files.files == [] and files.names() == [] and files.isHidden()


def _settle(app: App, until: Any = lambda: True, timeout: float = 10.0) -> None:
    """Run the worker and the event loop until ``until()`` (deadline ``timeout`` s).

    Not qtbot.wait/waitUntil: those make a QEventLoop and a QTimer per call, and
    each object PySide makes keeps references to None too; this test counts them."""
    deadline = time.monotonic() + timeout
    while True:
        app.service.wait_idle()
        QApplication.processEvents()
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        if until():
            app.service.wait_idle()
            QApplication.processEvents()
            QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
            return
        assert time.monotonic() < deadline, "the window did not settle in time"


def test_ticket_switches_and_refreshes_make_no_new_widgets(threads_app: App,
                                                           qtbot: QtBot) -> None:
    app = threads_app
    w = app.window
    ids = list(w.model.ids)
    assert len(ids) >= 10

    pane = w.pane

    def a_round() -> None:
        for tid in ids:
            w.open_ticket(tid)
            _settle(app, lambda tid=tid: pane.conversation.ticket_id == tid
                    and pane.customer.data is not None
                    and pane.customer.email == pane.row.get("customer_email"))
            pane.reload()              # a change reported for this ticket
            pane.customer.reload()     # a change to its customer
            pane.conversation.show_outbox([{"id": 9, "state": "failed"}])
            w.notify(f"Ticket {tid} looked at.", "info")
            _settle(app)
            pane.conversation.show_outbox([])

    a_round()  # the pools grow to the largest ticket and customer once
    a_round()
    gc.collect()
    alive = len(QApplication.allWidgets())
    with NoneRise() as nones:
        a_round()
        a_round()
    rise = nones.rise
    assert len(QApplication.allWidgets()) <= alive
    # PySide keeps ~7-16 references to None per widget made (and some per QObject);
    # a refresh that makes none leaves None's count (almost) where it was.
    assert rise < 200, f"None's refcount rose by {rise} over {2 * len(ids)} switches"

    # Which widgets, if any, a round makes (an event filter of our own: the count of
    # None above is taken without it, since each event it sees costs references too).
    with widgets_made() as counter:
        a_round()
    made = sum(counter.made.values())
    assert made == 0, f"{made} widgets made by {len(ids)} switches: {counter.made}"
    assert w.pane.ticket_id == ids[-1]
