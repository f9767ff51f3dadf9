"""Surveys sent, scores given by hand and the cared self-check, folded from the team log."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from helpdesk.metrics.surveys import _bare_id
from helpdesk.team import fold

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

HANDLERS = fold.Handlers("metrics")

SURVEY_CURSOR = "metrics.survey_rowid"  # meta: surveys rowid already scanned for answers


# --- fold handlers (team log → SQLite) ---------------------------------------------------------

@HANDLERS.on("survey-sent")
def _survey_sent(ctx: fold.FoldContext) -> None:
    message_id = _bare_id(fold.required_text(ctx.event.data, "message_id"))
    if not message_id:
        raise fold.BadData("survey without a message id")
    customer = (fold.text_field(ctx.event.data, "customer") or "").strip().lower()
    ctx.cur.execute("INSERT OR IGNORE INTO surveys (message_id, ticket_id, customer, sent_at) "
                    "VALUES (?, ?, ?, ?)",
                    (message_id, ctx.event.subject, customer, fold.db_time(ctx.at)))
    ctx.result.tickets.add(ctx.event.subject)


@HANDLERS.on("score")
def _score(ctx: fold.FoldContext) -> None:
    value = fold.int_field(ctx.event.data, "score", -1)
    if not 0 <= value <= 10:
        raise fold.BadData(f"score {value} is not a whole number from 0 to 10")
    comment = fold.text_field(ctx.event.data, "comment")
    customer = fold.text_field(ctx.event.data, "customer")
    ctx.cur.execute("INSERT OR IGNORE INTO scores (id, ticket_id, customer, score, comment, at, "
                    "source, agent) VALUES (?, ?, ?, ?, ?, ?, 'manual', ?)",
                    (ctx.event.id, ctx.event.subject,
                     customer.strip().lower() if customer else None, value,
                     comment[:2000] if comment else None, fold.db_time(ctx.at),
                     ctx.event.agent))
    ctx.result.tickets.add(ctx.event.subject)


@HANDLERS.on("cared")
def _cared(ctx: fold.FoldContext) -> None:
    """The self-check answered separately from the close (e.g. after it)."""
    value = fold.flag_field(ctx.event.data, "cared")
    ctx.cur.execute("INSERT OR IGNORE INTO cared (event_id, ticket_id, agent, value, at) "
                    "VALUES (?, ?, ?, ?, ?)", (ctx.event.id, ctx.event.subject,
                                               ctx.event.agent, value, fold.db_time(ctx.at)))
    ctx.result.tickets.add(ctx.event.subject)


@HANDLERS.reset
def _reset(cur: Any) -> None:
    """Rebuild: forget what came from the log; mail-derived scores are re-checked."""
    cur.execute("DELETE FROM surveys")
    cur.execute("DELETE FROM scores WHERE source != 'email'")
    cur.execute("DELETE FROM meta WHERE key = ?", (SURVEY_CURSOR,))



