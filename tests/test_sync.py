"""Sync against real IMAP servers (Dovecot and pymap)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile, wait_until
from mailgen import generate

import helpdesk.changes as changes_module
import helpdesk.mail.sync as mail_sync
from helpdesk.desk import Desk
from helpdesk.errors import MailError
from helpdesk.mail.imap import connect
from helpdesk.mail.sync import MailSync, SyncResult

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).parent / "corpus"


def count(db: Path, sql: str) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def fill(server: Any, n: int, seed: int = 1, folder: str = "INBOX") -> list[bytes]:
    msgs = list(generate(n, seed=seed))
    with server.session() as c:
        for raw in msgs:
            c.append(folder, raw)
    return msgs


def test_initial_sync_builds_tickets_without_touching_flags(imap_server: Any,
                                                             tmp_path: Path) -> None:
    msgs = fill(imap_server, 60)
    desk = Desk(make_profile(imap_server, tmp_path))
    desk.sync_once()
    status = desk.status()
    assert status["messages"] == 60
    assert status["last_sync"] and not status["last_error"]
    tickets = desk.tickets("all")
    assert 0 < len(tickets) < 60  # replies joined their threads
    assert sum(t["messages"] for t in tickets) == 60
    assert all(t["status"] == "open" for t in tickets)
    # Never marks mail read, never moves or deletes it.
    with imap_server.session() as c:
        c.select_folder("INBOX", readonly=True)
        uids = c.search("ALL")
        assert len(uids) == len(msgs)
        flags = c.get_flags(uids)
        assert not any(b"\\Seen" in f for f in flags.values())
    desk.close()


def test_resync_is_incremental_and_idempotent(imap_server: Any, tmp_path: Path) -> None:
    fill(imap_server, 20)
    desk = Desk(make_profile(imap_server, tmp_path))
    desk.sync_once()
    assert not desk.sync_once()  # nothing changed
    fill(imap_server, 5, seed=99)
    changes = desk.sync_once()
    assert changes.tickets
    assert desk.status()["messages"] == 25
    desk.close()


def test_same_message_in_inbox_and_sent_is_stored_once(imap_server: Any,
                                                       tmp_path: Path) -> None:
    raw = next(generate(1, seed=5))
    with imap_server.session() as c:
        c.append("INBOX", raw)
        c.append("Sent", raw)
    desk = Desk(make_profile(imap_server, tmp_path))
    desk.sync_once()
    assert desk.status()["messages"] == 1
    desk.close()


def test_uidvalidity_change_creates_no_duplicates(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 15)
    desk = Desk(make_profile(dovecot, tmp_path))
    desk.sync_once()
    before = dovecot.uidvalidity("INBOX")
    dovecot.reset_uidvalidity("INBOX")
    assert dovecot.uidvalidity("INBOX") != before
    fill(dovecot, 3, seed=42)
    desk.sync_once()
    assert desk.status()["messages"] == 18
    db = desk.profile.database
    assert count(db, "SELECT count(*) FROM messages") == 18
    desk.close()


def test_corpus_of_broken_mail_syncs_completely(imap_server: Any, tmp_path: Path) -> None:
    files = sorted(CORPUS.glob("*.eml"))
    with imap_server.session() as c:
        for f in files:
            c.append("INBOX", f.read_bytes())
    desk = Desk(make_profile(imap_server, tmp_path))
    desk.sync_once()
    assert desk.status()["messages"] == len(files)
    db = desk.profile.database
    # Messages with defects keep their raw bytes so nothing is lost.
    assert count(db, "SELECT count(*) FROM messages WHERE defects IS NOT NULL AND raw IS NULL") \
        == 0
    assert count(db, "SELECT count(*) FROM messages WHERE defects IS NOT NULL") >= 5
    kinds = {r for (r,) in sqlite3.connect(db).execute("SELECT DISTINCT auto_kind FROM messages")}
    assert {"auto-reply", "bounce", "list", "none"} <= kinds
    desk.close()


def test_search_finds_subject_body_and_customer(dovecot: Any, tmp_path: Path) -> None:
    with dovecot.session() as c:
        c.append("INBOX", b"From: Zo\xc3\xab Adams <zoe@example.org>\nSubject: Printer on fire\n"
                          b"Message-ID: <p1@x>\nContent-Type: text/plain; charset=utf-8\n\n"
                          b"The toner smells like caf\xc3\xa9.\n")
        c.append("INBOX", b"From: bob@example.org\nSubject: Hello\nMessage-ID: <p2@x>\n\nhi\n")
    desk = Desk(make_profile(dovecot, tmp_path))
    desk.sync_once()
    for query in ("printer", "toner", "zoe@example", "Zoë", "cafe", "café fire"):
        found = desk.tickets("all", query)
        assert [t["customer"] for t in found] == ["zoe@example.org"], query
    assert desk.tickets("all", '"; DROP TABLE tickets; --') == []
    desk.close()


def run_cli(profile_path: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(profile_path),
                           *args], capture_output=True, text=True, timeout=120, **kw)


def write_profile(server: Any, tmp: Path, agent: str = "agent-a", **extra: Any) -> Path:
    user = agent if agent in server.users else next(iter(server.users))
    lines = [f'agent = "{agent}"', f'database = "{tmp / (agent + ".sqlite3")}"',
             *[f"{k} = {json.dumps(v)}" for k, v in extra.pop("top", {}).items()],
             "[imap]", f'host = "{server.host}"', f"port = {server.port}", 'security = "plain"',
             f'username = "{user}"', f'password_command = "echo {server.users[user]}"',
             *[f"{k} = {json.dumps(v)}" for k, v in extra.items()]]
    path = tmp / f"{agent}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_sync_tickets_show_status_json(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 10)
    cfg = write_profile(dovecot, tmp_path)
    assert run_cli(cfg, "sync", "--once").returncode == 0
    out = run_cli(cfg, "tickets", "--json")
    assert out.returncode == 0, out.stderr
    tickets = json.loads(out.stdout)
    keys = {"id", "subject", "customer", "customer_name", "status", "claimed_by", "vip",
            "vip_tier", "white_glove", "messages", "created_at", "updated_at"}
    assert tickets and keys <= set(tickets[0])
    shown = json.loads(run_cli(cfg, "show", tickets[0]["id"], "--json").stdout)
    assert shown["id"] == tickets[0]["id"]
    m = shown["messages"][0]
    assert {"from", "date", "direction", "subject", "text", "attachments"} <= set(m)
    assert m["direction"] in ("in", "out")
    status = json.loads(run_cli(cfg, "status", "--json").stdout)
    assert status["messages"] == 10 and status["last_sync"]
    missing = run_cli(cfg, "show", "zzzzzzzz")
    assert missing.returncode == 1 and "No ticket" in missing.stderr
    assert run_cli(cfg, "tickets", "--view", "bogus").returncode == 2


def test_cli_wrong_password_is_plain_error(dovecot: Any, tmp_path: Path) -> None:
    cfg = write_profile(dovecot, tmp_path)
    cfg.write_text(cfg.read_text().replace("echo secret-a", "echo wrong"))
    out = run_cli(cfg, "sync", "--once")
    assert out.returncode == 1
    assert "rejected the user name or password" in out.stderr
    assert "Traceback" not in out.stderr and "wrong" not in out.stderr


def test_cli_no_keyring_no_command_is_plain_error(dovecot: Any, tmp_path: Path) -> None:
    cfg = write_profile(dovecot, tmp_path)
    cfg.write_text("\n".join(line for line in cfg.read_text().splitlines()
                             if "password_command" not in line) + "\n")
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    out = run_cli(cfg, "sync", "--once", env=env)
    assert out.returncode == 1
    assert "password_command" in out.stderr and "Traceback" not in out.stderr


def test_killed_sync_resumes_exactly_once(dovecot: Any, tmp_path: Path) -> None:
    n = 300
    fill(dovecot, n)
    cfg = write_profile(dovecot, tmp_path, batch_size=2)
    db = tmp_path / "agent-a.sqlite3"
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(cfg),
                             "sync", "--once"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def partly_synced() -> bool:
        try:
            return count(db, "SELECT count(*) FROM messages") >= 20
        except sqlite3.Error:
            return False

    wait_until(partly_synced, timeout=60, what="the first batches")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = count(db, "SELECT count(*) FROM messages")
    assert stored < n, "sync finished before it could be killed"
    assert run_cli(cfg, "sync", "--once").returncode == 0
    assert count(db, "SELECT count(*) FROM messages") == n
    assert count(db, "SELECT count(DISTINCT dedup_key) FROM messages") == n
    assert count(db, "SELECT count(*) FROM messages_fts") == n
    assert count(db, "SELECT sum(message_count) FROM tickets") == n


def test_idle_delivers_new_mail_quickly(dovecot: Any, tmp_path: Path) -> None:
    desk = Desk(make_profile(dovecot, tmp_path))
    loop = desk.push_loop()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: loop.watchers and all(w.ready.is_set() for w in loop.watchers),
                   what="IDLE watchers")
        fill(dovecot, 1, seed=7)
        wait_until(lambda: desk.status()["messages"] == 1, timeout=5, what="IDLE delivery")
    finally:
        loop.stop()
        thread.join(timeout=10)
    desk.close()


def test_polling_fallback_without_idle(pymap_server: Any, tmp_path: Path) -> None:
    # pymap offers IDLE too; the loop must also work when woken by polling alone.
    desk = Desk(make_profile(pymap_server, tmp_path, poll_seconds=5))
    loop = desk.push_loop()
    loop.watch = []
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: desk.status()["last_sync"], what="first sync")
        fill(pymap_server, 2, seed=8)
        loop.wake()  # what the poll timer does, without waiting its interval in a test
        wait_until(lambda: desk.status()["messages"] == 2, what="polled delivery")
    finally:
        loop.stop()
        thread.join(timeout=10)
    desk.close()


@pytest.mark.allow_log_errors
def test_dropped_connection_mid_fetch_then_resume(dovecot: Any, tmp_path: Path) -> None:
    from proxy import ChopProxy

    fill(dovecot, 40)
    with ChopProxy(dovecot.host, dovecot.port) as proxy:
        profile = make_profile(dovecot, tmp_path, batch_size=5)
        settings = profile.imap
        desk = Desk(profile, connect_imap=lambda: connect(
            type(settings)(**{**settings.__dict__, "port": proxy.port})))
        proxy.cut_after(40_000)  # server->client bytes, mid-way through the fetches
        with pytest.raises(MailError):
            desk.sync_once()
        assert "IMAP" in (desk.status()["last_error"] or "")
        partial = desk.status()["messages"]
        assert partial < 40
        proxy.cut_after(None)
        desk.sync_once()
        assert desk.status()["messages"] == 40
        assert desk.status()["last_error"] is None
        desk.close()



def test_windows_over_uid_gaps_resume_and_store_each_once(imap_server: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Windows of 4 messages: holes in the UIDs, a window boundary on a hole, and a
    # second pass that starts mid-folder (more than a window of UIDs past last_uid).
    monkeypatch.setattr(mail_sync, "UID_WINDOW", 4)
    fill(imap_server, 30)
    with imap_server.session() as c:
        c.select_folder("INBOX")
        uids = sorted(c.search("ALL"))
        c.delete_messages(uids[2:12] + uids[15::3])
        c.expunge()
        left = len(c.search("ALL"))
    desk = Desk(make_profile(imap_server, tmp_path))
    desk.sync_once()
    assert desk.status()["messages"] == left
    fill(imap_server, 14, seed=7)
    assert desk.sync_once()
    assert desk.status()["messages"] == left + 14
    assert not desk.sync_once()
    db = tmp_path / "agent-a.sqlite3"
    assert count(db, "SELECT count(*) FROM locations") == left + 14
    desk.close()


def test_expunge_during_a_windowed_sync_skips_nothing(dovecot: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Windows are placed by message number; numbers shift when mail already stored is
    # expunged mid-sync. The UID ranges still follow each other, so nothing is missed.
    monkeypatch.setattr(mail_sync, "UID_WINDOW", 5)
    fill(dovecot, 40)
    real = MailSync._store_batch
    expunged: list[int] = []

    def store_then_expunge(self: MailSync, *args: Any, **kw: Any) -> SyncResult:
        result = real(self, *args, **kw)
        if not expunged:
            with dovecot.session() as c:
                c.select_folder("INBOX")
                expunged.extend(sorted(c.search("ALL"))[:3])
                c.delete_messages(expunged)
                c.expunge()
        return result

    monkeypatch.setattr(MailSync, "_store_batch", store_then_expunge)
    desk = Desk(make_profile(dovecot, tmp_path))
    desk.sync_once()
    assert expunged and desk.status()["messages"] == 40
    desk.close()


def test_sync_result_stays_bounded(dovecot: Any, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Past the bounds: "every ticket changed", the first new mails listed, the rest counted.
    for module in (mail_sync, changes_module):
        monkeypatch.setattr(module, "KEEP_TICKETS", 5)
        monkeypatch.setattr(module, "KEEP_INBOUND", 3)
    fill(dovecot, 30)
    desk = Desk(make_profile(dovecot, tmp_path, batch_size=4))
    seen: list[SyncResult] = []

    def hook(batch: SyncResult) -> changes_module.Changes:
        seen.append(batch)  # every stored batch, new mail and back-filled older mail
        return changes_module.Changes(set(), set())

    desk.session.batch_hooks.append(hook)
    changes = desk.sync_once()
    assert changes.tickets == {"*"}
    assert changes.new_inbound is not None and len(changes.new_inbound) == 3
    inbound = sum(len(b.new_inbound) for b in seen)
    assert changes.new_inbound_count == inbound > 3
    assert changes.new_inbound == [e for b in seen for e in b.new_inbound][:3]
    assert sum(b.new_messages for b in seen) == 30
    fill(dovecot, 1, seed=9)
    small = desk.sync_once()
    assert small.tickets and "*" not in small.tickets and small.new_inbound_count <= 1
    desk.close()
