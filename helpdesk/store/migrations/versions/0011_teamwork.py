"""Teamwork on a ticket: internal notes and @mentions, assignment, snooze, tags, spam.

All of it is team state folded from the log (helpdesk/team/ticket_notes.py and
helpdesk/team/ticket_marks.py), so every table here is rebuilt from the log alike on
every desktop; none is local-only.

- ``ticket_notes``: internal notes on a ticket (add-only by event id, ordered by UID),
  never part of any mail. ``mentions`` is the JSON list of agents the text names.
- ``ticket_mentions``: per (agent, ticket), the newest mention that agent has not yet
  answered (a reply sent, or a note written, on that ticket after it); the row goes when
  they answer. The ``mentions`` view reads it.
- ``ticket_work``: the assignee (a lasting owner, separate from the claim lock) and the
  snooze, each a last-writer-wins register stamped with its event's UID.
- ``ticket_tags``: the tags of each ticket; add and remove are applied in log order, so
  the later event wins per tag (a last-writer-wins set by UID).
- ``spam_blocks``: blocked senders (an address, or a domain), last-writer-wins per
  pattern; a ticket whose customer is blocked is in the ``spam`` view only.

Revision ID: 0011
Revises: 0010 (written beside 0010, which the ``threads`` branch added: the lead chained
them; nothing here depends on 0010)
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

DDL = [
    """CREATE TABLE ticket_notes (
        event_id VARCHAR PRIMARY KEY, ticket_id VARCHAR NOT NULL, agent VARCHAR NOT NULL,
        text TEXT NOT NULL, at DATETIME NOT NULL, uid INTEGER NOT NULL,
        mentions TEXT NOT NULL DEFAULT '[]')""",
    "CREATE INDEX ix_ticket_notes_ticket ON ticket_notes (ticket_id, uid)",
    """CREATE TABLE ticket_mentions (
        agent VARCHAR NOT NULL, ticket_id VARCHAR NOT NULL, note_id VARCHAR NOT NULL,
        by_agent VARCHAR NOT NULL, uid INTEGER NOT NULL, at DATETIME NOT NULL,
        PRIMARY KEY (agent, ticket_id))""",
    "CREATE INDEX ix_ticket_mentions_ticket ON ticket_mentions (ticket_id)",
    """CREATE TABLE ticket_work (
        ticket_id VARCHAR PRIMARY KEY,
        assignee VARCHAR, assigned_by VARCHAR, assigned_at DATETIME,
        assign_stamp INTEGER NOT NULL DEFAULT 0,
        snoozed_until DATETIME, snoozed_at DATETIME, snoozed_by VARCHAR,
        snooze_stamp INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX ix_ticket_work_assignee ON ticket_work (assignee)",
    "CREATE INDEX ix_ticket_work_snoozed ON ticket_work (snoozed_until)",
    """CREATE TABLE ticket_tags (
        ticket_id VARCHAR NOT NULL, tag VARCHAR NOT NULL, stamp INTEGER NOT NULL,
        PRIMARY KEY (ticket_id, tag))""",
    "CREATE INDEX ix_ticket_tags_tag ON ticket_tags (tag, ticket_id)",
    """CREATE TABLE spam_blocks (
        pattern VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, active BOOLEAN NOT NULL,
        stamp INTEGER NOT NULL, agent VARCHAR, at DATETIME, ticket_id VARCHAR)""",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
