#!/usr/bin/env python
"""Soak: two agents' windows on one mailbox for N minutes (not a test).

Drives the real app: a private Dovecot (tests/servers.py; both agents log in to
the same mailbox) and an aiosmtpd sink, two desks, two DeskServices with their
push loops (IDLE), two MainWindows offscreen (or on $DISPLAY). Every few seconds
one step of a working day runs in one of the windows, round robin: new customer
mail arrives, a ticket is opened from the list, claimed (C), answered through the
composer (R, type, Ctrl+Enter), taken over by the other agent, marked pending,
closed through the dialog, the view and the search change, "Sync now". The
window timers (lease repaint, counts, banners, autosave) tick as they do all day.

Every ``--every`` seconds it prints, beside the values at the start:
``sys.getrefcount(None)`` (PySide6 6.12.0 lost one per label update on Python
3.11 until the app aborted with none_dealloc), the process's RSS memory, its open
file descriptors, the widgets alive, and the steps done. At the end: start, end and
the drift of each, and whether they stayed flat.

What "flat" means for None's refcount: it must never fall (a binding that drops
references takes it to zero and Python aborts), and it must stop rising. PySide
(6.10.3 and 6.11.3 alike) keeps about 7-16 references to None for each widget Qt
creates and shows and never gives them back (6,000 plain QWidgets shown and deleted
raise it by 42,000 with no Python object behind it), so a window that rebuilt its
cards and rows on every refresh raised it without bound. The app reuses its widgets
(ui/pool.py): once its pools have grown to the largest ticket and customer seen, a
refresh makes none. The summary judges the second half of the run: None's rise per
minute there, and the widgets made there, next to a plain-QWidget reference measured
in this run.

Usage (from the repo root)::

    python bench/soak.py --minutes 30
    python bench/soak.py --minutes 2 --every 10     # a quick look
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
for _p in (str(ROOT), str(TESTS)):
    if _p not in sys.path:
        sys.path.insert(0, _p)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen" if not os.environ.get("DISPLAY")
                      else os.environ.get("QT_QPA_PLATFORM", "xcb"))

import keyring  # noqa: E402
from helpers import MemoryKeyring, make_profile  # noqa: E402
from mailgen import generate  # noqa: E402
from servers import start_dovecot, start_smtp_sink  # noqa: E402

from helpdesk.desk import Desk  # noqa: E402

STEP_MS = 1500
FLAT_NONE_PER_MINUTE = 100  # a day (480 min) of that is under 50,000: far from any limit


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def none_refs() -> int:
    return sys.getrefcount(None)


def widgets_alive() -> int:
    from PySide6.QtWidgets import QApplication

    return len(QApplication.allWidgets())


class WidgetCounter:
    """Counts widgets created (Polish events reach every new widget once it shows)."""

    def __init__(self) -> None:
        from PySide6.QtCore import QEvent, QObject

        class Filter(QObject):
            def __init__(self) -> None:
                super().__init__()
                self.created = 0
                self.by_class: dict[str, int] = {}

            def eventFilter(self, obj: Any, event: Any) -> bool:
                if event.type() == QEvent.Type.Polish:
                    self.created += 1
                    # Which widgets a refresh keeps making (the ones worth reusing).
                    name = type(obj).__name__
                    if obj.objectName():
                        name += f"#{obj.objectName()}"
                    self.by_class[name] = self.by_class.get(name, 0) + 1
                return False

        self.filter = Filter()

    def install(self, app: Any) -> None:
        app.installEventFilter(self.filter)

    @property
    def created(self) -> int:
        return int(self.filter.created)

    def top(self, n: int = 12) -> str:
        ranked = sorted(self.filter.by_class.items(), key=lambda kv: -kv[1])[:n]
        return ", ".join(f"{k} {v:,}" for k, v in ranked) or "none"


def plain_widget_reference(n: int = 500) -> float:
    """None's refcount rise per plain QWidget created, shown and deleted (PySide's)."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication, QWidget

    app = QApplication.instance()
    host = QWidget()
    host.show()

    def flush() -> None:
        app.processEvents()  # type: ignore[union-attr]
        app.sendPostedEvents(None, QEvent.Type.DeferredDelete)  # type: ignore[union-attr]

    flush()
    gc.collect()
    before = none_refs()
    for _ in range(n):
        w = QWidget(host)
        w.show()
        flush()
        w.deleteLater()
        del w
        flush()
    gc.collect()
    rise = (none_refs() - before) / n
    host.deleteLater()
    flush()
    return rise


