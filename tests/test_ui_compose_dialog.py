"""New conversations and forwards in the GUI, through the real worker, Dovecot and the
SMTP sink: the undo countdown, Undo that sends nothing, a file that arrives intact."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot
from test_ui_support import synced_desk

from helpdesk.desk import Desk
from helpdesk.mail.parse import extract_attachment, parse_message
from ui.compose_dialog import ComposeDialog
from ui.worker import DeskService


@pytest.fixture
def service(dovecot: Any, smtp_sink: Any, tmp_path: Path) -> Iterator[DeskService]:
    with dovecot.session() as c:
        c.append("INBOX", b"From: Zoe <zoe@customer.example>\r\nTo: support@example.com\r\n"
                 b"Subject: Logs\r\nMessage-ID: <l1@customer.example>\r\n\r\nSee logs.\r\n")
    desk: Desk = synced_desk(dovecot, tmp_path, "agent-a", smtp=smtp_sink,
                             send_delay_seconds=30)
    svc = DeskService(desk)
    yield svc
    svc.stop()
    desk.close()


def test_new_conversation_undo_then_send(qtbot: QtBot, service: DeskService, smtp_sink: Any,
                                         tmp_path: Path) -> None:
    dialog = ComposeDialog.new_conversation(service)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.recipients.to.setText("Chloé <chloe@customer.example>")
    dialog.subject.setText("Your new plan")
    dialog.editor.setPlainText("Hello Chloé,\n\nyour plan is active.")
    guide = tmp_path / "guide é.pdf"
    guide.write_bytes(bytes(range(256)) * 4)
    dialog.files.add_paths([str(guide)])
    dialog.send_button.click()
    qtbot.waitUntil(lambda: dialog.undo_bar.isVisible(), timeout=10_000)
    assert dialog.undo_bar.label.text().startswith("Sending in 3")  # 30, 29...
    dialog.undo_bar.button.click()
    qtbot.waitUntil(lambda: "is back" in dialog.state.text(), timeout=10_000)
    assert dialog.send_button.isEnabled() and smtp_sink.messages == []
    assert [f.filename for f in dialog.files.files] == ["guide é.pdf"]
    assert service.desk.outbox() == []
    # Sent for real, the window shortened to a moment.
    dialog.undo_bar.elapsed.disconnect()
    dialog.undo_bar.elapsed.connect(lambda item: service.run(
        lambda d: d.send_now(item), on_done=dialog._done))
    dialog.send_button.click()
    qtbot.waitUntil(lambda: dialog.undo_bar.isVisible(), timeout=10_000)
    dialog.undo_bar._until = 0  # the countdown's end, now
    with qtbot.waitSignal(dialog.sent, timeout=15_000) as sent:
        pass
    assert sent.args[0]["state"] == "sent"
    ((_f, rcpts, raw),) = smtp_sink.wait_for(1)
    assert rcpts == ["chloe@customer.example"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(msg["Subject"]).startswith("Your new plan [#")
    (att,) = parse_message(raw).attachments
    assert extract_attachment(raw, att.index) == ("guide é.pdf", "application/pdf",
                                                  guide.read_bytes())


def test_forward_from_the_gui(qtbot: QtBot, service: DeskService, smtp_sink: Any) -> None:
    tid = service.desk.tickets("all")[0]["id"]
    dialog = ComposeDialog.forward(service, tid)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.recipients.to.setText("not an address")
    dialog.send_button.click()
    qtbot.waitUntil(lambda: "not an e-mail address" in dialog.state.text(), timeout=10_000)
    assert service.desk.outbox() == []
    dialog.recipients.to.setText("vendor@vendor.example")
    dialog.editor.setPlainText("Please check.")
    dialog.send_button.click()
    qtbot.waitUntil(lambda: dialog.undo_bar.isVisible(), timeout=10_000)
    dialog.undo_bar._until = 0
    qtbot.waitUntil(lambda: bool(service.desk.outbox()) and
                    service.desk.outbox()[0]["state"] == "queued", timeout=10_000)
    service.run(lambda d: d.send_now(service.desk.outbox()[0]["id"]))
    ((_f, rcpts, raw),) = smtp_sink.wait_for(1, timeout=15)
    assert rcpts == ["vendor@vendor.example"] and b"See logs." in raw


def test_signatures_dialog_sets_both_for_the_team(qtbot: QtBot, service: DeskService) -> None:
    from ui.compose_dialog import SignatureDialog

    dialog = SignatureDialog(service)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(dialog.save_button.isEnabled, timeout=10_000)
    dialog.personal.setPlainText("Ann\nExample support")
    dialog.team.setPlainText("The Example team — {agent}")
    with qtbot.waitSignal(dialog.saved, timeout=10_000):
        dialog.save_button.click()
    assert service.desk.signatures() == {"personal": "Ann\nExample support",
                                         "team": "The Example team — {agent}"}
