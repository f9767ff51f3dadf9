"""Service metrics and NPS surveys: every figure on hand-built data, worked out by hand.

Three layers: the pure computations on plain lists; the SQL layer on a store
seeded row by row (with the real fold handlers); and the survey round trip
through Dovecot and the SMTP sink.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import io
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile

from helpdesk.cli import COMMANDS
from helpdesk.config import ImapSettings, Profile, SmtpSettings
from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError
from helpdesk.mail.sync import refresh_tickets
from helpdesk.metrics import metrics_csv
from helpdesk.metrics.calc import (
    CUSTOMER,
    OTHER,
    REPLY,
    CaredRow,
    HeardRow,
    MetricsData,
    Msg,
    ScoreRow,
    TicketFacts,
    compute_metrics,
    first_contact_resolved,
    median,
    nps,
    p90,
    previous_period,
    resolution_seconds,
)
from helpdesk.metrics.fold import SURVEY_CURSOR
from helpdesk.metrics.surveys import (
    QUESTION,
    SurveyRef,
    answered_survey,
    new_text,
    recognise_score,
    survey_body,
)
from helpdesk.store import open_store
from helpdesk.team import fold
from helpdesk.team.events import Event

ROOT = Path(__file__).resolve().parent.parent


def at(day: int, hour: int, minute: int = 0, month: int = 1) -> datetime:
    """A time in January 2026 (5 January 2026 is a Monday)."""
    return datetime(2026, month, day, hour, minute)


TOP_KEYS = {"nps", "first_response_seconds", "resolution_seconds", "first_contact_resolution",
            "cared", "tickets", "heard_from", "vip", "weekly", "oldest_unclaimed_seconds",
            "reopen_rate"}


# --- statistics ------------------------------------------------------------------------

def test_median_and_p90_definitions() -> None:
    assert median([]) is None and p90([]) is None
    assert median([7]) == 7 and p90([7]) == 7
    assert median([4, 1, 3, 2]) == 2.5             # even count: mean of the two middles
    assert median([5, 5, 5, 9]) == 5               # ties
    assert p90([5, 5, 5, 9]) == 9                  # rank ceil(3.6) = 4
    assert p90(list(range(1, 11))) == 9            # rank ceil(9.0) = 9
    assert p90(list(range(1, 12))) == 10           # rank ceil(9.9) = 10
    assert p90(list(range(1, 21))) == 18           # rank 18, no float trouble


def test_nps_counts_and_rounding() -> None:
    assert nps([]) == {"score": None, "promoters": 0, "passives": 0, "detractors": 0,
                       "responses": 0}
    # 10, 9 promoters; 8, 7 passives; 6, 0 detractors: 2/6 - 2/6 = 0
    assert nps([10, 9, 8, 7, 6, 0]) == {"score": 0, "promoters": 2, "passives": 2,
                                        "detractors": 2, "responses": 6}
    assert nps([10, 10, 0])["score"] == 33         # 100 * 1/3 = 33.3
    assert nps([10] + [7] * 7)["score"] == 13      # 12.5: half away from zero
    assert nps([0] + [7] * 7)["score"] == -13      # -12.5
    assert nps([6, 5])["score"] == -100


def test_previous_period_has_the_same_length() -> None:
    assert previous_period(date(2026, 1, 5), date(2026, 1, 11)) == (date(2025, 12, 29),
                                                                    date(2026, 1, 4))
    assert previous_period(date(2026, 3, 1), date(2026, 3, 1)) == (date(2026, 2, 28),
                                                                   date(2026, 2, 28))


# --- one ticket ------------------------------------------------------------------------------

def test_resolution_uses_the_last_close_of_a_closed_ticket() -> None:
    t = TicketFacts("c", at(7, 9), statuses=[
        (at(7, 10), "closed"), (at(8, 9), "open"), (at(8, 12), "closed"),
        (at(8, 12, 5), "closed")])  # a repeated close does not move the close time
    assert resolution_seconds(t) == 27 * 3600      # 7 Jan 09:00 -> 8 Jan 12:00
    reopened_now = TicketFacts("f", at(12, 9), statuses=[(at(12, 9, 20), "closed"),
                                                         (at(12, 10), "open")])
    assert resolution_seconds(reopened_now) is None


def test_first_contact_resolution_window_is_inclusive() -> None:
    week = timedelta(days=7)

    def ticket(*later: Msg) -> TicketFacts:
        return TicketFacts("t", at(5, 9), [Msg(at(5, 9), CUSTOMER), Msg(at(5, 10), REPLY),
                                           *later], [(at(5, 11), "closed")])

    assert first_contact_resolved(ticket(), week) is True
    # A customer message exactly 7 days after the close still counts against it ...
    assert first_contact_resolved(ticket(Msg(at(12, 11), CUSTOMER)), week) is False
    # ... one second later it does not.
    late = Msg(at(12, 11) + timedelta(seconds=1), CUSTOMER)
    assert first_contact_resolved(ticket(late), week) is True
    # A message between the reply and the close always counts, whatever the window.
    assert first_contact_resolved(ticket(Msg(at(5, 10, 30), CUSTOMER)), timedelta(0)) is False
    # Two replies before the close: not first contact.
    assert first_contact_resolved(ticket(Msg(at(5, 10, 30), REPLY)), week) is False
    # Auto-replies and survey answers are OTHER: they never count.
    assert first_contact_resolved(ticket(Msg(at(6, 9), OTHER)), week) is True
    # Closed without any reply (spam, duplicates): not judged.
    silent = TicketFacts("s", at(5, 9), [Msg(at(5, 9), CUSTOMER)], [(at(5, 10), "closed")])
    assert first_contact_resolved(silent, week) is None


# --- the whole report on hand-built data ------------------------------------------------------

def scenario() -> MetricsData:
    """Six tickets over two weeks; every expected figure is worked out in the tests below.

    a: first message Mon 5 Jan 09:00, reply 10:00 (1 h), closed 11:00 (2 h). FCR.
    b: an auto-reply at 08:00 is not a customer message; customer 6 Jan 09:00,
       replies 09:30 (30 min) and 12:00, closed 13:00 (4 h). Not FCR (two replies).
    c: customer 7 Jan 09:00, reply the same second (0 s), closed 10:00, customer
       writes again 8 Jan 08:00, reopened 09:00, reply 10:00, closed 12:00 (and a
       repeated close 12:05): resolution 27 h to the last close. Not FCR. Reopened.
    d: customer 8 Jan 09:00, no answer yet, open.
    e (VIP): customer 9 Jan 09:00, reply 11:00 (2 h), closed 12:00 (3 h); writes again
       on 20 Jan, after the 7-day window: FCR.
    f: customer Mon 12 Jan 09:00, reply 09:10 (10 min), closed 09:20, reopened by the
       agent 10:00 and open now: no resolution, not FCR, reopened.
    """
    C, R = CUSTOMER, REPLY
    tickets = [
        TicketFacts("a", at(5, 9), [Msg(at(5, 9), C), Msg(at(5, 10), R),
                                    Msg(at(5, 11, 1), OTHER)],  # the survey mail
                    [(at(5, 11), "closed")], customer="ana@x.example"),
        TicketFacts("b", at(6, 9), [Msg(at(6, 8), OTHER), Msg(at(6, 9), C),
                                    Msg(at(6, 9, 30), R), Msg(at(6, 12), R)],
                    [(at(6, 13), "closed")]),
        TicketFacts("c", at(7, 9), [Msg(at(7, 9), C), Msg(at(7, 9), R), Msg(at(8, 8), C),
                                    Msg(at(8, 10), R)],
                    [(at(7, 10), "closed"), (at(8, 9), "open"), (at(8, 12), "closed"),
                     (at(8, 12, 5), "closed")]),
        TicketFacts("d", at(8, 9), [Msg(at(8, 9), C)]),
        TicketFacts("e", at(9, 9), [Msg(at(9, 9), C), Msg(at(9, 11), R), Msg(at(20, 9), C)],
                    [(at(9, 12), "closed")], vip=True),
        TicketFacts("f", at(12, 9), [Msg(at(12, 9), C), Msg(at(12, 9, 10), R)],
                    [(at(12, 9, 20), "closed"), (at(12, 10), "open")]),
    ]
    scores = [
        ScoreRow("mail:a1", "a", 10, at(6, 8)),
        ScoreRow("m-b1", "b", 6, at(7, 9), seq=10),   # superseded by b's later answer
        ScoreRow("mail:b2", "b", 8, at(9, 9)),
        ScoreRow("mail:c1", "c", 3, at(9, 10)),
        ScoreRow("m-e1", "e", 9, at(10, 9), vip=True, seq=11),
        ScoreRow("mail:f1", "f", 0, at(13, 9)),
    ]
    cared = [
        CaredRow("a", True, at(5, 11)), CaredRow("b", False, at(6, 13)),
        CaredRow("c", True, at(7, 10), seq=3), CaredRow("c", False, at(8, 12), seq=7),
        CaredRow("f", True, at(12, 9, 20)),
    ]
    heard = [HeardRow("Google", at(5, 9)), HeardRow("  GOOGLE\t", at(6, 9)),
             HeardRow("Word of  mouth", at(12, 9)), HeardRow("friend", None),
             HeardRow("   ", at(5, 9))]
    return MetricsData(tickets, scores, cared, heard, unclaimed_since=[at(8, 9)])


NOW = at(12, 9)


def test_first_week_by_hand() -> None:
    r = compute_metrics(scenario(), date(2026, 1, 5), date(2026, 1, 11), 7, NOW)
    assert set(r) == TOP_KEYS
    # Tickets a-e (f belongs to the next week by its first message).
    # First response: a 3600, b 1800, c 0, e 7200 (d unanswered) -> sorted 0 1800 3600 7200.
    assert r["first_response_seconds"] == {"median": 2700, "p90": 7200, "count": 4}
    # Resolution: a 7200, b 14400, c 97200, e 10800 -> median (10800 + 14400) / 2.
    assert r["resolution_seconds"] == {"median": 12600, "p90": 97200, "count": 4}
    # FCR judged for a, b, c, e: a and e yes.
    assert r["first_contact_resolution"] == {"rate": 0.5, "count": 4}
    assert r["tickets"] == {"opened": 5, "closed": 4, "reopened": 1}
    assert r["reopen_rate"] == 0.25                    # c of a, b, c, e
    # Latest score per ticket: a 10, b 8 (not 6), c 3, e 9 -> P 2, passive 1, D 1 -> +25.
    assert r["nps"] == {"score": 25, "promoters": 2, "passives": 1, "detractors": 1,
                        "responses": 4}
    # Latest cared answer per ticket: a yes, b no, c no (f is next week).
    assert r["cared"] == {"yes": 1, "no": 2, "rate": 0.333}
    assert r["heard_from"] == {"google": 2}            # new customers of the week only
    assert r["oldest_unclaimed_seconds"] == 4 * 86400  # d, from 8 Jan 09:00 to 12 Jan 09:00
    assert r["vip"] == {
        "nps": {"score": 100, "promoters": 1, "passives": 0, "detractors": 0, "responses": 1},
        "first_response_seconds": {"median": 7200, "p90": 7200, "count": 1},
        "resolution_seconds": {"median": 10800, "p90": 10800, "count": 1},
        "first_contact_resolution": {"rate": 1.0, "count": 1},
        "tickets": {"opened": 1, "closed": 1, "reopened": 0},
    }
    assert r["weekly"] == {"2026-01-05": {"opened": 5, "closed": 4, "nps": 25,
                                          "first_response_median": 2700}}


def test_all_time_by_hand() -> None:
    r = compute_metrics(scenario(), None, None, 7, NOW)
    # f adds a first response of 600: 0 600 1800 3600 7200 -> median 1800, p90 rank 5.
    assert r["first_response_seconds"] == {"median": 1800, "p90": 7200, "count": 5}
    assert r["resolution_seconds"]["count"] == 4      # f is open again
    assert r["first_contact_resolution"] == {"rate": 0.4, "count": 5}
    assert r["tickets"] == {"opened": 6, "closed": 4, "reopened": 2}
    assert r["reopen_rate"] == 0.4                     # c, f of a, b, c, e, f
    # a 10, b 8, c 3, e 9, f 0 -> P 2, D 2 -> 0.
    assert r["nps"]["score"] == 0 and r["nps"]["responses"] == 5
    assert r["cared"] == {"yes": 2, "no": 2, "rate": 0.5}
    assert list(r["heard_from"].items()) == [("google", 2), ("friend", 1), ("word of mouth", 1)]
    assert r["weekly"] == {
        "2026-01-05": {"opened": 5, "closed": 4, "nps": 25, "first_response_median": 2700},
        "2026-01-12": {"opened": 1, "closed": 0, "nps": -100, "first_response_median": 600},
    }


def test_empty_period_and_single_day() -> None:
    r = compute_metrics(scenario(), date(2025, 12, 1), date(2025, 12, 14), 7, NOW)
    assert r["nps"]["score"] is None and r["nps"]["responses"] == 0
    assert r["first_response_seconds"] == {"median": None, "p90": None, "count": 0}
    assert r["first_contact_resolution"] == {"rate": None, "count": 0}
    assert r["cared"] == {"yes": 0, "no": 0, "rate": None}
    assert r["tickets"] == {"opened": 0, "closed": 0, "reopened": 0}
    assert r["heard_from"] == {} and r["reopen_rate"] is None
    assert r["vip"]["nps"]["score"] is None
    # Every week of the period is listed, empty (1 Dec 2025 is a Monday).
    assert r["weekly"] == {w: {"opened": 0, "closed": 0, "nps": None,
                               "first_response_median": None}
                           for w in ("2025-12-01", "2025-12-08")}
    assert r["oldest_unclaimed_seconds"] == 4 * 86400  # a snapshot, not per period
    assert compute_metrics(MetricsData(), None, None)["weekly"] == {}
    day = compute_metrics(scenario(), date(2026, 1, 9), date(2026, 1, 9), 7, NOW)
    assert day["tickets"]["opened"] == 1              # e only: both ends inclusive
    assert day["nps"]["responses"] == 2               # b's 8 and c's 3 were given on 9 Jan
    with pytest.raises(HelpdeskError):
        compute_metrics(scenario(), date(2026, 1, 9), date(2026, 1, 8))


def test_csv_export_lists_every_metric_and_week() -> None:
    cur = compute_metrics(scenario(), date(2026, 1, 5), date(2026, 1, 11), 7, NOW)
    prev = compute_metrics(scenario(), date(2025, 12, 29), date(2026, 1, 4), 7, NOW)
    text = metrics_csv(cur, prev, labels=("this", "before"))
    lines = text.splitlines()
    assert lines[0] == "metric,this,before"
    assert "nps.score,25," in lines
    assert "vip.first_response_seconds.median,7200," in lines
    assert "heard_from.google,2," in lines
    assert "week_start,opened,closed,nps,first_response_median" in lines
    assert lines[-1] == "2026-01-05,5,4,25,2700"


# --- surveys: the text and recognising answers -----------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("9", (9, None)),
    ("10/10 great!", (10, "great!")),
    ("8 - good", (8, "good")),
    ("Score: 7", (7, None)),
    ("0", (0, None)),
    ("10 out of 10\nGreat team", (10, "Great team")),
    ("Hi,\n\n9\n\nThanks for the quick fix", (9, "Thanks for the quick fix")),
    ("７ ありがとう", (7, "ありがとう")),
    # Quoted earlier mail below or above the answer, in several languages and styles.
    ("9\n\nOn Mon, 5 Jan 2026 at 09:00, Example Support <support@example.com> wrote:\n"
     "> How likely is it that you would recommend us?\n> Reply with a number from 0 to 10.",
     (9, None)),
    ("6 bof\n\nLe lun. 5 janv. 2026 à 09:00, Example Support <support@example.com> a écrit :"
     "\n> Quelle est la probabilité… 10", (6, "bof")),
    ("8 - gut\n\nAm 05.01.2026 um 09:00 schrieb Example Support <support@example.com>:\n> 10",
     (8, "gut")),
    ("On Mon, 5 Jan 2026 at 09:00, Example Support <support@example.com> wrote:\n"
     "> How likely\n\n7 thanks", (7, "thanks")),
    ("5\nOn Mon, 5 Jan 2026 at 09:00, Example Support <\nsupport@example.com> wrote:\n> 10",
     (5, None)),
    ("8\n\n-----Original Message-----\nFrom: Support\nSent: Monday\n\n10 How likely", (8, None)),
    ("4 slow\n\nFrom: Example Support <support@example.com>\nSent: Monday, 5 January 2026\n"
     "To: Ana\nSubject: Re: Help\n\nHow likely", (4, "slow")),
    ("9\n-- \nJohn Smith", (9, None)),
    # Not scores.
    ("I'd say 9", None),
    ("Nine!", None),
    ("9.5", None),
    ("8-9", None),
    ("9:30 works for me", None),
    ("10%", None),
    ("10/12/2025 I called you", None),
    ("3rd time I ask", None),
    ("11", None),
    ("100", None),
    ("> 9\n\nWhy do you ask?", None),
    ("-----Original Message-----\nHow likely ... 10", None),
])
def test_recognise_score(text: str, expected: tuple[int, str | None] | None) -> None:
    found = recognise_score(text)
    assert (None if found is None else (found.value, found.comment)) == expected


def test_new_text_keeps_only_what_was_written_now() -> None:
    assert new_text("Thanks!\n\nOn Tue, X wrote:\n> old") == "Thanks!"
    assert new_text("> old\n> older\n\nnew") == "new"


def test_survey_body_is_short_polite_and_asks_the_question() -> None:
    body = survey_body("Ana", "Example Support")
    assert body.startswith("Hello Ana,\n") and QUESTION in body
    assert body.rstrip().endswith("Example Support")
    assert survey_body(None).startswith("Hello,\n")
    assert len(body.splitlines()) < 15


def test_which_messages_answer_a_survey() -> None:
    sv = SurveyRef("sv1@example.com", "aaaaaaaa", at(5, 12))
    by_id = {sv.message_id: sv}
    by_ticket = {"aaaaaaaa": [sv]}
    subject = "Re: Help [#aaaaaaaa]"
    assert answered_survey("sv1@example.com", [], "x", at(6, 9), by_id, by_ticket) == "aaaaaaaa"
    assert answered_survey(None, ["r@x", "sv1@example.com"], "x", at(6, 9), by_id,
                           by_ticket) == "aaaaaaaa"
    # Threaded to another message: the customer answers that one, not the survey.
    assert answered_survey("other@x", ["sv1@example.com"], subject, at(6, 9), by_id,
                           by_ticket) is None
    # No threading headers: the subject token, if the survey was sent before.
    assert answered_survey(None, [], subject, at(6, 9), by_id, by_ticket) == "aaaaaaaa"
    assert answered_survey(None, [], subject, at(5, 11), by_id, by_ticket) is None
    assert answered_survey(None, [], "Re: Help", at(6, 9), by_id, by_ticket) is None


# --- the SQL layer on a seeded store ----------------------------------------------------------

class Seed:
    """Writes mail rows and folds team events straight into a store (no servers)."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.tickets: set[str] = set()

    def msg(self, tid: str, when: datetime, direction: str = "in", *, auto: str = "none",
            mid: str | None = None, irt: str | None = None, refs: str = "",
            subject: str = "Help", frm: str = "ana@customer.example",
            text: str = "Hello, it is broken.") -> None:
        with self.desk.store.begin() as conn:
            n = conn.exec_driver_sql("SELECT count(*) + 1 FROM messages").scalar_one()
            conn.exec_driver_sql(
                "INSERT OR IGNORE INTO tickets (id, thread_key, subject, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)", (tid, "token:" + tid, subject, when, when))
            conn.exec_driver_sql(
                'INSERT INTO messages (dedup_key, ticket_id, message_id, in_reply_to, '
                '"references", subject, from_addr, to_addrs, received_at, direction, auto_kind,'
                ' text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
                (f"k{n}", tid, mid, irt, refs, subject,
                 "support@example.com" if direction == "out" else frm,
                 json.dumps([["", frm]]) if direction == "out" else "[]",
                 when, direction, auto, text))
            refresh_tickets(conn, {tid})
        self.tickets.add(tid)

    def event(self, etype: str, subject: str, when: datetime, **data: Any) -> fold.FoldResult:
        """Fold one event as the next UID of the log; what the fold reports."""
        ev = Event(type=etype, agent="agent-a", subject=subject, data=data)
        result = fold.FoldResult()
        with self.desk.store.begin() as conn:
            uid = conn.exec_driver_sql("SELECT coalesce(max(uid), 0) + 1 FROM team_events"
                                       ).scalar_one()
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            fold.apply_event(cur, ev, uid, when, ev.to_json(), result)
        return result


