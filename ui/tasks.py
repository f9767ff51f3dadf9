"""Run one blocking call off the main thread when there is no Desk yet (setup, start-up)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEventLoop, QObject, Signal

from helpdesk.errors import HelpdeskError


class BackgroundCall(QObject):
    """``start(fn)`` runs ``fn`` on a plain thread; ``finished``/``failed`` arrive on the
    thread this object lives on (the main thread)."""

    finished = Signal(object)
    failed = Signal(str)

    def start(self, fn: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                result = fn()
            except HelpdeskError as exc:
                self.failed.emit(str(exc))
            except Exception as exc:  # shown to the person, never a crash
                self.failed.emit(f"Unexpected problem: {type(exc).__name__}: {exc}")
            else:
                self.finished.emit(result)

        threading.Thread(target=run, name="background-call", daemon=True).start()


def wait_for(fn: Callable[[], Any]) -> tuple[Any, str | None]:
    """Run ``fn`` in the background while the event loop keeps the screen alive.

    Returns ``(result, None)`` or ``(None, plain error message)``.
    """
    loop = QEventLoop()
    out: dict[str, Any] = {}
    call = BackgroundCall()

    def ok(result: Any) -> None:
        out["result"] = result
        loop.quit()

    def bad(message: str) -> None:
        out["error"] = message
        loop.quit()

    call.finished.connect(ok)
    call.failed.connect(bad)
    call.start(fn)
    loop.exec()
    return out.get("result"), out.get("error")
