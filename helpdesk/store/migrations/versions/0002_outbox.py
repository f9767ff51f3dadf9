"""Outbox for replies and other outgoing mail, saved replies, local drafts.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DDL = [
    # Outgoing mail is stored here durably before any network I/O.
    # state: queued | sending | sent | failed | held (held = a teammate holds the ticket)
    """CREATE TABLE outbox (
        id INTEGER PRIMARY KEY, kind VARCHAR NOT NULL DEFAULT 'reply',
        ticket_id VARCHAR, message_id VARCHAR NOT NULL UNIQUE, agent VARCHAR NOT NULL,
        to_addrs TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL, raw BLOB NOT NULL,
        state VARCHAR NOT NULL DEFAULT 'queued', attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DATETIME, last_error TEXT, created_at DATETIME NOT NULL,
        smtp_accepted_at DATETIME, sent_at DATETIME, close_after BOOLEAN NOT NULL DEFAULT 0,
        sent_copy_done BOOLEAN NOT NULL DEFAULT 0, event_done BOOLEAN NOT NULL DEFAULT 0,
        meta TEXT NOT NULL DEFAULT '{}')""",
    "CREATE INDEX ix_outbox_state ON outbox (state)",
    "CREATE INDEX ix_outbox_ticket ON outbox (ticket_id)",
    # Saved replies: shared team state (last-writer-wins per name).
    """CREATE TABLE templates (
        name VARCHAR PRIMARY KEY, body TEXT NOT NULL, stamp INTEGER NOT NULL DEFAULT 0,
        deleted BOOLEAN NOT NULL DEFAULT 0, agent VARCHAR)""",
    # Composer drafts: local only, autosaved, survive a crash.
    """CREATE TABLE drafts (
        ticket_id VARCHAR PRIMARY KEY, body TEXT NOT NULL, updated_at DATETIME NOT NULL)""",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
