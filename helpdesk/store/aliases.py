"""Merged tickets: which id a ticket id stands for now (minimal on this branch).

The ``threads`` branch (issue 14, items 5 and 6) owns this module: there a merged-away
ticket id resolves to its survivor through an alias table every desktop derives alike.
Here :func:`canonical` is the identity, so the code that must pass every ticket id
entering from outside (CLI and GUI arguments, the ticket of every team-log event) through
it already does, and :data:`TICKET_KEYED_TABLES` says how this branch's tables merge.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any


def canonical(conn: sqlite3.Cursor | sqlite3.Connection | Any, ticket_id: str) -> str:
    """The id ``ticket_id`` stands for now (itself while nothing was merged)."""
    return ticket_id


@dataclass(frozen=True)
class KeyedTable:
    """A table keyed by ticket id, and what a merge of two tickets does to its rows."""

    table: str
    column: str  # the ticket id column
    policy: str  # union | re-point | register-newest
    why: str


TICKET_KEYED_TABLES: tuple[KeyedTable, ...] = (
    KeyedTable("ticket_notes", "ticket_id", "re-point",
               "notes are add-only by event id: every note of both tickets is kept, "
               "ordered by its UID"),
    KeyedTable("ticket_mentions", "ticket_id", "union",
               "per agent the newer unanswered mention (higher uid) is kept: a mention "
               "on either ticket is still owed an answer"),
    KeyedTable("ticket_tags", "ticket_id", "union",
               "a tag on either ticket is on the merged one; per tag the row with the "
               "higher stamp is kept"),
    KeyedTable("ticket_work", "ticket_id", "register-newest",
               "assignee and snooze are last-writer-wins registers: per register the one "
               "with the higher stamp (the later event in log order) wins, the same rule "
               "as within one ticket, so every desktop picks alike whichever id survives"),
)
