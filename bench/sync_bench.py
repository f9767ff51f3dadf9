#!/usr/bin/env python
"""Sync benchmark: helpdesk's IMAP sync against a private Dovecot (not a test).

Starts a private Dovecot (tests/servers.py), fills INBOX with N generated
realistic messages (tests/mailgen.py: plain/HTML mix, ~30% attachments, ~40%
replies, non-ASCII names and subjects) and prints, all measured in this run:

* fill time (parallel MULTIAPPEND, generator in a separate process);
* a plain imapclient ``UID FETCH BODY.PEEK[]`` of every message (the floor);
* mbsync mirroring the same mailbox to a Maildir (the reference: C, only copies),
  with ``FSync no`` (the reference) and with its default ``FSync yes``;
* helpdesk's initial sync in this process (``Desk.sync_once``, store already
  opened, so no interpreter start or migrations) -> msg/s and ratio to mbsync;
* helpdesk's CLI ``main.py sync --once`` into a second, fresh store: process
  wall time (fair against mbsync's process time) and peak RSS (VmHWM at exit);
* the no-change re-sync: ``Desk.sync_once()`` on the session's already logged-in
  connection (the sync work alone) and ``Desk.sync_once`` (with login);
* new mail -> local store latency with the IDLE push loop (median of trials).

Usage (from the repo root)::

    python bench/sync_bench.py                 # N = 2,000
    python bench/sync_bench.py --n 100000      # scale run (filling takes minutes)
    python bench/sync_bench.py --repeat 3      # best of 3 timed rounds (noisy machine)

Targets (see bench/README.md): initial sync no slower than mbsync; no-change
re-sync < 50 ms of sync work at 100,000 messages; peak RSS of the 100,000-message
initial sync < 250 MB and flat in N; new mail in the store < 1 s after arrival.
Nothing is cached across runs: every run starts a new server and new stores.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
for _p in (str(ROOT), str(TESTS)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import benchlib  # noqa: E402
import imapclient  # noqa: E402
from benchlib import progress  # noqa: E402
from sqlalchemy import text  # noqa: E402

from helpdesk.desk import Desk  # noqa: E402

FOLDER = "INBOX"
APPEND_CHUNK = 100  # messages per MULTIAPPEND command
APPEND_THREADS = 4  # parallel APPEND connections
FETCH_CHUNK = 500  # UIDs per FETCH for the plain-imapclient floor
IDLE_TRIALS = 5
RESYNC_TRIALS = 7

TARGET_RESYNC_MS = 50.0
TARGET_RSS_MB = 250.0
TARGET_PUSH_S = 1.0


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


@dataclass
class Row:
    label: str
    value: str
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, label: str, value: str, note: str = "") -> None:
        self.rows.append(Row(label, value, note))

    def problem(self, message: str) -> None:
        self.problems.append(message)
        progress("PROBLEM: " + message)

    def print(self) -> None:
        width = max(len(r.label) for r in self.rows) + 2
        vwidth = max(len(r.value) for r in self.rows) + 2
        for r in self.rows:
            print(f"{r.label:<{width}}{r.value:<{vwidth}}{r.note}".rstrip())
        for p in self.problems:
            print(f"PROBLEM: {p}")
        sys.stdout.flush()


# --------------------------------------------------------------------- fill ---


def _produce(n: int, seed: int, out: Any, chunk: int, consumers: int) -> None:
    """Child process: generate messages in order, ship them in chunks."""
    sys.path.insert(0, str(TESTS))
    from mailgen import generate

    batch: list[bytes] = []
    for raw in generate(n, seed=seed):
        batch.append(raw)
        if len(batch) >= chunk:
            out.put(batch)
            batch = []
    if batch:
        out.put(batch)
    for _ in range(consumers):
        out.put(None)


def fill(server: Any, n: int, seed: int) -> tuple[float, int]:
    """APPEND ``n`` generated messages to INBOX; returns (seconds, bytes)."""
    ctx = mp.get_context("spawn")
    chunks: Any = ctx.Queue(maxsize=APPEND_THREADS * 4)
    producer = ctx.Process(target=_produce, args=(n, seed, chunks, APPEND_CHUNK, APPEND_THREADS),
                           daemon=True)
    done = [0]
    total_bytes = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def append_worker() -> None:
        try:
            with server.session() as c:
                multi = c.has_capability("MULTIAPPEND")
                while True:
                    batch = chunks.get()
                    if batch is None:
                        return
                    if multi:
                        c.multiappend(FOLDER, batch)
                    else:
                        for raw in batch:
                            c.append(FOLDER, raw)
                    with lock:
                        done[0] += len(batch)
                        total_bytes[0] += sum(len(b) for b in batch)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    t0 = time.perf_counter()
    producer.start()
    workers = [threading.Thread(target=append_worker, daemon=True) for _ in range(APPEND_THREADS)]
    for w in workers:
        w.start()
    last = 0.0
    while any(w.is_alive() for w in workers):
        for w in workers:
            w.join(timeout=0.5)
        if errors:
            producer.kill()
            raise RuntimeError(f"APPEND failed: {errors[0]!r}") from errors[0]
        if producer.exitcode not in (None, 0):
            raise RuntimeError(f"message generator exited with {producer.exitcode}")
        now = time.perf_counter()
        if now - last >= 10:
            last = now
            rate = done[0] / (now - t0)
            progress(f"fill: {done[0]}/{n} messages ({rate:.0f} msg/s)")
    producer.join(timeout=30)
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"APPEND failed: {errors[0]!r}") from errors[0]
    return elapsed, total_bytes[0]


def mailbox_count(server: Any) -> int:
    with server.session() as c:
        return int(c.folder_status(FOLDER, [b"MESSAGES"])[b"MESSAGES"])


# ------------------------------------------------------------------- mbsync ---


def run_mbsync(server: Any, workdir: Path, n: int, report: Report, *,
               fsync: bool, tag: str = "") -> float | None:
    """Mirror INBOX with mbsync into a fresh Maildir; returns process wall time.

    ``fsync=False`` sets ``FSync no`` (our SQLite store does not fsync per message
    either: WAL + synchronous=NORMAL), which makes mbsync CPU-bound rather than
    disk-bound: the stricter and steadier reference.
    """
    exe = shutil.which("mbsync")
    if exe is None:
        report.problem("mbsync not found (apt-get install isync); skipped the reference")
        return None
    user = next(iter(server.users))
    base = workdir / (("mbsync-fsync" if fsync else "mbsync-nofsync") + tag)
    maildir = base / "maildir"
    maildir.mkdir(parents=True)
    home = base / "home"  # no ~/.mbsync state from earlier runs
    home.mkdir()
    rc = base / "mbsyncrc"
    rc.write_text(f"""FSync {"yes" if fsync else "no"}

