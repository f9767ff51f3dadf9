"""Feedback cards: ranking quality, the add-wins fold, merges, close-the-loop exactly once, CLI."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import threading
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from test_sync import run_cli, write_profile
from test_team import desks

from helpdesk.cards import DEFAULT_COLUMNS
from helpdesk.cards import rank as card_rank
from helpdesk.cards.rank import CardText
from helpdesk.cards.service import FeedbackCards
from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError, NotFoundError
from helpdesk.store import open_store
from helpdesk.team.events import Event
from helpdesk.team.fold import FoldResult, apply_event, reset_team_state

# --- ranking: a small labelled set ------------------------------------------------
#
# Cards as a product team would write them, with near neighbours that share words
# (two exports, two calendar cards, two search cards). Each ticket says what one card
# is about in the customer's own words: synonyms the description happens to carry,
# typos ("nite", "calender", "tabels"), swapped word order, noise from pleasantries,
# quoted earlier mail and reply prefixes. Every ticket must find its card first.

CARDS = {
    "dark": ("Dark mode", "A dark theme that follows the OS setting, plus a true-black option "
             "for night work."),
    "calendar": ("Calendar integration", "Show Google Calendar and Outlook events next to "
                 "notes; create a meeting note per event."),
    "calview": ("Calendar view of notes", "Browse notes by the date they were written, in a "
                "month grid."),
    "csv": ("Export to CSV", "Download all notes and tags as a spreadsheet (CSV or Excel)."),
    "pdf": ("Export to PDF", "Print or save a single note as a PDF document."),
    "offline": ("Offline mode", "Keep working without an internet connection, on a plane or "
                "train; sync when back online."),
    "2fa": ("Two-factor authentication", "Log in with a code from an authenticator app or a "
            "security key, in addition to the password."),
    "accents": ("Accent-insensitive search", "Searching 'elephant' should find 'éléphant' "
                "and the other way round."),
    "attach": ("Search inside attachments", "Find words inside attached PDF and Word files."),
    "tags": ("Coloured tags", "Let users give tags a colour so #urgent or #waiting stand out "
             "in lists."),
    "font": ("Bigger text size", "A setting to enlarge fonts for readability on "
             "high-resolution screens."),
    "markdown": ("Markdown tables", "Render tables written in Markdown syntax inside notes."),
    "bulk": ("Bulk delete notes", "Select many notes at once and delete or archive them "
             "together."),
}

TICKETS = [
    ("dark", "Feature request: nite theme",
     "Hi, your app is blinding in the evening. Any chance of a darker look?"),
    ("dark", "night theme please", ""),
    ("dark", "Re: screen too bright",
     "I often work late and would love a black background, the white hurts my eyes.\n\n"
     "On Mon, 3 Nov 2026, Support wrote:\n> Thanks for writing to us about your export\n"),
    ("dark", "black background when working late", ""),
    ("calendar", "Calender sync with Outlook?",
     "Can I see my outlook calender appointments next to my notes?"),
    ("calendar", "integration google calendar", ""),
    ("csv", "csv export broken?", "How do I get all my notes and tags out into Excel?"),
    ("offline", "Using the app on a plane",
     "When I have no internet the app is useless. Could it work offline?"),
    ("2fa", "Security question",
     "Please add two factor auth with an authenticator app, a password alone is not safe."),
    ("accents", "search ignores accents",
     "Searching for cafe does not find café in my notes."),
    ("tags", "tag colours", "Would be great to colour-code my tags, e.g. red for urgent."),
    ("font", "Letters are tiny",
     "The font is so small I can barely read it on my new laptop. Can I make everything "
     "larger?"),
    ("markdown", "AW: markdown tabels dont render", ""),
    ("bulk", "delete lots of notes at once",
     "I have 500 old notes and deleting them one by one takes forever."),
    ("pdf", "Fw: print a note", "I need to save one note as PDF for my lawyer."),
    ("attach", "Find text in my PDFs", "Search does not look inside attached Word files or PDFs."),
]


def labelled_cards() -> list[CardText]:
    return [CardText(key, title, desc) for key, (title, desc) in CARDS.items()]


@pytest.mark.parametrize(("want", "subject", "body"), TICKETS,
                         ids=[f"{w}:{s[:24]}" for w, s, _b in TICKETS])
def test_ranking_finds_the_card_first(want: str, subject: str, body: str) -> None:
    ranked = card_rank.rank(*card_rank.ticket_query(subject, body), labelled_cards())
    assert ranked[0][0] == want, ranked[:3]
    assert ranked[0][1] > ranked[1][1]


def test_ranking_is_independent_of_card_order_and_case() -> None:
    subject, body = card_rank.ticket_query("BLACK BACKGROUND when working late", "")
    forward = card_rank.rank(subject, body, labelled_cards())
    backward = card_rank.rank(subject, body, list(reversed(labelled_cards())))
    assert dict(forward) == dict(backward) and forward[0][0] == "dark"
    assert card_rank.rank("anything", "", []) == []


def test_ticket_query_strips_prefixes_token_and_quoted_mail() -> None:
    subject, body = card_rank.ticket_query(
        "Re: AW: Dark mode? [#abcdefgh]",
        "Yes please!\n\nOn Tue, Anna wrote:\n> export to csv\n> is broken\n-- \nAnna")
    assert subject == "Dark mode?" and body.strip() == "Yes please!"


def test_typed_match_is_partial_and_typo_tolerant() -> None:
    assert card_rank.typed_match("dark", "Dark mode") == 100
    assert card_rank.typed_match("mode dark", "Dark mode") == 100
    assert card_rank.typed_match("calender", "Calendar integration") >= 85
    assert card_rank.typed_match("calendar", "Dark mode") < 60
    assert card_rank.typed_match("black", "Dark mode", "true-black option") >= 80


# --- the fold, without a server -----------------------------------------------------

class Log:
    """Apply events to a fresh store in a chosen order, with made-up UIDs and times."""

    def __init__(self, tmp: Path, name: str = "fold.sqlite3") -> None:
        self.store = open_store(tmp / name)
        self.uid = 0
        self.t0 = datetime(2026, 11, 1, 9, 0)

    def apply(self, *events: Event) -> FoldResult:
        result = FoldResult()
        with self.store.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            for ev in events:
                self.uid += 1
                apply_event(cur, ev, self.uid, self.t0 + timedelta(minutes=self.uid),
                            ev.to_json(), result)
        return result

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self.store.read() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(sql)]


def create(card_id: str, title: str, agent: str = "agent-a", **data: Any) -> Event:
    return Event("card-create", agent, card_id, {"title": title, **data}, id=card_id)


def add(card_id: str, email: str, agent: str = "agent-a", **data: Any) -> Event:
    return Event("card-add", agent, card_id, {"email": email, **data})


def test_fold_add_wins_set_first_add_keeps_its_quote(tmp_path: Path) -> None:
    log = Log(tmp_path)
    c = "c0ffee" * 4
    result = log.apply(create(c, "Dark mode"),
                       add(c, "Ann@Example.com", ticket="t1"),
                       add(c, "bob@example.com", "agent-b", quote="night theme!"),
                       add(c, "ann@example.com", "agent-b", ticket="t9", quote="dark please"),
                       add(c, "bob@example.com", quote="something else"))
    assert result.cards and result.events == 5
    rows = log.query("SELECT email, ticket_id, quote, added_by FROM card_customers "
                     "ORDER BY email")
    assert rows == [("ann@example.com", "t1", "dark please", "agent-a"),
                    ("bob@example.com", None, "night theme!", "agent-b")]


def test_fold_registers_merges_and_notified_first_wins(tmp_path: Path) -> None:
    log = Log(tmp_path)
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    log.apply(create(a, "Dark mode"), create(b, "Night theme"), create(c, "Black UI"),
              add(a, "x@example.com"), add(b, "y@example.com"), add(c, "x@example.com"))
    log.apply(Event("card-merge", "agent-a", b, {"into": a}),
              Event("card-merge", "agent-b", a, {"into": b}),  # a cycle: ignored
              Event("card-merge", "agent-b", c, {"into": b}),  # into a merged card: a chain
              Event("card-move", "agent-a", a, {"column": "shipped"}),
              Event("card-move", "agent-a", a, {"column": "no-such-column"}),  # skipped
              Event("card-update", "agent-a", a, {"title": "Dark mode (OS)"}),
              Event("card-update", "agent-a", "column:ideas", {"name": "Wishes"}),
              Event("card-notified", "agent-a", c, {"email": "x@example.com",
                                                    "message_id": "m1@x"}),
              Event("card-notified", "agent-b", a, {"email": "x@example.com",
                                                    "message_id": "m2@x"}))
    assert log.query("SELECT id, merged_into FROM cards ORDER BY id") == [
        (a, None), (b, a), (c, b)]
    assert log.query("SELECT title, column_id, shipped_at IS NOT NULL FROM cards "
                     "WHERE id = '" + a + "'") == [("Dark mode (OS)", "shipped", 1)]
    assert log.query("SELECT name FROM board_columns WHERE id = 'ideas'") == [("Wishes",)]
    assert log.query("SELECT card_id, email, message_id FROM card_notified") == [
        (a, "x@example.com", "m1@x")]
    # A rebuild forgets every card and restores the default columns.
    with log.store.begin() as conn:
        reset_team_state(conn.connection.driver_connection.cursor())
    assert log.query("SELECT count(*) FROM cards") == [(0,)]
    assert log.query("SELECT id, name FROM board_columns ORDER BY position") == \
        list(DEFAULT_COLUMNS)


def test_fold_same_title_created_twice_becomes_one_card(tmp_path: Path) -> None:
    log = Log(tmp_path)
    first, second, explicit = "1" * 32, "2" * 32, "3" * 32
    log.apply(create(first, "Dark mode", by_title=True),
              create(second, "  dark   MODE ", "agent-b", by_title=True),
              create(explicit, "Dark mode"),  # an explicit create keeps its own card
              add(second, "b@example.com", "agent-b"))
    assert log.query("SELECT id, merged_into FROM cards ORDER BY id") == [
        (first, None), (second, first), (explicit, None)]


def test_fold_skips_bad_card_events(tmp_path: Path) -> None:
    log = Log(tmp_path)
    result = log.apply(create("not-hex!", "x"), create("d" * 32, ""),
                       add("d" * 32, "not-an-address"),
                       Event("card-merge", "a", "e" * 32, {"into": "f" * 32}))
    assert result.skipped == 4 and log.query("SELECT count(*) FROM cards") == [(0,)]


# --- against Dovecot ----------------------------------------------------------------

REQUESTS = [
    ("Liam Chen", "liam@chenstudio.example", "Feature request: dark mode",
     "Hi! Could you add a dark mode? I write at night and the white page is blinding."),
    ("Aisha Rahman", "aisha.rahman@example.com", "night theme please",
     "My eyes hurt after 10pm. A night theme would be lovely."),
    ("Tom Becker", "tom.becker@example.org", "Re: black background",
     "Is there a way to get a black background when working late?"),
    ("Nina Patel", "nina@patelconsulting.example", "Google calender",
     "Could I see my Google calender events next to my notes?"),
    ("Harold Finch", "harold.finch@example.net", "Letters too small",
     "The letters are so small I cannot read them. Please make the font bigger."),
]


def request_mail(name: str, address: str, subject: str, body: str, minute: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{name} <{address}>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="customer.example")
    msg["Date"] = format_datetime(datetime(2026, 11, 2, 9, minute).astimezone())
    msg.set_content(body + f"\n\nBest,\n{name}\n")
    return bytes(msg)


def put_requests(server: Any) -> Any:
    """The :data:`REQUESTS` as mail in ``server``'s INBOX; returns ``server``."""
    with server.session() as c:
        for i, (name, address, subject, body) in enumerate(REQUESTS):
            c.append("INBOX", request_mail(name, address, subject, body, i))
    return server


