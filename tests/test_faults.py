"""Every promise under the fault that would break it: real Dovecot, pymap and an SMTP sink,
with a proxy that cuts the connection at a chosen command (tests/faults.py).

- A reply reaches the customer once, whatever command is cut, before or after the server
  carried it out (IMAP: the claim fence, the Sent copy, the team event; SMTP: every step).
- Two flushers never both send: threads in one process with the push loop running, and
  two processes on one database.
- An intent on a connection the server closed, or a NAT forgot, reconnects and goes on.
- An IDLE watcher that lost its connection looks again as soon as it is back in IDLE.
"""

from __future__ import annotations

import email
import json
import logging
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from faults import CutProxy
from helpers import make_profile, wait_until
from test_replies import CUSTOMER_MAIL
from test_sync import ROOT, fill

from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError
from helpdesk.mail.imap import connect


def proxied_desk(server: Any, tmp: Path, imap: CutProxy, smtp: Any = None,
                 smtp_proxy: CutProxy | None = None, agent: str = "agent-a", **kw: Any) -> Desk:
    profile = make_profile(server, tmp, agent, smtp=smtp, **kw)
    if smtp_proxy is not None:
        profile = replace(profile, smtp=replace(profile.smtp, port=smtp_proxy.port))
    via = replace(profile.imap, port=imap.port)
    return Desk(profile, connect_imap=lambda: connect(via))


def message_ids(sink: Any) -> Counter[str]:
    return Counter(str(email.message_from_bytes(raw)["Message-ID"])
                   for _f, _r, raw in sink.messages)


def copies_in_sent(server: Any, message_id: str) -> int:
    return sum(1 for _u, raw, _f, _d in server.messages("Sent")
               if str(email.message_from_bytes(raw)["Message-ID"]) == message_id)


def heal(desk: Desk, rounds: int = 3) -> None:
    """What the next sync passes do (a retry after the back-off, forced here)."""
    for _ in range(rounds):
        try:
            desk.flush_outbox(force=True)
            desk.sync_once()
        except HelpdeskError:
            pass


IMAP_STEPS = [
    ("claim APPEND", r'APPEND "?HelpDesk/Log', 0),
    ("log UID FETCH", r"UID FETCH .*BODY\.PEEK\[TEXT\]", 0),
    ("settle UID SEARCH", r"UID SEARCH UID", 0),
    ("EXAMINE Sent", r'EXAMINE "?Sent', 0),
    ("SEARCH Sent", r"SEARCH HEADER Message-ID", 0),
    ("Sent APPEND", r'APPEND "?Sent', 0),
    ("reply-sent APPEND", r'APPEND "?HelpDesk/Log', 1),
]


@pytest.mark.allow_log_errors
@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("name,pattern,skip", IMAP_STEPS, ids=[s[0] for s in IMAP_STEPS])
def test_a_reply_goes_once_whatever_imap_command_is_cut(
        dovecot: Any, smtp_sink: Any, tmp_path: Path, name: str, pattern: str, skip: int,
        when: str) -> None:
    with dovecot.session() as c:
        c.append("INBOX", CUSTOMER_MAIL)
    with CutProxy(dovecot.host, dovecot.port) as imap:
        desk = proxied_desk(dovecot, tmp_path, imap, smtp=smtp_sink)
        desk.sync_once()
        tid = desk.tickets("all")[0]["id"]
        imap.arm(pattern, when, skip=skip)
        outcome: Any
        try:
            outcome = desk.reply(tid, "Hello, this is fixed.")
        except HelpdeskError as exc:
            outcome = exc  # queued, or told plainly; the outbox keeps it
        assert imap.cuts == 1, f"the {name} cut did not happen: {outcome!r} {imap.seen[-5:]}"
        heal(desk)
        ids = message_ids(smtp_sink)
        assert len(ids) == 1 and set(ids.values()) == {1}, ids  # exactly once
        (mid,) = ids
        assert desk.outbox() == []  # sent, every finishing step done
        assert copies_in_sent(dovecot, mid) == 1
        with desk.store.read() as conn:
            assert conn.exec_driver_sql(
                "SELECT count(*) FROM team_events WHERE type = 'reply-sent'").scalar() == 1
        assert desk.holder(tid).agent == "agent-a"
        desk.close()


