"""OAuth2 end to end: a local identity provider (tests/idp.py), Dovecot with its oauth2
passdb (XOAUTH2 / OAUTHBEARER only) and an SMTP sink that checks bearer tokens.

The ``custom`` provider (authlib, Google's code path) and the ``microsoft`` provider
(MSAL, its authority pointed at the local provider) both run here for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from test_replies import CUSTOMER_MAIL
from test_sync import ROOT

from helpdesk.auth import sign_in, state
from helpdesk.auth import tokens as token_sources
from helpdesk.auth.errors import SignInError, needs_sign_in, offers_sign_in
from helpdesk.config import KEYRING_SERVICE, Profile, parse_profile
from helpdesk.desk import Desk

TESTS = Path(__file__).resolve().parent


def tables(server: Any, sink: Any, keys: dict[str, Any], *, smtp_keys: dict[str, Any] | None
           = None, user: str = "agent-a") -> dict[str, Any]:
    imap = {"host": server.host, "port": server.port, "security": "plain", "username": user,
            **keys}
    # No undo window: these tests send and look at once.
    data: dict[str, Any] = {"agent": "agent-a", "send_delay_seconds": 0, "imap": imap}
    if sink is not None:
        data["smtp"] = {"host": sink.host, "port": sink.port, "security": "plain",
                        "username": user, "from_address": "support@example.com",
                        **(keys if smtp_keys is None else smtp_keys)}
    return data


def profile_of(data: dict[str, Any], tmp: Path) -> Profile:
    return parse_profile({**data, "database": str(tmp / "desk.sqlite3")})


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_toml(data: dict[str, Any], tmp: Path) -> Path:
    lines = [f"agent = {toml_value(data['agent'])}",
             f"database = {toml_value(str(tmp / 'desk.sqlite3'))}",
             f"send_delay_seconds = {toml_value(data.get('send_delay_seconds', 10))}"]
    for section in ("imap", "smtp"):
        if section in data:
            lines.append(f"[{section}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in data[section].items()]
    path = tmp / "profile.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli_env(tmp: Path) -> dict[str, str]:
    """The CLI in a subprocess, with a keyring the test can read (tests/file_keyring.py)."""
    return {**os.environ, "PYTHON_KEYRING_BACKEND": "file_keyring.FileKeyring",
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
            "HELPDESK_TEST_KEYRING": str(tmp / "keyring.json"),
            "HELPDESK_TEST_BROWSER_LOG": str(tmp / "browser.log"),
            "HOME": str(tmp)}


def run_cli(cfg: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=90, env=cli_env(tmp))


def keyring_file(tmp: Path) -> dict[str, str]:
    path = tmp / "keyring.json"
    return json.loads(path.read_text()) if path.exists() else {}


def approve(idp: Any) -> Any:
    """What the person does with a device code: opens the page and enters it."""
    def show(code: Any) -> None:
        url = f"{code.verification_uri}?user_code={code.user_code}"
        import ssl

        ctx = ssl.create_default_context(cafile=idp.ca_file)
        with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
            assert resp.status == 200
    return show


@contextmanager
def minted_session(server: Any, idp: Any) -> Iterator[Any]:
    """A direct client for test set-up on the OAuth-only Dovecot: a token minted straight
    at the provider (no app code involved)."""
    from idp import _Grant

    with idp._lock:
        token = idp._issue(_Grant("agent-a", idp.client_id, ("mail.imap",)))["access_token"]
    client = server.connect()
    client.oauthbearer_login("agent-a", token)
    try:
        yield client
    finally:
        client.logout()


@pytest.fixture
def mailbox(dovecot_oauth: Any, idp: Any) -> Any:
    with minted_session(dovecot_oauth, idp) as c:
        c.append("INBOX", CUSTOMER_MAIL)
    return dovecot_oauth


# --- the CLI, end to end ----------------------------------------------------------------


def test_cli_device_login_sync_claim_reply_status_logout(mailbox: Any, smtp_oauth_sink: Any,
                                                         idp: Any, tmp_path: Path) -> None:
    cfg = write_toml(tables(mailbox, smtp_oauth_sink, idp.oauth_keys()), tmp_path)
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(cfg),
                             "login", "imap", "--device"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(tmp_path))
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert "/device" in first and "enter" in first, first
    user_code = first.rstrip(".\n").split()[-1]
    assert idp.approve_device(user_code)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Signed in for IMAP and SMTP as agent-a (they share one sign-in)" in out
    stored = keyring_file(tmp_path)
    (entry,) = stored.values()
    record = json.loads(entry)
    assert record["refresh_token"].startswith("rt-") and "at-" not in entry  # no access token
    assert set(record["scopes"]) >= {"mail.imap", "mail.smtp"}

    verbose = run_cli(cfg, tmp_path, "-v", "sync", "--once")
    assert verbose.returncode == 0, verbose.stderr
    assert "renewed the imap sign-in" in verbose.stderr
    listed = json.loads(run_cli(cfg, tmp_path, "tickets", "--json").stdout)
    tid = listed[0]["id"]
    assert run_cli(cfg, tmp_path, "claim", tid).returncode == 0
    body = tmp_path / "body.txt"
    body.write_text("Hello, fixed.\n")
    sent = run_cli(cfg, tmp_path, "reply", tid, "--body-file", str(body))
    assert sent.returncode == 0, sent.stderr
    assert len(smtp_oauth_sink.wait_for(1)) == 1
    assert smtp_oauth_sink.oauth_logins == [("OAUTHBEARER", "agent-a")]
    assert "method=OAUTHBEARER" in mailbox.log_text()

    status = run_cli(cfg, tmp_path, "status")
    assert status.returncode == 0, status.stderr
    assert "imap sign-in (custom, agent-a): signed in as agent-a; token valid until" \
        in status.stdout
    assert "smtp sign-in (custom, agent-a): signed in" in status.stdout
    data = json.loads(run_cli(cfg, tmp_path, "status", "--json").stdout)
    assert data["sign_in"]["imap"]["signed_in"] is True
    assert data["sign_in"]["imap"]["token_expires_at"]

    out = run_cli(cfg, tmp_path, "logout", "smtp")
    assert out.returncode == 0
    assert "Signed out of SMTP and IMAP: the sign-in was revoked at the provider" in out.stdout
    assert keyring_file(tmp_path) == {}
    assert not [g for g in idp.refresh.values() if "mail.smtp" in g.scopes]  # revoked
    failed = run_cli(cfg, tmp_path, "sync", "--once")
    assert failed.returncode == 1
    assert "Not signed in for IMAP (agent-a): run 'python main.py login imap'" in failed.stderr
    assert "Traceback" not in failed.stderr
    gone = run_cli(cfg, tmp_path, "status")
    assert "imap sign-in (custom, agent-a): not signed in (run 'login imap')" in gone.stdout
    # No token ever reached a log (the -v run logged the renewals, not the tokens).
    import re

    logs = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*.log")
                   if p.name != "browser.log")
    assert "renewed the imap sign-in" in logs
    assert not re.search(r"\b(at|rt)-[A-Za-z0-9_-]{20,}", logs + verbose.stderr + out.stdout)


def test_cli_browser_login_uses_pkce_on_a_loopback_redirect(mailbox: Any, idp: Any,
                                                            tmp_path: Path) -> None:
    cfg = write_toml(tables(mailbox, None, idp.oauth_keys(("mail.imap", "offline_access"))),
                     tmp_path)
    done = run_cli(cfg, tmp_path, "login", "imap")
    assert done.returncode == 0, done.stderr
    assert "Signed in for IMAP as agent-a;" in done.stdout
    (url,) = (tmp_path / "browser.log").read_text().split()
    assert url.startswith(idp.auth_url) and "code_challenge_method=S256" in url
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in url
    assert idp.count("authorize") == 1 and idp.count("token:authorization_code") == 1
    assert idp.count("pkce-failed") == 0
    assert run_cli(cfg, tmp_path, "sync", "--once").returncode == 0


def test_cli_login_of_a_password_side_says_what_to_set(dovecot: Any, tmp_path: Path) -> None:
    cfg = write_toml({"agent": "agent-a", "imap": {"host": dovecot.host, "port": dovecot.port,
                                                  "security": "plain",
                                                  "username": "agent-a"}}, tmp_path)
    out = run_cli(cfg, tmp_path, "login", "imap")
    assert out.returncode == 1
    assert "signs in with a password" in out.stderr and "auth = \"oauth2\"" in out.stderr


# --- in the app: refresh, refusal, revocation -------------------------------------------


def signed_in_desk(server: Any, sink: Any, idp: Any, tmp: Path, **kw: Any) -> Desk:
    profile = profile_of(tables(server, sink, idp.oauth_keys(), **kw), tmp)
    sign_in(profile, "imap", device=True, show=approve(idp))
    desk = Desk(profile)
    desk.sync_once()
    return desk


def test_token_expiry_mid_session_refreshes_without_a_visible_error(
        mailbox: Any, smtp_oauth_sink: Any, idp: Any, tmp_path: Path) -> None:
    idp.access_lifetime = 3
    desk = signed_in_desk(mailbox, smtp_oauth_sink, idp, tmp_path)
    try:
        tid = desk.tickets("all")[0]["id"]
        first = token_sources.source(desk.profile.imap).current()
        assert first is not None
        wait_until(lambda: not idp.introspect(first.value)["active"], timeout=10,
                   what="the app's access token to expire")
        desk.session.intents.drop()  # the next intent opens a new connection
        desk.claim(tid)
        result = desk.reply(tid, "Sorted, thanks.")
        assert result["state"] == "sent", result
        assert len(smtp_oauth_sink.wait_for(1)) == 1
        assert idp.count("token:refresh_token") >= 1
        assert smtp_oauth_sink.oauth_refusals == []  # renewed ahead, never refused
        assert "auth failed" not in mailbox.log_text()
        assert desk.status()["last_error"] is None
    finally:
        desk.close()


def test_a_refused_token_is_refreshed_once_and_the_login_retried(
        mailbox: Any, smtp_oauth_sink: Any, idp: Any, tmp_path: Path) -> None:
    desk = signed_in_desk(mailbox, smtp_oauth_sink, idp, tmp_path)
    try:
        tid = desk.tickets("all")[0]["id"]
        idp.revoke_access_tokens()  # the app still thinks its token good for an hour
        before = idp.count("token:refresh_token")
        desk.session.intents.drop()
        desk.claim(tid)
        assert idp.count("token:refresh_token") == before + 1
        idp.revoke_access_tokens()
        assert desk.reply(tid, "Done.")["state"] == "sent"
        assert idp.count("token:refresh_token") == before + 2
        assert len(smtp_oauth_sink.oauth_refusals) == 1
    finally:
        desk.close()


def test_revocation_says_so_plainly_and_keeps_the_outbox(
        mailbox: Any, smtp_oauth_sink: Any, idp: Any, tmp_path: Path) -> None:
    desk = signed_in_desk(mailbox, smtp_oauth_sink, idp, tmp_path)
    try:
        tid = desk.tickets("all")[0]["id"]
        desk.claim(tid)
        idp.revoke_user()
        result = desk.reply(tid, "This must not be lost.")
        assert result["state"] == "queued", result
        (item,) = desk.outbox()
        assert item["state"] == "queued"
        assert "has expired or was revoked" in item["last_error"]
        assert "login smtp" in item["last_error"]
        st = state(desk.profile, "smtp")
        assert st["signed_in"] is False and "revoked" in st["problem"]
        # The IMAP side finds out at its next connection: told plainly, nothing lost.
        desk.session.syncer.drop()
        with pytest.raises(SignInError, match="IMAP sign-in for agent-a has expired or was "
                                              "revoked") as told:
            desk.sync_once()
        assert needs_sign_in(told.value) == "imap"  # what a window offers a button for
        assert offers_sign_in(str(desk.status()["last_error"]))
        assert "login imap" in str(desk.status()["last_error"])
        assert [i["state"] for i in desk.outbox()] == ["queued"]
        # Signing in again sends what was queued, once.
        sign_in(desk.profile, "smtp", device=True, show=approve(idp))
        desk.flush_outbox(force=True)
        assert len(smtp_oauth_sink.wait_for(1)) == 1
        assert desk.outbox() == []
    finally:
        desk.close()


def test_a_failing_smtp_sign_in_does_not_stop_imap(mailbox: Any, smtp_oauth_sink: Any,
                                                   idp: Any, tmp_path: Path) -> None:
    data = tables(mailbox, smtp_oauth_sink, idp.oauth_keys())
    data["smtp"]["username"] = "agent-b"  # another account, never signed in
    profile = profile_of(data, tmp_path)
    sign_in(profile, "imap", device=True, show=approve(idp))
    desk = Desk(profile)
    try:
        desk.sync_once()
        tid = desk.tickets("all")[0]["id"]
        result = desk.reply(tid, "Queued until SMTP is signed in.")
        assert result["state"] == "queued"
        assert "Not signed in for SMTP (agent-b)" in desk.outbox()[0]["last_error"]
        with minted_session(mailbox, idp) as c:
            c.append("INBOX", CUSTOMER_MAIL.replace(b"<c2@", b"<c3@"))
        desk.sync_once()  # IMAP keeps working, the reply stays queued
        assert desk.ticket(tid)["message_count"] == 2
        assert [i["state"] for i in desk.outbox()] == ["queued"]
    finally:
        desk.close()


def test_a_sign_in_without_a_side_s_scope_says_so(mailbox: Any, smtp_oauth_sink: Any,
                                                  idp: Any, tmp_path: Path) -> None:
    imap_keys = idp.oauth_keys(("mail.imap", "offline_access"))
    smtp_keys = idp.oauth_keys(("mail.smtp", "offline_access"))
    sign_in(profile_of(tables(mailbox, None, imap_keys), tmp_path), "imap", device=True,
            show=approve(idp))
    token_sources.reset()
    both = profile_of(tables(mailbox, smtp_oauth_sink, imap_keys, smtp_keys=smtp_keys),
                      tmp_path)
    with pytest.raises(SignInError, match="without the permission SMTP needs") as caught:
        token_sources.token_for(both.smtp, "smtp")
    assert caught.value.kind == "scope"
    sign_in(both, "smtp", device=True, show=approve(idp))  # asks for both sides' scopes
    assert token_sources.token_for(both.smtp, "smtp").value


def test_microsoft_through_msal_against_the_local_provider(mailbox: Any, idp: Any,
                                                           tmp_path: Path) -> None:
    profile = profile_of(tables(mailbox, None, idp.microsoft_keys()), tmp_path)
    done = sign_in(profile, "imap")  # the browser flow, MSAL's loopback, $BROWSER
    assert done.user == "agent-a" and done.sides == ["imap"]
    assert idp.count("token:authorization_code") == 1 and idp.count("pkce-failed") == 0
    desk = Desk(profile)
    try:
        desk.sync_once()
        assert len(desk.tickets("all")) == 1
    finally:
        desk.close()
    token_sources.reset()  # a new process: the refresh token from the keyring
    assert state(profile, "imap")["token_expires_at"]
    assert idp.count("token:refresh_token") == 1
    # The device-code flow through MSAL too.
    again = sign_in(profile, "imap", device=True, show=approve(idp))
    assert again.user == "agent-a" and idp.count("devicecode") == 1


def test_microsoft_wrong_tenant_is_told_plainly(mailbox: Any, idp: Any,
                                                tmp_path: Path) -> None:
    profile = profile_of(tables(mailbox, None, idp.microsoft_keys("not-ours")), tmp_path)
    with pytest.raises(SignInError) as caught:
        sign_in(profile, "imap", device=True, show=approve(idp))
    assert caught.value.kind == "tenant"
    assert "wrong organisation (tenant)" in str(caught.value) and "oauth_tenant" in \
        str(caught.value)


def test_google_has_no_device_flow_for_mail(mailbox: Any, idp: Any, tmp_path: Path) -> None:
    keys = {"auth": "oauth2", "oauth_provider": "google", "oauth_client_id": "c"}
    profile = profile_of(tables(mailbox, None, keys), tmp_path)
    with pytest.raises(SignInError, match="Google does not offer the device-code sign-in"):
        sign_in(profile, "imap", device=True)


def test_declined_in_the_browser(mailbox: Any, idp: Any, tmp_path: Path) -> None:
    idp.approve = False
    profile = profile_of(tables(mailbox, None, idp.oauth_keys()), tmp_path)
    with pytest.raises(SignInError, match="declined in the browser") as caught:
        sign_in(profile, "imap")
    assert caught.value.kind == "declined"


@pytest.mark.parametrize(("error", "kind", "words"), [
    (("invalid_grant", "AADSTS65001: The user or administrator has not consented"), "consent",
     "Consent for this app"),
    (("invalid_client", "AADSTS90094: Admin consent required"), "admin",
     "administrator has not allowed this app"),
    (("admin_policy_enforced", "blocked by the admin"), "admin", "Google Workspace admin"),
    (("invalid_scope", "AADSTS70011: scope"), "scope", "does not carry the permission"),
    (("invalid_grant", "Token has been expired or revoked."), "revoked", "expired or was"),
])
def test_provider_errors_on_refresh_become_sentences(mailbox: Any, idp: Any, tmp_path: Path,
                                                     error: tuple[str, str], kind: str,
                                                     words: str) -> None:
    keys = idp.oauth_keys()
    if error[0] == "admin_policy_enforced":
        keys = {**keys, "oauth_provider": "google", "oauth_auth_url": idp.auth_url}
    profile = profile_of(tables(mailbox, None, keys), tmp_path)
    sign_in(profile, "imap", device=True, show=approve(idp))
    token_sources.reset()
    idp.fail_token = error
    st = state(profile, "imap")
    assert st["problem"] and words in st["problem"], st
    with pytest.raises(SignInError) as caught:
        token_sources.token_for(profile.imap, "imap")
    assert caught.value.kind == kind
    assert "Traceback" not in str(caught.value)


def test_sign_ins_live_only_in_the_keyring(mailbox: Any, idp: Any, tmp_path: Path,
                                           memory_keyring: Any) -> None:
    profile = profile_of(tables(mailbox, None, idp.oauth_keys()), tmp_path)
    sign_in(profile, "imap", device=True, show=approve(idp))
    desk = Desk(profile)
    try:
        desk.sync_once()
    finally:
        desk.close()
    ((service, _user), value), = memory_keyring.store.items()
    record = json.loads(value)
    assert service == KEYRING_SERVICE and record["refresh_token"] in idp.refresh
    current = token_sources.source(profile.imap).current()
    assert current is not None and current.value not in value  # access tokens: memory only
    database = b"".join(p.read_bytes() for p in tmp_path.glob("desk.sqlite3*"))
    assert current.value.encode() not in database
    assert record["refresh_token"].encode() not in database


def test_both_sasl_mechanisms_against_dovecot(mailbox: Any, idp: Any, tmp_path: Path) -> None:
    from helpdesk.auth import sasl
    from helpdesk.mail.imap import connect

    profile = profile_of(tables(mailbox, None, idp.oauth_keys()), tmp_path)
    sign_in(profile, "imap", device=True, show=approve(idp))
    token = token_sources.token_for(profile.imap, "imap")
    for mech in ("XOAUTH2", "OAUTHBEARER"):
        client = mailbox.connect()
        exchange = sasl.Exchange(mech, sasl.initial(mech, "agent-a", token.value))
        client._command_and_check("authenticate", mech, exchange)
        client.logout()
    bad = mailbox.connect()
    exchange = sasl.Exchange("XOAUTH2", sasl.initial("XOAUTH2", "agent-a", "at-bogus"))
    with pytest.raises(Exception, match="AUTHENTICATIONFAILED"):
        bad._command_and_check("authenticate", "XOAUTH2", exchange)
    assert exchange.detail is not None and exchange.detail.get("status")
    client = connect(profile.imap)
    client.logout()
