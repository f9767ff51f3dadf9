"""Reading the team-log folder: sizes first, then only the bodies worth downloading.

For each window of UIDs one lean ``UID FETCH (RFC822.SIZE INTERNALDATE)`` says what
is there; bodies are then fetched only for messages no larger than
:data:`~helpdesk.team.events.MAX_MESSAGE_BYTES` (a 25 MB message in the log is never
downloaded), in batches bounded by count and bytes. Every message the size pass
showed comes back as a :class:`LogMessage`, with its body or the reason it has
none (oversized, unreadable, vanished), so the replay cursor can always move on.
"""

from __future__ import annotations

import imaplib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

import imapclient

from helpdesk.mail import imap
from helpdesk.mail.imap import uid_set
from helpdesk.team.events import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

FETCH_BATCH = 5000  # UIDs per size window and at most per body FETCH
BODY_BATCH_BYTES = 8 * 1024 * 1024  # bodies per FETCH, by their announced sizes

VANISHED = "vanished (expunged before it was read)"
UNREADABLE = "the server could not read it"


@dataclass(frozen=True, slots=True)
class LogMessage:
    """One message of the log folder as read: body None when not downloaded."""

    uid: int
    at: datetime | None  # INTERNALDATE, naive UTC
    size: int
    body: bytes | None
    problem: str | None = None  # why there is no body


@dataclass(frozen=True, slots=True)
class Window:
    top: int  # the highest UID the size pass showed: the cursor may move up to it
    messages: list[LogMessage]  # UID order


def read_log(client: imapclient.IMAPClient, lo: int, hi: int, must_see: int | None = None,
             known: Mapping[int, int] | None = None) -> Iterator[Window]:
    """Windows of the selected log folder from UID ``lo`` to ``hi``.

    ``must_see``: a UID we appended ourselves; if a server does not show it yet,
    one NOOP lets it catch up before the window is read again. ``known``: sizes of
    messages we appended ourselves (UID -> bytes); a window made only of those needs
    no size pass (a claim costs one FETCH, as before sizes were asked).
    """
    a = lo
    while a <= hi:
        b = min(hi, a + FETCH_BATCH - 1)
        if known is not None and all(u in known for u in range(a, b + 1)):
            # Only our own events: whatever the FETCH does not return is not visible
            # yet (not expunged), so it is left for a later replay, never skipped.
            sizes: dict[int, tuple[int, datetime | None]] = {
                u: (known[u], None) for u in range(a, b + 1)}
            windows = list(_windows(client, sizes, visible_only=True))
            if must_see is not None and not _has(windows, must_see):
                client.noop()  # our own APPEND not in this view yet: resync and retry
                windows = list(_windows(client, sizes, visible_only=True))
            yield from windows
        else:
            sizes = _sizes(client, a, b)
            if must_see is not None and a <= must_see <= b and must_see not in sizes:
                client.noop()  # our own APPEND not in this view yet: resync and retry
                sizes = _sizes(client, a, b)
            yield from _windows(client, sizes)
        a = b + 1


def _has(windows: list[Window], uid: int) -> bool:
    return any(m.uid == uid for w in windows for m in w.messages)


def _sizes(client: imapclient.IMAPClient, a: int, b: int
           ) -> dict[int, tuple[int, datetime | None]]:
    # A range past the end returns the last message: keep only UIDs asked for.
    return {u: v for u, v in imap.fetch_sizes_dated(client, f"{a}:{b}").items()
            if a <= u <= b}


def _windows(client: imapclient.IMAPClient, sizes: dict[int, tuple[int, datetime | None]],
             visible_only: bool = False) -> Iterator[Window]:
    chunk: list[int] = []
    total = 0
    for uid in sorted(sizes):
        size = sizes[uid][0]
        weight = size if size <= MAX_MESSAGE_BYTES else 0
        if chunk and (len(chunk) >= FETCH_BATCH or total + weight > BODY_BATCH_BYTES):
            yield from _window(client, chunk, sizes, visible_only)
            chunk, total = [], 0
        chunk.append(uid)
        total += weight
    if chunk:
        yield from _window(client, chunk, sizes, visible_only)


def _window(client: imapclient.IMAPClient, uids: list[int],
            sizes: dict[int, tuple[int, datetime | None]], visible_only: bool
            ) -> Iterator[Window]:
    small = [u for u in uids if sizes[u][0] <= MAX_MESSAGE_BYTES]
    bodies: dict[int, tuple[datetime, bytes]] = {}
    unreadable: set[int] = set()
    if small:
        _bodies(client, small, bodies, unreadable)
    out = []
    for uid in uids:
        size, at = sizes[uid]
        if size > MAX_MESSAGE_BYTES:
            out.append(LogMessage(uid, at, size, None, f"oversized message ({size} bytes)"))
        elif uid in bodies:
            when, body = bodies[uid]
            out.append(LogMessage(uid, at or when, size, body))
        elif not visible_only:
            out.append(LogMessage(uid, at, size, None,
                                  UNREADABLE if uid in unreadable else VANISHED))
    if out:
        yield Window(out[-1].uid if visible_only else uids[-1], out)


def _bodies(client: imapclient.IMAPClient, uids: list[int],
            into: dict[int, tuple[datetime, bytes]], unreadable: set[int]) -> None:
    """Bodies of ``uids``. A FETCH the server answers NO (or BAD) is split in halves
    until the messages it cannot read are found; those are unreadable, the rest are
    read. If not one message of the batch can be read the server is in trouble, not
    a message (nothing anyone can APPEND makes a server fail to read it): raise, and
    the next replay tries again."""
    _split_fetch(client, uids, into, unreadable)
    if unreadable and not into:
        raise imapclient.exceptions.IMAPClientError(
            f"the server could not read the team log (UIDs {uid_set(uids)[:40]})")


def _split_fetch(client: imapclient.IMAPClient, uids: list[int],
                 into: dict[int, tuple[datetime, bytes]], unreadable: set[int]) -> None:
    wanted = set(uids)
    try:
        for uid, when, body in imap.fetch_bodies(client, uid_set(uids)):
            if uid in wanted:  # not an unsolicited FETCH
                into[uid] = (when, body)
        return
    except imapclient.exceptions.IMAPClientError as exc:
        if isinstance(exc, imaplib.IMAP4.abort):
            raise  # the connection, not a message
        if len(uids) == 1:
            unreadable.add(uids[0])
            log.info("team log: the server refused to read uid %d (%s)", uids[0],
                     str(exc)[:120])
            return
    mid = len(uids) // 2
    _split_fetch(client, uids[:mid], into, unreadable)
    _split_fetch(client, uids[mid:], into, unreadable)