SMTP_STEPS = [("EHLO", r"^EHLO"), ("MAIL", r"^MAIL FROM"), ("RCPT", r"^RCPT TO"),
              ("DATA", r"^DATA"), ("end of message", r"^\.\r\n$"), ("QUIT", r"^QUIT")]


@pytest.mark.allow_log_errors
@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("name,pattern", SMTP_STEPS, ids=[s[0] for s in SMTP_STEPS])
def test_a_reply_goes_at_most_once_whatever_smtp_step_is_cut(
        dovecot: Any, smtp_sink: Any, tmp_path: Path, name: str, pattern: str,
        when: str) -> None:
    with dovecot.session() as c:
        c.append("INBOX", CUSTOMER_MAIL)
    with CutProxy(dovecot.host, dovecot.port) as imap, \
            CutProxy(smtp_sink.host, smtp_sink.port, "smtp") as smtp:
        desk = proxied_desk(dovecot, tmp_path, imap, smtp=smtp_sink, smtp_proxy=smtp)
        desk.sync_once()
        tid = desk.tickets("all")[0]["id"]
        smtp.arm(pattern, when)
        result = desk.reply(tid, "Hello, this is fixed.")
        assert smtp.cuts == 1
        heal(desk)
        delivered = sum(message_ids(smtp_sink).values())
        if name == "end of message":
            # The whole message went out and the answer never came: it may have been
            # delivered (after) or not (before); nobody can know, so it is never re-sent
            # and the person is told.
            assert [i["state"] for i in desk.outbox()] == ["uncertain"]
            assert "may or may not" in desk.outbox()[0]["last_error"]
            assert delivered == (1 if when == "after" else 0)
        else:
            assert delivered == 1, (name, when, result)
            assert desk.outbox() == []
        desk.close()


