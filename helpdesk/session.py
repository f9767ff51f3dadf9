"""The core of one profile: store, team log, outbox, mail sync, and one owner of change.

Every change runs on one serial worker thread, in order: sync passes (mail folders,
the team log, the outbox), team-log publishing and the person's intents (claim,
reply, flags, cards...). Intents are queued onto it and answered as futures
(:meth:`Session.submit`), or waited for (:meth:`Session.call`, which runs inline when
already on the worker, so intents compose). Reads do not come here: they query the
store from any thread (SQLite in WAL mode lets readers see committed state while the
worker writes).

Why one owner: two threads (or a thread and the push loop) flushing the outbox or
folding the log at once is how a reply goes out twice or a claim's own fold triggers
a rebuild. Across processes (the GUI and a CLI on one database) the outbox's
compare-and-swap transitions (helpdesk/mail/outbox.py) and SQLite's write lock
(``BEGIN IMMEDIATE``) take over.

The worker owns two IMAP connections (:class:`ImapLink`): one for sync passes, one
for intents, so an intent can run between two batches of a long initial sync
(the sync's connection may be fetching the next batch meanwhile). IDLE watchers have
connections of their own (helpdesk/mail/push.py) and only wake the worker.
"""

from __future__ import annotations

import functools
import imaplib
import logging
import socket
import ssl
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import imapclient
import imapclient.exceptions

from helpdesk.changes import Changes
from helpdesk.clock import iso, utcnow
from helpdesk.config import Profile
from helpdesk.errors import HelpdeskError, MailError, StoreError
from helpdesk.mail.backfill import Backfill, SyncProgress
from helpdesk.mail.folders import FolderMap, probe
from helpdesk.mail.imap import connect, explain_network_error, logout_quietly
from helpdesk.mail.outbox import Outbox
from helpdesk.mail.sync import MailSync, SyncResult
from helpdesk.store import Store, open_store
from helpdesk.team.events import Event
from helpdesk.team.fold import FoldResult
from helpdesk.team.log import TeamLog

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

#: What a dropped connection raises (a NO or BAD answer is not in this list).
NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, imaplib.IMAP4.abort, socket.timeout, ssl.SSLError,
    imapclient.exceptions.IMAPClientAbortError)
#: A connection unused this long is probed (NOOP, short timeout) before use: a NAT or
#: firewall may have dropped it silently, and the first command would otherwise hang
#: for the whole socket timeout.
PROBE_AFTER = 60.0
PROBE_TIMEOUT = 5.0
SOCKET_TIMEOUT = 30.0


def expected(exc: BaseException) -> bool:
    """A failure of the world (a server said no, the network broke, ours), not of the
    code: told to the person plainly, not logged with a traceback."""
    return isinstance(exc, (HelpdeskError, *NETWORK_ERRORS,
                            imapclient.exceptions.IMAPClientError))


def describe(exc: BaseException, profile: Profile) -> str:
    """One plain sentence for any failure of a change (what failed, what to do)."""
    if isinstance(exc, HelpdeskError):
        return str(exc)
    if isinstance(exc, (*NETWORK_ERRORS, imapclient.exceptions.IMAPClientError)):
        return explain_network_error(exc, profile.imap, "IMAP")
    import sqlite3

    import sqlalchemy.exc

    if isinstance(exc, sqlite3.Error | sqlalchemy.exc.DBAPIError):
        return f"The local database {profile.database} could not be used ({exc})."
    return f"Unexpected problem ({type(exc).__name__}: {exc}); the details are in the log."


def as_helpdesk_error(exc: BaseException, profile: Profile) -> HelpdeskError:
    if isinstance(exc, HelpdeskError):
        return exc
    if isinstance(exc, (*NETWORK_ERRORS, imapclient.exceptions.IMAPClientError)):
        return MailError(describe(exc, profile))
    import sqlite3

    import sqlalchemy.exc

    if isinstance(exc, sqlite3.Error | sqlalchemy.exc.DBAPIError):
        return StoreError(describe(exc, profile))
    return HelpdeskError(describe(exc, profile))