IMAPAccount bench
Host {server.host}
Port {server.port}
User {user}
Pass "{server.users[user]}"
SSLType None
AuthMechs LOGIN PLAIN

IMAPStore bench-far
Account bench

MaildirStore bench-near
Path {maildir}/
Inbox {maildir}/INBOX

Channel bench
Far :bench-far:
Near :bench-near:
Patterns INBOX
Create Near
Sync Pull
SyncState *
""")
    env = dict(os.environ, HOME=str(home))
    t0 = time.perf_counter()
    proc = subprocess.run([exe, "-c", str(rc), "-a", "-q"], capture_output=True, env=env,
                          check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        report.problem(f"mbsync exited with {proc.returncode}: "
                       f"{proc.stderr.decode(errors='replace').strip()[-500:]}")
    copied = sum(1 for sub in ("cur", "new") for p in (maildir / "INBOX" / sub).glob("*")
                 if p.is_file()) if (maildir / "INBOX").is_dir() else 0
    if copied != n:
        report.problem(f"mbsync copied {copied} files, expected {n}")
        return None
    return elapsed


# -------------------------------------------------------------------- floor ---


def plain_fetch(server: Any) -> tuple[float, int]:
    """Connect, log in, and fetch every full body (``BODY.PEEK[]``) in chunks."""
    t0 = time.perf_counter()
    total = 0
    with server.session() as c:
        # imapclient turns on imaplib's protocol trace, which formats every line read
        # (~3x slower bulk FETCH); helpdesk.mail.imap.connect turns it off too.
        c._imap.debug = 0
        c.select_folder(FOLDER, readonly=True)
        uids = sorted(c.search(["ALL"]))
        for i in range(0, len(uids), FETCH_CHUNK):
            data = c.fetch(uids[i:i + FETCH_CHUNK], [b"BODY.PEEK[]"])
            total += sum(len(item[b"BODY[]"]) for item in data.values())
    return time.perf_counter() - t0, total


# --------------------------------------------------------------- helpdesk ---


def store_count(desk: Desk) -> int:
    with desk.store.read() as conn:
        return int(conn.execute(text("SELECT count(*) FROM messages")).scalar() or 0)


def write_profile(server: Any, workdir: Path, name: str) -> Path:
    """A TOML profile like tests/test_sync.py writes (plain loopback, password_command)."""
    user = next(iter(server.users))
    path = workdir / f"{name}.toml"
    path.write_text("\n".join([
        'agent = "agent-a"',
        f'database = "{workdir / (name + ".sqlite3")}"',
        "[imap]",
        f'host = "{server.host}"',
        f"port = {server.port}",
        'security = "plain"',
        f'username = "{user}"',
        f'password_command = "echo {server.users[user]}"',
    ]) + "\n")
    return path


@dataclass
class CliRun:
    wall: float
    returncode: int
    peak_rss_mb: float  # the CLI process's own VmHWM
    stderr: str
    tree: TreeSampler


def _proc_kb(pid: int, name: str, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class TreeSampler(threading.Thread):
    """Samples the memory of a process and its descendants (the parse workers).

    Spawned workers have their own address spaces, so the CLI's VmHWM alone
    undercounts. Per sample: summed PSS (shared library pages split fairly, Linux
    smaps_rollup) and summed RSS; per process: the highest VmHWM seen.
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pid = pid
        self.interval = interval
        self.stop_event = threading.Event()
        self.pss_mb: list[float] = []  # summed over the tree, one per sample
        self.rss_mb: list[float] = []
        self.hwm_mb: dict[int, float] = {}  # descendants only
        self.kind: dict[int, str] = {}  # descendant pid -> python | tracker | other
        self.available = True

    def run(self) -> None:
        try:
            import psutil
        except ImportError:
            self.available = False
            return
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.stop_event.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            pss = rss = 0
            for proc in procs:
                pss += _proc_kb(proc.pid, "smaps_rollup", "Pss:") or 0
                rss += _proc_kb(proc.pid, "status", "VmRSS:") or 0
                if proc.pid != self.pid:
                    hwm = (_proc_kb(proc.pid, "status", "VmHWM:") or 0) / 1024
                    self.hwm_mb[proc.pid] = max(self.hwm_mb.get(proc.pid, 0.0), hwm)
                    if proc.pid not in self.kind:
                        with contextlib.suppress(psutil.Error):
                            cmd = " ".join(proc.cmdline())
                            self.kind[proc.pid] = ("tracker" if "resource_tracker" in cmd
                                                   else "python" if "python" in cmd
                                                   else "other")
            self.pss_mb.append(pss / 1024)
            self.rss_mb.append(rss / 1024)
            self.stop_event.wait(self.interval)

    def workers(self) -> list[float]:
        """Peak RSS of each Python worker (not multiprocessing's resource tracker, not
        the password command)."""
        return sorted((v for pid, v in self.hwm_mb.items() if self.kind.get(pid) == "python"),
                      reverse=True)

    def others(self) -> float:
        """Peak RSS summed over the remaining descendants (resource tracker, ...)."""
        return sum(v for pid, v in self.hwm_mb.items() if self.kind.get(pid) != "python")


