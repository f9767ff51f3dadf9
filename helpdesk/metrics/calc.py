"""The pure part of the metrics: plain rows in, figures out (tested on hand-built data).

The definitions are in :mod:`helpdesk.metrics`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from helpdesk.errors import HelpdeskError

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

CUSTOMER, REPLY, OTHER = "customer", "reply", "other"


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