class Figures:
    def __init__(self, counter: WidgetCounter) -> None:
        gc.collect()
        self.counter = counter
        self.created0 = counter.created
        self.start = (none_refs(), rss_bytes(), open_fds())
        self.widgets0 = widgets_alive()
        self.samples: list[tuple[float, int, int, int, int]] = []
        self.created_at: list[int] = []  # widgets created by each sample
        self.lowest_none = self.start[0]
        self.created_at_last_sample = 0

    def sample(self, elapsed: float, steps: int) -> str:
        gc.collect()
        now = (none_refs(), rss_bytes(), open_fds())
        self.lowest_none = min(self.lowest_none, now[0])
        self.samples.append((elapsed, *now, steps))
        n0, r0, f0 = self.start
        n, r, f = now
        created = self.counter.created - self.created0
        self.created_at_last_sample = created
        self.created_at.append(created)
        return (f"{elapsed / 60:6.1f} min  None refs {n:>8,} ({n - n0:+,})  "
                f"RSS {r / 2**20:7.1f} MB ({(r - r0) / 2**20:+.1f})  "
                f"fds {f:>4} ({f - f0:+})  widgets alive {widgets_alive():>5} "
                f"({widgets_alive() - self.widgets0:+}), created {created:,}  steps {steps}")

    def summary(self, reference: float) -> list[str]:
        n0, r0, f0 = self.start
        if not self.samples:
            return ["no samples"]
        # The first minutes warm caches (SQLite pages, Qt's glyphs, wrappers): judge the
        # drift from the first sample on, and report both.
        _t, _n1, r1, f1, _s = self.samples[0]
        _t, n, r, f, steps = self.samples[-1]
        rss_span = max(s[2] for s in self.samples) - min(s[2] for s in self.samples[1:] or
                                                         self.samples)
        fd_span = max(abs(s[3] - f1) for s in self.samples)
        created = self.created_at_last_sample
        # The second half of the run: the pools have grown by then, caches are warm.
        half = next(i for i, smp in enumerate(self.samples)
                    if smp[0] >= self.samples[-1][0] / 2)
        t_half, n_half = self.samples[half][0], self.samples[half][1]
        minutes = max(1e-9, (self.samples[-1][0] - t_half) / 60)
        slope = (n - n_half) / minutes
        made_late = created - self.created_at[half]
        never_fell = self.lowest_none >= n0
        flat_none = never_fell and slope <= FLAT_NONE_PER_MINUTE
        flat_rss = (r - r1) < 40 * 2**20
        flat_fds = fd_span <= 8
        return [
            f"None refcount: start {n0:,}, lowest {self.lowest_none:,}, end {n:,} "
            f"({n - n0:+,}); never fell: {'yes' if never_fell else 'NO'}; second half "
            f"({t_half / 60:.1f}-{self.samples[-1][0] / 60:.1f} min): {n - n_half:+,} "
            f"({slope:+,.0f}/min), {made_late:,} widgets made there ({created:,} in all; "
            f"plain QWidget reference {reference:.1f} refs each) -> "
            + ("flat" if flat_none else "NOT FLAT")
            + f" (flat: never falls, rises at most {FLAT_NONE_PER_MINUTE}/min late on)",
            f"RSS: start {r0 / 2**20:.1f} MB, first sample {r1 / 2**20:.1f} MB, end "
            f"{r / 2**20:.1f} MB ({(r - r1) / 2**20:+.1f} MB after warm-up, "
            f"{(r - self.samples[half][2]) / 2**20:+.1f} MB in the second half; range after "
            f"warm-up {rss_span / 2**20:.1f} MB) -> {'flat' if flat_rss else 'NOT FLAT'}",
            f"open fds: start {f0}, first sample {f1}, end {f}; largest drift {fd_span} -> "
            f"{'flat' if flat_fds else 'NOT FLAT'}",
            f"steps done: {steps}",
        ]


def customer_mail(i: int) -> bytes:
    m = EmailMessage()
    m["Subject"] = random.choice(["Where is my order?", "Invoice question", "Login trouble",
                                  "<b>Account</b> suspended?", "Refund, please"]) + f" ({i})"
    m["From"] = f"Soak Customer {i % 17} <soak{i % 17}@customers.example>"
    m["To"] = "support@example.com"
    m["Date"] = format_datetime(datetime.now(UTC))
    m["Message-ID"] = make_msgid(domain="customers.example")
    m.set_content(f"Hello,\n\nmessage {i} of the soak. Could you help?\n\nThanks\n")
    return bytes(m)


