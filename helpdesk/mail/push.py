"""Keep syncing: IDLE watchers (one connection and thread each) wake the session's worker.

The watchers never touch the store: they only call ``notify`` (the session's
``request_sync``), and the serial worker runs the pass on its own connection. Servers
without IDLE are polled: the worker runs a pass every ``poll_seconds`` anyway.

A watcher that loses its connection (a server dropping it, pymap sending a FETCH
split across packets, which makes imapclient's ``idle_check`` raise) reconnects at
once; only repeated failures back off, and a success resets the back-off. Every time
it (re-)enters IDLE it asks for one pass, so a change made while it was away never
waits for the poll interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import imapclient

from helpdesk.mail.backfill import SyncProgress
from helpdesk.mail.imap import logout_quietly

log = logging.getLogger(__name__)

IDLE_RENEW_SECONDS = 24 * 60  # well before the 29-minute server timeout
CHECK_SECONDS = 0.5
MAX_BACKOFF = 300.0


@dataclass
class LoopStatus:
    ok: bool
    message: str = ""
    retry_in: float | None = None
    #: After a good pass: how much of the mailbox is in (older mail may still be coming).
    progress: SyncProgress | None = None


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive failures (the first: none)."""
    if failures <= 1:
        return 0.0
    return min(2.0 ** (failures - 2), MAX_BACKOFF)


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
        self.entries = 0  # times IDLE was entered (tests, diagnostics)

    def run(self) -> None:
        failures = 0
        while not self.stop_event.is_set():
            client = None
            try:
                client = self.connect()
                if not client.has_capability("IDLE"):
                    self.unsupported = True
                    self.ready.set()
                    return
                client.select_folder(self.folder, readonly=True)
                failures = 0
                self._idle(client)
            except Exception as exc:
                failures += 1
                log.info("IDLE on %s interrupted (%s); reconnecting", self.folder,
                         type(exc).__name__)
                self.notify()  # whatever happened, let the worker look (and report)
                self.stop_event.wait(backoff(failures))
            finally:
                if client is not None:
                    logout_quietly(client)

    def _idle(self, client: imapclient.IMAPClient) -> None:
        while not self.stop_event.is_set():
            client.idle()
            self.entries += 1
            self.ready.set()
            # Whatever arrived while we were not in IDLE (the worker's last pass, a
            # reconnect): look once.
            self.notify()
            started = time.monotonic()
            hollow = 0  # empty answers that came at once: the socket says "readable"
            try:
                while not self.stop_event.is_set():
                    if time.monotonic() - started > IDLE_RENEW_SECONDS:
                        break
                    asked = time.monotonic()
                    responses = client.idle_check(timeout=CHECK_SECONDS)
                    if responses:
                        hollow = 0
                    elif time.monotonic() - asked < CHECK_SECONDS / 2:
                        # imapclient's idle_check swallows EOF and answers nothing, at
                        # once, forever: a connection the server (or a proxy) closed.
                        hollow += 1
                        if hollow >= 3:
                            raise ConnectionError("the server closed the IDLE connection")
                    if any(isinstance(r, tuple) and len(r) > 1 and r[1] in
                           (b"EXISTS", b"RECENT", b"FETCH", b"EXPUNGE") for r in responses):
                        self.notify()
            finally:
                client.idle_done()


class Push:
    """IDLE watchers for ``watch`` folders plus a pass every ``poll_seconds``.

    ``request_sync`` asks the worker for a pass (coalesced); ``every`` sets its poll
    interval. Both are the session's (helpdesk/session.py).
    """

    def __init__(self, connect: Callable[[], imapclient.IMAPClient], *, watch: list[str],
                 poll_seconds: float, request_sync: Callable[[], None],
                 every: Callable[[float | None], None]) -> None:
        self.connect = connect
        self.watch = watch
        self.poll_seconds = poll_seconds
        self.request_sync = request_sync
        self._every = every
        self.stop_event = threading.Event()
        self.watchers: list[IdleWatcher] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Sync now and every ``poll_seconds``; watchers start after the first pass
        (:meth:`start_watchers`), so a server that refuses us is not hit N+1 times."""
        self._every(self.poll_seconds)

    def start_watchers(self) -> None:
        with self._lock:
            if self.watchers or self.stop_event.is_set():
                return
            for folder in self.watch:
                w = IdleWatcher(self.connect, folder, self.request_sync, self.stop_event)
                w.start()
                self.watchers.append(w)

    def wake(self) -> None:
        self.request_sync()

    def stop(self) -> None:
        self.stop_event.set()
        self._every(None)
        for w in self.watchers:
            w.join(timeout=2)

    def run(self) -> None:
        """Start and block until :meth:`stop` (the CLI's ``sync``)."""
        self.start()
        self.stop_event.wait()
