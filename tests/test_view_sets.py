"""The views of few tickets start from their sets, and every view and count still selects
what its plain rule selects.

Lists and counts take shortcuts (a view of few tickets reads its set and sorts it, the
counts count those views from their sets and patch the rare flags): checked here against
the plain query of each view's rule over random stores holding every kind of teamwork
state, and, by SQLite's own step counter (the same figure on any machine), that a few-
ticket view's first page does not cost more when the store holds many more tickets
outside it.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import vm_steps as steps
from sqlalchemy import Connection, text

from helpdesk.store import open_store, queries
from helpdesk.store.queries import TicketQuery

NOW = datetime(2030, 6, 1, 12, 0, 0)
AGENTS = ("agent-a", "agent-b", "agent-c")
TAGS = ("billing", "bug", "refund")


def iso(at: datetime | None) -> str | None:
    return at.isoformat(sep=" ") if at else None


def fill(path: Path, rng: random.Random, n: int, start: int = 0, teamwork: bool = True,
         status: Callable[[random.Random], str | None] | None = None) -> None:
    """``n`` tickets; with ``teamwork``, every kind of state on some of them: live and
    lapsed claims, closed/pending (some reopened by a later customer message), snoozes
    (running, over, woken by the customer), assignments, mentions, tags, VIP customers,
    blocked addresses and a blocked domain (and a block lifted), tickets without a
    customer."""
    stamps = [NOW - timedelta(hours=h) for h in range(40)]  # few values: many ties
    # Without teamwork, customers of their own (none blocked, none VIP).
    customers = [(f"c{i}@d{i % 7}.test", 1 if i % 5 == 0 else 0) if teamwork else
                 (f"p{i}@plain{i % 7}.test", 0) for i in range(30)]
    tickets, states, work, mentions, tags = [], [], [], [], []
    for i in range(start, start + n):
        tid = f"t{i:06d}"
        email = None if rng.random() < 0.03 else rng.choice(customers)[0]
        updated = rng.choice(stamps)
        created = updated - timedelta(hours=rng.randint(0, 30))
        last_in = updated - timedelta(minutes=rng.choice((0, 30, 90))) if email else None
        tickets.append((tid, f"<{tid}@x>", "s", email, iso(created), iso(updated),
                        iso(created) if rng.random() < 0.5 else None, iso(last_in)))
        st = status(rng) if status else rng.choice((None, None, "open", "closed", "pending"))
        claimed = rng.choice(AGENTS) if teamwork and rng.random() < 0.3 else None
        active = NOW - timedelta(minutes=rng.choice((5, 500)))  # lease 60 min: some lapsed
        if st or claimed:
            status_at = updated - timedelta(minutes=rng.choice((-60, 60)))  # some reopened
            states.append((tid, st or "open", iso(status_at), claimed,
                           iso(active) if claimed else None))
        if not teamwork:
            continue
        r = rng.random()
        if r < 0.25:
            until = NOW + timedelta(hours=rng.choice((-2, 3)))
            at = updated - timedelta(minutes=rng.choice((-120, 120)))  # some woken by mail
            work.append((tid, rng.choice((None, *AGENTS)), iso(until), iso(at)))
        elif r < 0.4:
            work.append((tid, rng.choice(AGENTS), None, None))
        if rng.random() < 0.15:
            mentions.append((rng.choice(AGENTS), tid))
        for tag in TAGS:
            if rng.random() < 0.2:
                tags.append((tid, tag))
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT OR IGNORE INTO customers (email, name, vip) "
                         "VALUES (?, 'N', ?)", customers)
        conn.executemany("INSERT INTO tickets (id, thread_key, subject, customer_email, "
                         "created_at, updated_at, waiting_since, last_in_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", tickets)
        conn.executemany("INSERT INTO ticket_state (ticket_id, status, status_at, claimed_by, "
                         "claim_active_at, claim_lease) VALUES (?, ?, ?, ?, ?, 3600)", states)
        conn.executemany("INSERT INTO ticket_work (ticket_id, assignee, snoozed_until, "
                         "snoozed_at) VALUES (?, ?, ?, ?)", work)
        conn.executemany("INSERT INTO ticket_mentions (agent, ticket_id, note_id, by_agent, "
                         "uid, at) VALUES (?, ?, 'n', 'agent-b', 1, '2030-01-01')", mentions)
        conn.executemany("INSERT INTO ticket_tags (ticket_id, tag, stamp) VALUES (?, ?, 1)",
                         tags)
        if teamwork:
            conn.executemany(
                "INSERT OR REPLACE INTO spam_blocks (pattern, kind, active, stamp) "
                "VALUES (?, ?, ?, 1)", [("c3@d3.test", "address", 1),
                                        ("c8@d1.test", "address", 0),
                                        ("d4.test", "domain", 1), ("d6.test", "domain", 0)])
    conn.close()


@pytest.fixture(params=[1, 2, 3], ids=lambda s: f"seed{s}")
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connection]:
    path = tmp_path / "v.sqlite3"
    open_store(path).close()
    fill(path, random.Random(request.param), 400)
    store = open_store(path)
    with store.read() as c:
        yield c
    store.close()


def plain_ids(conn: Connection, q: TicketQuery, limit: int | None = None) -> list[str]:
    """The view's rule as one plain statement: no set to start from, no flag left out."""
    params: dict[str, Any] = {}
    where = [queries._view_clause(q, params), *queries._tag_clauses(q.tags, params)]
    return [r[0] for r in conn.execute(text(queries._ids_sql(q, where, limit)), params)]