class ImapLink:
    """One IMAP connection owned by the worker: opened on first use, healed when dropped.

    :meth:`use` runs ``fn(client)``; when the connection turns out to be dead (the
    server closed it, a NAT forgot it), it reconnects and runs ``fn`` once more, so
    ``fn`` must be safe to repeat (every caller's is: replays and syncs are
    incremental, events are idempotent by id, the outbox resumes from its state).
    """

    def __init__(self, connect_imap: Callable[[], imapclient.IMAPClient], name: str,
                 profile: Profile) -> None:
        self._connect = connect_imap
        self.name = name
        self.profile = profile
        self.probe_after = PROBE_AFTER
        self._client: imapclient.IMAPClient | None = None
        self._used = 0.0
        self.reconnects = 0

    def client(self) -> imapclient.IMAPClient:
        """A live connection: the open one (probed if idle for long), else a new one."""
        idle = time.monotonic() - self._used > self.probe_after
        if self._client is not None and idle and not self._probe(self._client):
            log.info("IMAP connection (%s) was dropped while idle; reconnecting", self.name)
            self.drop()
        if self._client is None:
            self._client = self._connect()
        self._used = time.monotonic()
        return self._client

    def _probe(self, client: imapclient.IMAPClient) -> bool:
        sock = None
        try:
            sock = client.socket()
            sock.settimeout(PROBE_TIMEOUT)
            client.noop()
            return True
        except Exception:
            return False
        finally:
            if sock is not None:
                try:
                    sock.settimeout(SOCKET_TIMEOUT)
                except OSError:
                    pass

    def use(self, fn: Callable[[imapclient.IMAPClient], T]) -> T:
        try:
            return fn(self.client())
        except NETWORK_ERRORS as exc:
            log.info("IMAP connection (%s) failed (%s); reconnecting and trying again",
                     self.name, type(exc).__name__)
            self.drop()
            self.reconnects += 1
        try:
            return fn(self.client())
        except NETWORK_ERRORS as exc:
            self.drop()
            raise MailError(explain_network_error(exc, self.profile.imap, "IMAP")) from exc

    def drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.shutdown()
            except Exception:
                pass

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            logout_quietly(client)


class _Job:
    __slots__ = ("fn", "future", "interleave", "name")

    def __init__(self, fn: Callable[[], Any], name: str, interleave: bool) -> None:
        self.fn = fn
        self.name = name
        self.interleave = interleave
        self.future: Future[Any] = Future()


SyncStep = Callable[[ImapLink], Changes]
BatchHook = Callable[[SyncResult], Changes]