# Runs main.py and, at exit, writes the process's VmHWM (peak RSS of this process image).
# ru_maxrss from wait4 is not usable here: Linux folds the RSS of the forking parent (this
# benchmark, which has just synced N messages itself) into the child's ru_maxrss at exec.
_CLI_WRAPPER = """
import atexit, runpy, sys
out, main = sys.argv[1], sys.argv[2]
def _hwm():
    try:
        with open("/proc/self/status") as status:
            kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return
    with open(out, "w") as f:
        f.write(kb)
atexit.register(_hwm)
sys.argv = sys.argv[2:]
runpy.run_path(main, run_name="__main__")
"""


def run_cli_sync(config: Path, workdir: Path) -> CliRun:
    """``main.py sync --once`` in a child: wall time and the child's own peak RSS."""
    err_path = workdir / "cli-sync.stderr"
    hwm_path = workdir / "cli-sync.vmhwm"
    with open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", _CLI_WRAPPER, str(hwm_path), str(ROOT / "main.py"),
             "--config", str(config), "sync", "--once"],
            stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        tree = TreeSampler(proc.pid)
        tree.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        tree.stop_event.set()
        tree.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        peak = int(hwm_path.read_text()) * 1024 / 1e6
    except (OSError, ValueError):  # no /proc: ru_maxrss (may include this process)
        peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024) / 1e6
    return CliRun(wall, proc.returncode, peak, err_path.read_text(errors="replace"), tree)