@pytest.fixture
def requests_server(dovecot: Any) -> Any:
    return put_requests(dovecot)


def ticket_of(desk: Desk, address: str) -> str:
    return next(t["id"] for t in desk.tickets("all") if t["customer"] == address)


def test_add_by_title_rank_and_card_details(requests_server: Any, tmp_path: Path) -> None:
    (a,) = desks(requests_server, tmp_path, "agent-a")
    cards: FeedbackCards = a.cards
    liam, aisha, tom = (ticket_of(a, r[1]) for r in REQUESTS[:3])
    dark = cards.add(liam, title="Dark mode", quote="I write at night",
                     description="A dark theme, true black for night work.")
    assert len(dark) == 32
    calendar = cards.create("Calendar integration", "Google and Outlook events next to notes")
    cards.create("Bigger text size", "Enlarge fonts for readability")
    assert cards.add(aisha, title="dark MODE") == dark  # same title, any case: same card
    assert cards.add(liam, card_id=dark[:6]) == dark  # the same customer again counts once
    # The picker's ranking: each ticket finds its card first.
    assert cards.rank(tom)[0].id == dark
    assert cards.rank(ticket_of(a, "nina@patelconsulting.example"))[0].id == calendar
    top = cards.rank(liam)[0]
    assert top.id == dark and top.has_customer and top.votes == 2
    listed = cards.cards()
    assert listed[0]["title"] == "Dark mode" and listed[0]["votes"] == 2
    assert listed[0]["customers"] == ["liam@chenstudio.example", "aisha.rahman@example.com"]
    assert [c["title"] for c in cards.cards(search="ECRAN")] == []
    assert [c["title"] for c in cards.cards(search="outlook")] == ["Calendar integration"]
    assert [c["title"] for c in cards.cards(search="aisha")] == ["Dark mode"]
    assert [c["title"] for c in cards.cards(sort="age")] == [
        "Dark mode", "Calendar integration", "Bigger text size"]
    detail = cards.card(dark)
    assert [(c["email"], c["name"], c["ticket_id"], c["quote"]) for c in detail["customers"]] == [
        ("liam@chenstudio.example", "Liam Chen", liam, "I write at night"),
        ("aisha.rahman@example.com", "Aisha Rahman", aisha, None)]
    assert detail["column"] == "ideas" and detail["column_name"] == "Ideas"
    with pytest.raises(NotFoundError):
        cards.resolve("zzzz")
    with pytest.raises(HelpdeskError):
        cards.add(liam)
    # Columns: move by name, rename, export.
    cards.move(dark, "In progress")
    cards.rename_column("in-progress", "Building")
    assert cards.card(dark)["column_name"] == "Building"
    rows = list(csv.DictReader(io.StringIO(cards.export("csv"))))
    assert [(r["title"], r["column_name"], r["votes"]) for r in rows][-1] == \
        ("Dark mode", "Building", "2")
    md = cards.export("md")
    assert "## Building (1)" in md and "| Dark mode | 2 |" in md
    a.close()