class Session:
    """Store, profile, team log, outbox, mail sync and the serial worker of one desk."""

    def __init__(self, profile: Profile, store: Store | None = None,
                 connect_imap: Callable[[], imapclient.IMAPClient] | None = None) -> None:
        self.profile = profile
        self.store = store or open_store(profile.database)
        self.connect_imap: Callable[[], imapclient.IMAPClient] = \
            connect_imap or (lambda: connect(profile.imap))
        self.mail = MailSync(self.store, profile)
        self.backfill = Backfill(self.mail)
        #: How much of the mailbox is in (None: no pass yet); counted by the passes that
        #: fill in older mail and the first one after them (the counts then stay as they
        #: were; ``backfill.progress()`` counts afresh).
        self.progress: SyncProgress | None = None
        self.team = TeamLog(self.store, profile.imap.team_folder, profile.imap)
        self.outbox = Outbox(self.store)
        #: The server's folder names, known after the first connection.
        self.folders: FolderMap | None = None
        self.intents = ImapLink(self.open_imap, "intents", profile)
        self.syncer = ImapLink(self.open_imap, "sync", profile)
        #: Work after the mail folders in every sync pass, in order (the desk registers
        #: the team log and the outbox; each returns what it changed).
        self.sync_steps: list[tuple[str, SyncStep]] = []
        #: Called with each stored batch of mail (survey answers are scored there).
        self.batch_hooks: list[BatchHook] = []
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._in_pass = False
        self._sync_wanted = False
        self._next_pass: float | None = None  # monotonic time of the next automatic pass
        self._pass_every: float | None = None  # seconds between automatic passes (push)
        self._backoff = 0.0
        self._backoff_until = 0.0
        self.on_pass: Callable[[Changes | None, BaseException | None], None] | None = None

    @property
    def agent(self) -> str:
        return self.profile.agent

    def open_imap(self) -> imapclient.IMAPClient:
        """A new connection for the worker, checked: a server whose UID SEARCH is broken
        is refused here (helpdesk/mail/folders.py), and the first connection tells the
        session the server's names for the profile's folders."""
        client = self.connect_imap()
        try:
            folders = probe(client, self.profile.imap)
        except BaseException:
            logout_quietly(client)
            raise
        if self.folders is None:
            self.folders = folders
            self.team.folder = folders.team_folder()
        return client

    def watched_folders(self) -> list[str]:
        """Server names of the folders IDLE watches (inbox folders and the team log)."""
        settings = self.profile.imap
        if self.folders is None:
            return [*settings.folders, settings.team_folder]
        return [*self.folders.inbox_folders(), self.folders.team_folder()]

    # --- the serial worker ----------------------------------------------------------

    def on_worker(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, fn: Callable[[], T], name: str = "intent", *,
               interleave: bool = True) -> Future[T]:
        """Queue ``fn`` on the worker; its result (or its error, as a plain
        :class:`HelpdeskError`) arrives in the future. ``interleave``: may run between
        two batches of a sync pass (intents); sync work itself may not."""
        job = _Job(fn, name, interleave)
        with self._cond:
            if self._closing:
                raise HelpdeskError("The desk is closing; nothing more can be done now.")
            self._jobs.append(job)
            self._ensure_thread()
            self._cond.notify_all()
        return job.future

    def call(self, fn: Callable[[], T], name: str = "intent", *,
             interleave: bool = True) -> T:
        """Run ``fn`` on the worker and wait for it (inline when already there)."""
        if self.on_worker():
            return fn()
        return self.submit(fn, name, interleave=interleave).result()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="helpdesk-worker",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            job: _Job | None = None
            with self._cond:
                while True:
                    if self._jobs:
                        job = self._jobs.popleft()
                        break
                    if self._closing:
                        return
                    wait = self._until_pass()
                    if wait is not None and wait <= 0:
                        break
                    self._cond.wait(wait)
            if job is not None:
                self._execute(job)
            else:
                self._automatic_pass()

    def _until_pass(self) -> float | None:
        """Seconds until the next automatic sync pass is due (None: none planned)."""
        if self._sync_wanted:
            return max(0.0, self._backoff_until - time.monotonic())
        if self._next_pass is None:
            return None
        return self._next_pass - time.monotonic()

    def _execute(self, job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            result = job.fn()
        except BaseException as exc:
            job.future.set_exception(self._plain(exc, job.name))
        else:
            job.future.set_result(result)

    def _plain(self, exc: BaseException, what: str) -> BaseException:
        """The error a person is shown for ``exc`` (logged with its traceback when it was
        not one of ours); never raises, so the worker never dies."""
        try:
            if not expected(exc):
                log.error("%s failed unexpectedly:\n%s", what, "".join(
                    traceback.format_exception(type(exc), exc, exc.__traceback__)))
            error = as_helpdesk_error(exc, self.profile)
            if error is not exc:
                error.__cause__ = exc
            return error
        except BaseException:
            return exc

    def run_waiting_intents(self) -> None:
        """(On the worker, between batches of a sync pass.) Run the intents queued meanwhile."""
        while True:
            with self._cond:
                job = next((j for j in self._jobs if j.interleave), None)
                if job is None:
                    return
                self._jobs.remove(job)
            self._execute(job)

    # --- sync passes ------------------------------------------------------------------

    def request_sync(self) -> None:
        """Ask for a sync pass soon (an IDLE watcher saw a change, the person asked)."""
        with self._cond:
            self._sync_wanted = True
            self._ensure_thread()
            self._cond.notify_all()

    def every(self, seconds: float | None) -> None:
        """Run a sync pass every ``seconds`` (None: only when asked)."""
        with self._cond:
            self._pass_every = seconds
            self._next_pass = time.monotonic() if seconds is not None else None
            self._ensure_thread()
            self._cond.notify_all()

    def _automatic_pass(self) -> None:
        with self._cond:
            self._sync_wanted = False
            if self._pass_every is not None:
                self._next_pass = time.monotonic() + self._pass_every
        changes: Changes | None = None
        error: BaseException | None = None
        try:
            changes = self.sync_pass()
            self._backoff = 0.0
            if self.progress is not None and self.progress.more:
                with self._cond:
                    self._sync_wanted = True  # the next slice of older mail (or team
                    # history), after intents
        except BaseException as exc:
            error = as_helpdesk_error(exc, self.profile)
            self._backoff = min(max(1.0, self._backoff * 2), 300.0)
            self._backoff_until = time.monotonic() + self._backoff
            with self._cond:
                self._sync_wanted = True  # retry after the back-off
        if self.on_pass is not None:
            try:
                self.on_pass(changes, error)
            except Exception:
                log.exception("reporting a sync pass failed")

    @property
    def retry_in(self) -> float:
        """Seconds until the next attempt after a failed automatic pass."""
        return self._backoff

    def sync_pass(self) -> Changes:
        """One pass: the mail folders' new mail (intents may run between batches), then
        every registered step, then a slice of older mail when a folder is still being
        back-filled (:attr:`progress` says; an automatic pass then asks for the next).
        Runs on the worker; callers elsewhere go through :meth:`call`."""
        if not self.on_worker():
            return self.call(self.sync_pass, "sync", interleave=False)
        if self._in_pass:
            # Asked for by an intent that runs between two batches of a pass: the pass
            # under way covers it; one more follows it for anything it already passed.
            with self._cond:
                self._sync_wanted = True
            return Changes(set(), set())
        self._in_pass = True
        try:
            changes = Changes(set(), set())

            def stored(batch: SyncResult) -> None:
                for hook in self.batch_hooks:
                    changes.merge(hook(batch))
                self.run_waiting_intents()
                if self._closing:  # what is stored stays stored; the rest next time
                    raise HelpdeskError("The sync stopped because the desk is closing.")

            result = self.syncer.use(lambda c: self.mail.sync_all(c, on_batch=stored))
            changes.merge(Changes.of_mail(result))
            for _name, step in self.sync_steps:
                self.run_waiting_intents()
                changes.merge(step(self.syncer))
            # Older mail, one slice per pass; not in the pass that just stored a folder's
            # newest mail, which ends (and shows the latest tickets) as soon as it can.
            pending = self.backfill.pending()
            if pending and not self.mail.started_newest_first:
                self.run_waiting_intents()
                older = self.syncer.use(lambda c: self.backfill.run(c, on_batch=stored))
                changes.merge(Changes.of_mail(older))
            history = self.team.history_due()
            if pending or history or self.progress is None or self.progress.more:
                # Counting is an index scan (ms at 100,000): not in every no-change pass.
                self.progress = replace(self.backfill.progress(), team_history=history)
        except BaseException as exc:
            self._record_error(exc)
            if not expected(exc):
                log.error("sync failed unexpectedly:\n%s", traceback.format_exc())
            raise as_helpdesk_error(exc, self.profile) from exc
        finally:
            self._in_pass = False
        self._record_ok()
        return changes

    def _record_ok(self) -> None:
        with self.store.begin() as conn:
            self.store.set_meta("sync.last_ok", iso(utcnow()), conn)
            self.store.set_meta("sync.last_error", None, conn)

    def _record_error(self, exc: BaseException) -> None:
        try:
            with self.store.begin() as conn:
                self.store.set_meta("sync.last_error", describe(exc, self.profile), conn)
                self.store.set_meta("sync.last_error_at", iso(utcnow()), conn)
        except Exception:
            log.warning("could not record the sync error", exc_info=True)

    # --- the team log -----------------------------------------------------------------

    def event(self, etype: str, subject: str, **data: Any) -> Event:
        return Event(type=etype, agent=self.agent, subject=subject, data=data)

    def publish(self, *events: Event, link: ImapLink | None = None
                ) -> tuple[Changes, FoldResult]:
        """Append events to the team log and fold up to them (confirmed, settle-checked).

        On the worker, on ``link`` (default: the intents connection). Repeating after a
        dropped connection is safe: an event appended twice is folded once.
        """
        if not self.on_worker():
            return self.call(lambda: self.publish(*events, link=link))
        own = link or self.intents

        def append(client: imapclient.IMAPClient) -> tuple[FoldResult, datetime, datetime]:
            before = utcnow()
            return self.team.publish(client, list(events)), before, utcnow()

        fold, before, after = own.use(append)
        at = self.team.server_time_of_event(events[-1].id)
        if at is not None:
            # Server clock minus ours, measured at the midpoint of the round trip.
            mid = before + (after - before) / 2
            self.store.set_meta("team.offset", f"{(at - mid).total_seconds():.3f}")
        return self.changes_of(fold), fold

    def replay(self, link: ImapLink | None = None, live_first: bool = False) -> Changes:
        """Fold teammates' new events now. ``live_first`` (the sync pass): a new desktop
        joining from a snapshot stops once the live state is in, and the next pass
        stores the team history (:meth:`TeamLog.replay`)."""
        if not self.on_worker():
            return self.call(lambda: self.replay(link, live_first))
        own = link or self.intents
        return self.changes_of(own.use(
            lambda client: self.team.replay(client, live_first=live_first)))

    def changes_of(self, fold: FoldResult) -> Changes:
        for ticket, previous, by in fold.taken_over:
            if previous == self.agent:
                log.warning("%s took over ticket %s from you", by, ticket)
        me = self.agent
        return Changes(set(fold.tickets), set(fold.customers), fold.cards,
                       taken_over=[t for t in fold.taken_over if t[1] == me],
                       mentioned=[(t, by) for t, a, by in fold.mentions if a == me] or None,
                       assigned=[(t, by) for t, a, by in fold.assigned
                                 if a == me and by != me] or None,
                       tags=fold.tags)

    def server_now(self) -> datetime:
        """Best estimate of the server's clock: ours plus the offset seen on our last event."""
        offset = self.store.get_meta("team.offset")
        return utcnow() + timedelta(seconds=float(offset or 0))

    # --- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Finish the queued work, stop the worker, close connections and the store."""
        with self._cond:
            self._closing = True
            self._pass_every = None
            self._next_pass = None
            self._sync_wanted = False
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and not self.on_worker():
            thread.join(timeout=30)
        self.intents.close()
        self.syncer.close()
        self.store.close()


class HasSession(Protocol):
    session: Session


S = TypeVar("S", bound=HasSession)


def intent(fn: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """A method that changes something: it runs on its session's serial worker."""
    @functools.wraps(fn)
    def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.session.call(lambda: fn(self, *args, **kwargs), fn.__name__)
    return run
