"""Threading that repairs itself (issue 14, item 6): a message naming any message already
in a ticket joins it; a message linking two tickets merges them, identically on every
desktop whatever order it synced the mail in (Sent before INBOX, INBOX before Sent,
newest first); tickets never split; a sync killed mid-merge converges."""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile, wait_until
from test_sync import ROOT, run_cli, write_profile

from helpdesk.desk import Desk
from helpdesk.mail.conversations import ticket_id_for_key
from helpdesk.mail.parse import parse_message
from helpdesk.mail.sync import LAST_UID_UP, IncomingMessage, MailSync
from helpdesk.store import open_store

US = "support@example.com"


def mail(mid: str, subject: str, day: int, *, sender: str = "ann@cust.example",
         irt: str | None = None, refs: str | None = None, to: str = US) -> bytes:
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
             f"Date: Mon, {day:02d} Nov 2026 10:00:00 +0000", f"Message-ID: <{mid}>"]
    if irt:
        lines.append(f"In-Reply-To: <{irt}>")
    if refs:
        lines.append("References: " + " ".join(f"<{r}>" for r in refs.split()))
    return ("\r\n".join(lines) + "\r\n\r\nbody of " + mid + "\r\n").encode()


def tid(root: str) -> str:
    return ticket_id_for_key("id:" + root)


def conversation() -> dict[str, tuple[str, bytes]]:
    """A customer's question, our reply (Sent, with the token) and the customer's answer
    whose client kept only In-Reply-To (our reply) and dropped the token."""
    t = tid("q1@cust.example")
    return {
        "R": ("INBOX", mail("q1@cust.example", "Printer jams", 2)),
        "O": ("Sent", mail("o1@example.com", f"Re: Printer jams [#{t}]", 3, sender=US,
                           to="ann@cust.example", irt="q1@cust.example",
                           refs="q1@cust.example")),
        "C": ("INBOX", mail("c1@cust.example", "Re: Printer jams", 4, irt="o1@example.com")),
    }


def placement(db: Path) -> dict[str, list[str]]:
    """ticket id -> its messages' Message-IDs: what every replica must agree on."""
    con = sqlite3.connect(db)
    try:
        out: dict[str, list[str]] = {}
        for ticket, mid in con.execute("SELECT ticket_id, message_id FROM messages "
                                       "ORDER BY ticket_id, message_id"):
            out.setdefault(ticket, []).append(mid)
        tickets = {t for (t,) in con.execute("SELECT id FROM tickets")}
        assert tickets == set(out), "a ticket row without messages, or messages without one"
        return out
    finally:
        con.close()


