"""Newest first: a big mailbox's latest mail is in after one short pass, older mail fills in
behind (helpdesk/mail/backfill.py), and every fault still stores each message once."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from helpers import make_profile, wait_until
from mailgen import generate
from test_sync import ROOT, count, run_cli, write_profile

from helpdesk.changes import Changes
from helpdesk.desk import Desk
from helpdesk.mail.sync import SyncResult


def fill(server: Any, n: int, seed: int = 1, folder: str = "INBOX") -> list[bytes]:
    msgs = list(generate(n, seed=seed))
    with server.session() as c:
        if c.has_capability("MULTIAPPEND"):
            for i in range(0, n, 50):
                c.multiappend(folder, msgs[i:i + 50])
        else:
            for raw in msgs:
                c.append(folder, raw)
    return msgs


def server_uids(server: Any, folder: str = "INBOX") -> list[int]:
    with server.session() as c:
        c.select_folder(folder, readonly=True)
        return sorted(c.search("ALL"))


def stored_uids(db: Path, folder: str = "INBOX") -> list[int]:
    con = sqlite3.connect(db)
    try:
        return sorted(u for (u,) in con.execute(
            "SELECT l.uid FROM locations l JOIN folders f ON f.id = l.folder_id "
            "AND f.uidvalidity = l.uidvalidity WHERE f.name = ?", (folder,)))
    finally:
        con.close()


def assert_exactly_once(db: Path, n: int) -> None:
    assert count(db, "SELECT count(*) FROM messages") == n
    assert count(db, "SELECT count(DISTINCT dedup_key) FROM messages") == n
    assert count(db, "SELECT count(*) FROM messages_fts") == n
    assert count(db, "SELECT sum(message_count) FROM tickets") == n
    assert count(db, "SELECT count(*) FROM folders WHERE backfill_below IS NOT NULL") == 0


def test_first_pass_stores_the_newest_mail_and_the_rest_fills_in(dovecot: Any,
                                                                  tmp_path: Path) -> None:
    fill(dovecot, 60)
    uids = server_uids(dovecot)
    desk = Desk(make_profile(dovecot, tmp_path, batch_size=4))  # the newest 12 first
    desk.session.sync_pass()
    db = desk.profile.database
    assert stored_uids(db) == uids[-12:]
    progress = desk.sync_progress()
    assert (progress.stored, progress.total, progress.pending) == (12, 60, True)
    assert desk.status()["older_mail"] == {"stored": 12, "total": 60, "pending": True,
                                            "team_history": False}
    heard: list[tuple[int, int]] = []
    desk.sync_once(on_progress=lambda p: heard.append((p.stored, p.total)))
    assert_exactly_once(db, 60)
    assert stored_uids(db) == uids
    # Each pass after the first takes one slice of older mail (40 messages), newest first.
    assert heard == [(52, 60)]
    assert not desk.sync_progress().pending
    assert not desk.sync_once()  # nothing left, nothing new
    desk.close()


def test_newest_first_builds_the_same_tickets_as_oldest_first(dovecot: Any,
                                                              tmp_path: Path) -> None:
    # Replies come in before the mail they answer: tickets must not depend on the order.
    fill(dovecot, 80, seed=3)
    newest = Desk(make_profile(dovecot, tmp_path, batch_size=2, db_name="newest.sqlite3"))
    oldest = Desk(make_profile(dovecot, tmp_path, batch_size=100, db_name="oldest.sqlite3"))
    newest.session.sync_pass()
    assert newest.status()["messages"] == 6
    newest.sync_once()
    oldest.sync_once()
    cols = ("id, thread_key, subject, customer_email, created_at, updated_at, message_count, "
            "snippet, waiting_since, first_in_at, last_in_at, first_out_at")

    def tickets(desk: Desk) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(desk.profile.database)
        try:
            return con.execute(f"SELECT {cols} FROM tickets ORDER BY id").fetchall()
        finally:
            con.close()

    assert tickets(newest) == tickets(oldest)
    assert len(tickets(newest)) > 10
    newest.close()
    oldest.close()


def test_new_mail_during_the_backfill_is_stored_at_once(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 50)
    desk = Desk(make_profile(dovecot, tmp_path, batch_size=2))  # head 6, slices of 20
    desk.session.sync_pass()
    fill(dovecot, 3, seed=77)
    newest = server_uids(dovecot)[-3:]
    changes = desk.session.sync_pass()  # new mail first, then one slice of older mail
    db = desk.profile.database
    assert set(newest) <= set(stored_uids(db))
    assert count(db, "SELECT count(*) FROM messages") == 6 + 3 + 20
    assert changes.new_inbound_count <= 3  # older mail is not announced as new
    assert desk.sync_progress().pending
    desk.sync_once()
    assert_exactly_once(db, 53)
    desk.close()


def test_uidvalidity_change_mid_backfill_starts_over_without_duplicates(
        dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 40)
    desk = Desk(make_profile(dovecot, tmp_path, batch_size=2))
    desk.session.sync_pass()
    desk.session.sync_pass()
    db = desk.profile.database
    partial = count(db, "SELECT count(*) FROM messages")
    assert 6 < partial < 40
    dovecot.reset_uidvalidity("INBOX")
    fill(dovecot, 2, seed=42)
    desk.sync_once()
    assert_exactly_once(db, 42)
    assert stored_uids(db) == server_uids(dovecot)
    desk.close()


def test_search_covers_what_is_in(dovecot: Any, tmp_path: Path) -> None:
    with dovecot.session() as c:
        c.append("INBOX", b"From: ann@example.org\nSubject: Ancient printer\n"
                          b"Message-ID: <old@x>\n\nThe oldest question.\n")
    fill(dovecot, 30)
    with dovecot.session() as c:
        c.append("INBOX", b"From: zed@example.org\nSubject: Newest toaster\n"
                          b"Message-ID: <new@x>\n\nThe newest question.\n")
    desk = Desk(make_profile(dovecot, tmp_path, batch_size=3))
    desk.session.sync_pass()
    assert [t["customer"] for t in desk.tickets("all", "toaster")] == ["zed@example.org"]
    assert desk.tickets("all", "ancient") == []  # not in yet
    desk.sync_once()
    assert [t["customer"] for t in desk.tickets("all", "ancient")] == ["ann@example.org"]
    desk.close()


def test_intents_run_between_batches_of_older_mail(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 40)
    desk = Desk(make_profile(dovecot, tmp_path, batch_size=2))
    desk.session.sync_pass()
    batches: list[int] = []
    ran_at: list[int] = []
    asked = threading.Event()

    def hook(batch: SyncResult) -> Changes:
        batches.append(batch.new_messages)
        if len(batches) == 2:
            asked.set()
            wait_until(lambda: desk.session._jobs, what="the intent queued")
        return Changes(set(), set())

    desk.session.batch_hooks.append(hook)
    thread = threading.Thread(target=desk.sync_once)
    thread.start()
    asked.wait(30)
    assert desk.session.submit(lambda: ran_at.append(len(batches))).result(30) is None
    thread.join(60)
    assert ran_at == [2]  # right after the batch it was queued in, not after the back-fill
    assert len(batches) == 4  # 34 older messages: 20 a pass, stored 10 at a time
    desk.close()


def test_the_push_loop_fills_in_older_mail_by_itself(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 40)
    desk = Desk(make_profile(dovecot, tmp_path, batch_size=2))
    statuses: list[Any] = []
    loop = desk.push_loop(on_status=statuses.append)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: desk.status()["messages"] == 40, timeout=60, what="the back-fill")
        wait_until(lambda: statuses and statuses[-1].progress
                   and not statuses[-1].progress.pending, what="a status saying all is in")
    finally:
        loop.stop()
        thread.join(timeout=10)
    assert statuses[0].ok and statuses[0].progress.pending
    assert_exactly_once(desk.profile.database, 40)
    desk.close()


def test_cli_sync_says_how_much_older_mail_is_in(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 30)
    cfg = write_profile(dovecot, tmp_path, batch_size=3)
    out = run_cli(cfg, "sync", "--once")
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("older mail")]
    assert lines[0] == "older mail: 9 of 30 messages in"
    status = json.loads(run_cli(cfg, "status", "--json").stdout)
    assert status["older_mail"] == {"stored": 30, "total": 30, "pending": False,
                                    "team_history": False}


def test_newest_first_sync_killed_at_random_points_stores_each_once(
        dovecot: Any, tmp_path: Path) -> None:
    n = 300
    fill(dovecot, n)
    cfg = write_profile(dovecot, tmp_path, batch_size=2)  # head 6, then 294 older ones
    db = tmp_path / "agent-a.sqlite3"
    rng = random.Random(16)
    killed_at: list[int] = []
    for _ in range(3):
        already = count(db, "SELECT count(*) FROM messages") if db.exists() else 0
        target = already + rng.randint(8, 60)
        proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(cfg),
                                 "sync", "--once"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

        def reached(target: int = target) -> bool:
            try:
                return count(db, "SELECT count(*) FROM messages") >= target
            except sqlite3.Error:
                return False

        wait_until(reached, timeout=60, interval=0.005, what=f"{target} messages stored")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at.append(count(db, "SELECT count(*) FROM messages"))
        assert count(db, "SELECT count(DISTINCT dedup_key) FROM messages") == killed_at[-1]
    assert killed_at[-1] < n, "the sync finished before it could be killed"
    assert count(db, "SELECT count(*) FROM folders WHERE backfill_below IS NOT NULL") == 1
    assert run_cli(cfg, "sync", "--once").returncode == 0
    assert_exactly_once(db, n)
    assert stored_uids(db) == server_uids(dovecot)


def test_window_shows_the_newest_tickets_then_older_ones_fill_in_with_a_bar(
        dovecot: Any, tmp_path: Path, qtbot: Any) -> None:
    from test_ui_support import App

    fill(dovecot, 60)
    desk = Desk(make_profile(dovecot, tmp_path, batch_size=2))  # 6 first, then 20 a pass
    values: list[tuple[int, int]] = []
    app = App(qtbot, desk)  # nothing synced yet: the list is empty
    w = app.window
    bar = w.sync_progress
    bar.valueChanged.connect(lambda v: values.append((v, bar.maximum())))
    listed: list[tuple[int, bool]] = []  # (rows, bar showing) each time the list is applied
    w.list_applied.connect(lambda _s: listed.append((w.model.rowCount(), bar.isVisible())))

    def hold(batch: SyncResult) -> Changes:
        # The first batch of older mail waits (on the worker) until the window has listed
        # the newest tickets: a real back-fill takes seconds a slice, this one would not.
        if desk.status()["messages"] > 6:
            wait_until(lambda: any(rows for rows, _shown in listed), timeout=20,
                       what="the newest tickets listed")
        return Changes(set(), set())

    desk.session.batch_hooks.append(hold)
    try:
        assert not bar.isVisible()
        app.service.start_sync()
        qtbot.waitUntil(lambda: bar.isVisible() and bar.value() > 0, timeout=20_000)
        assert bar.value() < bar.maximum() == 60
        qtbot.waitUntil(lambda: not bar.isVisible(), timeout=60_000)
        # The newest tickets were listed while older mail was still coming in.
        assert any(rows > 0 and showing for rows, showing in listed), listed
        qtbot.waitUntil(lambda: w.model.rowCount() == len(desk.ticket_ids("unclaimed"))
                        and desk.status()["messages"] == 60, timeout=20_000)
        assert values[0] == (6, 60) and len(values) >= 3  # filled in over several passes
        assert [v for v, _m in values] == sorted(v for v, _m in values)
        assert_exactly_once(desk.profile.database, 60)
    finally:
        app.stop()


def test_a_folder_no_longer_synced_is_not_waited_for(dovecot: Any, tmp_path: Path) -> None:
    import dataclasses

    with dovecot.session() as c:
        c.create_folder("Support")
    fill(dovecot, 30, folder="Support")
    profile = make_profile(dovecot, tmp_path, batch_size=2)
    both = dataclasses.replace(profile, imap=dataclasses.replace(
        profile.imap, folders=("INBOX", "Support")))
    desk = Desk(both)
    desk.session.sync_pass()  # Support's newest mail; its older mail still to come
    assert desk.sync_progress().pending
    desk.close()
    desk = Desk(profile)  # the profile dropped Support
    desk.sync_once()  # returns: nothing it syncs is missing
    assert not desk.sync_progress().pending
    assert desk.status()["older_mail"]["pending"] is False
    desk.close()
    desk = Desk(both)  # and when it is synced again, its older mail comes in
    desk.sync_once()
    assert desk.status()["messages"] == 30
    desk.close()


def test_two_processes_back_filling_one_store_store_each_once(dovecot: Any,
                                                              tmp_path: Path) -> None:
    # The GUI and a CLI `sync` on one database: both fill in the same older mail at once.
    n = 120
    fill(dovecot, n)
    cfg = write_profile(dovecot, tmp_path, batch_size=2)
    db = tmp_path / "agent-a.sqlite3"
    assert run_cli(cfg, "status").returncode == 0  # the store exists, migrated
    procs = [subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(cfg),
                               "sync", "--once"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert_exactly_once(db, n)
    assert stored_uids(db) == server_uids(dovecot)
