"""Snapshots of the team log: marks, parts and acknowledgements, folded like any event.

How a snapshot comes about (every step an event in the log, decided by log order):

1. ``snapshot-mark``: a desktop proposes a snapshot at the mark's own UID M. The fold
   accepts it only when no accepted mark lies within ``gap`` UIDs before it (the gap
   travels in the event, bounded): of several desktops proposing at once, the first
   in log order wins and the others learn it from the outcome, like a claim. On an
   accepted mark every desktop that folds it (within the span it checks, see
   :func:`checking_from`) computes the canonical team state as folded before M and
   keeps its digest (and, for the newest marks, the compressed state).
2. ``snapshot``: the mark's winner appends that state, compressed (zlib over the
   canonical JSON), in parts of at most :data:`PART_BYTES` each, every part carrying
   the digest (sha256 of the uncompressed canonical form), its index and the count.
   Every desktop that computed its own digest at M compares: a different digest is a
   lie or a bug and is refused, with one log line and a note the desk shows.
3. ``snapshot-ack``: a desktop other than the writer whose own digest at M equals the
   snapshot's (and whose assembled parts verify) acknowledges it. A snapshot is
   **agreed** when its parts are complete, they assemble to the digest, and an ack by
   an agent other than the mark's names the same digest: two desktops computed the
   same state independently. A new desktop loads only an agreed snapshot.

``compact`` / ``compact-done`` claim and finish moving old events to the archive
folder (:mod:`helpdesk.team.compaction`): one desktop at a time, by log order, with a
lease so a desktop that died mid-way never blocks the next.

Trust: anyone with the mailbox password can write any event, under any agent name;
what this guards against is a corrupt, truncated or wrong snapshot (bugs, damage, an
older or newer build), not two colluding forged agents.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from helpdesk.team.events import Event
from helpdesk.team.fold import (
    BadData,
    ClaimOutcome,
    FoldContext,
    Handlers,
    Registry,
    db_time,
    int_field,
    parse_db_time,
    required_text,
    reset_team_state,
)
from helpdesk.team.state import (
    LoadedState,
    StateError,
    TeamTable,
    canonical_state,
    digest_of,
    layout_key,
    parse_later,
    parse_state,
    restore_state,
)

log = logging.getLogger(__name__)

HANDLERS = Handlers("snapshots")

TYPES = ("snapshot-mark", "snapshot", "snapshot-ack", "compact", "compact-done")
DUPLICATE_WINDOW = 1000  # the last events before a mark whose ids a snapshot carries
MIN_GAP, DEFAULT_GAP, MAX_GAP = 20, 10_000, 10_000_000
PART_BYTES = 44_000  # compressed bytes per part: base64 keeps the event under 64 KB
MAX_PARTS = 4096
MAX_STATE_BYTES = 1 << 30  # uncompressed; a zlib bomb stops here
KEEP_STATES = 2  # compressed states kept locally (the newest marks)
MIN_LEASE, DEFAULT_LEASE, MAX_LEASE = 60, 30 * 60, 6 * 3600
_DIGEST = re.compile(r"[0-9a-f]{64}")
_LAYOUT = re.compile(r"[0-9a-f]{32}")

_check_from: ContextVar[int] = ContextVar("snapshot_check_from", default=0)
_layout: str | None = None


@contextmanager
def checking_from(uid: int) -> Iterator[None]:
    """Within this block the fold computes its state only at accepted marks from UID
    ``uid`` on (a desktop catching up on a long log has no use for the digests of
    marks far behind the end; each costs a pass over team state)."""
    token = _check_from.set(uid)
    try:
        yield
    finally:
        _check_from.reset(token)


def this_layout() -> str:
    """The layout key of this build (its state tables and the event versions it reads)."""
    global _layout
    if _layout is None:
        from helpdesk.team.registry import REGISTRY, STATE

        _layout = layout_key(STATE, REGISTRY.versions)
    return _layout


def _tables() -> tuple[TeamTable, ...]:
    from helpdesk.team.registry import STATE

    return STATE


def state_at_mark(cur: sqlite3.Cursor, mark: int, agent: str, clock: str) -> bytes:
    """The canonical team state before the mark at UID ``mark``, as this desktop has it."""
    return canonical_state(cur, _tables(), mark, clock, this_layout(), agent)


# --- fold handlers -------------------------------------------------------------------

@HANDLERS.on("snapshot-mark")
def _mark(ctx: FoldContext) -> None:
    gap = max(MIN_GAP, min(MAX_GAP, int_field(ctx.event.data, "gap", DEFAULT_GAP)))
    cur = ctx.cur
    last = cur.execute("SELECT uid, agent, at FROM team_snapshot_marks "
                       "ORDER BY uid DESC LIMIT 1").fetchone()
    if last is not None and ctx.uid - int(last[0]) < gap:
        ctx.result.outcomes[ctx.event.id] = ClaimOutcome("", False, str(last[1]),
                                                         parse_db_time(last[2]))
        return
    clock = db_time(ctx.at)
    digest = state = None
    if ctx.uid >= _check_from.get():
        canonical = state_at_mark(cur, ctx.uid, ctx.event.agent, clock)
        digest, state = digest_of(canonical), zlib.compress(canonical, 6)
        cur.execute("UPDATE team_snapshot_marks SET state = NULL WHERE state IS NOT NULL AND "
                    "uid NOT IN (SELECT uid FROM team_snapshot_marks WHERE state IS NOT NULL "
                    f"ORDER BY uid DESC LIMIT {KEEP_STATES - 1})")
    cur.execute("INSERT INTO team_snapshot_marks (uid, agent, at, digest, state) "
                "VALUES (?, ?, ?, ?, ?)", (ctx.uid, ctx.event.agent, clock, digest, state))
    ctx.result.outcomes[ctx.event.id] = ClaimOutcome("", True, ctx.event.agent, ctx.at)


def _hex(data: dict[str, object], key: str, pattern: re.Pattern[str]) -> str:
    value = required_text(data, key)
    if not pattern.fullmatch(value):
        raise BadData(f"{key} is not a digest")
    return value


@HANDLERS.on("snapshot")
def _part(ctx: FoldContext) -> None:
    data = ctx.event.data
    mark, part, count = (int_field(data, k, -1) for k in ("mark", "part", "count"))
    digest, layout = _hex(data, "digest", _DIGEST), _hex(data, "layout", _LAYOUT)
    uidvalidity = int_field(data, "uidvalidity", -1)
    payload = required_text(data, "data")
    if not (1 <= mark < ctx.uid and 1 <= count <= MAX_PARTS and 0 <= part < count
            and uidvalidity >= 0):
        raise BadData("a snapshot part with bad numbers")
    ctx.cur.execute("INSERT OR IGNORE INTO team_snapshot_parts (digest, part, count, mark, "
                    "layout, uidvalidity, agent, uid, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (digest, part, count, mark, layout, uidvalidity, ctx.event.agent, ctx.uid,
                     payload))
    if ctx.cur.rowcount == 0 or part != 0:
        return  # judged once per snapshot, on its first part
    row = ctx.cur.execute("SELECT digest FROM team_snapshot_marks WHERE uid = ?",
                          (mark,)).fetchone()
    if row is None:
        log.info("team log: snapshot %s (uid %d) names no accepted mark at uid %d; ignored",
                 digest[:12], ctx.uid, mark)
    elif row[0] is None or layout != this_layout():
        pass  # not computed here (far behind the end), or another build's snapshot
    elif row[0] != digest:
        log.warning("team log: snapshot %s by %s of the team state at uid %d disagrees with "
                    "this desktop's own state (%s); ignored", digest[:12], ctx.event.agent,
                    mark, str(row[0])[:12])
        ctx.cur.execute("UPDATE team_snapshot_marks SET disagreed = ? WHERE uid = ?",
                        (digest, mark))


@HANDLERS.on("snapshot-ack")
def _ack(ctx: FoldContext) -> None:
    data = ctx.event.data
    mark = int_field(data, "mark", -1)
    digest, layout = _hex(data, "digest", _DIGEST), _hex(data, "layout", _LAYOUT)
    if not 1 <= mark < ctx.uid:
        raise BadData("a snapshot acknowledgement with a bad mark")
    ctx.cur.execute("INSERT OR IGNORE INTO team_snapshot_acks (digest, agent, mark, uid) "
                    "VALUES (?, ?, ?, ?)", (digest, ctx.event.agent, mark, ctx.uid))
    if layout == this_layout():
        ctx.cur.execute("UPDATE team_snapshot_marks SET agreed = 1 WHERE uid = ? AND "
                        "digest = ? AND agent != ?", (mark, digest, ctx.event.agent))


@HANDLERS.on("compact")
def _compact(ctx: FoldContext) -> None:
    """A claim to move the log's events up to ``mark`` (an accepted snapshot mark) into
    the archive. Accepted when the mark is past every finished compaction and no other
    desktop's compaction is under way (its lease running at T(e))."""
    cur, agent = ctx.cur, ctx.event.agent
    mark = int_field(ctx.event.data, "mark", -1)
    lease = max(MIN_LEASE, min(MAX_LEASE, int_field(ctx.event.data, "lease", DEFAULT_LEASE)))
    known = cur.execute("SELECT 1 FROM team_snapshot_marks WHERE uid = ?",
                        (mark,)).fetchone() is not None
    done = cur.execute("SELECT coalesce(max(mark), 0) FROM team_compactions "
                       "WHERE done").fetchone()[0]
    busy = None
    for holder, at, held in cur.execute("SELECT agent, at, lease FROM team_compactions "
                                        "WHERE NOT done ORDER BY uid DESC LIMIT 1"):
        since = parse_db_time(at)
        if holder != agent and since is not None and since + timedelta(seconds=held) > ctx.at:
            busy = (holder, since)
    if not known or mark <= int(done) or busy is not None:
        holder, since = busy or ("", None)
        ctx.result.outcomes[ctx.event.id] = ClaimOutcome("", False, holder or None, since)
        return
    cur.execute("UPDATE team_compactions SET done = 1 WHERE NOT done AND agent = ?", (agent,))
    cur.execute("INSERT INTO team_compactions (uid, event_id, agent, mark, at, lease, done) "
                "VALUES (?, ?, ?, ?, ?, ?, 0)",
                (ctx.uid, ctx.event.id, agent, mark, db_time(ctx.at), lease))
    ctx.result.outcomes[ctx.event.id] = ClaimOutcome("", True, agent, ctx.at)


