"""Service metrics: NPS, response and resolution times, first-contact resolution, cared rate.

Everything is computed from what the store already holds (mail, and team state
folded from the log), so every desktop with the same mail and log computes the
same numbers. The pure part (:func:`compute_metrics` and its helpers) takes
plain lists and is tested on hand-built data; :class:`ServiceMetrics` only
loads rows and writes survey scores.

Definitions (all times are the server's: INTERNALDATE for mail, the team log's
clock for events; naive UTC):

- **Customer message**: inbound, not an auto-reply, bounce or list mail, and not
  a recognised survey answer. **Reply**: outbound mail except survey mails.
- **Period** (``since``/``until``, inclusive UTC dates, either open): a ticket
  belongs to the period of its *first customer message*; tickets without any
  customer message (auto-only, bounces, outbound-only) are never counted. Every
  ticket figure describes that cohort *as the store knows it now* (e.g.
  ``tickets.closed`` = tickets opened in the period that are closed now).
  Scores and cared answers belong to the period of their own time.
- **First response**: first customer message → first reply sent at or after it.
  Tickets without a reply yet are not in ``count``.
- **Resolution**: first customer message → the *last* time the ticket went to
  closed, for tickets whose current status is closed. A reopened and re-closed
  ticket counts once, with the full time up to its final close; a reopened
  ticket that is open now has no resolution time. Repeated "closed" events on a
  closed ticket do not move the close time.
- **First-contact resolution (FCR)**: judged for tickets that were closed after at
  least one reply. FCR when exactly one reply was sent up to the first close and,
  after that reply and up to ``fcr_window_days`` after the first close, there was
  no customer message and no reopen. ``count`` = tickets judged; ``rate`` = share
  with FCR. Judged on what is known: a ticket closed less than the window ago
  counts as FCR until a customer message or reopen says otherwise.
- **Reopened**: the ticket went from closed back to open/pending at least once
  (status history from the team log, in log order). ``reopen_rate`` = reopened /
  tickets of the cohort ever closed.
- **NPS**: one answer per ticket, its latest (manual or by mail); % of 9-10 minus
  % of 0-6, rounded half away from zero to a whole number; None without answers.
- **Cared**: one answer per ticket, the latest self-check; ``rate`` = yes / (yes + no).
- **Median** of an even count: mean of the two middle values. **p90**: nearest
  rank, the ceil(0.9·n)-th smallest value. Seconds; rates are fractions 0..1
  rounded to 3 places; None when there is nothing to measure.
- **heard_from**: customers' "how did you hear about us?" field, trimmed,
  whitespace collapsed, lower-cased; counted per customer. With a period, only
  customers whose first customer message ever falls in it (new customers).
- **VIP**: tickets (and scores) of customers who are VIP now.
- **weekly**: per ISO week (key: its Monday), the period's figures of that week.
- **oldest_unclaimed_seconds**: now, not per period: age of the oldest first
  customer message among tickets that are not closed and held by nobody.

Surveys: ``send_survey`` queues one mail threaded to the ticket and publishes a
``survey-sent`` event; ``after_sync`` finds customer replies to surveys and
records their scores (see :mod:`helpdesk.surveys` for what counts as a score)
under the deterministic id ``mail:<Message-ID>``, so every desktop derives the
same rows from the same mail without any event.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from helpdesk.errors import HelpdeskError
from helpdesk.mail.conversations import subject_token
from helpdesk.surveys import recognise_score, survey_body
from helpdesk.team import fold
from helpdesk.team.events import Event

if TYPE_CHECKING:
    from helpdesk.desk import Desk

log = logging.getLogger(__name__)

CUSTOMER, REPLY, OTHER = "customer", "reply", "other"
SURVEY_CURSOR = "metrics.survey_rowid"  # meta: surveys rowid already scanned for answers
_CHUNK = 500


# --- plain data ------------------------------------------------------------------------

@dataclass(frozen=True)
class Msg:
    at: datetime
    kind: str  # CUSTOMER | REPLY | OTHER


@dataclass
class TicketFacts:
    """One ticket as the metrics see it (messages in time order, statuses in log order)."""

    id: str
    first_in: datetime
    messages: list[Msg] = field(default_factory=list)
    statuses: list[tuple[datetime, str]] = field(default_factory=list)
    customer: str | None = None
    vip: bool = False


@dataclass(frozen=True)
class ScoreRow:
    id: str
    ticket_id: str | None
    score: int
    at: datetime
    vip: bool = False
    seq: int = 0  # log position of manual scores, tie-breaker at equal times


@dataclass(frozen=True)
class CaredRow:
    ticket_id: str
    value: bool
    at: datetime
    seq: int = 0


@dataclass(frozen=True)
class HeardRow:
    value: str
    first_seen: datetime | None  # the customer's first customer message, if any


@dataclass
class MetricsData:
    tickets: list[TicketFacts] = field(default_factory=list)
    scores: list[ScoreRow] = field(default_factory=list)
    cared: list[CaredRow] = field(default_factory=list)
    heard_from: list[HeardRow] = field(default_factory=list)
    unclaimed_since: list[datetime] = field(default_factory=list)  # open, held by nobody


@dataclass(frozen=True)
class Period:
    since: date | None = None
    until: date | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise HelpdeskError(f"The period starts ({self.since}) after it ends "
                                f"({self.until}).")

    def contains(self, at: datetime | None) -> bool:
        if at is None:
            return self.since is None and self.until is None
        d = at.date()
        return (self.since is None or d >= self.since) and (self.until is None or d <= self.until)


def previous_period(since: date, until: date) -> tuple[date, date]:
    """The period of the same length just before ``since``..``until`` (inclusive days)."""
    days = (until - since).days
    prev_until = since - timedelta(days=1)
    return prev_until - timedelta(days=days), prev_until


# --- statistics --------------------------------------------------------------------------

def _num(x: float | None) -> int | float | None:
    if x is None:
        return None
    return int(x) if float(x).is_integer() else round(x, 1)


def median(values: Sequence[float]) -> float | None:
    """Middle value; of an even count, the mean of the two middle values."""
    s = sorted(values)
    n = len(s)
    if n == 0:
        return None
    mid = n // 2
    return float(s[mid]) if n % 2 else (s[mid - 1] + s[mid]) / 2


def p90(values: Sequence[float]) -> float | None:
    """90th percentile by nearest rank: the ceil(0.9·n)-th smallest value."""
    s = sorted(values)
    if not s:
        return None
    rank = (9 * len(s) + 9) // 10  # ceil(9n/10) in integers
    return float(s[rank - 1])


def summary(values: Sequence[float]) -> dict[str, Any]:
    return {"median": _num(median(values)), "p90": _num(p90(values)), "count": len(values)}


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _round_half_away(num: int, den: int) -> int:
    q = (2 * abs(num) + den) // (2 * den)
    return q if num >= 0 else -q


def nps(scores: Iterable[int]) -> dict[str, Any]:
    """Promoters 9-10, passives 7-8, detractors 0-6; score = %P − %D, a whole number."""
    values = list(scores)
    promoters = sum(1 for v in values if v >= 9)
    detractors = sum(1 for v in values if v <= 6)
    n = len(values)
    return {"score": _round_half_away(100 * (promoters - detractors), n) if n else None,
            "promoters": promoters, "passives": n - promoters - detractors,
            "detractors": detractors, "responses": n}


def latest_scores(rows: Iterable[ScoreRow]) -> list[ScoreRow]:
    """One answer per ticket: the latest (by time, then log position, then id)."""
    best: dict[str, ScoreRow] = {}
    for r in rows:
        key = r.ticket_id or "score:" + r.id
        cur = best.get(key)
        if cur is None or (r.at, r.seq, r.id) > (cur.at, cur.seq, cur.id):
            best[key] = r
    return list(best.values())


def latest_cared(rows: Iterable[CaredRow]) -> list[CaredRow]:
    best: dict[str, CaredRow] = {}
    for r in rows:
        cur = best.get(r.ticket_id)
        if cur is None or (r.at, r.seq) >= (cur.at, cur.seq):
            best[r.ticket_id] = r
    return list(best.values())


def normalise_source(value: str) -> str:
    return " ".join(value.split()).lower()


def is_unclaimed(claimed_by: str | None, active_at: datetime | None, lease: int | None,
                 now: datetime) -> bool:
    """Held by nobody: no claim, or its lease lapsed by ``now`` (as the ticket list judges)."""
    if not claimed_by or active_at is None:
        return True
    return active_at + timedelta(seconds=lease or 0) <= now


# --- one ticket ----------------------------------------------------------------------------

@dataclass(frozen=True)
class History:
    closes: list[datetime]   # moments the ticket went to closed
    reopens: list[datetime]  # moments it went from closed back to open/pending
    final: str


def history(statuses: Sequence[tuple[datetime, str]]) -> History:
    current = "open"
    closes: list[datetime] = []
    reopens: list[datetime] = []
    for at, status in statuses:
        if status == "closed" and current != "closed":
            closes.append(at)
        elif status != "closed" and current == "closed":
            reopens.append(at)
        current = status
    return History(closes, reopens, current)


def first_response_seconds(t: TicketFacts) -> float | None:
    reply = next((m.at for m in t.messages if m.kind == REPLY and m.at >= t.first_in), None)
    return None if reply is None else (reply - t.first_in).total_seconds()


def resolution_seconds(t: TicketFacts, h: History | None = None) -> float | None:
    h = h or history(t.statuses)
    if h.final != "closed" or not h.closes or h.closes[-1] < t.first_in:
        return None
    return (h.closes[-1] - t.first_in).total_seconds()


def first_contact_resolved(t: TicketFacts, window: timedelta,
                           h: History | None = None) -> bool | None:
    """True/False for tickets closed after at least one reply; None: not judged."""
    h = h or history(t.statuses)
    closes = [c for c in h.closes if c >= t.first_in]
    if not closes:
        return None
    closed = closes[0]
    replies = [m.at for m in t.messages if m.kind == REPLY and t.first_in <= m.at <= closed]
    if not replies:
        return None
    if len(replies) > 1:
        return False
    reply, limit = replies[0], closed + window
    if any(m.kind == CUSTOMER and reply < m.at <= limit for m in t.messages):
        return False
    return not any(closed < r <= limit for r in h.reopens)


# --- the whole report --------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """What one ticket contributes to the report (computed once, reused per block/week)."""

    ticket: TicketFacts
    first_response: float | None
    resolution: float | None
    fcr: bool | None
    closed: bool
    reopened: bool
    ever_closed: bool


def outcome(t: TicketFacts, window: timedelta) -> Outcome:
    h = history(t.statuses)
    return Outcome(t, first_response_seconds(t), resolution_seconds(t, h),
                   first_contact_resolved(t, window, h), h.final == "closed", bool(h.reopens),
                   bool(h.closes))


def _ticket_block(outcomes: Sequence[Outcome], scores: Sequence[ScoreRow]) -> dict[str, Any]:
    first = [o.first_response for o in outcomes if o.first_response is not None]
    resolution = [o.resolution for o in outcomes if o.resolution is not None]
    judged = [o.fcr for o in outcomes if o.fcr is not None]
    reopened = sum(o.reopened for o in outcomes)
    return {
        "nps": nps(s.score for s in scores),
        "first_response_seconds": summary(first),
        "resolution_seconds": summary(resolution),
        "first_contact_resolution": {"rate": rate(sum(judged), len(judged)),
                                     "count": len(judged)},
        "tickets": {"opened": len(outcomes), "closed": sum(o.closed for o in outcomes),
                    "reopened": reopened},
        "_reopen_rate": rate(reopened, sum(o.ever_closed for o in outcomes)),
    }


def _week(d: date) -> date:
    return d - timedelta(days=d.weekday())


def _weekly(outcomes: Sequence[Outcome], scores: Sequence[ScoreRow],
            period: Period) -> dict[str, dict[str, Any]]:
    days = [o.ticket.first_in.date() for o in outcomes] + [s.at.date() for s in scores]
    start = period.since or (min(days) if days else None)
    end = period.until or (max(days) if days else None)
    if start is None or end is None:
        return {}
    by_week: dict[date, tuple[list[Outcome], list[int]]] = {}
    week = _week(start)
    while week <= _week(end):
        by_week[week] = ([], [])
        week += timedelta(days=7)
    for o in outcomes:
        by_week.setdefault(_week(o.ticket.first_in.date()), ([], []))[0].append(o)
    for s in scores:
        by_week.setdefault(_week(s.at.date()), ([], []))[1].append(s.score)
    out: dict[str, dict[str, Any]] = {}
    for week in sorted(by_week):
        os_, values = by_week[week]
        responses = [o.first_response for o in os_ if o.first_response is not None]
        out[week.isoformat()] = {
            "opened": len(os_),
            "closed": sum(o.closed for o in os_),
            "nps": nps(values)["score"],
            "first_response_median": _num(median(responses)),
        }
    return out


def compute_metrics(data: MetricsData, since: date | None = None, until: date | None = None,
                    fcr_window_days: int = 7, now: datetime | None = None) -> dict[str, Any]:
    """The report for ``since``..``until`` (see the module docstring for every definition)."""
    period = Period(since, until)
    window = timedelta(days=fcr_window_days)
    outcomes = [outcome(t, window) for t in sorted(
        (t for t in data.tickets if period.contains(t.first_in)),
        key=lambda t: (t.first_in, t.id))]
    scores = [s for s in latest_scores(data.scores) if period.contains(s.at)]
    cared = [c for c in latest_cared(data.cared) if period.contains(c.at)]
    block = _ticket_block(outcomes, scores)
    vip = _ticket_block([o for o in outcomes if o.ticket.vip], [s for s in scores if s.vip])
    yes = sum(1 for c in cared if c.value)
    no = len(cared) - yes
    heard = Counter(normalise_source(h.value) for h in data.heard_from
                    if h.value.strip() and period.contains(h.first_seen))
    oldest = min(data.unclaimed_since, default=None)
    return {
        "nps": block["nps"],
        "first_response_seconds": block["first_response_seconds"],
        "resolution_seconds": block["resolution_seconds"],
        "first_contact_resolution": block["first_contact_resolution"],
        "cared": {"yes": yes, "no": no, "rate": rate(yes, yes + no)},
        "tickets": block["tickets"],
        "heard_from": dict(sorted(heard.items(), key=lambda kv: (-kv[1], kv[0]))),
        "vip": {k: vip[k] for k in ("nps", "first_response_seconds", "resolution_seconds",
                                    "first_contact_resolution", "tickets")},
        "weekly": _weekly(outcomes, scores, period),
        "oldest_unclaimed_seconds": (_num(max(0.0, (now - oldest).total_seconds()))
                                     if oldest is not None and now is not None else None),
        "reopen_rate": block["_reopen_rate"],
    }


# --- survey answers ------------------------------------------------------------------------

@dataclass(frozen=True)
class SurveyRef:
    message_id: str
    ticket_id: str
    sent_at: datetime


def answered_survey(in_reply_to: str | None, references: Sequence[str], subject: str,
                    received_at: datetime, surveys_by_id: dict[str, SurveyRef],
                    surveys_by_ticket: dict[str, list[SurveyRef]]) -> str | None:
    """The ticket whose survey this inbound message answers, or None.

    A reply to a survey: its In-Reply-To is a survey's Message-ID; or it has no
    In-Reply-To and a References id is one. Mail with no threading headers at
    all (clients that drop them) answers a survey when its subject carries the
    ticket token of a ticket surveyed before the message arrived. Mail threaded
    to something *else* is not an answer, even after a survey: the customer was
    replying to another message.
    """
    if in_reply_to:
        hit = surveys_by_id.get(in_reply_to)
        return hit.ticket_id if hit else None
    for ref in references:
        hit = surveys_by_id.get(ref)
        if hit:
            return hit.ticket_id
    if references:
        return None
    token = subject_token(subject)
    if token and any(s.sent_at <= received_at for s in surveys_by_ticket.get(token, [])):
        return token
    return None


def score_id(message_id: str | None, dedup_key: str) -> str:
    """Deterministic id of a score recognised in a message (the same on every desktop)."""
    return "mail:" + (message_id or dedup_key)


def _bare_id(value: Any) -> str:
    return str(value or "").strip().strip("<>").strip()


# --- fold handlers (team log → SQLite) ---------------------------------------------------------

@fold.handler("survey-sent")
def _survey_sent(ctx: fold.FoldContext) -> None:
    message_id = _bare_id(ctx.event.data["message_id"])
    if not message_id:
        raise ValueError("survey without a message id")
    customer = str(ctx.event.data.get("customer") or "").strip().lower()
    ctx.cur.execute("INSERT OR IGNORE INTO surveys (message_id, ticket_id, customer, sent_at) "
                    "VALUES (?, ?, ?, ?)",
                    (message_id, ctx.event.subject, customer, fold.db_time(ctx.at)))
    ctx.result.tickets.add(ctx.event.subject)


@fold.handler("score")
def _score(ctx: fold.FoldContext) -> None:
    value = ctx.event.data["score"]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10:
        raise ValueError(f"score {value!r} is not a whole number from 0 to 10")
    comment = ctx.event.data.get("comment")
    customer = ctx.event.data.get("customer")
    ctx.cur.execute("INSERT OR IGNORE INTO scores (id, ticket_id, customer, score, comment, at, "
                    "source, agent) VALUES (?, ?, ?, ?, ?, ?, 'manual', ?)",
                    (ctx.event.id, ctx.event.subject,
                     str(customer).strip().lower() if customer else None, value,
                     str(comment)[:2000] if comment else None, fold.db_time(ctx.at),
                     ctx.event.agent))
    ctx.result.tickets.add(ctx.event.subject)


@fold.handler("cared")
def _cared(ctx: fold.FoldContext) -> None:
    """The self-check answered separately from the close (e.g. after it)."""
    value = ctx.event.data["cared"]
    if not isinstance(value, bool):
        raise ValueError("cared must be true or false")
    ctx.cur.execute("INSERT OR IGNORE INTO cared (event_id, ticket_id, agent, value, at) "
                    "VALUES (?, ?, ?, ?, ?)", (ctx.event.id, ctx.event.subject,
                                               ctx.event.agent, value, fold.db_time(ctx.at)))
    ctx.result.tickets.add(ctx.event.subject)


def _reset(cur: Any) -> None:
    """Rebuild: forget what came from the log; mail-derived scores are re-checked."""
    cur.execute("DELETE FROM surveys")
    cur.execute("DELETE FROM scores WHERE source != 'email'")
    cur.execute("DELETE FROM meta WHERE key = ?", (SURVEY_CURSOR,))


fold.RESETTERS.append(_reset)

_HANDLED = {"survey-sent": _survey_sent, "score": _score, "cared": _cared}


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

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.store = desk.store
        self._catch_up_fold()

    def _catch_up_fold(self) -> None:
        """Apply our handlers to events folded before this module was imported.

        The fold records every event in ``team_events``; if a replay ran before
        these handlers were registered, their rows are derived here (idempotent).
        """
        with self.store.begin() as conn:
            rows = conn.execute(text(
                "SELECT e.uid, e.event_id, e.type, e.agent, e.at, e.subject, e.body "
                "FROM team_events e WHERE (e.type = 'survey-sent' AND NOT EXISTS "
                "(SELECT 1 FROM surveys s WHERE s.message_id = "
                "trim(json_extract(e.body, '$.data.message_id'), '<> '))) "
                "OR (e.type = 'score' AND NOT EXISTS (SELECT 1 FROM scores s "
                "WHERE s.id = e.event_id)) "
                "OR (e.type = 'cared' AND NOT EXISTS (SELECT 1 FROM cared c "
                "WHERE c.event_id = e.event_id)) ORDER BY e.uid")).all()
            if not rows:
                return
            raw = conn.connection.driver_connection
            assert raw is not None
            cur = raw.cursor()
            result = fold.FoldResult()
            for uid, eid, etype, agent, at, subject, body in rows:
                try:
                    data = json.loads(body).get("data") or {}
                    event = Event(type=etype, agent=agent, subject=subject or "", data=data,
                                  id=eid)
                    _HANDLED[etype](fold.FoldContext(cur, event, uid, _t(at), result))
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    log.warning("metrics: skipped %s event %s: %s", etype, eid[:8], exc)

    # --- the report ----------------------------------------------------------------

    def compute(self, since: date | None = None, until: date | None = None) -> dict[str, Any]:
        """Every metric for ``since``..``until`` (inclusive UTC dates; None: open)."""
        period = Period(since, until)
        with self.store.read() as conn:
            data = self._load(conn, period)
        return compute_metrics(data, since, until, self.desk.profile.fcr_window_days,
                               now=self.desk.server_now())

    def compare(self, since: date, until: date) -> dict[str, Any]:
        """This period and the one of equal length before it (for trends)."""
        prev_since, prev_until = previous_period(since, until)
        return {"since": since.isoformat(), "until": until.isoformat(),
                "previous_since": prev_since.isoformat(),
                "previous_until": prev_until.isoformat(),
                "current": self.compute(since, until),
                "previous": self.compute(prev_since, prev_until)}

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
                "ORDER BY m.received_at, m.id"), b).all():
            if direction == "out":
                kind = OTHER if survey else REPLY
            else:
                kind = CUSTOMER if auto == "none" and not answer else OTHER
            tickets[tid].messages.append(Msg(_t(at), kind))
        for tid, at, status in conn.execute(text(
                "SELECT e.subject, e.at, json_extract(e.body, '$.data.status') "
                f"FROM team_events e JOIN tickets t ON t.id = e.subject "
                f"WHERE e.type = 'status' AND {_COHORT} ORDER BY e.uid"), b).all():
            if status in fold.STATUSES:
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
        now = self.desk.server_now()
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
        return self.desk.profile.survey

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
                "ORDER BY m.received_at DESC, m.id DESC LIMIT 1"), {"t": tid}).mappings().first()
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
            target = self._survey_target(self.desk.resolve_ticket(ticket_id))
        except HelpdeskError:
            return False
        to = target["reply_to"] or target["from_addr"]
        return not target["surveyed"] and to.lower() not in self.desk.profile.support_addresses

    def send_survey(self, ticket_id: str, *, again: bool = False) -> str:
        """Queue the NPS survey for a ticket's customer and tell the team; its Message-ID.

        Threaded to the customer's latest message ("Re: <subject> [#id]"); the
        outbox sends it on the next sync. Raises if the ticket was already
        surveyed (unless ``again``) or has no customer.
        """
        tid = self.desk.resolve_ticket(ticket_id)
        target = self._survey_target(tid)
        if target["surveyed"] and not again:
            raise HelpdeskError(f"A survey was already sent for ticket {tid}.")
        composer = self.desk.composer(tid)
        to = str(composer["to"] or target["reply_to"] or target["from_addr"]).strip().lower()
        refs = (target["references"] or "").split()
        parent = target["message_id"]
        if parent and parent not in refs:
            refs.append(parent)
        profile = self.desk.profile
        signature = profile.smtp.from_name.replace("{agent}", self.desk.agent)
        item, message_id = self.desk.queue_mail(
            kind="survey", to=to, subject=composer["subject"],
            body=survey_body(composer.get("first_name"), signature), ticket_id=tid,
            in_reply_to=parent, references=refs)
        try:
            self.desk.publish(self.desk.event("survey-sent", tid,
                                              message_id=_bare_id(message_id), customer=to))
        except Exception:
            # Without the event no desktop would recognise the answer: take the mail back
            # (a no-op if a sync already started sending it).
            self.desk.discard_outbox(item)
            raise
        return message_id

    def survey_after_close(self, ticket_id: str) -> str | None:
        """What closing does when the profile says "always": send the survey if it
        makes sense (:meth:`should_offer_survey`); its Message-ID, else None.
        With "ask" the UI asks first (and calls :meth:`send_survey`)."""
        if self.survey_policy != "always" or not self.should_offer_survey(ticket_id):
            return None
        return self.send_survey(ticket_id)

    def record_score(self, ticket_id: str, score: int, comment: str | None = None) -> None:
        """A score given another way (a phone call): published for the whole team."""
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
            raise HelpdeskError(f"A score is a whole number from 0 to 10, not {score!r}.")
        tid = self.desk.resolve_ticket(ticket_id)
        with self.store.read() as conn:
            customer = conn.execute(text("SELECT customer_email FROM tickets WHERE id = :t"),
                                    {"t": tid}).scalar()
        data: dict[str, Any] = {"score": score, "customer": customer}
        if comment and comment.strip():
            data["comment"] = comment.strip()
        self.desk.publish(self.desk.event("score", tid, **data))

    def record_cared(self, ticket_id: str, cared: bool) -> None:
        """The "did they feel we cared?" self-check, answered apart from closing."""
        tid = self.desk.resolve_ticket(ticket_id)
        self.desk.publish(self.desk.event("cared", tid, cared=bool(cared)))

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


# --- export ------------------------------------------------------------------------------------

def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def metrics_csv(current: dict[str, Any], previous: dict[str, Any] | None = None,
                labels: tuple[str, str] = ("current", "previous")) -> str:
    """A CSV of a report (and the previous period's): one metric per row, then the weeks."""
    cur: dict[str, Any] = {}
    prev: dict[str, Any] = {}
    _flatten("", {k: v for k, v in current.items() if k != "weekly"}, cur)
    if previous is not None:
        _flatten("", {k: v for k, v in previous.items() if k != "weekly"}, prev)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", labels[0], *([labels[1]] if previous is not None else [])])
    for key in [*cur, *(k for k in prev if k not in cur)]:
        row = [key, _cell(cur.get(key))]
        if previous is not None:
            row.append(_cell(prev.get(key)))
        w.writerow(row)
    w.writerow([])
    w.writerow(["week_start", "opened", "closed", "nps", "first_response_median"])
    for week, v in current.get("weekly", {}).items():
        w.writerow([week, v["opened"], v["closed"], _cell(v["nps"]),
                    _cell(v["first_response_median"])])
    return buf.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value


__all__ = ["CaredRow", "HeardRow", "MetricsData", "Msg", "ScoreRow",
           "ServiceMetrics", "TicketFacts", "compute_metrics", "median", "metrics_csv", "nps",
           "p90", "previous_period"]
