"""The desk's metrics and surveys (``desk.metrics``): loads rows, sends surveys, scores answers."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from helpdesk.errors import HelpdeskError
from helpdesk.mail.compose import new_message_id
from helpdesk.mail.conversations import subject_token
from helpdesk.metrics.calc import (
    CUSTOMER,
    OTHER,
    REPLY,
    CaredRow,
    HeardRow,
    MetricsData,
    Msg,
    Period,
    ScoreRow,
    TicketFacts,
    compute_metrics,
    is_unclaimed,
    previous_period,
)
from helpdesk.metrics.fold import SURVEY_CURSOR
from helpdesk.metrics.surveys import (
    SurveyRef,
    _bare_id,
    answered_survey,
    recognise_score,
    score_id,
    survey_body,
)
from helpdesk.replies import Replies
from helpdesk.session import Session, intent
from helpdesk.team import fold
from helpdesk.team.claims import STATUSES
from helpdesk.tickets import TicketBook

log = logging.getLogger(__name__)

_CHUNK = 500


# --- the desk's metrics --------------------------------------------------------------------------

def _t(value: Any) -> datetime:
    parsed = fold.parse_db_time(value)
    if parsed is None:
        raise ValueError("missing time")
    return parsed


def _bounds(period: Period) -> dict[str, str]:
    """Text bounds that pre-select rows by date prefix (exact filtering is in Python).

    Always dates with dashes: DATETIME columns have numeric affinity, so a bound
    like "9999" would be compared as a number (and every text time is greater).
    """
    return {"lo": (period.since or date.min).isoformat(),
            "hi": (period.until + timedelta(days=1)).isoformat() if period.until
            else date.max.isoformat()}


_COHORT = "t.first_in_at IS NOT NULL AND t.first_in_at >= :lo AND t.first_in_at < :hi"


class ServiceMetrics:
    """Metrics and surveys of one desk (``desk.metrics``)."""

    def __init__(self, session: Session, book: TicketBook, replies: Replies) -> None:
        self.session = session
        self.book = book
        self.replies = replies
        self.store = session.store


    # --- the report ----------------------------------------------------------------

    def compute(self, since: date | None = None, until: date | None = None) -> dict[str, Any]:
        """Every metric for ``since``..``until`` (inclusive UTC dates; None: open)."""
        period = Period(since, until)
        with self.store.read() as conn:
            data = self._load(conn, period)
        return compute_metrics(data, since, until, self.session.profile.fcr_window_days,
                               now=self.session.server_now())

    def compare(self, since: date, until: date) -> dict[str, Any]:
        """This period and the one of equal length before it (for trends)."""
        prev_since, prev_until = previous_period(since, until)
        return {"since": since.isoformat(), "until": until.isoformat(),
                "previous_since": prev_since.isoformat(),
                "previous_until": prev_until.isoformat(),
                "current": self.compute(since, until),
                "previous": self.compute(prev_since, prev_until),
                # a new desktop still storing the team history: statuses, cared answers
                # and notes of the past are not all in yet
                "history_loading": self.session.team.history_due()}

    def _load(self, conn: Connection, period: Period) -> MetricsData:
        b = _bounds(period)
        tickets: dict[str, TicketFacts] = {}
        for tid, customer, first_in, vip in conn.execute(text(
                "SELECT t.id, t.customer_email, t.first_in_at, coalesce(c.vip, 0) FROM tickets t "
                f"LEFT JOIN customers c ON c.email = t.customer_email WHERE {_COHORT}"), b).all():
            tickets[tid] = TicketFacts(tid, _t(first_in), customer=customer, vip=bool(vip))
        for tid, at, direction, auto, survey, answer in conn.execute(text(
                "SELECT m.ticket_id, m.received_at, m.direction, m.auto_kind, "
                "EXISTS (SELECT 1 FROM surveys s WHERE s.message_id = m.message_id), "
                "EXISTS (SELECT 1 FROM scores x WHERE x.id = 'mail:' || "
                "coalesce(m.message_id, m.dedup_key)) "
                f"FROM messages m JOIN tickets t ON t.id = m.ticket_id WHERE {_COHORT} "
                "ORDER BY m.received_at, m.date_header, m.dedup_key"), b).all():
            if direction == "out":
                kind = OTHER if survey or auto == "forward" else REPLY
            else:
                kind = CUSTOMER if auto == "none" and not answer else OTHER
            tickets[tid].messages.append(Msg(_t(at), kind))
        for tid, at, status in conn.execute(text(
                "SELECT e.subject, e.at, json_extract(e.body, '$.data.status') "
                f"FROM team_events e JOIN tickets t ON t.id = e.subject "
                f"WHERE e.type = 'status' AND {_COHORT} ORDER BY e.uid"), b).all():
            if status in STATUSES:
                tickets[tid].statuses.append((_t(at), str(status)))
        scores = [ScoreRow(sid, tid, int(score), _t(at), bool(vip), int(seq)) for
                  sid, tid, score, at, vip, seq in conn.execute(text(
                      "SELECT s.id, s.ticket_id, s.score, s.at, coalesce(c.vip, 0), "
                      "coalesce(e.uid, 0) FROM scores s "
                      "LEFT JOIN tickets t ON t.id = s.ticket_id "
                      "LEFT JOIN customers c ON c.email = coalesce(s.customer, t.customer_email) "
                      "LEFT JOIN team_events e ON e.event_id = s.id"))]
        cared = [CaredRow(tid, bool(value), _t(at), int(seq)) for tid, value, at, seq in
                 conn.execute(text("SELECT c.ticket_id, c.value, c.at, coalesce(e.uid, 0) "
                                   "FROM cared c LEFT JOIN team_events e "
                                   "ON e.event_id = c.event_id"))]
        heard = [HeardRow(str(value), fold.parse_db_time(first)) for value, first in
                 conn.execute(text(
                     "SELECT c.heard_from, min(t.first_in_at) FROM customers c "
                     "LEFT JOIN tickets t ON t.customer_email = c.email "
                     "WHERE c.heard_from IS NOT NULL GROUP BY c.email"))]
        now = self.session.server_now()
        unclaimed = []
        for first_in, by, active, lease in conn.execute(text(
                "SELECT t.first_in_at, s.claimed_by, s.claim_active_at, s.claim_lease "
                "FROM tickets t LEFT JOIN ticket_state s ON s.ticket_id = t.id "
                "WHERE t.first_in_at IS NOT NULL AND coalesce(s.status, 'open') != 'closed' "
                "ORDER BY t.first_in_at")):
            if is_unclaimed(by, fold.parse_db_time(active), lease, now):
                unclaimed.append(_t(first_in))
                break  # ordered: the first unclaimed one is the oldest
        return MetricsData(list(tickets.values()), scores, cared, heard, unclaimed)

    # --- surveys -------------------------------------------------------------------

    @property
    def survey_policy(self) -> str:
        """The profile's setting: never | ask | always (what closing a ticket does)."""
        return self.session.profile.survey

    def surveys(self, ticket_id: str) -> list[dict[str, Any]]:
        """Surveys sent for a ticket, oldest first."""
        with self.store.read() as conn:
            rows = conn.execute(text(
                "SELECT message_id, customer, sent_at FROM surveys WHERE ticket_id = :t "
                "ORDER BY sent_at, message_id"), {"t": ticket_id}).all()
        return [{"message_id": m, "customer": c, "sent_at": _t(s)} for m, c, s in rows]

    def scores(self, ticket_id: str) -> list[dict[str, Any]]:
        """Scores recorded for a ticket, oldest first (the latest is the one that counts)."""
        with self.store.read() as conn:
            rows = conn.execute(text(
                "SELECT s.id, s.score, s.comment, s.at, s.source, s.agent, "
                "coalesce(e.uid, 0) AS seq FROM scores s "
                "LEFT JOIN team_events e ON e.event_id = s.id WHERE s.ticket_id = :t"),
                {"t": ticket_id}).mappings().all()
        out = [{**dict(r), "at": _t(r["at"])} for r in rows]
        out.sort(key=lambda r: (r["at"], r["seq"], r["id"]))  # the order latest_scores uses
        for r in out:
            del r["seq"]
        return out

    def _survey_target(self, tid: str) -> dict[str, Any]:
        """Who to ask and which message to thread to; raises if the ticket has no customer."""
        with self.store.read() as conn:
            row = conn.execute(text(
                "SELECT m.message_id, m.\"references\", m.from_addr, m.reply_to FROM messages m "
                "WHERE m.ticket_id = :t AND m.direction = 'in' AND m.auto_kind = 'none' "
                "ORDER BY m.received_at DESC, m.date_header DESC, m.dedup_key DESC LIMIT 1"),
                {"t": tid}).mappings().first()
            surveyed = conn.execute(text("SELECT count(*) FROM surveys WHERE ticket_id = :t"),
                                    {"t": tid}).scalar()
        if row is None or not (row["reply_to"] or row["from_addr"]):
            raise HelpdeskError(f"Ticket {tid} has no customer message (only automatic mail "
                                f"or our own), so there is nobody to ask.")
        return {**dict(row), "surveyed": int(surveyed or 0)}

    def should_offer_survey(self, ticket_id: str) -> bool:
        """Whether closing this ticket should send (always) or offer (ask) a survey.

        False when the profile says never, the ticket was already surveyed, or it has
        no real customer message (auto-replies, bounces and list mail do not count).
        """
        if self.survey_policy == "never":
            return False
        try:
            target = self._survey_target(self.book.resolve(ticket_id))
        except HelpdeskError:
            return False
        to = target["reply_to"] or target["from_addr"]
        return not target["surveyed"] and to.lower() not in self.session.profile.support_addresses

    @intent
    def send_survey(self, ticket_id: str, *, again: bool = False) -> str:
        """Queue the NPS survey for a ticket's customer and tell the team; its Message-ID.

        Threaded to the customer's latest message ("Re: <subject> [#id]"); the
        outbox sends it on the next sync. Raises if the ticket was already
        surveyed (unless ``again``) or has no customer.
        """
        tid = self.book.resolve(ticket_id)
        target = self._survey_target(tid)
        if target["surveyed"] and not again:
            raise HelpdeskError(f"A survey was already sent for ticket {tid}.")
        composer = self.replies.composer(tid)
        to = str(composer["to"] or target["reply_to"] or target["from_addr"]).strip().lower()
        refs = (target["references"] or "").split()
        parent = target["message_id"]
        if parent and parent not in refs:
            refs.append(parent)
        profile = self.session.profile
        signature = profile.smtp.from_name.replace("{agent}", self.session.agent)
        # Staged until the survey-sent event is published (now, or by a later flush):
        # without the event no desktop would recognise the answer.
        message_id = new_message_id(profile.smtp.from_address)
        self.replies.queue_mail(
            kind="survey", to=to, subject=composer["subject"],
            body=survey_body(composer.get("first_name"), signature), ticket_id=tid,
            in_reply_to=parent, references=refs, message_id=message_id,
            publish=[self.session.event("survey-sent", tid, message_id=_bare_id(message_id),
                                        customer=to)])
        return message_id

    @intent
    def survey_after_close(self, ticket_id: str) -> str | None:
        """What closing does when the profile says "always": send the survey if it
        makes sense (:meth:`should_offer_survey`); its Message-ID, else None.
        With "ask" the UI asks first (and calls :meth:`send_survey`)."""
        if self.survey_policy != "always" or not self.should_offer_survey(ticket_id):
            return None
        return self.send_survey(ticket_id)

    @intent
    def record_score(self, ticket_id: str, score: int, comment: str | None = None) -> None:
        """A score given another way (a phone call): published for the whole team."""
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
            raise HelpdeskError(f"A score is a whole number from 0 to 10, not {score!r}.")
        tid = self.book.resolve(ticket_id)
        with self.store.read() as conn:
            customer = conn.execute(text("SELECT customer_email FROM tickets WHERE id = :t"),
                                    {"t": tid}).scalar()
        data: dict[str, Any] = {"score": score, "customer": customer}
        if comment and comment.strip():
            data["comment"] = comment.strip()
        self.session.publish(self.session.event("score", tid, **data))

    @intent
    def record_cared(self, ticket_id: str, cared: bool) -> None:
        """The "did they feel we cared?" self-check, answered apart from closing."""
        tid = self.book.resolve(ticket_id)
        self.session.publish(self.session.event("cared", tid, cared=bool(cared)))

    def after_sync(self, ticket_ids: set[str]) -> set[str]:
        """Record scores from survey answers among these tickets' messages.

        Call with the tickets that got new mail ("*": all) as each batch is stored,
        and once more after the team log. Tickets surveyed since the last call are
        re-checked too, so an answer that arrived before its ``survey-sent`` event
        was folded is still found. Re-derives the ``email`` scores of the checked messages
        (idempotent) and returns the ids of tickets whose scores changed.
        """
        with self.store.begin() as conn:
            cursor = int(self.store.get_meta(SURVEY_CURSOR, conn) or 0)
            fresh = conn.execute(text("SELECT rowid, ticket_id FROM surveys WHERE rowid > :c"),
                                 {"c": cursor}).all()
            scan = {t for t in ticket_ids if t != "*"} | {r[1] for r in fresh}
            if "*" in ticket_ids:
                scan |= {r[0] for r in conn.execute(text("SELECT DISTINCT ticket_id FROM "
                                                         "surveys"))}
            if fresh:
                self.store.set_meta(SURVEY_CURSOR, str(max(r[0] for r in fresh)), conn)
            # Only surveyed tickets can hold answers: skip the rest (most new mail).
            surveyed = {r[0] for r in conn.execute(text("SELECT DISTINCT ticket_id FROM surveys"))}
            scan &= surveyed
            changed: set[str] = set()
            ids = sorted(scan)
            for i in range(0, len(ids), _CHUNK):
                changed |= self._rescan(conn, ids[i:i + _CHUNK])
        return changed

    def _rescan(self, conn: Connection, ticket_ids: list[str]) -> set[str]:
        # IN (json_each(:list)): one statement text whatever the list's length, so
        # SQLAlchemy's compiled cache does not gain an entry per length.
        msgs = conn.execute(text(
            "SELECT message_id, dedup_key, in_reply_to, \"references\", subject, from_addr, "
            "received_at, text FROM messages WHERE ticket_id IN "
            "(SELECT value FROM json_each(:ids)) AND direction = 'in' AND auto_kind = 'none'"),
            {"ids": json.dumps(ticket_ids)}).mappings().all()
        if not msgs:
            return set()
        wanted = {r for m in msgs for r in [m["in_reply_to"], *(m["references"] or "").split()]
                  if r}
        tokens = {tok for m in msgs if (tok := subject_token(m["subject"] or ""))}
        by_id: dict[str, SurveyRef] = {}
        by_ticket: dict[str, list[SurveyRef]] = {}
        lookups = [("message_id", sorted(wanted)), ("ticket_id", sorted(tokens))]
        for column, values in lookups:
            for i in range(0, len(values), _CHUNK):
                chunk = values[i:i + _CHUNK]
                for mid, tid, sent in conn.execute(text(
                        f"SELECT message_id, ticket_id, sent_at FROM surveys "
                        f"WHERE {column} IN (SELECT value FROM json_each(:vs))"),
                        {"vs": json.dumps(chunk)}):
                    ref = SurveyRef(mid, tid, _t(sent))
                    by_id[mid] = ref
                    by_ticket.setdefault(tid, [])
                    if ref not in by_ticket[tid]:
                        by_ticket[tid].append(ref)
        desired: dict[str, tuple[str, str | None, int, str | None, str]] = {}
        for m in msgs:
            at = _t(m["received_at"])
            target = answered_survey(m["in_reply_to"], (m["references"] or "").split(),
                                     m["subject"] or "", at, by_id, by_ticket)
            if target is None:
                continue
            found = recognise_score(m["text"] or "")
            if found is None:
                continue
            desired[score_id(m["message_id"], m["dedup_key"])] = (
                target, (m["from_addr"] or "").lower() or None, found.value, found.comment,
                fold.db_time(at))
        all_ids = sorted(score_id(m["message_id"], m["dedup_key"]) for m in msgs)
        existing: dict[str, tuple[Any, ...]] = {}
        for i in range(0, len(all_ids), _CHUNK):
            chunk = all_ids[i:i + _CHUNK]
            for row in conn.execute(text(
                    "SELECT id, ticket_id, customer, score, comment, at FROM scores "
                    "WHERE source = 'email' AND id IN (SELECT value FROM json_each(:vs))"),
                    {"vs": json.dumps(chunk)}):
                existing[row[0]] = tuple(row[1:])
        changed: set[str] = set()
        for sid, old in existing.items():
            if sid not in desired:
                conn.execute(text("DELETE FROM scores WHERE id = :i"), {"i": sid})
                changed.add(str(old[0]))
        for sid, new in desired.items():
            before = existing.get(sid)
            if before is not None and tuple(before[:4]) == new[:4] \
                    and fold.parse_db_time(before[4]) == fold.parse_db_time(new[4]):
                continue
            conn.execute(text(
                "INSERT OR REPLACE INTO scores (id, ticket_id, customer, score, comment, at, "
                "source, agent) VALUES (:i, :t, :c, :s, :m, :a, 'email', NULL)"),
                {"i": sid, "t": new[0], "c": new[1], "s": new[2], "m": new[3], "a": new[4]})
            changed.add(new[0])
            if before is not None:
                changed.add(str(before[0]))
        return changed