class Soak:
    def __init__(self, minutes: float, every: float, debug_types: bool = False) -> None:
        from PySide6.QtWidgets import QApplication

        from ui import style

        self.app = QApplication.instance() or QApplication(sys.argv[:1])
        style.apply(self.app)  # type: ignore[arg-type]
        self.minutes = minutes
        self.every = every
        self.debug_types = debug_types
        self.tmp = Path(tempfile.mkdtemp(prefix="helpdesk-soak-"))
        self.server = start_dovecot()
        self.sink = start_smtp_sink()
        with self.server.session() as c:
            for raw in generate(40, seed=11):
                c.append("INBOX", raw)
        self.mail_no = 0
        self.steps = 0
        self.errors: list[str] = []
        self.rng = random.Random(5)
        self.windows: list[Any] = []
        self.services: list[Any] = []
        self.desks: list[Desk] = []
        for agent in ("agent-a", "agent-b"):
            desk = Desk(make_profile(self.server, self.tmp, agent, smtp=self.sink,
                                     survey="ask"))
            desk.sync_once()
            self.desks.append(desk)
        self._appending = threading.Lock()

    def open_windows(self) -> None:
        from ui.main_window import MainWindow
        from ui.worker import DeskService

        for desk in self.desks:
            service = DeskService(desk)
            window = MainWindow(service, persist=False)
            window.resize(1300, 820)
            window.show()
            service.start_sync()
            self.services.append(service)
            self.windows.append(window)

    # --- the working day ---------------------------------------------------------

    def step(self) -> None:
        self.steps += 1
        w = self.windows[self.steps % 2]
        actions: list[Callable[[Any], None]] = [
            self.new_mail, self.open_some, self.claim, self.reply, self.open_some,
            self.takeover, self.pending, self.close, self.views, self.search, self.sync_now,
            self.open_some, self.claim, self.reply,
        ]
        only = os.environ.get("SOAK_ONLY")
        if only:
            actions = [a for a in actions if a.__name__ in only.split(",")]
        action = actions[(self.steps // 2) % len(actions)]
        try:
            action(w)
        except Exception as exc:  # a bench reports, it does not stop
            self.errors.append(f"{action.__name__}: {type(exc).__name__}: {exc}")

    def new_mail(self, _w: Any) -> None:
        self.mail_no += 1
        raw = customer_mail(self.mail_no)

        def append() -> None:
            with self._appending, self.server.session() as c:
                c.append("INBOX", raw)

        threading.Thread(target=append, daemon=True).start()

    def open_some(self, w: Any) -> None:
        n = w.model.rowCount()
        if n:
            w.column.select_row(self.rng.randrange(n))

    def claim(self, w: Any) -> None:
        if w.pane.ticket_id and not w.pane.row.get("claimed_by"):
            w.pane.claim()

    def reply(self, w: Any) -> None:
        pane = w.pane
        if pane.ticket_id is None or pane.row.get("claimed_by") not in (None, w.agent):
            return
        pane.reply()
        composer = pane.composer

        def type_and_send(tries: int = 0) -> None:
            if not composer.is_open or composer.ticket_id != pane.ticket_id:
                return
            if not composer.editor.isEnabled():
                if tries < 20:
                    self._later(200, lambda: type_and_send(tries + 1))
                return
            composer.editor.insertPlainText(f"Thanks for writing, this is reply {self.steps}.")
            composer.send()

        self._later(300, type_and_send)

    def takeover(self, w: Any) -> None:
        holder = w.pane.row.get("claimed_by")
        if w.pane.ticket_id and holder and holder != w.agent:
            tid = w.pane.ticket_id
            w.service.run(lambda d: d.takeover(tid), on_done=lambda _r: w.pane.reload_row(),
                          on_error=lambda _m: None)

    def pending(self, w: Any) -> None:
        if w.pane.ticket_id and w.pane.row.get("status") == "open":
            w.pane.mark_pending()

    def close(self, w: Any) -> None:
        from PySide6.QtWidgets import QApplication

        from ui.ticket_pane import CaredDialog

        if not w.pane.ticket_id or w.pane.row.get("status") == "closed":
            return
        w.pane.close_ticket()

        def answer(tries: int = 0) -> None:
            dialogs = [d for d in QApplication.topLevelWidgets()
                       if isinstance(d, CaredDialog) and d.isVisible()]
            if dialogs:
                dialogs[0].survey.setChecked(self.rng.random() < 0.5)
                dialogs[0].yes_button.click()
            elif tries < 20:
                self._later(100, lambda: answer(tries + 1))

        self._later(100, answer)

    def views(self, w: Any) -> None:
        w.sidebar.select(self.rng.choice(["unclaimed", "mine", "open", "pending", "all",
                                          "closed"]))

    def search(self, w: Any) -> None:
        w.column.search.setText(self.rng.choice(["", "invoice", "soak", "order", ""]))

    def sync_now(self, w: Any) -> None:
        w.sync_now()

    @staticmethod
    def _later(ms: int, fn: Callable[[], None]) -> None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(ms, fn)

    # --- the run -------------------------------------------------------------------

    def run(self) -> int:
        from PySide6.QtCore import QTimer

        self.open_windows()
        started = time.monotonic()
        figures: Figures | None = None
        end = started + self.minutes * 60

        def begin() -> None:
            nonlocal figures
            figures = Figures(counter)
            n, r, f = figures.start
            print(f"start      None refs {n:>8,}  RSS {r / 2**20:7.1f} MB  fds {f:>4}  "
                  f"(two windows, {sys.version.split()[0]}, PySide6 {pyside_version()})",
                  flush=True)

        last_types: dict[str, int] = {}

        def report() -> None:
            if figures is not None:
                print(figures.sample(time.monotonic() - started, self.steps), flush=True)
            if self.debug_types:
                counts: dict[str, int] = {}
                for o in gc.get_objects():
                    k = type(o).__qualname__
                    counts[k] = counts.get(k, 0) + 1
                    if os.environ.get("SOAK_NONE_HOLDERS"):
                        held = sum(1 for r in gc.get_referents(o) if r is None)
                        if held:
                            counts["None in " + k] = counts.get("None in " + k, 0) + held
                grown = sorted(((c - last_types.get(k, 0), k) for k, c in counts.items()),
                               reverse=True)[:8]
                if last_types:
                    print("   grew: " + ", ".join(f"{k} {d:+}" for d, k in grown), flush=True)
                last_types.clear()
                last_types.update(counts)
            if time.monotonic() >= end:
                self.app.quit()

        counter = WidgetCounter()
        counter.install(self.app)
        QTimer.singleShot(2000, begin)  # windows shown, first lists and counts in
        stepper = QTimer()
        stepper.timeout.connect(self.step)
        if not os.environ.get("SOAK_NO_STEPS"):
            stepper.start(STEP_MS)
        reporter = QTimer()
        reporter.timeout.connect(report)
        reporter.start(int(self.every * 1000))
        watchdog = QTimer()
        watchdog.timeout.connect(lambda: self.app.quit() if time.monotonic() > end + 60
                                 else None)
        watchdog.start(5000)
        # Ctrl+C or kill: stop the run and still print and clean up (servers, stores);
        # Python runs the handler at the next timer tick.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.app.quit())
        self.app.exec()
        stepper.stop()
        reporter.stop()
        reference = plain_widget_reference()
        for line in (figures.summary(reference) if figures else ["no figures"]):
            print(line, flush=True)
        print(f"widgets created, most made first: {counter.top()}", flush=True)
        notes = sum(len(w.message_bar.history) for w in self.windows)
        print(f"mails sent by the sink: {len(self.sink.messages)}; notes shown: {notes}; "
              f"step errors: {len(self.errors)}", flush=True)
        for e in self.errors[:10]:
            print(f"  {e}", flush=True)
        return 0

    def close_all(self) -> None:
        for w in self.windows:
            w.close()
        for s in self.services:
            s.stop()
        for d in self.desks:
            d.close()
        self.server.stop()
        self.sink.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)  # the two desks' stores


def quiet_qt() -> None:
    """Offscreen Qt warns about window-manager features it lacks; keep the figures readable."""
    from PySide6.QtCore import qInstallMessageHandler

    def handler(_mode: Any, _context: Any, message: str) -> None:
        if "does not support" not in message:
            print(f"qt: {message}", file=sys.stderr)

    qInstallMessageHandler(handler)


def pyside_version() -> str:
    import PySide6

    return str(PySide6.__version__)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=60.0,
                        help="seconds between figure lines (default 60)")
    parser.add_argument("--types", action="store_true",
                        help="also print which object types grew between figure lines")
    args = parser.parse_args()
    keyring.set_keyring(MemoryKeyring())
    quiet_qt()
    soak = Soak(args.minutes, args.every, args.types)
    try:
        return soak.run()
    finally:
        soak.close_all()


if __name__ == "__main__":
    sys.exit(main())
