"""Replicas sharing one database or rebuilding their fold (issue 11, item 5): a rebuild is
atomic (readers never see team state empty or partial), and a claim that another thread
or process folded first still reports its true outcome."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import imapclient
import pytest
from helpers import make_profile, wait_until
from test_sync import fill

from helpdesk.desk import Desk
from helpdesk.errors import ConflictError
from helpdesk.mail.imap import connect
from helpdesk.team.events import Event, encode

LOG = "HelpDesk/Log"


def team_state(db: Path) -> tuple[int, int, int, int]:
    """(claimed tickets, VIP customers, notes, events): what a reader sees right now
    (one statement, so one snapshot)."""
    con = sqlite3.connect(db, timeout=10)
    try:
        row = con.execute(
            "SELECT (SELECT count(*) FROM ticket_state WHERE claimed_by IS NOT NULL), "
            "(SELECT count(*) FROM customers WHERE vip), (SELECT count(*) FROM notes), "
            "(SELECT count(*) FROM team_events)").fetchone()
        return (int(row[0]), int(row[1]), int(row[2]), int(row[3]))
    finally:
        con.close()


class Watcher:
    """A reader of the database: polls team state in a thread, and also samples it
    whenever the desk under test sends a UID FETCH (mid-rebuild, deterministically)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.samples: list[tuple[int, int, int, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.stop.wait(0.002):  # a pace, not a wait for anything
            self.samples.append(team_state(self.db))

    def sample(self) -> None:
        self.samples.append(team_state(self.db))

    def __enter__(self) -> Watcher:
        self.thread.start()
        wait_until(lambda: self.samples, what="a first sample")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


class Hiding:
    """Makes the server look as if it exposed message ``uid`` late: FETCH answers leave
    it out while ``hidden`` is set (SEARCH still shows it, as on a lagging server).
    ``on_fetch`` runs before every UID FETCH."""

    def __init__(self) -> None:
        self.hidden: int | None = None
        self.on_fetch: Callable[[], None] = lambda: None

    def wrap(self, client: imapclient.IMAPClient) -> imapclient.IMAPClient:
        imap = client._imap
        original = imap.uid

        def uid(command: str, *args: Any) -> Any:
            if command.upper() == "FETCH":
                self.on_fetch()
            typ, data = original(command, *args)
            if command.upper() == "FETCH" and self.hidden is not None:
                data = self._drop(data)
            return typ, data

        imap.uid = uid
        return client

    def _drop(self, data: list[Any]) -> list[Any]:
        mark = re.compile(rb"\bUID %d\b" % self.hidden)
        out: list[Any] = []
        for item in data:
            head = item[0] if isinstance(item, tuple) else item
            if isinstance(head, bytes) and mark.search(head):
                continue
            out.append(item)
        return out


def hiding_desk(server: Any, tmp: Path, agent: str, hiding: Hiding) -> Desk:
    profile = make_profile(server, tmp, agent)
    return Desk(profile, connect_imap=lambda: hiding.wrap(connect(profile.imap)))


def build_state(server: Any, tmp: Path) -> tuple[Desk, list[str], tuple[int, int, int, int]]:
    fill(server, 30)
    writer = Desk(make_profile(server, tmp, "agent-b"))
    writer.sync_once()
    tids = [t["id"] for t in writer.tickets("all")]
    assert len(tids) >= 6
    for tid in tids[:4]:
        writer.claim(tid)
    for i in range(3):
        writer.update_customer(f"v{i}@example.com", vip=True, tier="Gold", note=f"note {i}")
    return writer, tids, (4, 3, 3, 10)


@contextmanager
def watching(desk: Desk, hiding: Hiding) -> Iterator[Watcher]:
    with Watcher(desk.profile.database) as watcher:
        hiding.on_fetch = watcher.sample
        try:
            yield watcher
        finally:
            hiding.on_fetch = lambda: None


def assert_never_empty(watcher: Watcher, full: tuple[int, int, int, int]) -> None:
    partial = [s for s in watcher.samples if s != full]
    assert not partial, f"a reader saw {sorted(set(partial))} instead of {full}"
    assert len(watcher.samples) > 3


def test_rebuild_after_uidvalidity_change_is_atomic(dovecot: Any, tmp_path: Path) -> None:
    _writer, _tids, full = build_state(dovecot, tmp_path)
    hiding = Hiding()
    desk = hiding_desk(dovecot, tmp_path, "agent-a", hiding)
    desk.sync_once()
    assert team_state(desk.profile.database) == full
    dovecot.reset_uidvalidity(LOG)
    with watching(desk, hiding) as watcher:
        changes = desk.sync_once()
    assert "*" in changes.tickets
    assert_never_empty(watcher, full)


def test_rebuild_when_a_message_appears_below_the_cursor_is_atomic(
        dovecot: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _writer, _tids, full = build_state(dovecot, tmp_path)
    hiding = Hiding()
    desk = hiding_desk(dovecot, tmp_path, "agent-a", hiding)
    with dovecot.session() as c:
        c.select_folder(LOG, readonly=True)
        uids = sorted(c.search(["ALL"]))
    hiding.hidden = uids[2]  # the server shows this one late (the third claim)
    desk.sync_once()
    assert team_state(desk.profile.database) != full
    hiding.hidden = None
    with watching(desk, hiding) as watcher:
        desk.sync_once()  # more messages than it ever read: rebuild
    assert any("appeared below the replay cursor" in r.getMessage() for r in caplog.records)
    assert team_state(desk.profile.database) == full
    # Only the states before and after the rebuild were ever visible.
    before = (3, 3, 3, 9)
    assert set(watcher.samples) <= {before, full}, sorted(set(watcher.samples))


def test_settle_check_rebuild_is_atomic_and_the_claim_is_decided(
        dovecot: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _writer, tids, full = build_state(dovecot, tmp_path)
    hiding = Hiding()
    desk = hiding_desk(dovecot, tmp_path, "agent-a", hiding)
    desk.sync_once()
    assert team_state(desk.profile.database) == full
    # A teammate's claim lands just before ours, and the server shows it late.
    ev = Event("claim", "agent-b", tids[4], {"lease": 3600})
    with dovecot.session() as c:
        late = int(re.search(rb"APPENDUID \d+ (\d+)",  # type: ignore[union-attr]
                             c.append(LOG, encode(ev, "n" * 8), [b"\\Seen"])).group(1))
    hiding.hidden = late
    ours = (full[0] + 1, *full[1:3], full[3] + 1)  # our claim folded, the late one not
    final = (full[0] + 1, *full[1:3], full[3] + 2)  # both, the late one first

    client = desk.session.call(desk.session.intents.client)  # the intents connection
    with Watcher(desk.profile.database) as watcher:
        original_search = client.search

        def search(criteria: Any, *a: Any, **kw: Any) -> Any:
            hiding.hidden = None  # visible by the time we look again
            hiding.on_fetch = watcher.sample  # every FETCH of the rebuild
            return original_search(criteria, *a, **kw)

        client.search = search  # type: ignore[method-assign]
        try:
            with pytest.raises(ConflictError, match="agent-b"):
                desk.claim(tids[4])  # the teammate's claim came first, in log order
        finally:
            client.search = original_search  # type: ignore[method-assign]
            hiding.on_fetch = lambda: None
    assert any("late message detected" in r.getMessage() for r in caplog.records)
    assert team_state(desk.profile.database) == final
    assert set(watcher.samples) <= {full, ours, final}, sorted(set(watcher.samples))
    assert desk.holder(tids[4]).agent == "agent-b"


def test_true_outcomes_when_another_desk_on_the_same_database_folded_first(
        dovecot: Any, tmp_path: Path) -> None:
    """Two Desk objects (a GUI and a CLI, say) on ONE database, the same agent, claiming
    the same ticket in parallel: every claim is reported as held by that agent, and every
    log message is counted once."""
    fill(dovecot, 3)
    desks = [Desk(make_profile(dovecot, tmp_path, "agent-a", db_name="shared.sqlite3"))
             for _ in range(2)]
    desks[0].sync_once()
    tid = desks[0].tickets("all")[0]["id"]
    outcomes: list[str] = []
    errors: list[BaseException] = []
    go = threading.Barrier(4)

    def claims(desk: Desk) -> None:
        go.wait()
        for _ in range(15):
            try:
                outcomes.append(desk.claim(tid).agent or "")
            except ConflictError as exc:
                outcomes.append(str(exc))
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=claims, args=(d,)) for d in desks for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(outcomes) == 60
    assert outcomes == ["agent-a"] * 60, [o for o in outcomes if o != "agent-a"]
    with dovecot.session() as c:
        c.select_folder(LOG, readonly=True)
        uids = c.search(["ALL"])
    desks[1].sync_once()
    assert int(desks[0].store.get_meta("team.seen") or 0) == len(uids) == 60
    assert desks[0].team.cursor()[1] == max(uids)


def test_our_own_event_shown_late_is_folded_later_never_skipped(dovecot: Any,
                                                                tmp_path: Path) -> None:
    """A server that shows our APPEND late: one NOOP later it is read; if it stays
    hidden the claim is undecided for now, and a later sync folds it (it is not
    mistaken for an expunged message and skipped)."""
    fill(dovecot, 12)
    hiding = Hiding()
    desk = hiding_desk(dovecot, tmp_path, "agent-a", hiding)
    desk.sync_once()
    tids = [t["id"] for t in desk.tickets("all")]
    desk.claim(tids[0])  # from here on the log is selected on the intent connection

    def uidnext() -> int:
        with dovecot.session() as c:
            return int(c.folder_status(LOG, [b"UIDNEXT"])[b"UIDNEXT"])

    fetches: list[int] = []

    def shown_on_second_look() -> None:
        fetches.append(1)
        if len(fetches) == 2:
            hiding.hidden = None

    hiding.hidden, hiding.on_fetch = uidnext(), shown_on_second_look
    assert desk.claim(tids[1]).agent == "agent-a"
    assert len(fetches) == 2
    hiding.hidden, hiding.on_fetch = uidnext(), lambda: None
    with pytest.raises(ConflictError):
        desk.claim(tids[2])
    hiding.hidden = None
    desk.sync_once()
    assert desk.holder(tids[2]).agent == "agent-a"
    with desk.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM team_skipped").scalar() == 0