def offline_desk(tmp: Path, **extra: Any) -> Desk:
    """A desk on a fresh store whose servers are never contacted."""
    profile = Profile(agent="agent-a", database=tmp / "m.sqlite3",
                      imap=ImapSettings(host="127.0.0.1", port=9, security="plain",
                                        username="support@example.com",
                                        password_command="echo secret"),
                      smtp=SmtpSettings(host="127.0.0.1", port=9, security="plain",
                                        from_address="support@example.com"), **extra)
    return Desk(profile, store=open_store(profile.database))


X, Y, Z, W, V = "xxxxxxxx", "yyyyyyyy", "zzzzzzzz", "wwwwwwww", "vvvvvvvv"
ANSWER_9 = ("9\n\nOn Mon, 5 Jan 2026 at 10:31, Example Support <support@example.com> wrote:\n"
            "> Hello Ana,\n> " + QUESTION + "\n")


def seed_store(desk: Desk) -> Seed:
    """Five tickets; the expected figures are worked out in test_store_metrics_by_hand.

    X: auto-reply 08:00 (ignored), customer 09:00, reply 10:00, closed 10:30 (cared),
       survey 10:31, answer "9" (quoted survey below) 11:00, a bounce 11:05.
    Y: only an auto-reply: not a customer ticket.
    Z (VIP): customer 6 Jan 09:00, reply 09:30, survey 09:40, answer "I'd say 9"
       (not a score), then a score of 10 recorded by hand (phone call).
    W: customer 7 Jan 09:00, "5 things are still broken" 09:10 without threading
       headers (before the survey: not an answer), reply 09:15, survey 09:20,
       "10/10 great!" 10:00 without threading headers (subject token): a score.
    V: customer 8 Jan 09:00, nothing else.
    """
    s = Seed(desk)
    s.msg(X, at(5, 8), auto="auto-reply", mid="ooo@customer.example", text="9 days away")
    s.msg(X, at(5, 9), mid="x1@customer.example")
    s.msg(X, at(5, 10), "out", mid="x2@example.com", irt="x1@customer.example")
    s.event("status", X, at(5, 10, 30), status="closed", cared=True)
    s.msg(X, at(5, 10, 31), "out", mid="sv-x@example.com", irt="x1@customer.example",
          text=survey_body("Ana"))
    s.event("survey-sent", X, at(5, 10, 31), message_id="<sv-x@example.com>",
            customer="ana@customer.example")
    s.msg(X, at(5, 11), mid="x3@customer.example", irt="sv-x@example.com",
          refs="x1@customer.example sv-x@example.com", text=ANSWER_9)
    s.msg(X, at(5, 11, 5), auto="bounce", mid="bounce@mx.example", irt="sv-x@example.com",
          frm="mailer-daemon@mx.example", text="5.1.1 user unknown")
    s.msg(Y, at(5, 12), auto="auto-reply", frm="noreply@shop.example", text="Thanks!")
    s.event("vip", "bob@vip.example", at(5, 0), vip=True, tier="Gold")
    s.msg(Z, at(6, 9), mid="z1@vip.example", frm="bob@vip.example")
    s.msg(Z, at(6, 9, 30), "out", mid="z2@example.com", frm="bob@vip.example")
    s.msg(Z, at(6, 9, 40), "out", mid="sv-z@example.com", frm="bob@vip.example")
    s.event("survey-sent", Z, at(6, 9, 40), message_id="sv-z@example.com",
            customer="bob@vip.example")
    s.msg(Z, at(6, 10), mid="z3@vip.example", irt="sv-z@example.com", frm="bob@vip.example",
          text="I'd say 9, thanks")
    s.event("score", Z, at(6, 10, 10), score=10, comment="phone call", customer="bob@vip.example")
    s.msg(W, at(7, 9), mid="w1@c.example", frm="wendy@c.example")
    s.msg(W, at(7, 9, 10), subject=f"Re: Help [#{W}]", frm="wendy@c.example",
          text="5 things are still broken")
    s.msg(W, at(7, 9, 15), "out", mid="w2@example.com", frm="wendy@c.example")
    s.event("survey-sent", W, at(7, 9, 20), message_id="sv-w@example.com",
            customer="wendy@c.example")
    s.msg(W, at(7, 10), subject=f"Re: Help [#{W}]", frm="wendy@c.example",
          text="10/10 great!\n\nSent from my phone")
    s.msg(V, at(8, 9), mid="v1@c.example", frm="vera@c.example")
    return s


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Desk]:
    desk = offline_desk(tmp_path)
    seed_store(desk)
    yield desk
    desk.close()


