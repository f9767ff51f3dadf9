"""Indexes that let the few-ticket views start from their few tickets.

Revision ID: 0015
Revises: 0014

The Spam view lists the tickets of blocked senders: by address from
``ix_tickets_customer_email``, by domain from the expression index below (the list query
names the same expression). ``spam_blocks`` is read by kind in every list and count.
Pending starts from ``ix_ticket_state_status`` (0001) and needs nothing new.
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

DDL = [
    "CREATE INDEX ix_tickets_customer_domain ON tickets "
    "(substr(customer_email, instr(customer_email, '@') + 1))",
    "CREATE INDEX ix_spam_blocks_kind ON spam_blocks (kind, active, pattern)",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