def every_query() -> Iterator[TicketQuery]:
    for view in queries.VIEWS:
        for agent in ("agent-a", "agent-b"):
            for sort in ("updated", "created", "waiting"):
                for descending in (True, False):
                    yield TicketQuery(view=view, agent=agent, sort=sort,
                                      descending=descending, now=NOW)


def test_every_view_lists_what_its_rule_selects_in_order(conn: Connection) -> None:
    checked = 0
    for q in every_query():
        whole = plain_ids(conn, q)
        assert queries.ticket_ids(conn, q) == whole, q
        for limit in (1, 9, 200):
            assert queries.ticket_ids(conn, q, limit) == whole[:limit], (q, limit)
        checked += 1
    assert checked == len(queries.VIEWS) * 2 * 3 * 2


def test_views_with_tags_and_vip_first_match_the_plain_order(conn: Connection) -> None:
    for view in queries.VIEWS:
        for tags in ((), ("billing",), ("billing", "bug")):
            q = TicketQuery(view=view, agent="agent-a", now=NOW, tags=tags)
            whole = plain_ids(conn, q)
            assert queries.ticket_ids(conn, q) == whole, q
            assert queries.ticket_ids(conn, q, 7) == whole[:7], q
            vq = replace(q, vip_first=True)
            assert queries.ticket_ids(conn, vq, 7) == plain_ids(conn, vq)[:7], vq


def test_the_state_is_varied_enough_to_mean_something(conn: Connection) -> None:
    """Every view lists some tickets and leaves some out (else the checks prove little)."""
    for view in queries.VIEWS:
        n = len(plain_ids(conn, TicketQuery(view=view, agent="agent-a", now=NOW)))
        assert 0 < n < (400 if view != "all" else 401), view


def test_every_count_is_the_length_of_its_plain_list(conn: Connection) -> None:
    for agent in AGENTS:
        q = TicketQuery(agent=agent, now=NOW)
        counts = queries.count_views(conn, q)
        assert list(counts) == list(queries.VIEWS)
        for view in queries.VIEWS:
            assert counts[view] == len(plain_ids(conn, replace(q, view=view))), (agent, view)


