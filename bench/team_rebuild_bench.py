#!/usr/bin/env python
"""Team-log rebuild and refold benchmark (issue 11): how long an atomic rebuild takes,
how long it holds SQLite's write lock, what it costs in memory, and whether a reader
ever sees team state empty.

Starts a private Dovecot, fills the team log with N valid events (the realistic mix of
``team_bench.py``), lets a new desk replay it, then measures, in one run:

1. first replay of a new desk (the reference: incremental, one transaction per window);
2. rebuild after a UIDVALIDITY change of the log: the whole log is staged in a temporary
   table, then team state is replaced in ONE transaction (the write lock is held only for
   that fold); a reader thread polls team state throughout;
3. refold after an upgrade: a store folded by an "old build" (no ``note`` handler) is
   folded again from its own events when the current build opens it (no server reads);
4. peak memory: RSS above the baseline (sampled every 20 ms) during 2 and 3, and the
   peak of Python allocations (tracemalloc) over a second rebuild.

Usage (from the repo root)::

    python bench/team_rebuild_bench.py --quick      # 10,000 events
    python bench/team_rebuild_bench.py              # 100,000 events

Targets: a reader never sees team state empty (exit status 1 if it does, or if the
rebuilt state differs from the replayed one); memory flat in N (the staged log lives in
SQLite's temporary store, not in Python).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import benchlib  # noqa: E402
import psutil  # noqa: E402
import team_bench  # noqa: E402
from benchlib import progress  # noqa: E402

from helpdesk.desk import Desk  # noqa: E402
from helpdesk.team.log import TeamLog  # noqa: E402

LOG = "HelpDesk/Log"
STATE_SQL = ("SELECT (SELECT count(*) FROM ticket_state), (SELECT count(*) FROM customers "
             "WHERE vip_stamp > 0 OR white_glove_stamp > 0), (SELECT count(*) FROM notes), "
             "(SELECT count(*) FROM team_events)")


class Sampler(threading.Thread):
    """Polls team state (one statement: one snapshot) and this process's RSS."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.states: list[tuple[int, ...]] = []
        self.peak_rss = 0
        self.halt = threading.Event()

    def run(self) -> None:
        proc = psutil.Process()
        con = sqlite3.connect(self.db, timeout=30)
        try:
            while not self.halt.wait(0.02):
                self.states.append(tuple(con.execute(STATE_SQL).fetchone()))
                self.peak_rss = max(self.peak_rss, proc.memory_info().rss)
        finally:
            con.close()

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=30)