def scores_of(desk: Desk) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(desk.profile.database)
    try:
        return con.execute("SELECT id, ticket_id, customer, score, comment, source FROM scores "
                           "ORDER BY id").fetchall()
    finally:
        con.close()


def test_survey_answers_become_scores(seeded: Desk) -> None:
    changed = seeded.metrics.after_sync({X, Y, Z, W, V})
    assert changed == {X, W}
    rows = scores_of(seeded)
    mail_w = next(r for r in rows if r[1] == W)
    assert mail_w[0].startswith("mail:k") and mail_w[3:] == (10, "great!", "email")
    assert ("mail:x3@customer.example", X, "ana@customer.example", 9, None, "email") in rows
    manual = next(r for r in rows if r[1] == Z)
    assert manual[3:] == (10, "phone call", "manual")  # "I'd say 9" was not a score
    assert len(rows) == 3
    assert seeded.metrics.after_sync({X, W}) == set()  # idempotent


def test_store_metrics_by_hand(seeded: Desk) -> None:
    seeded.metrics.after_sync({X, Y, Z, W, V})
    r = seeded.metrics.compute(date(2026, 1, 5), date(2026, 1, 11))
    assert set(r) == TOP_KEYS
    # X: 3600 (the 08:00 auto-reply is no customer message); Z: 1800; W: 900 (09:00 ->
    # 09:15; W's 09:10 message is a customer message too); V: none.
    assert r["first_response_seconds"] == {"median": 1800, "p90": 3600, "count": 3}
    assert r["resolution_seconds"] == {"median": 5400, "p90": 5400, "count": 1}
    # X: one reply (the survey mail is no reply); the answer and the bounce after it are
    # no further customer messages.
    assert r["first_contact_resolution"] == {"rate": 1.0, "count": 1}
    assert r["tickets"] == {"opened": 4, "closed": 1, "reopened": 0}  # Y never counts
    assert r["nps"] == {"score": 100, "promoters": 3, "passives": 0, "detractors": 0,
                        "responses": 3}
    assert r["cared"] == {"yes": 1, "no": 0, "rate": 1.0}
    assert r["vip"]["nps"]["responses"] == 1 and r["vip"]["tickets"]["opened"] == 1
    assert r["vip"]["first_response_seconds"]["median"] == 1800
    assert r["weekly"]["2026-01-05"]["opened"] == 4
    assert r["oldest_unclaimed_seconds"] is not None  # V, Z and W are open and unclaimed
    everything = seeded.metrics.compute()  # no bounds: the same tickets
    assert everything["tickets"] == r["tickets"]
    assert everything["first_response_seconds"] == r["first_response_seconds"]
    empty = seeded.metrics.compute(date(2026, 2, 1), date(2026, 2, 7))
    assert empty["tickets"]["opened"] == 0 and empty["nps"]["score"] is None


