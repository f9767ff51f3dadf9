"""Back-fill: a folder's older mail, fetched newest first after its newest mail is in.

Contract (with helpdesk/mail/sync.py, which starts a folder at its newest mail):
- the folder row says what is stored, per UIDVALIDITY: every message with a UID from
  ``backfill_below`` up to ``last_uid``; below ``backfill_below`` is still to fetch
  (NULL: nothing is). New mail goes above ``last_uid`` as before, so incremental
  sync (and IDLE) keeps working while the back-fill runs;
- each call stores at most ``budget`` messages, in descending batches, each batch one
  transaction that also lowers ``backfill_below``: a process killed at any instant
  leaves a mark that is true, and the next call goes on from it; every message is
  stored exactly once (de-duplication by message identity covers two processes at once
  and a UIDVALIDITY reset, which starts the folder over from its newest mail);
- old mail is not news: back-filled batches report no new inbound customer mail (the
  tray would announce a year of mail as it fills in), only the tickets they touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import imapclient
from sqlalchemy import text

from helpdesk.mail.imap import examine, uid_at
from helpdesk.mail.parse import parse_message
from helpdesk.mail.sync import BACKFILL_DOWN, MailSync, OnBatch, SyncResult

log = logging.getLogger(__name__)

#: Older mail per sync pass, in profile batches (``batch_size``): between two slices the
#: pass ends, reports, and a new pass looks for new mail and teammates' events first.
SLICE_BATCHES = 10
#: Older mail is stored in transactions of this many profile batches (1,000 messages by
#: default). What a transaction costs grows with the pages it dirties, and a random key
#: (``dedup_key``, ``message_id``, ticket ids) dirties a page per message once an index
#: outgrows the batch: the WAL writes of 200-message transactions went from 23 to 83 us
#: per message between 5,000 and 30,000 messages, those of 1,000-message ones from 16 to
#: 27 (bench/store_bench.py --store-cost). Intents wait for at most one such batch.
STORE_BATCHES = 5


@dataclass(frozen=True)
class SyncProgress:
    """How much of the synced folders is in the store.

    ``stored`` and ``total`` count messages per folder (one in INBOX and in Sent
    counts twice, as on the server); ``total`` is the folders' size at their last
    sync. ``pending``: older mail is still being fetched. ``team_history``: the team
    history of the snapshot a new desktop began at is still being stored. Either way
    (:attr:`more`) another pass follows at once.
    """

    stored: int
    total: int
    pending: bool
    team_history: bool = False

    @property
    def more(self) -> bool:
        """Is there more to bring in (older mail, or team history)?"""
        return self.pending or self.team_history

    def as_dict(self) -> dict[str, Any]:
        return {"stored": self.stored, "total": self.total, "pending": self.pending,
                "team_history": self.team_history}


class Backfill:
    """The older mail of folders started newest first (see the module docstring)."""

    def __init__(self, mail: MailSync) -> None:
        self.mail = mail
        self.store = mail.store

    def slice_size(self) -> int:
        return SLICE_BATCHES * self.mail.profile.imap.batch_size

    def _synced(self, name: str) -> bool:
        # A folder the profile no longer syncs is not waited for (its mark stays, for
        # when it is synced again); before the first pass every known folder counts.
        synced = self.mail.synced_folders
        return not synced or any(name == n for n, _role in synced)

    def pending(self) -> bool:
        with self.store.read() as conn:
            names = conn.execute(text(
                "SELECT name FROM folders WHERE backfill_below IS NOT NULL")).scalars().all()
        return any(self._synced(n) for n in names)

    def progress(self) -> SyncProgress:
        """Counted from the store (an index range per folder: milliseconds at 100,000)."""
        with self.store.read() as conn:
            rows = [r for r in conn.execute(text(
                "SELECT f.name, f.exists_count, f.backfill_below, (SELECT count(*) FROM "
                "locations l WHERE l.folder_id = f.id AND l.uidvalidity = f.uidvalidity) "
                "AS stored FROM folders f WHERE f.uidvalidity IS NOT NULL")).mappings().all()
                    if self._synced(r["name"])]
        stored = sum(int(r["stored"]) for r in rows)
        total = sum(max(int(r["exists_count"] or 0), int(r["stored"])) for r in rows)
        return SyncProgress(stored, total, any(r["backfill_below"] is not None for r in rows))

    def run(self, client: imapclient.IMAPClient, budget: int | None = None,
            on_batch: OnBatch | None = None) -> SyncResult:
        """Store up to ``budget`` (default :meth:`slice_size`) older messages, the
        folders in sync order; ``on_batch`` gets each stored batch's result."""
        left = self.slice_size() if budget is None else budget
        result = SyncResult()
        synced = dict(self.mail.synced_folders)
        with self.store.read() as conn:
            rows = conn.execute(text(
                "SELECT name FROM folders WHERE backfill_below IS NOT NULL ORDER BY id")).all()
        for (name,) in rows:
            if left <= 0:
                break
            role = synced.get(name)
            if role is None:  # no longer synced (the profile changed): nothing to fill
                continue
            done = self.folder(client, name, role, left, on_batch)
            left -= done.new_messages_seen
            result.merge(done.result)
        return result

    def folder(self, client: imapclient.IMAPClient, name: str, role: str, budget: int,
               on_batch: OnBatch | None = None) -> _Slice:
        """Store up to ``budget`` messages of ``name`` below its ``backfill_below``."""
        info = examine(client, name)
        uidvalidity = int(info[b"UIDVALIDITY"])
        exists = int(info.get(b"EXISTS", 0))
        with self.store.read() as conn:
            row = conn.execute(text(
                "SELECT id, uidvalidity, backfill_below, (SELECT count(*) FROM locations l "
                "WHERE l.folder_id = folders.id AND l.uidvalidity = folders.uidvalidity "
                "AND l.uid >= folders.backfill_below) AS above FROM folders WHERE name = :n"),
                {"n": name}).mappings().first()
        out = _Slice(SyncResult(), 0)
        if row is None or row["backfill_below"] is None:
            return out
        if row["uidvalidity"] != uidvalidity:
            return out  # the next pass's sync_folder starts it over (newest first again)
        folder_id = int(row["id"])
        below = int(row["backfill_below"])
        seq = self._first_seq_at(client, below, exists, exists - int(row["above"]) + 1)
        if seq <= 1:  # nothing older on the server
            self._finish(folder_id, uidvalidity, None)
            return out
        start = max(1, seq - budget)
        low = 1 if start == 1 else uid_at(client, start)
        if low is None or low >= below:
            low = 1  # numbers shifted under us (expunges): take the whole rest
        sizes = {u: n for u, n in self.mail._sizes(client, f"{low}:{below - 1}", 0).items()
                 if low <= u < below}
        batches = self.mail._batches(sorted(sizes, reverse=True), sizes,
                                     STORE_BATCHES * self.mail.profile.imap.batch_size)
        for batch, fetched in self.mail._prefetched(client, batches, sizes):
            parsed = [parse_message(m.raw) for m in fetched]
            stored = self.mail._store_batch(folder_id, uidvalidity, role, fetched, parsed,
                                            BACKFILL_DOWN, min(batch))
            del fetched, parsed
            stored.new_inbound, stored.new_inbound_more = [], 0  # old mail is not news
            out.new_messages_seen += len(batch)
            if on_batch is not None:
                on_batch(stored)
            out.result.merge(stored)
        # Every UID from low up is in now; below the first message, nothing is left.
        self._finish(folder_id, uidvalidity, None if start == 1 or low == 1 else low)
        return out

    def _finish(self, folder_id: int, uidvalidity: int, below: int | None) -> None:
        with self.store.begin() as conn:
            if below is None:
                conn.execute(text("UPDATE folders SET backfill_below = NULL "
                                  "WHERE id = :id AND uidvalidity = :v"),
                             {"id": folder_id, "v": uidvalidity})
                log.info("folder %s: older mail all in", folder_id)
            else:
                conn.exec_driver_sql(BACKFILL_DOWN, (below, folder_id, uidvalidity))

    def _first_seq_at(self, client: imapclient.IMAPClient, uid: int, exists: int,
                      hint: int) -> int:
        """The number of the first message with a UID of at least ``uid`` (``exists + 1``
        if none). ``hint`` (from what is stored) is right unless mail was expunged: two
        small round trips check it; else bisection."""
        if 1 <= hint <= exists + 1:
            before = uid_at(client, hint - 1) if hint > 1 else 0
            at = uid_at(client, hint) if hint <= exists else None
            if before is not None and before < uid and ((at is None and hint == exists + 1)
                                                        or (at is not None and at >= uid)):
                return hint
        lo, hi = 1, exists + 1
        while lo < hi:
            mid = (lo + hi) // 2
            found = uid_at(client, mid)
            if found is None or found >= uid:
                hi = mid
            else:
                lo = mid + 1
        return lo


@dataclass
class _Slice:
    result: SyncResult
    new_messages_seen: int  # messages fetched (stored now or already), against the budget
