"""Team-log snapshots and compaction (issue 16, part 1).

Revision ID: 0013
Revises: 0012 (written beside sibling migrations; the lead chained them when merging,
nothing here depends on any of them)

- ``team_snapshot_marks``: accepted snapshot marks (team state, decided by log order),
  with this desktop's own digest of team state at the mark (NULL when it did not
  compute one), the compressed state itself for the newest marks, and what it saw of
  the snapshots written for the mark (``agreed``: a second desktop acknowledged the
  digest this one computed; ``disagreed``: a digest it refused).
- ``team_snapshot_parts``: the parts of snapshots seen in the log (by digest).
- ``team_snapshot_acks``: who acknowledged which digest.
- ``team_compactions``: accepted compaction claims (team state).
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

DDL = [
    """CREATE TABLE team_snapshot_marks (
        uid INTEGER PRIMARY KEY, agent VARCHAR NOT NULL, at DATETIME NOT NULL,
        digest VARCHAR, state BLOB, agreed BOOLEAN NOT NULL DEFAULT 0, disagreed VARCHAR)""",
    """CREATE TABLE team_snapshot_parts (
        digest VARCHAR NOT NULL, part INTEGER NOT NULL, count INTEGER NOT NULL,
        mark INTEGER NOT NULL, layout VARCHAR NOT NULL, uidvalidity INTEGER NOT NULL,
        agent VARCHAR NOT NULL, uid INTEGER NOT NULL, payload TEXT NOT NULL,
        PRIMARY KEY (digest, part))""",
    "CREATE INDEX ix_team_snapshot_parts_mark ON team_snapshot_parts (mark)",
    """CREATE TABLE team_snapshot_acks (
        digest VARCHAR NOT NULL, agent VARCHAR NOT NULL, mark INTEGER NOT NULL,
        uid INTEGER NOT NULL, PRIMARY KEY (digest, agent))""",
    """CREATE TABLE team_compactions (
        uid INTEGER PRIMARY KEY, event_id VARCHAR NOT NULL UNIQUE, agent VARCHAR NOT NULL,
        mark INTEGER NOT NULL, at DATETIME NOT NULL, lease INTEGER NOT NULL,
        done BOOLEAN NOT NULL DEFAULT 0)""",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