def tables(db: Path, stamps: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    """Team state table by table; ``stamps=False`` leaves out the log UIDs registers are
    stamped with (a UIDVALIDITY change renumbers the log, so those change)."""
    con = sqlite3.connect(db)
    try:
        out = {}
        for t in ("ticket_state", "customers", "notes", "templates", "cards",
                  "card_customers", "card_notified", "scores", "surveys", "cared"):
            cur = con.execute(f"SELECT * FROM {t} ORDER BY 1")
            keep = [i for i, d in enumerate(cur.description)
                    if stamps or not d[0].endswith("stamp")]
            out[t] = [tuple(row[i] for i in keep) for row in cur.fetchall()]
        return out
    finally:
        con.close()


def timed_folds(desk: Desk) -> list[float]:
    """Durations of every _fold_messages call (each runs inside a write transaction)."""
    spans: list[float] = []
    original = desk.team._fold_messages

    def fold(*a: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*a)
        finally:
            spans.append(time.perf_counter() - t0)

    desk.team._fold_messages = fold  # type: ignore[method-assign]
    return spans


def renumber(server: Any, items: list[dict[str, Any]]) -> None:
    """The log with a new UIDVALIDITY and the same events (same bytes and INTERNALDATEs),
    as after a server rebuilt the folder. (tests/servers.py's reset_uidvalidity fetches
    every message in one command, too long a command at 100,000.)"""
    old = server.uidvalidity(LOG)
    with server.session() as c:
        c.delete_folder(LOG)
        c.create_folder(LOG)
    if server.uidvalidity(LOG) <= old:
        server._doveadm("mailbox", "update", "--uid-validity", str(old + 1), LOG)
    team_bench.fill_log(server, items, 1)


def watched(label: str, desk: Desk, fn: Any) -> tuple[float, Sampler, float]:
    base = psutil.Process().memory_info().rss
    sampler = Sampler(desk.profile.database)
    sampler.start()
    seconds, _ = benchlib.timed(label, fn, team_bench.ms)
    sampler.stop()
    return seconds, sampler, max(0, sampler.peak_rss - base) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 events")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    n = args.events or (10_000 if args.quick else 100_000)
    from helpers import make_profile
    from servers import start_dovecot

    problems: list[str] = []
    rows: list[tuple[str, str, str]] = []
    with benchlib.workspace(args.keep) as work:
        server = start_dovecot()
        try:
            server.create_folder(LOG)
            items = team_bench.make_events(n, seed=7)
            fill = team_bench.fill_log(server, items, 1)  # one connection: items' order
            progress(f"log holds {team_bench.log_count(server)} events (filled in {fill:.1f} s)")

            desk = Desk(make_profile(server, work, "agent-new", db_name="a.sqlite3"))
            first, _ = benchlib.timed("new desk: first replay", desk.sync_once, team_bench.ms)
            replayed = tables(desk.profile.database, stamps=False)
            rows.append(("first replay (new desk)", team_bench.ms(first),
                         f"{n / first:,.0f} events/s, incremental"))

            benchlib.timed("new UIDVALIDITY, same events", lambda: renumber(server, items),
                           team_bench.ms)
            spans = timed_folds(desk)
            seconds, sampler, rss = watched("rebuild after UIDVALIDITY change", desk,
                                            desk.sync_once)
            empty = [s for s in sampler.states if s[0] == 0 or s[3] == 0]
            rows.append(("rebuild (UIDVALIDITY change)", team_bench.ms(seconds),
                         f"staging + one fold transaction; {len(sampler.states)} reader "
                         f"samples, {len(empty)} empty"))
            rows.append(("  write lock held (the fold)", team_bench.ms(max(spans)),
                         "reset + fold of every staged message, one transaction"))
            rows.append(("  peak RSS above baseline", f"{rss:.1f} MB", "sampled every 20 ms"))
            if empty:
                problems.append(f"a reader saw empty team state {len(empty)} times")
            if tables(desk.profile.database, stamps=False) != replayed:
                problems.append("the rebuilt state differs from the replayed one")
            rebuilt = tables(desk.profile.database)
            renumber(server, items)
            tracemalloc.start()
            benchlib.timed("rebuild again, under tracemalloc", desk.sync_once, team_bench.ms)
            peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
            rows.append(("  peak Python allocations", f"{peak:.1f} MB",
                         "tracemalloc over a second rebuild (the staged log is in SQLite's "
                         "temporary store)"))
            rebuilt = tables(desk.profile.database)

            old = Desk(make_profile(server, work, "agent-old", db_name="old.sqlite3"))
            old.team = TeamLog(old.store, LOG, old.team.registry.without("note"))
            folded, _ = benchlib.timed("old build (no note handler): first replay",
                                       old.sync_once, team_bench.ms)
            old.close()
            new = Desk(old.profile)
            spans = timed_folds(new)
            seconds, sampler, rss = watched("refold by the current build", new,
                                            new.sync_once)
            empty = [s for s in sampler.states if s[0] == 0 or s[3] == 0]
            rows.append(("old build's replay", team_bench.ms(folded), "notes kept, not folded"))
            rows.append(("refold on upgrade (local)", team_bench.ms(seconds),
                         f"sync_once: refold from the store + a no-change replay; "
                         f"{len(empty)} empty of {len(sampler.states)} reader samples"))
            rows.append(("  write lock held (the fold)", team_bench.ms(max(spans)),
                         "reset + fold of every stored event, one transaction"))
            rows.append(("  peak RSS above baseline", f"{rss:.1f} MB", "sampled every 20 ms"))
            if empty:
                problems.append(f"a reader saw empty team state {len(empty)} times (refold)")
            if tables(new.profile.database) != rebuilt:
                problems.append("the refolded state differs from a desk that always "
                                "understood every event")
            new.close()
            desk.close()
        finally:
            server.stop()
    print(f"\nteam log rebuilds, {n:,} events, {psutil.cpu_count()} CPUs, load "
          f"{psutil.getloadavg()[0]:.1f}")
    width = max(len(r[0]) for r in rows) + 2
    for name, value, note in rows:
        print(f"{name:<{width}}{value:>12}   {note}")
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
