"""Keep the Qt main thread free: Desk calls run on workers, results come back by signal.

- ``DeskService.run(fn, on_done, on_error)`` queues ``fn(desk)`` on the core's serial
  worker (helpdesk/session.py: the one owner of every change, sync passes included,
  like Anki's taskman) and calls ``on_done(result)`` / ``on_error(message)`` on the
  main thread when its future is done.
- ``DeskService.read(...)`` is the same for read-only queries (lists, rows, a
  ticket, a customer, counts) on a second serial worker, so that scrolling and
  opening tickets never wait behind an intent's network round trips. Only reads
  whose results are refreshed after writes anyway (``changed``) belong there.
- ``DeskService.start_sync()`` starts the desk's push (IDLE watchers wake the same
  serial worker; servers without IDLE are polled); ``changed`` and ``sync_status``
  are emitted on the main thread.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal, Slot

from helpdesk.changes import Changes
from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError
from helpdesk.mail.push import LoopStatus, Push

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


class _Job:
    """One call and where its outcome goes (a plain object: nothing Qt holds on to)."""

    def __init__(self, service: DeskService, fn: Callable[[Desk], Any],
                 on_done: Callable[[Any], None] | None,
                 on_error: Callable[[str], None] | None) -> None:
        self.service = service
        self.fn = fn
        self.on_done = on_done
        self.on_error = on_error

    def run(self) -> None:
        try:
            result = self.fn(self.service.desk)
        except BaseException as exc:
            self.failed(exc)
            return
        self.done(result)

    def finished(self, future: Future[Any]) -> None:
        """The core's worker finished ``fn``: hand the outcome to the main thread."""
        exc = future.exception()
        if exc is not None:
            self.failed(exc)
        else:
            self.done(future.result())

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, HelpdeskError):
            self.service._fail(str(exc), self.on_error, exc)
            return
        log.error("background task failed: %s", "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__)))
        self.service._fail(f"Something went wrong: {type(exc).__name__}: {exc}",
                           self.on_error, exc)

    def done(self, result: Any) -> None:
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
        self._reads = QThreadPool(self)  # SQLite in WAL mode: readers never wait on writers
        self._reads.setMaxThreadCount(1)
        self._loop: Push | None = None
        self._pending: set[Future[Any]] = set()
        self._pending_lock = threading.Lock()

    def run(self, fn: Callable[[Desk], Any], on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[str], None] | None = None) -> None:
        """Queue ``fn(desk)`` on the core's serial worker (an intent)."""
        job = _Job(self, fn, on_done, on_error)
        try:
            future = self.desk.session.submit(lambda: fn(self.desk), "ui intent")
        except HelpdeskError as exc:  # closing
            job.failed(exc)
            return
        with self._pending_lock:
            self._pending.add(future)

        def finished(f: Future[Any]) -> None:
            with self._pending_lock:
                self._pending.discard(f)
            job.finished(f)

        future.add_done_callback(finished)

    def read(self, fn: Callable[[Desk], Any], on_done: Callable[[Any], None] | None = None,
             on_error: Callable[[str], None] | None = None) -> None:
        """Like :meth:`run`, for a read-only ``fn``: never queued behind intents."""
        self._reads.start(_Job(self, fn, on_done, on_error).run)

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
        with self._pending_lock:
            pending = list(self._pending)
        _done, not_done = wait(pending, timeout=msecs / 1000)
        return not not_done and bool(self._reads.waitForDone(msecs))

    # --- background sync ---------------------------------------------------------

    def start_sync(self) -> None:
        if self._loop is not None:
            return
        self._loop = self.desk.push_loop(on_status=self.sync_status.emit,
                                         on_changes=self.changed.emit)
        self._loop.start()

    def sync_now(self) -> None:
        if self._loop is not None:
            self._loop.wake()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
        self.wait_idle(10000)


__all__ = ["Changes", "DeskService", "LoopStatus"]
