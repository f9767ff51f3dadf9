"""A working day with the app: the open ticket never changes by itself, notes mean
something, rows and mail stay readable and contained, the keyboard works from the
start, and closing offers the survey."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QLineEdit, QPlainTextEdit
from pytestqt.qtbot import QtBot
from test_ui_support import *  # noqa: F403 (fixtures: app, filled_dovecot)
from test_ui_support import App, fill, synced_desk, ticket_with_subject

from helpdesk.desk import Changes
from ui.ticket_pane import CaredDialog


def _activate(qtbot: QtBot, app: App) -> None:
    with qtbot.waitActive(app.window):
        app.window.activateWindow()


def _wait_for(qtbot: QtBot, kind: type) -> Any:
    found: list[Any] = []

    def seen() -> bool:
        found[:] = [x for x in QApplication.topLevelWidgets()
                    if isinstance(x, kind) and x.isVisible()]
        return bool(found)

    qtbot.waitUntil(seen, timeout=5_000)
    return found[0]


# --- 2. actions always hit the ticket on screen --------------------------------------

def test_the_open_ticket_stays_when_it_leaves_the_view(app: App, qtbot: QtBot) -> None:
    w = app.window
    w.resize(1280, 800)  # a laptop screen: little room to spare
    _activate(qtbot, app)
    width = w.width()
    tid = w.model.ids[2]
    w.column.list.setFocus()
    w.column.select_row(2)
    qtbot.waitUntil(lambda: w.pane.ticket_id == tid and bool(w.pane.row), timeout=10_000)
    qtbot.keyClick(w.column.list, Qt.Key.Key_C)
    qtbot.waitUntil(lambda: w.pane.banner.state == "mine", timeout=10_000)
    qtbot.waitUntil(lambda: w.model.row_of(tid) == -1, timeout=10_000)  # left Unclaimed

    # Focus goes elsewhere and comes back (another window, a menu opened and closed).
    w.pane.customer.preferred.setFocus()
    w.column.list.setFocus()
    menu = w.menuBar().actions()[1].menu()
    menu.popup(w.mapToGlobal(QPoint(40, 40)))
    qtbot.waitUntil(menu.isVisible)
    menu.close()
    _activate(qtbot, app)
    w.column.list.setFocus()
    qtbot.waitUntil(lambda: not w._select_timer.isActive())
    assert w.pane.ticket_id == tid
    assert w.pane.header.out_of_view.isVisible()
    assert "No longer in Unclaimed" in w.pane.header.out_of_view.text()
    # The mark wraps in the header: it never widens the pane or the window.
    left = w.pane.splitter.widget(0)
    assert left.minimumSizeHint().width() <= left.width()
    assert w.width() == width and w.minimumSizeHint().width() <= width
    assert not w.column.list.selectionModel().hasSelection()

    # R answers the customer on screen, not the list's first one.
    qtbot.keyClick(w.column.list, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: w.pane.composer.is_open and w.pane.composer.editor.isEnabled(),
                    timeout=10_000)
    assert w.pane.composer.ticket_id == tid
    assert w.pane.composer.context.get("to") == app.desk.composer(tid)["to"]
    w.pane.composer.close_composer()

    # Picking a row is still the person's action: then that ticket opens.
    other = w.model.ids[0]
    w.column.select_row(0)
    qtbot.waitUntil(lambda: w.pane.ticket_id == other, timeout=10_000)
    assert not w.pane.header.out_of_view.isVisible()


# --- 4. one note per situation, gone once resolved, in a fixed place ------------------

def test_notes_one_per_situation_resolved_and_never_move_the_layout(
        app: App, qtbot: QtBot, filled_dovecot: Any, tmp_path: Path) -> None:
    w = app.window
    b = synced_desk(filled_dovecot, tmp_path, "agent-b", db_name="b.sqlite3")
    try:
        tid = w.model.ids[0]
        b.claim(tid)
        app.service.run(lambda d: d.refresh_team())
        app.open(tid)
        qtbot.waitUntil(lambda: w.pane.banner.state == "other", timeout=10_000)
        list_at = w.column.list.mapTo(w, QPoint(0, 0))
        pane_at = w.pane.mapTo(w, QPoint(0, 0))

        w.pane.reply()  # "agent-b is handling this ticket..."
        w.pane.reply()
        app.service.run(lambda d: d.reply(tid, "Hello"))  # refused: agent-b holds it
        qtbot.waitUntil(lambda: any("agent-b" in t and "Your draft is kept" in t
                                    for _k, t in w.message_bar.history), timeout=10_000)
        held = [t for t in w.message_bar.texts() if "agent-b" in t]
        assert len(held) == 1, held  # one note for the one situation, not three
        assert w.message_bar.isVisible()
        # The notes live in a fixed line: nothing moved under the pointer.
        assert w.column.list.mapTo(w, QPoint(0, 0)) == list_at
        assert w.pane.mapTo(w, QPoint(0, 0)) == pane_at

        b.close_ticket(tid)  # resolved: agent-b is not handling it any more
        app.service.run(lambda d: d.refresh_team())
        qtbot.waitUntil(lambda: w.pane.banner.state == "closed", timeout=10_000)
        assert not [t for t in w.message_bar.texts() if "agent-b" in t]
        assert w.column.list.mapTo(w, QPoint(0, 0)) == list_at
    finally:
        b.close()


def test_a_pending_tickets_banner_says_it_is_pending(app: App, qtbot: QtBot) -> None:
    w = app.window
    tid = w.model.ids[0]
    app.open(tid)
    w.pane.mark_pending()
    qtbot.waitUntil(lambda: w.pane.banner.state == "pending", timeout=10_000)
    assert "Pending" in w.pane.banner.label.text()
    assert "waiting for the customer" in w.pane.banner.label.text()


# --- 5. readable and contained ------------------------------------------------------

def _luminance(colour: QColor) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    return (0.2126 * channel(colour.redF()) + 0.7152 * channel(colour.greenF())
            + 0.0722 * channel(colour.blueF()))


def _contrast(a: QColor, b: QColor) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _over(top: QColor, under: QColor) -> QColor:
    a = top.alphaF()
    return QColor.fromRgbF(top.redF() * a + under.redF() * (1 - a),
                           top.greenF() * a + under.greenF() * (1 - a),
                           top.blueF() * a + under.blueF() * (1 - a))


def test_pills_on_a_selected_row_are_readable(app: App, qtbot: QtBot,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import ui.delegates

    w = app.window
    tid = ticket_with_subject(app.desk, "Contract attached")
    app.desk.update_customer("vera@bigclient.example", vip=True, tier="Platinum")
    app.desk.claim(tid)
    app.settle()  # a row read in flight from before the change lands first
    app.service.changed.emit(Changes({tid}, {"vera@bigclient.example"}))
    app.select_view("all")
    _activate(qtbot, app)
    w.column.list.setFocus()
    w.column.select_row(w.model.row_of(tid))
    qtbot.waitUntil(lambda: (w.model.cached(tid) or {}).get("vip") == 1, timeout=10_000)
    calls: list[tuple[str, str, str]] = []
    real = ui.delegates.pill

    def spy(painter: Any, right: int, top: int, height: int, text: str, font: Any,
            fg: str, bg: str) -> int:
        calls.append((text, fg, bg))
        return real(painter, right, top, height, text, font, fg, bg)

    monkeypatch.setattr(ui.delegates, "pill", spy)
    rect = w.column.list.visualRect(w.model.index(w.model.row_of(tid), 0))
    for focused in (True, False):
        if not focused:
            w.column.search.setFocus()
        calls.clear()
        image = w.column.list.viewport().grab(rect).toImage()
        row_bg = image.pixelColor(image.width() - 3, 3)
        assert {t for t, _f, _b in calls} >= {"Platinum", "You"}
        for text, fg, bg in calls:
            ratio = _contrast(QColor(fg), _over(QColor(bg), row_bg))
            assert ratio >= 4.5, f"pill {text!r} {fg} on {bg} over {row_bg.name()}: {ratio:.1f}"


def _newsletter(n: int, root: str | None) -> tuple[bytes, str]:
    from datetime import UTC, datetime, timedelta

    m = EmailMessage()
    m["Subject"] = "Our wide newsletter" if root is None else "Re: Our wide newsletter"
    m["From"] = ("The Extraordinarily Long Named Weekly Newsletter Of Everything "
                 "<news-weekly-digest-extraordinary@very-long-domain-name.example>")
    m["To"] = ", ".join(f"subscriber-number-{i}@list-members.example" for i in range(12))
    m["Date"] = format_datetime(datetime.now(UTC) - timedelta(hours=10 - n))
    mid = make_msgid(domain="wide.example")
    m["Message-ID"] = mid
    if root:
        m["In-Reply-To"] = root
        m["References"] = root
    m.set_content("Unbroken_" + "wide_text_" * 80)
    m.add_alternative(
        '<html><body><table width="2600" style="width:2600px"><tr>'
        + "".join(f'<td width="260">Column {i} {"x" * 60}</td>' for i in range(10))
        + '</tr></table><pre>' + "y" * 900 + '</pre>'
        '<img src="cid:wide@x" width="3000" height="40"></body></html>', subtype="html")
    for i in range(6):
        m.add_attachment(b"data", maintype="application", subtype="octet-stream",
                         filename=f"a-rather-long-attachment-file-name-number-{i}.pdf")
    return bytes(m), mid


def test_a_wide_newsletter_scrolls_inside_and_keeps_the_customer_panel(
        qtbot: QtBot, dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 2, extra=False)
    raw, root = _newsletter(0, None)
    thread = [raw] + [_newsletter(i, root)[0] for i in range(1, 6)]  # older ones fold
    with dovecot.session() as c:
        for message in thread:
            c.append("INBOX", message)
    app = App(qtbot, synced_desk(dovecot, tmp_path))
    try:
        w = app.window
        tid = ticket_with_subject(app.desk, "Our wide newsletter")
        app.open(tid)
        card = w.pane.conversation.cards[-1]
        qtbot.waitUntil(lambda: card.view is not None and card.view.isVisible())
        app.settle()
        for c in w.pane.conversation.cards:
            c.set_expanded(False)
        w.pane.conversation.cards[-1].set_expanded(True)
        app.settle()
        panel = w.pane.customer
        right = panel.mapTo(w, QPoint(panel.width(), 0)).x()
        assert panel.isVisible() and panel.width() >= panel.minimumSizeHint().width()
        assert right <= w.width(), f"customer panel ends at {right}, window {w.width()}"
        conv = w.pane.conversation
        for c in conv.cards:
            assert c.width() <= conv.viewport().width(), "a message is wider than its column"
        assert card.view is not None
        assert card.view.width() <= conv.viewport().width()
        assert card.view.horizontalScrollBar().maximum() > 0  # it scrolls inside
    finally:
        app.stop()


# --- 6. keyboard first -----------------------------------------------------------------

def test_focus_starts_on_the_list_and_single_keys_never_type_into_unfocused_fields(
        app: App, qtbot: QtBot) -> None:
    w = app.window
    _activate(qtbot, app)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is w.column.list, timeout=5_000)
    first = w.model.ids[0]
    qtbot.waitUntil(lambda: w.pane.ticket_id == first and bool(w.pane.row), timeout=10_000)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_J)
    qtbot.waitUntil(lambda: w.pane.ticket_id == w.model.ids[1], timeout=10_000)
    qtbot.waitUntil(lambda: bool(w.pane.row) and w.pane.row.get("id") == w.model.ids[1])
    tid = w.pane.ticket_id

    fields = [*w.findChildren(QLineEdit), *w.findChildren(QPlainTextEdit)]
    before = {id(f): (f.text() if isinstance(f, QLineEdit) else f.toPlainText())
              for f in fields}
    # Reading the mail (focus in the message): C still claims, nothing is typed.
    card = w.pane.conversation.cards[-1]
    assert card.view is not None
    card.view.setFocus()
    qtbot.keyClick(card.view, Qt.Key.Key_C)
    qtbot.waitUntil(lambda: w.pane.banner.state == "mine", timeout=10_000)
    assert app.desk.holder(tid).agent == "agent-a"
    after = {id(f): (f.text() if isinstance(f, QLineEdit) else f.toPlainText())
             for f in fields}
    assert after == before

    # R opens the composer; the letter is not typed into the reply.
    qtbot.keyClick(card.view, Qt.Key.Key_R)
    editor = w.pane.composer.editor
    qtbot.waitUntil(lambda: w.pane.composer.is_open and editor.isEnabled(), timeout=10_000)
    assert editor.toPlainText() == w.pane.composer._initial_text  # the greeting, no "r"
    # While composing, letters are text: E types an "e", it does not close the ticket.
    qtbot.waitUntil(lambda: editor.hasFocus())
    qtbot.keyClicks(editor, "e")
    assert editor.toPlainText().endswith("e")
    assert QApplication.activeModalWidget() is None
    assert not [x for x in QApplication.topLevelWidgets()
                if isinstance(x, CaredDialog) and x.isVisible()]
    w.pane.composer.close_composer()


# --- 7. the survey is offered -------------------------------------------------------------

@pytest.fixture
def survey_app(request: pytest.FixtureRequest, qtbot: QtBot, filled_dovecot: Any,
               smtp_sink: Any, tmp_path: Path) -> Iterator[App]:
    a = App(qtbot, synced_desk(filled_dovecot, tmp_path, survey=request.param,
                               smtp=smtp_sink))
    yield a
    a.stop()


def _close_with_dialog(app: App, qtbot: QtBot, tid: str) -> CaredDialog:
    app.open(tid)
    app.window.pane.close_ticket()
    return _wait_for(qtbot, CaredDialog)


@pytest.mark.parametrize("survey_app", ["ask"], indirect=True)
def test_closing_offers_the_survey_when_the_profile_says_ask(survey_app: App,
                                                             qtbot: QtBot) -> None:
    app = survey_app
    tid = ticket_with_subject(app.desk, "Contract attached")
    dialog = _close_with_dialog(app, qtbot, tid)
    assert dialog.survey.isVisible() and dialog.survey.isChecked()
    qtbot.mouseClick(dialog.yes_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(app.desk.metrics.surveys(tid)), timeout=10_000)
    assert any(i["kind"] == "survey" for i in app.desk.outbox(tid)) or \
        app.desk.metrics.surveys(tid)
    # Unticked: closed, and no survey.
    other = next(t for t in app.desk.ticket_ids("open") if t != tid)
    dialog = _close_with_dialog(app, qtbot, other)
    dialog.survey.setChecked(False)
    qtbot.mouseClick(dialog.yes_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: app.desk.ticket_rows([other])[other]["status"] == "closed",
                    timeout=10_000)
    app.settle()
    assert app.desk.metrics.surveys(other) == []


@pytest.mark.parametrize("survey_app", ["always", "never"], indirect=True)
def test_always_sends_the_survey_and_never_never_does(survey_app: App, qtbot: QtBot) -> None:
    app = survey_app
    policy = app.desk.profile.survey
    tid = ticket_with_subject(app.desk, "Contract attached")
    dialog = _close_with_dialog(app, qtbot, tid)
    assert not dialog.survey.isVisible()  # nothing to ask
    qtbot.mouseClick(dialog.yes_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: app.desk.ticket_rows([tid])[tid]["status"] == "closed",
                    timeout=10_000)
    if policy == "always":
        qtbot.waitUntil(lambda: bool(app.desk.metrics.surveys(tid)), timeout=10_000)
    else:
        app.settle()
        assert app.desk.metrics.surveys(tid) == []


def test_closing_the_composer_gives_the_keys_back_to_the_list(app: App, qtbot: QtBot) -> None:
    w = app.window
    _activate(qtbot, app)
    w.column.list.setFocus()
    tid = w.model.ids[0]
    w.column.select_row(0)
    qtbot.waitUntil(lambda: w.pane.ticket_id == tid and bool(w.pane.row), timeout=10_000)
    qtbot.keyClick(w.column.list, Qt.Key.Key_R)
    composer = w.pane.composer
    qtbot.waitUntil(lambda: composer.is_open and composer.editor.hasFocus(), timeout=10_000)
    qtbot.keyClick(composer.editor, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not composer.is_open)
    focused = QApplication.focusWidget()
    assert not isinstance(focused, (QLineEdit, QPlainTextEdit)), focused
    fields = [*w.findChildren(QLineEdit), *w.findChildren(QPlainTextEdit)]
    before = [f.text() if isinstance(f, QLineEdit) else f.toPlainText() for f in fields]
    qtbot.keyClick(focused or w, Qt.Key.Key_J)
    qtbot.waitUntil(lambda: w.pane.ticket_id == w.model.ids[1], timeout=10_000)
    assert [f.text() if isinstance(f, QLineEdit) else f.toPlainText() for f in fields] == before
