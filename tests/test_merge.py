"""``merge TICKET INTO`` (issue 14, item 5): a team event folded in log order, identical on
every replica (a late joiner included); messages, state, drafts and queued mail follow;
the merged id resolves to INTO in ``show``, subject tokens and later events; merging into
itself or into a cycle is refused; hostile merge events never loop or stop the fold."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile
from test_sync import ROOT, write_profile
from test_team import LOG, append_event
from test_threads import mail, placement, put, team_state, tid

from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError
from helpdesk.team.events import Event


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def two_tickets(server: Any) -> tuple[str, str]:
    """Two unrelated conversations of one customer: X (newer), Y (older)."""
    put(server, [("INBOX", mail("y@cust.example", "Cannot print", 2)),
                 ("INBOX", mail("x@cust.example", "Printing still broken", 5))])
    return tid("x@cust.example"), tid("y@cust.example")


@pytest.mark.parametrize("kind", ["dovecot", "pymap"])
def test_merge_from_the_cli_is_seen_alike_by_every_replica_and_a_late_joiner(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    server = request.getfixturevalue("dovecot" if kind == "dovecot" else "pymap_server")
    x, y = two_tickets(server)
    ca = write_profile(server, tmp_path, "agent-a")
    cb = write_profile(server, tmp_path, "agent-b")
    for cfg in (ca, cb):
        assert cli(cfg, "sync", "--once").returncode == 0
    assert cli(cb, "claim", x).returncode == 0
    out = cli(ca, "merge", x, y, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"ticket": x, "into": y}
    assert cli(cb, "sync", "--once").returncode == 0
    shown = json.loads(cli(cb, "show", x, "--json").stdout)
    assert shown["id"] == y and len(shown["messages"]) == 2 and shown["aliases"] == [x]
    assert shown["claimed_by"] == "agent-b"  # Y had no claim: X's came with it
    late = tmp_path / "late"
    late.mkdir()
    cc = write_profile(server, late, "agent-c")
    assert cli(cc, "sync", "--once").returncode == 0
    dbs = [tmp_path / "agent-a.sqlite3", tmp_path / "agent-b.sqlite3", late / "agent-c.sqlite3"]
    assert placement(dbs[0]) == {y: ["x@cust.example", "y@cust.example"]}
    assert all(placement(db) == placement(dbs[0]) for db in dbs)
    assert all(_state(db) == _state(dbs[0]) for db in dbs)
    # Later: the customer answers with the old token, a teammate releases the old id.
    put(server, [("INBOX", mail("x2@cust.example", f"Re: Printing still broken [#{x}]", 6))])
    assert cli(cb, "release", x).returncode == 0
    for cfg in (ca, cb, cc):
        assert cli(cfg, "sync", "--once").returncode == 0
    for db in dbs:
        assert placement(db) == {y: ["x2@cust.example", "x@cust.example", "y@cust.example"]}
        assert _state(db) == _state(dbs[0])
        assert _state(db)[0][:3] == (y, "open", None)  # released through the old id


def _state(db: Path) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT ticket_id, status, claimed_by, claim_event FROM ticket_state "
                           "ORDER BY ticket_id").fetchall()
    finally:
        con.close()


def test_merging_into_itself_or_into_a_cycle_is_refused_plainly(dovecot: Any,
                                                                tmp_path: Path) -> None:
    x, y = two_tickets(dovecot)
    cfg = write_profile(dovecot, tmp_path, "agent-a")
    assert cli(cfg, "sync", "--once").returncode == 0
    same = cli(cfg, "merge", x, x)
    assert same.returncode == 1 and "cannot be merged into itself" in same.stderr
    assert "Traceback" not in same.stderr and len(same.stderr.strip().splitlines()) == 1
    assert cli(cfg, "merge", x, y).returncode == 0
    back = cli(cfg, "merge", y, x)
    assert back.returncode == 1 and "already one ticket" in back.stderr
    assert "Traceback" not in back.stderr
    missing = cli(cfg, "merge", x, "zzzzzzzz")
    assert missing.returncode == 1 and "No ticket" in missing.stderr


def test_drafts_and_queued_mail_follow_the_merge(dovecot: Any, smtp_sink: Any,
                                                 tmp_path: Path) -> None:
    x, y = two_tickets(dovecot)
    desk = Desk(make_profile(dovecot, tmp_path, "agent-a", smtp=smtp_sink,
                             send_delay_seconds=3600))
    desk.sync_once()
    queued = desk.reply(x, "queued answer")
    assert queued["state"] == "queued"
    desk.save_draft(x, "half-written answer")
    desk.merge(x, y)
    # Y had no draft: X's moved into it, and X still opens it.
    assert desk.draft(y) == desk.draft(x) == "half-written answer"
    con = sqlite3.connect(desk.profile.database)
    try:
        assert {t for (t,) in con.execute("SELECT ticket_id FROM outbox")} == {y}
    finally:
        con.close()
    # It goes into the ticket it follows: sent, its Sent copy (token [#y]) stored there.
    assert desk.send_now(queued["outbox_id"])["state"] == "sent"
    smtp_sink.wait_for(1, timeout=15)
    desk.sync_once()
    assert len(placement(desk.profile.database)[y]) == 3
    desk.close()


def test_into_keeps_its_own_draft(dovecot: Any, tmp_path: Path) -> None:
    x, y = two_tickets(dovecot)
    desk = Desk(make_profile(dovecot, tmp_path, "agent-a"))
    desk.sync_once()
    desk.save_draft(x, "draft on x")
    desk.save_draft(y, "draft on y")
    desk.merge(x, y)
    assert desk.draft(y) == desk.draft(x) == "draft on y"
    desk.close()


def test_hostile_merge_events_never_loop_nor_stop_the_fold(dovecot: Any,
                                                           tmp_path: Path) -> None:
    x, y = two_tickets(dovecot)
    put(dovecot, [("INBOX", mail("w@cust.example", "Third", 7))])
    w = tid("w@cust.example")
    one = Desk(make_profile(dovecot, tmp_path, "agent-a"))
    one.sync_once()  # creates the log folder
    for ev in [Event("merge", "m", x, {"into": y}),
               Event("merge", "m", y, {"into": x}),  # a cycle: refused
               Event("merge", "m", y, {"into": y}),  # into itself: refused
               Event("merge", "m", w, {"into": 7}),  # not an id
               Event("merge", "m", w, {"into": "w" * 5000}),
               Event("merge", "m", w, {}),
               Event("merge", "m", x, {"into": x}),  # x is y now: into itself
               Event("claim", "agent-z", x, {"lease": 3600})]:
        append_event(dovecot, ev)
    one.sync_once()
    two = Desk(make_profile(dovecot, tmp_path, "agent-b"))
    two.sync_once()
    for d in (one, two):
        assert placement(d.profile.database) == {
            y: ["x@cust.example", "y@cust.example"], w: ["w@cust.example"]}
        assert d.ticket(x)["id"] == y and d.ticket(x)["claimed_by"] == "agent-z"
    assert team_state(one) == team_state(two)
    with pytest.raises(HelpdeskError, match="already one ticket"):
        one.merge(y, x)
    one.close()
    two.close()


def test_a_team_log_rebuild_reproduces_the_merges(dovecot: Any, tmp_path: Path) -> None:
    x, y = two_tickets(dovecot)
    desk = Desk(make_profile(dovecot, tmp_path, "agent-a"))
    desk.sync_once()
    desk.claim(x)
    desk.merge(x, y)
    before = (placement(desk.profile.database), team_state(desk))
    dovecot.reset_uidvalidity(LOG)
    desk.sync_once()
    assert (placement(desk.profile.database), team_state(desk)) == before
    desk.close()


def test_crossed_merges_from_two_desktops_first_in_log_order_wins(dovecot: Any,
                                                                  tmp_path: Path) -> None:
    """agent-a merges X into Y while agent-b, who has not seen it yet, merges Y into X:
    the log orders them; the second is a cycle, refused on every replica, and its agent
    is told."""
    x, y = two_tickets(dovecot)
    a = Desk(make_profile(dovecot, tmp_path, "agent-a"))
    b = Desk(make_profile(dovecot, tmp_path, "agent-b"))
    a.sync_once()
    b.sync_once()
    a.merge(x, y)
    with pytest.raises(HelpdeskError, match="refused"):
        b.merge(y, x)
    a.sync_once()
    for d in (a, b):
        assert placement(d.profile.database) == {y: ["x@cust.example", "y@cust.example"]}
        assert d.ticket(x)["id"] == y
    assert team_state(a) == team_state(b)
    a.close()
    b.close()
