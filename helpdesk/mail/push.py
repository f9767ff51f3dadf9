"""Keep syncing: IDLE watchers (one connection and thread each) wake one sync worker.

The worker owns its own connection and runs ``work(client)`` whenever a
watcher reports a change, the poll interval passes (servers without IDLE), or
someone calls :meth:`PushLoop.wake`. Failures reconnect with exponential
backoff; each outcome is reported through ``on_status`` for the UI and CLI.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import imapclient

from helpdesk.errors import HelpdeskError
from helpdesk.mail.imap import explain_network_error, logout_quietly

log = logging.getLogger(__name__)

IDLE_RENEW_SECONDS = 24 * 60  # well before the 29-minute server timeout
MAX_BACKOFF = 300.0


@dataclass
class LoopStatus:
    ok: bool
    message: str = ""
    retry_in: float | None = None


def describe_error(exc: BaseException, settings: Any) -> str:
    if isinstance(exc, HelpdeskError):
        return str(exc)
    return explain_network_error(exc, settings, "IMAP")


class IdleWatcher(threading.Thread):
    """Holds one IDLE connection on ``folder`` and calls ``notify`` on any change."""

    def __init__(self, connect: Callable[[], imapclient.IMAPClient], folder: str,
                 notify: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(name=f"idle:{folder}", daemon=True)
        self.connect = connect
        self.folder = folder
        self.notify = notify
        self.stop_event = stop
        self.ready = threading.Event()
        self.unsupported = False

    def run(self) -> None:
        backoff = 1.0
        while not self.stop_event.is_set():
            client = None
            try:
                client = self.connect()
                if not client.has_capability("IDLE"):
                    self.unsupported = True
                    self.ready.set()
                    return
                client.select_folder(self.folder, readonly=True)
                self._idle(client)
                backoff = 1.0
            except Exception as exc:
                log.info("IDLE on %s interrupted: %s", self.folder, type(exc).__name__)
                self.notify()  # let the worker notice and report the problem
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                if client is not None:
                    logout_quietly(client)

    def _idle(self, client: imapclient.IMAPClient) -> None:
        while not self.stop_event.is_set():
            client.idle()
            if not self.ready.is_set():
                self.ready.set()
                # Whatever arrived between the worker's last pass and this IDLE: look once.
                self.notify()
            started = time.monotonic()
            try:
                while not self.stop_event.is_set():
                    if time.monotonic() - started > IDLE_RENEW_SECONDS:
                        break
                    responses = client.idle_check(timeout=0.5)
                    if any(isinstance(r, tuple) and len(r) > 1 and r[1] in
                           (b"EXISTS", b"RECENT", b"FETCH", b"EXPUNGE") for r in responses):
                        self.notify()
            finally:
                client.idle_done()


class PushLoop:
    """Runs ``work(client)`` now and again whenever something may have changed."""

    def __init__(self, connect: Callable[[], imapclient.IMAPClient],
                 work: Callable[[imapclient.IMAPClient], None], *, watch: list[str],
                 poll_seconds: float, settings: Any,
                 on_status: Callable[[LoopStatus], None] | None = None) -> None:
        self.connect = connect
        self.work = work
        self.watch = watch
        self.poll_seconds = poll_seconds
        self.settings = settings
        self.on_status = on_status or (lambda s: None)
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        self.watchers: list[IdleWatcher] = []

    def wake(self) -> None:
        self.wake_event.set()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()

    def _start_watchers(self) -> None:
        if self.watchers:
            return
        for folder in self.watch:
            w = IdleWatcher(self.connect, folder, self.wake, self.stop_event)
            w.start()
            self.watchers.append(w)

    def _idle_works(self) -> bool:
        return any(not w.unsupported for w in self.watchers)

    def run(self) -> None:
        """Block until :meth:`stop`; call from the thread that should own the connection."""
        backoff = 1.0
        client: imapclient.IMAPClient | None = None
        while not self.stop_event.is_set():
            try:
                if client is None:
                    client = self.connect()
                self.wake_event.clear()
                self.work(client)
                self.on_status(LoopStatus(ok=True))
                backoff = 1.0
                self._start_watchers()
                timeout = self.poll_seconds
                if self._idle_works():
                    timeout = min(timeout, IDLE_RENEW_SECONDS)
                self.wake_event.wait(timeout)
            except Exception as exc:
                message = describe_error(exc, self.settings)
                log.warning("sync failed: %s", message)
                self.on_status(LoopStatus(ok=False, message=message, retry_in=backoff))
                if client is not None:
                    logout_quietly(client)
                    client = None
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        if client is not None:
            logout_quietly(client)
        for w in self.watchers:
            w.join(timeout=2)
