"""Moving the team log's old events into its archive folder (APPEND + UID FETCH).

Only a desktop whose ``compact`` claim the fold accepted runs this (one at a time,
decided by log order; see :mod:`helpdesk.team.snapshots`), and only up to an agreed
snapshot's mark, so no replica's state changes: every desktop has folded past the
mark, or loads the snapshot (a claim decided in the archived range stays decided,
it is in the snapshot).

The move is copy first, delete after, so an interruption at any point loses nothing:

1. Each message up to the mark is APPENDed to the archive (MULTIAPPEND where the
   server has it) with its original INTERNALDATE and one header line added,
   ``X-Helpdesk-Log-Uid: <uidvalidity>/<uid>``, naming where it stood in the log. The
   archive's newest copy says where a resumed move starts again (a copy made twice by
   a lease that ran out is harmless: the header tells them apart).
2. ``UID STORE 1:<mark> +FLAGS.SILENT (\\Deleted)`` in the log, then ``UID EXPUNGE
   1:<mark>`` (UIDPLUS). Without UIDPLUS a plain EXPUNGE would also remove what
   anyone else marked deleted in the log folder: it runs only when every deleted
   message there is one of ours; otherwise the copies stay in the log, marked, and
   the move is reported as not finished (it is tried again by the next compaction).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC

import imapclient

from helpdesk.mail import imap
from helpdesk.mail.folders import append as append_message
from helpdesk.mail.imap import examine

log = logging.getLogger(__name__)

LOG_UID_HEADER = "X-Helpdesk-Log-Uid"
WINDOW = 500  # messages per FETCH and per MULTIAPPEND
EXPUNGE_RANGE = 5000  # UIDs per STORE and UID EXPUNGE
_LOG_UID = re.compile(rb"(\d+)/(\d+)")


def archive_name(team_folder: str) -> str:
    """The profile name of the archive folder of the team log ``team_folder``."""
    return f"{team_folder.rstrip('/')}/Archive"


@dataclass(frozen=True)
class Moved:
    copied: int
    expunged: bool  # False: copies made, but the log's originals stay (no UIDPLUS case)


def archived_upto(client: imapclient.IMAPClient, archive: str, uidvalidity: int) -> int:
    """The log UID of the archive's newest copy of this log (0: none)."""
    info = examine(client, archive)
    if not int(info.get(b"EXISTS", 0)):
        return 0
    got = client._imap.fetch("*", f"(BODY.PEEK[HEADER.FIELDS ({LOG_UID_HEADER})])")
    for item in got[1] or ():
        if isinstance(item, tuple) and len(item) > 1:
            found = _LOG_UID.search(item[1] or b"")
            if found and int(found.group(1)) == uidvalidity:
                return int(found.group(2))
    return 0


def move_to_archive(client: imapclient.IMAPClient, log_folder: str, archive: str,
                    uidvalidity: int, upto: int, counted: list[int] | None = None) -> Moved:
    """Copy the log's messages up to UID ``upto`` into ``archive`` (both server names,
    the archive existing), then remove them from the log (see the module docstring).
    ``counted[0]`` grows by each window copied, so an attempt cut by a dropped
    connection still counts what it copied."""
    start = archived_upto(client, archive, uidvalidity)
    examine(client, log_folder, readonly=False)
    copied = 0
    multi = client.has_capability("MULTIAPPEND")
    lo = start + 1
    while lo <= upto:
        hi = min(upto, lo + WINDOW - 1)
        batch = [(uid, when, raw) for uid, when, raw in imap.fetch_bodies(
            client, f"{lo}:{hi}", section="") if lo <= uid <= hi]
        msgs = [(f"{LOG_UID_HEADER}: {uidvalidity}/{uid}\r\n".encode() + raw,
                 when.replace(tzinfo=UTC)) for uid, when, raw in batch]
        if multi and len(msgs) > 1:
            client.multiappend(archive, [{"msg": m, "flags": [imapclient.SEEN], "date": d}
                                         for m, d in msgs])
        else:
            for m, d in msgs:
                append_message(client, archive, m, [imapclient.SEEN], msg_time=d)
        copied += len(msgs)
        if counted is not None:
            counted[0] += len(msgs)
        lo = hi + 1
    examine(client, log_folder, readonly=False)
    uidplus = client.has_capability("UIDPLUS")
    # In ranges of EXPUNGE_RANGE UIDs: each command answered well within the socket
    # timeout, however long the log (a timed-out one is repeated whole, harmlessly).
    for lo in range(1, upto + 1, EXPUNGE_RANGE):
        uids = f"{lo}:{min(upto, lo + EXPUNGE_RANGE - 1)}"
        client._imap.uid("STORE", uids, "+FLAGS.SILENT", r"(\Deleted)")
        if uidplus:
            client.uid_expunge(uids)
    if uidplus:
        expunged = True
    else:
        others = [u for u in client.search(["DELETED"]) if u > upto]
        expunged = not others
        if expunged:
            client.expunge()
        else:
            log.warning("team log: not expunging the archived events (the server has no "
                        "UIDPLUS and %d other messages in the log are marked deleted)",
                        len(others))
    log.info("team log: moved %d events (up to uid %d) to %s", copied, upto, archive)
    return Moved(copied, expunged)
