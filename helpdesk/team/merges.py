"""``merge TICKET INTO``: a team event, folded in log order like every other.

Event: type ``merge``, subject the ticket merged away, data ``{"into": INTO}``. Both ids
are resolved through :func:`helpdesk.store.aliases.canonical` as the log stands at the
event (the fold resolves the subject; this handler ``into``). A merge of a ticket into
itself, or into a ticket already merged into it (a cycle), resolves to one ticket on
both sides and is refused: skipped with one log line, on every replica alike.

Folding it records ``ticket_merges`` (so the merged id keeps resolving to INTO), moves
the merged ticket's state by each table's policy (helpdesk/store/aliases.py, claims and
status included) and moves its messages. Undo is not offered: a merge is for good.
"""

from __future__ import annotations

import sqlite3

from helpdesk.store import aliases
from helpdesk.team.fold import BadData, FoldContext, Handlers, db_time, required_text

HANDLERS = Handlers("merges")
MAX_ID = 64


@HANDLERS.on("merge")
def _merge(ctx: FoldContext) -> None:
    old = ctx.event.subject  # resolved by the fold
    into_raw = required_text(ctx.event.data, "into").strip().lower()
    if not old or not into_raw or len(into_raw) > MAX_ID or len(old) > MAX_ID:
        raise BadData("merge without two ticket ids")
    into = aliases.canonical(ctx.cur, into_raw)
    if into == old:
        raise BadData(f"ticket {old} is already {into_raw} (merged into itself or a cycle)")
    ctx.cur.execute("INSERT OR REPLACE INTO ticket_merges (ticket_id, into_id, uid, agent, at) "
                    "VALUES (?, ?, ?, ?, ?)", (old, into, ctx.uid, ctx.event.agent,
                                               db_time(ctx.at)))
    aliases.move_state(ctx.cur, old, into, ctx.at)
    from helpdesk.mail.sync import refresh_tickets_cursor
    refresh_tickets_cursor(ctx.cur, {into})
    ctx.result.tickets |= {old, into}


@HANDLERS.reset
def _reset(cur: sqlite3.Cursor) -> None:
    # The messages stay where they are until the fold is done; then aliases.settle()
    # puts them where the refolded merges say (helpdesk/team/log.py).
    cur.execute("DELETE FROM ticket_merges")