def test_threads_and_the_push_loop_never_send_a_reply_twice(
        dovecot: Any, smtp_sink: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fill(dovecot, 24)
    desk = Desk(make_profile(dovecot, tmp_path, smtp=smtp_sink))
    desk.sync_once()
    tickets = [t["id"] for t in desk.tickets("all")]
    push = desk.push_loop()
    push.start()
    caplog.set_level(logging.WARNING)
    errors: list[BaseException] = []

    def answer(tid: str) -> None:
        try:
            desk.reply(tid, f"About {tid}: fixed.")
        except BaseException as exc:
            errors.append(exc)

    def flusher() -> None:
        for _ in range(10):
            try:
                desk.flush_outbox(force=True)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=answer, args=(t,)) for t in tickets]
    threads += [threading.Thread(target=flusher) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    push.stop()
    assert errors == []
    ids = message_ids(smtp_sink)
    assert len(ids) == len(tickets) and set(ids.values()) == {1}
    assert desk.outbox() == []
    assert "rebuilding" not in caplog.text  # our own claims folded by one owner, in order
    desk.close()


FLUSHER = """
import sys, time
sys.path.insert(0, {tests!r})
from helpers import make_profile
from helpdesk.desk import Desk
from helpdesk.config import ImapSettings, Profile, SmtpSettings
import pickle
profile = pickle.loads(bytes.fromhex(sys.argv[1]))
desk = Desk(profile)
while desk.outbox(pending_only=True):
    try:
        desk.flush_outbox(force=True)
    except Exception as exc:
        print("flush:", exc, file=sys.stderr)
desk.close()
"""


@pytest.mark.slow
def test_two_processes_on_one_database_send_each_of_1000_replies_once(
        dovecot: Any, smtp_sink: Any, tmp_path: Path) -> None:
    import pickle

    n = 1000
    fill(dovecot, n, seed=5)
    profile = make_profile(dovecot, tmp_path, smtp=smtp_sink)
    desk = Desk(profile)
    desk.sync_once()
    tickets = [t["id"] for t in desk.tickets("all")]
    with desk.store.read() as conn:
        rows = conn.exec_driver_sql("SELECT id, customer_email, subject FROM tickets").all()
    for tid, customer, subject in rows:
        desk.replies.queue_mail(kind="reply", to=customer or "someone@example.org",
                                subject=f"Re: {subject}", body="Fixed.", ticket_id=tid)
    queued = len(desk.outbox(pending_only=True))
    assert queued == len(tickets)
    desk.close()
    code = FLUSHER.format(tests=str(ROOT / "tests"))
    arg = pickle.dumps(profile).hex()
    procs = [subprocess.Popen([sys.executable, "-c", code, arg], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    ids = message_ids(smtp_sink)
    assert len(ids) == queued and set(ids.values()) == {1}, ids.most_common(3)
    check = Desk(profile)
    assert check.outbox() == []
    check.close()


@pytest.mark.allow_log_errors
def test_an_intent_after_the_server_dropped_the_idle_connection(dovecot: Any,
                                                               tmp_path: Path) -> None:
    fill(dovecot, 3)
    with CutProxy(dovecot.host, dovecot.port) as imap:
        desk = proxied_desk(dovecot, tmp_path, imap)
        desk.sync_once()
        first, second = [t["id"] for t in desk.tickets("all")][:2]
        assert desk.claim(first).agent == "agent-a"
        imap.kill_all()  # the server went away (restart, idle timeout)
        assert desk.claim(second).agent == "agent-a"  # reconnected and went on
        assert desk.session.intents.reconnects == 1
        desk.close()


def test_an_intent_after_a_nat_forgot_the_idle_connection(
        dovecot: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fill(dovecot, 3)
    caplog.set_level(logging.INFO, logger="helpdesk.session")
    with CutProxy(dovecot.host, dovecot.port) as imap:
        desk = proxied_desk(dovecot, tmp_path, imap)
        desk.sync_once()
        first, second = [t["id"] for t in desk.tickets("all")][:2]
        assert desk.claim(first).agent == "agent-a"
        imap.blackhole()  # bytes vanish both ways; nothing is closed
        desk.session.intents.probe_after = 0  # "a quiet hour", without waiting one
        assert desk.claim(second).agent == "agent-a"
        assert "dropped while idle" in caplog.text  # found by the probe, not a 30 s hang
        desk.close()


def test_an_idle_watcher_back_from_an_abort_looks_at_once(pymap_server: Any,
                                                         tmp_path: Path) -> None:
    """Mail that came while a watcher was reconnecting is synced when it is back in IDLE,
    not at the next poll (which is an hour away here)."""
    fill(pymap_server, 1)
    desk = Desk(make_profile(pymap_server, tmp_path, poll_seconds=3600))
    with CutProxy(pymap_server.host, pymap_server.port) as watch:
        push = desk.push_loop()
        settings = replace(desk.profile.imap, port=watch.port)
        push.connect = lambda: connect(settings)
        push.watch = ["INBOX"]
        push.start()
        wait_until(lambda: push.watchers and push.watchers[0].entries >= 1, what="IDLE")
        watcher = push.watchers[0]
        for round_ in range(2):  # twice: the back-off is reset by a success
            entries = watcher.entries
            watch.hold_new(True)
            watch.kill_all()  # the IDLE connection dies (pymap's split FETCH does this)
            wait_until(lambda: watch.open_connections() == 0, what="cut")
            wait_until(lambda: not desk.session._in_pass and not desk.session._sync_wanted,
                       what="the pass the abort asked for")
            fill(pymap_server, 1, seed=10 + round_)
            watch.hold_new(False)
            wait_until(lambda e=entries: watcher.entries > e, what="back in IDLE")
            wait_until(lambda n=round_: desk.status()["messages"] == 2 + n, timeout=20,
                       what="the mail that came meanwhile")
        push.stop()
    desk.close()


@pytest.mark.allow_log_errors
def test_retry_refuses_sent_and_unknown_items(dovecot: Any, smtp_sink: Any,
                                              tmp_path: Path) -> None:
    with dovecot.session() as c:
        c.append("INBOX", CUSTOMER_MAIL)
    profile = make_profile(dovecot, tmp_path, smtp=smtp_sink)
    desk = Desk(profile)
    desk.sync_once()
    tid = desk.tickets("all")[0]["id"]
    sent = desk.reply(tid, "Hello")
    assert sent["state"] == "sent"
    with pytest.raises(HelpdeskError, match="already sent"):
        desk.retry_outbox(sent["outbox_id"])
    with pytest.raises(HelpdeskError, match="no item 999"):
        desk.retry_outbox(999)
    desk.close()
    cfg = tmp_path / "p.toml"
    cfg.write_text(
        f'agent = "agent-a"\ndatabase = "{profile.database}"\n[imap]\nhost = "{dovecot.host}"\n'
        f'port = {dovecot.port}\nsecurity = "plain"\nusername = "agent-a"\n'
        f'password_command = "echo secret-a"\n[smtp]\nhost = "{smtp_sink.host}"\n'
        f'port = {smtp_sink.port}\nsecurity = "plain"\nfrom_address = "support@example.com"\n')

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "main.py", "--config", str(cfg), *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    again = cli("outbox", "--retry", str(sent["outbox_id"]))
    assert again.returncode == 1 and "already sent" in again.stderr
    assert "Traceback" not in again.stderr
    unknown = cli("outbox", "--retry", "999")
    assert unknown.returncode == 1 and "no item 999" in unknown.stderr
    assert len(smtp_sink.messages) == 1
    listed = json.loads(cli("outbox", "--json").stdout)
    assert listed == []


def test_a_shipped_card_note_is_never_told_without_its_mail(dovecot: Any, smtp_sink: Any,
                                                           tmp_path: Path) -> None:
    """The note is stored before its card-notified event, so a crash between them (or a
    team log out of reach) leaves the customer not yet told and the mail kept; the next
    sync publishes the event and sends the note, once."""
    from test_replies import cli, write_smtp_profile

    with dovecot.session() as c:
        c.append("INBOX", CUSTOMER_MAIL)
    cfg = write_smtp_profile(dovecot, smtp_sink, tmp_path)
    assert cli(cfg, "sync", "--once").returncode == 0
    tid = json.loads(cli(cfg, "tickets", "--json").stdout)[0]["id"]
    card = cli(cfg, "card", "add", tid, "--title", "Export to CSV").stdout.strip().split()[-1]
    crashed = cli(cfg, "card", "ship", card, "--notify", env={"HELPDESK_FAULT": "staged"})
    assert crashed.returncode == 70  # killed after storing the note, before the event
    shown = json.loads(cli(cfg, "card", "show", card, "--json").stdout)
    assert shown["notified"] == []  # nobody is marked told
    assert [i["state"] for i in json.loads(cli(cfg, "outbox", "--json").stdout)] == ["staged"]
    assert smtp_sink.messages == []
    for _ in range(2):
        assert cli(cfg, "sync", "--once").returncode == 0
    shown = json.loads(cli(cfg, "card", "show", card, "--json").stdout)
    assert shown["notified"] == ["zoe@customer.example"]
    assert len(smtp_sink.messages) == 1
    assert "Export to CSV" in email.message_from_bytes(smtp_sink.messages[0][2])["Subject"]
    assert json.loads(cli(cfg, "outbox", "--json").stdout) == []


@pytest.mark.allow_log_errors
def test_a_survey_waits_for_its_event_when_the_team_log_is_out_of_reach(
        dovecot: Any, smtp_sink: Any, tmp_path: Path) -> None:
    from servers import free_port

    with dovecot.session() as c:
        c.append("INBOX", CUSTOMER_MAIL)
    with CutProxy(dovecot.host, dovecot.port) as imap:
        desk = proxied_desk(dovecot, tmp_path, imap, smtp=smtp_sink)
        desk.sync_once()
        tid = desk.tickets("all")[0]["id"]
        real = imap.target
        imap.target = ("127.0.0.1", free_port())  # the server is gone
        imap.kill_all()
        assert desk.metrics.send_survey(tid)  # kept, staged
        assert [i["state"] for i in desk.outbox()] == ["staged"]
        with pytest.raises(HelpdeskError):
            desk.sync_once()
        assert smtp_sink.messages == []  # never sent before its survey-sent event
        imap.target = real
        desk.sync_once()
        desk.sync_once()
        assert len(smtp_sink.messages) == 1
        assert desk.metrics.surveys(tid)  # every desktop can now recognise the answer
        assert desk.outbox() == []
        desk.close()


def test_a_failing_smtp_password_command_is_a_plain_sentence_and_keeps_the_reply(
        dovecot: Any, smtp_sink: Any, tmp_path: Path) -> None:
    with dovecot.session() as c:
        c.append("INBOX", CUSTOMER_MAIL)
    profile = make_profile(dovecot, tmp_path, smtp=smtp_sink)
    profile = replace(profile, smtp=replace(profile.smtp, username="support@example.com",
                                            password_command="false"))
    desk = Desk(profile)
    desk.sync_once()
    tid = desk.tickets("all")[0]["id"]
    result = desk.reply(tid, "Hello")
    assert result["state"] == "queued"
    assert "password_command 'false' failed with exit status 1" in result["message"]
    assert "SMTP" in result["message"] and "Unexpected" not in result["message"]
    assert smtp_sink.messages == []
    desk.close()