def test_tag_counts_leave_spam_out(conn: Connection) -> None:
    expected: dict[str, int] = {}
    for tag in TAGS:
        q = TicketQuery(view="all", now=NOW, tags=(tag,))
        params: dict[str, Any] = {}
        where = [f"NOT {queries.SPAM}", *queries._tag_clauses(q.tags, params)]
        n = len(conn.execute(text(queries._ids_sql(q, where, None)), params).all())
        if n:
            expected[tag] = n
    assert queries.tag_counts(conn) == expected
    assert expected and sum(expected.values()) < conn.execute(text(
        "SELECT count(*) FROM ticket_tags")).scalar()  # some tagged spam was left out


def test_nothing_blocked_snoozed_or_mentioned_counts_alike(tmp_path: Path) -> None:
    path = tmp_path / "plain.sqlite3"
    open_store(path).close()
    fill(path, random.Random(5), 300, teamwork=False)
    store = open_store(path)
    try:
        with store.read() as c:
            q = TicketQuery(agent="agent-a", now=NOW)
            counts = queries.count_views(c, q)
            for view in queries.VIEWS:
                assert counts[view] == len(plain_ids(c, replace(q, view=view))), view
                assert queries.ticket_ids(c, replace(q, view=view), 5) == \
                    plain_ids(c, replace(q, view=view), 5)
    finally:
        store.close()


# --- cost: a view of few tickets does not pay for the tickets outside it ----------------

SPARSE = ("mine", "mentions", "snoozed", "spam", "pending")


@pytest.fixture(scope="module")
def growing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a few thousand tickets of all kinds; the test adds plain ones."""
    path = tmp_path_factory.mktemp("grow") / "g.sqlite3"
    open_store(path).close()
    fill(path, random.Random(9), 2000)
    return path


@pytest.mark.parametrize("view", SPARSE)
def test_a_few_ticket_view_costs_the_same_beside_many_more_tickets(
        growing: Path, tmp_path: Path, view: str) -> None:
    """The first page of a view of few tickets, then 10,000 more tickets none of which is
    in it (no state, no teamwork, customers not blocked): its cost stays nearly the same.
    Walking the list order until a page is full (or to the end, for Pending with nothing
    pending) grows with every ticket."""
    path = tmp_path / "g.sqlite3"
    path.write_bytes(growing.read_bytes())
    q = TicketQuery(view=view, agent="agent-a", now=NOW)

    def first_page(c: Connection) -> None:
        queries.ticket_ids(c, q, 200)

    def measure() -> tuple[int, list[str]]:
        store = open_store(path)
        try:
            with store.read() as c:
                c.execute(text("ANALYZE"))
                return steps(c, first_page), queries.ticket_ids(c, q, 200)
        finally:
            store.close()

    before, ids = measure()
    fill(path, random.Random(10), 10_000, start=10_000, teamwork=False,
         status=lambda rng: "open")
    after, ids_after = measure()
    assert ids and ids_after == ids  # the new tickets are in none of these views
    assert after < before * 1.5 + 5000, (view, before, after)


def test_counting_the_few_ticket_views_does_not_walk_them_all(tmp_path: Path) -> None:
    """The counts of the views of few tickets come from their sets: with every other view
    left out, counting costs a small fraction of a pass over every ticket."""
    path = tmp_path / "c.sqlite3"
    open_store(path).close()
    fill(path, random.Random(11), 2000)
    fill(path, random.Random(12), 8000, start=10_000, teamwork=False)
    store = open_store(path)
    try:
        with store.read() as c:
            q = TicketQuery(agent="agent-a", now=NOW)
            saved = queries.VIEWS
            try:
                queries.VIEWS = ("mine", "mentions", "snoozed", "spam")  # type: ignore[misc]
                sparse = steps(c, lambda conn: queries.count_views(conn, q))
                queries.VIEWS = ("all",)  # type: ignore[misc]
                one_pass = steps(c, lambda conn: queries.count_views(conn, q))
            finally:
                queries.VIEWS = saved  # type: ignore[misc]
            assert sparse < one_pass, (sparse, one_pass)
    finally:
        store.close()
