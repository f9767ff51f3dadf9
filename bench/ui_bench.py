#!/usr/bin/env python
"""UI benchmark: the main window on a 100,000-ticket store (not a test).

Builds a fresh store with N tickets (default 100,000) by direct SQL inserts,
then measures, all in this run:

* launch -> interactive list: from opening the desk (store open + migration
  check) through building and showing the main window to the first ticket rows
  painted by the list delegate (in this process, Qt already imported), and the
  same from a cold ``python`` process start (interpreter, imports, QApplication);
* references: a bare QTableView over a 100,000-row in-memory model (show ->
  painted), and the core's SQL ``ticket_ids`` for the start view alone;
* search applied: typing a term (the debounce firing) -> the query ran on the
  worker and the model was reset with the first page of hits, for several terms; then
  the time until all hits were applied; references: the SQL alone for the first page and
  for all ids, each run with the worker idle;
* teamwork views (Mine, Mentions, Snoozed, Spam, a tag): sidebar pick -> first page
  applied, beside the SQL alone for that page; the live counts (every view's count plus
  the tag counts, as the sidebar reads them) beside the seven views the sidebar had
  before teamwork, counted the same way in this run;
* the longest main-thread stall (a 5 ms QTimer heartbeat, gaps between beats)
  while a background sync of 2,000 new messages runs against a private Dovecot
  (tests/servers.py, filled with tests/mailgen.py), with the window showing the
  newest tickets; reference: the same heartbeat with nothing running.

Usage (from the repo root; runs offscreen unless a display is set)::

    python bench/ui_bench.py                 # 100,000 tickets, 2,000-message sync
    python bench/ui_bench.py --tickets 20000 --sync 500

Targets: interactive in under 1.5 s, search applied in under 100 ms, no main-thread
stall over 50 ms. Exits 1 only on PROBLEM lines (a step failed), not on missed targets.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
for _p in (str(ROOT), str(TESTS)):
    if _p not in sys.path:
        sys.path.insert(0, _p)
if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

TARGET_LAUNCH_S = 1.5
TARGET_SEARCH_S = 0.100
TARGET_STALL_S = 0.050
HEARTBEAT_MS = 5
SEARCH_TERMS = ("invoice", "dark mode", "customer4711", "refund double", "zzzz-nothing")

WORDS = ["invoice", "refund", "login", "password", "export", "import", "calendar", "sync",
         "crash", "dark", "mode", "theme", "seats", "billing", "shipping", "parcel", "account",
         "delete", "notebook", "share", "page", "printer", "font", "backup", "restore",
         "android", "iphone", "windows", "linux", "update", "slow", "error", "upload"]
NAMES = ("Ana Pérez", "Björn Åkesson", "Chloé Dubois", "Dmitri Ivanov", "Eun-ji Kim",
         "Grace Hopper", "Hiroshi Tanaka", "Ingrid Sørensen", "José Núñez", "Liam O'Brien",
         "Margaret Okafor", "Noah Williams", "Olga Petrova", "Ravi Kumar", "Zoë Adams")

PROBLEMS: list[str] = []
COLD_PARTS: dict[str, float] = {}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def verdict(value: float, target: float) -> str:
    return "OK" if value < target else "MISSED"


# --- the store ----------------------------------------------------------------------

def build_store(path: Path, n: int, seed: int = 3) -> float:
    """A migrated store with ``n`` tickets (one message each), customers, some claims."""
    from helpdesk.store import open_store

    started = time.perf_counter()
    open_store(path).close()  # schema via the real migrations
    rng = random.Random(seed)
    now = datetime.utcnow().replace(microsecond=0)
    n_customers = max(10, n // 5)
    customers = []
    for i in range(n_customers):
        name = rng.choice(NAMES)
        vip = 1 if rng.random() < 0.02 else 0
        customers.append((f"customer{i}@example{i % 97}.test", name, f"Org {i % 500}", vip,
                          "Gold" if vip else None, 1 if rng.random() < 0.01 else 0))
    tickets, messages, fts, states = [], [], [], []
    for i in range(n):
        tid = f"{i:08x}"
        email, name = customers[rng.randrange(n_customers)][:2]
        subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7))).capitalize()
        body = (f"Hello, {subject.lower()} happens since yesterday. " +
                " ".join(rng.choice(WORDS) for _ in range(40)))
        created = now - timedelta(minutes=rng.randint(0, 60 * 24 * 365))
        updated = created + timedelta(minutes=rng.randint(0, 600))
        waiting = created if rng.random() < 0.6 else None
        c, u = created.isoformat(sep=" "), updated.isoformat(sep=" ")
        tickets.append((tid, f"<{tid}@bench>", subject, email, c, u, 1, body[:140],
                        waiting.isoformat(sep=" ") if waiting else None, c))
        messages.append((i + 1, f"bench:{tid}", tid, f"{tid}@bench", subject, email, name,
                         "[]", c, "in", body))
        fts.append((i + 1, subject, body, f"{name} {email}", tid))
        r = rng.random()
        if r < 0.30:
            states.append((tid, "closed", u, None, None, None))
        elif r < 0.35:
            agent = rng.choice(("agent-b", "agent-c"))
            states.append((tid, "open", None, agent, u, u))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    with conn:
        conn.executemany("INSERT INTO customers (email, name, organisation, vip, vip_tier, "
                         "white_glove) VALUES (?, ?, ?, ?, ?, ?)", customers)
        conn.executemany("INSERT INTO tickets (id, thread_key, subject, customer_email, "
                         "created_at, updated_at, message_count, snippet, waiting_since, "
                         "first_in_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", tickets)
        conn.executemany("INSERT INTO messages (id, dedup_key, ticket_id, message_id, subject, "
                         "from_addr, from_name, to_addrs, received_at, direction, text) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", messages)
        conn.executemany("INSERT INTO messages_fts (rowid, subject, body, customer, "
                         "ticket_id) VALUES (?, ?, ?, ?, ?)", fts)
        conn.executemany("INSERT INTO ticket_state (ticket_id, status, closed_at, claimed_by, "
                         "claimed_at, claim_active_at, claim_lease) "
                         "VALUES (?, ?, ?, ?, ?, ?, 315360000)", states)
        add_teamwork(conn, rng, [t[0] for t in tickets], customers, now)
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


TAGS = ("billing", "refund", "bug", "feature", "android", "ios", "urgent", "vip-care",
        "shipping", "login", "export", "churn-risk")


def add_teamwork(conn: sqlite3.Connection, rng: random.Random, ids: list[str],
                 customers: list[tuple[Any, ...]], now: datetime) -> None:
    """Teamwork state as a busy team leaves it: ~35% of tickets tagged, 5% assigned, 3%
    snoozed (a third of them already awake), 1% mentioning agent-a, a few blocked
    senders and one blocked domain (about 1% of tickets)."""
    tags, work, mentions = [], [], []
    for uid, tid in enumerate(ids, start=1):
        if rng.random() < 0.35:
            for tag in rng.sample(TAGS, rng.choice((1, 1, 2))):
                tags.append((tid, tag, uid))
        r = rng.random()
        assignee = rng.choice(("agent-a", "agent-b", "agent-c")) if r < 0.05 else None
        until = None
        if 0.05 <= r < 0.08:
            until = now + timedelta(hours=rng.choice((-5, 2, 30, 100)))
        if assignee or until:
            work.append((tid, assignee, uid if assignee else 0,
                         until.isoformat(sep=" ") if until else None,
                         (now - timedelta(days=400)).isoformat(sep=" ") if until else None,
                         uid if until else 0))
        if rng.random() < 0.01:
            mentions.append(("agent-a", tid, f"n{uid}", "agent-b", uid, now.isoformat(sep=" ")))
    blocked = [(str(c[0]), "address") for c in customers[:20]] + [("example5.test", "domain")]
    conn.executemany("INSERT INTO ticket_tags (ticket_id, tag, stamp) VALUES (?, ?, ?)", tags)
    conn.executemany("INSERT INTO ticket_work (ticket_id, assignee, assign_stamp, "
                     "snoozed_until, snoozed_at, snooze_stamp) VALUES (?, ?, ?, ?, ?, ?)", work)
    conn.executemany("INSERT INTO ticket_mentions (agent, ticket_id, note_id, by_agent, uid, "
                     "at) VALUES (?, ?, ?, ?, ?, ?)", mentions)
    conn.executemany("INSERT INTO spam_blocks (pattern, kind, active, stamp) "
                     "VALUES (?, ?, 1, 1)", blocked)


# --- helpers --------------------------------------------------------------------------

class FirstPaint:
    """Records when the ticket delegate first paints a fetched row."""

    def __init__(self) -> None:
        from ui.delegates import TicketDelegate
        from ui.models import ROW_ROLE

        self.at: float | None = None
        original = TicketDelegate.paint
        probe = self

        def paint(delegate: Any, painter: Any, option: Any, index: Any) -> None:
            original(delegate, painter, option, index)
            if probe.at is None and index.data(ROW_ROLE) is not None:
                probe.at = time.perf_counter()

        TicketDelegate.paint = paint  # type: ignore[method-assign]

    def reset(self) -> None:
        self.at = None


def wait(app: Any, predicate: Callable[[], Any], timeout: float, what: str) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            PROBLEMS.append(f"timed out after {timeout:.0f} s waiting for {what}")
            return False
        app.processEvents()
        time.sleep(0.001)
    return True


def profile_for(store: Path, server: Any | None, agent: str = "agent-a") -> Any:
    from helpdesk.config import ImapSettings, Profile

    if server is None:  # nothing listens here: the desk never needs the network
        imap = ImapSettings(host="127.0.0.1", port=9, security="plain", username="agent-a",
                            password_command="echo x")
    else:
        imap = ImapSettings(host=server.host, port=server.port, security="plain",
                            username=agent, password_command=f"echo {server.users[agent]}",
                            poll_seconds=60)
    return Profile(agent=agent, database=store, imap=imap)


# --- 1. launch --------------------------------------------------------------------------

def bench_launch(app: Any, store: Path, probe: FirstPaint) -> tuple[float, Any, Any]:
    from helpdesk.desk import Desk
    from ui.app import settle_heap
    from ui.main_window import MainWindow
    from ui.worker import DeskService

    probe.reset()
    started = time.perf_counter()
    desk = Desk(profile_for(store, None))
    service = DeskService(desk)
    window = MainWindow(service, persist=False)
    window.resize(1440, 900)
    window.show()
    wait(app, lambda: probe.at is not None, 30, "the first painted rows")
    elapsed = (probe.at or time.perf_counter()) - started
    settle_heap()  # as ui.app.run_gui does once the window is up
    return elapsed, window, service


def bench_cold_launch(store: Path) -> float | None:
    """A new interpreter: spawn -> first rows painted (the child reports its own clock)."""
    paths = [str(ROOT), str(ROOT / "bench")]
    code = "\n".join([
        "import sys, time",
        f"sys.path[:0] = {paths!r}",
        "import os; os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')",
        "t = time.time(); from PySide6.QtWidgets import QApplication",
        "app = QApplication([]); from ui import style; style.apply(app)",
        "import helpdesk.desk, ui.main_window; print('QT_AND_IMPORTS', time.time() - t)",
        "import ui_bench as b",
        "probe = b.FirstPaint()",
        f"elapsed, w, s = b.bench_launch(app, __import__('pathlib').Path({str(store)!r}), probe)",
        "print('LAUNCH', elapsed)",
        "print('PAINTED', probe.at and (time.time() - (time.perf_counter() - probe.at)))",
        "s.stop()",
    ])
    spawned = time.time()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "QT_QPA_PLATFORM": os.environ.get(
                              "QT_QPA_PLATFORM", "offscreen")})
    parts = dict(line.split(None, 1) for line in proc.stdout.splitlines() if " " in line)
    if parts.get("PAINTED", "None") != "None":
        total = float(parts["PAINTED"]) - spawned
        COLD_PARTS.update(imports=float(parts["QT_AND_IMPORTS"]), launch=float(parts["LAUNCH"]),
                          interpreter=total - float(parts["QT_AND_IMPORTS"])
                          - float(parts["LAUNCH"]))
        return total
    PROBLEMS.append(f"cold launch failed: {proc.stderr.strip()[-400:]}")
    return None


def bench_bare_table(app: Any, n: int) -> float:
    from PySide6.QtCore import QAbstractTableModel, Qt
    from PySide6.QtWidgets import QTableView

    rows = [(f"{i:08x}", f"Subject {i}", f"customer{i}@example.test") for i in range(n)]

    class Bare(QAbstractTableModel):
        painted: float | None = None

        def rowCount(self, parent: Any = None) -> int:
            return 0 if parent is not None and parent.isValid() else len(rows)

        def columnCount(self, parent: Any = None) -> int:
            return 0 if parent is not None and parent.isValid() else 3

        def data(self, index: Any, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
            if role == Qt.ItemDataRole.DisplayRole:
                if Bare.painted is None:
                    Bare.painted = time.perf_counter()
                return rows[index.row()][index.column()]
            return None

    started = time.perf_counter()
    view = QTableView()
    view.setModel(Bare())
    view.verticalHeader().setDefaultSectionSize(24)
    view.verticalHeader().setSectionResizeMode(view.verticalHeader().ResizeMode.Fixed)
    view.resize(900, 800)
    view.show()
    wait(app, lambda: Bare.painted is not None, 30, "the bare table")
    for _ in range(5):
        app.processEvents()
    elapsed = (Bare.painted or time.perf_counter()) - started
    view.close()
    return elapsed


# --- 2. search ------------------------------------------------------------------------

def fire_query(column: Any, term: str, vip_first: bool = False, sort: str = "updated"
               ) -> float:
    """Set the search text and the order (as the sort menu does, without its own
    refresh) and fire the query as the debounce would; returns when it fired."""
    column.search.setText(term)
    column._debounce.stop()
    column.vip_first, column.sort = vip_first, sort
    started = time.perf_counter()
    column.query_changed.emit()
    return started


def bench_search(app: Any, window: Any
                 ) -> list[tuple[str, float, float | None, int, float, float]]:
    """Per term: (term, first page applied s, all applied s (None: the first page was all),
    hits, SQL-only s for the first page, SQL-only s for all ids); the SQL alone runs with
    the worker idle."""
    from ui.main_window import FIRST_PAGE

    out = []
    column = window.column
    for term in SEARCH_TERMS:
        window.service.wait_idle()
        applied: list[float] = []
        window.list_applied.connect(applied.append)
        started = fire_query(column, term)  # measured from the moment the debounce fires
        wait(app, lambda a=applied: bool(a), 30, f"search '{term}'")
        elapsed = time.perf_counter() - started
        if window.model.rowCount() >= FIRST_PAGE:  # a full first page: the rest follows
            wait(app, lambda a=applied: len(a) >= 2, 30, f"all hits for '{term}'")
        everything = applied[-1] if len(applied) > 1 else None
        window.list_applied.disconnect(applied.append)
        hits = window.model.rowCount()
        window.service.wait_idle()
        desk = window.desk
        t = time.perf_counter()
        desk.ticket_ids(window.view, term, limit=FIRST_PAGE)
        sql_page = time.perf_counter() - t
        t = time.perf_counter()
        desk.ticket_ids(window.view, term)
        sql = time.perf_counter() - t
        out.append((term, elapsed, everything, hits, sql_page, sql))
    applied2: list[float] = []
    window.list_applied.connect(applied2.append)
    fire_query(column, "")
    wait(app, lambda: bool(applied2), 30, "clearing the search")
    return out


def bench_orders(app: Any, window: Any, terms: tuple[str, ...]
                 ) -> list[tuple[str, str, float]]:
    """The list's other orders ("VIP first", "Newest tickets", "Waiting longest"):
    seconds from the debounce firing to the first page applied, with no search and
    with ``terms``."""
    column = window.column
    out = []
    for label, vip_first, sort in (("VIP first", True, "updated"),
                                   ("Newest tickets", False, "created"),
                                   ("Waiting longest", False, "waiting")):
        for term in ("", *terms):
            window.service.wait_idle()
            applied: list[float] = []
            window.list_applied.connect(applied.append)
            started = fire_query(column, term, vip_first, sort)
            wait(app, lambda a=applied: bool(a), 30, f"{label} '{term}'")
            out.append((label, term, time.perf_counter() - started))
            window.list_applied.disconnect(applied.append)
            window.service.wait_idle()
            column.vip_first, column.sort = False, "updated"
    return out


TEAM_VIEWS = ("mine", "mentions", "snoozed", "spam", "tag:billing")
OLD_VIEWS = ("open", "unclaimed", "mine", "vip", "pending", "closed", "all")


def bench_views(app: Any, window: Any) -> list[tuple[str, float, float, int]]:
    """Per teamwork view: (view, sidebar pick -> first page applied s, SQL alone for the
    first page s, rows); the SQL alone runs with the worker idle."""
    from ui.main_window import FIRST_PAGE
    from ui.models import TAG_VIEW

    out = []
    for view in TEAM_VIEWS:
        window.service.wait_idle()
        applied: list[float] = []
        window.list_applied.connect(applied.append)
        started = time.perf_counter()
        window.sidebar.select(view) if not view.startswith(TAG_VIEW) else window.set_view(view)
        wait(app, lambda a=applied: bool(a), 30, f"view {view}")
        elapsed = time.perf_counter() - started
        window.list_applied.disconnect(applied.append)
        window.service.wait_idle()
        kw: dict[str, Any] = {"limit": FIRST_PAGE}
        core = view
        if view.startswith(TAG_VIEW):
            core, kw["tags"] = "all", (view[len(TAG_VIEW):],)
        t = time.perf_counter()
        rows = window.desk.ticket_ids(core, **kw)
        out.append((view, elapsed, time.perf_counter() - t, len(rows)))
    return out


def vm_steps(desk: Any, fn: Callable[[Any], Any]) -> int:
    """SQLite virtual-machine steps ``fn(conn)`` costs (counted in hundreds): a figure a
    busy machine does not change, beside the times it does."""
    from helpers import vm_steps as steps_on

    with desk.store.read() as conn:
        return steps_on(conn, fn)


def bench_steps(desk: Any) -> list[tuple[str, int, int]]:
    """(what, steps now, steps of the reference) for the counts and the teamwork views'
    first pages; the reference of a view is the Open view's first page, of the counts the
    seven views the sidebar had before teamwork."""
    from helpdesk.store import queries as q
    from ui.main_window import FIRST_PAGE

    def old_counts(conn: Any) -> None:
        saved = q.VIEWS
        q.VIEWS = OLD_VIEWS  # type: ignore[misc]
        try:
            q.count_views(conn, desk.ticket_query())
        finally:
            q.VIEWS = saved  # type: ignore[misc]

    out = [("every view's count", vm_steps(desk, lambda c: q.count_views(c, desk.ticket_query())),
            vm_steps(desk, old_counts))]
    page = vm_steps(desk, lambda c: q.ticket_ids(c, desk.ticket_query("open"), FIRST_PAGE))
    for view in ("mine", "mentions", "snoozed", "spam", "pending"):
        out.append((f"view '{view}' first page",
                    vm_steps(desk, lambda c, v=view: q.ticket_ids(c, desk.ticket_query(v),
                                                                   FIRST_PAGE)), page))
    return out


def bench_counts(desk: Any, repeat: int = 5) -> tuple[float, float, dict[str, int]]:
    """(every view's count + tag counts, as the sidebar reads them; the seven views the
    sidebar had before teamwork, counted the same way: the reference), medians of
    ``repeat`` runs, and the counts."""
    from helpdesk.store import queries as q

    def timed(fn: Callable[[], Any]) -> float:
        runs = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - t)
        return statistics.median(runs)

    def old_views() -> None:
        saved = q.VIEWS
        q.VIEWS = OLD_VIEWS  # type: ignore[misc]
        try:
            with desk.store.read() as conn:
                q.count_views(conn, desk.ticket_query())
        finally:
            q.VIEWS = saved  # type: ignore[misc]

    counts = dict(desk.status()["counts"])
    counts.update({f"#{k}": v for k, v in list(desk.tag_counts().items())[:3]})
    everything = timed(lambda: (desk.status(), desk.tag_counts()))
    return everything, timed(old_views), counts


def bench_retype(app: Any, window: Any, first: str, second: str) -> tuple[float, bool]:
    """Type ``first`` (a common word), and as soon as its first page shows (its full
    list now being read on the worker) type ``second``: seconds from the second
    debounce firing to its first page applied, and whether the full read was stopped."""
    column = window.column
    window.service.wait_idle()
    applied: list[float] = []
    window.list_applied.connect(applied.append)
    fire_query(column, first)
    wait(app, lambda: bool(applied), 30, f"search '{first}'")
    stopped = window._full_read_cancel is not None
    started = fire_query(column, second)
    wait(app, lambda: column.search_text() == second and window._shown_query is not None
         and window._shown_query[1] == second, 30, f"search '{second}'")
    elapsed = time.perf_counter() - started
    window.list_applied.disconnect(applied.append)
    window.service.wait_idle()
    return elapsed, stopped


# --- 3. stalls during sync ---------------------------------------------------------------

class Heartbeat:
    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.gaps: list[float] = []
        self.last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(self._beat)

    def _beat(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self.last)
        self.last = now

    def start(self) -> None:
        self.gaps = []
        self.last = time.perf_counter()
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        return self.gaps


def run_loop(app: Any, seconds: float, until: Callable[[], bool] | None = None) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    deadline = time.monotonic() + seconds

    def check() -> None:
        if time.monotonic() > deadline or (until is not None and until()):
            loop.quit()

    poll = QTimer()
    poll.timeout.connect(check)
    poll.start(20)
    loop.exec()
    poll.stop()


def bench_sync_stall(app: Any, store: Path, n_sync: int
                     ) -> tuple[list[float], list[float], float, int] | None:
    from mailgen import generate
    from servers import start_dovecot

    from helpdesk.desk import Desk
    from ui.app import settle_heap
    from ui.main_window import MainWindow
    from ui.worker import DeskService

    progress(f"starting Dovecot and filling it with {n_sync:,} messages")
    server = start_dovecot()
    try:
        with server.session() as c:
            for raw in generate(n_sync, seed=11, start=datetime(2031, 1, 1).astimezone()):
                c.append("INBOX", raw)
        desk = Desk(profile_for(store, server))
        service = DeskService(desk)
        window = MainWindow(service, persist=False)
        window.resize(1440, 900)
        window.show()
        window.sidebar.select("all")
        wait(app, lambda: window.view == "all" and window.model.rowCount() > 0, 30, "the list")
        run_loop(app, 1.0)
        settle_heap()

        beat = Heartbeat()
        beat.start()
        run_loop(app, 3.0)
        idle = beat.stop()

        statuses: list[Any] = []
        service.sync_status.connect(statuses.append)
        before = desk.status()["messages"]
        progress("background sync running; measuring main-thread gaps")
        beat.start()
        started = time.perf_counter()
        service.start_sync()
        run_loop(app, 300, lambda: bool(statuses))
        sync_s = time.perf_counter() - started
        run_loop(app, 2.0)  # the UI catches up: list, counts, rows
        busy = beat.stop()
        after = desk.status()["messages"]
        if not statuses or not statuses[0].ok:
            PROBLEMS.append(f"sync did not finish cleanly: {statuses[:1]}")
        if after - before != n_sync:
            PROBLEMS.append(f"expected {n_sync} new messages in the store, got {after - before}")
        window.close()
        service.stop()
        desk.close()
        return idle, busy, sync_s, after - before
    finally:
        server.stop()


def gap_summary(gaps: list[float]) -> str:
    if not gaps:
        return "no beats"
    ordered = sorted(gaps)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    over = sum(1 for g in gaps if g > TARGET_STALL_S)
    return (f"{len(gaps)} beats, median {ms(statistics.median(gaps))}, p99 {ms(p99)}, "
            f"max {ms(max(gaps))}, {over} over {ms(TARGET_STALL_S)}")


# --- main ---------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--sync", type=int, default=2_000, help="messages for the sync stall")
    parser.add_argument("--skip-sync", action="store_true")
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    from ui import style

    app = QApplication(sys.argv[:1])
    style.apply(app)
    work = Path(tempfile.mkdtemp(prefix="helpdesk-uibench-"))
    store = work / "desk.sqlite3"
    progress(f"building a store with {args.tickets:,} tickets")
    build_s = build_store(store, args.tickets)
    progress(f"store built in {build_s:.1f} s")

    probe = FirstPaint()
    bare = bench_bare_table(app, args.tickets)
    launch, window, service = bench_launch(app, store, probe)
    run_loop(app, 1.0)
    service.wait_idle()
    start_view = window.view
    t = time.perf_counter()
    start_ids = window.desk.ticket_ids(start_view)
    sql_start = time.perf_counter() - t
    searches = bench_search(app, window)
    retype = bench_retype(app, window, SEARCH_TERMS[0], SEARCH_TERMS[1])
    orders = bench_orders(app, window, SEARCH_TERMS[:1])
    views = bench_views(app, window)
    counts_s, old_counts_s, counts = bench_counts(window.desk)
    steps = bench_steps(window.desk)
    window.close()
    service.stop()
    service.desk.close()
    cold = None if args.skip_cold else bench_cold_launch(store)
    stall = None if args.skip_sync else bench_sync_stall(app, store, args.sync)

    print()
    print(f"UI benchmark: {args.tickets:,} tickets (store built in {build_s:.1f} s), "
          f"platform {app.platformName()}, Python {sys.version.split()[0]}")
    print("-" * 100)
    rows: list[tuple[str, str, str]] = []
    rows.append(("launch -> interactive list (desk open, window built and shown, "
                 "first rows painted)", ms(launch),
                 f"target < {ms(TARGET_LAUNCH_S)}: {verdict(launch, TARGET_LAUNCH_S)}"))
    if cold is not None:
        rows.append(("  same from a cold process (python start, imports, QApplication)",
                     ms(cold), f"target < {ms(TARGET_LAUNCH_S)}: "
                     f"{verdict(cold, TARGET_LAUNCH_S)}"))
        if COLD_PARTS:
            rows.append(("    of which: interpreter start / Qt + imports + style / "
                         "desk -> painted",
                         f"{ms(COLD_PARTS['interpreter'])} / {ms(COLD_PARTS['imports'])} / "
                         f"{ms(COLD_PARTS['launch'])}", ""))
    rows.append((f"  reference: bare QTableView, {args.tickets:,}-row in-memory model, "
                 "show -> painted", ms(bare), ""))
    rows.append((f"  reference: SQL ticket_ids('{start_view}') alone "
                 f"({len(start_ids):,} ids)", ms(sql_start), ""))
    applied = [s[1] for s in searches]
    worst = max(applied)
    rows.append(("search applied (debounce fired -> worker query -> model reset), worst",
                 ms(worst), f"target < {ms(TARGET_SEARCH_S)}: "
                 f"{verdict(worst, TARGET_SEARCH_S)}"))
    for term, elapsed, everything, hits, sql_page, sql in searches:
        rows.append((f"  '{term}': {hits:,} hits, first page (SQL alone {ms(sql_page)})",
                     ms(elapsed), ""))
        if everything is not None:
            rows.append((f"    all {hits:,} hits applied (SQL alone {ms(sql)})", ms(everything),
                         ""))
    for label, term, elapsed in orders:
        rows.append((f"  order '{label}': {repr(term) if term else 'no search'}, first page",
                     ms(elapsed), f"target < {ms(TARGET_SEARCH_S)}: "
                     f"{verdict(elapsed, TARGET_SEARCH_S)}"))
    retyped, stopped = retype
    rows.append((f"  '{SEARCH_TERMS[1]}' typed while the full list of '{SEARCH_TERMS[0]}' is "
                 "read", ms(retyped), f"target < {ms(TARGET_SEARCH_S)}: "
                 f"{verdict(retyped, TARGET_SEARCH_S)}"
                 + ("; typed while that read ran" if stopped else "")))
    for view, elapsed, sql_page, n_rows in views:
        rows.append((f"  view '{view}': {n_rows:,} rows on the first page (SQL alone "
                     f"{ms(sql_page)})", ms(elapsed), f"target < {ms(TARGET_SEARCH_S)}: "
                     f"{verdict(elapsed, TARGET_SEARCH_S)}"))
    rows.append(("live counts: every view + tag counts (status + tag_counts), median",
                 ms(counts_s), ", ".join(f"{k} {v:,}" for k, v in counts.items()
                                         if k in ("mine", "mentions", "snoozed", "spam")
                                         or k.startswith("#"))))
    rows.append((f"  reference: the {len(OLD_VIEWS)} views before teamwork, same count query",
                 ms(old_counts_s), ""))
    for what, now_steps, ref_steps in steps:
        rows.append((f"SQLite VM steps: {what} (reference: "
                     f"{'the 7 views before teamwork' if 'count' in what else 'Open, first page'}"
                     f" {ref_steps:,})", f"{now_steps:,}", ""))
    if stall is not None:
        idle, busy, sync_s, n_new = stall
        longest = max(busy) - HEARTBEAT_MS / 1000 if busy else float("inf")
        rows.append((f"longest main-thread stall during a background sync of {n_new:,} "
                     "messages", ms(longest), f"target <= {ms(TARGET_STALL_S)}: "
                     f"{verdict(longest, TARGET_STALL_S + 1e-9)}"))
        rows.append(("  heartbeat during sync + UI refresh", gap_summary(busy), ""))
        rows.append(("  reference: same heartbeat, idle", gap_summary(idle), ""))
        rows.append(("  sync pass (start -> first status)", ms(sync_s), ""))
    width = max(len(r[0]) for r in rows) + 2
    for label, value, note in rows:
        print(f"{label:<{width}} {value:>10}   {note}")
    try:
        print(f"load average: {os.getloadavg()[0]:.2f} (figures mean most on an idle machine)")
    except OSError:
        pass
    for p in PROBLEMS:
        print("PROBLEM:", p)
    return 1 if PROBLEMS else 0


if __name__ == "__main__":
    sys.exit(main())
