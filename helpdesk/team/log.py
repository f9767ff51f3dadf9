"""The team log on the IMAP server: append events, replay them in UID order.

- Append with ``\\Seen`` and no date, so INTERNALDATE is the server's clock.
- Learn our event's UID from APPENDUID (UIDPLUS); without UIDPLUS, search for
  the event's nonce header from the UIDNEXT seen before appending.
- Replay incrementally from a cursor (the last UID folded), in one transaction
  per batch together with the cursor, so a crash never folds an event twice.
- UIDVALIDITY of the log changing means: forget the fold and rebuild from the
  log (a new lock epoch).
- Guard against servers that expose appended messages late: after folding up to
  our own event, look again at the UID range we just read; if a message
  appeared in it, the fold order was wrong and we rebuild.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import imapclient
from sqlalchemy import text

from helpdesk.store import Store
from helpdesk.team.events import NONCE_HEADER, Event, EventError, decode_body, encode
from helpdesk.team.fold import FoldResult, apply_event, db_time, parse_db_time, reset_team_state

log = logging.getLogger(__name__)

FETCH_BATCH = 2000
_APPENDUID = re.compile(rb"APPENDUID\s+(\d+)\s+(\d+)", re.IGNORECASE)


def _utc(dt: Any) -> datetime:
    if not isinstance(dt, datetime):
        return datetime.now(UTC).replace(tzinfo=None)
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


@dataclass
class Published:
    uid: int
    at: datetime  # server time of the event


class TeamLog:
    """Replays the team folder into ``store``; every call runs on the caller's connection."""

    def __init__(self, store: Store, folder: str) -> None:
        self.store = store
        self.folder = folder
        self._selected_on: int | None = None

    # --- cursor ----------------------------------------------------------------

    def cursor(self) -> tuple[int | None, int, datetime | None]:
        """(uidvalidity, last folded uid, server clock T of the last event)."""
        with self.store.read() as conn:
            v = self.store.get_meta("team.uidvalidity", conn)
            c = self.store.get_meta("team.cursor", conn)
            t = self.store.get_meta("team.clock", conn)
        return (int(v) if v else None, int(c or 0), parse_db_time(t) if t else None)

    # --- folder ----------------------------------------------------------------

    def select(self, client: imapclient.IMAPClient) -> dict[bytes, Any]:
        try:
            return dict(client.select_folder(self.folder, readonly=True))
        except imapclient.exceptions.IMAPClientError:
            if client.folder_exists(self.folder):
                raise
            client.create_folder(self.folder)
            log.info("created the team log folder %s", self.folder)
            return dict(client.select_folder(self.folder, readonly=True))

    # --- replay ----------------------------------------------------------------

    def replay(self, client: imapclient.IMAPClient, upto: int | None = None) -> FoldResult:
        """Fold every new event (optionally stopping after UID ``upto``)."""
        info = self.select(client)
        uidvalidity = int(info[b"UIDVALIDITY"])
        exists = int(info.get(b"EXISTS", 0))
        known_v, cursor, _clock = self.cursor()
        result = FoldResult()
        if known_v != uidvalidity:
            if known_v is not None:
                log.warning("team log UIDVALIDITY changed (%s -> %s): rebuilding team state "
                            "from the log (new lock epoch)", known_v, uidvalidity)
            self._reset(uidvalidity)
            cursor = 0
            result.tickets.add("*")
        uidnext = info.get(b"UIDNEXT")
        if uidnext is not None and int(uidnext) <= cursor + 1 and upto is None:
            return result
        uids = sorted(u for u in client.search(["UID", f"{cursor + 1}:*"]) if u > cursor)
        if upto is not None:
            uids = [u for u in uids if u <= upto]
        for i in range(0, len(uids), FETCH_BATCH):
            batch = uids[i:i + FETCH_BATCH]
            data = client.fetch(batch, ["INTERNALDATE", "BODY.PEEK[TEXT]"])
            result.merge(self._fold_batch(uidvalidity, batch, data))
        if upto is None and exists and self._seen_count() < exists:
            # More messages than we ever read: one became visible below our cursor.
            log.warning("team log: a message appeared below the replay cursor; rebuilding")
            return self.rebuild(client)
        return result

    def _seen_count(self) -> int:
        return int(self.store.get_meta("team.seen") or 0)

    def _reset(self, uidvalidity: int) -> None:
        with self.store.begin() as conn:
            reset_team_state(conn.connection.driver_connection.cursor())
            self.store.set_meta("team.uidvalidity", str(uidvalidity), conn)
            self.store.set_meta("team.cursor", "0", conn)
            self.store.set_meta("team.clock", None, conn)
            self.store.set_meta("team.seen", "0", conn)

    def rebuild(self, client: imapclient.IMAPClient) -> FoldResult:
        self._reset(int(self.select(client)[b"UIDVALIDITY"]))
        result = self.replay(client)
        result.tickets.add("*")
        return result

    def _fold_batch(self, uidvalidity: int, batch: list[int],
                    data: dict[int, dict[bytes, Any]]) -> FoldResult:
        result = FoldResult()
        with self.store.begin() as conn:
            cur = conn.connection.driver_connection.cursor()
            clock_text = self.store.get_meta("team.clock", conn)
            clock = parse_db_time(clock_text) if clock_text else None
            seen = int(self.store.get_meta("team.seen", conn) or 0)
            for uid in batch:
                item = data.get(uid)
                if item is None:
                    continue  # expunged meanwhile
                seen += 1
                at = _utc(item.get(b"INTERNALDATE"))
                clock = at if clock is None or at > clock else clock  # monotone clamp
                body = next((v for k, v in item.items() if k.startswith(b"BODY[TEXT]")), b"")
                try:
                    event = decode_body(body or b"")
                except EventError as exc:
                    log.warning("team log: skipped message uid %d: %s", uid, exc)
                    result.skipped += 1
                    continue
                apply_event(cur, event, uid, clock, (body or b"").decode("utf-8", "replace"),
                            result)
            self.store.set_meta("team.cursor", str(max(batch)), conn)
            self.store.set_meta("team.seen", str(seen), conn)
            if clock is not None:
                self.store.set_meta("team.clock", db_time(clock), conn)
        return result

    # --- publishing ------------------------------------------------------------

    def append(self, client: imapclient.IMAPClient, event: Event) -> int:
        """APPEND one event; return its UID (APPENDUID, else the nonce search)."""
        nonce = uuid.uuid4().hex
        uidplus = client.has_capability("UIDPLUS")
        before = None
        if not uidplus:
            before = int(client.folder_status(self.folder, [b"UIDNEXT"])[b"UIDNEXT"])
        response = client.append(self.folder, encode(event, nonce), flags=[imapclient.SEEN])
        raw = response if isinstance(response, bytes) else str(response).encode()
        m = _APPENDUID.search(raw)
        if m:
            return int(m.group(2))
        self.select(client)
        found = client.search(["UID", f"{before or 1}:*", "HEADER", NONCE_HEADER, nonce])
        if not found:
            raise RuntimeError("the server did not show the appended team event")
        return int(min(found))

    def publish(self, client: imapclient.IMAPClient, events: list[Event]) -> FoldResult:
        """Append ``events``, fold the log up to the last of them, settle-check, return."""
        _v, cursor_before, _t = self.cursor()
        self.select(client)
        last = 0
        for event in events:
            last = max(last, self.append(client, event))
        result = self.replay(client, upto=last)
        # Settle check: did anything become visible in the range we just read?
        client.noop()
        visible = client.search(["UID", f"{cursor_before + 1}:{last}"])
        with self.store.read() as conn:
            folded = conn.execute(text(
                "SELECT count(*) FROM team_events WHERE uid > :a AND uid <= :b"),
                {"a": cursor_before, "b": last}).scalar() or 0
        if len([u for u in visible if cursor_before < u <= last]) > folded + result.skipped:
            log.warning("team log: late message detected before confirming; rebuilding")
            rebuilt = self.rebuild(client)
            rebuilt.outcomes.update({k: v for k, v in rebuilt.outcomes.items()})
            return rebuilt
        return result

    def server_time_of_event(self, event_id: str) -> datetime | None:
        with self.store.read() as conn:
            value = conn.execute(text("SELECT at FROM team_events WHERE event_id = :e"),
                                 {"e": event_id}).scalar()
        return parse_db_time(value)
