"""Ticket search: both query shapes give the tickets, and the order, of the plain query."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from helpdesk.store import open_store, queries
from helpdesk.store.queries import TicketQuery

NOW = datetime(2030, 6, 1, 12, 0, 0)
TERMS = ("common", "half", "rare", "oldie", "common half", "cust7", "nothingatall")
N_TICKETS = 300


def build(path: Path) -> None:
    """Tickets of 1-3 messages; updated_at drawn from few values (many ties); words with
    different spreads, 'oldie' only in the oldest tickets; closed, claimed and VIP tickets."""
    open_store(path).close()
    rng = random.Random(7)
    stamps = [NOW - timedelta(hours=h) for h in range(60)]
    customers = [(f"cust{i}@example.test", f"Name {i}", 1 if i % 9 == 0 else 0)
                 for i in range(40)]
    tickets, messages, fts, states = [], [], [], []
    pk = 0
    for i in range(N_TICKETS):
        tid = f"t{i:04d}"
        email = customers[rng.randrange(len(customers))][0]
        updated = stamps[rng.randrange(len(stamps))]
        created = updated - timedelta(hours=rng.randint(0, 48))
        oldest = updated >= stamps[-8]  # the last few stamps are the oldest
        for _ in range(rng.randint(1, 3)):
            pk += 1
            words = [w for w, p in (("common", 0.8), ("half", 0.4), ("rare", 0.03))
                     if rng.random() < p]
            if oldest and rng.random() < 0.5:
                words.append("oldie")
            body = " ".join([*words, "filler"])
            messages.append((pk, f"k{pk}", tid, f"subject {i}", email,
                             created.isoformat(sep=" "), body))
            fts.append((pk, f"subject {i}", body, email, tid))
        tickets.append((tid, f"<{tid}@x>", f"subject {i}", email, created.isoformat(sep=" "),
                        updated.isoformat(sep=" "),
                        created.isoformat(sep=" ") if rng.random() < 0.5 else None))
        r = rng.random()
        if r < 0.25:
            states.append((tid, "closed", None, None))
        elif r < 0.35:
            states.append((tid, "pending", None, None))
        elif r < 0.55:
            agent = rng.choice(("agent-a", "agent-b"))
            active = NOW - timedelta(minutes=rng.choice((5, 500)))  # lease 60 min: some lapsed
            states.append((tid, "open", agent, active.isoformat(sep=" ")))
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT INTO customers (email, name, vip) VALUES (?, ?, ?)", customers)
        conn.executemany("INSERT INTO tickets (id, thread_key, subject, customer_email, "
                         "created_at, updated_at, waiting_since) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         tickets)
        conn.executemany("INSERT INTO messages (id, dedup_key, ticket_id, subject, from_addr, "
                         "received_at, direction, text) VALUES (?, ?, ?, ?, ?, ?, 'in', ?)",
                         messages)
        conn.executemany("INSERT INTO messages_fts (rowid, subject, body, customer, ticket_id) "
                         "VALUES (?, ?, ?, ?, ?)", fts)
        conn.executemany("INSERT INTO ticket_state (ticket_id, status, claimed_by, "
                         "claim_active_at, claim_lease) VALUES (?, ?, ?, ?, 3600)", states)
    conn.close()


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("search") / "s.sqlite3"
    build(path)
    return path


@pytest.fixture
def conn(store_path: Path) -> Iterator[Connection]:
    store = open_store(store_path)
    with store.read() as c:
        yield c
    store.close()


def reference_ids(conn: Connection, q: TicketQuery, limit: int | None) -> list[str]:
    """The query as it was: tickets whose id the FTS table lists for a matching message."""
    params: dict[str, Any] = {"match": queries.fts_query(q.search)}
    where = [queries._view_clause(q, params),
             "t.id IN (SELECT ticket_id FROM messages_fts WHERE messages_fts MATCH :match)"]
    return [r[0] for r in conn.execute(text(queries._ids_sql(q, where, limit)), params)]


def all_queries(walkable_only: bool) -> Iterator[tuple[TicketQuery, int | None]]:
    """Every view, order and term; ``walkable_only``: first pages only (which may walk)."""
    for view in queries.VIEWS:
        for sort in ("updated", "created", "waiting"):
            for vip_first in (False, True):
                for descending in (True, False):
                    for term in TERMS:
                        q = TicketQuery(view=view, search=term, agent="agent-a", sort=sort,
                                        vip_first=vip_first, descending=descending, now=NOW)
                        for limit in (1, 7, 40) if walkable_only else (None, 1, 40):
                            yield q, limit


# walk_from, steps per match: the plain settings; always walk with an unlimited budget; always
# walk with no budget (every walk that needs more than one check falls back); never walk.
@pytest.mark.parametrize("walk_from, steps", [(None, None), (1, 10**9), (1, 0), (10**9, 20)],
                         ids=["defaults", "walk", "walk-runs-out", "from-index"])
def test_both_shapes_match_the_plain_query(conn: Connection, monkeypatch: pytest.MonkeyPatch,
                                           walk_from: int | None, steps: int | None) -> None:
    if walk_from is not None:
        monkeypatch.setattr(queries, "WALK_FROM", walk_from)
    if steps is not None:
        monkeypatch.setattr(queries, "WALK_STEPS_PER_MATCH", steps)
    checked = 0
    for q, limit in all_queries(walkable_only=walk_from is not None):
        assert queries.ticket_ids(conn, q, limit) == reference_ids(conn, q, limit), (q, limit)
        checked += 1
    assert checked == len(queries.VIEWS) * len(TERMS) * 3 * 2 * 2 * 3


def test_walk_runs_out_of_budget_and_leaves_the_connection_clean(
        conn: Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    q = TicketQuery(view="all", search="oldie", now=NOW)  # hits only at the end of the walk
    params: dict[str, Any] = {"match": queries.fts_query("oldie")}
    where = [queries._view_clause(q, params)]
    monkeypatch.setattr(queries, "WALK_FROM", 1)
    monkeypatch.setattr(queries, "WALK_STEPS_PER_MATCH", 0)
    assert queries._first_page_walking(conn, q, where, dict(params), 20) is None
    # No progress handler is left behind: a long statement runs to the end.
    n = conn.execute(text("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
                          "WHERE i < 100000) SELECT count(*) FROM c")).scalar()
    assert n == 100000
    monkeypatch.setattr(queries, "WALK_STEPS_PER_MATCH", 10**9)
    walked = queries._first_page_walking(conn, q, where, dict(params), 20)
    assert walked is not None and walked == reference_ids(conn, q, 20)


def test_a_ticket_is_found_by_any_of_its_messages_once(conn: Connection) -> None:
    multi = conn.execute(text(
        "SELECT ticket_id FROM messages GROUP BY ticket_id HAVING count(*) = 3 "
        "AND sum(text LIKE '%common%') >= 2 LIMIT 1")).scalar()
    assert multi is not None
    ids = queries.ticket_ids(conn, TicketQuery(view="all", search="common", now=NOW))
    assert ids.count(multi) == 1
    expected = {r[0] for r in conn.execute(text(
        "SELECT DISTINCT ticket_id FROM messages WHERE text LIKE '%common%' "
        "OR subject LIKE '%common%'"))}
    assert set(ids) == expected
    assert queries.ticket_ids(conn, TicketQuery(view="all", search="nothingatall",
                                                now=NOW)) == []


@pytest.mark.parametrize(("search", "limit"), [("", None), ("common", None), ("common", 20)])
def test_a_superseded_list_read_stops_and_the_connection_stays_usable(
        conn: Connection, search: str, limit: int | None) -> None:
    q = TicketQuery(view="all", search=search, now=NOW)
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return True

    with pytest.raises(queries.QueryCancelled):
        queries.ticket_ids(conn, q, limit, cancelled=cancelled)
    assert asked  # asked while the query ran, not before it
    # Not cancelled: the same answer as without the hook, and nothing left installed.
    assert queries.ticket_ids(conn, q, limit, cancelled=lambda: False) == \
        queries.ticket_ids(conn, q, limit)
    assert conn.execute(text("SELECT count(*) FROM tickets")).scalar() == N_TICKETS


@pytest.mark.parametrize("sort", ["updated", "created", "waiting"])
def test_vip_first_pages_without_a_search_match_the_plain_order(conn: Connection,
                                                                sort: str) -> None:
    """A VIP-first page is put together from two lists (VIP tickets, then the rest)."""
    for view in queries.VIEWS:
        for descending in (True, False):
            q = TicketQuery(view=view, agent="agent-a", sort=sort, vip_first=True,
                            descending=descending, now=NOW)
            params: dict[str, Any] = {}
            plain = queries._ids_sql(q, [queries._view_clause(q, params)], None)
            whole = [r[0] for r in conn.execute(text(plain), params)]
            assert queries.ticket_ids(conn, q) == whole
            for limit in (1, 5, 40, 1000):
                assert queries.ticket_ids(conn, q, limit) == whole[:limit], (view, limit)


def test_waiting_longest_puts_the_oldest_unanswered_first(conn: Connection) -> None:
    ids = queries.ticket_ids(conn, TicketQuery(view="all", sort="waiting", now=NOW))
    waiting = dict(conn.execute(text("SELECT id, waiting_since FROM tickets")).all())
    since = [waiting[t] for t in ids]
    waited = [s for s in since if s is not None]
    assert waited and waited == sorted(waited)  # longest waiting (earliest) first
    assert since == waited + [None] * (len(since) - len(waited))  # nobody waiting: last
    first_page = queries.ticket_ids(conn, TicketQuery(view="all", sort="waiting", now=NOW,
                                                      search="common"), 20)
    assert [waiting[t] for t in first_page] == sorted(waiting[t] for t in first_page)
