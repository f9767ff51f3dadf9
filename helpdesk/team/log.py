"""The team log on the IMAP server: append events, replay them in UID order.

- Append with ``\\Seen`` and no date, so INTERNALDATE is the server's clock.
- Learn our event's UID from APPENDUID (UIDPLUS); without UIDPLUS, search for
  the event's nonce header from the UIDNEXT seen before appending.
- Replay incrementally from a cursor (the last UID read), one transaction per
  window of messages together with the cursor, so a crash never folds an event
  twice. Each transaction re-reads the cursor: another thread or process sharing
  the database may have folded some of the window already (those are not read
  twice, and ``team.seen`` counts each message once), or rebuilt the state (the
  replay then starts again from the new cursor).
- Nothing in the folder can stop the replay: sizes are read first and oversized
  messages are never downloaded; undecodable ones are skipped; every message the
  server showed is recorded as read (``team_events``, ``team_pending``,
  ``team_skipped``), so the cursor always moves on and the store knows exactly
  which UIDs it has read.
- Events this build does not understand are kept (``team_pending``); a build that
  understands them refolds the stored events, in UID order, without the server.
- UIDVALIDITY of the log changing means a rebuild from the log (a new lock epoch).
  So does a message appearing below the cursor (guarded after every full replay,
  and after folding up to our own event: the settle check). Every rebuild and
  refold is atomic: the new state is folded in ONE transaction, from messages
  staged beforehand (a temporary table, so memory stays flat), and readers see
  the old state until it commits.
"""

from __future__ import annotations

import imaplib
import logging
import re
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, NamedTuple

import imapclient
from sqlalchemy import Connection, text

from helpdesk.config import ImapSettings
from helpdesk.errors import HelpdeskError
from helpdesk.mail.folders import FolderMap, ensure_folder
from helpdesk.mail.folders import append as append_message
from helpdesk.mail.imap import examine, fetch_sizes_dated, selected, uid_set
from helpdesk.mail.threads import REFOLD_KEY
from helpdesk.store import Store, aliases
from helpdesk.store.engine import raw_cursor
from helpdesk.team.events import (
    NONCE_HEADER,
    Event,
    EventError,
    check_encodable,
    decode_body,
    encode,
)
from helpdesk.team.fold import (
    ClaimOutcome,
    FoldResult,
    Note,
    Refused,
    Registry,
    apply_event,
    db_time,
    default_registry,
    note,
    parse_db_time,
    reset_team_state,
)
from helpdesk.team.reader import FETCH_BATCH, VANISHED, LogMessage, Window, read_log
from helpdesk.team.registry import STATE
from helpdesk.team.snapshot_reader import Found, find_snapshot
from helpdesk.team.snapshots import (
    BadSnapshot,
    checking_from,
    load_history,
    load_state,
    this_layout,
)
from helpdesk.team.state import LoadedState

log = logging.getLogger(__name__)

__all__ = ["FETCH_BATCH", "TeamLog"]

_APPENDUID = re.compile(rb"APPENDUID\s+(\d+)\s+(\d+)", re.IGNORECASE)
_STREAM = 1000  # staged rows per fetchmany while folding a rebuild
_BATCH = 500  # messages folded under one SAVEPOINT
_REBUILD_CACHE_KB = 64 * 1024  # SQLite page cache while a rebuild folds (memory, bounded)
_ATTEMPTS = 4  # replays restarted because another process rebuilt meanwhile
_META_KEYS = ("team.uidvalidity", "team.cursor", "team.clock", "team.seen", "team.reread",
              "team.base", "team.later", "team.refused")
_REFUSED_KEPT = 20  # digests of snapshots that could not be stored here, remembered
# Marks this far behind the end of the log are not worth a digest (each costs a pass
# over team state): a desktop catching up checks only the recent ones.
CHECK_SPAN = 20_000


class _Undo(Exception):
    """Roll back a snapshot's load that turned out unusable (logged already)."""


class _State(NamedTuple):
    clock: datetime | None
    seen: int
    kept: bool  # team_pending may hold ids (so look duplicates up there)


@dataclass(frozen=True)
class _Meta:
    uidvalidity: int | None
    cursor: int
    clock: datetime | None
    seen: int
    reread: bool  # a store folded before events were kept: read the log again, once
    base: int  # the snapshot mark this store was loaded from (0: folded from UID 1)
    later: str | None = None  # digest of the snapshot whose history is still to be stored
    refused: tuple[str, ...] = ()  # snapshots that could not be stored here


