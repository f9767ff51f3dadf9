"""Teamwork on a ticket (issue 14, items 1-4, 7): internal notes and @mentions,
assignment, snooze, tags and spam, as team-log events folded alike on every desktop."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile
from test_sync import fill

from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError
from helpdesk.replies import Draft
from helpdesk.team.events import Event, encode

LOG = "HelpDesk/Log"


def desks(server: Any, tmp: Path, *agents: str, **kw: Any) -> list[Desk]:
    out = []
    for agent in agents:
        d = Desk(make_profile(server, tmp, agent, **kw))
        d.sync_once()
        out.append(d)
    return out


def append_event(server: Any, event: Event, date: datetime | None = None) -> None:
    with server.session() as c:
        if not c.folder_exists(LOG):
            c.create_folder(LOG)
        c.append(LOG, encode(event, "n" * 8), flags=[b"\\Seen"], msg_time=date)


def teamwork_state(db: Path) -> dict[str, Any]:
    """Everything this feature folds, for comparing replicas."""
    con = sqlite3.connect(db)
    try:
        return {table: con.execute(sql).fetchall() for table, sql in {
            "notes": "SELECT event_id, ticket_id, agent, text, at, mentions FROM ticket_notes "
                     "ORDER BY uid",
            "mentions": "SELECT agent, ticket_id, note_id FROM ticket_mentions ORDER BY 1, 2",
            "work": "SELECT ticket_id, assignee, snoozed_until, snoozed_at FROM ticket_work "
                    "ORDER BY 1",
            "tags": "SELECT ticket_id, tag FROM ticket_tags ORDER BY 1, 2",
            "spam": "SELECT pattern, kind, active FROM spam_blocks ORDER BY 1",
        }.items()}
    finally:
        con.close()


def ids(desk: Desk, view: str, **kw: Any) -> list[str]:
    return [t["id"] for t in desk.tickets(view, **kw)]


def test_notes_and_mentions_identical_on_every_desktop(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 12)
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    tid = ids(a, "all")[0]
    out = a.note(tid, "Customer is on the old plan; @agent-b can you check? cc @agent-a "
                      "and mail x@agent-c.example")
    assert out["mentions"] == ["agent-b"]  # not myself, not an e-mail address
    a.note(tid, "Second thought.")
    changes = b.sync_once()
    assert changes.mentioned == [(tid, "agent-a")]
    shown = b.ticket(tid)
    assert [n["text"] for n in shown["notes"]] == [
        "Customer is on the old plan; @agent-b can you check? cc @agent-a and mail "
        "x@agent-c.example", "Second thought."]
    note = shown["notes"][0]
    assert set(note) == {"id", "agent", "text", "at", "mentions"}
    assert note["agent"] == "agent-a" and note["mentions"] == ["agent-b"]
    assert note["at"].endswith("Z")
    # In order among the messages: the notes come after the message they were written on.
    kinds = [item["kind"] for item in shown["timeline"]]
    assert kinds[-2:] == ["note", "note"] and kinds.count("message") == shown["message_count"]
    assert ids(b, "mentions") == [tid] and ids(a, "mentions") == []
    b.note(tid, "Checked: fine.")  # answering in a note answers the mention
    assert ids(b, "mentions") == []
    (late,) = desks(dovecot, tmp_path, "agent-c")
    a.sync_once()
    assert teamwork_state(a.profile.database) == teamwork_state(b.profile.database) \
        == teamwork_state(late.profile.database)
    for d in (a, b, late):
        d.close()


def test_a_note_never_reaches_the_customer(dovecot: Any, smtp_sink: Any, tmp_path: Path) -> None:
    with dovecot.session() as c:
        c.append("INBOX", b"From: zoe@customer.example\r\nTo: support@example.com\r\n"
                          b"Subject: Export broken\r\nMessage-ID: <z1@customer.example>\r\n"
                          b"\r\nThe export is broken.\r\n")
    a = Desk(make_profile(dovecot, tmp_path, "agent-a", smtp=smtp_sink))
    a.sync_once()
    b = Desk(make_profile(dovecot, tmp_path, "agent-b", smtp=smtp_sink))
    b.sync_once()
    tid = ids(a, "all")[0]
    secret = "INTERNAL-ONLY she was rude on the phone"
    a.note(tid, f"{secret} @agent-b")
    b.sync_once()
    assert ids(b, "mentions") == [tid]
    b.reply(tid, "We are on it.", draft=Draft(body="We are on it.", quote=True))
    b.forward(tid, ["vendor@partner.example"])
    b.compose(["zoe@customer.example"], "Following up", Draft(body="Hello again"))
    b.sync_once()
    sent = smtp_sink.wait_for(3)
    assert len(sent) == 3
    for _from, _rcpts, raw in sent:
        assert b"INTERNAL-ONLY" not in raw and b"rude" not in raw
    assert ids(b, "mentions") == []  # a reply answers the mention
    with dovecot.session() as c:
        for folder in ("Sent", "INBOX"):
            for _uid, raw, _flags, _date in dovecot.messages(folder):
                assert b"INTERNAL-ONLY" not in raw
    assert not any(secret in json.dumps(m) for m in b.ticket(tid)["messages"])
    a.close()
    b.close()


def test_assignment_mine_and_the_assignee_is_told(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 12)
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    t1, t2, t3 = ids(a, "all")[:3]
    a.assign(t1, "agent-b")
    a.claim(t2)
    changes = b.sync_once()
    assert changes.assigned == [(t1, "agent-a")]
    assert b.ticket(t1)["assignee"] == "agent-b" and b.ticket(t1)["claimed_by"] is None
    assert ids(b, "mine") == [t1]
    assert ids(a, "mine") == [t2]
    b.assign(t3, "agent-b")  # assigning oneself tells nobody
    assert not b.sync_once().assigned
    assert sorted(ids(b, "mine")) == sorted([t1, t3])
    a.unassign(t1)
    b.sync_once()
    assert b.ticket(t1)["assignee"] is None and ids(b, "mine") == [t3]
    with pytest.raises(HelpdeskError, match="not an agent name"):
        a.assign(t1, "two words")
    a.sync_once()
    assert teamwork_state(a.profile.database) == teamwork_state(b.profile.database)


def test_snooze_leaves_the_open_views_until_server_time(dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 12)
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    t1, t2, t3 = ids(a, "all")[:3]
    # Snoozed three hours ago (server time) for two hours: awake again, on every desktop,
    # with no event to wake it. (First in the log: the server's time is monotone-clamped.)
    append_event(dovecot, Event("snooze", "agent-c", t2, {"seconds": 7200}),
                 date=datetime.now(UTC) - timedelta(hours=3))
    a.snooze(t1, seconds=2 * 3600)
    b.sync_once()
    for d in (a, b):
        assert t1 not in ids(d, "open") and ids(d, "snoozed") == [t1]
        until = d.ticket(t1)["snoozed_until"]
        assert until is not None and until > datetime.now(UTC).strftime("%Y-%m-%dT%H:%M")
        assert t2 in ids(d, "open") and d.ticket(t2)["snoozed_until"] is None
    # Snoozed just now for two hours by a desktop whose clock is wrong: the server's
    # INTERNALDATE is what counts, so it sleeps.
    append_event(dovecot, Event("snooze", "agent-c", t3, {"seconds": 7200},
                                client_time="2001-01-01T00:00:00Z"))
    for d in (a, b):
        d.sync_once()
        assert t2 in ids(d, "open") and d.ticket(t2)["snoozed_until"] is None
        assert sorted(ids(d, "snoozed")) == sorted([t1, t3])
    b.unsnooze(t3)
    a.sync_once()
    assert t3 in ids(a, "open") and ids(a, "snoozed") == [t1]
    with pytest.raises(HelpdeskError, match="already passed"):
        a.snooze(t3, until=datetime(2020, 1, 1))
    assert teamwork_state(a.profile.database) == teamwork_state(b.profile.database)


def test_a_customer_writing_wakes_a_snoozed_ticket(dovecot: Any, tmp_path: Path) -> None:
    with dovecot.session() as c:
        c.append("INBOX", b"From: ann@example.org\r\nSubject: Broken\r\n"
                          b"Message-ID: <s1@example.org>\r\n\r\nIt broke.\r\n")
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    tid = ids(a, "all")[0]
    a.snooze(tid, seconds=86400)
    assert ids(a, "open") == [] and ids(a, "snoozed") == [tid]
    later = datetime.now(UTC) + timedelta(seconds=2)  # INTERNALDATE has 1 s resolution
    with dovecot.session() as c:
        c.append("INBOX", b"From: ann@example.org\r\nSubject: Re: Broken\r\n"
                          b"Message-ID: <s2@example.org>\r\nIn-Reply-To: <s1@example.org>\r\n"
                          b"\r\nStill broken!\r\n", msg_time=later)
    for d in (a, b):
        d.sync_once()
        assert ids(d, "open") == [tid] and ids(d, "snoozed") == []
        assert d.ticket(tid)["snoozed_until"] is None


def test_tags_filter_search_and_counts(imap_server: Any, tmp_path: Path) -> None:
    fill(imap_server, 12)
    a, b = desks(imap_server, tmp_path, "agent-a", "agent-b")
    t1, t2, t3 = ids(a, "all")[:3]
    a.tag(t1, add=["Billing", "#vip-care"])
    a.tag(t2, add=["billing"])
    b.sync_once()
    assert b.ticket(t1)["tags"] == ["billing", "vip-care"]
    assert sorted(ids(b, "all", tags=("billing",))) == sorted([t1, t2])
    assert ids(b, "all", search="tag:vip-care") == [t1]
    assert ids(b, "all", search="tag:billing tag:vip-care") == [t1]
    assert b.tag_counts() == {"billing": 2, "vip-care": 1}
    b.tag(t1, add=["refund"], remove=["billing"])
    a.sync_once()
    assert a.ticket(t1)["tags"] == ["refund", "vip-care"]
    assert a.tag_counts() == {"billing": 1, "refund": 1, "vip-care": 1}
    assert t3 not in ids(a, "all", tags=("billing",))
    with pytest.raises(HelpdeskError, match="is not a tag"):
        a.tag(t3, add=["no spaces please"])
    assert teamwork_state(a.profile.database) == teamwork_state(b.profile.database)


def test_spam_closes_and_sends_later_mail_to_the_spam_view(dovecot: Any,
                                                          tmp_path: Path) -> None:
    def mail(n: int, sender: str) -> bytes:
        return (f"From: {sender}\r\nSubject: Cheap pills {n}\r\nMessage-ID: <sp{n}@x>\r\n"
                f"\r\nBuy now {n}\r\n").encode()

    with dovecot.session() as c:
        c.append("INBOX", mail(1, "bulk@spam.example"))
        c.append("INBOX", mail(2, "ok@fine.example"))
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    spam_tid = next(t["id"] for t in a.tickets("all") if t["customer"] == "bulk@spam.example")
    a.spam(spam_tid)
    with dovecot.session() as c:
        c.append("INBOX", mail(3, "bulk@spam.example"))
        c.append("INBOX", mail(4, "other@spam.example"))
    for d in (a, b):
        changes = d.sync_once()
        spam = {t["customer"] for t in d.tickets("spam")}
        assert spam == {"bulk@spam.example"}
        assert {t["customer"] for t in d.tickets("open")} == {"ok@fine.example",
                                                              "other@spam.example"}
        assert d.ticket(spam_tid)["status"] == "closed" and d.ticket(spam_tid)["spam"]
        assert changes is not None
    b.spam(next(t["id"] for t in b.tickets("open") if t["customer"] == "other@spam.example"),
           domain=True)
    a.sync_once()
    assert {t["customer"] for t in a.tickets("open")} == {"ok@fine.example"}
    assert a.spam_blocks() == {"bulk@spam.example": "address", "spam.example": "domain"}
    assert a.unspam("bulk@spam.example") == ["bulk@spam.example", "spam.example"]
    b.sync_once()
    assert b.tickets("spam") == [] and b.spam_blocks() == {}
    with pytest.raises(HelpdeskError, match="not treated as spam"):
        b.unspam("bulk@spam.example")
    assert teamwork_state(a.profile.database) == teamwork_state(b.profile.database)


def test_concurrent_adds_and_removes_merge_by_log_order(dovecot: Any, tmp_path: Path) -> None:
    """Two desktops, each acting on stale state: the server's order decides, alike."""
    fill(dovecot, 12)
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")
    tid = ids(a, "all")[0]
    a.tag(tid, add=["billing"])
    b.tag(tid, remove=["billing"], add=["refund"])  # b never folded a's add first? it did:
    a.tag(tid, add=["billing"])  # the later event wins per tag
    b.assign(tid, "agent-b")
    a.unassign(tid)
    a.snooze(tid, seconds=3600)
    b.unsnooze(tid)
    for d in (a, b):
        d.sync_once()
    assert a.ticket(tid)["tags"] == b.ticket(tid)["tags"] == ["billing", "refund"]
    assert a.ticket(tid)["assignee"] is None is b.ticket(tid)["assignee"]
    assert a.ticket(tid)["snoozed_until"] is None is b.ticket(tid)["snoozed_until"]
    assert teamwork_state(a.profile.database) == teamwork_state(b.profile.database)


