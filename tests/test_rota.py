"""The duty rota, hand-offs, newcomer weeks and the weekly digest against Dovecot.

Several desktops at once run as separate processes (tests/desktop_proc.py) that start
their sync on one signal; the SMTP sink counts what went out.
"""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile, wait_until
from test_sync import ROOT, run_cli, write_profile

from helpdesk.clock import utcnow
from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError
from helpdesk.rota import schedule
from helpdesk.store.engine import parse_db_time
from helpdesk.team import events

HERE = Path(__file__).resolve().parent


def mail(frm: str, subject: str, body: str, *, to: str = "support@example.com",
         at: datetime | None = None, msgid: str | None = None, in_reply_to: str | None = None,
         headers: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = frm, to, subject
    msg["Message-ID"] = msgid or f"<{uuid.uuid4().hex}@customer.example>"
    if in_reply_to:
        msg["In-Reply-To"] = msg["References"] = in_reply_to
    msg["Date"] = format_datetime((at or utcnow()).replace(tzinfo=UTC))
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    return bytes(msg)


def put_event(server: Any, folder: str, etype: str, subject: str, at: datetime,
              agent: str = "kim", **data: Any) -> None:
    """A team event as a teammate's desktop wrote it at ``at`` (server time)."""
    ev = events.Event(type=etype, agent=agent, subject=subject, data=data)
    server.append(folder, events.encode(ev, uuid.uuid4().hex), [b"\\Seen"],
                  at.replace(tzinfo=UTC))


def log_events(server: Any, folder: str, etype: str) -> list[dict[str, Any]]:
    out = []
    for _uid, raw, _flags, _at in server.messages(folder):
        try:
            ev = events.decode_body(events.split_body(raw))
        except events.EventError:
            continue
        if ev.type == etype:
            out.append({"subject": ev.subject, "agent": ev.agent, "data": ev.data})
    return out


class Desktops:
    """N desktop processes that each sync once, then together on ``go()``."""

    def __init__(self, server: Any, tmp: Path, agents: list[str], smtp: Any = None,
                 passes: int = 1) -> None:
        self.go_file = tmp / "go"
        self.procs: list[subprocess.Popen[str]] = []
        self.ready: list[Path] = []
        user = next(iter(server.users))
        for agent in agents:
            spec = {"server": {"host": server.host, "port": server.port, "user": user,
                               "password": server.users[user]},
                    "smtp": {"host": smtp.host, "port": smtp.port} if smtp else None,
                    "agent": agent, "dir": str(tmp), "db": f"{agent}-proc.sqlite3",
                    "go": str(self.go_file), "ready": str(tmp / f"{agent}.ready"),
                    "passes": passes}
            path = tmp / f"{agent}.json"
            path.write_text(json.dumps(spec))
            self.ready.append(tmp / f"{agent}.ready")
            self.procs.append(subprocess.Popen(
                [sys.executable, str(HERE / "desktop_proc.py"), str(path)], cwd=ROOT,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        wait_until(lambda: all(p.exists() for p in self.ready), 90, what="desktops ready")

    def go(self) -> list[dict[str, Any]]:
        self.go_file.write_text("go")
        results = []
        for proc in self.procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-2000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results


ALL_DAYS = list(schedule.DAY_NAMES)


# --- the rota: team state, the same on every desktop ---------------------------------

def test_rota_set_swap_and_learning_are_team_state(dovecot: Any, tmp_path: Path) -> None:
    a = Desk(make_profile(dovecot, tmp_path, "kim"))
    b = Desk(make_profile(dovecot, tmp_path, "lee"))
    a.sync_once()
    a.rota.set_rota(["kim", "lee", "ana"], days=1, weekdays="mon-sun",
                    timezone="Europe/Berlin", covers={"kim": "ana"})
    b.sync_once()
    shown_a, shown_b = a.rota.show(), b.rota.show()
    assert shown_a == shown_b
    assert shown_b["today"]["agent"] == "kim" and shown_b["today"]["backup"] == "ana"
    assert [d["agent"] for d in shown_b["week"][:4]] == ["kim", "lee", "ana", "kim"]
    tomorrow = shown_b["week"][1]["date"]
    b.rota.swap(tomorrow, "lee" if shown_b["week"][1]["agent"] != "lee" else "kim")
    b.rota.swap(tomorrow, "ana")  # the last swap in log order counts
    a.sync_once()
    assert a.rota.show()["week"][1] == {**shown_b["week"][1], "agent": "ana", "swapped": True,
                                        "backup": "kim"}
    assert a.rota.show() == b.rota.show()
    with pytest.raises(HelpdeskError, match="not a time zone"):
        a.rota.set_rota(["kim"], timezone="Mars/Olympus")
    with pytest.raises(HelpdeskError, match="Cannot swap"):
        a.rota.swap("next tuesday", "kim")
    a.rota.set_learning("nia", "2099-01-01")
    b.sync_once()
    assert b.rota.learning() == {"nia": "2099-01-01"} and b.rota.is_learning("nia")
    assert not b.rota.is_learning("kim")
    a.close()
    b.close()


def test_hostile_rota_events_are_skipped_and_change_nothing(dovecot: Any,
                                                            tmp_path: Path) -> None:
    a = Desk(make_profile(dovecot, tmp_path, "kim"))
    a.sync_once()
    a.rota.set_rota(["kim", "lee"], weekdays="mon-sun")
    before = a.rota.show()
    now = utcnow()
    folder = a.team.folder
    put_event(dovecot, folder, "rota", "team", now, people="kim")
    put_event(dovecot, folder, "rota", "team", now, people=["kim"], start="2026-01-01",
              timezone="../../../etc/localtime")
    put_event(dovecot, folder, "rota-swap", "tomorrow", now, agent="kim")
    put_event(dovecot, folder, "rota-swap", "2026-12-01", now, agent=["x"])
    put_event(dovecot, folder, "learning", "nia", now, until="forever")
    put_event(dovecot, folder, "approval", "<nothing@x>", now)
    put_event(dovecot, folder, "digest-sending", "last week", now, message_id="x")
    a.sync_once()
    assert a.rota.show() == before and a.rota.learning() == {}
    a.close()


# --- the automatic hand-off: once, with three desktops at the boundary -------------------

def test_handoff_happens_once_with_three_desktop_processes(dovecot: Any,
                                                          tmp_path: Path) -> None:
    first = Desk(make_profile(dovecot, tmp_path, "kim"))
    first.sync_once()  # creates the team folder
    folder = first.team.folder
    first.close()
    desktops = Desktops(dovecot, tmp_path, ["kim", "lee", "ana"])
    now = utcnow()
    zone = "Pacific/Chatham"  # +13:45 / +12:45: far from every desktop's own zone
    put_event(dovecot, folder, "rota", "team", now - timedelta(hours=2),
              people=["kim", "lee", "ana"], days=1, weekdays=ALL_DAYS, start="2026-01-01",
              timezone=zone, handoff_minutes=5, covers={})
    dovecot.append("INBOX", mail("zoe@customer.example", "Export broken", "It fails."),
                   date=(now - timedelta(minutes=30)).replace(tzinfo=UTC))
    dovecot.append("INBOX", mail("max@customer.example", "Just now", "Hello"),
                   date=(now - timedelta(minutes=1)).replace(tzinfo=UTC))
    results = desktops.go()
    assert all(r["handoffs"] == results[0]["handoffs"] for r in results), results
    (handed,) = results[0]["handoffs"]
    ticket, agent, _uid, day = handed
    rota = schedule.Rota(("kim", "lee", "ana"), 1, frozenset(range(7)),
                         datetime(2026, 1, 1).date(), zone)
    assert agent == schedule.on_duty(rota, datetime.fromisoformat(day).date()).agent
    assert day in {schedule.team_date(now + timedelta(minutes=m), zone).isoformat()
                   for m in (-5, 5)}
    published = log_events(dovecot, folder, "rota-handoff")
    assert 1 <= len(published) <= 3 and {p["subject"] for p in published} == {ticket}
    # A desktop that comes later folds the same single hand-off, and hands off nothing more.
    late = Desk(make_profile(dovecot, tmp_path, "lee", db_name="late.sqlite3"))
    late.sync_once()
    assert late.rota.handoffs() == {ticket: agent}
    assert late.rota.assigned_to(ticket) == agent
    assert late.ticket(ticket)["subject"] == "Export broken"
    late.close()


# --- the weekly digest ------------------------------------------------------------------

def last_week_noon(zone: str = "UTC") -> datetime:
    today = schedule.team_date(utcnow(), zone)
    monday, _ = schedule.week_bounds(today - timedelta(days=7))
    return schedule.day_start(monday + timedelta(days=2), zone) + timedelta(hours=12)


def test_digest_is_sent_once_per_period_with_three_desktops_at_the_boundary(
        dovecot: Any, smtp_sink: Any, tmp_path: Path) -> None:
    first = Desk(make_profile(dovecot, tmp_path, "kim", smtp=smtp_sink))
    first.sync_once()
    folder = first.team.folder
    first.close()
    desktops = Desktops(dovecot, tmp_path, ["kim", "lee", "ana"], smtp=smtp_sink, passes=2)
    # The list was set long ago; a customer wrote last week; now the week is over.
    put_event(dovecot, folder, "digest-settings", "team", utcnow() - timedelta(days=20),
              recipients=["all@company.example", "ceo@company.example"])
    dovecot.append("INBOX", mail("zoe@customer.example", "Export broken",
                                 "The CSV export drops every accent."),
                   date=last_week_noon().replace(tzinfo=UTC))
    results = desktops.go()
    assert all(r["digests"] == results[0]["digests"] for r in results), results
    (period, message_id, _agent), = results[0]["digests"]
    assert period == schedule.iso_week(last_week_noon().date())
    (_mail_from, rcpts, raw), = smtp_sink.wait_for(1)
    assert sorted(rcpts) == ["all@company.example", "ceo@company.example"]
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Message-ID"].strip("<>") == message_id
    assert period in str(msg["Subject"]) and msg["Auto-Submitted"] == "auto-generated"
    body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "> The CSV export drops every accent." in body
    # Later passes (and a desktop that comes late) send nothing more.
    late = Desk(make_profile(dovecot, tmp_path, "ana", smtp=smtp_sink, db_name="late.sqlite3"))
    late.sync_once()
    late.sync_once()
    assert late.digest.send()["state"] == "already sent"
    assert len(smtp_sink.messages) == 1
    assert len(log_events(dovecot, folder, "digest-sending")) in (1, 2, 3)
    late.close()


def test_digest_never_quotes_an_internal_note(dovecot: Any, smtp_sink: Any,
                                              tmp_path: Path) -> None:
    at = last_week_noon()
    root = "<first@customer.example>"
    dovecot.append("INBOX", mail("Zoë Åkesson <zoe@customer.example>", "Export broken",
                                 "CUSTOMER-WORDS: the CSV export drops every accent.",
                                 msgid=root, at=at), date=at.replace(tzinfo=UTC))
    dovecot.append("Sent", mail("support@example.com", "Re: Export broken",
                                "OUR-ANSWER: fixed in 2.4, sorry!\n\n> CUSTOMER-WORDS again",
                                to="zoe@customer.example", in_reply_to=root,
                                at=at + timedelta(hours=1)),
                   date=(at + timedelta(hours=1)).replace(tzinfo=UTC))
    # A forward to a colleague that reads like an internal note, in the same ticket.
    dovecot.append("Sent", mail("support@example.com", "Fwd: Export broken",
                                "Internal note: INTERNAL-FWD she is on the legacy plan, "
                                "do not offer a refund.", to="dev@company.example",
                                in_reply_to=root, at=at + timedelta(hours=2),
                                headers={"X-Helpdesk-Kind": "forward"}),
                   date=(at + timedelta(hours=2)).replace(tzinfo=UTC))
    desk = Desk(make_profile(dovecot, tmp_path, "kim", smtp=smtp_sink))
    desk.sync_once()
    desk.update_customer("zoe@customer.example", note="INTERNAL-NOTE: churn risk, be kind")
    (ticket,) = desk.tickets("all")
    assert len(desk.ticket(ticket["id"])["messages"]) == 3
    built = desk.digest.build()
    (conv,) = built["conversations"]
    assert conv["customer_words"] == ["CUSTOMER-WORDS: the CSV export drops every accent."]
    assert conv["our_answers"] == ["OUR-ANSWER: fixed in 2.4, sorry!"]
    text = json.dumps(built)
    assert "INTERNAL" not in text and "legacy plan" not in text and "churn" not in text
    desk.digest.set_recipients(["all@company.example"])
    assert desk.digest.send()["state"] == "queued"
    (_f, _r, raw), = smtp_sink.wait_for(1)
    body = email.message_from_bytes(raw, policy=email.policy.default).get_body(
        ("plain",)).get_content()  # type: ignore[union-attr]
    assert body.index("CUSTOMER-WORDS") < body.index("OUR-ANSWER")
    assert "INTERNAL" not in body and "churn" not in body and "legacy" not in body
    assert desk.digest.send()["state"] == "already sent"
    assert len(smtp_sink.messages) == 1
    desk.close()


def test_digest_picks_the_same_five_on_every_desktop(dovecot: Any, tmp_path: Path) -> None:
    at = last_week_noon()
    for i in range(12):
        dovecot.append("INBOX", mail(f"c{i}@customer.example", f"Question {i}", f"Words {i}"),
                       date=(at + timedelta(minutes=i)).replace(tzinfo=UTC))
    a = Desk(make_profile(dovecot, tmp_path, "kim"))
    b = Desk(make_profile(dovecot, tmp_path, "lee", batch_size=5))
    a.sync_once()
    b.sync_once()
    picks_a = [c["subject"] for c in a.digest.build()["conversations"]]
    picks_b = [c["subject"] for c in b.digest.build()["conversations"]]
    assert len(picks_a) == 5 and picks_a == picks_b
    a.close()
    b.close()


# --- newcomer weeks -----------------------------------------------------------------------

def test_a_learning_agent_s_reply_waits_for_approval_then_goes_once(
        dovecot: Any, smtp_sink: Any, tmp_path: Path) -> None:
    dovecot.append("INBOX", mail("zoe@customer.example", "Export broken", "It fails."))
    nia = Desk(make_profile(dovecot, tmp_path, "nia", smtp=smtp_sink))
    kim = Desk(make_profile(dovecot, tmp_path, "kim", smtp=smtp_sink))
    lee = Desk(make_profile(dovecot, tmp_path, "lee", smtp=smtp_sink))
    for d in (nia, kim, lee):
        d.sync_once()
    kim.rota.set_learning("nia", (utcnow() + timedelta(days=14)).date().isoformat())
    nia.sync_once()
    tid = nia.tickets("all")[0]["id"]
    result = nia.reply(tid, "Hi Zoë,\n\nTry turning it off and on again.\n")
    assert result["state"] == "held", result
    (item,) = nia.outbox()
    assert item["waiting_for_approval"] and "approval" in item["last_error"]
    # Not before approval: not by syncing, not by the newcomer retrying, not by approving
    # it themselves.
    nia.retry_outbox(item["id"])
    nia.flush_outbox(force=True)
    for d in (nia, kim, lee, nia):
        d.sync_once()
    assert smtp_sink.messages == []
    assert nia.outbox()[0]["state"] == "held"
    with pytest.raises(HelpdeskError, match="teammate"):
        nia.rota.approve(nia.rota.approvals()[0]["id"])
    # Nor by an approval event in the newcomer's own name written into the log by hand.
    put_event(dovecot, nia.team.folder, "approval", nia.outbox()[0]["message_id"], utcnow(),
              agent="nia")
    nia.sync_once()
    assert smtp_sink.messages == [] and nia.rota.approvals()[0]["approved_by"] is None
    # Two teammates approve at the same instant.
    (asked,) = kim.rota.approvals()
    assert asked["agent"] == "nia" and "turning it off" in asked["text"]
    assert lee.rota.approvals()[0]["id"] == asked["id"]
    start = threading.Barrier(2)
    done: dict[str, Any] = {}

    def approve(desk: Desk) -> None:
        start.wait()
        done[desk.agent] = desk.rota.approve(asked["id"])

    threads = [threading.Thread(target=approve, args=(d,)) for d in (kim, lee)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert {d["approved_by"] for d in done.values()} in ({"kim"}, {"lee"})
    nia.sync_once()
    (_f, rcpts, raw), = smtp_sink.wait_for(1)
    assert rcpts == ["zoe@customer.example"] and b"turning it off" in raw
    for d in (nia, kim, lee, nia):
        d.sync_once()
    assert len(smtp_sink.messages) == 1
    assert nia.outbox() == [] or nia.outbox()[0]["state"] == "sent"
    assert kim.rota.approvals() == []
    # Once the weeks are over, replies go straight away.
    kim.rota.set_learning("nia", None)
    nia.sync_once()
    assert nia.reply(tid, "One more thing.")["state"] == "sent"
    smtp_sink.wait_for(2)
    for d in (nia, kim, lee):
        d.close()


def test_two_processes_of_the_newcomer_send_the_approved_reply_once(
        dovecot: Any, smtp_sink: Any, tmp_path: Path) -> None:
    """The newcomer's GUI and a CLI sync share one database: the held -> queued move is a
    compare-and-swap, so however many passes see the approval, the reply goes once."""
    dovecot.append("INBOX", mail("zoe@customer.example", "Export broken", "It fails."))
    nia = Desk(make_profile(dovecot, tmp_path, "nia", smtp=smtp_sink))
    nia2 = Desk(make_profile(dovecot, tmp_path, "nia", smtp=smtp_sink))  # same database
    kim = Desk(make_profile(dovecot, tmp_path, "kim", smtp=smtp_sink))
    kim.sync_once()
    kim.rota.set_learning("nia", "2099-12-31")
    nia.sync_once()
    tid = nia.tickets("all")[0]["id"]
    assert nia.reply(tid, "Held reply")["state"] == "held"
    kim.sync_once()
    kim.rota.approve(kim.rota.approvals()[0]["id"])
    start = threading.Barrier(2)

    def sync(desk: Desk) -> None:
        start.wait()
        desk.sync_once()

    threads = [threading.Thread(target=sync, args=(d,)) for d in (nia, nia2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    smtp_sink.wait_for(1)
    nia.sync_once()
    nia2.sync_once()
    assert len(smtp_sink.messages) == 1
    for d in (nia, nia2, kim):
        d.close()


# --- the command line -------------------------------------------------------------------

def test_cli_rota_digest_and_approvals(dovecot: Any, tmp_path: Path) -> None:
    cfg = write_profile(dovecot, tmp_path, "kim")
    out = run_cli(cfg, "rota", "set", "--people", "kim,lee", "--days", "2",
                  "--weekdays", "mon-sun", "--timezone", "America/New_York",
                  "--handoff-minutes", "15")
    assert out.returncode == 0, out.stderr
    assert "On duty today: kim" in out.stdout
    shown = json.loads(run_cli(cfg, "rota", "show", "--json").stdout)
    assert shown["rota"]["people"] == ["kim", "lee"] and shown["rota"]["days"] == 2
    assert shown["rota"]["handoff_minutes"] == 15
    assert shown["rota"]["timezone"] == "America/New_York"
    assert set(shown) == {"rota", "today", "week", "learning"}
    assert set(shown["today"]) == {"date", "weekday", "agent", "backup", "swapped"}
    day = shown["week"][3]["date"]
    assert run_cli(cfg, "rota", "swap", day, "ana").returncode == 0
    week = json.loads(run_cli(cfg, "rota", "show", "--json").stdout)["week"]
    assert week[3]["agent"] == "ana" and week[3]["swapped"]
    bad = run_cli(cfg, "rota", "set", "--people", "kim", "--timezone", "Nowhere/\x1b[31m")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "\x1b" not in bad.stderr
    bad = run_cli(cfg, "rota", "swap", "someday", "kim")
    assert bad.returncode == 1 and "not a date" in bad.stderr
    assert run_cli(cfg, "rota", "learning", "nia", "--until", "2099-01-01").returncode == 0
    assert "nia" in run_cli(cfg, "rota", "show").stdout
    digest = json.loads(run_cli(cfg, "digest", "--json").stdout)
    assert {"period", "since", "until", "cards", "nps", "cared", "oldest_waiting",
            "conversations", "sent"} <= set(digest)
    since = run_cli(cfg, "digest", "--since", "2026-01-01")
    assert since.returncode == 0 and "What customers are telling us" in since.stdout
    nolist = run_cli(cfg, "digest", "--send")
    assert nolist.returncode == 1 and "no list" in nolist.stderr
    assert run_cli(cfg, "approvals").stdout.strip() == "No reply is waiting for approval."
    missing = run_cli(cfg, "outbox", "--approve", "abcdef")
    assert missing.returncode == 1 and "waiting for approval" in missing.stderr


def test_handoff_is_judged_on_server_time_not_the_ticket_s_date_header(
        dovecot: Any, tmp_path: Path) -> None:
    """A customer whose clock is a day ahead (Date header) changes nothing: arrival is the
    server's INTERNALDATE, and tickets older than the hand-off setting are left alone."""
    desk = Desk(make_profile(dovecot, tmp_path, "kim"))
    desk.sync_once()
    now = utcnow()
    put_event(dovecot, desk.team.folder, "rota", "team", now - timedelta(hours=1),
              people=["kim"], days=1, weekdays=ALL_DAYS, start="2026-01-01", handoff_minutes=10)
    dovecot.append("INBOX", mail("old@customer.example", "Backlog", "old"),
                   date=(now - timedelta(hours=3)).replace(tzinfo=UTC))
    dovecot.append("INBOX", mail("new@customer.example", "Fresh", "new",
                                 at=now - timedelta(days=1)),
                   date=(now - timedelta(minutes=2)).replace(tzinfo=UTC))
    desk.sync_once()
    assert desk.rota.handoffs() == {}
    dovecot.append("INBOX", mail("due@customer.example", "Due", "due", at=now + timedelta(days=1)),
                   date=(now - timedelta(minutes=20)).replace(tzinfo=UTC))
    desk.sync_once()
    (tid,) = desk.rota.handoffs()
    assert desk.ticket(tid)["subject"] == "Due"
    assert parse_db_time(desk.ticket(tid)["created_at"]) is not None
    desk.close()


def test_an_idle_desktop_wakes_when_a_hand_off_falls_due(dovecot: Any,
                                                        tmp_path: Path) -> None:
    """With IDLE nothing on the server announces that a ticket has waited N minutes: the
    desk's alarm asks for the pass that hands it off."""
    import threading as _threading

    desk = Desk(make_profile(dovecot, tmp_path, "kim"))
    desk.sync_once()
    now = utcnow()
    put_event(dovecot, desk.team.folder, "rota", "team", now - timedelta(hours=1),
              people=["kim"], days=1, weekdays=ALL_DAYS, start="2026-01-01", handoff_minutes=1)
    dovecot.append("INBOX", mail("zoe@customer.example", "Soon due", "hello"),
                   date=(now - timedelta(seconds=45)).replace(tzinfo=UTC))
    loop = desk.push_loop()
    thread = _threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: desk.status()["messages"] == 1, timeout=15, what="first pass")
        assert desk.rota.handoffs() == {}
        wait_until(lambda: desk.rota.handoffs(), timeout=40, what="the hand-off")
        (tid,) = desk.rota.handoffs()
        assert desk.ticket(tid)["subject"] == "Soon due"
    finally:
        loop.stop()
        thread.join(timeout=10)
    desk.close()