def test_answer_before_the_survey_event_is_found_later(tmp_path: Path) -> None:
    desk = offline_desk(tmp_path)
    s = Seed(desk)
    s.msg(X, at(5, 9), mid="x1@customer.example")
    s.msg(X, at(5, 11), mid="x3@customer.example", irt="sv-x@example.com", text="7")
    assert desk.metrics.after_sync({X}) == set()      # survey-sent not folded yet
    s.event("survey-sent", X, at(5, 10, 31), message_id="sv-x@example.com",
            customer="ana@customer.example")
    assert desk.metrics.after_sync(set()) == {X}      # the new survey re-checks its ticket
    assert [r[3] for r in scores_of(desk)] == [7]
    desk.close()


def test_rebuild_keeps_mail_scores_and_refolds_the_rest(seeded: Desk) -> None:
    seeded.metrics.after_sync({X, Y, Z, W, V})
    before = scores_of(seeded)
    with seeded.store.begin() as conn:
        fold.reset_team_state(conn.connection.driver_connection.cursor())  # type: ignore[union-attr]
        assert seeded.store.get_meta(SURVEY_CURSOR, conn) is None
    assert [r[5] for r in scores_of(seeded)] == ["email", "email"]
    seed_events_again = Seed(seeded)
    seed_events_again.event("survey-sent", X, at(5, 10, 31), message_id="sv-x@example.com",
                            customer="ana@customer.example")
    seed_events_again.event("survey-sent", W, at(7, 9, 20), message_id="sv-w@example.com",
                            customer="wendy@c.example")
    seeded.metrics.after_sync(set())
    assert [r for r in scores_of(seeded) if r[5] == "email"] == \
        [r for r in before if r[5] == "email"]


