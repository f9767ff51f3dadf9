"""What users noticed: the composer keeps the answered mail in view and quotes it, a
draft can be discarded (with undo), one wording of time, distinct view icons, and a
mailing list's display name in the list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, QSize, Qt
from pytestqt.qtbot import QtBot
from test_ui_support import App, fill, synced_desk, ticket_with_subject

from ui import format as fmt
from ui import style
from ui.models import Col, view_icon


@pytest.fixture
def mail_app(qtbot: QtBot, dovecot: Any, smtp_sink: Any, tmp_path: Path) -> Iterator[App]:
    fill(dovecot, 6)
    a = App(qtbot, synced_desk(dovecot, tmp_path, "agent-a", smtp=smtp_sink))
    yield a
    a.stop()


def _open_composer(app: App, qtbot: QtBot, tid: str) -> Any:
    app.open(tid)
    app.window.pane.reply()
    composer = app.window.pane.composer
    qtbot.waitUntil(lambda: composer.is_open and composer.editor.isEnabled(), timeout=10_000)
    return composer


def test_the_composer_keeps_the_answered_mail_in_view_and_quotes_it(
        mail_app: App, qtbot: QtBot) -> None:
    app = mail_app
    w = app.window
    tid = ticket_with_subject(app.desk, "Contract attached")
    composer = _open_composer(app, qtbot, tid)
    pane = w.pane
    conversation, editor_part = pane.vsplit.sizes()
    assert conversation >= 0.4 * (conversation + editor_part), pane.vsplit.sizes()
    card = next(c for c in reversed(pane.conversation.cards) if c.msg["direction"] == "in")
    view = pane.conversation.viewport()

    def card_shown() -> bool:
        top = card.mapTo(view, QPoint(0, 0)).y()
        return top >= -10 and top + 60 <= view.height()

    qtbot.waitUntil(card_shown, timeout=5_000)  # what is answered is readable
    composer.insert_quote()
    text = composer.text()
    assert "> Please find the contract attached." in text
    assert text.startswith("Hi Vera,")


def test_a_draft_can_be_discarded_and_the_discard_undone(mail_app: App, qtbot: QtBot) -> None:
    app = mail_app
    w = app.window
    tid = ticket_with_subject(app.desk, "Contract attached")
    composer = _open_composer(app, qtbot, tid)
    composer.editor.insertPlainText("Half-written answer")
    # Esc keeps the draft, as the close button does.
    qtbot.keyClick(composer.editor, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not composer.is_open)
    qtbot.waitUntil(lambda: "Half-written" in (app.desk.draft(tid) or ""), timeout=10_000)
    composer = _open_composer(app, qtbot, tid)
    assert "Half-written answer" in composer.text()

    qtbot.mouseClick(composer.discard_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not composer.is_open)
    qtbot.waitUntil(lambda: app.desk.draft(tid) is None, timeout=10_000)
    bar = w.message_bar
    assert bar.current is not None and bar.current.text == "Draft discarded."
    assert bar.action_button.isVisible() and bar.action_button.text() == "Undo"
    qtbot.mouseClick(bar.action_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: composer.is_open and composer.editor.isEnabled(), timeout=10_000)
    assert "Half-written answer" in composer.text()
    assert "Half-written" in (app.desk.draft(tid) or "")


def test_one_wording_of_time_with_the_exact_time_on_hover(mail_app: App, qtbot: QtBot) -> None:
    from PySide6.QtWidgets import QLabel

    app = mail_app
    w = app.window
    tid = ticket_with_subject(app.desk, "Contract attached")
    app.open(tid)
    msg = app.desk.ticket(tid)["messages"][0]
    sent = msg.get("date") or msg.get("received_at")
    card = w.pane.conversation.cards[0]
    labels = {lbl.text(): lbl for lbl in card.findChildren(QLabel)}
    assert fmt.ago(sent) in labels, list(labels)
    assert fmt.exact(sent) in labels[fmt.ago(sent)].toolTip()
    # The list says it the same way: "… ago", the exact time on hover.
    row = w.model.row_of(tid)
    if row < 0:
        app.select_view("all")
        row = w.model.row_of(tid)
    qtbot.waitUntil(lambda: w.model.cached(tid) is not None or
                    bool(w.model.data(w.model.index(row, 0))), timeout=10_000)
    qtbot.waitUntil(lambda: w.model.cached(tid) is not None, timeout=10_000)
    cached = w.model.cached(tid)
    assert cached is not None
    tip = w.model.data(w.model.index(row, Col.WAITING), Qt.ItemDataRole.ToolTipRole)
    if cached.get("waiting_since"):
        assert fmt.exact(cached["waiting_since"]) in tip
    assert w.model.data(w.model.index(row, Col.UPDATED)) == fmt.ago(cached["updated_at"])
    # Relative everywhere, "… ago", then a date only for what is months old.
    from datetime import datetime, timedelta

    now = datetime(2026, 3, 10, 12, 0)
    assert fmt.ago(now - timedelta(seconds=20), now) == "just now"
    assert fmt.ago(now - timedelta(minutes=4), now) == "4 min ago"
    assert fmt.ago(now - timedelta(hours=3), now) == "3 h ago"
    assert fmt.ago(now - timedelta(days=3), now) == "3 d ago"
    assert fmt.ago(now - timedelta(days=20), now) == "2 wk ago"
    assert fmt.ago(now - timedelta(days=100), now)[0].isdigit()


def test_unclaimed_and_pending_have_distinct_icons(qapp: Any) -> None:
    def pixels(name: str) -> bytes:
        image = view_icon(name).pixmap(QSize(24, 24)).toImage()
        return bytes(image.constBits())

    assert (style.ICONS / "unclaimed.svg").read_bytes() != (style.ICONS / "pending.svg"
                                                            ).read_bytes()
    assert pixels("unclaimed") != pixels("pending")
    # Not two clocks that differ by a dashed rim: less than half the strokes shared.
    a, b = pixels("unclaimed"), pixels("pending")
    inked_a = {i for i in range(3, len(a), 4) if a[i] > 40}
    inked_b = {i for i in range(3, len(b), 4) if b[i] > 40}
    assert len(inked_a & inked_b) < 0.5 * min(len(inked_a), len(inked_b))


def test_a_mailing_lists_display_name_shows_in_the_list(qtbot: QtBot, dovecot: Any,
                                                        tmp_path: Path) -> None:
    from email.message import EmailMessage
    from email.utils import format_datetime, make_msgid

    fill(dovecot, 2, extra=False)
    m = EmailMessage()
    m["Subject"] = "Your October partner digest"
    m["From"] = "Stackwise Partner Digest <digest@news.stackwise.example>"
    m["To"] = "support@example.com"
    m["List-Id"] = "Stackwise partner digest <digest.news.stackwise.example>"
    m["Precedence"] = "bulk"
    m["Date"] = format_datetime(__import__("datetime").datetime.now(
        __import__("datetime").UTC))
    m["Message-ID"] = make_msgid(domain="news.stackwise.example")
    m.set_content("Three integrations are trending.")
    with dovecot.session() as c:
        c.append("INBOX", bytes(m))
    app = App(qtbot, synced_desk(dovecot, tmp_path))
    try:
        w = app.window
        tid = ticket_with_subject(app.desk, "partner digest")
        app.select_view("all")
        row = w.model.row_of(tid)
        w.column.select_row(row)
        qtbot.waitUntil(lambda: w.model.cached(tid) is not None, timeout=10_000)
        shown = w.model.data(w.model.index(row, Col.CUSTOMER))
        assert shown == "Stackwise Partner Digest"  # as the message header says
    finally:
        app.stop()


def test_dialogs_have_room_around_their_buttons(qtbot: QtBot) -> None:
    from PySide6.QtWidgets import QPushButton

    from ui.card_dialogs import CardNoteDialog
    from ui.ticket_pane import CaredDialog
    from ui.tier_dialog import TierOrderDialog

    for dialog in (CaredDialog("A subject", offer_survey=True), TierOrderDialog(["Gold"]),
                   CardNoteDialog("Dark mode")):
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitExposed(dialog)
        for button in dialog.findChildren(QPushButton):
            if not button.isVisible():
                continue
            corner = button.mapTo(dialog, button.rect().bottomRight())
            left = button.mapTo(dialog, button.rect().topLeft())
            assert dialog.width() - corner.x() >= 16, (type(dialog).__name__, button.text())
            assert dialog.height() - corner.y() >= 16, (type(dialog).__name__, button.text())
            assert left.x() >= 16, (type(dialog).__name__, button.text())
