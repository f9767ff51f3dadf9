"""The weekly digest: show it, send it to the team's list exactly once per period.

Sending (automatic at the period boundary, or ``digest --send``) follows the shipped-card
pattern: the mail is staged in the outbox with a planned Message-ID *before* its
``digest-sending`` claim is published; the fold keeps the first claim per period in log
order, and only the desktop whose staged mail carries the winning Message-ID promotes it
(the others drop theirs). From there the outbox's own guarantees (compare-and-swap
states, ``uncertain`` instead of a second send) make it go once. A digest gets no copy
in Sent and no ``reply-sent`` event (it is no conversation).

The automatic pass runs after each replay of the team log: when the server's clock, in
the team's zone, is past the end of last week and last week's digest is neither claimed
in the log nor staged here, it stages and claims it. Only the period just ended is sent;
a team whose desktops were all off for a month gets one digest, not four.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from helpdesk.changes import Changes
from helpdesk.digest.build import Period, conversations, oldest_waiting, top_cards
from helpdesk.digest.fold import SETTINGS_KEY, clean_recipients
from helpdesk.errors import HelpdeskError
from helpdesk.mail.compose import new_message_id
from helpdesk.rota import schedule
from helpdesk.rota.fold import read_json
from helpdesk.rota.newcomers import team_zone
from helpdesk.session import ImapLink, Session, intent
from helpdesk.store.engine import parse_db_time, raw_cursor
from helpdesk.team_settings import TEAM_SUBJECT

if TYPE_CHECKING:
    from helpdesk.metrics.service import ServiceMetrics
    from helpdesk.replies import Replies
    from helpdesk.rota.alarm import Alarm

log = logging.getLogger(__name__)


class Digest:
    """The digest of one session."""

    def __init__(self, session: Session, metrics: ServiceMetrics, replies: Replies,
                 alarm: Alarm | None = None) -> None:
        self.session = session
        self.store = session.store
        self.metrics = metrics
        self.replies = replies
        self.alarm = alarm

    # --- reading --------------------------------------------------------------------

    def zone(self) -> str:
        with self.store.read() as conn:
            return team_zone(conn)

    def recipients(self) -> list[str]:
        with self.store.read() as conn:
            data = read_json(raw_cursor(conn), SETTINGS_KEY) or {}
        try:
            return clean_recipients(data.get("recipients") or [])
        except ValueError:
            return []

    def period(self, since: date | None = None, until: date | None = None) -> Period:
        """``since``..``until`` (exclusive; default: today); without ``since`` the last
        complete week in the team's zone."""
        zone = self.zone()
        today = schedule.team_date(self.session.server_now(), zone)
        if since is None:
            return Period.week_of(today - timedelta(days=7), zone)
        end = until or today + timedelta(days=1)
        if end <= since:
            raise HelpdeskError("The digest's period ends before it starts.")
        return Period.between(since, end, zone)

    def build(self, period: Period | None = None) -> dict[str, Any]:
        """The digest as data (the JSON of ``digest --json``): ``{period, since, until,
        cards, nps, cared, oldest_waiting, conversations, sent}``."""
        p = period or self.period()
        last_day = p.until - timedelta(days=1)
        trend = self.metrics.compare(p.since, last_day)
        now_nps = trend["current"]["nps"]
        before = trend["previous"]["nps"]
        change = (now_nps["score"] - before["score"]
                  if now_nps["score"] is not None and before["score"] is not None else None)
        with self.store.read() as conn:
            sent = conn.execute(text("SELECT agent, at FROM digests WHERE period = :p"),
                                {"p": p.key}).first()
            return {"period": p.key, "since": p.since.isoformat(), "until": p.until.isoformat(),
                    "timezone": p.zone, "cards": top_cards(conn, p),
                    "nps": {**now_nps, "previous": before["score"], "change": change},
                    "cared": trend["current"]["cared"],
                    "oldest_waiting": oldest_waiting(conn, self.session.server_now()),
                    "conversations": conversations(conn, p),
                    "sent": {"by": sent[0], "at": str(sent[1])} if sent else None}

    def text(self, period: Period | None = None) -> str:
        """The digest as the plain text the mail carries."""
        return render_text(self.build(period))

    # --- intents --------------------------------------------------------------------

    @intent
    def set_recipients(self, recipients: list[str]) -> Changes:
        """The list the digest goes to (empty: none by mail)."""
        try:
            clean = clean_recipients([r.strip() for r in recipients if r.strip()])
        except ValueError as exc:
            raise HelpdeskError(f"The digest's list is not valid: {exc}.") from None
        return self.session.publish(self.session.event("digest-settings", TEAM_SUBJECT,
                                                       recipients=clean))[0]

    @intent
    def send(self, period: Period | None = None) -> dict[str, Any]:
        """Send the digest of ``period`` (default: last week) to the team's list, unless
        it went already: ``{period, state: "queued" | "already sent", by, at}``."""
        self.session.replay()
        return self._send(self.session.intents, period or self.period())

    def _send(self, link: ImapLink, p: Period) -> dict[str, Any]:
        to = self.recipients()
        if not to:
            raise HelpdeskError("The digest has no list to go to: set one with "
                                "'digest --recipients a@x,b@y'.")
        done = self._claimed(p.key)
        if done is None:
            mid = new_message_id(self.session.profile.smtp.from_address)
            body = render_text(self.build(p))
            item_id, _ = self.replies.queue_mail(
                kind="digest", to=to, subject=f"What customers are telling us ({p.key})",
                body=body, meta={"period": p.key}, message_id=mid,
                publish=[self.session.event("digest-sending", p.key, message_id=mid)],
                resolve=False, extra_headers={"Auto-Submitted": "auto-generated",
                                              "X-Helpdesk-Kind": "digest"})
            self.replies._resolve_staged(link, [i for i in self.session.outbox.items(
                states=("staged",)) if i.id == item_id])
            done = self._claimed(p.key)
            if done is not None and done[2] == mid:
                self.replies.flush(link, ids=[item_id])
                return {"period": p.key, "state": "queued", "by": done[0], "at": done[1]}
        assert done is not None
        return {"period": p.key, "state": "already sent", "by": done[0], "at": done[1]}

    def _claimed(self, key: str) -> tuple[str, str, str] | None:
        with self.store.read() as conn:
            row = conn.execute(text("SELECT agent, at, message_id FROM digests "
                                    "WHERE period = :p"), {"p": key}).first()
        return (str(row[0]), str(row[1]), str(row[2])) if row else None

    def boundary_pass(self, link: ImapLink) -> Changes:
        """At the period boundary, stage and claim last week's digest (a sync step)."""
        if not self.recipients() or not self.session.profile.smtp.host:
            return Changes(set(), set())
        p = self.period()
        if self.alarm is not None:  # the next week's end, in the team's zone
            self.alarm.at(Period.week_of(p.until, p.zone).start)
        if self._claimed(p.key) is not None or self._staged_here(p.key):
            return Changes(set(), set())
        started = self._started()
        if started is None or started >= p.end:
            return Changes(set(), set())  # the list was set after that week ended
        log.info("sending the digest of %s", p.key)
        self._send(link, p)
        return Changes(set(), set())

    def _staged_here(self, key: str) -> bool:
        return any(i.kind == "digest" and i.meta.get("period") == key
                   for i in self.session.outbox.items(states=("staged", "queued", "claiming",
                                                              "sending", "accepted")))

    def _started(self) -> datetime | None:
        """When the team first set a list (server time): no digest for weeks before it."""
        with self.store.read() as conn:
            value = conn.execute(text("SELECT min(at) FROM team_events "
                                      "WHERE type = 'digest-settings'")).scalar()
        return parse_db_time(value)


