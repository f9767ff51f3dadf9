"""Who is told of what: the person on duty hears of new tickets, others only their own.

A pure decision (no Qt, no clock): ``ui/notify.py`` asks it for every new message it
might show. The table, for the agent ``me`` at this desktop:

Without a rota nothing changes: VIP mail reaches everyone, new unclaimed tickets those
who switched ``notify_unclaimed`` on. With a rota:

============================  ==============================================================
what happened                 who is told
============================  ==============================================================
a new ticket (first message)  the person on duty today only; on a day off, as without a
                              rota
new mail in a ticket          its holder; unheld but handed off by the rota: the person it
                              went to; neither: the person on duty (no rota: nobody)
mail from a VIP customer      as above, except that with no rota, nobody on duty and
                              nobody holding the ticket, everyone hears (VIP mail is never
                              missed)
a take-over                   the one it was taken from (``changes.taken_over``)
============================  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Situation:
    """One new message as the decision sees it."""

    new_ticket: bool
    vip: bool
    holder: str | None      # who holds the ticket now (a live claim)
    handed_to: str | None   # who the rota handed it to
    on_duty: str | None     # who is on duty today (None: no rota, or a day off)
    rota: bool = False      # the team has a rota
    closed: bool = False


def concerns(me: str, s: Situation, *, notify_unclaimed: bool = False) -> bool:
    """Whether ``me`` is told of this message (see the module's table)."""
    if s.closed:
        return False
    if not s.rota:
        return s.vip or (notify_unclaimed and s.new_ticket and s.holder is None)
    if s.new_ticket and s.holder is None:
        if s.on_duty is not None:
            return me == s.on_duty
        return notify_unclaimed or s.vip
    owner = s.holder or s.handed_to or s.on_duty
    if owner is not None:
        return me == owner
    return s.vip
