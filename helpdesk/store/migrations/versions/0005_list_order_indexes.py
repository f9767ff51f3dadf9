"""Indexes in the ticket list's other orders (created, waiting), so that a first page of
a search in those orders walks the list instead of sorting every hit.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DDL = [
    "CREATE INDEX ix_tickets_created_at ON tickets (created_at, id)",
    # The same expression as the list's ORDER BY (helpdesk/store/queries.py), or SQLite
    # would not use it.
    "CREATE INDEX ix_tickets_waiting ON tickets (coalesce(waiting_since, '9999'), id)",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
