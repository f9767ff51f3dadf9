"""A working day of slots that update widgets must not leak or drop references.

PySide6 6.12.0 on Python 3.11 loses a reference to ``None`` each time a slot sets a
QLabel's text (and to ``True`` per queued call): after ~20 minutes of a live window
``None``'s count reaches zero and Python aborts with ``none_dealloc``. Python 3.12+
makes ``None`` immortal, 3.11 (Debian 12's) does not. The measurement runs in a
child process: on a broken binding it may abort, and that must fail this test, not
take the whole test run down with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
