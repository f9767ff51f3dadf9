"""A team log nothing can jam: any bytes in the team folder are skipped with one log line,
oversized messages are never downloaded, the cursor always moves on, and a handler that
fails leaves no partial state (issue 11, item 4)."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import imapclient
import pytest
from helpers import make_profile
from mailgen import generate
from proxy import ChopProxy
from sqlalchemy import event as sa_event
from test_sync import fill

from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError, MailError, StoreError
from helpdesk.store import open_store
from helpdesk.store.engine import raw_cursor
from helpdesk.team import claims
from helpdesk.team.events import Event, EventError, decode_body, encode
from helpdesk.team.fold import FoldResult, Handlers, apply_event

LOG = "HelpDesk/Log"
POISON_AGENT = "agent-c"


def envelope(**fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"v": 1, "id": "e" * 32, "type": "claim", "agent": "agent-x",
                           "subject": "poisoned", "data": {"lease": 1800}}
    obj.update(fields)
    return obj


def body_of(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def message(body: bytes) -> bytes:
    return b"Subject: [helpdesk] x\r\nContent-Type: application/json\r\n\r\n" + body


_ids = iter(f"{i:032x}" for i in range(1, 10**6))


def poison_bodies() -> dict[str, bytes]:
    """Bodies no decoder may accept (each kind the issue names, and a few more)."""
    deep = b"[" * 30000 + b"]" * 30000
    return {
        "type is a list": body_of(envelope(type=["claim"])),
        "type is an object": body_of(envelope(type={"claim": True})),
        "type is a number": body_of(envelope(type=7)),
        "type is null": body_of(envelope(type=None)),
        "type with a NUL": body_of(envelope(type="claim\u0000")),
        "id is a number": body_of(envelope(id=1234567890)),
        "id is a list": body_of(envelope(id=["a" * 32])),
        "id is not hex": body_of(envelope(id="z" * 32)),
        "agent is an object": body_of(envelope(agent={"name": "x"})),
        "agent is a boolean": body_of(envelope(agent=True)),
        "agent is empty": body_of(envelope(agent="")),
        "agent with a terminal escape": body_of(envelope(agent="agent-\u001b[31m")),
        "subject is a list": body_of(envelope(subject=["t1"])),
        "subject is a number": body_of(envelope(subject=12)),
        "v is text": body_of(envelope(v="1")),
        "v is a boolean": body_of(envelope(v=True)),
        "v is null": body_of(envelope(v=None)),
        "v is a fraction": body_of(envelope(v=1.5)),
        "v is zero": body_of(envelope(v=0)),
        "v is huge": body_of(envelope(v=10**30)),
        "data is a list": body_of(envelope(data=[1])),
        "data is text": body_of(envelope(data="lease")),
        "30,000-deep JSON": deep,
        "30,000-deep data": b'{"v":1,"id":"' + b"d" * 32 + b'","type":"claim","agent":"a",'
                            b'"subject":"t","data":{"x":' + deep + b"}}",
        "40-deep data": body_of(envelope(data={"x": json.loads("[" * 40 + "]" * 40)})),
        "lone surrogate in agent": body_of(envelope(agent="\ud800")),
        "lone surrogate in data": body_of(envelope(type="note", subject="a@example.com",
                                                   data={"text": "hi \udfff"})),
        "lone surrogate in a data key": body_of(envelope(data={"\udc00": 1})),
        "surrogate bytes (not UTF-8)": b'{"v":1,"id":"' + b"f" * 32 + b'","type":"claim",'
                                       b'"agent":"\xed\xa0\x80","subject":"t"}',
        "NUL in subject": body_of(envelope(subject="t\u0000t")),
        "NUL in data": body_of(envelope(type="note", subject="a@example.com",
                                        data={"text": "a\u0000b"})),
        "NUL byte": b'{"v":1,"id":"' + b"c" * 32 + b'","type":"claim","agent":"a\x00",'
                    b'"subject":"t"}',
        "not UTF-8": b"\xff\xfe" + body_of(envelope()),
        "5,000-digit number": b'{"v":1,"id":"' + b"b" * 32 + b'","type":"claim","agent":"a",'
                              b'"subject":"t","data":{"lease":' + b"9" * 5000 + b"}}",
        "number beyond 64 bits": body_of(envelope(data={"lease": 2**70})),
        "infinite number": body_of(envelope(data={"lease": 1})).replace(b'"lease": 1',
                                                                         b'"lease": 1e400'),
        "NaN": body_of(envelope(data={"lease": 1})).replace(b'"lease": 1', b'"lease": NaN'),
        "JSON array": b"[1, 2, 3]",
        "JSON string": b'"claim"',
        "not JSON": b"not json at all",
        "empty": b"",
        "over 64 KB": body_of(envelope(data={"pad": "x" * 70000})),
    }


def fresh(obj: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "id": next(_ids)}


def poison_data_events() -> dict[str, dict[str, Any]]:
    """Well-formed events whose data has wrong types: their handlers refuse them."""
    return {
        "lease is text": envelope(subject="tk-lease", data={"lease": "x"}),
        "vip is a list": envelope(type="vip", subject="vip@example.com", data={"vip": [1]}),
        "status is an object": envelope(type="status", subject="tk-status",
                                        data={"status": {}}),
        "white-glove is text": envelope(type="white-glove", subject="wg@example.com",
                                        data={"on": "yes"}),
        "note with a list for a name": envelope(type="note", subject="note@example.com",
                                                data={"text": "hello",
                                                      "preferred_name": ["x"]}),
        "card title is a number": envelope(type="card-create", subject="c" * 32,
                                           data={"title": 5}),
        "score is text": envelope(type="score", subject="tk-score", data={"score": "10"}),
    }


# --- the codec, without a server ---------------------------------------------------

@pytest.mark.parametrize("kind", list(poison_bodies()))
def test_decode_raises_only_event_error(kind: str) -> None:
    with pytest.raises(EventError):
        decode_body(poison_bodies()[kind])


def test_decode_never_raises_anything_else_on_mangled_events() -> None:
    """Thousands of mutations of valid events: an Event or an EventError, never a crash,
    and every Event decoded is storable (SQLite takes every string and number)."""
    rng = random.Random(11)
    seeds = [Event("note", "agent-a", "ann@example.com", {"text": "héllo\nthere",
                                                          "tags": [1, 2.5, None, True]}).to_json(),
             Event("claim", "agent-b", "k7f3q2ab", {"lease": 1800}).to_json()]
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (a, b, c, d)")
    pieces = [b"\\ud800", b"\\u0000", b"\x00", b"\xff", b"[", b"{", b'"', b"1e999", b"-",
              b"9" * 30, b"\\", b"}", b"]", b",", b"null", b"\xed\xa0\x80", b"\\udfff"]
    for _ in range(4000):
        raw = bytearray(rng.choice(seeds).encode())
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(raw))
            if rng.random() < 0.5:
                raw[at:at + rng.randint(0, 3)] = rng.choice(pieces)
            else:
                raw[at] = rng.randrange(256)
        try:
            ev = decode_body(bytes(raw))
        except EventError:
            continue
        con.execute("INSERT INTO t VALUES (?, ?, ?, ?)",
                    (ev.type, ev.agent, ev.subject, json.dumps(ev.data, ensure_ascii=False)))


def test_unknown_types_and_newer_versions_decode() -> None:
    """Well-formed but not understood: decoded (and kept by the fold), not rejected."""
    ev = decode_body(body_of(envelope(type="escalate", v=3, data={"level": 2})))
    assert (ev.type, ev.version, ev.data) == ("escalate", 3, {"level": 2})


def test_publishing_an_event_every_desktop_would_skip_is_refused(dovecot: Any,
                                                                tmp_path: Path) -> None:
    fill(dovecot, 2)
    desk = Desk(make_profile(dovecot, tmp_path))
    desk.sync_once()
    with pytest.raises(HelpdeskError, match="cannot be shared"):
        desk.update_customer("ann@example.com", note="x" * (70 * 1024))
    with pytest.raises(HelpdeskError, match="cannot be shared"):
        desk.update_customer("ann@example.com", note="a\x00b")
    with dovecot.session() as c:
        c.select_folder(LOG, readonly=True)
        assert c.search(["ALL"]) == []  # nothing was appended


# --- the fold machinery, without a server ------------------------------------------

def test_a_handler_that_fails_half_way_leaves_nothing_but_db_trouble_propagates(
        tmp_path: Path) -> None:
    from helpdesk.team.fold import Registry

    store = open_store(tmp_path / "fold.sqlite3")
    table = Handlers("test")

    @table.on("explode")
    def _explode(ctx: Any) -> None:
        ctx.cur.execute("INSERT INTO notes (id, customer_email, agent, text, at) "
                        "VALUES (?, 'x@example.com', 'a', 'partial', '2026-01-01')",
                        (ctx.event.id,))
        ctx.result.tickets.add("half-done")
        kind = ctx.event.data["kind"]
        if kind == "attribute":
            raise AttributeError("'NoneType' object has no attribute 'x'")
        if kind == "overflow":
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        if kind == "disk":
            raise sqlite3.OperationalError("database or disk is full")

    registry = Registry.of([claims.HANDLERS, table])
    at = datetime(2026, 1, 1)
    with store.begin() as conn:
        cur = raw_cursor(conn)
        for uid, kind in enumerate(["attribute", "overflow"], start=1):
            result = FoldResult()
            ev = Event("explode", "agent-a", "t", {"kind": kind})
            assert apply_event(cur, ev, uid, at, ev.to_json(), result, registry) == "skipped"
            assert result.skipped == 1 and result.tickets == set()  # nothing half-reported
        assert cur.execute("SELECT count(*) FROM notes").fetchone() == (0,)
        # Read and refused: recorded, so a copy of the same event is a duplicate.
        assert cur.execute("SELECT uid FROM team_events ORDER BY uid").fetchall() == [(1,), (2,)]
        ev = Event("explode", "agent-a", "t", {"kind": "disk"})
        with pytest.raises(sqlite3.OperationalError):
            apply_event(cur, ev, 3, at, ev.to_json(), FoldResult(), registry)
        assert cur.execute("SELECT count(*) FROM team_events WHERE uid = 3").fetchone() == (0,)
        assert cur.execute("SELECT count(*) FROM notes").fetchone() == (0,)
    store.close()


# --- against real servers ----------------------------------------------------------------

def append_poison(server: Any, tickets: list[str]) -> dict[int, str]:
    """Every poison kind, each followed by a valid claim (agent-c) of ``tickets[i]``;
    returns poison UID -> kind."""
    kinds: dict[int, str] = {}
    bodies = poison_bodies()
    data_events = poison_data_events()
    items: list[tuple[str, bytes]] = [(k, message(b)) for k, b in bodies.items()]
    items += [(k, message(body_of(fresh(obj)))) for k, obj in data_events.items()]
    items.append(("a mail message filed there by mistake", next(generate(1, seed=5))))
    items.append(("headers only", b"Subject: nothing else\r\n"))
    assert len(tickets) >= len(items)
    server.create_folder(LOG)
    for (kind, raw), ticket in zip(items, tickets, strict=False):
        kinds[server.append(LOG, raw, [b"\\Seen"])] = kind
        claim = Event("claim", POISON_AGENT, ticket, {"lease": 3600})
        server.append(LOG, encode(claim, "n" * 8), [b"\\Seen"])
    return kinds


def team_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name.startswith("helpdesk.team") and r.levelno >= logging.WARNING]


def assert_one_line_each(caplog: pytest.LogCaptureFixture, kinds: dict[int, str]) -> None:
    lines = team_warnings(caplog)
    assert not [r for r in lines if "rebuild" in r.getMessage()], "a false rebuild"
    per_uid = Counter(int(m.group(1)) for r in lines
                      if (m := re.search(r"uid (\d+)", r.getMessage())))
    assert len(lines) == sum(per_uid.values()), [r.getMessage() for r in lines]
    missing = {kinds[u] for u in kinds if per_uid[u] != 1}
    assert not missing, f"not exactly one log line for: {sorted(missing)}"
    assert set(per_uid) == set(kinds), [r.getMessage() for r in lines]
    for record in lines:
        assert record.exc_info is None  # no traceback for anyone to see


def assert_partial_state_absent(desk: Desk) -> None:
    con = sqlite3.connect(desk.profile.database)
    try:
        # The claim with lease "x" created its ticket row before failing: rolled back.
        assert con.execute("SELECT count(*) FROM ticket_state WHERE ticket_id IN "
                           "('tk-lease', 'tk-status', 'tk-score')").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM customers WHERE email IN ('vip@example.com', "
                           "'wg@example.com', 'note@example.com')").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM notes").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM cards").fetchone() == (0,)
    finally:
        con.close()


def seen_matches_server(desk: Desk, server: Any) -> None:
    """Every message read exactly once, and the cursor past the last one."""
    with server.session() as c:
        c.select_folder(LOG, readonly=True)
        uids = c.search(["ALL"])
    assert int(desk.store.get_meta("team.seen") or 0) == len(uids)
    assert desk.team.cursor()[1] == max(uids)


@pytest.fixture
def tickets() -> list[str]:
    return [f"tk{i:04d}" for i in range(80)]


def test_poison_on_an_existing_desktop(dovecot: Any, tmp_path: Path, tickets: list[str],
                                       caplog: pytest.LogCaptureFixture) -> None:
    fill(dovecot, 3)
    desk = Desk(make_profile(dovecot, tmp_path, "agent-a"))
    desk.sync_once()
    real = desk.tickets("all")[0]["id"]
    assert desk.claim(real).agent == "agent-a"  # the cursor is mid-log from here on
    caplog.clear()
    kinds = append_poison(dovecot, tickets)
    # A claim first (publish folds the poison on its way to our own event), then a sync.
    assert desk.claim(desk.tickets("all")[1]["id"]).agent == "agent-a"
    desk.sync_once()
    for ticket in tickets[:len(kinds)]:
        assert desk.holder(ticket).agent == POISON_AGENT, ticket
    assert desk.holder(real).agent == "agent-a"
    assert_one_line_each(caplog, kinds)
    assert_partial_state_absent(desk)
    seen_matches_server(desk, dovecot)
    caplog.clear()
    desk.sync_once()  # nothing left to read, nothing logged again
    assert team_warnings(caplog) == []


def test_poison_on_a_new_desktop(imap_server: Any, tmp_path: Path, tickets: list[str],
                                 caplog: pytest.LogCaptureFixture) -> None:
    fill(imap_server, 2)
    kinds = append_poison(imap_server, tickets)
    desk = Desk(make_profile(imap_server, tmp_path, "agent-a"))
    desk.sync_once()  # replay from 0
    for ticket in tickets[:len(kinds)]:
        assert desk.holder(ticket).agent == POISON_AGENT, ticket
    assert_one_line_each(caplog, kinds)
    assert_partial_state_absent(desk)
    seen_matches_server(desk, imap_server)
    tid = desk.tickets("all")[0]["id"]
    assert desk.claim(tid).agent == "agent-a"


@pytest.fixture
def watched_fetches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The UID sets the team log downloads bodies for."""
    import helpdesk.mail.imap as imap

    asked: list[str] = []
    original = imap.fetch_bodies

    def fetch_bodies(client: Any, uids: str, section: str = "TEXT") -> Any:
        asked.append(uids)
        return original(client, uids, section)

    monkeypatch.setattr(imap, "fetch_bodies", fetch_bodies)
    yield asked


