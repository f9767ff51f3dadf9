"""Folder sync: bring new mail from IMAP folders into the local store.

Contract:
- incremental by (UIDVALIDITY, UID); a UIDVALIDITY change re-reads the folder,
  and de-duplication by message identity keeps every message stored once;
- read-only: folders are EXAMINEd and bodies fetched with ``BODY.PEEK[]``, so
  the app never sets ``\\Seen``, never moves or deletes mail;
- newest first: a folder's first sync stores its newest ``head_size()`` messages,
  then the older mail is back-filled downwards, a slice per pass
  (helpdesk/mail/backfill.py), while new mail keeps coming in above ``last_uid``;
- crash-safe: each batch (messages, tickets, search index and the folder's mark,
  ``last_uid`` going up or ``backfill_below`` going down) is one transaction, so a
  sync killed at any instant and re-run stores every message exactly once.

Fetch strategy: one ``UID FETCH`` of ``BODY.PEEK[]`` per batch (batches capped by
count and bytes). Support mail is small; one round trip per batch beats
BODYSTRUCTURE plus per-part fetches. Only headers, text, HTML and attachment
metadata are kept; attachment bodies are fetched again on demand. Messages over
``FULL_FETCH_LIMIT`` get their header and the first ``PARTIAL_BYTES`` of body.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import imapclient
from sqlalchemy import Connection, text

from helpdesk.clock import utcnow
from helpdesk.config import Profile
from helpdesk.mail import threads
from helpdesk.mail.conversations import dedup_key, snippet, ticket_for
from helpdesk.mail.folders import FolderMap
from helpdesk.mail.imap import examine, fetch_bodies, fetch_sizes, uid_at, uid_set
from helpdesk.mail.parse import ParsedMessage, parse_message
from helpdesk.store import Store
from helpdesk.store.aliases import canonical
from helpdesk.store.engine import db_time, raw_cursor

log = logging.getLogger(__name__)

FULL_FETCH_LIMIT = 12 * 1024 * 1024
PARTIAL_BYTES = 1024 * 1024
BATCH_BYTES = 16 * 1024 * 1024
MAX_FTS_BODY = 100_000
# Messages per window of a folder sync (sizes, then batches): what it holds at once.
UID_WINDOW = 5000
# Newest first: a folder's first sync stores this many batches of its newest mail before
# the older mail is back-filled (helpdesk/mail/backfill.py).
HEAD_BATCHES = 3
# The marks a stored batch moves (see MailSync._store_batch): parameters (uid, folder id,
# UIDVALIDITY); a folder whose UIDVALIDITY changed meanwhile keeps its reset marks.
LAST_UID_UP = ("UPDATE folders SET last_uid = max(last_uid, ?) WHERE id = ? "
               "AND uidvalidity = ?")
# Two processes back-filling one store at once: the lower mark is the true one.
BACKFILL_DOWN = ("UPDATE folders SET backfill_below = min(backfill_below, ?) "
                 "WHERE id = ? AND uidvalidity = ? AND backfill_below IS NOT NULL")
# Bounds of a merged SyncResult (see there).
KEEP_TICKETS = 1000
KEEP_INBOUND = 100
FREEMAIL = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "yahoo.com",
    "icloud.com", "me.com", "aol.com", "gmx.de", "gmx.net", "web.de", "proton.me",
    "protonmail.com", "yandex.ru", "mail.ru", "qq.com", "163.com", "orange.fr", "free.fr",
})


def organisation_for(address: str) -> str | None:
    domain = address.rpartition("@")[2]
    if not domain or domain in FREEMAIL:
        return None
    return domain


def _naive_utc(dt: Any) -> datetime | None:
    if not isinstance(dt, datetime):
        return None
    if dt.tzinfo is not None:
        return dt.astimezone(UTC).replace(tzinfo=None)
    return dt


@dataclass
class SyncResult:
    """What a sync stored: new messages, tickets that got them, new customer mail.

    A result of one stored batch is complete. Merged results (a folder, a whole
    pass) are bounded whatever the mailbox size, so an initial sync of 100,000
    messages holds no per-message state: past ``KEEP_TICKETS`` tickets, ``tickets``
    becomes ``{"*"}`` (everything changed, as in the views' ``Changes``); past
    ``KEEP_INBOUND`` entries, ``new_inbound`` keeps its first ones and
    ``new_inbound_more`` counts the rest. Callers that need every ticket (the
    survey scan) take each batch as it is stored (``on_batch``).
    """

    new_messages: int = 0
    tickets: set[str] = field(default_factory=set)
    new_inbound: list[tuple[str, str | None]] = field(default_factory=list)  # (ticket, sender)
    new_inbound_more: int = 0  # inbound messages not listed in new_inbound

    def merge(self, other: SyncResult) -> None:
        self.new_messages += other.new_messages
        if "*" in self.tickets or "*" in other.tickets \
                or len(self.tickets) + len(other.tickets) > KEEP_TICKETS:
            self.tickets = {"*"}
        else:
            self.tickets |= other.tickets
        room = max(0, KEEP_INBOUND - len(self.new_inbound))
        self.new_inbound.extend(other.new_inbound[:room])
        self.new_inbound_more += other.new_inbound_more + max(0, len(other.new_inbound) - room)


OnBatch = Callable[[SyncResult], None]


@dataclass
class IncomingMessage:
    uid: int
    raw: bytes
    internal_date: datetime
    truncated: bool = False


class MailSync:
    """Sync the profile's folders into ``store`` over a connection the caller owns."""

    def __init__(self, store: Store, profile: Profile) -> None:
        self.store = store
        self.profile = profile
        self.ours = profile.support_addresses
        # Tickets whose messages moved while storing the last message (threads linked).
        self._moved: set[str] = set()
        #: (server name, role) of the folders the last ``sync_all`` synced.
        self.synced_folders: list[tuple[str, str]] = []
        #: Whether the last ``sync_all`` started a folder at its newest mail.
        self.started_newest_first = False

    # --- folder bookkeeping ------------------------------------------------

    def folders(self, client: imapclient.IMAPClient) -> list[tuple[str, str]]:
        """(server folder name, role) pairs to sync, inbox folders first: the profile's
        names mapped into the server's namespace, Sent found by SPECIAL-USE when the
        profile names none (helpdesk/mail/folders.py)."""
        return FolderMap.of(client, self.profile.imap).sync_folders(client)

    def _folder_row(self, conn: Connection, name: str, role: str) -> dict[str, Any]:
        row = conn.execute(text("SELECT * FROM folders WHERE name = :n"), {"n": name}).mappings()
        found = row.first()
        if found:
            return dict(found)
        conn.execute(text("INSERT INTO folders (name, role, last_uid) VALUES (:n, :r, 0)"),
                     {"n": name, "r": role})
        return self._folder_row(conn, name, role)

    # --- sync --------------------------------------------------------------

    def sync_all(self, client: imapclient.IMAPClient,
                 on_batch: OnBatch | None = None) -> SyncResult:
        """Sync every folder; ``on_batch`` gets each stored batch's (complete) result."""
        result = SyncResult()
        # Once, after the upgrade to 0010: links among the messages stored before it.
        result.merge(SyncResult(tickets=threads.rethread_stored(self.store)))
        self.started_newest_first = False
        synced: list[tuple[str, str]] = []
        for name, role in self.folders(client):
            if role == "sent" and not client.folder_exists(name):
                log.info("Sent folder %r does not exist; skipping", name)
                continue
            result.merge(self.sync_folder(client, name, role, on_batch))
            synced.append((name, role))
        self.synced_folders = synced
        return result

    def sync_folder(self, client: imapclient.IMAPClient, name: str, role: str,
                    on_batch: OnBatch | None = None) -> SyncResult:
        """Store the folder's new mail, window by window of UIDs, batch by batch.

        Memory does not grow with the folder: UIDs and sizes are known one window
        at a time (see ``_windows``) and the result is bounded (see
        :class:`SyncResult`).
        """
        info = examine(client, name)
        uidvalidity = int(info[b"UIDVALIDITY"])
        uidnext = int(info[b"UIDNEXT"]) if b"UIDNEXT" in info else None
        modseq = int(info[b"HIGHESTMODSEQ"]) if b"HIGHESTMODSEQ" in info else None
        with self.store.begin() as conn:
            folder = self._folder_row(conn, name, role)
            if folder["uidvalidity"] != uidvalidity:
                if folder["uidvalidity"] is not None:
                    log.warning("UIDVALIDITY of %s changed (%s -> %s): re-reading the folder",
                                name, folder["uidvalidity"], uidvalidity)
                conn.execute(text("UPDATE folders SET uidvalidity = :v, last_uid = 0, "
                                  "uidnext = NULL, highestmodseq = NULL, backfill_below = NULL "
                                  "WHERE id = :id"),
                             {"v": uidvalidity, "id": folder["id"]})
                folder["last_uid"] = 0
                folder["uidnext"] = None
                folder["backfill_below"] = None
        last_uid = int(folder["last_uid"])
        result = SyncResult()
        exists = int(info[b"EXISTS"]) if b"EXISTS" in info else None
        if uidnext is not None and uidnext <= last_uid + 1:
            self._mark_synced(folder["id"], uidnext, modseq, exists)
            return result
        if last_uid == 0 and folder["backfill_below"] is None:
            last_uid = self._newest_first(client, folder["id"], uidvalidity, exists)
        for sizes in self._windows(client, last_uid, uidnext, exists):
            batches = self._batches(sorted(sizes), sizes)
            for batch, fetched in self._prefetched(client, batches, sizes):
                parsed = [parse_message(m.raw) for m in fetched]
                stored = self._store_batch(folder["id"], uidvalidity, role, fetched, parsed,
                                           LAST_UID_UP, max(batch))
                del fetched, parsed  # at most this batch and the next in memory
                if on_batch is not None:
                    on_batch(stored)
                result.merge(stored)
        self._mark_synced(folder["id"], uidnext, modseq, exists)
        return result

    def head_size(self) -> int:
        """Messages a folder's first sync takes from its newest end before any older
        mail (the rest is back-filled, newest first: helpdesk/mail/backfill.py)."""
        return HEAD_BATCHES * self.profile.imap.batch_size

    def _newest_first(self, client: imapclient.IMAPClient, folder_id: int, uidvalidity: int,
                      exists: int | None) -> int:
        """(A folder with nothing stored.) Start it at its newest ``head_size()``
        messages: ``last_uid`` goes just below them and ``backfill_below`` at them, so
        this pass stores the newest mail and later passes fill in what lies below.
        Returns the new ``last_uid`` (0: the folder is small, synced as before)."""
        head = self.head_size()
        if exists is None or exists <= head:
            return 0
        first = uid_at(client, exists - head + 1)
        if first is None or first <= 1:
            return 0
        self.started_newest_first = True
        with self.store.begin() as conn:
            conn.execute(text("UPDATE folders SET last_uid = :last, backfill_below = :first "
                              "WHERE id = :id AND uidvalidity = :v AND last_uid = 0"),
                         {"last": first - 1, "first": first, "id": folder_id, "v": uidvalidity})
        return first - 1

    def _windows(self, client: imapclient.IMAPClient, last_uid: int, uidnext: int | None,
                 exists: int | None) -> Iterator[dict[int, int]]:
        """Sizes (UID -> RFC822.SIZE) of the messages above ``last_uid``, in ascending
        windows of about ``UID_WINDOW`` messages.

        No ``SEARCH`` of every new UID (one response line that grows with the folder,
        and imaplib refuses lines over 1 MB, about 140,000 UIDs): each window is a
        UID range ``UID FETCH lo:hi``, its end ``hi`` read off the message
        ``UID_WINDOW`` sequence numbers further on. Sequence numbers only place the
        windows: the UID ranges follow each other without gaps, so a message expunged
        meanwhile (numbers shift) makes a window a little larger, never skips mail.
        """
        if exists == 0:
            return
        if exists is None or (uidnext is not None and uidnext - 1 - last_uid <= UID_WINDOW):
            # Few UIDs can be new (the usual incremental pass): one window.
            yield self._sizes(client, f"{last_uid + 1}:*", last_uid)
            return
        seq = 1 if last_uid == 0 else self._first_seq_above(client, last_uid, uidnext, exists)
        low = last_uid
        while True:
            end = seq + UID_WINDOW - 1
            high = uid_at(client, end) if end < exists else None
            if high is None:  # the last window, open-ended
                yield self._sizes(client, f"{low + 1}:*", low)
                return
            if high > low:
                yield self._sizes(client, f"{low + 1}:{high}", low)
                low = high
            seq = end + 1

    def _first_seq_above(self, client: imapclient.IMAPClient, last_uid: int,
                         uidnext: int | None, exists: int) -> int:
        """The sequence number of the first message with a UID above ``last_uid``
        (``exists + 1`` if none), by bisection: a few one-message round trips."""
        lo, hi = 1, exists + 1
        if uidnext is not None:  # at most uidnext - 1 - last_uid messages are newer
            lo = max(1, exists - (uidnext - 1 - last_uid) + 1)
        while lo < hi:
            mid = (lo + hi) // 2
            uid = uid_at(client, mid)
            if uid is None or uid > last_uid:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _mark_synced(self, folder_id: int, uidnext: int | None, modseq: int | None,
                     exists: int | None) -> None:
        with self.store.begin() as conn:
            conn.execute(text("UPDATE folders SET uidnext = :u, highestmodseq = :m, "
                              "synced_at = :t, exists_count = :e WHERE id = :id"),
                         {"u": uidnext, "m": modseq, "t": utcnow(), "e": exists,
                          "id": folder_id})

    def _sizes(self, client: imapclient.IMAPClient, uids: str, above: int) -> dict[int, int]:
        """RFC822.SIZE of the UID set ``uids``, without UIDs up to ``above`` (a range
        ``n:*`` past the end returns the last message)."""
        return {u: n for u, n in fetch_sizes(client, uids).items() if u > above}

    def _batches(self, uids: Sequence[int], sizes: dict[int, int],
                 limit: int | None = None) -> Iterable[list[int]]:
        """``uids`` in order, cut into batches of at most ``limit`` messages (default
        the profile's ``batch_size``) and ``BATCH_BYTES``."""
        batch: list[int] = []
        total = 0
        limit = limit or self.profile.imap.batch_size
        for uid in uids:
            size = min(sizes.get(uid, 0), PARTIAL_BYTES * 2)
            if batch and (len(batch) >= limit or total + size > BATCH_BYTES):
                yield batch
                batch, total = [], 0
            batch.append(uid)
            total += size
        if batch:
            yield batch

    def _prefetched(self, client: imapclient.IMAPClient, batches: Iterable[list[int]],
                    sizes: dict[int, int]) -> Iterator[tuple[list[int], list[IncomingMessage]]]:
        """(batch, its messages), fetching the next batch while the caller stores this one.

        The server prepares the next answer and the socket fills while we parse: one
        helper thread, and the connection is only ever used by one thread at a time.
        """
        pending = iter(batches)
        with ThreadPoolExecutor(1, thread_name_prefix="imap-prefetch") as pool:
            batch = next(pending, None)
            future = pool.submit(self._fetch, client, batch, sizes) if batch else None
            while batch is not None and future is not None:
                fetched = future.result()
                following = next(pending, None)
                future = pool.submit(self._fetch, client, following, sizes) \
                    if following else None
                try:
                    yield batch, fetched
                except BaseException:
                    if future is not None:
                        future.cancel()
                        wait([future])  # the connection is free again before we go on
                    raise
                batch = following

    def _fetch(self, client: imapclient.IMAPClient, uids: list[int],
               sizes: dict[int, int]) -> list[IncomingMessage]:
        small = [u for u in uids if sizes.get(u, 0) <= FULL_FETCH_LIMIT]
        large = [u for u in uids if sizes.get(u, 0) > FULL_FETCH_LIMIT]
        out: list[IncomingMessage] = []
        if small:
            wanted = set(small)
            # Messages expunged between SEARCH and FETCH are simply absent.
            for uid, when, raw in fetch_bodies(client, uid_set(small), ""):
                if uid in wanted:
                    out.append(IncomingMessage(uid, raw, when))
        if large:
            spec = f"BODY.PEEK[TEXT]<0.{PARTIAL_BYTES}>"
            data = client.fetch(large, ["BODY.PEEK[HEADER]", spec, "INTERNALDATE"])
            for uid in large:
                item = data.get(uid)
                if item is None:
                    continue
                body = next((v for k, v in item.items() if k.startswith(b"BODY[TEXT]")), b"")
                raw = (item.get(b"BODY[HEADER]") or b"") + (body or b"")
                out.append(IncomingMessage(uid, raw, _naive_utc(item.get(b"INTERNALDATE"))
                                           or utcnow(), truncated=True))
        out.sort(key=lambda m: m.uid)
        return out

    # --- storing -----------------------------------------------------------

    def _direction(self, parsed: ParsedMessage, role: str) -> str:
        if role == "sent" or (parsed.from_addr and parsed.from_addr in self.ours):
            return "out"
        return "in"

    def _store_batch(self, folder_id: int, uidvalidity: int, role: str,
                     messages: list[IncomingMessage], parsed_all: list[ParsedMessage],
                     mark: str, uid: int | None) -> SyncResult:
        """Store one batch and move the folder's mark (``LAST_UID_UP`` or
        ``BACKFILL_DOWN``, to ``uid``) in the same transaction: what the marks say is
        stored is stored, whenever the process dies."""
        result = SyncResult()
        merged: set[str] = set()
        with self.store.begin() as conn:
            cur = raw_cursor(conn)
            for m, parsed in zip(messages, parsed_all, strict=True):
                if m.truncated:
                    parsed.defects.append("message too large: only the first part was fetched")
                self._moved = set()
                pk, new, ticket_id = self._insert_message(cur, m, parsed, role)
                if self._moved:  # linked threads merged: those tickets changed too
                    result.tickets |= self._moved
                    merged.update(self._moved)
                cur.execute("INSERT OR IGNORE INTO locations (folder_id, uidvalidity, uid, "
                            "message_pk) VALUES (?, ?, ?, ?)", (folder_id, uidvalidity, m.uid, pk))
                if new:
                    result.new_messages += 1
                    result.tickets.add(ticket_id)
                    if self._direction(parsed, role) == "in" and parsed.auto_kind == "none":
                        result.new_inbound.append((ticket_id, parsed.from_addr))
            if merged:  # a ticket merged away earlier in this batch lives elsewhere now
                result.tickets = {canonical(cur, t) for t in result.tickets} | merged
                result.new_inbound = [(canonical(cur, t), s) for t, s in result.new_inbound]
            refresh_tickets(conn, result.tickets)
            cur.execute(mark, (uid, folder_id, uidvalidity))
        return result

    def _insert_message(self, cur: sqlite3.Cursor, m: IncomingMessage, parsed: ParsedMessage,
                        role: str) -> tuple[int, bool, str]:
        key = dedup_key(parsed, m.raw)
        existing = cur.execute("SELECT id, ticket_id FROM messages WHERE dedup_key = ?",
                               (key,)).fetchone()
        if existing:
            return int(existing[0]), False, str(existing[1])
        natural, thread = ticket_for(parsed)
        # Where the thread lives now: a subject token or root may name a merged ticket.
        ticket_id = canonical(cur, natural)
        direction = self._direction(parsed, role)
        received = db_time(m.internal_date)
        cur.execute("INSERT INTO tickets (id, thread_key, subject, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                    (ticket_id, thread, parsed.subject, received, received))
        pk = cur.execute(
            'INSERT INTO messages (dedup_key, ticket_id, thread_ticket, message_id, in_reply_to, '
            '"references", subject, from_addr, from_name, to_addrs, cc_addrs, reply_to, '
            "date_header, received_at, direction, auto_kind, text, html, attachments, defects, "
            "size, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING id",
            (key, ticket_id, natural, parsed.message_id, parsed.in_reply_to,
             " ".join(parsed.references),
             parsed.subject, parsed.from_addr, parsed.from_name,
             json.dumps(parsed.to, ensure_ascii=False), json.dumps(parsed.cc, ensure_ascii=False),
             parsed.reply_to, db_time(parsed.date) if parsed.date else None, received,
             direction, parsed.auto_kind, parsed.text, parsed.html,
             json.dumps([a.as_dict() for a in parsed.attachments], ensure_ascii=False),
             json.dumps(parsed.defects) if parsed.defects else None, len(m.raw),
             m.raw if parsed.defects else None)).fetchone()[0]
        customer = " ".join(filter(None, [parsed.from_name, parsed.from_addr]
                                   + [f"{n} {a}" for n, a in parsed.to]))
        cur.execute("INSERT INTO messages_fts (rowid, subject, body, customer, ticket_id) "
                    "VALUES (?, ?, ?, ?, ?)", (pk, parsed.subject, parsed.text[:MAX_FTS_BODY],
                                                customer, ticket_id))
        refs = [r for r in [parsed.in_reply_to, *parsed.references] if r]
        threads.store_refs(cur, int(pk), parsed.message_id, refs)
        moved = threads.link(cur, int(pk), natural, parsed.message_id, refs)
        if moved:
            ticket_id = canonical(cur, natural)
            self._moved |= moved
        if direction == "in" and parsed.from_addr and parsed.auto_kind == "none":
            upsert_customer(cur, parsed.from_addr, parsed.from_name)
        elif direction == "out":
            for name, addr in parsed.to:
                if addr not in self.ours:
                    upsert_customer(cur, addr, name or None)
        return int(pk), True, ticket_id


def upsert_customer(cur: sqlite3.Cursor, address: str, name: str | None) -> None:
    cur.execute("INSERT INTO customers (email, name, organisation) VALUES (?, ?, ?) "
                "ON CONFLICT (email) DO UPDATE SET name = coalesce(excluded.name, customers.name)",
                (address, name or None, organisation_for(address)))


def refresh_tickets(conn: Connection, ticket_ids: Iterable[str]) -> None:
    """Recompute each ticket's aggregates from its messages (order-independent)."""
    cur = raw_cursor(conn)
    try:
        refresh_tickets_cursor(cur, ticket_ids)
    finally:
        cur.close()


def refresh_tickets_cursor(on: sqlite3.Cursor, ticket_ids: Iterable[str]) -> None:
    """:func:`refresh_tickets` inside the transaction of the cursor ``on`` (a fold)."""
    ids = sorted(set(ticket_ids) - {"*"})
    cur = on.connection.cursor()
    cur.row_factory = sqlite3.Row
    try:
        for i in range(0, len(ids), 500):
            # One statement text whatever the chunk size: no per-length statement caching.
            rows = cur.execute(
                "SELECT ticket_id, received_at, direction, auto_kind, subject, from_addr, "
                "to_addrs, substr(text, 1, 2000) AS body, EXISTS (SELECT 1 FROM scores sc "
                "WHERE sc.id = 'mail:' || coalesce(m.message_id, m.dedup_key)) AS scored "
                "FROM messages m WHERE ticket_id IN (SELECT value FROM json_each(?)) "
                # Same second: the Date header, then the identity, never the order stored
                # in (newest-first sync stores replies before what they answer).
                "ORDER BY ticket_id, received_at, date_header, dedup_key",
                (json.dumps(ids[i:i + 500]),)).fetchall()
            by_ticket: dict[str, list[Any]] = {}
            for r in rows:
                by_ticket.setdefault(r["ticket_id"], []).append(r)
            updates = [_aggregate(tid, msgs) for tid, msgs in by_ticket.items()]
            cur.executemany(
                "UPDATE tickets SET subject = :subject, customer_email = :customer, "
                "created_at = :created, updated_at = :updated, message_count = :count, "
                "snippet = :snippet, waiting_since = :waiting, first_in_at = :first_in, "
                "last_in_at = :last_in, first_out_at = :first_out WHERE id = :id", updates)
    finally:
        cur.close()


def _aggregate(ticket_id: str, msgs: list[Any]) -> dict[str, Any]:
    customer_msgs = [m for m in msgs if m["direction"] == "in" and m["auto_kind"] == "none"
                     and not m["scored"]]
    inbound = [m for m in msgs if m["direction"] == "in"]
    # A forward to a colleague or vendor (helpdesk/replies.py) does not answer the customer.
    outbound = [m for m in msgs if m["direction"] == "out" and m["auto_kind"] != "forward"]
    customer = None
    for candidates in (customer_msgs, inbound):
        if candidates and candidates[0]["from_addr"]:
            customer = candidates[0]["from_addr"]
            break
    if customer is None and outbound:
        to = json.loads(outbound[0]["to_addrs"] or "[]")
        customer = to[0][1] if to else None
    waiting = None
    for m in msgs:
        if m["direction"] == "out" and m["auto_kind"] != "forward":
            waiting = None
        elif m["auto_kind"] == "none" and not m["scored"] and waiting is None:
            waiting = m["received_at"]
    latest = (customer_msgs or msgs)[-1]
    return {
        "id": ticket_id, "subject": msgs[0]["subject"] or "", "customer": customer,
        "created": msgs[0]["received_at"], "updated": msgs[-1]["received_at"],
        "count": len(msgs), "snippet": snippet(latest["body"] or ""), "waiting": waiting,
        "first_in": customer_msgs[0]["received_at"] if customer_msgs else None,
        "last_in": customer_msgs[-1]["received_at"] if customer_msgs else None,
        "first_out": outbound[0]["received_at"] if outbound else None,
    }
