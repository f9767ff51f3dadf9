"""A working day of slots that update widgets must not leak or drop references.

PySide6 6.12.0 on Python 3.11 loses a reference to ``None`` each time a slot sets a
QLabel's text (and to ``True`` per queued call): after ~20 minutes of a live window
``None``'s count reaches zero and Python aborts with ``none_dealloc``. Python 3.12+
makes ``None`` immortal, 3.11 (Debian 12's) does not. The measurement runs in a
child process: on a broken binding it may abort, and that must fail this test, not
take the whole test run down with it.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CALLS = 3000

_CHILD = r"""
import json, os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtWidgets import QApplication, QLabel
from helpdesk.mail.push import LoopStatus
from ui.banner import ClaimBanner, MessageBar

app = QApplication([])

class Source(QObject):
    text = Signal(str)
    row = Signal(object)
    status = Signal(object)

label = QLabel()
banner = ClaimBanner("agent-a")
bar = MessageBar()
src = Source()
src.text.connect(label.setText)
src.text.connect(lambda t: label.setToolTip(t))
src.row.connect(banner.show_row)
src.status.connect(lambda s: bar.show_message(s.message or "ok", "info", timeout_ms=0))

def counts():
    return sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)

rows = [{"claimed_by": None, "status": "open"},
        {"claimed_by": "agent-a", "claimed_at": "2026-01-01 10:00:00", "status": "open"},
        {"claimed_by": "agent-b", "claimed_at": "2026-01-01 10:00:00", "status": "pending"},
        {"claimed_by": None, "status": "closed", "closed_at": "2026-01-01 10:00:00"}]
def round_(i):
    src.text.emit(f"Synced {i} s ago")
    src.row.emit(rows[i % 4])
    if i % 10 == 0:
        src.status.emit(LoopStatus(ok=True, message=f"note {i % 3}"))
        app.processEvents()
        # deleteLater()'d widgets go at the event loop's next turn, as under app.exec()
        app.sendPostedEvents(None, QEvent.Type.DeferredDelete)

for i in range(20):  # warm-up: caches, interned strings, lazily built wrappers
    round_(i)
before = counts()
n = int(sys.argv[1])
for i in range(n):
    round_(i)
    if i % 20 == 19:  # progress, so that an abort still shows how far the counts fell
        print(json.dumps({"calls": i + 1, "before": before, "after": counts()}), flush=True)
print(json.dumps({"calls": n, "before": before, "after": counts()}), flush=True)
"""


def test_slots_updating_widgets_keep_none_true_false_refcounts() -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(CALLS)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    lines = proc.stdout.strip().splitlines()
    drift: dict[str, int] = {}
    calls = 0
    if lines:
        figures = json.loads(lines[-1])
        calls = figures["calls"]
        drift = {name: a - b for name, b, a in zip(("None", "True", "False"),
                                                    figures["before"], figures["after"],
                                                    strict=True)}
    assert proc.returncode == 0, (
        f"the widget-updating child died (exit {proc.returncode}) after {calls} rounds, "
        f"refcounts drifted by {drift}; a Qt binding with a refcount bug (PySide6 6.12.0 "
        f"on Python 3.11) aborts like this:\n{proc.stderr[-1500:]}")
    assert calls == CALLS
    # A few references may come and go with caches; a binding that drops one per call
    # loses thousands here.
    assert all(abs(d) < 100 for d in drift.values()), (
        f"refcounts drifted over {CALLS} rounds of signal-slot calls: {drift}")


def _row(tid: str) -> dict[str, object]:
    """A ticket row as ``desk.ticket_rows`` gives it: most teamwork fields empty (None)."""
    return {"id": tid, "subject": f"Subject of {tid}", "customer_email": f"{tid}@example.com",
            "customer_name": None, "status": "open", "claimed_by": None, "claimed_at": None,
            "assignee": None, "waiting_since": None, "closed_at": None, "snoozed_until": None,
            "vip": 0, "vip_tier": None, "tags": None, "updated_at": None, "spam": None}


def test_a_day_of_new_lists_keeps_the_row_cache_and_nones_count_flat(qtbot: Any) -> None:
    """New mail, view switches and searches give the list new tickets all day; the rows
    of tickets no longer listed must not pile up in the model (each row holds ~11
    references to None: bench/soak.py's steady rise)."""
    from PySide6.QtWidgets import QApplication

    from ui.models import Col, TicketModel

    def fetch(ids: list[str], done: Callable[[Any], None], _failed: Any) -> None:
        done({t: _row(t) for t in ids})

    model = TicketModel(fetch, "agent-a")
    shown = 30

    def a_list(n: int) -> None:
        """List ``shown`` tickets, some new (new mail), the rest from earlier lists; paint
        every row and wait (deadline, no timers of its own) until their rows are in."""
        model.set_ids([f"t{n * 7 + k}" for k in range(shown)])
        for r in range(shown):
            model.data(model.index(r, Col.SUBJECT))
        deadline = time.monotonic() + 10
        while model._pending or model._queue:
            QApplication.processEvents()
            assert time.monotonic() < deadline, "the rows did not arrive"
        assert all(model.cached(t) is not None for t in model.ids)

    for n in range(20):  # warm-up
        a_list(n)
    gc.collect()
    before = sys.getrefcount(None)
    for n in range(20, 420):
        a_list(n)
    gc.collect()
    rise = sys.getrefcount(None) - before
    assert rise < 300, f"None's refcount rose by {rise} over 400 lists of {shown} tickets"
    assert len(model._cache) <= shown, f"{len(model._cache)} rows cached for {shown} listed"