def _in_set(uid: int, uid_set: str) -> bool:
    for part in uid_set.split(","):
        lo, _, hi = part.partition(":")
        if int(lo) <= uid <= int(hi or lo) or (hi == "*" and uid >= int(lo)):
            return True
    return False


@pytest.mark.parametrize("who", ["existing", "new"])
def test_a_25_mb_event_is_never_downloaded(dovecot: Any, tmp_path: Path, who: str,
                                           watched_fetches: list[str],
                                           caplog: pytest.LogCaptureFixture) -> None:
    fill(dovecot, 2)
    dovecot.create_folder(LOG)
    before = Event("claim", POISON_AGENT, "tk-before", {"lease": 3600})
    dovecot.append(LOG, encode(before, "n" * 8), [b"\\Seen"])
    with ChopProxy(dovecot.host, dovecot.port) as proxy:
        profile = make_profile(dovecot, tmp_path, "agent-a")
        desk = Desk(dataclasses.replace(
            profile, imap=dataclasses.replace(profile.imap, port=proxy.port)))
        if who == "existing":
            desk.sync_once()
        huge = Event("claim", "agent-x", "tk-huge", {"lease": 3600, "pad": "x" * 25_000_000})
        big_uid = dovecot.append(LOG, encode(huge, "n" * 8), [b"\\Seen"])
        after = Event("claim", POISON_AGENT, "tk-after", {"lease": 3600})
        dovecot.append(LOG, encode(after, "n" * 8), [b"\\Seen"])
        proxy.down = 0
        caplog.clear()
        desk.sync_once()
        assert proxy.down < 2_000_000, f"{proxy.down} bytes came down"
    assert not [s for s in watched_fetches if _in_set(big_uid, s)]
    assert desk.holder("tk-after").agent == POISON_AGENT
    assert desk.holder("tk-huge").agent is None
    lines = [r.getMessage() for r in team_warnings(caplog)]
    assert len(lines) == 1 and f"uid {big_uid}: oversized" in lines[0], lines
    seen_matches_server(desk, dovecot)


