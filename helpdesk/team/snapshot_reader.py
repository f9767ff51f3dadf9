"""Finding the newest agreed snapshot in the team-log folder, from its end backwards.

A new desktop (or one left behind by a compaction) reads the log backwards in
windows: first only each message's size and ``X-Helpdesk-Event`` header (one lean
``UID FETCH`` per window), then the bodies of the snapshot parts and
acknowledgements among them. All of a snapshot's parts and acks lie after its mark,
so once the scan has passed below a mark, that snapshot can be judged: it is used
when its parts are complete and of this build's layout and log (UIDVALIDITY), they
assemble to its digest, and an agent other than the mark's acknowledged the same
digest (see :mod:`helpdesk.team.snapshots`). Anything else is skipped with one log
line, and the next older snapshot is tried. Nothing but UID FETCH is needed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import imapclient

from helpdesk.mail import imap
from helpdesk.mail.imap import uid_set
from helpdesk.team.events import MAX_MESSAGE_BYTES, Event, EventError, decode_body
from helpdesk.team.snapshots import BadSnapshot, assemble
from helpdesk.team.state import LoadedState, StateError, parse_state

log = logging.getLogger(__name__)

WINDOW = 2000  # UIDs per header window
BODIES = 200  # bodies per FETCH
SCAN_LIMIT = 200_000  # UIDs back from the end before giving up (then: a full replay)
_WANTED = (b"snapshot", b"snapshot-ack")
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


@dataclass
class _Candidate:
    mark: int
    count: int
    layout: str
    uidvalidity: int
    parts: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Found:
    """A verified, agreed snapshot: its canonical bytes and where it stands."""

    mark: int
    digest: str
    canonical: bytes
    agent: str  # the mark's agent
    acked_by: tuple[str, ...]
    seen: int  # messages at or below the mark still in the folder
    state: LoadedState | None = None  # its content, parsed once when judged


def find_snapshot(client: imapclient.IMAPClient, end: int, exists: int, layout: str,
                  uidvalidity: int, tables: Any, min_mark: int = 1,
                  limit: int = SCAN_LIMIT, refused: frozenset[str] = frozenset()
                  ) -> Found | None:
    """The newest agreed snapshot at or above ``min_mark`` in the selected log folder
    (whose highest UID is ``end`` and message count ``exists``), or None. ``refused``:
    digests of snapshots this desktop could not store (not tried again)."""
    candidates: dict[str, _Candidate] = {}
    acks: dict[str, set[str]] = {}
    judged: set[str] = set()
    visible: list[int] = []  # UIDs seen by the scan, descending windows
    hi = end
    while hi >= 1 and end - hi < limit:
        lo = max(1, hi - WINDOW + 1)
        wanted, shown = _headers(client, lo, hi)
        visible.extend(shown)
        for event in _events(client, wanted):
            _note(event, candidates, acks)
        for digest in sorted(candidates, key=lambda d: -candidates[d].mark):
            cand = candidates[digest]
            if digest in judged or cand.mark < lo - 1:
                continue  # not all of it seen yet (the scan is above its mark)
            judged.add(digest)
            found = _judge(digest, cand, acks.get(digest, set()), layout, uidvalidity,
                           tables, min_mark, refused)
            if found is not None:
                above = sum(1 for u in visible if u > cand.mark)
                return Found(cand.mark, digest, found[0], found[1].agent, found[2],
                             max(0, exists - above), found[1])
        if lo <= min_mark:
            break
        hi = lo - 1
    return None


def _headers(client: imapclient.IMAPClient, lo: int, hi: int) -> tuple[list[int], list[int]]:
    """(UIDs of snapshot parts and acks worth reading, every UID shown) in ``lo..hi``."""
    typ, data = client._imap.uid(
        "FETCH", f"{lo}:{hi}", "(RFC822.SIZE BODY.PEEK[HEADER.FIELDS (X-Helpdesk-Event)])")
    if typ != "OK":
        raise imapclient.exceptions.IMAPClientError(f"UID FETCH failed: {data!r}")
    wanted, shown = [], []
    for item in data or ():
        head, header = (item[0], item[1]) if isinstance(item, tuple) else (item, b"")
        uid, size = _UID.search(head or b""), _SIZE.search(head or b"")
        if uid is None or not lo <= int(uid.group(1)) <= hi:
            continue  # a range past the end returns the last message; unsolicited FETCH
        shown.append(int(uid.group(1)))
        kind = bytes(header or b"").partition(b":")[2].strip().lower()
        if kind in _WANTED and size is not None and int(size.group(1)) <= MAX_MESSAGE_BYTES:
            wanted.append(int(uid.group(1)))
    return sorted(wanted), shown


def _events(client: imapclient.IMAPClient, uids: list[int]) -> Iterable[Event]:
    for i in range(0, len(uids), BODIES):
        for uid, _when, body in imap.fetch_bodies(client, uid_set(uids[i:i + BODIES])):
            try:
                yield decode_body(body)
            except EventError as exc:
                log.info("team log: uid %d looks like a snapshot but is not one (%s)", uid, exc)


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    return value if type(value) is int else -1


def _note(event: Event, candidates: dict[str, _Candidate], acks: dict[str, set[str]]) -> None:
    data = event.data
    digest = data.get("digest")
    if not isinstance(digest, str):
        return
    if event.type == "snapshot-ack":
        acks.setdefault(digest, set()).add(event.agent)
        return
    if event.type != "snapshot":
        return
    mark, part, count, uidv = (_int(data, k) for k in ("mark", "part", "count", "uidvalidity"))
    layout, payload = data.get("layout"), data.get("data")
    if mark < 1 or not 0 <= part < count or not isinstance(layout, str) \
            or not isinstance(payload, str):
        return
    cand = candidates.setdefault(digest, _Candidate(mark, count, layout, uidv))
    if (cand.mark, cand.count, cand.layout, cand.uidvalidity) == (mark, count, layout, uidv):
        cand.parts.setdefault(part, payload)


def _judge(digest: str, cand: _Candidate, acked: set[str], layout: str, uidvalidity: int,
           tables: Any, min_mark: int, refused: frozenset[str] = frozenset()
           ) -> tuple[bytes, LoadedState, tuple[str, ...]] | None:
    why = None
    if cand.mark < min_mark:
        why = "older than needed"
    elif digest in refused:
        why = "it could not be stored here before"
    elif cand.layout != layout:
        why = "written by another Help desk version"
    elif cand.uidvalidity != uidvalidity:
        why = "of an earlier log (UIDVALIDITY changed)"
    elif len(cand.parts) != cand.count:
        why = f"incomplete ({len(cand.parts)} of {cand.count} parts)"
    if why is None:
        try:
            canonical = assemble([cand.parts[i] for i in range(cand.count)], digest)
            state = parse_state(canonical, tables)
        except (BadSnapshot, StateError) as exc:
            why = str(exc)
        else:
            others = tuple(sorted(acked - {state.agent}))
            if state.mark != cand.mark:
                why = "its content names another mark"
            elif not others:
                why = "not acknowledged by a second desktop yet"
            else:
                return canonical, state, others
    log.info("team log: snapshot %s at uid %d not used: %s", digest[:12], cand.mark, why)
    return None