def _pct(value: float | None) -> str:
    return "no answers yet" if value is None else f"{round(value * 100)}%"


def render_text(d: dict[str, Any]) -> str:
    """The digest as a plain-text mail (and the CLI's text output)."""
    lines = [f"What customers are telling us: {d['period']} "
             f"({d['since']} to {d['until']}, {d['timezone']})", ""]
    lines.append("Feedback cards that gained the most customers")
    if d["cards"]:
        lines += [f"  +{c['gained']}  {c['title']} ({c['customers']} in all)" for c in d["cards"]]
    else:
        lines.append("  (no new requests this period)")
    nps = d["nps"]
    if nps["score"] is None:
        lines += ["", "NPS: no answers this period"]
    else:
        trend = "" if nps["change"] is None else (
            f", {'up' if nps['change'] > 0 else 'down' if nps['change'] < 0 else 'unchanged'}"
            f"{'' if nps['change'] == 0 else ' ' + str(abs(nps['change']))} from "
            f"{nps['previous']}")
        lines += ["", f"NPS: {nps['score']} ({nps['responses']} answers{trend})"]
    cared = d["cared"]
    lines.append(f"Cared rate: {_pct(cared['rate'])} "
                 f"({cared['yes']} of {cared['yes'] + cared['no']} closed tickets)")
    lines += ["", "Oldest waiting tickets"]
    if d["oldest_waiting"]:
        for t in d["oldest_waiting"]:
            days = (t["waiting_seconds"] or 0) // 86400
            hours = (t["waiting_seconds"] or 0) // 3600
            age = f"{days} d" if days else f"{hours} h"
            lines.append(f"  {age:>5}  {t['subject'] or '(no subject)'} ({t['customer'] or ''})")
    else:
        lines.append("  (nobody is waiting)")
    lines += ["", "Five customer conversations"]
    if not d["conversations"]:
        lines.append("  (no customer wrote this period)")
    for i, c in enumerate(d["conversations"], 1):
        lines += ["", f"{i}. {c['subject'] or '(no subject)'} ({c['customer']})"]
        for words in c["customer_words"]:
            lines += ["   > " + line for line in words.splitlines()] + [""]
        for words in c["our_answers"][:1]:
            lines.append("   We answered:")
            lines += ["   | " + line for line in words.splitlines()]
    return "\n".join(lines).rstrip() + "\n"
