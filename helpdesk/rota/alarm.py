"""A wake-up for moments no mail or event announces: a hand-off falling due, a week ending.

With IDLE, a desktop syncs when something changes on the server; nothing changes when a
ticket has waited its N minutes or when the team's Monday begins. :class:`Alarm` keeps
one timer at the earliest moment asked for (server time) and then asks the session for
a sync pass, whose rota step does the work (the decision stays with the fold). It is off
until the desk's push loop runs (a one-off ``sync --once`` needs none) and off for good
once closed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

MAX_SLEEP = 6 * 3600.0  # re-armed by every pass anyway; a long sleep is re-checked


class Alarm:
    def __init__(self, now: Callable[[], datetime], fire: Callable[[], None]) -> None:
        self._now = now
        self._fire = fire
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._at: datetime | None = None
        self.enabled = False
        self._closed = False

    def at(self, when: datetime) -> None:
        """Ask for a sync pass at server time ``when`` (the earliest request wins)."""
        with self._lock:
            if not self.enabled or self._closed:
                return
            if self._timer is not None and self._timer.is_alive() and self._at is not None \
                    and self._at <= when:
                return
            if self._timer is not None:
                self._timer.cancel()
            delay = min(MAX_SLEEP, max(0.0, (when - self._now()).total_seconds()) + 1.0)
            self._at = when
            self._timer = threading.Timer(delay, self._ring)
            self._timer.daemon = True
            self._timer.start()

    def _ring(self) -> None:
        with self._lock:
            self._timer, self._at = None, None
            if self._closed:
                return
        self._fire()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
