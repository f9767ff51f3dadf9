"""What a change touched (tickets, customers, cards), for views to refresh only that.

Anki's ``OpChanges`` is the model: every mutation and every sync pass returns one.
"""

from __future__ import annotations

from dataclasses import dataclass

from helpdesk.mail.sync import KEEP_INBOUND, KEEP_TICKETS, SyncResult


@dataclass
class Changes:
    """What a mutation or a sync changed, so views refresh only what is affected.

    ``tickets`` may contain ``"*"``: everything changed (a rebuild, or more tickets
    than are worth listing, see ``KEEP_TICKETS``). ``new_inbound`` lists new customer
    mail, at most ``KEEP_INBOUND`` entries; ``new_inbound_more`` counts the rest.
    Both bounds keep a sync of any size from holding per-message state.
    """

    tickets: set[str]
    customers: set[str]
    cards: bool = False
    new_inbound: list[tuple[str, str | None]] | None = None
    taken_over: list[tuple[str, str, str]] | None = None  # (ticket, from me, by whom)
    new_inbound_more: int = 0
    mentioned: list[tuple[str, str]] | None = None  # (ticket, by whom): I was @mentioned
    assigned: list[tuple[str, str]] | None = None  # (ticket, by whom): assigned to me
    tags: bool = False  # tag counts changed

    def __bool__(self) -> bool:
        return bool(self.tickets or self.customers or self.cards or self.tags)

    @property
    def new_inbound_count(self) -> int:
        """New customer messages, listed or not."""
        return len(self.new_inbound or []) + self.new_inbound_more

    def merge(self, other: Changes) -> None:
        if "*" in self.tickets or "*" in other.tickets \
                or len(self.tickets) + len(other.tickets) > KEEP_TICKETS:
            self.tickets = {"*"}
        else:
            self.tickets |= other.tickets
        self.customers |= other.customers
        self.cards = self.cards or other.cards
        if other.new_inbound:
            kept = self.new_inbound or []
            room = max(0, KEEP_INBOUND - len(kept))
            self.new_inbound = kept + other.new_inbound[:room]
            self.new_inbound_more += len(other.new_inbound) - len(other.new_inbound[:room])
        self.new_inbound_more += other.new_inbound_more
        if other.taken_over:
            self.taken_over = (self.taken_over or []) + other.taken_over
        if other.mentioned:
            self.mentioned = (self.mentioned or []) + other.mentioned
        if other.assigned:
            self.assigned = (self.assigned or []) + other.assigned
        self.tags = self.tags or other.tags

    @classmethod
    def of_mail(cls, result: SyncResult) -> Changes:
        return cls(set(result.tickets), set(), new_inbound=list(result.new_inbound) or None,
                   new_inbound_more=result.new_inbound_more)
