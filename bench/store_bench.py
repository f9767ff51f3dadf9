#!/usr/bin/env python
"""Store damage-check benchmark: what finding a damaged store costs (not a test).

Builds a store of N messages the real way (a private Dovecot filled with generated
mail, then ``Desk.sync_once``), or takes an existing one with ``--db``, and prints,
measured in this run:

* the file size;
* ``open_store`` (migrations already done, so: the engine plus the open-time check,
  which is SQLite's whole quick check up to ``FULL_CHECK_BYTES``, else the small
  tables of ``CHECKED_AT_OPEN`` only);
* ``PRAGMA quick_check(1)`` of the whole file (what ``sync`` runs first), and of the
  small tables only, with a warm page cache (median of 5) and, when this process may
  write ``/proc/sys/vm/drop_caches`` (root), with a cold one;
* for reference, the wall time of ``main.py status`` (a whole CLI process).

Usage (from the repo root)::

    python bench/store_bench.py               # N = 20,000 (about 1.5 min)
    python bench/store_bench.py --n 100000    # the scale run (filling takes minutes)
    python bench/store_bench.py --db FILE     # an existing store (open_store may upgrade it)

The decision it informs (helpdesk/store/engine.py): a whole check costs ~0.9 ms per MB
warm and ~10 ms per MB from a cold cache (0.29 s and 3.6 s for 100,000 messages, 340 MB),
so it runs at open only for small stores, and always before ``sync``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
for _p in (str(ROOT), str(TESTS), str(ROOT / "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import benchlib  # noqa: E402
from benchlib import progress  # noqa: E402

from helpdesk.store import engine  # noqa: E402

DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def can_drop_caches() -> bool:
    return os.geteuid() == 0 and os.access(DROP_CACHES, os.W_OK)


def drop_caches() -> None:
    os.sync()
    DROP_CACHES.write_text("3\n")


def warm(fn: Callable[[], Any], rounds: int = 5) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cold(fn: Callable[[], Any]) -> float | None:
    if not can_drop_caches():
        return None
    drop_caches()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "n/a (needs root)"
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def build(workdir: Path, n: int, seed: int) -> tuple[Path, Path]:
    from servers import start_dovecot
    from sync_bench import fill, write_profile

    from helpdesk.config import load_profile
    from helpdesk.desk import Desk

    server = start_dovecot()
    try:
        progress(f"filling INBOX with {n} messages")
        fill(server, n, seed)
        cfg = write_profile(server, workdir, "store")
        progress("syncing into a fresh store")
        desk = Desk(load_profile(cfg))
        desk.sync_once()
        desk.close()
    finally:
        server.stop()
    return workdir / "store.sqlite3", cfg


def measure(db: Path, cfg: Path | None) -> list[tuple[str, str, str]]:
    import sqlite3

    def check(pragmas: list[str]) -> Callable[[], None]:
        def run() -> None:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                for p in pragmas:
                    verdict = con.execute(p).fetchone()[0]
                    assert verdict == "ok", verdict
            finally:
                con.close()
        return run

    whole = check(["PRAGMA quick_check(1)"])
    tables = check([f"PRAGMA quick_check({t})" for t in engine.CHECKED_AT_OPEN])

    def opened() -> None:
        engine.open_store(db).close()

    size = db.stat().st_size
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    messages = con.execute("SELECT count(*) FROM messages").fetchone()[0]
    con.close()
    rows = [("store", f"{size / 2**20:.0f} MB", f"{messages} messages, "
             f"FULL_CHECK_BYTES = {engine.FULL_CHECK_BYTES / 2**20:.0f} MB")]
    progress("timing the checks")
    rows.append(("open_store (with its check)", fmt(warm(opened)), f"cold {fmt(cold(opened))}"))
    w = warm(whole)
    rows.append(("quick_check, whole file", fmt(w),
                 f"cold {fmt(cold(whole))}; {w * 1000 / (size / 2**20):.2f} ms/MB warm"))
    rows.append((f"quick_check of {', '.join(engine.CHECKED_AT_OPEN)}", fmt(warm(tables)),
                 f"cold {fmt(cold(tables))}"))
    if cfg is not None:
        def status() -> None:
            subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(cfg),
                            "status"], check=True, capture_output=True)
        rows.append(("reference: main.py status", fmt(warm(status, 3)), "whole process, warm"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", type=Path, help="measure this store instead of building one")
    parser.add_argument("--keep", action="store_true", help="keep the built store")
    args = parser.parse_args(argv)
    if args.db is not None:
        rows = measure(args.db, None)
    else:
        with benchlib.workspace(args.keep, "helpdesk-store-bench-") as work:
            db, cfg = build(work, args.n, args.seed)
            rows = measure(db, cfg)
    width = max(len(r[0]) for r in rows)
    for label, value, note in rows:
        print(f"{label:<{width}}  {value:>16}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