@dataclass
class FirstRun:
    """One first launch on a fresh store, timed from ``Desk()`` (store created, migrated)."""

    desk: Desk
    open_s: float  # Desk() with its new store
    first_s: float | None  # until the list's first-page query shows FIRST_TICKETS tickets
    all_s: float  # until sync_once is done (everything, older mail included)
    costs: list[tuple[int, float, float]]  # per stored batch: (messages, CPU s, wall s)


FIRST_TICKETS = 200  # the window's first page (ui/main_window.py FIRST_PAGE)
POLL_S = 0.01


def first_launch(profile: Any) -> FirstRun:
    """A first launch: ``Desk()`` on a fresh store, ``sync_once`` on its worker, and meanwhile
    the window's first-page query (``Desk.ticket_ids("unclaimed", limit=200)``, what
    ui/main_window.py asks first) every 10 ms until it lists 200 tickets. The per-batch
    store cost is the CPU and wall time of ``MailSync._store_batch`` (parsing excluded)."""
    t0 = time.perf_counter()
    desk = Desk(profile)
    open_s = time.perf_counter() - t0
    costs: list[tuple[int, float, float]] = []
    real = desk.mail._store_batch

    def store_batch(*args: Any, **kw: Any) -> Any:
        c0, w0 = time.thread_time(), time.perf_counter()
        result = real(*args, **kw)
        costs.append((len(args[3]), time.thread_time() - c0, time.perf_counter() - w0))
        return result

    desk.mail._store_batch = store_batch  # type: ignore[method-assign]
    failures: list[BaseException] = []
    finished: list[float] = []

    def run() -> None:
        try:
            desk.sync_once()
        except BaseException as exc:
            failures.append(exc)
        finally:
            finished.append(time.perf_counter())

    thread = threading.Thread(target=run, name="first-sync")
    thread.start()
    first_s = None
    while first_s is None and not finished:
        if len(desk.ticket_ids("unclaimed", limit=FIRST_TICKETS)) >= FIRST_TICKETS:
            first_s = time.perf_counter() - t0
            break
        time.sleep(POLL_S)
    thread.join()
    if failures:
        raise failures[0]
    if first_s is None and len(desk.ticket_ids("unclaimed", limit=FIRST_TICKETS)) \
            >= FIRST_TICKETS:
        first_s = finished[0] - t0  # the whole sync was quicker than one poll
    return FirstRun(desk, open_s, first_s, finished[0] - t0, costs)