def test_two_desktops_add_to_the_same_card_concurrently(requests_server: Any,
                                                        tmp_path: Path) -> None:
    a, b = desks(requests_server, tmp_path, "agent-a", "agent-b")
    dark = a.cards.create("Dark mode")
    b.sync_once()
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(desk: Desk, addresses: list[str]) -> None:
        try:
            start.wait()
            for address in addresses:
                desk.cards.add(ticket_of(desk, address), card_id=dark)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(a, [r[1] for r in REQUESTS[:3]])),
               threading.Thread(target=work, args=(b, [r[1] for r in REQUESTS[2:]]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for desk in (a, b):
        desk.sync_once()
    want = {r[1] for r in REQUESTS}
    for desk in (a, b):
        (card,) = desk.cards.cards()
        assert set(card["customers"]) == want and card["votes"] == 5
    assert a.cards.card(dark) == b.cards.card(dark)
    # Two desktops creating the same new title at once still end with one card.
    calendars: list[str] = []
    start = threading.Barrier(2)

    def make(desk: Desk, address: str) -> None:
        start.wait()
        calendars.append(desk.cards.add(ticket_of(desk, address), title="Calendar sync"))

    threads = [threading.Thread(target=make, args=(d, r[1]))
               for d, r in ((a, REQUESTS[3]), (b, REQUESTS[4]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for desk in (a, b):
        desk.sync_once()
        titles = [(c["title"], c["votes"]) for c in desk.cards.cards()]
        assert titles == [("Dark mode", 5), ("Calendar sync", 2)]
    a.close()
    b.close()


def test_merge_keeps_every_customer(requests_server: Any, tmp_path: Path) -> None:
    a, b = desks(requests_server, tmp_path, "agent-a", "agent-b")
    liam, aisha, tom, nina, harold = (ticket_of(a, r[1]) for r in REQUESTS)
    dark = a.cards.add(liam, title="Dark mode", quote="I write at night")
    a.cards.add(aisha, card_id=dark)
    night = a.cards.add(aisha, title="Night theme", quote="A night theme would be lovely")
    a.cards.add(tom, card_id=night)
    b.sync_once()
    a.cards.merge(night, dark)
    b.cards.add(nina, card_id=night)  # b has not seen the merge yet: still counts
    a.sync_once()
    b.sync_once()
    for desk in (a, b):
        listed = desk.cards.cards()
        assert [c["id"] for c in listed] == [dark]
        assert listed[0]["votes"] == 4
        detail = desk.cards.card(night)  # a merged card's id names the card it went into
        assert detail["id"] == dark and [m["id"] for m in detail["merged"]] == [night]
        quotes = {c["email"]: c["quote"] for c in detail["customers"]}
        assert quotes == {"liam@chenstudio.example": "I write at night",
                          "aisha.rahman@example.com": "A night theme would be lovely",
                          "tom.becker@example.org": None,
                          "nina@patelconsulting.example": None}
    with pytest.raises(HelpdeskError, match="itself"):
        a.cards.merge(night, dark)
    a.cards.add(harold, card_id=night[:8])
    assert a.cards.cards()[0]["votes"] == 5
    a.close()
    b.close()


def test_ship_and_notify_twice_tells_each_customer_once(requests_server: Any, smtp_sink: Any,
                                                         tmp_path: Path) -> None:
    a, b = desks(requests_server, tmp_path, "agent-a", "agent-b", smtp=smtp_sink)
    liam, aisha, tom = (ticket_of(a, r[1]) for r in REQUESTS[:3])
    dark = a.cards.add(liam, title="Dark mode", quote="I write at night and the white page "
                                                      "is blinding.")
    a.cards.add(aisha, card_id=dark)
    a.update_customer("aisha.rahman@example.com", preferred_name="Ash")
    b.sync_once()
    drafts = {d["email"]: d for d in b.cards.notification_drafts(dark)}
    assert set(drafts) == {"liam@chenstudio.example", "aisha.rahman@example.com"}
    assert drafts["liam@chenstudio.example"]["body"].startswith("Hi Liam,")
    assert "> I write at night" in drafts["liam@chenstudio.example"]["body"]
    assert drafts["aisha.rahman@example.com"]["body"].startswith("Hi Ash,")
    assert "\"Dark mode\"" in drafts["aisha.rahman@example.com"]["body"]
    assert "Example Support" in drafts["aisha.rahman@example.com"]["body"]
    # Both desktops click "Tell the customers" at the same instant.
    queued: dict[str, list[int]] = {}
    start = threading.Barrier(2)

    def ship(desk: Desk) -> None:
        start.wait()
        queued[desk.agent] = desk.cards.ship(dark, notify=True)

    threads = [threading.Thread(target=ship, args=(d,)) for d in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(len(v) for v in queued.values()) in ([0, 2], [1, 1])
    for desk in (a, b):
        desk.sync_once()  # sends what this desktop queued
    assert a.cards.ship(dark, notify=True) == []  # everyone has been told
    b.cards.add(tom, card_id=dark)  # a latecomer is told once too
    a.sync_once()
    assert len(a.cards.ship(dark, notify=True)) == 1
    assert b.cards.send_notifications(dark, b.cards.notification_drafts(dark)) == []
    a.sync_once()
    b.sync_once()
    sent = smtp_sink.wait_for(3)
    recipients = sorted(rcpt for _f, rcpts, _raw in sent for rcpt in rcpts)
    assert recipients == ["aisha.rahman@example.com", "liam@chenstudio.example",
                          "tom.becker@example.org"]
    for _f, _rcpts, raw in sent:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert "You asked, we built it: Dark mode" in str(msg["Subject"])
    for desk in (a, b):
        (card,) = desk.cards.cards()
        assert card["column"] == "shipped" and sorted(card["notified"]) == recipients
    assert len(smtp_sink.messages) == 3
    a.close()
    b.close()


def test_cli_card_round_trip(requests_server: Any, tmp_path: Path) -> None:
    cfg = write_profile(requests_server, tmp_path)
    assert run_cli(cfg, "sync", "--once").returncode == 0
    tickets = {t["customer"]: t["id"] for t in json.loads(
        run_cli(cfg, "tickets", "--view", "all", "--json").stdout)}
    out = run_cli(cfg, "card", "add", tickets["liam@chenstudio.example"], "--title",
                  "Dark mode", "--quote", "white page is blinding")
    assert out.returncode == 0, out.stderr
    dark = out.stdout.strip()
    assert len(dark) == 32
    out = run_cli(cfg, "card", "add", tickets["aisha.rahman@example.com"], "--card", dark[:6])
    assert out.stdout.strip() == dark, out.stderr
    night = run_cli(cfg, "card", "add", tickets["tom.becker@example.org"], "--title",
                    "Night theme").stdout.strip()
    assert run_cli(cfg, "card", "merge", night[:5], dark[:5]).returncode == 0
    assert run_cli(cfg, "card", "move", dark[:5], "next-up").returncode == 0
    listed = json.loads(run_cli(cfg, "cards", "--json").stdout)
    assert listed == [{"id": dark, "title": "Dark mode", "description": "", "column": "next-up",
                       "votes": 3, "customers": ["liam@chenstudio.example",
                                                 "aisha.rahman@example.com",
                                                 "tom.becker@example.org"],
                       "notified": []}]
    shown = json.loads(run_cli(cfg, "card", "show", dark[:5], "--json").stdout)
    assert shown["customers"][0]["quote"] == "white page is blinding"
    out = run_cli(cfg, "card", "ship", dark[:5])
    assert out.returncode == 0 and "Shipped" in out.stdout
    md = run_cli(cfg, "cards", "export", "--format", "md").stdout
    assert "## Shipped (1)" in md and "| Dark mode | 3 |" in md
    rows = list(csv.DictReader(io.StringIO(
        run_cli(cfg, "cards", "export", "--format", "csv").stdout)))
    assert rows[0]["column"] == "shipped" and rows[0]["votes"] == "3"
    bad = run_cli(cfg, "card", "move", "zzzz", "ideas")
    assert bad.returncode == 1 and "No card 'zzzz'" in bad.stderr
    bad = run_cli(cfg, "card", "move", dark[:5], "nowhere")
    assert bad.returncode == 1 and "No column 'nowhere'" in bad.stderr
