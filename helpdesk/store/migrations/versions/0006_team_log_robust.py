"""The team log nothing can jam: events kept for a newer build, messages read and
skipped, claim outcomes stored with their events.

- ``team_pending``: well-formed events this build does not understand (unknown type,
  newer version), with body and UID, so an upgraded build refolds them locally.
- ``team_skipped``: log messages read but not stored as events (undecodable,
  oversized, a repeated event id), so "which UIDs has this store read" is exact.
- ``team_events.accepted/holder/since/previous``: how a claim or take-over was
  decided, whoever folded it.
- Stores folded before this revision forgot events of unknown types: they re-read
  the log once (``team.reread``), atomically.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DDL = [
    "ALTER TABLE team_events ADD COLUMN accepted BOOLEAN",
    "ALTER TABLE team_events ADD COLUMN holder VARCHAR",
    "ALTER TABLE team_events ADD COLUMN since DATETIME",
    "ALTER TABLE team_events ADD COLUMN previous VARCHAR",
    """CREATE TABLE team_pending (
        uid INTEGER PRIMARY KEY, event_id VARCHAR NOT NULL UNIQUE, type VARCHAR NOT NULL,
        v INTEGER NOT NULL, agent VARCHAR NOT NULL, at DATETIME NOT NULL, subject VARCHAR,
        body TEXT NOT NULL)""",
    """CREATE TABLE team_skipped (uid INTEGER PRIMARY KEY, reason VARCHAR NOT NULL)""",
    """INSERT INTO meta (key, value) SELECT 'team.reread', '1' WHERE EXISTS (
        SELECT 1 FROM meta WHERE key = 'team.cursor' AND CAST(value AS INTEGER) > 0)""",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
