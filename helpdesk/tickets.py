"""Reading the local ticket book: lists, one ticket, a customer, who holds what.

Reads never go through the serial worker: they query the store from the calling
thread (the UI has a read worker of its own), so they never wait behind a sync.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text as sql_text

from helpdesk.clock import iso
from helpdesk.errors import HelpdeskError, NotFoundError
from helpdesk.session import Session
from helpdesk.store import queries as q
from helpdesk.store.aliases import aliases_of, canonical
from helpdesk.team.fold import parse_db_time

MAX_ID = 64  # longer is no ticket id (no alias look-up)


@dataclass
class ClaimInfo:
    ticket: str
    agent: str | None
    since: datetime | None
    event: str | None
    previous: str | None = None

    def conflict_message(self) -> str:
        since = self.since.strftime("%Y-%m-%d %H:%M UTC") if self.since else "just now"
        return f"Ticket {self.ticket} is held by {self.agent} since {since}."


class TicketBook:
    """Read-side queries over one session's store, judged on the server-time estimate."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.store = session.store

    @property
    def agent(self) -> str:
        return self.session.agent

    def ticket_query(self, view: str = "open", search: str = "", **kw: Any) -> q.TicketQuery:
        return q.TicketQuery(view=view, search=search, agent=self.agent,
                             now=self.session.server_now(), **kw)

    def ticket_ids(self, view: str = "open", search: str = "", limit: int | None = None,
                   cancelled: Callable[[], bool] | None = None, **kw: Any) -> list[str]:
        """Ticket ids of a view, filtered and sorted in SQL (``limit``: first page only).

        With ``cancelled``, raises :class:`helpdesk.store.queries.QueryCancelled` once it
        answers True (checked while the query runs).
        """
        with self.store.read() as conn:
            return q.ticket_ids(conn, self.ticket_query(view, search, **kw), limit, cancelled)

    def ticket_rows(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        with self.store.read() as conn:
            rows = q.ticket_rows(conn, ids)
        now = self.session.server_now()
        for row in rows.values():
            self.decorate(row, now)
        return rows

    def decorate(self, row: dict[str, Any], now: datetime | None = None) -> None:
        """Drop a claim whose lease has lapsed and a snooze that is over (its time has
        come, or the customer wrote since), judged on the server-time estimate."""
        now = now or self.session.server_now()
        active = parse_db_time(row.get("claim_active_at"))
        if row.get("claimed_by") and active is not None:
            lapse = active + timedelta(seconds=row.get("claim_lease") or 0)
            if lapse <= now:
                row["claimed_by"] = None
                row["claimed_at"] = None
        until = parse_db_time(row.get("snoozed_until"))
        if until is not None:
            wrote = parse_db_time(row.get("last_in_at"))
            since = parse_db_time(row.get("snoozed_at"))
            if until <= now or (wrote is not None and since is not None and wrote > since):
                row["snoozed_until"] = None

    def tickets(self, view: str = "open", search: str = "", tags: tuple[str, ...] = ()
                ) -> list[dict[str, Any]]:
        if view not in q.VIEWS:
            raise NotFoundError(f"Unknown view '{view}'. Views: {', '.join(q.VIEWS)}.")
        ids = self.ticket_ids(view, search, tags=tags)
        rows = self.ticket_rows(ids)
        return [ticket_json(rows[i]) for i in ids if i in rows]

    def resolve(self, ticket: str) -> str:
        """Accept '#id', 'id' or an unambiguous prefix of at least 4 characters."""
        tid = ticket.strip().lstrip("#").lower()
        with self.store.read() as conn:
            # A merged-away id (a merge, or linked threads) names the ticket it went into.
            tid = canonical(conn, tid) if len(tid) <= MAX_ID else tid
            exact = conn.execute(sql_text("SELECT id FROM tickets WHERE id = :t"),
                                 {"t": tid}).first()
            if exact:
                return str(exact[0])
            if len(tid) >= 4:
                found = [r[0] for r in conn.execute(
                    sql_text("SELECT id FROM tickets WHERE id LIKE :p ESCAPE '\\' LIMIT 2"),
                    {"p": _like_prefix(tid)})]
                if len(found) == 1:
                    return canonical(conn, str(found[0]))
        raise NotFoundError(f"No ticket '{ticket}' in the local store. Run 'sync' first, or "
                            f"list tickets with 'tickets --view all'.")

    def ticket(self, ticket: str) -> dict[str, Any]:
        tid = self.resolve(ticket)
        row = self.ticket_rows([tid])[tid]
        with self.store.read() as conn:
            messages = q.ticket_messages(conn, tid)
            merged = aliases_of(conn, tid)
            notes = q.ticket_notes(conn, tid)
        out = ticket_json(row)
        out["aliases"] = merged  # ids merged into this ticket (they resolve to it)
        out["messages"] = [{
            "id": m["id"], "message_id": m["message_id"], "from": m["from_addr"],
            "from_name": m["from_name"], "to": [a for _n, a in m["to_addrs"]],
            "date": iso(m["date_header"] or m["received_at"]),
            "received_at": iso(m["received_at"]), "direction": m["direction"],
            "auto": m["auto_kind"], "subject": m["subject"], "text": m["text"],
            "html": m["html"], "attachments": m["attachments"], "defects": m["defects"],
        } for m in messages]
        out["message_count"] = len(messages)
        # Internal notes (never sent to the customer), and where they stand among the
        # messages: one list of both, in time order (a note after a message of the same
        # second comes after it).
        out["notes"] = [{**n, "at": iso(n["at"])} for n in notes]
        timeline = [(str(m["received_at"]), 0, "message", m["id"]) for m in messages]
        timeline += [(str(n["at"]), 1, "note", n["id"]) for n in notes]
        out["timeline"] = [{"kind": kind, "id": ident}
                           for _at, _o, kind, ident in sorted(timeline, key=lambda x: x[:2])]
        return out

    def agents(self) -> list[str]:
        """Every agent the team log has heard from (for picking an assignee), by name."""
        with self.store.read() as conn:
            return sorted({str(r[0]) for r in conn.execute(sql_text(
                "SELECT DISTINCT agent FROM team_events")) if r[0] and " " not in r[0]}
                | {self.agent})

    def spam_blocks(self) -> dict[str, str]:
        """Blocked senders now: pattern (an address or a domain) -> kind."""
        with self.store.read() as conn:
            return {str(r[0]): str(r[1]) for r in conn.execute(sql_text(
                "SELECT pattern, kind FROM spam_blocks WHERE active ORDER BY pattern"))}

    def tag_counts(self) -> dict[str, int]:
        """Every tag in use, with how many tickets carry it."""
        with self.store.read() as conn:
            return q.tag_counts(conn)

    def holder(self, ticket_id: str) -> ClaimInfo:
        """Who holds ``ticket_id`` right now, by the local fold and server-time estimate."""
        with self.store.read() as conn:
            row = q.ticket_rows(conn, [ticket_id]).get(ticket_id)
            if row is None:
                state = conn.execute(sql_text(
                    "SELECT claimed_by, claimed_at, claim_active_at, claim_lease, claim_event, "
                    "status FROM ticket_state WHERE ticket_id = :t"), {"t": ticket_id}
                ).mappings().first()
                row = dict(state) if state else {"claimed_by": None}
        self.decorate(row)
        return ClaimInfo(ticket_id, row.get("claimed_by"), parse_db_time(row.get("claimed_at")),
                         row.get("claim_event") if row.get("claimed_by") else None)

    def status(self) -> dict[str, Any]:
        with self.store.read() as conn:
            counts = q.count_views(conn, self.ticket_query())
            messages = conn.execute(sql_text("SELECT count(*) FROM messages")).scalar()
            folders = [dict(r) for r in conn.execute(sql_text(
                "SELECT name, role, uidvalidity, last_uid, synced_at FROM folders "
                "ORDER BY id")).mappings()]
            return {
                "agent": self.agent,
                "last_sync": self.store.get_meta("sync.last_ok", conn),
                "last_error": self.store.get_meta("sync.last_error", conn),
                "last_error_at": self.store.get_meta("sync.last_error_at", conn),
                "counts": counts, "messages": messages,
                "folders": [{**f, "synced_at": iso(f["synced_at"])} for f in folders],
                "team_log": self._log_status(conn),
                "older_mail": {**self.session.backfill.progress().as_dict(),
                               "team_history": self.session.team.history_due()},
            }

    def log_status(self) -> dict[str, Any]:
        """The team log's snapshots and compaction as this desktop sees them."""
        with self.store.read() as conn:
            return self._log_status(conn)

    def _log_status(self, conn: Any) -> dict[str, Any]:
        def meta(key: str) -> int:
            return int(self.store.get_meta(key, conn) or 0)

        newest = conn.execute(sql_text(
            "SELECT uid, agent, agreed FROM team_snapshot_marks WHERE agreed "
            "ORDER BY uid DESC LIMIT 1")).first()
        refused = [{"mark": int(u), "digest": str(d)} for u, d in conn.execute(sql_text(
            "SELECT uid, disagreed FROM team_snapshot_marks WHERE disagreed IS NOT NULL "
            "ORDER BY uid DESC LIMIT 5"))]
        compacted = conn.execute(sql_text(
            "SELECT coalesce(max(mark), 0) FROM team_compactions WHERE done")).scalar()
        note = None
        if refused:
            note = (f"A teammate's snapshot of the team log (at entry {refused[0]['mark']}) "
                    "disagrees with this desktop's own state and was ignored.")
        return {"cursor": meta("team.cursor"), "loaded_from_snapshot": meta("team.base"),
                "agreed_snapshot": int(newest[0]) if newest else None,
                "compacted_upto": int(compacted or 0), "snapshots_refused": refused,
                "note": note}

    def customer(self, email: str) -> dict[str, Any]:
        email = normalise_email(email)
        with self.store.read() as conn:
            row = conn.execute(sql_text("SELECT * FROM customers WHERE email = :e"),
                               {"e": email}).mappings().first()
            if row is None:
                raise NotFoundError(f"No customer {email} is known yet.")
            notes = conn.execute(sql_text(
                "SELECT n.id, n.agent, n.text, n.at FROM notes n LEFT JOIN team_events e "
                "ON e.event_id = n.id WHERE n.customer_email = :e AND n.deleted = 0 "
                "ORDER BY e.uid, n.id"), {"e": email}).mappings().all()
            tickets = q.customer_ticket_ids(conn, email)
        return {
            "email": row["email"], "name": row["name"], "organisation": row["organisation"],
            "vip": bool(row["vip"]), "vip_tier": row["vip_tier"],
            "white_glove": bool(row["white_glove"]), "preferred_name": row["preferred_name"],
            "birthday": row["birthday"], "heard_from": row["heard_from"],
            "notes": [{"id": n["id"], "agent": n["agent"], "text": n["text"],
                       "at": iso(n["at"])} for n in notes],
            # a new desktop's notes arrive with the team history, right after the rest
            "notes_loading": self.session.team.history_due(),
            "tickets": tickets,
        }


def ticket_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "subject": row["subject"], "customer": row["customer_email"],
        "customer_name": row["customer_name"], "status": row["status"],
        "claimed_by": row["claimed_by"], "claimed_at": iso(row.get("claimed_at")),
        "vip": bool(row["vip"]), "vip_tier": row["vip_tier"],
        "white_glove": bool(row["white_glove"]), "messages": row["message_count"],
        "created_at": iso(row["created_at"]), "updated_at": iso(row["updated_at"]),
        "waiting_since": iso(row.get("waiting_since")), "snippet": row.get("snippet", ""),
        "assignee": row.get("assignee"), "snoozed_until": iso(row.get("snoozed_until")),
        "tags": tags_of(row), "spam": bool(row.get("spam")),
    }


def tags_of(row: dict[str, Any]) -> list[str]:
    value = row.get("tags")
    if isinstance(value, list):
        return [str(t) for t in value]
    return [str(t) for t in json.loads(value or "[]")]


def _like_prefix(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or " " in email:
        raise NotFoundError(f"'{email}' is not an e-mail address.")
    return email


def check_birthday(value: str) -> None:
    try:
        datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise HelpdeskError(f"Birthday '{value}' should look like 1980-04-23.") from None
