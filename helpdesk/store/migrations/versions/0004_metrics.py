"""Service metrics: surveys sent, NPS scores, the agent's "did they feel we cared?" check.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DDL = [
    """CREATE TABLE surveys (
        message_id VARCHAR PRIMARY KEY, ticket_id VARCHAR NOT NULL, customer VARCHAR NOT NULL,
        sent_at DATETIME NOT NULL)""",
    "CREATE INDEX ix_surveys_ticket ON surveys (ticket_id)",
    # source: email (a reply to a survey, recognised during sync) | manual (phone, by hand)
    """CREATE TABLE scores (
        id VARCHAR PRIMARY KEY, ticket_id VARCHAR, customer VARCHAR, score INTEGER NOT NULL,
        comment TEXT, at DATETIME NOT NULL, source VARCHAR NOT NULL, agent VARCHAR)""",
    "CREATE INDEX ix_scores_at ON scores (at)",
    """CREATE TABLE cared (
        event_id VARCHAR PRIMARY KEY, ticket_id VARCHAR NOT NULL, agent VARCHAR NOT NULL,
        value BOOLEAN NOT NULL, at DATETIME NOT NULL)""",
    "CREATE INDEX ix_cared_at ON cared (at)",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