def test_the_fold_runs_every_handler_whatever_was_imported(tmp_path: Path) -> None:
    """A process that imports only the fold machinery still folds metrics events."""
    code = f"""
import sys
from datetime import datetime
from helpdesk.store import open_store
from helpdesk.store.engine import raw_cursor
from helpdesk.team.events import Event
from helpdesk.team.fold import FoldResult, apply_event
assert "helpdesk.metrics.service" not in sys.modules
store = open_store({str(tmp_path / "d.sqlite3")!r})
ev = Event(type="survey-sent", agent="a", subject="t1", data={{"message_id": "m@x"}})
with store.begin() as conn:
    apply_event(raw_cursor(conn), ev, 1, datetime(2026, 1, 1), ev.to_json(), FoldResult())
with store.read() as conn:
    print(conn.exec_driver_sql("SELECT ticket_id FROM surveys").scalar())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "t1"


def test_should_offer_survey(seeded: Desk, tmp_path: Path) -> None:
    m = seeded.metrics
    assert m.should_offer_survey(V) is True
    assert m.should_offer_survey(X) is False   # already surveyed
    assert m.should_offer_survey(Y) is False   # only an auto-reply: nobody to ask
    with pytest.raises(HelpdeskError, match="already"):
        m.send_survey(X)
    with pytest.raises(HelpdeskError, match="nobody to ask"):
        m.send_survey(Y)
    never = offline_desk(tmp_path / "never", survey="never")
    Seed(never).msg(V, at(8, 9), mid="v1@c.example", frm="vera@c.example")
    assert never.metrics.should_offer_survey(V) is False
    never.close()


def test_survey_after_close_follows_the_policy_and_holds_what_it_cannot_announce(
        tmp_path: Path) -> None:
    ask = offline_desk(tmp_path / "ask")
    Seed(ask).msg(V, at(8, 9), mid="v1@c.example", frm="vera@c.example")
    assert ask.metrics.survey_after_close(V) is None  # "ask": the UI asks first
    ask.close()
    always = offline_desk(tmp_path / "always", survey="always")
    Seed(always).msg(V, at(8, 9), mid="v1@c.example", frm="vera@c.example")
    # The team log cannot be reached (port 9): the survey is kept, staged, and never goes
    # before its survey-sent event is in the log (no desktop could recognise the answer).
    assert always.metrics.survey_after_close(V)
    assert [i["state"] for i in always.outbox()] == ["staged"]
    with pytest.raises(HelpdeskError):
        always.flush_outbox(force=True)
    assert [i["state"] for i in always.outbox()] == ["staged"]
    always.close()


def test_bad_scores_are_refused(seeded: Desk) -> None:
    for bad in (11, -1, True):
        with pytest.raises(HelpdeskError):
            seeded.metrics.record_score(V, bad)
    s = Seed(seeded)
    result = s.event("score", V, at(9, 9), score=42)  # a malformed event is skipped, not fatal
    assert result.skipped == 1
    assert all(r[1] != V for r in scores_of(seeded))


def run_command(desk: Desk, *argv: str) -> tuple[int, str]:
    from helpdesk.cli.metrics import add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out = io.StringIO()
    with redirect_stdout(out):
        code = COMMANDS[args.command](desk, args)
    return code, out.getvalue()


def test_cli_metrics_json_and_text(seeded: Desk) -> None:
    seeded.metrics.after_sync({X, Y, Z, W, V})
    code, out = run_command(seeded, "metrics", "--since", "2026-01-05", "--until", "2026-01-11",
                            "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == TOP_KEYS
    assert set(data["nps"]) == {"score", "promoters", "passives", "detractors", "responses"}
    assert set(data["first_response_seconds"]) == {"median", "p90", "count"}
    assert set(data["resolution_seconds"]) == {"median", "p90", "count"}
    assert set(data["first_contact_resolution"]) == {"rate", "count"}
    assert set(data["cared"]) == {"yes", "no", "rate"}
    assert set(data["tickets"]) == {"opened", "closed", "reopened"}
    assert set(data["vip"]) == {"nps", "first_response_seconds", "resolution_seconds",
                                "first_contact_resolution", "tickets"}
    code, out = run_command(seeded, "metrics", "--since", "2026-01-05")
    assert code == 0 and "NPS +100" in out and "VIP customers" in out
    with pytest.raises(SystemExit):
        run_command(seeded, "metrics", "--since", "5 Jan")
    with pytest.raises(SystemExit):
        run_command(seeded, "score", V, "--nps", "11")


# --- the survey round trip through Dovecot and the SMTP sink ------------------------------------

CUSTOMER_MAIL = (
    "From: Ana Lucía Pérez <ana@customer.example>\r\n"
    "To: support@example.com\r\n"
    "Subject: Export to CSV is broken\r\n"
    "Message-ID: <ana-1@customer.example>\r\n"
    "Date: Mon, 05 Jan 2026 09:00:00 +0000\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    "Hello, the export fails every time.\r\n").encode()


def answer(survey: email.message.EmailMessage, text: str) -> bytes:
    """The customer's reply to ``survey``, quoting it below the answer."""
    msg = email.message.EmailMessage()
    msg["From"] = "Ana Lucía Pérez <ana@customer.example>"
    msg["To"] = "support@example.com"
    msg["Subject"] = "Re: " + str(survey["Subject"])
    msg["Message-ID"] = "<ana-answer@customer.example>"
    msg["In-Reply-To"] = str(survey["Message-ID"])
    msg["References"] = f"{survey['References']} {survey['Message-ID']}"
    quoted = "\n".join("> " + line for line in survey.get_body(("plain",))
                       .get_content().splitlines())  # type: ignore[union-attr]
    msg.set_content(f"{text}\n\nOn Mon, 5 Jan 2026 at 12:00, Example Support "
                    f"<support@example.com> wrote:\n{quoted}\n")
    return bytes(msg)


