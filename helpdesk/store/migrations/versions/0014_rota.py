"""The duty rota's hand-offs, the weekly digest's sendings, newcomers' held replies.

Revision ID: 0014
Revises: 0013 (written beside sibling migrations; the lead chained them when merging,
nothing here depends on any of them)

All four tables are team state folded from the log (first event per key wins, so every
desktop keeps the same row); the rota itself, swaps, newcomers and the digest's list are
last-writer-wins registers in ``meta`` (``team.rota`` ...) and need no table.
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

DDL = [
    # rota-handoff: a new unclaimed ticket handed to the person on duty, once per ticket.
    """CREATE TABLE rota_handoffs (
        ticket_id VARCHAR PRIMARY KEY, agent VARCHAR NOT NULL, day VARCHAR NOT NULL,
        at DATETIME NOT NULL, uid INTEGER NOT NULL, event_id VARCHAR NOT NULL,
        by_agent VARCHAR NOT NULL)""",
    # Every sync pass with the hand-off on asks for tickets that arrived in a time range
    # (bench/rota_bench.py: a full scan grows with the store).
    "CREATE INDEX ix_tickets_first_in_at ON tickets (first_in_at)",
    # digest-sending: the claim of one period's digest; its Message-ID is the mail that goes.
    """CREATE TABLE digests (
        period VARCHAR PRIMARY KEY, message_id VARCHAR NOT NULL, agent VARCHAR NOT NULL,
        at DATETIME NOT NULL, uid INTEGER NOT NULL)""",
    # approval-request: a newcomer's reply held for a second pair of eyes (its text, so a
    # teammate on another desktop can read it before approving).
    """CREATE TABLE approval_requests (
        message_id VARCHAR PRIMARY KEY, ticket_id VARCHAR, agent VARCHAR NOT NULL,
        subject TEXT NOT NULL DEFAULT '', to_addrs TEXT NOT NULL DEFAULT '[]',
        text TEXT NOT NULL DEFAULT '', attachments TEXT NOT NULL DEFAULT '[]',
        at DATETIME NOT NULL, uid INTEGER NOT NULL)""",
    # approval: the first teammate's approval of a held reply (by Message-ID).
    """CREATE TABLE approvals (
        message_id VARCHAR PRIMARY KEY, agent VARCHAR NOT NULL, at DATETIME NOT NULL,
        uid INTEGER NOT NULL)""",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
