"""What the digest says, from the local store: the same on every desktop that synced.

Contents (one period, e.g. an ISO week in the team's time zone):

- ``cards``: the feedback cards that gained the most customers in the period (merged
  cards count for the card they went into), most first, at most five;
- ``nps`` with the previous period's and the trend; ``cared`` (the agents' "did they
  feel we cared?" rate); both from the metrics service;
- ``oldest_waiting``: open tickets whose customer has waited longest, at most five;
- ``conversations``: five conversations picked at random among the tickets whose
  customer wrote in the period, seeded by the period's key, so every desktop picks the
  same five. Each quotes the customer's own words first (their messages, quoted replies
  cut), then our answers. Only mail the customer exchanged with us is read: never team
  notes (they are not read at all), never forwards to colleagues, never auto-replies.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

from helpdesk.mail.html.quotes import quote_fold
from helpdesk.rota import schedule
from helpdesk.store.engine import db_time, parse_db_time

PICKS = 5
MAX_WORDS = 700  # characters of one message quoted


@dataclass(frozen=True)
class Period:
    """``since``..``until`` (dates in the team's zone, ``until`` exclusive) and its key."""

    key: str
    since: date
    until: date
    zone: str

    @property
    def start(self) -> datetime:
        return schedule.day_start(self.since, self.zone)

    @property
    def end(self) -> datetime:
        return schedule.day_start(self.until, self.zone)

    @classmethod
    def week_of(cls, day: date, zone: str) -> Period:
        monday, next_monday = schedule.week_bounds(day)
        return cls(schedule.iso_week(monday), monday, next_monday, zone)

    @classmethod
    def between(cls, since: date, until: date, zone: str) -> Period:
        return cls(f"{since.isoformat()}..{until.isoformat()}", since, until, zone)


def own_words(body: str) -> str:
    """A message without the quoted mail below it, trimmed to a quotable length."""
    kept = "".join(seg for seg, quoted in quote_fold(body or "") if not quoted).strip()
    lines = [line.rstrip() for line in kept.splitlines()]
    out = "\n".join(lines).strip()
    return out if len(out) <= MAX_WORDS else out[:MAX_WORDS].rstrip() + " …"


def _root(cards: dict[str, tuple[str, str | None]], card: str) -> str:
    seen = set()
    while cards.get(card, ("", None))[1] and card not in seen:
        seen.add(card)
        card = cards[card][1] or card
    return card


def top_cards(conn: Connection, period: Period, limit: int = 5) -> list[dict[str, Any]]:
    cards = {str(r[0]): (str(r[1]), r[2]) for r in conn.execute(
        text("SELECT id, title, merged_into FROM cards")).all()}
    gained: Counter[str] = Counter()
    total: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    for card, email, added in conn.execute(text(
            "SELECT card_id, email, added_at FROM card_customers ORDER BY added_at")).all():
        root = _root(cards, str(card))
        if (root, email) in seen:
            continue
        seen.add((root, email))
        total[root] += 1
        at = parse_db_time(added)
        if at is not None and period.start <= at < period.end:
            gained[root] += 1
    ranked = sorted(gained.items(), key=lambda kv: (-kv[1], cards.get(kv[0], ("", None))[0],
                                                    kv[0]))
    return [{"id": c, "title": cards.get(c, ("(a card)", None))[0], "gained": n,
             "customers": total[c]} for c, n in ranked[:limit]]


def oldest_waiting(conn: Connection, now: datetime, limit: int = 5) -> list[dict[str, Any]]:
    rows = conn.execute(text(
        "SELECT t.id, t.subject, t.customer_email, t.waiting_since FROM tickets t "
        "LEFT JOIN ticket_state s ON s.ticket_id = t.id "
        "WHERE coalesce(s.status, 'open') = 'open' AND t.waiting_since IS NOT NULL "
        "ORDER BY t.waiting_since, t.id LIMIT :n"), {"n": limit}).all()
    out = []
    for tid, subject, customer, since in rows:
        at = parse_db_time(since)
        out.append({"ticket": tid, "subject": subject, "customer": customer,
                    "waiting_since": db_time(at) if at else None,
                    "waiting_seconds": int((now - at).total_seconds()) if at else None})
    return out


def conversations(conn: Connection, period: Period, picks: int = PICKS
                  ) -> list[dict[str, Any]]:
    """``picks`` conversations, random but the same on every desktop for the period."""
    candidates = sorted(str(r[0]) for r in conn.execute(text(
        "SELECT DISTINCT ticket_id FROM messages WHERE direction = 'in' AND auto_kind = 'none' "
        "AND received_at >= :a AND received_at < :b"),
        {"a": db_time(period.start), "b": db_time(period.end)}).all())
    chosen = random.Random(f"helpdesk-digest:{period.key}").sample(
        candidates, min(picks, len(candidates)))
    out = []
    for tid in chosen:
        msgs = conn.execute(text(
            "SELECT direction, from_name, from_addr, subject, text, received_at FROM messages "
            "WHERE ticket_id = :t AND auto_kind = 'none' AND direction IN ('in', 'out') "
            "ORDER BY received_at, id"), {"t": tid}).mappings().all()
        customer = [own_words(m["text"]) for m in msgs if m["direction"] == "in"]
        ours = [own_words(m["text"]) for m in msgs if m["direction"] == "out"]
        first: dict[str, Any] = dict(next((m for m in msgs if m["direction"] == "in"), {}))
        out.append({"ticket": tid,
                    "subject": first.get("subject") or "",
                    "customer": first.get("from_name") or first.get("from_addr") or "",
                    "customer_words": [w for w in customer if w],
                    "our_answers": [w for w in ours if w]})
    return out
