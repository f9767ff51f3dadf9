"""The team log: claims decided by log order, shared customer state, replay robustness."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import GO_SCRIPT, make_profile, wait_until
from mailgen import generate
from test_sync import ROOT, fill, write_profile

from helpdesk.desk import Desk
from helpdesk.errors import ConflictError
from helpdesk.team.events import Event, encode

LOG = "HelpDesk/Log"


def desks(server: Any, tmp: Path, *agents: str, **kw: Any) -> list[Desk]:
    out = []
    for agent in agents:
        d = Desk(make_profile(server, tmp, agent, **kw))
        d.sync_once()
        out.append(d)
    return out


def snapshot(desk: Desk) -> dict[str, Any]:
    """Everything team state decides, for comparing replicas."""
    con = sqlite3.connect(desk.profile.database)
    try:
        return {
            "claims": con.execute("SELECT ticket_id, claimed_by, claim_event, status FROM "
                                  "ticket_state ORDER BY ticket_id").fetchall(),
            "customers": con.execute("SELECT email, vip, vip_tier, white_glove, preferred_name, "
                                     "birthday, heard_from FROM customers WHERE vip_stamp > 0 "
                                     "OR white_glove_stamp > 0 OR preferred_name_stamp > 0 "
                                     "ORDER BY email").fetchall(),
            "notes": con.execute("SELECT id, customer_email, text, deleted FROM notes "
                                 "ORDER BY id").fetchall(),
        }
    finally:
        con.close()


def append_event(server: Any, event: Event, date: datetime | None = None) -> None:
    with server.session() as c:
        c.append(LOG, encode(event, "n" * 8), flags=[b"\\Seen"], msg_time=date)


def test_claim_is_exclusive_and_named(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 5)
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    tid = a.tickets("all")[0]["id"]
    info = a.claim(tid)
    assert info.agent == "agent-a"
    with pytest.raises(ConflictError, match="held by agent-a"):
        b.claim(tid)
    assert a.claim(tid).agent == "agent-a"  # claiming again is fine
    assert [t["id"] for t in a.tickets("mine")] == [tid]
    b.sync_once()
    assert tid not in [t["id"] for t in b.tickets("unclaimed")]
    assert next(t for t in b.tickets("all") if t["id"] == tid)["claimed_by"] == "agent-a"
    # A release by a non-owner is ignored; by the owner it frees the ticket.
    b.release(tid)
    assert b.holder(tid).agent == "agent-a"
    a.release(tid)
    assert b.claim(tid).agent == "agent-b"
    assert snapshot(a) != snapshot(b)  # a has not seen b's claim yet
    a.sync_once()
    assert snapshot(a) == snapshot(b)


def test_close_releases_and_reopen(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 3)
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    tid = a.tickets("all")[0]["id"]
    a.claim(tid)
    a.close_ticket(tid)
    b.sync_once()
    row = next(t for t in b.tickets("all") if t["id"] == tid)
    assert row["status"] == "closed" and row["claimed_by"] is None
    assert tid in [t["id"] for t in b.tickets("closed")]
    b.reopen(tid)
    assert b.claim(tid).agent == "agent-b"


def test_takeover_tells_the_holder(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 3)
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    tid = a.tickets("all")[0]["id"]
    a.claim(tid)
    info = b.takeover(tid)
    assert info.agent == "agent-b" and info.previous == "agent-a"
    changes = a.sync_once()
    assert changes.taken_over == [(tid, "agent-a", "agent-b")]
    with pytest.raises(ConflictError, match="agent-b"):
        a.claim(tid)


def test_lease_of_a_crashed_claimer_expires_by_server_time(dovecot: Any,
                                                          tmp_path: Path) -> None:
    fill(dovecot, 3)
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    tid = a.tickets("all")[0]["id"]
    # agent-c claimed 40 minutes ago (by the server's clock) and then crashed.
    old = datetime.now(UTC) - timedelta(minutes=40)
    append_event(dovecot, Event("claim", "agent-c", tid, {"lease": 1800}), date=old)
    a.sync_once()
    assert a.holder(tid).agent is None  # lapsed
    assert a.claim(tid).agent == "agent-a"
    # A fresh claim (lease still running) is respected.
    append_event(dovecot, Event("claim", "agent-c", "zzzzzzzz", {"lease": 1800}))
    b.sync_once()
    assert b.holder("zzzzzzzz").agent == "agent-c"


def test_garbage_in_the_log_is_skipped(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 3)
    with dovecot.session() as c:
        c.create_folder(LOG)
        c.append(LOG, b"Subject: hello\n\nnot json at all\n")
        c.append(LOG, b"Subject: x\n\n" + b"{" * 70000)
        c.append(LOG, b"Subject: x\n\n" + json.dumps(
            {"v": 99, "id": "a" * 32, "type": "claim", "agent": "x", "subject": "y"}).encode())
        c.append(LOG, b"Subject: x\n\n" + json.dumps(
            {"v": 1, "id": "b" * 32, "type": "explode", "agent": "x", "subject": "y"}).encode())
        c.append(LOG, b"Subject: x\n\n" + json.dumps(
            {"v": 1, "id": "c" * 32, "type": "status", "agent": "x", "subject": "y",
             "data": {"status": "exploded"}}).encode())
        c.append(LOG, b"Subject: x\n\n[1, 2, 3]")
        c.append(LOG, next(generate(1)))  # a real mail message filed there by mistake
    (a,) = desks(dovecot, tmp_path, "agent-a")
    tid = a.tickets("all")[0]["id"]
    assert a.claim(tid).agent == "agent-a"
    assert a.update_customer("x@example.com", vip=True, tier="Gold")
    assert a.customer("x@example.com")["vip_tier"] == "Gold"


def test_customer_state_shared_and_late_joiner_identical(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 10)
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    email = a.tickets("all")[0]["customer"]
    a.update_customer(email, vip=True, tier="Platinum", white_glove=True,
                      note="Runs a bakery; be gentle", preferred_name="Lu",
                      birthday="1980-04-23", heard_from="Podcast")
    b.update_customer(email, note="Called on Tuesday")
    b.sync_once()
    data = b.customer(email)
    assert data["vip"] and data["vip_tier"] == "Platinum" and data["white_glove"]
    assert data["preferred_name"] == "Lu" and data["birthday"] == "1980-04-23"
    assert data["heard_from"] == "Podcast"
    assert [n["text"] for n in data["notes"]] == ["Runs a bakery; be gentle",
                                                  "Called on Tuesday"]
    assert data["tickets"]
    b.delete_note(email, data["notes"][0]["id"])
    a.update_customer(email, vip=False, white_glove=False)
    for tid in [t["id"] for t in a.tickets("all")][:3]:
        a.claim(tid)
    (late,) = desks(dovecot, tmp_path, "agent-c")
    a.sync_once()
    b.sync_once()
    assert snapshot(late) == snapshot(a) == snapshot(b)
    final = late.customer(email)
    assert not final["vip"] and not final["white_glove"]
    assert [n["text"] for n in final["notes"]] == ["Called on Tuesday"]


def test_log_uidvalidity_change_rebuilds(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 4)
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    tids = [t["id"] for t in a.tickets("all")]
    a.claim(tids[0])
    a.update_customer("q@example.com", vip=True, tier="Gold")
    b.sync_once()
    before = snapshot(b)
    dovecot.reset_uidvalidity(LOG)
    changes = b.sync_once()
    assert "*" in changes.tickets
    after = snapshot(b)
    assert after["customers"] == before["customers"]
    assert [(c[0], c[1]) for c in after["claims"]] == [(c[0], c[1]) for c in before["claims"]]
    assert b.holder(tids[0]).agent == "agent-a"


def test_without_uidplus_the_nonce_finds_our_event(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 2)
    (a,) = desks(dovecot, tmp_path, "agent-a")
    tid = a.tickets("all")[0]["id"]
    client = a.session.call(a.session.intents.client)  # the intents connection
    original = client.has_capability
    client.has_capability = lambda cap: False if cap == "UIDPLUS" else original(cap)
    try:
        assert a.claim(tid).agent == "agent-a"
    finally:
        client.has_capability = original


def test_teammate_sees_claim_through_idle(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 3)
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    tid = a.tickets("all")[0]["id"]
    loop = b.push_loop()
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(loop.watchers) == 2 and all(w.ready.is_set()
                                                         for w in loop.watchers))
        a.claim(tid)
        wait_until(lambda: b.holder(tid).agent == "agent-a", timeout=5, what="teammate's claim")
    finally:
        loop.stop()
        thread.join(timeout=10)


def test_team_log_on_pymap(pymap_server: Any, tmp_path: Path) -> None:
    fill(pymap_server, 3)
    a, b = desks(pymap_server, tmp_path, "agent-a", "agent-b")
    tid = a.tickets("all")[0]["id"]
    a.claim(tid)
    with pytest.raises(ConflictError):
        b.claim(tid)
    b.update_customer("p@example.com", white_glove=True, note="hi")
    a.sync_once()
    assert snapshot(a) == snapshot(b)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dovecot", "pymap"])
def test_agents_in_separate_processes_race(kind: str, request: pytest.FixtureRequest,
                                           tmp_path: Path) -> None:
    server = request.getfixturevalue("dovecot" if kind == "dovecot" else "pymap_server")
    fill(server, 4)
    agents = [f"agent-{c}" for c in "abcdef"]
    cfgs = [write_profile(server, tmp_path, agent) for agent in agents]
    for cfg in cfgs:
        assert subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(cfg),
                               "sync", "--once"], capture_output=True).returncode == 0
    tickets = json.loads(subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "--config", str(cfgs[0]), "tickets", "--json"],
        capture_output=True, text=True).stdout)
    targets = [t["id"] for t in tickets[:2]]
    go = tmp_path / "go"
    script = GO_SCRIPT
    procs = []
    for cfg in cfgs:
        for tid in targets:
            procs.append((cfg, tid, subprocess.Popen(
                [sys.executable, "-c", script, str(go), "--config", str(cfg), "claim", tid],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    go.touch()
    results: dict[str, list[tuple[str, int, str]]] = {t: [] for t in targets}
    for cfg, tid, p in procs:
        out, err = p.communicate(timeout=120)
        results[tid].append((cfg.stem, p.returncode, err))
    for rs in results.values():
        winners = [agent for agent, code, _ in rs if code == 0]
        assert len(winners) == 1, rs
        losers = [(agent, err) for agent, code, err in rs if code != 0]
        assert all(code == 3 for _a, code, _e in rs if code != 0), rs
        assert all(f"held by {winners[0]}" in err for _a, err in losers)
    # Every replica agrees on every holder.
    views = []
    for cfg in cfgs:
        subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(cfg), "sync",
                        "--once"], capture_output=True, check=True)
        out = json.loads(subprocess.run(
            [sys.executable, str(ROOT / "main.py"), "--config", str(cfg), "tickets", "--view",
             "all", "--json"], capture_output=True, text=True).stdout)
        views.append({t["id"]: t["claimed_by"] for t in out})
    assert all(v == views[0] for v in views)
    assert all(views[0][t] for t in targets)


def test_cli_claim_conflict_exit_3_and_customer_json(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 3)
    ca = write_profile(dovecot, tmp_path, "agent-a")
    cb = write_profile(dovecot, tmp_path, "agent-b")

    def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(cfg),
                               *args], capture_output=True, text=True, timeout=60)

    for cfg in (ca, cb):
        cli(cfg, "sync", "--once")
    tid = json.loads(cli(ca, "tickets", "--json").stdout)[0]["id"]
    assert cli(ca, "claim", tid).returncode == 0
    lost = cli(cb, "claim", tid)
    assert lost.returncode == 3 and "agent-a" in lost.stderr and "since" in lost.stderr
    mine = json.loads(cli(ca, "tickets", "--view", "mine", "--json").stdout)
    assert [t["id"] for t in mine] == [tid] and mine[0]["claimed_by"] == "agent-a"
    email = mine[0]["customer"]
    out = cli(cb, "customer", email, "--vip", "Gold", "--white-glove", "--note", "Loves cats",
              "--preferred-name", "Max", "--birthday", "1990-01-31", "--heard-from", "A friend",
              "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"email", "name", "vip", "vip_tier", "white_glove", "notes", "preferred_name",
            "birthday", "heard_from", "tickets"} <= set(data)
    assert data["vip"] is True and data["vip_tier"] == "Gold" and data["white_glove"] is True
    assert data["notes"][0]["text"] == "Loves cats" and data["notes"][0]["agent"] == "agent-b"
    assert {"id", "agent", "text", "at"} <= set(data["notes"][0])
    assert tid in data["tickets"]
    vip = json.loads(cli(ca, "tickets", "--view", "vip", "--json").stdout)
    cli(ca, "sync", "--once")
    vip = json.loads(cli(ca, "tickets", "--view", "vip", "--json").stdout)
    assert tid in [t["id"] for t in vip] and vip[0]["vip_tier"] == "Gold"
    assert cli(cb, "customer", email, "--birthday", "31/01/1990").returncode == 1
    assert cli(ca, "close", tid).returncode == 0
    assert cli(ca, "reopen", tid).returncode == 0


def test_customer_writing_after_close_reopens_on_every_desktop(dovecot: Any,
                                                             tmp_path: Path) -> None:
    with dovecot.session() as c:
        c.append("INBOX", b"From: ann@example.org\r\nSubject: Broken\r\n"
                          b"Message-ID: <r1@example.org>\r\n\r\nIt broke.\r\n")
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    tid = a.tickets("all")[0]["id"]
    a.close_ticket(tid)
    b.sync_once()
    assert b.tickets("open") == [] and [t["id"] for t in b.tickets("closed")] == [tid]
    later = datetime.now(UTC) + timedelta(seconds=2)  # INTERNALDATE has 1 s resolution
    with dovecot.session() as c:
        c.append("INBOX", b"From: ann@example.org\r\nSubject: Re: Broken\r\n"
                          b"Message-ID: <r2@example.org>\r\nIn-Reply-To: <r1@example.org>\r\n"
                          b"\r\nStill broken!\r\n", msg_time=later)
    for desk in (a, b):
        desk.sync_once()
        assert [t["id"] for t in desk.tickets("open")] == [tid]
        assert desk.tickets("closed") == []


def test_every_event_type_has_exactly_one_handler_listed_in_the_registry() -> None:
    from helpdesk.team.events import TYPES
    from helpdesk.team.registry import HANDLERS

    assert set(HANDLERS) == set(TYPES)
