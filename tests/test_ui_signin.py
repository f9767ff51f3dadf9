"""The setup dialog's sign-in: provider buttons and Find settings fill the fields, Sign in
runs the browser flow against the local identity provider (tests/idp.py), Save writes
the OAuth2 keys and keeps only the refresh token, in the keyring."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from test_ui_support import *  # noqa: F403 (fixtures: app, filled_dovecot)

from helpdesk.config import KEYRING_SERVICE
from ui.setup_dialog import SetupDialog


@pytest.fixture
def dialog(qtbot: QtBot, tmp_path: Path) -> SetupDialog:
    d = SetupDialog(path=tmp_path / "profile.toml")
    qtbot.addWidget(d)
    d.show()
    return d


def _fill_custom(d: SetupDialog, server: Any, idp: Any) -> None:
    d.agent.setText("agent-a")
    d.imap.set_security("plain")
    d.imap.host.setText(server.host)
    d.imap.port.setValue(server.port)
    d.imap.username.setText("agent-a")
    rows = d.imap_signin
    rows.set_method("custom")
    rows.client_id.setText(idp.client_id)
    rows.auth_url.setText(idp.auth_url)
    rows.token_url.setText(idp.token_url)
    rows.scopes.setText("mail.imap offline_access")


def test_sign_in_test_and_save(qtbot: QtBot, dialog: SetupDialog, dovecot_oauth: Any,
                               idp: Any, memory_keyring: Any, tmp_path: Path) -> None:
    _fill_custom(dialog, dovecot_oauth, idp)
    assert not dialog.imap.form.isRowVisible(dialog.imap.password)  # no password to type
    with qtbot.waitSignal(dialog.signed_in, timeout=30_000) as blocker:
        qtbot.mouseClick(dialog.imap_signin.sign_in_button, Qt.MouseButton.LeftButton)
    protocol, ok, message = blocker.args
    assert (protocol, ok) == ("imap", True), message
    assert dialog.imap_signin.state.text() == "Signed in as agent-a."
    assert idp.count("token:authorization_code") == 1 and idp.count("pkce-failed") == 0
    with qtbot.waitSignal(dialog.tested, timeout=20_000) as tested:
        qtbot.mouseClick(dialog.test_button, Qt.MouseButton.LeftButton)
    assert tested.args[0], tested.args[1]
    assert "connected to 127.0.0.1 as agent-a" in tested.args[1]
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    text = (tmp_path / "profile.toml").read_text()
    data = tomllib.loads(text)["imap"]
    assert data["auth"] == "oauth2" and data["oauth_provider"] == "custom"
    assert data["oauth_scopes"] == ["mail.imap", "offline_access"]
    assert "rt-" not in text and "at-" not in text
    ((service, _user), value), = memory_keyring.store.items()
    assert service == KEYRING_SERVICE and json.loads(value)["refresh_token"].startswith("rt-")
    assert dialog.profile is not None and dialog.profile.imap.oauth


def test_sign_in_with_incomplete_fields_says_what_is_missing(qtbot: QtBot,
                                                             dialog: SetupDialog) -> None:
    dialog.agent.setText("agent-a")
    dialog.imap.host.setText("imap.example.com")
    dialog.imap.username.setText("support@example.com")
    dialog.imap_signin.set_method("microsoft")
    with qtbot.waitSignal(dialog.signed_in, timeout=5_000) as blocker:
        qtbot.mouseClick(dialog.imap_signin.sign_in_button, Qt.MouseButton.LeftButton)
    _protocol, ok, message = blocker.args
    assert not ok and "needs oauth_client_id" in message
    assert dialog.imap_signin.state.text() == message


def test_google_button_fills_gmail_and_saves_save_sent_false(qtbot: QtBot,
                                                             dialog: SetupDialog,
                                                             tmp_path: Path) -> None:
    dialog.agent.setText("sam")
    dialog.address.setText("support@gmail.com")
    with qtbot.waitSignal(dialog.suggested, timeout=5_000):
        qtbot.mouseClick(dialog.google_button, Qt.MouseButton.LeftButton)
    assert dialog.imap.host.text() == "imap.gmail.com" and dialog.smtp.host.text() == \
        "smtp.gmail.com"
    assert dialog.sent_folder.text() == "[Gmail]/Sent Mail"
    assert dialog.imap_signin.key() == "google" and dialog.smtp_signin.key() == "google"
    assert dialog.imap.form.isRowVisible(dialog.imap_signin.client_secret)
    assert "save_sent = false" in dialog.result.text() or "files sent mail" in \
        dialog.result.text()
    for rows in (dialog.imap_signin, dialog.smtp_signin):
        rows.client_id.setText("123.apps.googleusercontent.com")
        rows.client_secret.setText("GOCSPX-not-confidential")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    saved = tomllib.loads((tmp_path / "profile.toml").read_text())
    assert saved["smtp"]["save_sent"] is False and saved["smtp"]["oauth_provider"] == "google"
    assert saved["imap"]["sent_folder"] == "[Gmail]/Sent Mail"


def test_find_settings_recognises_microsoft_365(qtbot: QtBot, dialog: SetupDialog) -> None:
    dialog.address.setText("help@outlook.com")
    with qtbot.waitSignal(dialog.suggested, timeout=10_000) as blocker:
        qtbot.mouseClick(dialog.find_button, Qt.MouseButton.LeftButton)
    assert blocker.args == ["microsoft"]
    assert dialog.imap.host.text() == "outlook.office365.com"
    assert dialog.smtp.security_key() == "starttls" and dialog.smtp.port.value() == 587
    assert dialog.imap_signin.tenant.text() == "consumers"
    assert dialog.sent_folder.text() == "Sent Items"


def test_a_saved_oauth_profile_shows_its_sign_in_state(qtbot: QtBot, tmp_path: Path,
                                                       dovecot_oauth: Any, idp: Any) -> None:
    from helpdesk.auth import sign_in
    from helpdesk.config import parse_profile

    keys = {"auth": "oauth2", "oauth_provider": "custom", "oauth_client_id": idp.client_id,
            "oauth_auth_url": idp.auth_url, "oauth_token_url": idp.token_url,
            "oauth_scopes": ["mail.imap", "offline_access"]}
    profile = parse_profile({"agent": "agent-a", "database": str(tmp_path / "d.sqlite3"),
                             "imap": {"host": dovecot_oauth.host, "port": dovecot_oauth.port,
                                      "security": "plain", "username": "agent-a", **keys}})
    sign_in(profile, "imap")
    d = SetupDialog(profile=profile, path=tmp_path / "profile.toml")
    qtbot.addWidget(d)
    assert d.imap_signin.key() == "custom" and d.imap_signin.token_url.text() == idp.token_url
    qtbot.waitUntil(lambda: d.imap_signin.state.text() == "Signed in as agent-a.",
                    timeout=5_000)


def test_a_revoked_sign_in_offers_to_sign_in_again(app: Any, qtbot: QtBot) -> None:
    from helpdesk.auth.errors import not_signed_in
    from helpdesk.mail.push import LoopStatus

    w = app.window
    message = str(not_signed_in("imap", "agent-a"))
    w.on_sync_status(LoopStatus(ok=False, message=message, retry_in=20))
    assert message in w.message_bar.texts()
    button = w.message_bar.action_button
    assert button.isVisible() and button.text() == "Sign in…"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(isinstance(x, SetupDialog) and x.isVisible()
                                for x in QApplication.topLevelWidgets()), timeout=5_000)
    for x in QApplication.topLevelWidgets():
        if isinstance(x, SetupDialog):
            x.reject()
    w.on_sync_status(LoopStatus(ok=False, message="The IMAP server x:1 did not answer in "
                                "time. You may be offline.", retry_in=20))
    assert w.message_bar.action_button.text() == "Retry now"
