"""The composer: reply to the SMTP sink, drafts that survive, conflicts that keep the text."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from test_ui_support import App, fill, synced_desk, ticket_with_subject

from helpdesk.desk import Desk
from ui.ticket_pane import CaredDialog


@pytest.fixture
def mail_app(qtbot: QtBot, dovecot: Any, smtp_sink: Any, tmp_path: Path) -> Iterator[App]:
    fill(dovecot, 6)
    a = App(qtbot, synced_desk(dovecot, tmp_path, "agent-a", smtp=smtp_sink))
    yield a
    a.stop()


def _open_composer(app: App, qtbot: QtBot, tid: str) -> Any:
    app.open(tid)
    qtbot.keyClick(app.window.column.list, Qt.Key.Key_R)
    composer = app.window.pane.composer
    qtbot.waitUntil(lambda: composer.is_open and composer.editor.isEnabled(), timeout=10_000)
    return composer


def _body(raw: bytes) -> str:
    msg: Message = message_from_bytes(raw)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    return str(part.get_payload(decode=True).decode("utf-8"))


def test_reply_goes_to_the_sink_and_claims_the_ticket(
        mail_app: App, qtbot: QtBot, smtp_sink: Any) -> None:
    app = mail_app
    tid = ticket_with_subject(app.desk, "Contract attached")
    composer = _open_composer(app, qtbot, tid)
    assert composer.text().startswith("Hi Vera,")  # greeting by first name
    assert "vera@bigclient.example" in composer.to_label.toolTip()
    assert "claim this ticket" in composer.state.text()
    composer.editor.moveCursor(composer.editor.textCursor().MoveOperation.End)
    qtbot.keyClicks(composer.editor, "The contract looks fine to us.")
    qtbot.keyClick(composer.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(smtp_sink.messages) == 1, timeout=15_000)
    _from, rcpts, raw = smtp_sink.messages[0]
    assert rcpts == ["vera@bigclient.example"]
    assert "Hi Vera," in _body(raw) and "contract looks fine" in _body(raw)
    qtbot.waitUntil(lambda: not composer.is_open, timeout=10_000)
    qtbot.waitUntil(lambda: any(k == "ok" and "Sent" in t
                                for k, t in app.window.message_bar.history), timeout=10_000)
    # The reply auto-claimed the ticket for us; the banner shows it.
    qtbot.waitUntil(lambda: app.window.pane.banner.state == "mine", timeout=10_000)
    assert app.desk.draft(tid) is None


def test_draft_autosaves_and_comes_back(mail_app: App, qtbot: QtBot) -> None:
    app = mail_app
    tid = ticket_with_subject(app.desk, "Newsletter with pictures")
    composer = _open_composer(app, qtbot, tid)
    composer._autosave.setInterval(50)  # the real interval is a few seconds
    composer._autosave.start()
    qtbot.keyClicks(composer.editor, "Half-written answer")
    qtbot.waitUntil(lambda: "Half-written answer" in (app.desk.draft(tid) or ""),
                    timeout=10_000)
    qtbot.keyClick(composer.editor, Qt.Key.Key_Escape)  # leaves, keeps the draft
    assert not composer.is_open
    composer = _open_composer(app, qtbot, tid)
    assert "Half-written answer" in composer.text()
    assert composer.state.text() == "Draft restored."


def test_a_teammate_holding_the_ticket_keeps_the_text(
        mail_app: App, qtbot: QtBot, dovecot: Any, smtp_sink: Any, tmp_path: Path) -> None:
    app = mail_app
    tid = ticket_with_subject(app.desk, "Contract attached")
    teammate = synced_desk(dovecot, tmp_path, "agent-b", smtp=smtp_sink)
    try:
        composer = _open_composer(app, qtbot, tid)
        teammate.claim(tid)  # behind agent-a's back: a has not synced
        qtbot.keyClicks(composer.editor, "My answer")
        qtbot.mouseClick(composer.send_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: "agent-b" in composer.state.text(), timeout=10_000)
        assert composer.is_open and "My answer" in composer.text()
        assert composer.send_button.isEnabled()
        assert smtp_sink.messages == []
        qtbot.waitUntil(lambda: "My answer" in (app.desk.draft(tid) or ""), timeout=10_000)
        qtbot.waitUntil(lambda: any("agent-b" in t for t in app.window.message_bar.texts()))
    finally:
        teammate.close()


def test_send_and_close_asks_whether_we_cared(
        mail_app: App, qtbot: QtBot, smtp_sink: Any) -> None:
    app = mail_app
    tid = ticket_with_subject(app.desk, "Contract attached")
    composer = _open_composer(app, qtbot, tid)
    qtbot.keyClicks(composer.editor, "All done, closing this.")
    qtbot.mouseClick(composer.send_close_button, Qt.MouseButton.LeftButton)
    dialog = _wait_for_dialog(qtbot)
    qtbot.mouseClick(dialog.no_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(smtp_sink.messages) == 1, timeout=15_000)
    qtbot.waitUntil(lambda: app.desk.ticket_rows([tid])[tid]["status"] == "closed",
                    timeout=10_000)
    qtbot.waitUntil(lambda: app.window.pane.banner.state == "closed", timeout=10_000)
    assert _cared(app.desk, tid) is False


def _cared(desk: Desk, tid: str) -> Any:
    """The cared answer folded from the close events (via the metrics when present)."""
    from sqlalchemy import text
    with desk.store.read() as conn:
        rows = conn.execute(text("SELECT body FROM team_events WHERE subject = :t AND "
                                 "type = 'status' ORDER BY uid"), {"t": tid}).all()
    import json
    answers = [json.loads(r[0]).get("data", {}).get("cared") for r in rows]
    return next((a for a in reversed(answers) if a is not None), None)


def _wait_for_dialog(qtbot: QtBot) -> CaredDialog:
    found: list[CaredDialog] = []

    def seen() -> bool:
        found[:] = [w for w in QApplication.topLevelWidgets()
                    if isinstance(w, CaredDialog) and w.isVisible()]
        return bool(found)

    qtbot.waitUntil(seen, timeout=5_000)
    return found[0]
