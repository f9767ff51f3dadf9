"""Threading that repairs itself, and merging tickets: aliases of ticket ids.

Revision ID: 0010
Revises: 0009 (written beside sibling migrations of other branches, e.g. 0011 for
teamwork; the lead chains them; nothing here depends on them)

- ``messages.thread_ticket``: the ticket id the message names by itself (subject
  token, else its thread root; helpdesk/mail/conversations.py). ``ticket_id`` is
  where it lives now: that id resolved through the aliases below.
- ``message_refs``: every id a message names (In-Reply-To, References), so a message
  stored later finds the ones that named it (sync order does not matter).
- ``thread_aliases``: derived from the messages alone (helpdesk/mail/threads.py):
  each ticket id of a linked group of threads -> the group's survivor.
- ``ticket_merges``: team state folded from ``merge`` events (helpdesk/team/merges.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DDL = [
    "ALTER TABLE messages ADD COLUMN thread_ticket VARCHAR",
    "UPDATE messages SET thread_ticket = ticket_id",
    "CREATE INDEX ix_messages_thread_ticket ON messages (thread_ticket)",
    """CREATE TABLE message_refs (
        ref_id VARCHAR NOT NULL, message_pk INTEGER NOT NULL REFERENCES messages (id),
        PRIMARY KEY (ref_id, message_pk)) WITHOUT ROWID""",
    """CREATE TABLE thread_aliases (
        ticket_id VARCHAR PRIMARY KEY, into_id VARCHAR NOT NULL)""",
    "CREATE INDEX ix_thread_aliases_into ON thread_aliases (into_id)",
    """CREATE TABLE ticket_merges (
        ticket_id VARCHAR PRIMARY KEY, into_id VARCHAR NOT NULL, uid INTEGER NOT NULL,
        agent VARCHAR NOT NULL, at DATETIME NOT NULL)""",
    "CREATE INDEX ix_ticket_merges_into ON ticket_merges (into_id)",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)
    # The ids stored messages name.
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        'SELECT id, message_id, in_reply_to, "references" FROM messages')).all()
    refs = []
    for pk, own, irt, references in rows:
        for ref in {irt, *(references or "").split()} - {None, "", own}:
            refs.append({"r": ref, "m": pk})
    if refs:
        bind.execute(sa.text("INSERT OR IGNORE INTO message_refs (ref_id, message_pk) "
                             "VALUES (:r, :m)"), refs)
        # The links among them are found by the next sync (helpdesk/mail/threads.py,
        # rethread_stored), in chunks, not in this one upgrade transaction.
        bind.execute(sa.text("INSERT OR REPLACE INTO meta (key, value) "
                             "VALUES ('threads.rethread', '0')"))