@HANDLERS.on("compact-done")
def _compact_done(ctx: FoldContext) -> None:
    claim = required_text(ctx.event.data, "claim")
    ctx.cur.execute("UPDATE team_compactions SET done = 1 WHERE event_id = ? AND agent = ?",
                    (claim, ctx.event.agent))


@HANDLERS.reset
def _reset(cur: sqlite3.Cursor) -> None:
    for table in ("team_snapshot_marks", "team_snapshot_parts", "team_snapshot_acks",
                  "team_compactions"):
        cur.execute(f"DELETE FROM {table}")


# --- parts ---------------------------------------------------------------------------

def split(canonical: bytes) -> list[str]:
    """The compressed state in base64 parts, each small enough for one event."""
    packed = zlib.compress(canonical, 6)
    return [base64.b64encode(packed[i:i + PART_BYTES]).decode("ascii")
            for i in range(0, max(len(packed), 1), PART_BYTES)]


def part_events(agent: str, mark: int, canonical: bytes, uidvalidity: int) -> list[Event]:
    digest, parts = digest_of(canonical), split(canonical)
    if len(parts) > MAX_PARTS:
        raise ValueError(f"team state too large for a snapshot ({len(parts)} parts)")
    return [Event("snapshot", agent, str(mark), {
        "mark": mark, "digest": digest, "part": i, "count": len(parts),
        "layout": this_layout(), "uidvalidity": uidvalidity, "data": chunk})
        for i, chunk in enumerate(parts)]


