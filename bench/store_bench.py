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
    python bench/store_bench.py --store-cost 40000   # per-message store cost as it grows

``--store-cost N`` measures something else, without a server: N generated messages (2,000
from tests/mailgen.py, copied with renamed ids) stored through ``MailSync._store_batch``
into a fresh store, 200 a transaction (the reference: how new mail is stored) and 1,000
(how older mail is back-filled), printing the CPU time per message (and its COMMIT
share, and wall time) at 10%, 50% and 100% of the run.

The decision it informs (helpdesk/store/engine.py): a whole check costs ~0.9 ms per MB
warm and ~10 ms per MB from a cold cache (0.29 s and 3.6 s for 100,000 messages, 340 MB),
so it runs at open only for small stores, and always before ``sync``.
"""

from __future__ import annotations

import argparse
import os
import re
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


# --------------------------------------------------------------- store cost ---

_ID_HEADERS = re.compile(rb"^(Message-ID|References|In-Reply-To):[^\n]*(\n[ \t][^\n]*)*",
                         re.M | re.I)
TEMPLATES = 2000


def _variant(raw: bytes, k: int) -> bytes:
    """Copy ``k`` of a generated message: its ids (and those it refers to) renamed, so every
    copy is a new message of a new thread with realistic text, and a random dedup key."""
    if k == 0:
        return raw
    tag = b"<c%d." % k
    return _ID_HEADERS.sub(lambda m: m.group(0).replace(b"<", tag), raw)


def store_cost(n: int, per_txn: int, seed: int) -> tuple[list[tuple[int, float, float, float]],
                                                         float]:
    """Store ``n`` messages into a fresh store through ``MailSync._store_batch``, ``per_txn``
    a transaction; per transaction (messages, CPU s, wall s, CPU s of the COMMIT).
    Parsing is outside the timing. Returns those and the store's size in MB."""
    import contextlib
    import tempfile
    from datetime import datetime

    from helpers import make_profile
    from mailgen import generate

    from helpdesk.mail.parse import parse_message
    from helpdesk.mail.sync import LAST_UID_UP, IncomingMessage, MailSync

    class NoServer:
        host, port, users = "localhost", 1, {"bench": "bench"}

    templates = list(generate(TEMPLATES, seed=seed))
    with tempfile.TemporaryDirectory(prefix="helpdesk-store-cost-") as tmp:
        work = Path(tmp)
        store = engine.open_store(work / "cost.sqlite3")
        mail = MailSync(store, make_profile(NoServer, work))
        commits: list[float] = []
        real_begin = store.begin

        @contextlib.contextmanager
        def begin() -> Any:
            with contextlib.ExitStack() as stack:
                conn = stack.enter_context(real_begin())
                yield conn
                c0 = time.thread_time()
                stack.close()  # the COMMIT
                commits.append(time.thread_time() - c0)

        store.begin = begin  # type: ignore[method-assign]
        with store.begin() as conn:
            conn.exec_driver_sql("INSERT INTO folders (name, role, uidvalidity, last_uid) "
                                 "VALUES ('INBOX', 'inbox', 1, 0)")
        out: list[tuple[int, float, float, float]] = []
        for start in range(0, n, per_txn):
            msgs = [IncomingMessage(i + 1, _variant(templates[i % TEMPLATES], i // TEMPLATES),
                                    datetime(2026, 1, 1)) for i in range(start,
                                                                         min(n, start + per_txn))]
            parsed = [parse_message(m.raw) for m in msgs]
            c0, w0 = time.thread_time(), time.perf_counter()
            mail._store_batch(1, 1, "inbox", msgs, parsed, LAST_UID_UP, msgs[-1].uid)
            out.append((len(msgs), time.thread_time() - c0, time.perf_counter() - w0,
                        commits[-1]))
            if len(out) % max(1, 5000 // per_txn) == 0:
                progress(f"  {start + len(msgs)}/{n} stored ({per_txn} a transaction)")
        size = (work / "cost.sqlite3").stat().st_size / 2**20
        store.close()
    return out, size


def cost_rows(n: int, seed: int) -> list[tuple[str, str, str]]:
    from helpdesk.mail.backfill import STORE_BATCHES

    rows = []
    for label, per_txn in ((f"store cost, {200}-message transactions", 200),
                           (f"store cost, {STORE_BATCHES * 200}-message transactions",
                            STORE_BATCHES * 200)):
        progress(f"{label} ...")
        costs, size = store_cost(n, per_txn, seed)

        def at(fraction: float, col: int, costs: list[tuple[int, float, float, float]] = costs
               ) -> float:
            # The transactions holding the 5% of messages that end at ``fraction``.
            total = sum(c[0] for c in costs)
            done, picked = 0, []
            for c in costs:
                done += c[0]
                if total * (fraction - 0.05) < done <= total * fraction + c[0] - 1:
                    picked.append(c)
            return sum(c[col] for c in picked) / max(1, sum(c[0] for c in picked)) * 1e6

        marks = (0.1, 0.5, 1.0)
        note = ("reference: as new mail is stored (batch_size)" if per_txn == 200
                else "as older mail is back-filled now (helpdesk/mail/backfill.py)")
        rows.append((label, "/".join(f"{at(f, 1):.0f}" for f in marks) + " us",
                     f"CPU per message at 10/50/100% of {n} (5% windows); of which COMMIT "
                     + "/".join(f"{at(f, 3):.0f}" for f in marks) + "; wall "
                     + "/".join(f"{at(f, 2):.0f}" for f in marks) + f" us; {note}; "
                     f"{size:.0f} MB"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", type=Path, help="measure this store instead of building one")
    parser.add_argument("--keep", action="store_true", help="keep the built store")
    parser.add_argument("--store-cost", type=int, metavar="N",
                        help="instead: the per-message cost of storing N messages as the "
                             "store grows, 200 and 1,000 a transaction (no server)")
    args = parser.parse_args(argv)
    if args.store_cost:
        rows = cost_rows(args.store_cost, args.seed)
    elif args.db is not None:
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
