"""Team-log snapshots and compaction against Dovecot (issue 16): a late joiner loads an
agreed snapshot and matches the others exactly, a lying or corrupt snapshot is never
loaded, compaction by two desktops in separate processes at once loses nothing, a
desktop left behind by a compaction catches up, and an old desktop that does not know
snapshot events keeps working."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import zlib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile
from test_snapshots import state_of
from test_sync import ROOT

from helpdesk.desk import Desk
from helpdesk.mail.imap import connect
from helpdesk.store.engine import raw_cursor
from helpdesk.team import snapshots
from helpdesk.team.compaction import LOG_UID_HEADER
from helpdesk.team.events import Event, encode
from helpdesk.team.log import TeamLog
from helpdesk.team.registry import STATE
from helpdesk.team.state import document, encode_document

LOG = "HelpDesk/Log"
ARCHIVE = "HelpDesk/Log/Archive"
EVERY = 20
AGENTS = ("agent-a", "agent-b", "agent-c", "agent-d")
CUSTOMERS = ("ann@example.com", "bob@example.org")


def desk(server: Any, tmp: Path, agent: str, **kw: Any) -> Desk:
    kw.setdefault("snapshot_every", EVERY)
    kw.setdefault("compact_team_log", False)
    return Desk(make_profile(server, tmp, agent, **kw))


def write_events(server: Any, n: int, start: int = 0) -> None:
    """``n`` teammates' events of several kinds, appended straight to the log."""
    with server.session() as c:
        if not c.folder_exists(LOG):
            c.create_folder(LOG)
        for i in range(start, start + n):
            agent = AGENTS[i % 3]
            kind = i % 5
            if kind == 0:
                ev = Event("claim", agent, f"t{i % 7}", {"lease": 600})
            elif kind == 1:
                ev = Event("vip", agent, CUSTOMERS[i % 2], {"vip": i % 3 == 0, "tier": "gold"})
            elif kind == 2:
                ev = Event("note", agent, CUSTOMERS[i % 2], {"text": f"note {i}"})
            elif kind == 3:
                ev = Event("status", agent, f"t{i % 7}", {"status": "closed"})
            else:
                ev = Event("release", agent, f"t{(i - 4) % 7}")
            c.append(LOG, encode(ev, "n" * 8), flags=[b"\\Seen"])


def meta(d: Desk, key: str) -> str | None:
    return d.store.get_meta(key)


def uids_of(uid_set: str) -> list[int]:
    out: list[int] = []
    for part in uid_set.split(","):
        lo, _, hi = part.partition(":")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def agreed_snapshot(dovecot: Any, tmp: Path) -> tuple[Desk, Desk]:
    """Desk A proposes and writes a snapshot, desk B acknowledges it."""
    write_events(dovecot, 3 * EVERY)
    a, b = desk(dovecot, tmp, "agent-a"), desk(dovecot, tmp, "agent-b")
    a.sync_once()  # folds, proposes the mark, writes the parts
    b.sync_once()  # folds the mark (its own digest), the parts, acknowledges
    a.sync_once()
    with a.store.read() as conn:
        rows = raw_cursor(conn).execute(
            "SELECT uid, agent, agreed FROM team_snapshot_marks").fetchall()
    assert rows and rows[-1][1:] == ("agent-a", 1), rows
    return a, b