def cost_at(costs: list[tuple[int, float, float]], fraction: float) -> tuple[float, float]:
    """Median (CPU, wall) microseconds per message of the batches stored around
    ``fraction`` of the run (the five batches ending there)."""
    total = sum(n for n, _c, _w in costs)
    done, end = 0, len(costs)
    for i, (n, _c, _w) in enumerate(costs):
        done += n
        if done >= total * fraction:
            end = i + 1
            break
    window = costs[max(0, end - 5):end]
    return (statistics.median(c / n * 1e6 for n, c, _w in window if n),
            statistics.median(w / n * 1e6 for n, _c, w in window if n))


def measure_resync(desk: Desk) -> tuple[float, float, float]:
    """(first, median) of ``sync_once`` on the session's logged-in sync connection (the
    worker keeps it open between passes), and a pass that logs in first."""
    times = []
    for _ in range(RESYNC_TRIALS):
        t0 = time.perf_counter()
        desk.sync_once()
        times.append(time.perf_counter() - t0)
    desk.session.call(desk.session.syncer.close)  # the next pass connects and logs in
    t0 = time.perf_counter()
    desk.sync_once()
    once = time.perf_counter() - t0
    return times[0], statistics.median(times[1:]), once


class RawIdle(threading.Thread):
    """A bare imapclient IDLE on INBOX recording when each EXISTS arrives (server's share)."""

    def __init__(self, server: Any) -> None:
        super().__init__(name="raw-idle", daemon=True)
        self.server = server
        self.ready = threading.Event()
        self.stop_event = threading.Event()
        self.exists_at: list[float] = []

    def run(self) -> None:
        with self.server.session() as c:
            c.select_folder(FOLDER, readonly=True)
            c.idle()
            self.ready.set()
            try:
                while not self.stop_event.is_set():
                    for r in c.idle_check(timeout=0.1):
                        if isinstance(r, tuple) and len(r) > 1 and r[1] == b"EXISTS":
                            self.exists_at.append(time.perf_counter())
            finally:
                c.idle_done()


def measure_push(server: Any, desk: Desk, seed: int,
                 report: Report) -> tuple[list[float], list[float]] | None:
    """Start the IDLE push loop; time APPEND -> message row visible in the store.

    Returns (our latencies, the server's EXISTS latencies on a bare IDLE connection).
    """
    sys.path.insert(0, str(TESTS))
    from mailgen import generate

    fresh = list(generate(IDLE_TRIALS, seed=seed + 7919))
    loop = desk.push_loop()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            loop.run()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run, name="push-loop", daemon=True)
    thread.start()
    raw_idle = RawIdle(server)
    raw_idle.start()
    latencies: list[float] = []
    server_side: list[float] = []
    try:
        if not raw_idle.ready.wait(30):
            report.problem("bare IDLE connection not ready after 30 s")
            return None
        deadline = time.monotonic() + 60
        while not (loop.watchers and all(w.ready.is_set() for w in loop.watchers)):
            if time.monotonic() > deadline or failures:
                report.problem(f"IDLE watchers not ready after 60 s ({failures or 'no error'})")
                return None
            time.sleep(0.005)
        if any(w.unsupported for w in loop.watchers):
            report.problem("server reported no IDLE capability; push latency not measured")
            return None
        time.sleep(0.3)  # let the first (no-change) pass settle
        for raw in fresh:
            before = store_count(desk)
            seen = len(raw_idle.exists_at)
            t0 = time.perf_counter()
            server.append(FOLDER, raw)
            while store_count(desk) <= before:
                if time.perf_counter() - t0 > 30:
                    report.problem("new mail did not reach the local store within 30 s")
                    return (latencies, server_side) if latencies else None
                time.sleep(0.005)
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.3)
            if len(raw_idle.exists_at) > seen:
                server_side.append(raw_idle.exists_at[seen] - t0)
    finally:
        raw_idle.stop_event.set()
        loop.stop()
        thread.join(timeout=10)
        raw_idle.join(timeout=10)
    return latencies, server_side