def aliases(db: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT ticket_id, into_id FROM thread_aliases ORDER BY 1").fetchall()
    finally:
        con.close()


def put(server: Any, items: list[tuple[str, bytes]]) -> None:
    with server.session() as c:
        for folder, raw in items:
            c.append(folder, raw)


# --- the store alone: every sync order gives the same tickets -----------------------------

def _store_in_order(tmp: Path, order: list[tuple[str, bytes]], name: str) -> Path:
    from helpdesk.config import ImapSettings, Profile

    db = tmp / f"{name}.sqlite3"
    store = open_store(db)
    profile = Profile(agent="a", database=db, imap=ImapSettings(host="localhost"))
    sync = MailSync(store, profile)
    with store.begin() as conn:
        conn.exec_driver_sql("INSERT INTO folders (id, name, role, last_uid) VALUES "
                             "(1, 'INBOX', 'inbox', 0), (2, 'Sent', 'sent', 0)")
    for uid, (folder, raw) in enumerate(order, 1):
        fid, role = (2, "sent") if folder == "Sent" else (1, "inbox")
        sync._store_batch(fid, 1, role, [IncomingMessage(uid, raw, datetime(2026, 11, 9))],
                          [parse_message(raw)], LAST_UID_UP, uid)
    store.close()
    return db


def test_every_order_of_linked_threads_gives_the_same_tickets(tmp_path: Path) -> None:
    """Two conversations linked by a late message, a reply without References, a token
    reply: all 720 orders of storing them end in the same tickets and aliases."""
    a, b = tid("a@cust.example"), tid("b@cust.example")
    msgs = [
        ("INBOX", mail("a@cust.example", "Invoice", 2)),
        ("Sent", mail("oa@example.com", f"Re: Invoice [#{a}]", 3, sender=US,
                      irt="a@cust.example", refs="a@cust.example")),
        ("INBOX", mail("ca@cust.example", "Re: Invoice", 4, irt="oa@example.com")),
        ("INBOX", mail("b@cust.example", "Invoice again", 5)),
        ("INBOX", mail("cb@cust.example", f"Re: Invoice again [#{b}]", 6)),
        # names both conversations: they become one ticket
        ("INBOX", mail("l@cust.example", "Re: both", 7, irt="cb@cust.example",
                       refs="b@cust.example ca@cust.example")),
    ]
    seen: set[str] = set()
    first: tuple[Any, Any] | None = None
    for i, order in enumerate(itertools.permutations(msgs)):
        if i % 24:  # every 24th order (30 of 720, all six messages first five times)
            continue
        db = _store_in_order(tmp_path, list(order), f"o{i}")
        got = (placement(db), aliases(db))
        seen.add(json.dumps(got))
        if first is None:
            first = got
    assert len(seen) == 1, seen
    assert first is not None
    (only,) = first[0]
    assert only == a  # the conversation that started first survives
    assert len(first[0][a]) == 6


def test_tickets_never_split(tmp_path: Path) -> None:
    """Storing more of a conversation only ever merges: a pair of messages once in one
    ticket stays together after every later message."""
    c = conversation()
    order = [c["C"], c["O"], c["R"]]  # newest first
    together: set[frozenset[str]] = set()
    for n in range(1, 4):
        db = _store_in_order(tmp_path, order[:n], f"n{n}")
        for mids in placement(db).values():
            for pair in itertools.combinations(mids, 2):
                together.add(frozenset(pair))
        now = {frozenset(p) for mids in placement(db).values()
               for p in itertools.combinations(mids, 2)}
        assert together <= now


# --- real servers: both sync orders, two desktops -----------------------------------------

ORDERS = {
    "inbox-before-sent": [["R", "C"], ["O"]],
    "sent-before-inbox": [["O"], ["R", "C"]],
    "newest-first": [["C", "O", "R"]],
    "answer-first": [["C"], ["R"], ["O"]],
}


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_reply_without_references_joins_its_ticket(order: str, imap_server: Any,
                                                  tmp_path: Path) -> None:
    conv = conversation()
    t = tid("q1@cust.example")
    desk = Desk(make_profile(imap_server, tmp_path, "agent-a"))
    for step in ORDERS[order]:
        put(imap_server, [conv[k] for k in step])
        desk.sync_once()
    assert placement(desk.profile.database) == {
        t: sorted(["q1@cust.example", "o1@example.com", "c1@cust.example"])}
    # The id the answer would have had alone still opens the ticket.
    shown = desk.ticket(tid("o1@example.com"))
    assert shown["id"] == t and len(shown["messages"]) == 3
    # A desktop that syncs everything at once agrees.
    other = Desk(make_profile(imap_server, tmp_path, "agent-b"))
    other.sync_once()
    assert placement(other.profile.database) == placement(desk.profile.database)
    assert aliases(other.profile.database) == aliases(desk.profile.database)
    desk.close()
    other.close()


def two_conversations() -> tuple[dict[str, tuple[str, bytes]], str, str]:
    a, b = tid("a@cust.example"), tid("b@cust.example")
    return {
        "A": ("INBOX", mail("a@cust.example", "Login fails", 2)),
        "B": ("INBOX", mail("b@cust.example", "Still cannot log in", 3)),
        "OB": ("Sent", mail("ob@example.com", f"Re: Still cannot log in [#{b}]", 4, sender=US,
                            to="ann@cust.example", irt="b@cust.example",
                            refs="b@cust.example")),
        # The customer answers our reply on B, quoting their first mail A as well.
        "L": ("INBOX", mail("l@cust.example", "Re: Still cannot log in", 5,
                            irt="ob@example.com", refs="a@cust.example ob@example.com")),
    }, a, b


def test_a_linking_message_merges_two_tickets_and_their_team_state_alike(
        imap_server: Any, tmp_path: Path) -> None:
    """Desktop 1 sees A and B apart, claims B and closes A, then the linking message
    arrives: one ticket A (B's claim with it). Desktop 2 syncs L first (newest first) and
    the log after: the same tickets, aliases and team state."""
    conv, a, b = two_conversations()
    put(imap_server, [conv["A"], conv["B"], conv["OB"]])
    one = Desk(make_profile(imap_server, tmp_path, "agent-a"))
    one.sync_once()
    assert set(placement(one.profile.database)) == {a, b}
    one.claim(b)
    two = Desk(make_profile(imap_server, tmp_path, "agent-b"))
    two.sync_once()
    two.set_status(a, "pending")
    one.sync_once()
    # L arrived (by the server's clock) before A was set pending: it stays pending whatever
    # second the test's APPEND falls in (mail after a status change would reopen it).
    with imap_server.session() as c:
        c.append(conv["L"][0], conv["L"][1],
                 msg_time=datetime.now(UTC) - timedelta(hours=1))
    one.sync_once()
    assert placement(one.profile.database) == {a: sorted(
        ["a@cust.example", "b@cust.example", "ob@example.com", "l@cust.example"])}
    row = one.ticket(b)
    assert row["id"] == a and row["claimed_by"] == "agent-a" and row["status"] == "pending"
    # A late joiner stores L before our reply OB (INBOX first) and folds the log after.
    joiner = Desk(make_profile(imap_server, tmp_path, "agent-c"))
    joiner.sync_once()
    two.sync_once()
    for d in (two, joiner):
        assert placement(d.profile.database) == placement(one.profile.database)
        assert aliases(d.profile.database) == aliases(one.profile.database)
        assert team_state(d) == team_state(one)
    for d in (one, two, joiner):
        d.close()


def team_state(desk: Desk) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(desk.profile.database)
    try:
        return con.execute("SELECT ticket_id, status, claimed_by, claim_event FROM ticket_state "
                           "ORDER BY ticket_id").fetchall()
    finally:
        con.close()


def test_claims_on_both_tickets_before_the_link_are_decided_by_log_order(
        dovecot: Any, tmp_path: Path) -> None:
    """agent-b claimed B, then agent-a claimed A, while they were two tickets. Once mail
    links them they are one ticket, and it is as if they always were: the first claim in
    log order holds it, on a desktop that folded before the link and one that did not."""
    conv, a, b = two_conversations()
    put(dovecot, [conv["A"], conv["B"], conv["OB"]])
    one = Desk(make_profile(dovecot, tmp_path, "agent-a"))
    two = Desk(make_profile(dovecot, tmp_path, "agent-b"))
    one.sync_once()
    two.sync_once()
    two.claim(b)
    one.claim(a)
    put(dovecot, [conv["L"]])
    one.sync_once()
    two.sync_once()
    assert one.ticket(a)["claimed_by"] == "agent-b"
    assert team_state(one) == team_state(two)
    fresh = Desk(make_profile(dovecot, tmp_path, "agent-c"))
    fresh.sync_once()
    assert team_state(fresh) == team_state(one)
    assert placement(fresh.profile.database) == placement(one.profile.database)
    for d in (one, two, fresh):
        d.close()


def test_killed_sync_mid_merge_converges(dovecot: Any, tmp_path: Path) -> None:
    """Many conversations whose answers (INBOX, synced first) only name our replies (Sent,
    synced after): a sync killed -9 while the Sent copies merge them, re-run, ends where a
    clean desktop does."""
    n = 60
    items: list[tuple[str, bytes]] = []
    sent: list[tuple[str, bytes]] = []
    for i in range(n):
        root, ours, answer = f"q{i}@cust.example", f"o{i}@example.com", f"c{i}@cust.example"
        items.append(("INBOX", mail(root, f"Question {i}", 2)))
        items.append(("INBOX", mail(answer, f"Re: Question {i}", 4, irt=ours)))
        sent.append(("Sent", mail(ours, f"Re: Question {i} [#{tid(root)}]", 3, sender=US,
                                  to="ann@cust.example", irt=root, refs=root)))
    put(dovecot, items + sent)
    cfg = write_profile(dovecot, tmp_path, "agent-a", batch_size=2)
    db = tmp_path / "agent-a.sqlite3"
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(cfg),
                             "sync", "--once"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def merging() -> bool:
        try:
            con = sqlite3.connect(db, timeout=10)
            try:
                return int(con.execute("SELECT count(*) FROM thread_aliases").fetchone()[0]) >= 5
            finally:
                con.close()
        except sqlite3.Error:
            return False

    wait_until(merging, timeout=120, what="the first merges")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(aliases(db)) < n, "the sync finished before it could be killed"
    assert run_cli(cfg, "sync", "--once").returncode == 0
    clean = Desk(make_profile(dovecot, tmp_path, "agent-b"))
    clean.sync_once()
    got = placement(db)
    assert got == placement(clean.profile.database)
    assert len(got) == n and all(len(m) == 3 for m in got.values())
    assert aliases(db) == aliases(clean.profile.database)
    clean.close()


def test_canonical_never_loops_on_a_hostile_cycle(tmp_path: Path) -> None:
    from helpdesk.store.aliases import canonical

    store = open_store(tmp_path / "s.sqlite3")
    with store.begin() as conn:
        conn.exec_driver_sql("INSERT INTO thread_aliases VALUES ('bbbbbbbb', 'cccccccc')")
        conn.exec_driver_sql(
            "INSERT INTO ticket_merges VALUES ('cccccccc', 'dddddddd', 1, 'x', '2026-01-01'), "
            "('dddddddd', 'bbbbbbbb', 2, 'x', '2026-01-01'), "
            "('aaaaaaaa', 'bbbbbbbb', 3, 'x', '2026-01-01')")
        assert {canonical(conn, t) for t in ("aaaaaaaa", "bbbbbbbb", "cccccccc",
                                             "dddddddd")} == {"cccccccc"}
        assert canonical(conn, "eeeeeeee") == "eeeeeeee"
    store.close()


def test_rebuild_store_reproduces_the_aliases(dovecot: Any, tmp_path: Path) -> None:
    conv, a, _b = two_conversations()
    put(dovecot, [conv[k] for k in ("L", "OB", "B", "A")])
    cfg = write_profile(dovecot, tmp_path, "agent-a")
    assert run_cli(cfg, "sync", "--once").returncode == 0
    db = tmp_path / "agent-a.sqlite3"
    before = (placement(db), aliases(db))
    assert list(before[0]) == [a]
    out = run_cli(cfg, "rebuild-store", "--force")
    assert out.returncode == 0, out.stderr
    assert (placement(db), aliases(db)) == before


def test_a_store_upgraded_to_0010_finds_the_links_of_its_old_mail(dovecot: Any,
                                                                  tmp_path: Path) -> None:
    """Mail stored before this revision sits in one ticket per thread id; the migration
    asks the next sync to find the links among it (in chunks, resumable)."""
    conv = conversation()
    put(dovecot, list(conv.values()))
    desk = Desk(make_profile(dovecot, tmp_path, "agent-a"))
    desk.sync_once()
    db = desk.profile.database
    joined = placement(db)
    con = sqlite3.connect(db)
    with con:  # what a 0009 store held, and what the migration adds
        con.execute("DELETE FROM thread_aliases")
        con.execute("INSERT OR IGNORE INTO tickets (id, thread_key, subject, created_at, "
                    "updated_at) SELECT DISTINCT thread_ticket, 'id:x', '', received_at, "
                    "received_at FROM messages")
        con.execute("UPDATE messages SET ticket_id = thread_ticket")
        con.execute("DELETE FROM tickets WHERE id NOT IN (SELECT ticket_id FROM messages)")
        con.execute("INSERT INTO meta (key, value) VALUES ('threads.rethread', '0')")
    con.close()
    assert len(placement(db)) == 2
    desk.sync_once()
    assert placement(db) == joined
    assert desk.store.get_meta("threads.rethread") is None
    desk.close()