def test_survey_round_trip(dovecot: Any, smtp_sink: Any, tmp_path: Path) -> None:
    with dovecot.session() as c:
        c.append("INBOX", CUSTOMER_MAIL)
    a = Desk(make_profile(dovecot, tmp_path, "agent-a", smtp=smtp_sink))
    a.sync_once()
    tid = a.tickets("all")[0]["id"]
    a.close_ticket(tid, cared=True)
    assert a.metrics.should_offer_survey(tid)
    mid = a.metrics.send_survey(tid)
    assert not a.metrics.should_offer_survey(tid)
    a.sync_once()  # the outbox sends it
    sent = smtp_sink.wait_for(1)
    _from, rcpt, raw = sent[-1]
    assert rcpt == ["ana@customer.example"]
    survey = email.message_from_bytes(raw, policy=email.policy.default)
    assert survey["Subject"] == f"Re: Export to CSV is broken [#{tid}]"
    assert survey["In-Reply-To"] == "<ana-1@customer.example>"
    assert survey["Message-ID"] == f"<{mid}>"
    body = survey.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert body.startswith("Hello Ana,") and QUESTION in body

    out_of_office = (
        "From: Ana <ana@customer.example>\r\nTo: support@example.com\r\n"
        f"Subject: Automatic reply: {survey['Subject']}\r\n"
        "Message-ID: <ooo@customer.example>\r\n"
        f"In-Reply-To: {survey['Message-ID']}\r\nAuto-Submitted: auto-replied\r\n"
        "Date: Mon, 05 Jan 2026 12:01:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "9 January is when I am back in the office.\r\n").encode()
    with dovecot.session() as c:
        c.append("INBOX", out_of_office)
    a.sync_once()
    assert a.metrics.compute()["nps"]["responses"] == 0  # an auto-reply never answers
    with dovecot.session() as c:
        c.append("INBOX", answer(survey, "9"))
    a.sync_once()
    report = a.metrics.compute()
    assert report["nps"] == {"score": 100, "promoters": 1, "passives": 0, "detractors": 0,
                             "responses": 1}
    assert report["cared"] == {"yes": 1, "no": 0, "rate": 1.0}
    # The survey mail (now in Sent) is no reply, the answer no customer message: the
    # ticket had no reply at all, so no first response and no FCR judgement.
    assert report["first_response_seconds"]["count"] == 0
    assert report["first_contact_resolution"]["count"] == 0
    assert a.metrics.scores(tid)[0]["source"] == "email"

    # A teammate's desktop derives the same score from the same mail and log.
    b = Desk(make_profile(dovecot, tmp_path, "agent-b", smtp=smtp_sink))
    b.sync_once()
    assert b.metrics.compute()["nps"] == report["nps"]
    assert [(s["id"], s["score"]) for s in b.metrics.scores(tid)] == \
        [("mail:ana-answer@customer.example", 9)]

    # A score by hand (a phone call) reaches the teammate through the log; the latest wins.
    assert run_command(b, "score", tid, "--nps", "6", "--comment", "called back")[0] == 0
    a.sync_once()
    assert a.metrics.compute()["nps"]["score"] == -100
    assert a.metrics.scores(tid)[-1]["comment"] == "called back"

    # The CLI refuses a second survey unless asked to send it again.
    with pytest.raises(HelpdeskError, match="already"):
        run_command(a, "survey", tid)
    assert run_command(a, "survey", tid, "--again") == (0, "Survey sent.\n")
    assert len(smtp_sink.wait_for(2)) == 2
    a.close()
    b.close()