# --------------------------------------------------------------------- main ---


def _versions() -> str:
    def first_line(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
        except OSError:
            return "?"
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or
                                                                       out.stderr) else "?"

    rev = first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    return (f"helpdesk {rev}, "
            f"python {platform.python_version()}, imapclient {imapclient.__version__}, "
            f"dovecot {first_line(['dovecot', '--version']).split()[0]}, "
            f"{first_line(['mbsync', '--version'])}, {os.cpu_count()} CPUs")


def workspace(keep: bool) -> contextlib.AbstractContextManager[Path]:
    return benchlib.workspace(keep, "helpdesk-bench-")


def timed(label: str, fn: Callable[[], Any]) -> tuple[float, Any]:
    return benchlib.timed(label, fn, fmt_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="messages to generate (2000)")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (1)")
    parser.add_argument("--keep", action="store_true", help="keep temp dirs (stores, Maildir, "
                        "Dovecot mail store) and print their paths")
    parser.add_argument("--skip-mbsync", action="store_true", help="skip the mbsync reference")
    parser.add_argument("--repeat", type=int, default=1, metavar="R",
                        help="timed rounds of floor, mbsync and initial sync; best is shown (1)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeat < 1:
        parser.error("--n and --repeat must be at least 1")

    from helpers import make_profile
    from servers import start_dovecot

    report = Report()
    n = args.n
    load_start = os.getloadavg()
    report.add("messages", f"{n}", f"seed {args.seed}; {_versions()}")
    with workspace(args.keep) as work:
        progress(f"starting Dovecot; work dir {work}")
        server = start_dovecot()
        try:
            progress(f"filling INBOX with {n} messages "
                     f"({APPEND_THREADS} connections, MULTIAPPEND x{APPEND_CHUNK})")
            fill_s, fill_bytes = fill(server, n, args.seed)
            count = mailbox_count(server)
            if count != n:
                report.problem(f"INBOX holds {count} messages after the fill, expected {n}")
            report.add("fill (APPEND)", fmt_s(fill_s),
                       f"{n / fill_s:.0f} msg/s, {fill_bytes / 1e6:.1f} MB, "
                       f"avg {fill_bytes / n / 1024:.1f} KiB/msg")
            progress(f"fill: {fmt_s(fill_s)}")

            # Timed rounds, interleaved so that a change in machine load hits every
            # contender alike; each row reports the best round. The floor goes first: it
            # also brings Dovecot's files into the page cache.
            floor_runs: list[float] = []
            nofsync_runs: list[float] = []
            fsync_runs: list[float] = []
            sync_runs: list[float] = []
            first_runs: list[FirstRun] = []
            floor_bytes = 0
            desk: Desk | None = None
            for rnd in range(args.repeat):
                tag = f"round {rnd + 1}/{args.repeat}: " if args.repeat > 1 else ""
                elapsed, floor_bytes = _floor(server, tag)
                floor_runs.append(elapsed)
                if not args.skip_mbsync:
                    for fsync, runs in ((False, nofsync_runs), (True, fsync_runs)):
                        progress(f"{tag}mbsync (FSync {'yes' if fsync else 'no'}) ...")
                        secs = run_mbsync(server, work, n, report, fsync=fsync, tag=str(rnd))
                        if secs is not None:
                            progress(f"{tag}mbsync (FSync {'yes' if fsync else 'no'}): "
                                     f"{fmt_s(secs)}")
                            runs.append(secs)
                # Our initial sync, in process, into a fresh store opened (and migrated)
                # beforehand; the last round's desk is kept for the re-sync and push rows.
                if desk is not None:
                    desk.close()
                progress(f"{tag}helpdesk first launch (in process) ...")
                run = first_launch(make_profile(server, work, db_name=f"inproc{rnd}.sqlite3"))
                desk = run.desk
                secs = run.all_s - run.open_s
                progress(f"{tag}helpdesk first launch: {FIRST_TICKETS} tickets listed after "
                         f"{fmt_s(run.first_s) if run.first_s is not None else 'never'}, "
                         f"all in after {fmt_s(run.all_s)}")
                sync_runs.append(secs)
                first_runs.append(run)
                stored = store_count(desk)
                if stored != n:
                    report.problem(f"in-process sync stored {stored} messages, expected {n}")
            assert desk is not None

            def best(runs: list[float]) -> str:
                if len(runs) < 2:
                    return ""
                return f"; best of {len(runs)}: " + "/".join(fmt_s(r) for r in runs)

            floor_s = min(floor_runs)
            mbsync_s = min(nofsync_runs) if nofsync_runs else None
            mbsync_fsync_s = min(fsync_runs) if fsync_runs else None
            sync_s = min(sync_runs)
            if args.skip_mbsync:
                report.add("mbsync mirror (reference)", "skipped")
            else:
                for label, runs, note in (
                        ("mbsync mirror (reference)", nofsync_runs, "FSync no"),
                        ("mbsync mirror, default FSync", fsync_runs, "fsync per message")):
                    if not runs:
                        report.add(label, "failed")
                        continue
                    secs = min(runs)
                    report.add(label, fmt_s(secs), f"{n / secs:.0f} msg/s, process wall time, "
                               f"Maildir, {note}{best(runs)}")
            report.add("plain imapclient fetch BODY[]", fmt_s(floor_s),
                       f"{n / floor_s:.0f} msg/s, {floor_bytes / floor_s / 1e6:.0f} MB/s (floor: "
                       f"login + UID FETCH BODY.PEEK[] x{FETCH_CHUNK}, imaplib trace off)"
                       f"{best(floor_runs)}")
            ratio = f" = {sync_s / mbsync_s:.2f}x mbsync" if mbsync_s else ""
            if mbsync_fsync_s:
                ratio += f" ({sync_s / mbsync_fsync_s:.2f}x with fsync)"
            report.add("helpdesk initial sync", fmt_s(sync_s),
                       f"{n / sync_s:.0f} msg/s{ratio}, {sync_s / floor_s:.1f}x floor "
                       f"(Desk.sync_once in process, every pass until all older mail is "
                       f"in){best(sync_runs)}")
            firsts = [r.first_s for r in first_runs if r.first_s is not None]
            if len(firsts) < len(first_runs):
                report.problem(f"a first launch never listed {FIRST_TICKETS} tickets")
            if firsts:
                quick = min(first_runs, key=lambda r: r.first_s or float("inf"))
                report.add(f"first {FIRST_TICKETS} tickets listed (first launch)",
                           fmt_s(min(firsts)),
                           f"from Desk() on a fresh store (open + migrate "
                           f"{fmt_s(quick.open_s)}) until the window's first-page query lists "
                           f"{FIRST_TICKETS}; target < 2 s; all {n} messages in after "
                           f"{fmt_s(quick.all_s)}" + best([r.first_s or 0 for r in first_runs]))
            last = first_runs[-1]
            at = [cost_at(last.costs, f) for f in (0.1, 0.5, 1.0)]
            report.add("store cost per message", "/".join(f"{c:.0f}" for c, _w in at) + " us",
                       "CPU of MailSync._store_batch per message at 10/50/100% of the run "
                       "(median of 5 batches); wall " + "/".join(f"{w:.0f}" for _c, w in at)
                       + " us")
            try:
                # The CLI in a child: process wall time and peak RSS.
                config = write_profile(server, work, "cli")
                progress("helpdesk CLI sync --once ...")
                cli = run_cli_sync(config, work)
                progress(f"helpdesk CLI sync --once: {fmt_s(cli.wall)}")
                if cli.returncode != 0:
                    report.problem(f"CLI sync exited with {cli.returncode}: "
                                   f"{cli.stderr.strip()[-800:]}")
                cli_desk = Desk(make_profile(server, work, db_name="cli.sqlite3"))
                try:
                    cli_stored = store_count(cli_desk)
                finally:
                    cli_desk.close()
                if cli_stored != n:
                    report.problem(f"CLI sync stored {cli_stored} messages, expected {n}")
                ratio = f" = {cli.wall / mbsync_s:.2f}x mbsync" if mbsync_s else ""
                report.add("helpdesk CLI sync --once wall", fmt_s(cli.wall),
                           f"{n / cli.wall:.0f} msg/s{ratio} (incl. interpreter start)")
                tree = cli.tree
                workers = tree.workers()
                if tree.pss_mb:
                    q = [tree.pss_mb[max(0, int(len(tree.pss_mb) * f) - 1)]
                         for f in (0.25, 0.5, 0.75, 1.0)]
                    report.add("peak memory initial sync (CLI)", f"{max(tree.pss_mb):.0f} MB",
                               f"summed PSS of the CLI and its children ({len(workers)} parse "
                               f"worker(s)), "
                               f"sampled every {tree.interval * 1000:.0f} ms; at 25/50/75/100% "
                               f"of the run: " + "/".join(f"{v:.0f}" for v in q)
                               + f" MB; target < {TARGET_RSS_MB:.0f} MB")
                note = "VmHWM of the CLI process"
                if workers:
                    note += ("; workers " + "/".join(f"{w:.0f}" for w in workers) + " MB, "
                             f"other children {tree.others():.0f} MB; sum "
                             f"{cli.peak_rss_mb + sum(workers) + tree.others():.0f} MB "
                             f"(upper bound: shared pages counted per process)")
                if tree.rss_mb:
                    note += f"; summed RSS sampled max {max(tree.rss_mb):.0f} MB"
                report.add("peak RSS initial sync (CLI)", f"{cli.peak_rss_mb:.0f} MB", note)

                progress("no-change re-sync ...")
                first, median, once = measure_resync(desk)
                if (stored_after := store_count(desk)) != n:
                    report.problem(f"re-sync changed the message count ({stored_after})")
                report.add("no-change re-sync (sync work)", fmt_s(median),
                           f"median of {RESYNC_TRIALS - 1}, first {fmt_s(first)}; "
                           f"Desk.sync_once on a logged-in connection; target < "
                           f"{TARGET_RESYNC_MS:.0f} ms")
                report.add("no-change re-sync incl. login", fmt_s(once), "Desk.sync_once")

                progress("new mail latency (IDLE push loop) ...")
                pushed = measure_push(server, desk, args.seed, report)
                if pushed:
                    latencies, server_side = pushed
                    report.add("new mail -> local store (IDLE)",
                               f"median {fmt_s(statistics.median(latencies))}",
                               f"max {fmt_s(max(latencies))}, {len(latencies)} trials, "
                               f"APPEND start -> row in store; target < {TARGET_PUSH_S:.0f} s")
                    if server_side:
                        report.add("  of which server IDLE notify",
                                   f"median {fmt_s(statistics.median(server_side))}",
                                   "APPEND start -> EXISTS on a bare imapclient IDLE connection")
                else:
                    report.add("new mail -> local store (IDLE)", "not measured")
            finally:
                desk.close()
        finally:
            if args.keep:
                progress(f"kept Dovecot mail store {server.mail_home}")
                server.workdir = None  # stop() then leaves the directory alone
            server.stop()
    load = os.getloadavg()
    report.add("load average at the end", f"{load[0]:.2f}",
               f"1/5/15 min {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} on {os.cpu_count()} CPUs "
               f"(at start {load_start[0]:.1f}); other load skews every figure")
    report.print()
    return 1 if report.problems else 0


def _floor(server: Any, tag: str) -> tuple[float, int]:
    progress(f"{tag}plain imapclient fetch ...")
    elapsed, total = plain_fetch(server)
    progress(f"{tag}plain imapclient fetch: {fmt_s(elapsed)}")
    return elapsed, total


if __name__ == "__main__":
    sys.exit(main())
