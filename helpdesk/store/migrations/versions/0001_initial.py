"""Mailbox replica, tickets, customers and the team-log fold.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

DDL = [
    """CREATE TABLE meta (key VARCHAR PRIMARY KEY, value TEXT)""",
    """CREATE TABLE folders (
        id INTEGER PRIMARY KEY, name VARCHAR NOT NULL UNIQUE, role VARCHAR NOT NULL,
        uidvalidity INTEGER, last_uid INTEGER NOT NULL DEFAULT 0, uidnext INTEGER,
        highestmodseq INTEGER, synced_at DATETIME)""",
    """CREATE TABLE tickets (
        id VARCHAR PRIMARY KEY, thread_key VARCHAR NOT NULL, subject TEXT NOT NULL DEFAULT '',
        customer_email VARCHAR, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL,
        message_count INTEGER NOT NULL DEFAULT 0, snippet TEXT NOT NULL DEFAULT '',
        waiting_since DATETIME, first_in_at DATETIME, last_in_at DATETIME,
        first_out_at DATETIME)""",
    "CREATE INDEX ix_tickets_customer_email ON tickets (customer_email)",
    "CREATE INDEX ix_tickets_updated_at ON tickets (updated_at, id)",
    # Team state per ticket, folded from the log; keyed by ticket id alone because a
    # teammate's event may arrive before this desktop has synced the ticket's mail.
    """CREATE TABLE ticket_state (
        ticket_id VARCHAR PRIMARY KEY, status VARCHAR NOT NULL DEFAULT 'open',
        status_stamp INTEGER NOT NULL DEFAULT 0, status_at DATETIME, closed_at DATETIME,
        claimed_by VARCHAR,
        claim_event VARCHAR, claimed_at DATETIME, claim_active_at DATETIME,
        claim_lease INTEGER)""",
    "CREATE INDEX ix_ticket_state_status ON ticket_state (status)",
    "CREATE INDEX ix_ticket_state_claimed_by ON ticket_state (claimed_by)",
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY, dedup_key VARCHAR NOT NULL UNIQUE,
        ticket_id VARCHAR NOT NULL REFERENCES tickets (id), message_id VARCHAR,
        in_reply_to VARCHAR, "references" TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        from_addr VARCHAR, from_name VARCHAR, to_addrs TEXT NOT NULL DEFAULT '',
        cc_addrs TEXT NOT NULL DEFAULT '', reply_to VARCHAR, date_header DATETIME,
        received_at DATETIME NOT NULL, direction VARCHAR NOT NULL,
        auto_kind VARCHAR NOT NULL DEFAULT 'none', text TEXT NOT NULL DEFAULT '', html TEXT,
        attachments TEXT NOT NULL DEFAULT '[]', defects TEXT, size INTEGER NOT NULL DEFAULT 0,
        raw BLOB)""",
    "CREATE INDEX ix_messages_message_id ON messages (message_id)",
    "CREATE INDEX ix_messages_ticket_received ON messages (ticket_id, received_at)",
    """CREATE TABLE locations (
        id INTEGER PRIMARY KEY, folder_id INTEGER NOT NULL REFERENCES folders (id),
        uidvalidity INTEGER NOT NULL, uid INTEGER NOT NULL,
        message_pk INTEGER NOT NULL REFERENCES messages (id),
        UNIQUE (folder_id, uidvalidity, uid))""",
    "CREATE INDEX ix_locations_message_pk ON locations (message_pk)",
    """CREATE TABLE customers (
        email VARCHAR PRIMARY KEY, name VARCHAR, organisation VARCHAR,
        vip BOOLEAN NOT NULL DEFAULT 0, vip_tier VARCHAR, vip_stamp INTEGER NOT NULL DEFAULT 0,
        white_glove BOOLEAN NOT NULL DEFAULT 0, white_glove_stamp INTEGER NOT NULL DEFAULT 0,
        preferred_name VARCHAR, preferred_name_stamp INTEGER NOT NULL DEFAULT 0,
        birthday VARCHAR, birthday_stamp INTEGER NOT NULL DEFAULT 0,
        heard_from VARCHAR, heard_from_stamp INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE notes (
        id VARCHAR PRIMARY KEY, customer_email VARCHAR NOT NULL, agent VARCHAR NOT NULL,
        text TEXT NOT NULL, at DATETIME NOT NULL, deleted BOOLEAN NOT NULL DEFAULT 0)""",
    "CREATE INDEX ix_notes_customer_email ON notes (customer_email)",
    """CREATE TABLE team_events (
        uid INTEGER PRIMARY KEY, event_id VARCHAR NOT NULL UNIQUE, type VARCHAR NOT NULL,
        agent VARCHAR NOT NULL, at DATETIME NOT NULL, subject VARCHAR, body TEXT NOT NULL)""",
    "CREATE INDEX ix_team_events_type ON team_events (type)",
    "CREATE INDEX ix_team_events_subject ON team_events (subject)",
    # Full-text search: one row per message, rowid = messages.id. ticket_id rides along
    # unindexed; searches no longer read it (joining messages on the rowid is faster, see
    # helpdesk/store/queries.py), it stays for stores already created with it.
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
        subject, body, customer, ticket_id UNINDEXED,
        tokenize = 'unicode61 remove_diacritics 2')""",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
