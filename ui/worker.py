"""Keep the Qt main thread free: Desk calls run on workers, results come back by signal.

- ``DeskService.run(fn, on_done, on_error)`` runs ``fn(desk)`` on one serial
  worker (intents and slow queries never interleave, like Anki's taskman) and
  calls ``on_done(result)`` / ``on_error(message)`` on the main thread.
- ``DeskService.read(...)`` is the same for read-only queries (lists, rows, a
  ticket, a customer, counts) on a second serial worker, so that scrolling and
  opening tickets never wait behind an intent's network round trips. Only reads
  whose results are refreshed after writes anyway (``changed``) belong there.
- ``DeskService.start_sync()`` runs the desk's push loop (IDLE or polling) on its
  own thread with its own IMAP connection; ``changed`` and ``sync_status`` are
  emitted on the main thread.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from helpdesk.desk import Changes, Desk
from helpdesk.errors import HelpdeskError
from helpdesk.mail.push import LoopStatus, PushLoop

log = logging.getLogger(__name__)


class _Relay(QObject):
    """Lives on the main thread; queued signals carry results back to it."""

    deliver = Signal(object, object)

    def __init__(self) -> None:
        super().__init__()
        self.deliver.connect(self._call)

    @Slot(object, object)
    def _call(self, callback: Callable[[Any], None], value: Any) -> None:
        callback(value)


class _Job(QRunnable):
    def __init__(self, service: DeskService, fn: Callable[[Desk], Any],
                 on_done: Callable[[Any], None] | None,
                 on_error: Callable[[str], None] | None) -> None:
        super().__init__()
        self.service = service
        self.fn = fn
        self.on_done = on_done
        self.on_error = on_error

    def run(self) -> None:
        try:
            result = self.fn(self.service.desk)
        except HelpdeskError as exc:
            self.service._fail(str(exc), self.on_error, exc)
            return
        except Exception as exc:
            log.error("background task failed:\n%s", traceback.format_exc())
            self.service._fail(f"Something went wrong: {type(exc).__name__}: {exc}",
                               self.on_error, exc)
            return
        if self.on_done is not None:
            self.service._relay.deliver.emit(self.on_done, result)
        if isinstance(result, Changes) and result:
            self.service.changed.emit(result)


class DeskService(QObject):
    """The UI's only door to the core."""

    changed = Signal(object)       # Changes, from intents and from sync
    sync_status = Signal(object)   # LoopStatus
    error = Signal(str)            # plain-language message for the status bar
    conflict = Signal(str)         # a teammate holds what we tried to act on
    busy = Signal(bool)

    def __init__(self, desk: Desk, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.desk = desk
        self._relay = _Relay()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._reads = QThreadPool(self)  # SQLite in WAL mode: readers never wait on writers
        self._reads.setMaxThreadCount(1)
        self._loop: PushLoop | None = None
        self._sync_thread: threading.Thread | None = None

    def run(self, fn: Callable[[Desk], Any], on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[str], None] | None = None) -> None:
        self._pool.start(_Job(self, fn, on_done, on_error))

    def read(self, fn: Callable[[Desk], Any], on_done: Callable[[Any], None] | None = None,
             on_error: Callable[[str], None] | None = None) -> None:
        """Like :meth:`run`, for a read-only ``fn``: never queued behind intents."""
        self._reads.start(_Job(self, fn, on_done, on_error))

    def _fail(self, message: str, on_error: Callable[[str], None] | None,
              exc: BaseException) -> None:
        from helpdesk.errors import ConflictError

        if on_error is not None:
            self._relay.deliver.emit(on_error, message)
        elif isinstance(exc, ConflictError):
            self.conflict.emit(message)
        else:
            self.error.emit(message)

    def wait_idle(self, msecs: int = 30000) -> bool:
        """Wait for queued jobs (tests and shutdown only)."""
        return bool(self._pool.waitForDone(msecs)) and bool(self._reads.waitForDone(msecs))

    # --- background sync ---------------------------------------------------------

    def start_sync(self) -> None:
        if self._loop is not None:
            return
        self._loop = self.desk.push_loop(on_status=self.sync_status.emit,
                                         on_changes=self.changed.emit)
        self._sync_thread = threading.Thread(target=self._loop.run, name="sync", daemon=True)
        self._sync_thread.start()

    def sync_now(self) -> None:
        if self._loop is not None:
            self._loop.wake()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.stop()
            if self._sync_thread is not None:
                self._sync_thread.join(timeout=5)
            self._loop = None
        self._pool.waitForDone(10000)
        self._reads.waitForDone(10000)


__all__ = ["Changes", "DeskService", "LoopStatus"]
