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
from datetime import datetime
from typing import Any

import imapclient
from sqlalchemy import text

from helpdesk.config import ImapSettings
from helpdesk.mail.folders import FolderMap, ensure_folder
from helpdesk.mail.folders import append as append_message
from helpdesk.mail.imap import examine, fetch_bodies, selected
from helpdesk.store import Store
from helpdesk.store.engine import raw_cursor
from helpdesk.team.events import NONCE_HEADER, Event, EventError, decode_body, encode
from helpdesk.team.fold import FoldResult, apply_event, db_time, parse_db_time, reset_team_state
from helpdesk.team.registry import HANDLERS

log = logging.getLogger(__name__)

FETCH_BATCH = 5000
_APPENDUID = re.compile(rb"APPENDUID\s+(\d+)\s+(\d+)", re.IGNORECASE)


class TeamLog:
    """Replays the team folder into ``store``; every call runs on the caller's connection."""

    def __init__(self, store: Store, folder: str, settings: ImapSettings | None = None) -> None:
        self.store = store
        self.folder = folder  # the server's name (the session maps the profile's)
        self.settings = settings

    # --- cursor ----------------------------------------------------------------

    def cursor(self) -> tuple[int | None, int, datetime | None]:
        """(uidvalidity, last folded uid, server clock T of the last event)."""
        with self.store.read() as conn:
            rows: dict[str, str | None] = dict(conn.execute(text(
                "SELECT key, value FROM meta WHERE key IN "
                "('team.uidvalidity', 'team.cursor', 'team.clock')")).all())
        v, c, t = rows.get("team.uidvalidity"), rows.get("team.cursor"), rows.get("team.clock")
        return (int(v) if v else None, int(c or 0), parse_db_time(t) if t else None)

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

    def replay(self, client: imapclient.IMAPClient, upto: int | None = None) -> FoldResult:
        """Fold every new event (or up to UID ``upto``).

        When the log is not the selected folder, EXAMINE it first (UIDVALIDITY
        check, cheap no-change exit via UIDNEXT, bounded batches). When it is
        (right after our own APPEND), one UID FETCH of the new range is enough.
        """
        known_v, cursor, _clock = self.cursor()
        result = FoldResult()
        if selected(client) == self.folder and known_v is not None:
            if upto is None:
                client.noop()  # lets the server show what others appended meanwhile
                fetched = fetch_bodies(client, f"{cursor + 1}:*")
            elif upto <= cursor:
                return result
            else:
                fetched = fetch_bodies(client, f"{cursor + 1}:{upto}")
                if upto not in {uid for uid, _at, _body in fetched}:
                    client.noop()  # our own APPEND not in this view yet: resync and retry
                    fetched = fetch_bodies(client, f"{cursor + 1}:{upto}")
            result.merge(self._fold(known_v, fetched, cursor, upto))
            return result
        info = self.select(client)
        uidvalidity = int(info[b"UIDVALIDITY"])
        exists = int(info.get(b"EXISTS", 0))
        if known_v != uidvalidity:
            if known_v is not None:
                log.warning("team log UIDVALIDITY changed (%s -> %s): rebuilding team state "
                            "from the log (new lock epoch)", known_v, uidvalidity)
            self._reset(uidvalidity)
            cursor = 0
            result.tickets.add("*")
        uidnext = int(info.get(b"UIDNEXT", 0)) or None
        last = upto if upto is not None else (uidnext - 1 if uidnext else None)
        if last is not None and last <= cursor:
            return result
        if last is None:  # no UIDNEXT: one open-ended fetch
            result.merge(self._fold(uidvalidity, fetch_bodies(client, f"{cursor + 1}:*"),
                                    cursor, None))
        else:
            lo = cursor + 1
            while lo <= last:
                hi = min(last, lo + FETCH_BATCH - 1)
                result.merge(self._fold(uidvalidity, fetch_bodies(client, f"{lo}:{hi}"),
                                        lo - 1, hi))
                lo = hi + 1
        if upto is None and exists and self._seen_count() < exists:
            # More messages than we ever read: one became visible below our cursor.
            log.warning("team log: a message appeared below the replay cursor; rebuilding")
            return self.rebuild(client)
        return result

    def _seen_count(self) -> int:
        return int(self.store.get_meta("team.seen") or 0)

    def _reset(self, uidvalidity: int) -> None:
        with self.store.begin() as conn:
            reset_team_state(raw_cursor(conn))
            self.store.set_meta("team.uidvalidity", str(uidvalidity), conn)
            self.store.set_meta("team.cursor", "0", conn)
            self.store.set_meta("team.clock", None, conn)
            self.store.set_meta("team.seen", "0", conn)

    def rebuild(self, client: imapclient.IMAPClient) -> FoldResult:
        self._reset(int(self.select(client)[b"UIDVALIDITY"]))
        result = self.replay(client)
        result.tickets.add("*")
        return result

    def _fold(self, uidvalidity: int, events: list[tuple[int, datetime, bytes]], after: int,
              upto: int | None) -> FoldResult:
        """Fold fetched events with UID > ``after`` in one transaction with the cursor."""
        result = FoldResult()
        events = [e for e in events if e[0] > after and (upto is None or e[0] <= upto)]
        if not events:
            return result
        with self.store.begin() as conn:
            cur = raw_cursor(conn)
            rows = dict(cur.execute("SELECT key, value FROM meta WHERE key IN "
                                    "('team.clock', 'team.seen')").fetchall())
            clock = parse_db_time(rows["team.clock"]) if rows.get("team.clock") else None
            seen = int(rows.get("team.seen") or 0)
            for uid, at, body in events:
                seen += 1
                result.uids.add(uid)
                clock = at if clock is None or at > clock else clock  # monotone clamp
                try:
                    event = decode_body(body)
                except EventError as exc:
                    log.warning("team log: skipped message uid %d: %s", uid, exc)
                    result.skipped += 1
                    continue
                apply_event(cur, event, uid, clock, body.decode("utf-8", "replace"), result,
                            HANDLERS)
            self.store.set_meta("team.cursor", str(events[-1][0]), conn)
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
        try:
            raw = append_message(client, self.folder, encode(event, nonce), [imapclient.SEEN])
        except imapclient.exceptions.IMAPClientError:
            if client.folder_exists(self.folder):
                raise
            self._create(client)
            raw = append_message(client, self.folder, encode(event, nonce), [imapclient.SEEN])
        m = _APPENDUID.search(raw)
        if m:
            return int(m.group(2))
        if selected(client) != self.folder:
            self.select(client)
        found = client.search(["UID", f"{before or 1}:*", "HEADER", NONCE_HEADER, nonce])
        if not found:
            raise imapclient.exceptions.IMAPClientError(
                "the server did not show the appended team event")
        return int(min(found))

    def publish(self, client: imapclient.IMAPClient, events: list[Event]) -> FoldResult:
        """Append ``events``, fold the log up to the last of them, settle-check, return.

        Round trips on a server with UIDPLUS when the log is already selected:
        APPEND (one per event), UID FETCH of the new range, and the settle check
        (one UID SEARCH).
        """
        _v, cursor_before, _t = self.cursor()
        last = 0
        for event in events:
            last = max(last, self.append(client, event))
        result = self.replay(client, upto=last)
        if selected(client) != self.folder:
            self.select(client)
        # Settle check: did anything become visible below our event that we did not read?
        visible = {u for u in client.search(["UID", f"{cursor_before + 1}:{last}"])
                   if cursor_before < u <= last}
        if visible - result.uids:
            log.warning("team log: late message detected before confirming; rebuilding")
            rebuilt = self.rebuild(client)
            rebuilt.outcomes = {**result.outcomes, **rebuilt.outcomes}
            return rebuilt
        return result

    def server_time_of_event(self, event_id: str) -> datetime | None:
        with self.store.read() as conn:
            value = conn.execute(text("SELECT at FROM team_events WHERE event_id = :e"),
                                 {"e": event_id}).scalar()
        return parse_db_time(value)