def test_a_message_the_server_cannot_read_is_skipped_the_rest_is_read(
        dovecot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A FETCH answered NO (a damaged message in the server's store) costs one message,
    not the replay; a server that can read nothing at all stops it (and the cursor)."""
    import helpdesk.mail.imap as imap

    fill(dovecot, 2)
    dovecot.create_folder(LOG)
    uids = [dovecot.append(LOG, encode(Event("claim", POISON_AGENT, f"tk{i}", {}), "n" * 8),
                           [b"\\Seen"]) for i in range(6)]
    damaged = {uids[2]}
    original = imap.fetch_bodies

    def fetch_bodies(client: Any, uid_set: str, section: str = "TEXT") -> Any:
        if any(_in_set(u, uid_set) for u in damaged):
            raise imapclient.exceptions.IMAPClientError("UID FETCH failed: [b'SERVERBUG']")
        return original(client, uid_set, section)

    monkeypatch.setattr(imap, "fetch_bodies", fetch_bodies)
    desk = Desk(make_profile(dovecot, tmp_path, "agent-a"))
    desk.sync_once()
    assert [desk.holder(f"tk{i}").agent for i in range(6)] == [POISON_AGENT] * 2 + [None] + \
        [POISON_AGENT] * 3
    assert [r.getMessage() for r in team_warnings(caplog)] == [
        f"team log: skipped message uid {uids[2]}: the server could not read it"]
    # Nothing readable at all: the server's trouble, not a message's; the cursor stays.
    damaged.add(dovecot.append(LOG, encode(Event("claim", POISON_AGENT, "tk9", {}), "n" * 8),
                               [b"\\Seen"]))
    cursor = desk.team.cursor()[1]
    with pytest.raises(MailError):
        desk.sync_once()
    assert desk.team.cursor()[1] == cursor
    damaged.clear()
    desk.sync_once()
    assert desk.holder("tk9").agent == POISON_AGENT


@pytest.mark.allow_log_errors
def test_disk_full_while_folding_propagates_and_the_cursor_stays(
        dovecot: Any, tmp_path: Path) -> None:
    """Database trouble is not the event's fault: the sync fails, nothing is skipped,
    and once there is room again the same events fold."""
    fill(dovecot, 2)
    desk = Desk(make_profile(dovecot, tmp_path, "agent-a"))
    desk.sync_once()
    cursor = desk.team.cursor()[1]
    dovecot.create_folder(LOG)
    for i in range(40):
        ev = Event("template", POISON_AGENT, f"reply {i}", {"body": f"{i} " + "words " * 3000})
        dovecot.append(LOG, encode(ev, "n" * 8), [b"\\Seen"])

    def full(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages + 2}")

    desk.store.engine.dispose()
    sa_event.listen(desk.store.engine, "connect", full)
    with pytest.raises(StoreError, match="is full"):  # named for what it is
        desk.sync_once()
    sa_event.remove(desk.store.engine, "connect", full)
    desk.store.engine.dispose()
    assert desk.team.cursor()[1] == cursor
    with desk.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM team_skipped").scalar() == 0
    desk.sync_once()
    with desk.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM templates").scalar() == 40
