"""Keeping the team log small: propose snapshots, write and acknowledge them, compact.

Runs after the team-log replay of a sync pass, on the sync connection (the session's
worker). Every decision that several desktops could take at once is an event decided
by log order (see :mod:`helpdesk.team.snapshots`), so running this on every desktop
is safe: at most one mark wins per gap, one compaction runs at a time, and a desktop
that loses learns it from the outcome. What each step costs when there is nothing to
do: a few local reads, no IMAP command.

1. Propose: once ``snapshot_every`` log entries (plus a jitter of up to a quarter of
   that, fixed per agent, so desktops do not all propose at the same moment) follow
   the newest accepted mark, append a ``snapshot-mark``.
2. Write: the winner of the newest mark appends the state it computed at the mark, in
   parts.
3. Acknowledge: a desktop that computed the same digest at that mark, whose parts
   assemble to it, acknowledges it, unless a desktop other than the writer did already.
4. Compact (``compact_team_log``): once a newer snapshot is agreed than the last
   compaction's, claim the compaction and, if the claim wins, move the events up to its
   mark to the archive (:mod:`helpdesk.team.compaction`), then say it is done.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from typing import TYPE_CHECKING, Any

import imapclient
from sqlalchemy import text

from helpdesk.changes import Changes
from helpdesk.mail.folders import FolderMap, ensure_folder
from helpdesk.team.compaction import archive_name, move_to_archive
from helpdesk.team.snapshots import BadSnapshot, assemble, part_events, this_layout
from helpdesk.team.state import digest_of

if TYPE_CHECKING:
    from helpdesk.session import ImapLink, Session

log = logging.getLogger(__name__)

COMPACT_LEASE = 30 * 60


class LogUpkeep:
    """The snapshot and compaction steps of one desk (see the module docstring)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def agent(self) -> str:
        return self.session.agent

    def _one(self, sql: str, **params: Any) -> Any:
        with self.session.store.read() as conn:
            return conn.execute(text(sql), params).first()

    def jitter(self) -> int:
        every = self.session.profile.snapshot_every
        seed = int(hashlib.sha256(self.agent.encode("utf-8")).hexdigest()[:8], 16)
        return seed % max(1, every // 4)

    def run(self, link: ImapLink) -> Changes:
        """One round of upkeep after a replay (on the worker)."""
        changes = Changes(set(), set())
        profile = self.session.profile
        if not profile.snapshot_every or self.session.team.registry is not _default():
            return changes
        self.write_parts(link)
        self.acknowledge(link)
        if self.propose(link):
            self.write_parts(link)
        if profile.compact_team_log:
            self.compact(link)
        return changes

    # --- snapshots ----------------------------------------------------------------

    def propose(self, link: ImapLink, *, force: bool = False) -> bool:
        """Append a mark when it is time (``force``: now); True if ours was accepted."""
        every = self.session.profile.snapshot_every or 10_000
        _v, cursor, _t = self.session.team.cursor()
        row = self._one("SELECT max(uid) FROM team_snapshot_marks")
        last = int(row[0] or 0) if row else 0
        if not force and cursor - last < every + self.jitter():
            return False
        event = self.session.event("snapshot-mark", "", gap=every)
        _changes, fold = self.session.publish(event, link=link)
        outcome = fold.outcomes.get(event.id)
        return bool(outcome and outcome.accepted)

    def write_parts(self, link: ImapLink) -> bool:
        """Write the snapshot of the newest mark when it is ours and not written yet."""
        row = self._one(
            "SELECT uid, agent, digest, state FROM team_snapshot_marks ORDER BY uid DESC LIMIT 1")
        if row is None or row[1] != self.agent or row[3] is None:
            return False
        mark, _agent, digest, packed = row
        if self._one("SELECT 1 FROM team_snapshot_parts WHERE digest = :d AND agent = :a",
                     d=digest, a=self.agent):
            return False
        canonical = zlib.decompress(packed)
        if digest_of(canonical) != digest:
            log.error("team log: the state kept for the snapshot at uid %d is damaged", mark)
            return False
        uidvalidity, _c, _t = self.session.team.cursor()
        events = part_events(self.agent, int(mark), canonical, int(uidvalidity or 0))
        self.session.publish(*events, link=link)
        log.info("team log: wrote the snapshot at uid %d (%d parts, %d KB)", mark,
                 len(events), len(canonical) // 1024)
        return True

    def acknowledge(self, link: ImapLink) -> bool:
        """Acknowledge the newest mark's snapshot when this desktop computed the same."""
        row = self._one(
            "SELECT uid, agent, digest, agreed, disagreed FROM team_snapshot_marks "
            "ORDER BY uid DESC LIMIT 1")
        if row is None or row[1] == self.agent or row[2] is None or row[3] or row[4]:
            return False
        mark, _agent, digest = int(row[0]), row[1], str(row[2])
        if self._one("SELECT 1 FROM team_snapshot_acks WHERE digest = :d AND agent = :a",
                     d=digest, a=self.agent):
            return False
        with self.session.store.read() as conn:
            parts = conn.execute(text(
                "SELECT part, count, payload FROM team_snapshot_parts WHERE digest = :d AND "
                "layout = :l AND mark = :m ORDER BY part"),
                {"d": digest, "l": this_layout(), "m": mark}).all()
        if not parts or len(parts) != int(parts[0][1]) \
                or [int(p[0]) for p in parts] != list(range(len(parts))):
            return False  # not all written yet
        try:
            assemble([str(p[2]) for p in parts], digest)
        except BadSnapshot as exc:
            log.warning("team log: the snapshot at uid %d does not assemble (%s); not "
                        "acknowledged", mark, exc)
            return False
        self.session.publish(self.session.event(
            "snapshot-ack", str(mark), mark=mark, digest=digest, layout=this_layout()),
            link=link)
        log.info("team log: acknowledged the snapshot at uid %d", mark)
        return True

    # --- compaction ---------------------------------------------------------------

    def compact(self, link: ImapLink, *, force: bool = False) -> int:
        """Move events up to the newest agreed snapshot's mark to the archive when it is
        time and our claim wins; the number of events moved (0: nothing done)."""
        row = self._one("SELECT max(uid) FROM team_snapshot_marks WHERE agreed")
        target = int(row[0] or 0) if row else 0
        done = self._one("SELECT coalesce(max(mark), 0) FROM team_compactions WHERE done")
        if not target or target <= int(done[0] if done else 0):
            return 0
        event = self.session.event("compact", "", mark=target, lease=COMPACT_LEASE)
        _changes, fold = self.session.publish(event, link=link)
        outcome = fold.outcomes.get(event.id)
        if not outcome or not outcome.accepted:
            log.info("team log: %s is compacting the log; not this desktop",
                     outcome.holder if outcome else "another desktop")
            return 0
        counted = [0]  # over every attempt (a dropped connection repeats the move)
        link.use(lambda client: self._move(client, target, counted))
        self.session.publish(self.session.event("compact-done", "", claim=event.id,
                                                mark=target), link=link)
        return counted[0]

    def _move(self, client: imapclient.IMAPClient, upto: int, counted: list[int]) -> int:
        team = self.session.team
        settings = self.session.profile.imap
        archive = ensure_folder(client, FolderMap.of(client, settings),
                                archive_name(settings.team_folder), "team_folder")
        uidvalidity, _c, _t = team.cursor()
        return move_to_archive(client, team.folder, archive, int(uidvalidity or 0),
                               upto, counted).copied


def _default() -> Any:
    from helpdesk.team.fold import default_registry

    return default_registry()
