"""Feedback cards: the board, who asked for what, who was told it shipped.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DDL = [
    """CREATE TABLE board_columns (
        id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, position INTEGER NOT NULL,
        stamp INTEGER NOT NULL DEFAULT 0)""",
    """INSERT INTO board_columns (id, name, position) VALUES
        ('ideas', 'Ideas', 0), ('known-issues', 'Known issues', 1), ('next-up', 'Next up', 2),
        ('in-progress', 'In progress', 3), ('shipped', 'Shipped', 4)""",
    # id = the event id of the card-create event; registers stamped with log UIDs.
    """CREATE TABLE cards (
        id VARCHAR PRIMARY KEY, title TEXT NOT NULL, description TEXT NOT NULL DEFAULT '',
        column_id VARCHAR NOT NULL DEFAULT 'ideas', created_at DATETIME NOT NULL,
        updated_at DATETIME NOT NULL, created_by VARCHAR NOT NULL,
        title_stamp INTEGER NOT NULL DEFAULT 0, column_stamp INTEGER NOT NULL DEFAULT 0,
        merged_into VARCHAR, shipped_at DATETIME)""",
    # Add-wins set of (card, customer): concurrent adds from two desktops both survive.
    """CREATE TABLE card_customers (
        card_id VARCHAR NOT NULL, email VARCHAR NOT NULL, ticket_id VARCHAR, quote TEXT,
        added_at DATETIME NOT NULL, added_by VARCHAR NOT NULL, event_id VARCHAR NOT NULL,
        PRIMARY KEY (card_id, email))""",
    "CREATE INDEX ix_card_customers_email ON card_customers (email)",
    """CREATE TABLE card_notified (
        card_id VARCHAR NOT NULL, email VARCHAR NOT NULL, at DATETIME NOT NULL,
        message_id VARCHAR, PRIMARY KEY (card_id, email))""",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
