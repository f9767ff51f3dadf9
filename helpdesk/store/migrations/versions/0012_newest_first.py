"""Newest first: what the initial sync of a folder still has to fetch below its newest mail.

Revision ID: 0012
Revises: 0011 (written beside sibling migrations; the lead chained them when merging,
nothing here depends on any of them)

``folders.backfill_below``: with the folder's UIDVALIDITY, every message with a UID from
``backfill_below`` up to ``last_uid`` is stored; the ones below it are still to be
fetched, newest first (NULL: nothing below is missing). Stores synced before this
revision are complete, so NULL is right for them.
``folders.exists_count``: the folder's message count at its last sync (progress only).
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

DDL = [
    "ALTER TABLE folders ADD COLUMN backfill_below INTEGER",
    "ALTER TABLE folders ADD COLUMN exists_count INTEGER",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
