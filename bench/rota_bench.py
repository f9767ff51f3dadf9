#!/usr/bin/env python
"""Rota and digest benchmark: what they add to a sync pass and to the digest view (not a test).

Builds a store of N tickets (bench/ui_bench.py's generator: one message each, 60 %
waiting, 30 % closed, 5 % claimed), switches the rota's hand-off on (as folded from the
log) and prints, measured in this run, median of 5 with a warm cache:

* ``due_handoffs``: the query every sync pass runs while the hand-off is on, (a) with
  the setting made long ago (every unclaimed ticket in range: the worst case) and (b)
  made an hour ago (the usual: only new tickets);
* ``digest.build``: last week's digest (cards, NPS and its trend, cared rate, oldest
  waiting, five conversations), what the digest view and the weekly mail compute;
* for reference, the same run's ``count_views`` (the sidebar's counts, which the window
  already recomputes after every pass) and ``metrics.compute`` for one week.

Usage (from the repo root)::

    python bench/rota_bench.py             # N = 20,000
    python bench/rota_bench.py --n 100000
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import benchlib  # noqa: E402
from benchlib import progress  # noqa: E402
from ui_bench import build_store  # noqa: E402

from helpdesk.clock import utcnow  # noqa: E402
from helpdesk.config import ImapSettings, Profile  # noqa: E402
from helpdesk.desk import Desk  # noqa: E402
from helpdesk.rota.handoff import due_handoffs  # noqa: E402
from helpdesk.store import queries as q  # noqa: E402
from helpdesk.store.engine import db_time  # noqa: E402


def warm(fn: Callable[[], Any], rounds: int = 5) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    with benchlib.workspace(args.keep, "helpdesk-rota-bench-") as work:
        db = work / "bench.sqlite3"
        progress(f"building a store of {args.n:,} tickets")
        build_store(db, args.n)
        now = utcnow()
        long_ago, recently = now - timedelta(days=400), now - timedelta(hours=1)
        profile = Profile(agent="agent-a", database=db,
                          imap=ImapSettings(host="127.0.0.1", port=1, security="plain",
                                            username="x", password_command="echo x"))
        desk = Desk(profile)
        try:
            with desk.store.begin() as conn:
                rota = {"people": ["agent-a", "agent-b"], "days": 1,
                        "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                        "start": "2026-01-01", "timezone": "Europe/Berlin", "covers": {},
                        "handoff_minutes": 15, "handoff_since": db_time(long_ago), "uid": 1}
                desk.store.set_meta("team.rota", json.dumps(rota), conn)

            def due(since: Any) -> Callable[[], Any]:
                def run() -> Any:
                    with desk.store.read() as conn:
                        return due_handoffs(conn, now, 15, since)
                return run

            def counts() -> Any:
                with desk.store.read() as conn:
                    return q.count_views(conn, desk.book.ticket_query())

            week = desk.digest.period()
            rows = [
                ("due_handoffs, setting made long ago (worst)", warm(due(long_ago)),
                 len(due(long_ago)())),
                ("due_handoffs, setting made an hour ago", warm(due(recently)),
                 len(due(recently)())),
                ("digest.build (last week)", warm(lambda: desk.digest.build(week)),
                 len(desk.digest.build(week)["conversations"])),
                ("reference: count_views (after every pass)", warm(counts), None),
                ("reference: metrics.compute, one week",
                 warm(lambda: desk.metrics.compute(week.since, week.until)), None),
            ]
        finally:
            desk.close()
    print(f"\nRota and digest, {args.n:,} tickets (median of 5, warm cache)")
    for label, seconds, found in rows:
        extra = "" if found is None else f"   ({found} found)"
        print(f"  {label:<46} {ms(seconds)}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
