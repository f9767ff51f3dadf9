"""First-run setup: 'Test connection' says what failed; saving writes the profile + keyring."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import MemoryKeyring
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from servers import start_dovecot

from helpdesk.config import KEYRING_SERVICE, load_profile
from ui.setup_dialog import SetupDialog


@pytest.fixture
def dialog(qtbot: QtBot, tmp_path: Path) -> SetupDialog:
    d = SetupDialog(path=tmp_path / "profile.toml")
    qtbot.addWidget(d)
    d.show()
    return d


def _fill(d: SetupDialog, server: Any, password: str, security: str = "plain") -> None:
    d.agent.setText("agent-a")
    d.imap.set_security(security)
    d.imap.host.setText(server.host)
    d.imap.port.setValue(server.port)
    d.imap.username.setText("agent-a")
    d.imap.password.setText(password)


def _test(qtbot: QtBot, d: SetupDialog) -> tuple[bool, str]:
    with qtbot.waitSignal(d.tested, timeout=20_000) as blocker:
        qtbot.mouseClick(d.test_button, Qt.MouseButton.LeftButton)
    ok, message = blocker.args
    assert d.result.text() == message and d.result.isVisible()
    return ok, message


def test_wrong_password_is_named(qtbot: QtBot, dialog: SetupDialog, dovecot: Any) -> None:
    _fill(dialog, dovecot, "not-the-password")
    ok, message = _test(qtbot, dialog)
    assert not ok
    assert "rejected the user name or password" in message and "agent-a" in message
    assert "not-the-password" not in message


def test_right_password_connects(qtbot: QtBot, dialog: SetupDialog, dovecot: Any) -> None:
    _fill(dialog, dovecot, dovecot.users["agent-a"])
    ok, message = _test(qtbot, dialog)
    assert ok and message.startswith("Incoming mail (IMAP): connected to 127.0.0.1 as agent-a")
    assert "Outgoing mail (SMTP): no server given yet" in message


@pytest.fixture
def tls_dovecot() -> Iterator[Any]:
    server = start_dovecot(tls=True)
    try:
        yield server
    finally:
        server.stop()


def test_untrusted_certificate_is_named(qtbot: QtBot, dialog: SetupDialog,
                                         tls_dovecot: Any) -> None:
    _fill(dialog, tls_dovecot, tls_dovecot.users["agent-a"], security="tls")
    ok, message = _test(qtbot, dialog)
    assert not ok
    assert "certificate that is not trusted" in message
    # With the server's CA given, the same settings connect.
    dialog.ca_file.setText(tls_dovecot.ca_file)
    ok, message = _test(qtbot, dialog)
    assert ok, message


def test_nothing_listening_is_named(qtbot: QtBot, dialog: SetupDialog, dovecot: Any) -> None:
    from servers import free_port

    _fill(dialog, dovecot, "x")
    dialog.imap.port.setValue(free_port())
    ok, message = _test(qtbot, dialog)
    assert not ok and "refused the connection" in message


def test_save_writes_the_profile_and_the_keyring(
        qtbot: QtBot, dialog: SetupDialog, dovecot: Any, memory_keyring: MemoryKeyring) -> None:
    _fill(dialog, dovecot, "s3cret")
    dialog.smtp.host.setText("smtp.example.com")
    dialog.smtp.set_security("starttls")
    dialog.from_address.setText("support@example.com")
    dialog.from_name.setText("{agent} at Example")
    with qtbot.waitSignal(dialog.saved, timeout=5_000):
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    data = tomllib.loads(dialog.path.read_text(encoding="utf-8"))
    assert data["agent"] == "agent-a"
    assert data["imap"]["host"] == dovecot.host and data["imap"]["port"] == dovecot.port
    assert data["imap"]["security"] == "plain" and data["imap"]["folders"] == ["INBOX"]
    assert data["imap"]["team_folder"] == "HelpDesk/Log"
    assert data["smtp"] == {"host": "smtp.example.com", "port": 587, "security": "starttls",
                            "username": "", "from_address": "support@example.com",
                            "from_name": "{agent} at Example"}
    assert "s3cret" not in dialog.path.read_text(encoding="utf-8")
    profile = load_profile(dialog.path)
    assert profile.agent == "agent-a" and profile.imap.username == "agent-a"
    key = (KEYRING_SERVICE, profile.imap.keyring_user("imap"))
    assert memory_keyring.store[key] == "s3cret"


def test_missing_fields_are_asked_for(qtbot: QtBot, dialog: SetupDialog) -> None:
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert "Enter your name" in dialog.result.text()
    assert not dialog.path.exists()


def test_smtp_is_tested_too(qtbot: QtBot, dialog: SetupDialog, dovecot: Any,
                            smtp_sink: Any) -> None:
    from servers import free_port

    _fill(dialog, dovecot, dovecot.users["agent-a"])
    dialog.smtp.set_security("plain")
    dialog.smtp.host.setText(smtp_sink.host)
    dialog.smtp.port.setValue(smtp_sink.port)
    ok, message = _test(qtbot, dialog)
    assert ok, message
    assert message.startswith("Incoming mail (IMAP): connected to 127.0.0.1 as agent-a")
    assert f"Outgoing mail (SMTP): Connected to {smtp_sink.host} (no login)." in message
    assert smtp_sink.messages == []  # a check sends nothing
    # Nothing listening on the SMTP port: IMAP is fine, SMTP is named as the problem.
    dialog.smtp.port.setValue(free_port())
    ok, message = _test(qtbot, dialog)
    assert not ok
    assert message.startswith("Incoming mail (IMAP): connected")
    assert "Outgoing mail (SMTP) failed" in message
    assert "refused the connection" in message


def test_smtp_wrong_password_is_named(qtbot: QtBot, dialog: SetupDialog, dovecot: Any) -> None:
    from servers import start_smtp_sink

    with start_smtp_sink(require_auth={"support": "right"}) as sink:
        _fill(dialog, dovecot, dovecot.users["agent-a"])
        dialog.smtp.set_security("plain")
        dialog.smtp.host.setText(sink.host)
        dialog.smtp.port.setValue(sink.port)
        dialog.smtp.username.setText("support")
        dialog.smtp.password.setText("wrong")
        ok, message = _test(qtbot, dialog)
        assert not ok and "rejected the SMTP login for 'support'" in message
        assert "wrong" not in message.replace("rejected", "")
        dialog.smtp.password.setText("right")
        ok, message = _test(qtbot, dialog)
        assert ok and "Outgoing mail (SMTP): Connected to" in message and "as support" in message


def test_both_servers_are_reported_when_both_fail(qtbot: QtBot, dialog: SetupDialog,
                                                  dovecot: Any) -> None:
    from servers import free_port

    _fill(dialog, dovecot, "x")
    dialog.imap.port.setValue(free_port())
    dialog.smtp.set_security("plain")
    dialog.smtp.host.setText("127.0.0.1")
    dialog.smtp.port.setValue(free_port())
    dialog.from_address.setText("support@example.com")
    ok, message = _test(qtbot, dialog)
    assert not ok
    imap_line, smtp_line = message.splitlines()
    assert imap_line.startswith("Incoming mail (IMAP) failed") and "refused" in imap_line
    assert smtp_line.startswith("Outgoing mail (SMTP) failed")


def test_the_profile_says_where_each_secret_is(qtbot: QtBot, dialog: SetupDialog,
                                               dovecot: Any, tmp_path: Path) -> None:
    _fill(dialog, dovecot, "")
    dialog.password_command.setText("echo s3cret")
    dialog.smtp.set_security("plain")
    dialog.smtp.host.setText("127.0.0.1")
    dialog.smtp.port.setValue(25)
    dialog.smtp.username.setText("agent-a")
    dialog.smtp.password.setText("smtp-secret")
    dialog.from_address.setText("support@example.com")
    dialog.save()
    text = (tmp_path / "profile.toml").read_text()
    assert "# IMAP password: from password_command below." in text
    assert "# SMTP password: in the OS keyring (service 'helpdesk')." in text
    assert "passwords are in the keyring" not in text  # the old, untrue header
    assert "smtp-secret" not in text and "s3cret" in text  # the command, not a secret


def test_host_fields_fit_a_host_name_and_buttons_have_room(qtbot: QtBot,
                                                           dialog: SetupDialog) -> None:
    name = "imap.mail.example-company.com"
    for box in (dialog.imap, dialog.smtp):
        box.host.setText(name)
        assert box.host.width() >= box.host.fontMetrics().horizontalAdvance(name) + 10
    for button in (dialog.test_button, dialog.save_button):
        at = button.mapTo(dialog, button.rect().bottomRight())
        assert dialog.width() - at.x() >= 16 and dialog.height() - at.y() >= 16
