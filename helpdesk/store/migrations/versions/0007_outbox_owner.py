"""The outbox's owner: which process is sending an item (compare-and-swap transitions).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DDL = [
    # owner: "host:pid:nonce" of the session that took the item (claiming, sending, or
    # finishing an accepted one); NULL when nobody works on it. owner_at: when it took it.
    "ALTER TABLE outbox ADD COLUMN owner VARCHAR",
    "ALTER TABLE outbox ADD COLUMN owner_at DATETIME",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