class BadSnapshot(ValueError):
    """Parts that do not make the snapshot they claim (reason in the message)."""


def assemble(parts: list[str], digest: str) -> bytes:
    """The canonical bytes of a snapshot from its parts in order; BadSnapshot unless they
    decompress (within :data:`MAX_STATE_BYTES`) to bytes whose sha256 is ``digest``."""
    try:
        packed = b"".join(base64.b64decode(p, validate=True) for p in parts)
        inflate = zlib.decompressobj()
        canonical = inflate.decompress(packed, MAX_STATE_BYTES)
        if inflate.unconsumed_tail or not inflate.eof:
            raise BadSnapshot("the parts do not decompress to a whole snapshot")
    except (binascii.Error, ValueError, zlib.error) as exc:
        if isinstance(exc, BadSnapshot):
            raise
        raise BadSnapshot(f"the parts do not decompress ({type(exc).__name__})") from None
    if digest_of(canonical) != digest:
        raise BadSnapshot("the parts do not match their digest")
    return canonical


def load_state(cur: sqlite3.Cursor, canonical: bytes, registry: Registry,
               parsed: LoadedState | None = None, history: bool = True) -> LoadedState:
    """Replace team state with a verified snapshot's (inside the caller's transaction):
    what a desktop that folded the log up to the mark has, the mark itself included.
    The caller sets the cursor and clock; BadSnapshot for content of another layout.
    ``parsed``: ``canonical`` already parsed (by the reader that verified it; parsing a
    big snapshot again would cost as much as storing it). ``history``: store its
    history too; else only the live state (:func:`load_history` stores the rest)."""
    try:
        state = parsed if parsed is not None else parse_state(canonical, _tables())
    except StateError as exc:
        raise BadSnapshot(str(exc)) from None
    if state.layout != this_layout():
        raise BadSnapshot("a snapshot of another Help desk version")
    reset_team_state(cur, registry)
    cur.execute("DELETE FROM team_skipped")
    _restore(cur, state.tables)
    if history:
        load_history(cur, state)
    cur.execute("INSERT OR REPLACE INTO team_snapshot_marks (uid, agent, at, digest) "
                "VALUES (?, ?, ?, ?)", (state.mark, state.agent, state.clock or "",
                                        digest_of(canonical)))
    return state


def load_history(cur: sqlite3.Cursor, state: LoadedState) -> None:
    """Store the history of a snapshot whose live state :func:`load_state` stored
    (inside the caller's transaction); BadSnapshot if it cannot be."""
    try:
        rows = parse_later(state, _tables())
    except StateError as exc:
        raise BadSnapshot(str(exc)) from None
    _restore(cur, rows)


def _restore(cur: sqlite3.Cursor, rows: dict[str, list[list[Any]]]) -> None:
    try:
        restore_state(cur, rows, _tables())
    except (StateError, sqlite3.IntegrityError, sqlite3.ProgrammingError,
            sqlite3.InterfaceError, OverflowError) as exc:
        raise BadSnapshot(f"a snapshot that cannot be stored ({type(exc).__name__})") from None
