"""Claim intents: claim, renew, release and take over a ticket, and the reply fence.

The rules that decide them are folded from the team log (helpdesk/team/claims.py);
this module appends the events and reports what the log decided.
"""

from __future__ import annotations

from helpdesk.changes import Changes
from helpdesk.errors import ConflictError
from helpdesk.session import ImapLink, Session, intent
from helpdesk.tickets import ClaimInfo, TicketBook


class Claims:
    """Who answers a ticket now: decided by log order, reported truthfully."""

    def __init__(self, session: Session, book: TicketBook) -> None:
        self.session = session
        self.book = book

    @property
    def agent(self) -> str:
        return self.session.agent

    @intent
    def claim(self, tid: str, link: ImapLink | None = None) -> ClaimInfo:
        """Claim ``tid`` for this agent; raise ConflictError naming the holder.

        When the local fold shows a teammate holding the ticket, catch up first (it
        may have been released) and refuse without appending if it is still held.
        Otherwise the log decides: APPEND, fold up to our event, settle check.
        """
        current = self.book.holder(tid)
        if current.agent and current.agent != self.agent:
            self.session.replay(link)
            current = self.book.holder(tid)
            if current.agent and current.agent != self.agent:
                raise ConflictError(current.conflict_message())
        ev = self.session.event("claim", tid, lease=self.session.profile.lease_minutes * 60)
        _changes, fold = self.session.publish(ev, link=link)
        outcome = fold.outcomes.get(ev.id)
        if outcome is None:
            # Folded before this replay (a retried APPEND, another process on this
            # database): the folded state says who won.
            current = self.book.holder(tid)
            if current.agent == self.agent:
                return ClaimInfo(tid, self.agent, current.since, current.event)
            raise ConflictError(current.conflict_message())
        if not outcome.accepted:
            raise ConflictError(self.book.holder(tid).conflict_message())
        return ClaimInfo(tid, self.agent, outcome.since, ev.id)

    @intent
    def renew(self, tid: str) -> bool:
        """Extend this agent's lease (an open composer calls this); False if not held."""
        current = self.book.holder(tid)
        if current.agent != self.agent or not current.event:
            return False
        self.session.publish(self.session.event("renew", tid, claim=current.event))
        return self.book.holder(tid).agent == self.agent

    @intent
    def release(self, tid: str) -> Changes:
        return self.session.publish(self.session.event("release", tid))[0]

    @intent
    def takeover(self, tid: str) -> ClaimInfo:
        """Take a ticket over from its holder (who is told); ConflictError if it moved on."""
        self.session.replay()
        current = self.book.holder(tid)
        ev = self.session.event("takeover", tid, replaces=current.event,
                                lease=self.session.profile.lease_minutes * 60)
        _changes, fold = self.session.publish(ev)
        outcome = fold.outcomes.get(ev.id)
        if outcome is None or not outcome.accepted:
            raise ConflictError(self.book.holder(tid).conflict_message())
        return ClaimInfo(tid, self.agent, outcome.since, ev.id, previous=outcome.previous)
