"""The composer: Cc/Bcc, the undo window, drafts with attachments, signatures, forwards.

Revision ID: 0009
Revises: 0007 (written beside 0008, which another branch adds: the lead chains them,
0009 then follows 0008; nothing here depends on 0008)
"""

from alembic import op

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None

DDL = [
    # Recipients besides To (JSON lists of addresses). Bcc is only ever in the SMTP
    # envelope, never in the message's headers (nor in the Sent copy).
    "ALTER TABLE outbox ADD COLUMN cc_addrs TEXT NOT NULL DEFAULT '[]'",
    "ALTER TABLE outbox ADD COLUMN bcc_addrs TEXT NOT NULL DEFAULT '[]'",
    # The undo window: a queued item is not taken before this time (NULL: at once).
    "ALTER TABLE outbox ADD COLUMN not_before DATETIME",
    # The composer's other fields (recipients, subject, formatting, what is quoted).
    "ALTER TABLE drafts ADD COLUMN meta TEXT NOT NULL DEFAULT '{}'",
    # A draft's files (local only, like the draft): an undone send puts them back here.
    """CREATE TABLE draft_attachments (
        ticket_id VARCHAR NOT NULL, position INTEGER NOT NULL, filename TEXT NOT NULL,
        content_type VARCHAR NOT NULL, data BLOB NOT NULL,
        PRIMARY KEY (ticket_id, position))""",
    # Signatures: team state folded from the log, last-writer-wins per scope
    # ('team', or 'agent:<name>' for a personal one).
    """CREATE TABLE signatures (
        scope VARCHAR PRIMARY KEY, body TEXT NOT NULL, stamp INTEGER NOT NULL DEFAULT 0,
        agent VARCHAR)""",
    # Forwards recorded in their ticket, folded from the log (add-only, by event id).
    """CREATE TABLE forwards (
        event_id VARCHAR PRIMARY KEY, ticket_id VARCHAR NOT NULL, agent VARCHAR NOT NULL,
        message_id VARCHAR NOT NULL, to_addrs TEXT NOT NULL, at DATETIME NOT NULL)""",
    "CREATE INDEX ix_forwards_ticket ON forwards (ticket_id)",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