def test_a_late_joiner_loads_the_agreed_snapshot_and_matches_exactly(
        dovecot: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a, b = agreed_snapshot(dovecot, tmp_path)
    write_events(dovecot, 7, start=500)  # and more after the snapshot
    a.sync_once()
    b.sync_once()
    caplog.set_level(logging.INFO, logger="helpdesk.team.log")
    profile = make_profile(dovecot, tmp_path, "agent-c", snapshot_every=0)
    fetched: list[int] = []

    def recording() -> Any:
        client = connect(profile.imap)
        plain = client._imap.uid

        def uid(command: str, *args: Any) -> Any:
            if command.upper() == "FETCH" and "BODY.PEEK[TEXT]" in str(args[-1]).upper():
                fetched.extend(uids_of(str(args[0])))
            return plain(command, *args)
        client._imap.uid = uid
        return client

    c = Desk(profile, connect_imap=recording)
    c.sync_once()
    assert "loaded the snapshot at uid" in caplog.text
    mark = int(meta(c, "team.base") or 0)
    assert mark > 0
    assert state_of(c.store) == state_of(a.store) == state_of(b.store)
    assert fetched and min(fetched) > mark  # no event the snapshot covers was downloaded
    # its lease clock is the snapshot's clamped time, then moves on with the log
    assert c.team.cursor()[1:] == a.team.cursor()[1:]
    # and claims keep being decided alike
    for d in (a, b, c):
        d.close()


def _lying_parts(a: Desk, mark: int, agent: str) -> list[Event]:
    """A self-consistent snapshot of a state that is not the log's (a VIP nobody set)."""
    with a.store.read() as conn:
        packed = raw_cursor(conn).execute("SELECT state FROM team_snapshot_marks WHERE uid = ?",
                                          (mark,)).fetchone()[0]
    doc = document(zlib.decompress(packed))
    for row in doc["tables"]["customers"]:
        row[2] = 1  # vip
    lie = encode_document(doc, STATE)
    uidvalidity = a.team.cursor()[0] or 0
    return snapshots.part_events(agent, mark, lie, uidvalidity)


def test_a_lying_or_corrupt_snapshot_is_refused_and_never_loaded(
        dovecot: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_events(dovecot, 3 * EVERY)
    # A desk that proposes but never writes its parts (a crash between the two)
    a = desk(dovecot, tmp_path, "agent-a")
    a.upkeep.write_parts = lambda link: False  # type: ignore[method-assign]
    a.sync_once()
    with a.store.read() as conn:
        mark = raw_cursor(conn).execute("SELECT max(uid) FROM team_snapshot_marks").fetchone()[0]
    assert mark
    lie = _lying_parts(a, mark, "agent-a")
    honest_digest = meta_digest(a, mark)
    assert lie[0].data["digest"] != honest_digest
    corrupt = [Event("snapshot", "agent-a", str(mark), {**lie[0].data, "digest": "e" * 64,
                                                         "data": "AAAA"})]
    with dovecot.session() as c:
        for ev in [*lie, *corrupt,
                   # forged acknowledgements under a second name
                   Event("snapshot-ack", "agent-z", str(mark), {
                       "mark": mark, "digest": "e" * 64, "layout": snapshots.this_layout()}),
                   Event("snapshot", "agent-a", str(mark), {**lie[0].data, "data": "!!"})]:
            c.append(LOG, encode(ev, "n" * 8), flags=[b"\\Seen"])
    caplog.set_level(logging.INFO)
    b = desk(dovecot, tmp_path, "agent-b")
    b.sync_once()
    assert "disagrees with this desktop's own state" in caplog.text
    with b.store.read() as conn:
        row = raw_cursor(conn).execute("SELECT disagreed, agreed FROM team_snapshot_marks "
                                       "WHERE uid = ?", (mark,)).fetchone()
    assert row[1] == 0 and row[0] in (lie[0].data["digest"], "e" * 64)  # the last refused
    assert caplog.text.count("disagrees with this desktop's own state") == 2
    status = b.log_status()  # the note a person sees (CLI status, the window's bar)
    assert status["snapshots_refused"] and "disagrees" in status["note"]
    with b.store.read() as conn:
        acks = raw_cursor(conn).execute("SELECT agent FROM team_snapshot_acks").fetchall()
    assert ("agent-b",) not in acks  # nobody honest acknowledges a lie
    # A new desktop: the lie is complete but unacknowledged, the corrupt one acknowledged
    # but does not assemble: neither is loaded, it replays the whole log.
    c = desk(dovecot, tmp_path, "agent-c", snapshot_every=0)
    c.sync_once()
    assert not meta(c, "team.base")
    assert "not acknowledged by a second desktop" in caplog.text
    assert state_of(c.store) == state_of(b.store)
    for d in (a, b, c):
        d.close()


def meta_digest(d: Desk, mark: int) -> str:
    with d.store.read() as conn:
        return str(raw_cursor(conn).execute("SELECT digest FROM team_snapshot_marks WHERE "
                                            "uid = ?", (mark,)).fetchone()[0])


COMPACT = r"""
import sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from pathlib import Path
from helpers import make_profile
from types import SimpleNamespace
from helpdesk.desk import Desk
from helpdesk.mail.imap import connect
import json
server = SimpleNamespace(**json.loads(sys.argv[2]))
d = Desk(make_profile(server, Path(sys.argv[3]), sys.argv[4], snapshot_every=20))
d.session.replay(d.session.syncer)
print(d.session.call(lambda: d.upkeep.compact(d.session.syncer)))
print(d.session.syncer.reconnects)
d.close()
"""


def archived(dovecot: Any) -> list[int]:
    with dovecot.session() as c:
        c.select_folder(ARCHIVE, readonly=True)
        got = c.fetch(c.search(["ALL"]), [f"BODY.PEEK[HEADER.FIELDS ({LOG_UID_HEADER})]"])
    return sorted(int(v[next(iter(k for k in v if k.startswith(b"BODY")))]
                      .split(b"/")[1]) for v in got.values())


def log_uids(dovecot: Any) -> list[int]:
    with dovecot.session() as c:
        c.select_folder(LOG, readonly=True)
        return sorted(c.search(["ALL"]))


def test_compaction_by_two_processes_at_once_loses_nothing_and_joiners_match(
        dovecot: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_events(dovecot, 10)
    behind = desk(dovecot, tmp_path, "agent-d", snapshot_every=0)
    behind.sync_once()  # then away while the others snapshot and compact
    write_events(dovecot, 3 * EVERY, start=10)
    a, b = agreed_snapshot(dovecot, tmp_path)
    mark = _agreed_mark(a)
    before = log_uids(dovecot)
    server = json.dumps({k: getattr(dovecot, k) for k in ("host", "port", "users")})
    for agent in ("agent-a", "agent-b"):
        (tmp_path / agent).mkdir(exist_ok=True)
    procs = [subprocess.Popen([sys.executable, "-c", COMPACT, str(ROOT), server,
                               str(tmp_path / agent), agent], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for agent in ("agent-a", "agent-b")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    moved = sorted(int(o[0].strip().splitlines()[-2]) for o in outs)
    assert moved[0] == 0 and moved[1] == len([u for u in before if u <= mark]), outs
    after = log_uids(dovecot)
    assert [u for u in before if u <= mark] == archived(dovecot)  # each exactly once
    assert min(after) > mark and set(before) - set(after) == {u for u in before if u <= mark}
    write_events(dovecot, 5, start=900)
    for d in (a, b):
        d.sync_once()
    caplog.set_level(logging.INFO, logger="helpdesk.team.log")
    late = desk(dovecot, tmp_path, "agent-c", snapshot_every=0)
    late.sync_once()
    behind.sync_once()
    assert state_of(late.store) == state_of(a.store) == state_of(b.store) \
        == state_of(behind.store)
    assert int(meta(behind, "team.base") or 0) == mark
    for d in (a, b, late, behind):
        d.close()


def _agreed_mark(d: Desk) -> int:
    with d.store.read() as conn:
        return int(raw_cursor(conn).execute(
            "SELECT max(uid) FROM team_snapshot_marks WHERE agreed").fetchone()[0])


def test_an_old_desktop_that_knows_no_snapshots_keeps_working(dovecot: Any,
                                                             tmp_path: Path) -> None:
    a, b = agreed_snapshot(dovecot, tmp_path)
    old = desk(dovecot, tmp_path, "agent-c", snapshot_every=0)
    registry = old.team.registry.without(*snapshots.TYPES)
    old.session.team = TeamLog(old.store, old.team.folder, old.profile.imap, registry)
    old.sync_once()
    with old.store.read() as conn:
        kept = raw_cursor(conn).execute("SELECT DISTINCT type FROM team_pending").fetchall()
    assert {t for (t,) in kept} >= {"snapshot-mark", "snapshot", "snapshot-ack"}
    assert not meta(old, "team.base")  # it replayed the whole log
    ours, theirs = document(state_of(old.store)), document(state_of(a.store))
    for table in ("ticket_state", "customers", "notes"):
        assert ours["tables"][table] == theirs["tables"][table]
    # and what it publishes, the others fold
    old.publish(old.event("vip", "zed@example.com", vip=True, tier="gold"))
    a.sync_once()
    assert a.customer("zed@example.com")["vip"]
    for d in (a, b, old):
        d.close()


KILLED = r"""
import os, signal, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from pathlib import Path
from types import SimpleNamespace
import json
from helpers import make_profile
from helpdesk.desk import Desk
from helpdesk.team import compaction
compaction.WINDOW = 5
server = SimpleNamespace(**json.loads(sys.argv[2]))
d = Desk(make_profile(server, Path(sys.argv[3]), "agent-a", snapshot_every=20))
d.session.replay(d.session.syncer)
windows = [0]
plain = compaction.move_to_archive

def dying_move(client, *args, **kw):
    original = client.multiappend
    def multiappend(folder, msgs):
        original(folder, msgs)
        windows[0] += 1
        if windows[0] == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-copy, nothing expunged yet
    client.multiappend = multiappend
    return plain(client, *args, **kw)

import helpdesk.team.upkeep as upkeep
upkeep.move_to_archive = dying_move
d.session.call(lambda: d.upkeep.compact(d.session.syncer))
"""


def test_a_compaction_killed_mid_copy_is_resumed_and_loses_nothing(dovecot: Any,
                                                                   tmp_path: Path) -> None:
    a, b = agreed_snapshot(dovecot, tmp_path)
    mark = _agreed_mark(a)
    before = log_uids(dovecot)
    server = json.dumps({k: getattr(dovecot, k) for k in ("host", "port", "users")})
    (tmp_path / "killed").mkdir()
    proc = subprocess.run([sys.executable, "-c", KILLED, str(ROOT), server,
                           str(tmp_path / "killed")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -9, proc.stderr
    copied = archived(dovecot)
    assert copied == [u for u in before if u <= 10]  # two windows of 5, then killed
    assert set(before) <= set(log_uids(dovecot))  # nothing removed from the log yet
    # The same agent's desk resumes (its own claim's lease is no obstacle to it), after
    # the archive's newest copy: each event archived exactly once.
    moved = a.session.call(lambda: a.upkeep.compact(a.session.syncer))
    assert moved == len([u for u in before if 10 < u <= mark])
    assert archived(dovecot) == [u for u in before if u <= mark]
    assert min(log_uids(dovecot)) > mark
    b.sync_once()
    late = desk(dovecot, tmp_path, "agent-c", snapshot_every=0)
    late.sync_once()
    assert state_of(late.store) == state_of(a.store) == state_of(b.store)
    for d in (a, b, late):
        d.close()


def _notes(d: Desk) -> int:
    with d.store.read() as conn:
        return int(raw_cursor(conn).execute("SELECT count(*) FROM notes").fetchone()[0])


def test_a_joiner_is_useful_once_the_live_state_is_in_and_stores_the_history_next(
        dovecot: Any, tmp_path: Path) -> None:
    """A new desktop's first pass stores the snapshot's live state (tickets, claims,
    customers) and ends: the window shows it while the history (notes, cared answers,
    old status changes) goes in with the next pass, before anything after the mark is
    folded (a note deleted after the mark reads the notes of the history)."""
    a, b = agreed_snapshot(dovecot, tmp_path)
    with a.store.read() as conn:
        old_note = raw_cursor(conn).execute(
            "SELECT id, customer_email FROM notes WHERE deleted = 0 ORDER BY at LIMIT 1"
        ).fetchone()
    a.delete_note(old_note[1], old_note[0])  # after the mark
    write_events(dovecot, 7, start=500)
    a.sync_once()
    b.sync_once()
    c = desk(dovecot, tmp_path, "agent-c", snapshot_every=0)
    c.session.sync_pass()  # the first pass: what the window shows first
    progress = c.session.progress
    assert progress is not None and progress.team_history and progress.more
    assert c.team.history_due() and meta(c, "team.base")
    with c.store.read() as conn:
        claimed = raw_cursor(conn).execute("SELECT count(*) FROM ticket_state").fetchone()[0]
    assert claimed and _notes(c) == 0  # the live state is in, the history not yet
    shown = c.customer(old_note[1])
    assert shown["notes_loading"] and not shown["notes"]
    today = date.today()
    assert c.metrics.compare(today - timedelta(days=30), today)["history_loading"]
    assert c.status()["older_mail"]["team_history"]
    c.sync_once()  # the next pass stores the history, then folds what follows the mark
    assert not c.team.history_due() and not c.session.progress.team_history
    assert _notes(c) == _notes(a) > 0
    assert state_of(c.store) == state_of(a.store) == state_of(b.store)
    assert not c.customer(old_note[1])["notes_loading"]
    assert not c.metrics.compare(today - timedelta(days=30), today)["history_loading"]
    for d in (a, b, c):
        d.close()


def test_a_joiner_restarted_before_the_history_reads_the_snapshot_again(
        dovecot: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The process ends (or dies) after storing the live state: the next start reads
    the snapshot again and stores its history, and ends exactly where the others are."""
    a, b = agreed_snapshot(dovecot, tmp_path)
    write_events(dovecot, 7, start=500)
    a.sync_once()
    profile = make_profile(dovecot, tmp_path, "agent-c", snapshot_every=0)
    first = Desk(profile)
    first.session.sync_pass()
    assert first.team.history_due()
    first.close()  # the parsed snapshot it held is gone with it
    caplog.set_level(logging.INFO, logger="helpdesk.team.log")
    again = Desk(profile)
    assert again.team.history_due()
    again.sync_once()
    assert "stored the history of the snapshot" in caplog.text
    assert not again.team.history_due()
    b.sync_once()
    assert state_of(again.store) == state_of(a.store) == state_of(b.store)
    for d in (a, b, again):
        d.close()


def test_a_snapshot_whose_history_cannot_be_stored_is_forgotten_and_refused(
        dovecot: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Anyone with the mailbox password can write a snapshot (and acknowledge it under
    a second name) whose live state is sound and whose history is not: the joiner that
    stored its live state forgets it, never tries it again, and folds the whole log."""
    write_events(dovecot, 3 * EVERY)
    a = desk(dovecot, tmp_path, "agent-a")
    a.upkeep.write_parts = lambda link: False  # type: ignore[method-assign]
    a.sync_once()
    with a.store.read() as conn:
        mark, packed = raw_cursor(conn).execute(
            "SELECT uid, state FROM team_snapshot_marks WHERE state IS NOT NULL "
            "ORDER BY uid DESC").fetchone()
    head = zlib.decompress(packed).partition(b"\n")[0]
    hostile = head + b"\n" + b'{"cared":[["\x1b[2J",' + b"\xff" * 10
    parts = snapshots.part_events("agent-a", mark, hostile, a.team.cursor()[0] or 0)
    digest = parts[0].data["digest"]
    with dovecot.session() as c:
        for ev in [*parts, Event("snapshot-ack", "agent-z", str(mark), {
                "mark": mark, "digest": digest, "layout": snapshots.this_layout()})]:
            c.append(LOG, encode(ev, "n" * 8), flags=[b"\\Seen"])
    caplog.set_level(logging.INFO, logger="helpdesk.team.log")
    c = desk(dovecot, tmp_path, "agent-c", snapshot_every=0)
    c.session.sync_pass()
    assert c.team.history_due()  # its live state was sound
    c.sync_once()
    assert "cannot be stored" in caplog.text
    assert digest in (meta(c, "team.refused") or "").split()
    assert not c.team.history_due() and not meta(c, "team.base")  # the whole log, folded
    a.sync_once()
    assert state_of(c.store) == state_of(a.store)
    # and it is not tried again by this desktop
    caplog.clear()
    c.sync_once()
    assert "cannot be stored" not in caplog.text
    for d in (a, c):
        d.close()


def test_the_window_says_the_team_history_is_coming_in(dovecot: Any, tmp_path: Path,
                                                      qtbot: Any) -> None:
    """Between the live state and the history the window's bar says "Team history"
    (not "Older mail"), and it goes once the history is in."""
    from test_ui_support import App

    a, b = agreed_snapshot(dovecot, tmp_path)
    c = desk(dovecot, tmp_path, "agent-c", snapshot_every=0)
    app = App(qtbot, c)
    w = app.window
    seen: list[tuple[bool, bool, str]] = []
    shown = w._show_progress

    def recording(status: Any) -> None:
        shown(status)
        history = bool(status.progress is not None and status.progress.team_history)
        seen.append((history, w.sync_progress.isVisible(), w.sync_progress.format()))

    w._show_progress = recording  # type: ignore[method-assign]
    try:
        app.service.start_sync()
        qtbot.waitUntil(lambda: any(h for h, _v, _f in seen) and not c.team.history_due()
                        and seen[-1][:2] == (False, False), timeout=30_000)
        assert (True, True, "Team history") in seen
        assert state_of(c.store) == state_of(a.store)
    finally:
        app.stop()
        a.close()
        b.close()


def test_a_joiner_killed_between_live_state_and_history_ends_where_the_others_are(
        dovecot: Any, tmp_path: Path) -> None:
    """kill -9 of ``sync --once`` once the live state is committed and the history not
    yet (and, on later rounds, at whatever point it has reached): the next run stores
    the history (reading the snapshot again) and ends with the others' state."""
    import signal
    import sqlite3

    from helpers import wait_until
    from test_sync import run_cli, write_profile

    a, b = agreed_snapshot(dovecot, tmp_path)
    write_events(dovecot, 7, start=500)
    a.sync_once()
    b.sync_once()
    cfg = write_profile(dovecot, tmp_path, "agent-c", top={"snapshot_every": 0})
    db = tmp_path / "agent-c.sqlite3"

    def later() -> str | None:
        try:
            with sqlite3.connect(db) as conn:
                row = conn.execute("SELECT value FROM meta WHERE key = 'team.later'").fetchone()
            return row[0] if row else None
        except sqlite3.Error:
            return None

    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(cfg),
                             "sync", "--once"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: later() is not None or proc.poll() is not None, timeout=60,
                   interval=0.002, what="the live state committed")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert later() is not None, "the run ended before the history: nothing was interrupted"
    out = run_cli(cfg, "sync", "--once")
    assert out.returncode == 0, out.stderr
    assert later() is None
    c = desk(dovecot, tmp_path, "agent-c", snapshot_every=0)
    assert not c.team.history_due()
    assert state_of(c.store) == state_of(a.store) == state_of(b.store)
    for d in (a, b, c):
        d.close()