def _meta(cur: sqlite3.Cursor) -> _Meta:
    rows: dict[str, str | None] = dict(cur.execute(
        f"SELECT key, value FROM meta WHERE key IN ({', '.join('?' * len(_META_KEYS))})",
        _META_KEYS).fetchall())
    v, c, t = rows.get("team.uidvalidity"), rows.get("team.cursor"), rows.get("team.clock")
    return _Meta(int(v) if v else None, int(c or 0), parse_db_time(t) if t else None,
                 int(rows.get("team.seen") or 0), bool(rows.get("team.reread")),
                 int(rows.get("team.base") or 0), rows.get("team.later") or None,
                 tuple((rows.get("team.refused") or "").split()))


def _set_meta(cur: sqlite3.Cursor, **values: str | None) -> None:
    cur.executemany("INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [(f"team.{k}", v) for k, v in values.items()])


class TeamLog:
    """Replays the team folder into ``store``; every call runs on the caller's connection.

    ``registry``: the fold handlers of this build (default: all of them); a smaller
    one stands for an older build. ``folder`` is the server's name of the log (the
    session maps the profile's ``team_folder`` once it knows the server's namespace).
    """

    def __init__(self, store: Store, folder: str, settings: ImapSettings | None = None,
                 registry: Registry | None = None) -> None:
        self.store = store
        self.folder = folder
        self.settings = settings
        self.registry = registry or default_registry()
        # The snapshot whose live state this desktop has just stored, its history to
        # store next: (digest, parsed). Gone with the process: then it is read again.
        self._later: tuple[str, LoadedState] | None = None

    # --- cursor ----------------------------------------------------------------

    def cursor(self) -> tuple[int | None, int, datetime | None]:
        """(uidvalidity, last folded uid, server clock T of the last event)."""
        m = self._meta()
        return m.uidvalidity, m.cursor, m.clock

    def _meta(self) -> _Meta:
        with self.store.read() as conn:
            return _meta(raw_cursor(conn))

    def history_due(self) -> bool:
        """Has this store the live state of a snapshot and not yet its history (notes,
        cared answers, old status changes)? The next replay stores it, then what
        follows the mark."""
        return self._meta().later is not None

    # --- folder ----------------------------------------------------------------

    def select(self, client: imapclient.IMAPClient) -> dict[bytes, Any]:
        """Select the log folder (read-write: we APPEND to it while it is selected, which
        Courier refuses on a read-only selection), creating it when missing."""
        try:
            return examine(client, self.folder, readonly=False)
        except imapclient.exceptions.IMAPClientError:
            if client.folder_exists(self.folder):
                raise
            self._create(client)
            return examine(client, self.folder, readonly=False)

    def _create(self, client: imapclient.IMAPClient) -> None:
        if self.settings is not None:
            ensure_folder(client, FolderMap.of(client, self.settings),
                          self.settings.team_folder, "team_folder")
        else:
            client.create_folder(self.folder)
        log.info("created the team log folder %s", self.folder)

    # --- replay ----------------------------------------------------------------

    def replay(self, client: imapclient.IMAPClient, upto: int | None = None,
               own: dict[int, int] | None = None, *, live_first: bool = False
               ) -> FoldResult:
        """Fold every new event (or up to UID ``upto``).

        When the log is the selected folder and ``upto`` is given (right after our
        own APPEND), the new range is read straight away. Otherwise EXAMINE first
        (UIDVALIDITY check, cheap no-change exit via UIDNEXT, the below-the-cursor
        check). Events this build understands but an older one kept are refolded
        first, from the store. ``own``: UID -> size of the events we just appended
        (their sizes need not be asked). ``live_first``: a desktop joining from a
        snapshot returns once its live state is stored (a sync pass: the window shows
        it); the next replay stores the history, then folds what follows the mark.
        """
        result = FoldResult()
        self._refold_if_understood(result)
        for _attempt in range(_ATTEMPTS):
            if self._replay_once(client, upto, result, own, live_first):
                break
        return result

    def _replay_once(self, client: imapclient.IMAPClient, upto: int | None,
                     result: FoldResult, own: dict[int, int] | None = None,
                     live_first: bool = False) -> bool:
        """One pass; False when it must start again (the state was rebuilt meanwhile)."""
        m = self._meta()
        if upto is not None and m.uidvalidity is not None and not m.reread and not m.later:
            if upto <= m.cursor:
                return True
            if selected(client) == self.folder:
                return self._catch_up(client, m.uidvalidity, m.cursor, upto, result,
                                      must_see=upto, own=own)
        info = self.select(client)
        uidvalidity = int(info[b"UIDVALIDITY"])
        exists = int(info.get(b"EXISTS", 0))
        uidnext = int(info.get(b"UIDNEXT", 0)) or None
        end = uidnext - 1 if uidnext else self._last_uid(client)
        if m.uidvalidity is None:
            if self._join(client, uidvalidity, end or 0, exists, replace=False,
                          refused=frozenset(m.refused)):
                if live_first and self._later is not None:  # set by _load
                    # Useful now: the live state is in. Its history, then what follows
                    # the mark, in the next replay (the session asks for it at once).
                    result.merge(_Tally().summary())
                    return True
                return False  # again, from the snapshot's mark
            self._start(uidvalidity)  # a new desktop: nothing folded yet, nothing to hide
            m = self._meta()
        elif m.later is not None and m.uidvalidity == uidvalidity and not m.reread:
            self._finish_history(client, m, uidvalidity, end or 0, exists, result)
            return False  # again: from the mark (or, without the snapshot, from the start)
        elif m.uidvalidity != uidvalidity or m.reread:
            if m.reread:
                log.info("team log: reading the log again once, keeping events of every "
                         "version this time")
            else:
                log.warning("team log UIDVALIDITY changed (%s -> %s): rebuilding team state "
                            "from the log (new lock epoch)", m.uidvalidity, uidvalidity)
            self._rebuild_from(client, uidvalidity, max(end or 0, upto or 0), result)
            return False  # again, from the rebuilt cursor
        if end and m.cursor and exists < end - m.cursor and self._left_behind(
                client, uidvalidity, end, exists, m.cursor):
            return False  # again, from the snapshot that covers what was archived
        last = upto if upto is not None else end
        if last is not None and last > m.cursor and \
                not self._catch_up(client, uidvalidity, m.cursor, last, result, own=own):
            return False
        if upto is None and exists and self._meta().seen < exists \
                and self._missing_below(client):
            log.warning("team log: a message appeared below the replay cursor; rebuilding")
            self._rebuild_from(client, uidvalidity, end or 0, result)
            return False
        return True

    def _last_uid(self, client: imapclient.IMAPClient) -> int | None:
        """The highest UID in the selected log, for servers that announce no UIDNEXT."""
        found = client.search(["ALL"])
        return int(max(found)) if found else None

    def _catch_up(self, client: imapclient.IMAPClient, uidvalidity: int, cursor: int,
                  last: int, result: FoldResult, must_see: int | None = None,
                  own: dict[int, int] | None = None) -> bool:
        """Read and fold ``cursor + 1 .. last`` window by window; False if stale."""
        expected = cursor
        with checking_from(last - CHECK_SPAN):
            for window in read_log(client, cursor + 1, last, must_see=must_see, known=own):
                moved = self._fold(uidvalidity, expected, window, result)
                if moved is None:
                    return False
                expected = moved
        return True

    def _fold(self, uidvalidity: int, expected: int, window: Window,
              result: FoldResult) -> int | None:
        """Fold one window in one transaction with the cursor; the new cursor, or None
        when the state is not the one we read from (rebuilt by someone else)."""
        with self.store.begin() as conn:
            cur = raw_cursor(conn)
            m = _meta(cur)
            if m.uidvalidity != uidvalidity or m.cursor < expected or m.reread:
                return None
            fresh = [msg for msg in window.messages if msg.uid > m.cursor]
            clock, seen = self._fold_messages(cur, fresh, m.clock, m.seen, result)
            result.uids.update(msg.uid for msg in fresh)
            cursor = max(m.cursor, window.top)
            _set_meta(cur, cursor=str(cursor), seen=str(seen),
                      clock=db_time(clock) if clock else None)
            return cursor

    def _fold_messages(self, cur: sqlite3.Cursor, messages: Iterable[LogMessage],
                       clock: datetime | None, seen: int, result: FoldResult
                       ) -> tuple[datetime | None, int]:
        """Fold messages in UID order; every one is recorded as read, none can raise
        but for database trouble. Returns the clock and the count of messages read.

        Batches of messages are folded under one SAVEPOINT each; only a batch in which
        a handler refused an event is undone and folded again with a SAVEPOINT per
        event (so a bad event costs its batch a second pass, and good ones nothing).
        Log lines are held until their batch is kept: one line per message.
        """
        state = _State(clock, seen, cur.execute(
            "SELECT EXISTS (SELECT 1 FROM team_pending)").fetchone()[0] == 1)
        pending = iter(messages)
        notes: list[Note]
        while batch := list(islice(pending, _BATCH)):
            part, notes = FoldResult(), []
            cur.execute("SAVEPOINT fold_batch")
            try:
                after = self._fold_batch(cur, batch, state, part, notes, atomic=False)
            except Refused:
                cur.execute("ROLLBACK TO fold_batch")
                part, notes = FoldResult(), []
                after = self._fold_batch(cur, batch, state, part, notes, atomic=True)
            cur.execute("RELEASE fold_batch")
            state = after
            result.merge(part)
            for level, fmt, args in notes:
                log.log(level, fmt, *args)
        return state.clock, state.seen

    def _fold_batch(self, cur: sqlite3.Cursor, batch: list[LogMessage], state: _State,
                    result: FoldResult, notes: list[Note], atomic: bool) -> _State:
        clock, seen, kept = state
        for msg in batch:
            seen += 1
            if msg.at is not None and (clock is None or msg.at > clock):
                clock = msg.at  # monotone clamp: T(e) = max(T(prev), INTERNALDATE(e))
            if msg.body is None:
                problem = msg.problem or VANISHED
                if problem == VANISHED:
                    note(notes, logging.INFO, "team log: message uid %d %s", msg.uid, problem)
                else:
                    note(notes, logging.WARNING, "team log: skipped message uid %d: %s",
                         msg.uid, problem)
                    result.skipped += 1
                _skip(cur, msg.uid, problem)
                continue
            try:
                event = decode_body(msg.body)
            except EventError as exc:
                note(notes, logging.WARNING, "team log: skipped message uid %d: %s", msg.uid,
                     exc)
                result.skipped += 1
                _skip(cur, msg.uid, str(exc)[:200])
                continue
            if clock is None:  # a server that gave no INTERNALDATE at all
                note(notes, logging.WARNING, "team log: skipped message uid %d: no server "
                     "date", msg.uid)
                result.skipped += 1
                _skip(cur, msg.uid, "no server date")
                continue
            body = msg.body.decode("utf-8", "replace")
            done = apply_event(cur, event, msg.uid, clock, body, result, self.registry, kept,
                               atomic=atomic, notes=notes)
            kept = kept or done == "pending"
            if done in ("duplicate", "unstored"):
                if done == "duplicate":
                    note(notes, logging.INFO, "team log: uid %d repeats event %s", msg.uid,
                         event.id[:8])
                _skip(cur, msg.uid, done)
        return _State(clock, seen, kept)

    # --- rebuilds ----------------------------------------------------------------

    def _start(self, uidvalidity: int) -> None:
        """A first replay into a store that never folded this log (unless another
        process sharing the database has just started one)."""
        with self.store.begin() as conn:
            cur = raw_cursor(conn)
            if _meta(cur).uidvalidity is not None:
                return
            reset_team_state(cur, self.registry)
            cur.execute("DELETE FROM team_skipped")
            _set_meta(cur, uidvalidity=str(uidvalidity), cursor="0", clock=None, seen="0",
                      reread=None, later=None)

    def rebuild(self, client: imapclient.IMAPClient) -> FoldResult:
        """Forget the fold and fold the whole log again (atomically), then anything new."""
        info = self.select(client)
        uidnext = int(info.get(b"UIDNEXT", 0)) or None
        end = uidnext - 1 if uidnext else self._last_uid(client)
        result = FoldResult()
        self._rebuild_from(client, int(info[b"UIDVALIDITY"]), end or 0, result)
        result.merge(self.replay(client))
        result.tickets.add("*")
        return result

    def _rebuild_from(self, client: imapclient.IMAPClient, uidvalidity: int, last: int,
                      result: FoldResult) -> None:
        """Read the log up to ``last`` into a staging table, then replace team state with
        its fold in one transaction: readers see the old state until then. A compacted
        log (its first messages moved to the archive) is rebuilt from its newest agreed
        snapshot instead, when there is one."""
        lowest = self._lowest_uid(client)
        if lowest is not None and lowest > 1:
            info = dict(client.folder_status(self.folder, [b"MESSAGES"]))
            if self._join(client, uidvalidity, last, int(info.get(b"MESSAGES", 0)),
                          replace=True, min_mark=lowest - 1, forced=True):
                return
            log.warning("team log: the log starts at uid %d (older events archived) and no "
                        "agreed snapshot covers them: rebuilding from what remains", lowest)
        with self.store.engine.connect() as conn:
            cur = raw_cursor(conn)
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS team_stage (uid INTEGER PRIMARY KEY, "
                        "at VARCHAR, size INTEGER NOT NULL, body BLOB, problem VARCHAR)")
            try:
                cur.execute("DELETE FROM temp.team_stage")
                top = 0
                for window in (read_log(client, 1, last) if last > 0 else ()):
                    with conn.begin():  # the temporary database only: no write lock
                        cur.executemany(
                            "INSERT OR REPLACE INTO temp.team_stage VALUES (?, ?, ?, ?, ?)",
                            [(m.uid, db_time(m.at) if m.at else None, m.size, m.body,
                              m.problem) for m in window.messages])
                    top = max(top, window.top)
                rebuilt = _Tally()
                conn.execution_options(helpdesk_write=True)
                with _big_cache(cur), conn.begin(), checking_from(top - CHECK_SPAN):
                    reset_team_state(cur, self.registry)
                    cur.execute("DELETE FROM team_skipped")
                    clock, seen = self._fold_messages(cur, _staged(conn), None, 0, rebuilt)
                    _settle_aliases(cur)
                    _set_meta(cur, uidvalidity=str(uidvalidity), cursor=str(top),
                              clock=db_time(clock) if clock else None, seen=str(seen),
                              reread=None, base=None, later=None)
            finally:
                cur.execute("DROP TABLE IF EXISTS temp.team_stage")
        log.info("team log: rebuilt team state from %d messages (%d events)", seen,
                 rebuilt.events)
        result.merge(rebuilt.summary())

    def _missing_below(self, client: imapclient.IMAPClient) -> bool:
        """Is a message visible at or below the cursor that this store never read?"""
        m = self._meta()
        cursor, base = m.cursor, m.base
        if cursor <= base:
            return False
        # Below a snapshot's mark nothing was read, by design: only above it counts.
        visible = {u for u in client.search(["UID", f"{base + 1}:{cursor}"])
                   if base < u <= cursor}
        missing = visible - self._read_uids(base + 1, cursor)
        if not missing:
            return False
        # Only what a FETCH shows counts (what SEARCH shows and FETCH does not, the
        # replay could never read either).
        return bool(fetch_sizes_dated(client, uid_set(sorted(missing))))

    def _read_uids(self, lo: int, hi: int) -> set[int]:
        """The UIDs in ``lo..hi`` this store has read (events, kept, skipped)."""
        with self.store.read() as conn:
            return {int(u) for (u,) in conn.execute(text(
                "SELECT uid FROM team_events WHERE uid BETWEEN :lo AND :hi UNION ALL "
                "SELECT uid FROM team_pending WHERE uid BETWEEN :lo AND :hi UNION ALL "
                "SELECT uid FROM team_skipped WHERE uid BETWEEN :lo AND :hi"),
                {"lo": lo, "hi": hi})}

    # --- snapshots ----------------------------------------------------------------

    def _lowest_uid(self, client: imapclient.IMAPClient) -> int | None:
        """The lowest UID in the selected log (sequence number 1), None when empty."""
        try:
            typ, data = client._imap.fetch("1", "(UID)")
        except imapclient.exceptions.IMAPClientError as exc:
            if isinstance(exc, imaplib.IMAP4.abort):
                raise  # the connection, not an empty folder
            return None  # BAD/NO: an empty folder has no message 1
        if typ != "OK":
            return None
        for item in data:
            raw = item[0] if isinstance(item, tuple) else item
            found = re.search(rb"UID (\d+)", raw or b"")
            if found:
                return int(found.group(1))
        return None

    def _left_behind(self, client: imapclient.IMAPClient, uidvalidity: int, end: int,
                     exists: int, cursor: int) -> bool:
        """Fewer messages above the cursor than UIDs: were the ones right after it moved
        to the archive (a compaction while this desktop was away)? Then load the newest
        agreed snapshot that covers them (True: loaded; replay again from it)."""
        lowest = self._lowest_uid(client)
        if lowest is None or lowest <= cursor + 1:
            return False
        if self._join(client, uidvalidity, end, exists, replace=True, min_mark=lowest - 1):
            return True
        log.warning("team log: events %d to %d were archived while this desktop was away "
                    "and no agreed snapshot covers them; continuing without them (rebuild "
                    "from the archive is not supported yet)", cursor + 1, lowest - 1)
        return False

    def _join(self, client: imapclient.IMAPClient, uidvalidity: int, end: int, exists: int,
              *, replace: bool, min_mark: int = 1, forced: bool = False,
              refused: frozenset[str] = frozenset()) -> bool:
        """Load the newest agreed snapshot of this log (at or above ``min_mark``) and set
        the cursor to its mark and the clock to its clamped time. ``replace``: team
        state exists and is replaced (atomically: readers see the old state until the
        commit); else only a store that has folded nothing is filled, and with the live
        state only (its history is stored by the next replay: :meth:`_finish_history`).
        True if loaded."""
        if self.registry is not default_registry() or end < 1:
            return False  # another build's fold (tests, tools): snapshots are not its own
        found = find_snapshot(client, end, exists, this_layout(), uidvalidity, STATE,
                              min_mark, refused=refused)
        if found is None:
            return False
        try:
            return self._load(found, uidvalidity, replace, forced)
        except _Undo:
            return False

    def _load(self, found: Found, uidvalidity: int, replace: bool, forced: bool) -> bool:
        with self.store.begin() as conn:
            cur = raw_cursor(conn)
            m = _meta(cur)
            if (m.uidvalidity is not None and not replace) or (
                    replace and not forced and (m.uidvalidity != uidvalidity
                                                or m.cursor >= found.mark)):
                return False  # another process on this database moved first
            later = not replace and found.state is not None and bool(found.state.later)
            try:
                with _big_cache(cur):  # a snapshot is the whole team state at once
                    state = load_state(cur, found.canonical, self.registry, found.state,
                                       history=not later)
            except BadSnapshot as exc:
                log.warning("team log: snapshot %s at uid %d cannot be loaded: %s",
                            found.digest[:12], found.mark, exc)
                raise _Undo() from None
            _settle_aliases(cur)  # messages synced before it go where its merges say
            _set_meta(cur, uidvalidity=str(uidvalidity), cursor=str(found.mark),
                      clock=state.clock, seen=str(found.seen), reread=None,
                      base=str(found.mark), later=found.digest if later else None)
        if later:
            self._later = (found.digest, state)
        log.info("team log: loaded the snapshot at uid %d (by %s, acknowledged by %s); "
                 "%sreplaying only what follows", found.mark, found.agent,
                 ", ".join(found.acked_by), "its history next, then " if later else "")
        return True

    def _finish_history(self, client: imapclient.IMAPClient, m: _Meta, uidvalidity: int,
                        end: int, exists: int, result: FoldResult) -> None:
        """Store the history of the snapshot whose live state this store holds (one
        transaction). Read again from the log when this process did not load it (a
        restart); a snapshot no longer there, or whose history cannot be stored, is
        forgotten: the next replay joins again (another snapshot, or the whole log)."""
        digest = m.later or ""
        held, self._later = self._later, None
        state = held[1] if held is not None and held[0] == digest else None
        if state is None:
            found = find_snapshot(client, end, exists, this_layout(), uidvalidity, STATE,
                                  m.base, refused=frozenset(m.refused))
            if found is not None and found.digest == digest and found.state is not None:
                state = found.state
        result.merge(_Tally().summary())
        if state is None:
            log.warning("team log: the snapshot at uid %d whose history this desktop was "
                        "storing is no longer the newest agreed one in the log; joining "
                        "again", m.base)
            self._forget(digest, None)
            return
        try:
            with self.store.begin() as conn:
                cur = raw_cursor(conn)
                now = _meta(cur)
                if now.later != digest or now.base != m.base:
                    return  # another process on this database stored (or replaced) it
                with _big_cache(cur):
                    load_history(cur, state)
                _set_meta(cur, later=None)
        except BadSnapshot as exc:
            log.warning("team log: the history of snapshot %s at uid %d cannot be stored: "
                        "%s; folding the log without this snapshot", digest[:12], m.base, exc)
            self._forget(digest, digest)
            return
        log.info("team log: stored the history of the snapshot at uid %d", m.base)

    def _forget(self, loaded: str, refuse: str | None) -> None:
        """Team state as on a desktop that never folded the log (unless the history of
        the snapshot ``loaded`` is no longer due: another process on this database
        stored it meanwhile), ``refuse`` (a digest) remembered as not to be loaded
        again."""
        with self.store.begin() as conn:
            cur = raw_cursor(conn)
            m = _meta(cur)
            if m.later != loaded:
                return
            refused = list(m.refused) + ([refuse] if refuse else [])
            reset_team_state(cur, self.registry)
            cur.execute("DELETE FROM team_skipped")
            _settle_aliases(cur)
            cur.execute("DELETE FROM meta WHERE key IN "
                        f"({', '.join('?' * len(_META_KEYS))})", _META_KEYS)
            if refused:
                _set_meta(cur, refused=" ".join(refused[-_REFUSED_KEPT:]))

    # --- refold (an upgrade understands kept events) ------------------------------

    def _refold_if_understood(self, result: FoldResult) -> None:
        with self.store.read() as conn:
            kept = conn.execute(text("SELECT DISTINCT type, v FROM team_pending")).all()
            asked = conn.execute(text("SELECT value FROM meta WHERE key = :k"),
                                 {"k": REFOLD_KEY}).scalar()
        if asked or any(self.registry.understands(t, int(v)) for t, v in kept):
            if self._meta().base:
                # Loaded from a snapshot: the events before its mark are not in this
                # store to fold again, so the log is read again instead (once).
                log.info("team log: this version understands kept events; reading the "
                         "log again (the store began at a snapshot)")
                with self.store.begin() as conn:
                    _set_meta(raw_cursor(conn), reread="1")
                return
            result.merge(self.refold())

    def refold(self) -> FoldResult:
        """Fold team state again from the events stored locally, in UID order, in one
        transaction: what a desktop that always understood them has (cursor, clock and
        the messages read are unchanged; no server involved)."""
        result = _Tally()
        with self.store.engine.connect() as conn:
            conn.execution_options(helpdesk_write=True)
            cur = raw_cursor(conn)
            with _big_cache(cur), conn.begin(), checking_from(self._meta().cursor - CHECK_SPAN):
                kept = cur.execute("SELECT DISTINCT type, v FROM team_pending").fetchall()
                asked = cur.execute("SELECT value FROM meta WHERE key = ?",
                                    (REFOLD_KEY,)).fetchone()
                if not asked and not any(self.registry.understands(t, int(v))
                                         for t, v in kept):
                    return FoldResult()  # another process refolded meanwhile
                if asked:
                    log.info("team log: linked threads merged tickets that had team state: "
                             "folding the log again from the local store")
                else:
                    log.info("team log: folding kept events this version understands "
                             "(refold from the local store)")
                cur.execute("DROP TABLE IF EXISTS temp.team_refold")
                cur.execute("CREATE TEMP TABLE team_refold (uid INTEGER PRIMARY KEY, "
                            "at VARCHAR NOT NULL, body TEXT NOT NULL)")
                cur.execute("INSERT INTO temp.team_refold SELECT uid, at, body FROM team_events "
                            "UNION ALL SELECT uid, at, body FROM team_pending")
                reset_team_state(cur, self.registry)
                self._fold_messages(cur, _stored(conn), None, 0, result)
                _settle_aliases(cur)
                cur.execute("DROP TABLE temp.team_refold")
        return result.summary()

    # --- publishing ------------------------------------------------------------

    def append(self, client: imapclient.IMAPClient, event: Event) -> int:
        """APPEND one event; return its UID (APPENDUID, else the nonce search).

        An event every desktop would skip (too large, unstorable text) is refused
        here, with a message for a person, instead of being silently lost.
        """
        return self._append(client, event)[0]

    def _append(self, client: imapclient.IMAPClient, event: Event) -> tuple[int, int]:
        """(UID, size) of the appended event."""
        try:
            check_encodable(event)
        except EventError as exc:
            raise HelpdeskError(f"This change cannot be shared with the team: {exc}.") \
                from None
        nonce = uuid.uuid4().hex
        message = encode(event, nonce)
        uidplus = client.has_capability("UIDPLUS")
        before = None
        if not uidplus:
            before = int(client.folder_status(self.folder, [b"UIDNEXT"])[b"UIDNEXT"])
        try:
            raw = append_message(client, self.folder, message, [imapclient.SEEN])
        except imapclient.exceptions.IMAPClientError:
            if client.folder_exists(self.folder):
                raise
            self._create(client)
            raw = append_message(client, self.folder, message, [imapclient.SEEN])
        m = _APPENDUID.search(raw)
        if m:
            return int(m.group(2)), len(message)
        if selected(client) != self.folder:
            self.select(client)
        found = client.search(["UID", f"{before or 1}:*", "HEADER", NONCE_HEADER, nonce])
        if not found:
            raise imapclient.exceptions.IMAPClientError(
                "the server did not show the appended team event")
        return int(min(found)), len(message)

    def publish(self, client: imapclient.IMAPClient, events: list[Event]) -> FoldResult:
        """Append ``events``, fold the log up to the last of them, settle-check, return.

        ``outcomes`` (claims, take-overs) are read from the store, so they are true
        whoever folded the events (another thread or process on this database).
        Round trips on a server with UIDPLUS when the log is already selected:
        APPEND (one per event), one UID FETCH of the new range (plus one of sizes
        when a teammate's messages are among it), and the settle check (UID SEARCH).
        """
        _v, cursor_before, _t = self.cursor()
        own: dict[int, int] = {}
        for event in events:
            uid, size = self._append(client, event)
            own[uid] = size
        last = max(own, default=0)
        result = self.replay(client, upto=last, own=own)
        if last > cursor_before:
            if selected(client) != self.folder:
                self.select(client)
            # Settle check: did anything become visible below our event that this
            # store (whoever folded for it) never read?
            visible = {u for u in client.search(["UID", f"{cursor_before + 1}:{last}"])
                       if cursor_before < u <= last}
            if visible - self._read_uids(cursor_before + 1, last):
                log.warning("team log: late message detected before confirming; rebuilding")
                result.merge(self.rebuild(client))
        outcomes = self.outcomes([e.id for e in events])
        result.outcomes.update(outcomes)
        result.tickets |= {o.ticket for o in outcomes.values()}
        return result

    def outcomes(self, event_ids: list[str]) -> dict[str, ClaimOutcome]:
        """How the claims and take-overs among ``event_ids`` were decided, as folded."""
        if not event_ids:
            return {}
        with self.store.read() as conn:
            rows = _rows(conn, "SELECT event_id, subject, accepted, holder, since, previous "
                               "FROM team_events WHERE accepted IS NOT NULL AND event_id IN "
                               f"({', '.join('?' * len(event_ids))})", event_ids)
        return {str(eid): ClaimOutcome(str(subject), bool(accepted), holder,
                                       parse_db_time(since), previous)
                for eid, subject, accepted, holder, since, previous in rows}

    def server_time_of_event(self, event_id: str) -> datetime | None:
        with self.store.read() as conn:
            value = conn.execute(text("SELECT at FROM team_events WHERE event_id = :e"),
                                 {"e": event_id}).scalar()
        return parse_db_time(value)


@contextmanager
def _big_cache(cur: sqlite3.Cursor) -> Iterator[None]:
    """A larger SQLite page cache for one big transaction (a rebuild holds the write lock
    while it folds the whole log: ~25% shorter at 100,000 events), then the usual one."""
    before = cur.execute("PRAGMA cache_size").fetchone()[0]
    cur.execute(f"PRAGMA cache_size = {-_REBUILD_CACHE_KB}")
    try:
        yield
    finally:
        cur.execute(f"PRAGMA cache_size = {int(before)}")


def _settle_aliases(cur: sqlite3.Cursor) -> None:
    """After folding the whole log again: messages where the refolded merges say, and no
    refold left asked for (helpdesk/mail/threads.py)."""
    from helpdesk.mail.sync import refresh_tickets_cursor

    refresh_tickets_cursor(cur, aliases.settle(cur))
    cur.execute("DELETE FROM meta WHERE key = ?", (REFOLD_KEY,))


def _skip(cur: sqlite3.Cursor, uid: int, reason: str) -> None:
    cur.execute("INSERT OR REPLACE INTO team_skipped (uid, reason) VALUES (?, ?)",
                (uid, reason))


def _rows(conn: Connection, sql: str, params: list[str]) -> list[tuple[Any, ...]]:
    return list(raw_cursor(conn).execute(sql, params).fetchall())


class _Tally(FoldResult):
    """What a rebuild or refold reports: everything changed, and counts. Not the
    details of each event (a large log would hold them all in memory), and no
    take-over of the past is news."""

    def merge(self, other: FoldResult) -> None:
        self.customers |= other.customers
        self.events += other.events
        self.skipped += other.skipped
        self.pending += other.pending

    def summary(self) -> FoldResult:
        return FoldResult(tickets={"*"}, customers=self.customers, cards=True,
                          events=self.events, skipped=self.skipped, pending=self.pending)


def _stored(conn: Connection) -> Iterable[LogMessage]:
    """The events stored locally, in UID order, as messages to fold again (their time
    is the clamped clock they were folded at: clamping again changes nothing)."""
    stream = raw_cursor(conn)
    stream.execute("SELECT uid, at, body FROM temp.team_refold ORDER BY uid")
    while rows := stream.fetchmany(_STREAM):
        for uid, at, body in rows:
            raw = str(body).encode("utf-8")
            yield LogMessage(int(uid), parse_db_time(at), len(raw), raw)


def _staged(conn: Connection) -> Iterable[LogMessage]:
    """The staged messages in UID order, a few at a time."""
    stream = raw_cursor(conn)
    stream.execute("SELECT uid, at, size, body, problem FROM temp.team_stage ORDER BY uid")
    while rows := stream.fetchmany(_STREAM):
        for uid, at, size, body, problem in rows:
            yield LogMessage(int(uid), parse_db_time(at), int(size),
                             bytes(body) if body is not None else None, problem)
