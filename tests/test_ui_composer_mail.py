"""The GUI composer for real support mail, offscreen against Dovecot and the SMTP sink:
To/Cc/Bcc and reply-all, files, formatting, the quoted message, the signature, and
"Sending in 8 s... Undo"."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot
from test_composer import CUSTOMER, plain_of
from test_ui_support import App, synced_desk

from helpdesk.mail.parse import extract_attachment, parse_message


def _app(qtbot: QtBot, dovecot: Any, smtp_sink: Any, tmp_path: Path, **kw: Any) -> App:
    with dovecot.session() as c:
        c.append("INBOX", CUSTOMER)
    return App(qtbot, synced_desk(dovecot, tmp_path, "agent-a", smtp=smtp_sink, **kw))


@pytest.fixture
def mail_app(qtbot: QtBot, dovecot: Any, smtp_sink: Any, tmp_path: Path) -> Iterator[App]:
    a = _app(qtbot, dovecot, smtp_sink, tmp_path)
    yield a
    a.stop()


def _open(app: App, qtbot: QtBot) -> Any:
    tid = app.desk.tickets("all")[0]["id"]
    app.open(tid)
    qtbot.keyClick(app.window.column.list, Qt.Key.Key_R)
    composer = app.window.pane.composer
    qtbot.waitUntil(lambda: composer.is_open and composer.editor.isEnabled(), timeout=10_000)
    return composer


def _type_at_end(composer: Any, qtbot: QtBot, text: str) -> None:
    composer.editor.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClicks(composer.editor, text)


def test_reply_all_with_a_file_bold_text_and_a_hidden_copy(
        mail_app: App, qtbot: QtBot, smtp_sink: Any, tmp_path: Path) -> None:
    app = mail_app
    composer = _open(app, qtbot)
    assert composer.recipients.values()[0] == ["zoe@customer.example"]
    assert composer.recipients.reply_all.isVisibleTo(composer)
    assert composer.quoted.include.isChecked() and composer.quoted.view.isHidden()  # collapsed
    assert "> Hello, the invoice total looks wrong." in composer.quoted.view.toPlainText()
    composer.recipients.reply_all.click()
    composer.recipients.bcc.setText("audit@vendor.example")
    _type_at_end(composer, qtbot, "The fix is ")
    composer.format_bar.toggle_bold()
    qtbot.keyClicks(composer.editor, "live")
    invoice = tmp_path / "Facture №5.pdf"
    invoice.write_bytes(bytes(range(256)) * 8)
    composer.files.add_paths([str(invoice)])
    assert composer.files.names() == ["Facture №5.pdf  (2 KB)"]
    qtbot.keyClick(composer.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    ((_f, rcpts, raw),) = smtp_sink.wait_for(1, timeout=15)
    assert rcpts == ["zoe@customer.example", "colleague@customer.example",
                     "boss@customer.example", "audit@vendor.example"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Bcc"] is None and b"audit@" not in raw
    assert "The fix is *live*" in plain_of(raw) and "wrote:" in plain_of(raw)
    assert "<b>live</b>" in str(msg.get_body(("html",)).get_content()) or \
        "font-weight" in str(msg.get_body(("html",)).get_content())
    (att,) = parse_message(raw).attachments
    assert extract_attachment(raw, att.index) == ("Facture №5.pdf", "application/pdf",
                                                  invoice.read_bytes())
    qtbot.waitUntil(lambda: not composer.is_open, timeout=10_000)


def test_undo_puts_the_reply_back_with_its_file_and_sends_nothing(
        qtbot: QtBot, dovecot: Any, smtp_sink: Any, tmp_path: Path) -> None:
    app = _app(qtbot, dovecot, smtp_sink, tmp_path, send_delay_seconds=30)
    try:
        composer = _open(app, qtbot)
        _type_at_end(composer, qtbot, "Sent too fast")
        log = tmp_path / "app.log"
        log.write_bytes(b"\x00\x01log")
        composer.files.add_paths([str(log)])
        composer.recipients.cc.setText("boss@customer.example")
        composer.quoted.include.setChecked(False)
        composer.send()
        qtbot.waitUntil(lambda: composer.undo_bar.isVisible(), timeout=10_000)
        assert composer.undo_bar.label.text() in ("Sending in 30 s...", "Sending in 29 s...")
        assert not composer.editor.isEnabled()
        composer.undo_bar.button.click()
        qtbot.waitUntil(lambda: "is back" in composer.state.text(), timeout=10_000)
        assert composer.is_open and composer.editor.isEnabled()
        assert composer.text().endswith("Sent too fast")
        assert [f.filename for f in composer.files.files] == ["app.log"]
        assert composer.recipients.values()[1] == ["boss@customer.example"]
        assert not composer.quoted.include.isChecked()
        app.desk.sync_once()
        assert smtp_sink.messages == [] and app.desk.outbox() == []
    finally:
        app.stop()


def test_over_the_limit_asks_first(qtbot: QtBot, dovecot: Any, smtp_sink: Any,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(qtbot, dovecot, smtp_sink, tmp_path, max_attachment_mb=1)
    try:
        composer = _open(app, qtbot)
        big = tmp_path / "big.bin"
        big.write_bytes(b"x" * (1024 * 1024 + 1))
        composer.files.add_paths([str(big)])
        _type_at_end(composer, qtbot, "The whole export")
        assert composer.files.warning.isVisibleTo(composer)
        answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
        monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: answers.pop(0))
        composer.send()
        assert app.desk.outbox() == [] and composer.is_open
        composer.send()
        smtp_sink.wait_for(1, timeout=15)
    finally:
        app.stop()


def test_forward_and_new_conversation_from_the_window(
        mail_app: App, qtbot: QtBot, smtp_sink: Any) -> None:
    import shiboken6
    from PySide6.QtWidgets import QApplication

    from ui.compose_dialog import ComposeDialog

    app = mail_app
    tid = app.desk.tickets("all")[0]["id"]
    app.open(tid)
    app.window.ticket_actions["forward"].trigger()
    forward = next(w for w in QApplication.topLevelWidgets()
                   if isinstance(w, ComposeDialog) and w.kind == "forward" and w.isVisible())
    forward.recipients.to.setText("vendor@vendor.example")
    forward.send_button.click()
    qtbot.waitUntil(lambda: not shiboken6.isValid(forward) or not forward.isVisible(),
                    timeout=15_000)
    ((_f, rcpts, raw),) = smtp_sink.wait_for(1)
    assert rcpts == ["vendor@vendor.example"] and b"invoice total looks wrong" in raw
    app.window.ticket_actions["compose"].trigger()
    new = next(w for w in QApplication.topLevelWidgets()
               if isinstance(w, ComposeDialog) and w.kind == "compose" and w.isVisible())
    new.recipients.to.setText("newcomer@customer.example")
    new.subject.setText("Welcome")
    new.editor.setPlainText("Hello!")
    new.send_button.click()
    qtbot.waitUntil(lambda: not shiboken6.isValid(new) or not new.isVisible(), timeout=15_000)
    assert len(smtp_sink.wait_for(2)) == 2
    qtbot.waitUntil(lambda: any("New ticket #" in t for _k, t in app.window.message_bar.history),
                    timeout=10_000)


def test_undo_too_late_says_already_sent_and_closes(
        qtbot: QtBot, dovecot: Any, smtp_sink: Any, tmp_path: Path) -> None:
    app = _app(qtbot, dovecot, smtp_sink, tmp_path, send_delay_seconds=30)
    try:
        composer = _open(app, qtbot)
        _type_at_end(composer, qtbot, "Gone already")
        composer.send()
        qtbot.waitUntil(lambda: composer.undo_bar.isVisible(), timeout=10_000)
        item = composer.undo_bar.item_id
        app.desk.send_now(item)  # another desktop's sync, a CLI: it went meanwhile
        smtp_sink.wait_for(1)
        messages: list[str] = []
        composer.sent.connect(lambda _t, r: messages.append(r["state"]))
        composer.undo_bar.button.click()
        qtbot.waitUntil(lambda: not composer.is_open, timeout=10_000)
        assert messages == ["sent"] and len(smtp_sink.messages) == 1
    finally:
        app.stop()


def test_a_draft_keeps_its_files_recipients_and_formatting(
        mail_app: App, qtbot: QtBot, tmp_path: Path) -> None:
    app = mail_app
    composer = _open(app, qtbot)
    _type_at_end(composer, qtbot, "Half written, ")
    composer.format_bar.toggle_bold()
    qtbot.keyClicks(composer.editor, "important")
    shot = tmp_path / "screen.png"
    shot.write_bytes(b"\x89PNG fake")
    composer.files.add_paths([str(shot)])
    composer.recipients.cc.setText("boss@customer.example")
    composer.save_draft()
    tid = composer.ticket_id
    qtbot.waitUntil(lambda: bool((app.desk.load_draft(tid) or {}).get("attachments")),
                    timeout=10_000)
    composer.close_composer()
    composer = _open(app, qtbot)
    assert composer.state.text() == "Draft restored."
    assert composer.text().endswith("Half written, important")
    assert composer.editor.has_formatting()
    assert [f.data for f in composer.files.files] == [b"\x89PNG fake"]
    assert composer.recipients.values()[1] == ["boss@customer.example"]
