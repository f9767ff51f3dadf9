"""Team-log snapshots as pure logic over the store (issue 16): a snapshot equals the
fold it summarises, every table the fold writes is covered, a bad snapshot is refused.

These fold events straight into real SQLite stores (no server): the fold is pure
given the log. The tests against servers are in test_snapshots_log.py."""

from __future__ import annotations

import os
import shutil
import sqlite3
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpdesk.store import open_store
from helpdesk.store.engine import raw_cursor
from helpdesk.team import snapshots
from helpdesk.team.events import TYPES, Event
from helpdesk.team.fold import FoldResult, apply_event, default_registry
from helpdesk.team.registry import STATE
from helpdesk.team.snapshots import BadSnapshot, assemble, load_history, load_state, split
from helpdesk.team.state import canonical_state, digest_of, document, encode_document

T0 = datetime(2026, 11, 1, 9, 0, 0)
AGENTS = ("agent-a", "agent-b", "agent-c")
TICKETS = ("t1", "t2", "t3", "t4")
CUSTOMERS = ("ann@example.com", "bob@example.org", "cy@example.net")
CARD = "c0ffee00"


class Log:
    """A log being written: events with their UIDs and server times."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, datetime, Event]] = []
        self.claims: list[str] = []
        self.notes: list[str] = []

    def add(self, event: Event, minutes: int) -> None:
        at = (self.entries[-1][1] if self.entries else T0) + timedelta(minutes=minutes)
        self.entries.append((len(self.entries) + 1, at, event))
        if event.type in ("claim", "takeover"):
            self.claims.append(event.id)
        if event.type == "note":
            self.notes.append(event.id)


def every_type(log: Log) -> None:
    """One event of every type this build writes (for the coverage test)."""
    a, b = AGENTS[:2]
    c = CUSTOMERS[0]
    for etype, agent, subject, data in [
        ("claim", a, "t1", {"lease": 600}), ("renew", a, "t1", {}),
        ("takeover", b, "t1", {"replaces": "x"}), ("release", b, "t1", {}),
        ("status", a, "t2", {"status": "closed", "cared": True}), ("reply-sent", a, "t2", {}),
        ("vip", a, c, {"vip": True, "tier": "gold"}), ("white-glove", a, c, {"on": True}),
        ("profile", a, c, {"preferred_name": "Ann", "birthday": "05-01", "heard_from": "x"}),
        ("note", a, c, {"text": "likes tea"}), ("note-delete", a, c, {"note": "n"}),
        ("template", a, "hello", {"body": "Hi"}), ("template-delete", a, "hello", {}),
        ("card-create", a, CARD, {"title": "Dark mode"}),
        ("card-update", a, CARD, {"title": "Dark mode!"}),
        ("card-update", a, "column:ideas", {"name": "Ideas!"}),
        ("card-add", b, CARD, {"email": c, "ticket": "t2"}),
        ("card-move", a, CARD, {"column": "shipped"}),
        ("card-create", b, "c0ffee01", {"title": "dark mode", "by_title": True}),
        ("card-merge", a, "c0ffee01", {"into": CARD}),
        ("card-notified", a, CARD, {"email": c, "message_id": "<m@x>"}),
        ("survey-sent", a, "t2", {"message_id": "<s@x>", "customer": c}),
        ("score", a, "t2", {"score": 9, "customer": c}), ("cared", a, "t2", {"cared": False}),
        ("vip-tiers", a, "team", {"tiers": ["gold", "silver"]}),
        ("card-note", a, CARD, {"lang": "en", "mail_subject": "Shipped", "body": "It is"}),
        ("signature", a, "team", {"body": "-- us"}),
        ("forwarded", a, "t2", {"to": ["x@y.z"], "message_id": "<f@x>"}),
        ("ticket-note", a, "t2", {"text": f"over to you @{b}"}),
        ("assign", a, "t2", {"assignee": b}), ("snooze", a, "t2", {"seconds": 3600}),
        ("tag", a, "t2", {"add": ["billing"], "remove": []}),
        ("spam", a, "spam.example", {"on": True, "kind": "domain", "ticket": "t2"}),
        ("merge", a, "t3", {"into": "t2"}),
        ("rota", a, "team", {"people": [a, b], "days": 1, "start": "2020-01-01",
                             "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                             "timezone": "UTC", "covers": {}, "handoff_minutes": 5}),
        ("rota-swap", a, "2026-01-01", {"agent": b}), ("learning", a, b, {"until": "2099-01-01"}),
        ("rota-handoff", a, "t4", {"agent": a, "day": "2026-01-01"}),
        ("approval-request", b, "t2", {"message_id": "<h@x>", "subject": "Re: hi",
                                       "to": [c], "bcc": [], "text": "Hello"}),
        ("approval", a, "<h@x>", {}),
        ("digest-settings", a, "team", {"recipients": ["all@x.example"]}),
        ("digest-sending", a, "2026-W01", {"message_id": "<d@x>"}),
        ("snapshot-mark", a, "", {"gap": snapshots.MIN_GAP}),
        ("compact", b, "", {"mark": 0}), ("compact-done", b, "", {"claim": "x"}),
    ]:
        log.add(Event(etype, agent, subject, data), 1)


def fold(db: Any, entries: list[tuple[int, datetime, Event]], **kw: Any) -> FoldResult:
    result = FoldResult()
    with db.begin() as conn:
        cur = raw_cursor(conn)
        for uid, at, event in entries:
            apply_event(cur, event, uid, at, event.to_json(), result, **kw)
    return result


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Any]:
    made: list[Any] = []
    template = tmp_path / "template.sqlite3"
    open_store(template).engine.dispose()  # migrated once, copied per store

    def make(name: str) -> Any:
        # A new file every time: hypothesis runs many examples in one test's tmp_path.
        path = tmp_path / f"{name}-{len(made)}.sqlite3"
        shutil.copyfile(template, path)
        db = open_store(path)
        made.append(db)
        return db
    yield make
    for db in made:
        db.engine.dispose()


def state_of(db: Any, mark: int = 10**9) -> bytes:
    with db.read() as conn:
        return canonical_state(raw_cursor(conn), STATE, mark, None, "", "")


def test_every_table_and_column_the_fold_writes_is_in_the_snapshot(stores: Any) -> None:
    """SQLite's authorizer watches a fold of every event type: a table (or an updated
    column) it writes that STATE does not cover would be silently left out of every
    snapshot, so this fails first."""
    log = Log()
    every_type(log)
    assert {e.type for _u, _t, e in log.entries} >= TYPES - {"snapshot", "snapshot-ack"}
    written: dict[str, set[str]] = {}
    db = stores("a")

    def watch(action: int, arg1: str | None, arg2: str | None, _db: Any, _t: Any) -> int:
        if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_DELETE) and arg1:
            written.setdefault(arg1, set())
        elif action == sqlite3.SQLITE_UPDATE and arg1:
            written.setdefault(arg1, set()).add(str(arg2))
        return sqlite3.SQLITE_OK

    with db.begin() as conn:
        raw = conn.connection.driver_connection
        raw.set_authorizer(watch)
        try:
            cur = raw_cursor(conn)
            for uid, at, event in log.entries:
                apply_event(cur, event, uid, at, event.to_json(), FoldResult())
            # the parts and acknowledgements of a snapshot at the mark too
            mark = next(u for u, _t, e in log.entries if e.type == "snapshot-mark")
            canonical = cur.execute("SELECT state FROM team_snapshot_marks WHERE uid = ?",
                                    (mark,)).fetchone()[0]
            parts = snapshots.part_events("agent-a", mark, zlib.decompress(canonical), 7)
            ack = Event("snapshot-ack", "agent-b", str(mark), {
                "mark": mark, "digest": parts[0].data["digest"],
                "layout": snapshots.this_layout()})
            for i, event in enumerate([*parts, ack]):
                apply_event(cur, event, 1000 + i, T0 + timedelta(days=1), event.to_json(),
                            FoldResult())
        finally:
            raw.set_authorizer(None)
    # Not team state by design: the log's own bookkeeping (what was read, how a claim
    # was decided, snapshot parts and acknowledgements as seen, a desktop's digests).
    bookkeeping = {"team_skipped", "team_snapshot_parts", "team_snapshot_acks"}
    # Local, derived from each desktop's own mail: what a merge moves along with the
    # ticket (a desktop that loads a snapshot places its messages after it), and the
    # temporary tables the ticket aggregates are recomputed through.
    bookkeeping |= {"messages", "tickets", "outbox", "drafts", "draft_attachments",
                    "sqlite_master", "sqlite_temp_master"}
    local_columns = {"team_events": {"accepted", "holder", "since", "previous"},
                     "team_snapshot_marks": {"digest", "state", "agreed", "disagreed"}}
    covered = {t.name: set(t.columns) for t in STATE}
    missing = {t for t in written if t not in covered and t not in bookkeeping}
    assert not missing, f"tables the fold writes that no snapshot covers: {missing}"
    for table, columns in written.items():
        if table in covered:
            left = columns - covered[table] - local_columns.get(table, set())
            assert not left, f"{table}: columns the fold updates outside STATE: {left}"
    with db.read() as conn:  # every team table really holds something (not vacuous)
        for table in ("ticket_state", "cared", "notes", "cards", "card_customers",
                      "card_notified", "surveys", "scores", "signatures", "forwards",
                      "team_snapshot_marks", "team_snapshot_parts", "team_snapshot_acks"):
            assert raw_cursor(conn).execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        agreed = raw_cursor(conn).execute("SELECT agreed FROM team_snapshot_marks").fetchone()
        assert agreed == (1,)


# --- random logs ---------------------------------------------------------------------

def _event(draw: Any, log: Log) -> tuple[Event, int]:
    agent = draw(st.sampled_from(AGENTS))
    ticket = draw(st.sampled_from(TICKETS))
    customer = draw(st.sampled_from(CUSTOMERS))
    kind = draw(st.sampled_from([
        "claim", "claim", "renew", "release", "takeover", "status", "vip", "white-glove",
        "profile", "note", "note-delete", "template", "card-add", "score", "mark", "mark",
        "duplicate", "bad"]))
    minutes = draw(st.integers(0, 20))
    some_claim = draw(st.sampled_from(log.claims)) if log.claims else "none"
    if kind == "claim":
        return Event("claim", agent, ticket, {"lease": draw(st.sampled_from([60, 600]))}), minutes
    if kind == "renew":
        return Event("renew", agent, ticket, {"claim": some_claim}), minutes
    if kind == "release":
        return Event("release", agent, ticket), minutes
    if kind == "takeover":
        return Event("takeover", agent, ticket, {"replaces": some_claim}), minutes
    if kind == "status":
        return Event("status", agent, ticket, {
            "status": draw(st.sampled_from(["open", "pending", "closed"])),
            "cared": draw(st.sampled_from([None, True, False]))}), minutes
    if kind == "vip":
        return Event("vip", agent, customer, {"vip": draw(st.booleans()), "tier": "gold"}), \
            minutes
    if kind == "white-glove":
        return Event("white-glove", agent, customer, {"on": draw(st.booleans())}), minutes
    if kind == "profile":
        return Event("profile", agent, customer,
                     {"preferred_name": draw(st.sampled_from(["A", "B", None]))}), minutes
    if kind == "note":
        return Event("note", agent, customer, {"text": draw(st.sampled_from(["x", "y", ""]))}), \
            minutes
    if kind == "note-delete":
        note = draw(st.sampled_from(log.notes)) if log.notes else "none"
        return Event("note-delete", agent, customer, {"note": note}), minutes
    if kind == "template":
        return Event("template", agent, draw(st.sampled_from(["hi", "bye"])),
                     {"body": draw(st.sampled_from(["1", "2"]))}), minutes
    if kind == "card-add":
        return Event("card-add", agent, CARD, {"email": customer, "ticket": ticket}), minutes
    if kind == "score":
        return Event("score", agent, ticket, {"score": draw(st.integers(0, 10))}), minutes
    if kind == "mark":
        return Event("snapshot-mark", agent, "", {"gap": snapshots.MIN_GAP}), minutes
    if kind == "duplicate" and log.entries:  # a retried APPEND: the same event again
        return draw(st.sampled_from(log.entries[-30:]))[2], minutes
    return Event("status", agent, ticket, {"status": "solved?"}), minutes  # refused


@st.composite
def logs(draw: Any) -> Log:
    log = Log()
    log.add(Event("card-create", "agent-a", CARD, {"title": "Dark mode"}), 0)
    for _ in range(draw(st.integers(10, 120))):
        event, minutes = _event(draw, log)
        log.add(event, minutes)
    return log


@settings(max_examples=int(os.environ.get("SNAPSHOT_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(log=logs(), cut=st.integers(0, 10**6))
def test_a_snapshot_plus_what_follows_equals_the_whole_fold(stores: Any, log: Log,
                                                            cut: int) -> None:
    """Fold a random log whole on one desktop; on another, load the snapshot the first
    computed at an accepted mark and fold only what follows: the same team state, and
    the same claim outcomes for every later event."""
    full = stores("full")
    whole = fold(full, log.entries)
    with full.read() as conn:
        marks = raw_cursor(conn).execute("SELECT uid, digest, state FROM team_snapshot_marks "
                                         "WHERE state IS NOT NULL ORDER BY uid").fetchall()
    if not marks:
        return
    mark, digest, packed = marks[cut % len(marks)]
    canonical = zlib.decompress(packed)
    assert digest_of(canonical) == digest
    assert assemble(split(canonical), digest) == canonical
    joiner = stores("joiner")
    with joiner.begin() as conn:  # as a joining desktop: the live state, then the history
        state = load_state(raw_cursor(conn), canonical, default_registry(), history=False)
    with joiner.begin() as conn:
        load_history(raw_cursor(conn), state)
    later = fold(joiner, [e for e in log.entries if e[0] > mark])
    ours, theirs = document(state_of(joiner)), document(state_of(full))
    for name in theirs["tables"]:
        assert ours["tables"][name] == theirs["tables"][name], name
    assert state_of(joiner) == state_of(full)
    for eid, outcome in later.outcomes.items():
        assert whole.outcomes[eid] == outcome
    # and the state the joiner computes at the next mark is the full desktop's
    with joiner.read() as a, full.read() as b:
        ours = raw_cursor(a).execute("SELECT uid, digest FROM team_snapshot_marks WHERE "
                                     "uid > ? AND digest IS NOT NULL", (mark,)).fetchall()
        theirs = raw_cursor(b).execute("SELECT uid, digest FROM team_snapshot_marks WHERE "
                                       "uid > ?", (mark,)).fetchall()
    assert ours == theirs
    for db in (full, joiner):
        db.engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(str(db.path) + suffix).unlink(missing_ok=True)


def test_a_corrupt_or_lying_snapshot_is_refused(stores: Any) -> None:
    log = Log()
    every_type(log)
    db = stores("a")
    fold(db, log.entries)
    with db.read() as conn:
        _mark, digest, packed = raw_cursor(conn).execute(
            "SELECT uid, digest, state FROM team_snapshot_marks").fetchone()
    canonical = zlib.decompress(packed)
    parts = split(canonical)
    with pytest.raises(BadSnapshot, match="digest"):
        assemble(parts, "0" * 64)
    with pytest.raises(BadSnapshot):
        assemble([parts[0][:-8]], digest)
    with pytest.raises(BadSnapshot):
        assemble(["!!!not base64"], digest)
    bomb = zlib.compress(b"\0" * (snapshots.MAX_STATE_BYTES + 10))
    import base64
    with pytest.raises(BadSnapshot):
        assemble([base64.b64encode(bomb).decode()], digest)
    doc = document(canonical)
    doc["tables"]["ticket_state"] = [["t9"]]  # a row of the wrong width
    with db.begin() as conn, pytest.raises(BadSnapshot):
        load_state(raw_cursor(conn), encode_document(doc, STATE), default_registry())
    # Values no table holds (a list, an object that is not a blob): refused whole, and
    # the store keeps the state it had (the load's transaction rolls back).
    def team_rows() -> list[Any]:
        with db.read() as conn:
            cur = raw_cursor(conn)
            return [cur.execute(f'SELECT * FROM "{t.name}" ORDER BY 1').fetchall()
                    for t in STATE]
    before = team_rows()
    for bad in (["x"], {"b64": 1}, {"b64": "AA==", "more": 1}):
        doc = document(canonical)
        name = next(n for n, rows in sorted(doc["tables"].items()) if rows)
        doc["tables"][name][0][-1] = bad
        with pytest.raises(BadSnapshot, match="cannot be stored"), db.begin() as conn:
            load_state(raw_cursor(conn), encode_document(doc, STATE), default_registry())
        assert team_rows() == before
    doc = document(canonical)
    doc["layout"] = "f" * 32
    with db.begin() as conn, pytest.raises(BadSnapshot, match="another"):
        load_state(raw_cursor(conn), encode_document(doc, STATE), default_registry())


def _long_log(n: int) -> Log:
    """``n`` events: statuses (one refused, some with a cared answer), notes, claims and
    two snapshot marks more than DUPLICATE_WINDOW apart, so that the second snapshot
    carries old status events as metrics read them."""
    log = Log()
    for i in range(n):
        agent, ticket = AGENTS[i % 3], TICKETS[i % 4]
        if i in (n // 2, n - 5):
            event = Event("snapshot-mark", agent, "", {"gap": snapshots.MIN_GAP})
        elif i % 5 == 0:
            event = Event("status", agent, ticket, {
                "status": ("open", "pending", "closed")[i % 3],
                "cared": (True, None, False)[i % 3]})
        elif i == 7:
            event = Event("status", agent, ticket, {"status": "solved?"})  # refused
        elif i % 5 == 1:
            event = Event("note", agent, CUSTOMERS[i % 3], {"text": f"note {i}"})
        else:
            event = Event("claim", agent, ticket, {"lease": 600})
        log.add(event, 1)
    return log


def _statuses(db: Any) -> list[Any]:
    """What the metrics read of status events (helpdesk/metrics/service.py)."""
    with db.read() as conn:
        return raw_cursor(conn).execute(
            "SELECT subject, at, json_extract(body, '$.data.status') FROM team_events "
            "WHERE type = 'status' ORDER BY uid").fetchall()


def test_old_status_events_travel_as_what_metrics_read(stores: Any, monkeypatch: Any
                                                       ) -> None:
    """Status events older than the duplicate window travel without their id and body
    (most of a year-old log's snapshot): a desktop that joins from the snapshot reads
    the same statuses as one that folded everything, computes the same state at the
    next mark, and its indexes are all there after the bulk load."""
    from helpdesk.team import state as state_module

    monkeypatch.setattr(state_module, "_BULK_ROWS", 10)  # the index-free load path too
    n = 2 * snapshots.DUPLICATE_WINDOW + 400
    log = _long_log(n)
    full = stores("full")
    fold(full, log.entries)
    with full.read() as conn:
        marks = raw_cursor(conn).execute("SELECT uid, state FROM team_snapshot_marks "
                                         "WHERE state IS NOT NULL ORDER BY uid").fetchall()
    assert len(marks) == 2
    mark, packed = marks[0]
    canonical = zlib.decompress(packed)
    doc = document(canonical)
    old = doc["tables"]["team_events_status"]
    assert old and all(row[1] == "status" and len(row) == 6 for row in old)
    assert {row[5] for row in old} == {"open", "pending", "closed", "solved?"}
    # neither their ids nor their bodies travel (a cared answer keeps its own row, named
    # by the event's id)
    ids = {e.id for u, _t, e in log.entries if e.type == "status"
           and u <= mark - snapshots.DUPLICATE_WINDOW and e.data.get("cared") is None}
    assert ids and not any(i.encode() in canonical for i in ids)
    joiner = stores("joiner")
    with joiner.read() as conn:
        indexes = raw_cursor(conn).execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY 1").fetchall()
    with joiner.begin() as conn:
        load_state(raw_cursor(conn), canonical, default_registry())
    with joiner.read() as conn:
        assert raw_cursor(conn).execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY 1"
        ).fetchall() == indexes
    fold(joiner, [e for e in log.entries if e[0] > mark])
    assert _statuses(joiner) == _statuses(full)
    assert state_of(joiner) == state_of(full)
    # the second mark's rows come partly from the first snapshot on the joiner
    with joiner.read() as a, full.read() as b:
        ours = raw_cursor(a).execute("SELECT uid, digest FROM team_snapshot_marks "
                                     "WHERE uid > ?", (mark,)).fetchall()
        theirs = raw_cursor(b).execute("SELECT uid, digest FROM team_snapshot_marks "
                                       "WHERE uid > ?", (mark,)).fetchall()
    assert ours == theirs and ours[0][1] is not None
