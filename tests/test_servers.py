"""Smoke tests for the real loopback servers in ``tests/servers.py``."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import time
from datetime import UTC, datetime
from email.message import EmailMessage

import imapclient
import pytest
from servers import ImapServer, SmtpSink, start_dovecot, start_smtp_sink

# Fixtures (dovecot, pymap_server, imap_server, smtp_sink) come from
# fixtures_servers.py, which tests/conftest.py star-imports.


def _raw(subject: str, body: str = "hello") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Customer <customer@example.com>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@example.com>"
    msg.set_content(body)
    return msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _folder_names(c: imapclient.IMAPClient) -> set[str]:
    return {name for _flags, _delim, name in c.list_folders()}


# ------------------------------------------------------------------ IMAP ----


def test_imap_login_append_fetch_roundtrip(imap_server: ImapServer) -> None:
    raw = _raw("round trip")
    when = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)
    uid = imap_server.append("INBOX", raw, flags=[b"\\Flagged"], date=when)

    with imap_server.session() as c:
        assert c.has_capability("UIDPLUS")
        assert c.has_capability("IDLE")
        assert {"INBOX", "Sent"} <= _folder_names(c)
        c.create_folder(f"HelpDesk{imap_server.delimiter}Log")
        assert "HelpDesk/Log" in _folder_names(c)

        c.select_folder("INBOX")
        data = c.fetch([uid], [b"BODY.PEEK[]", b"FLAGS", b"INTERNALDATE"])
        assert data[uid][b"BODY[]"] == raw
        assert b"\\Flagged" in data[uid][b"FLAGS"]
        # imapclient normalises INTERNALDATE to naive local time
        assert data[uid][b"INTERNALDATE"] == when.astimezone().replace(tzinfo=None)


def test_imap_rejects_wrong_password(imap_server: ImapServer) -> None:
    c = imap_server.connect()
    try:
        with pytest.raises(imapclient.exceptions.LoginError):
            c.login(next(iter(imap_server.users)), "wrong password")
    finally:
        c.shutdown()


def test_dovecot_agents_share_one_mailbox(dovecot: ImapServer) -> None:
    assert len(dovecot.users) >= 2
    agent_a, agent_b = list(dovecot.users)[:2]
    with dovecot.session(agent_a) as a:
        assert a.has_capability("CONDSTORE")
        a.create_folder("HelpDesk/Log")
        uid = a.append("HelpDesk/Log", _raw("shared"))
    assert uid
    with dovecot.session(agent_b) as b:
        b.select_folder("HelpDesk/Log", readonly=True)
        assert len(b.search(["ALL"])) == 1
        sent = [flags for flags, _d, name in b.list_folders() if name == "Sent"]
        assert sent and b"\\Sent" in sent[0]


def test_dovecot_idle_sees_append_from_second_connection(dovecot: ImapServer) -> None:
    agent_a, agent_b = list(dovecot.users)[:2]
    watcher = dovecot.client(agent_a)
    try:
        watcher.select_folder("INBOX")
        watcher.idle()
        dovecot.append("INBOX", _raw("wake up"))  # separate connection/user
        with dovecot.session(agent_b) as other:
            other.append("INBOX", _raw("wake up too"))

        deadline = time.monotonic() + 5
        exists = 0
        while exists < 2:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "IDLE did not report the new messages"
            for response in watcher.idle_check(timeout=remaining):
                if len(response) >= 2 and response[1] == b"EXISTS":
                    exists = max(exists, int(response[0]))
        watcher.idle_done()
    finally:
        watcher.logout()


def test_dovecot_reset_uidvalidity_keeps_messages(dovecot: ImapServer) -> None:
    raws = [_raw(f"msg {i}") for i in range(3)]
    old_uids = dovecot.append_many("INBOX", raws)
    before = dovecot.uidvalidity("INBOX")

    dovecot.reset_uidvalidity("INBOX")

    after = dovecot.uidvalidity("INBOX")
    assert after != before and after > before
    messages = dovecot.messages("INBOX")
    assert sorted(raw for _uid, raw, _f, _d in messages) == sorted(raws)
    assert not {uid for uid, *_ in messages} & set(old_uids)

    # also for a freshly created, non-INBOX folder
    dovecot.append("HelpDesk/Log", _raw("log"))
    log_before = dovecot.uidvalidity("HelpDesk/Log")
    dovecot.reset_uidvalidity("HelpDesk/Log")
    assert dovecot.uidvalidity("HelpDesk/Log") != log_before
    assert len(dovecot.messages("HelpDesk/Log")) == 1


def test_pymap_reset_uidvalidity(pymap_server: ImapServer) -> None:
    assert len(pymap_server.users) == 1
    pymap_server.append("HelpDesk/Log", _raw("p"))
    before = pymap_server.uidvalidity("HelpDesk/Log")
    pymap_server.reset_uidvalidity("HelpDesk/Log")
    assert pymap_server.uidvalidity("HelpDesk/Log") != before
    assert len(pymap_server.messages("HelpDesk/Log")) == 1


def test_dovecot_restart_keeps_port_and_data(dovecot: ImapServer) -> None:
    uid = dovecot.append("INBOX", _raw("survives"))
    validity = dovecot.uidvalidity("INBOX")
    port = dovecot.port
    stale = dovecot.client()

    dovecot.restart()

    assert dovecot.port == port
    with pytest.raises((imapclient.exceptions.IMAPClientAbortError, OSError)):
        stale.noop()
    assert [m[0] for m in dovecot.messages("INBOX")] == [uid]
    assert dovecot.uidvalidity("INBOX") == validity


def test_dovecot_tls() -> None:
    with start_dovecot({"agent-a": "pw"}, tls=True) as server:
        assert server.ca_file
        with server.session() as c:
            assert c.has_capability("IDLE")
        # the port speaks TLS only: a plain-text client gets no IMAP greeting
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(b"a1 CAPABILITY\r\n")
            with contextlib.suppress(ConnectionResetError):
                assert not sock.recv(1024).startswith(b"* OK")


# ------------------------------------------------------------------ SMTP ----


def _email(to: str = "customer@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "support@example.com"
    msg["To"] = to
    msg["Subject"] = "Re: your ticket"
    msg.set_content("We are on it.")
    return msg


def test_smtp_sink_receives(smtp_sink: SmtpSink) -> None:
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        smtp.send_message(_email(), to_addrs=["customer@example.com", "cc@example.com"])
    [(mail_from, rcpts, raw)] = smtp_sink.wait_for(1)
    assert mail_from == "support@example.com"
    assert rcpts == ["customer@example.com", "cc@example.com"]
    assert b"Subject: Re: your ticket" in raw


def test_smtp_sink_set_fail(smtp_sink: SmtpSink) -> None:
    smtp_sink.set_fail(550, "5.1.1 bad recipient")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.send_message(_email())
        assert refused.value.recipients["customer@example.com"][0] == 550

        smtp_sink.set_fail(451, "4.3.0 try later", stage="data")
        with pytest.raises(smtplib.SMTPDataError) as data_error:
            smtp.send_message(_email())
        assert data_error.value.smtp_code == 451

        smtp_sink.set_fail(550, recipients=["bad@example.com"])
        rejected = smtp.send_message(_email(), to_addrs=["bad@example.com", "ok@example.com"])
        assert rejected == {"bad@example.com": (550, b"Rejected")}

        smtp_sink.set_fail(None)
        smtp.send_message(_email())
    messages = smtp_sink.wait_for(2)
    assert [rcpts for _f, rcpts, _r in messages] == [["ok@example.com"], ["customer@example.com"]]


def test_smtp_sink_requires_auth() -> None:
    with start_smtp_sink(require_auth={"helpdesk": "s3cret"}) as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                smtp.send_message(_email())
            assert refused.value.smtp_code == 530
            with pytest.raises(smtplib.SMTPAuthenticationError):
                smtp.login("helpdesk", "wrong")
            smtp.login("helpdesk", "s3cret")
            smtp.send_message(_email())
        assert len(sink.wait_for(1)) == 1
        assert sink.auth_users == ["helpdesk"]