HOSTILE = [
    ("ticket-note", {"text": 42}), ("ticket-note", {"text": ["a"]}), ("ticket-note", {}),
    ("ticket-note", {"text": "   "}),
    ("assign", {"assignee": 7}), ("assign", {"assignee": "two words"}),
    ("assign", {"assignee": {"x": 1}}),
    ("snooze", {"seconds": "3600"}), ("snooze", {"seconds": -5}), ("snooze", {"seconds": True}),
    ("snooze", {"until": 12}), ("snooze", {"until": "tomorrow"}),
    ("snooze", {"until": "2026-01-01T00:00:00+02:00"}), ("snooze", {"seconds": 10**12}),
    ("tag", {"add": "billing"}), ("tag", {"add": [1, 2]}), ("tag", {"remove": ["a b"]}),
    ("tag", {"add": [{"t": "x"}]}),
    ("spam", {"on": "yes"}), ("spam", {}), ("spam", {"on": True, "kind": "domain"}),
]


@pytest.mark.parametrize("kind", ["dovecot", "pymap"])
def test_hostile_teamwork_events_are_skipped_with_one_log_line(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    server = request.getfixturevalue("dovecot" if kind == "dovecot" else "pymap_server")
    fill(server, 12)
    (a,) = desks(server, tmp_path, "agent-a")
    tid = ids(a, "all")[0]
    for etype, data in HOSTILE:
        subject = "bulk@spam.example" if etype == "spam" else tid
        append_event(server, Event(etype, "mallory", subject, data))
    append_event(server, Event("spam", "mallory", "not an address", {"on": True}))
    append_event(server, Event("ticket-note", "mallory", "", {"text": "no ticket"}))
    with caplog.at_level(logging.WARNING, logger="helpdesk.team"):
        a.sync_once()
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == len(HOSTILE) + 2, [r.getMessage() for r in skipped]
    assert teamwork_state(a.profile.database) == {
        "notes": [], "mentions": [], "work": [], "tags": [], "spam": []}
    # The log goes on: good events after the bad ones fold.
    a.tag(tid, add=["billing"])
    a.note(tid, "still works")
    assert a.ticket(tid)["tags"] == ["billing"] and len(a.ticket(tid)["notes"]) == 1


TEAMWORK_TYPES = ("ticket-note", "assign", "snooze", "tag", "spam")


def test_an_older_build_keeps_teamwork_events_and_folds_them_once_upgraded(
        dovecot: Any, tmp_path: Path) -> None:
    from test_team_upgrade import assert_same_tables, on_build

    fill(dovecot, 12)
    a = Desk(make_profile(dovecot, tmp_path, "agent-a"))
    old = on_build(Desk(make_profile(dovecot, tmp_path, "agent-o")), *TEAMWORK_TYPES)
    for d in (a, old):
        d.sync_once()
    t1, t2 = ids(a, "all")[:2]
    a.note(t1, "@agent-o look")
    a.assign(t1, "agent-o")
    a.tag(t1, add=["billing"])
    a.tag(t1, remove=["billing"], add=["refund"])
    a.snooze(t2, seconds=3600)
    a.spam(t2)
    old.sync_once()
    with old.store.read() as conn:
        kept = [t for (t,) in conn.exec_driver_sql("SELECT type FROM team_pending ORDER BY uid")]
    assert kept == ["ticket-note", "assign", "tag", "tag", "snooze", "spam"]
    assert old.ticket(t1)["tags"] == [] and old.ticket(t1)["assignee"] is None
    old.close()
    new = Desk(old.profile)
    new.sync_once()
    assert new.ticket(t1)["tags"] == ["refund"] and new.ticket(t1)["assignee"] == "agent-o"
    assert ids(new, "mentions") == [t1] and ids(new, "spam") == [t2]
    a.sync_once()
    assert_same_tables(new.profile.database, a.profile.database)
    (late,) = desks(dovecot, tmp_path, "agent-l")
    assert_same_tables(late.profile.database, a.profile.database)


def test_counts_agree_with_the_lists_with_and_without_teamwork_state(
        dovecot: Any, tmp_path: Path) -> None:
    from sqlalchemy import text

    from helpdesk.store import queries

    fill(dovecot, 30)
    a, b = desks(dovecot, tmp_path, "agent-a", "agent-b")

    def check() -> None:
        counts = a.status()["counts"]
        q = a.book.ticket_query()
        with a.store.read() as conn:
            for view in queries.VIEWS:
                listed = a.ticket_ids(view)
                assert counts[view] == len(listed), view
                # The shortcut for absent flags selects what the full clause selects.
                vq = a.book.ticket_query(view)
                params: dict[str, Any] = {}
                full = queries._ids_sql(vq, [queries._view_clause(vq, params)], None)
                assert [r[0] for r in conn.execute(text(full), params)] == listed, view
            assert queries.absent_flags(conn, q) <= {"spam", "snoozed", "mentioned", "assigned"}

    check()  # nothing blocked, snoozed or mentioned: the shortcut's case
    tids = ids(a, "all")
    b.note(tids[0], "@agent-a look")
    b.assign(tids[1], "agent-a")
    b.claim(tids[2])
    b.snooze(tids[3], seconds=3600)
    b.snooze(tids[4], seconds=3600)
    b.unsnooze(tids[4])
    b.tag(tids[6], add=["billing"])
    a.claim(tids[7])
    # Block a domain none of the tickets above belongs to (mailgen's senders share
    # domains, and which ones depends on the run): a sender of its own, two tickets.
    with dovecot.session() as c:
        for n in (1, 2):
            c.append("INBOX", (f"From: bulk{n}@junk.example\r\nSubject: Offer {n}\r\n"
                               f"Message-ID: <junk{n}@junk.example>\r\n\r\n"
                               f"Buy {n}\r\n").encode())
    b.sync_once()
    junk = [t["id"] for t in b.tickets("all") if t["customer"].endswith("@junk.example")]
    assert len(junk) == 2
    b.spam(junk[0], domain=True)
    a.sync_once()
    check()
    assert ids(a, "mine") == sorted([tids[1], tids[7]], key=ids(a, "all").index)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_cut_append_folds_each_teamwork_event_once(dovecot: Any, tmp_path: Path,
                                                     when: str) -> None:
    """The connection dies at the APPEND of a note, a tag, an assignment (before the server
    has it, or after it stored it but before we heard): the intent goes on, and every
    event is folded exactly once (a copy appended again is the same event)."""
    from faults import CutProxy
    from test_faults import proxied_desk

    fill(dovecot, 12)
    with CutProxy(dovecot.host, dovecot.port) as imap:
        a = proxied_desk(dovecot, tmp_path, imap)
        a.sync_once()
        tid = ids(a, "all")[0]
        for act in (lambda: a.note(tid, "cut @agent-b"), lambda: a.tag(tid, add=["billing"]),
                    lambda: a.assign(tid, "agent-b"), lambda: a.snooze(tid, seconds=600)):
            imap.arm(r"APPEND", when)
            act()
            assert not imap.armed
        a.close()
    (b,) = desks(dovecot, tmp_path, "agent-b")
    shown = b.ticket(tid)
    assert [n["text"] for n in shown["notes"]] == ["cut @agent-b"]
    assert shown["tags"] == ["billing"] and shown["assignee"] == "agent-b"
    assert shown["snoozed_until"] is not None
    con = sqlite3.connect(b.profile.database)
    try:
        folded = con.execute("SELECT type FROM team_events ORDER BY uid").fetchall()
    finally:
        con.close()
    assert [t for (t,) in folded] == ["ticket-note", "tag", "assign", "snooze"]
