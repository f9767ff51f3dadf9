"""SQLAlchemy models: the local replica of the mailbox and of the team log.

The schema itself is owned by the Alembic migrations in ``migrations/versions``;
these classes mirror it for queries. A test checks that the two agree.

Team-state columns (``*_stamp``) hold the team-log UID of the event that last
wrote the value: last-writer-wins by log order, so folding events in any order
gives the same result.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Small key/value facts: last sync time, last error, team-log cursor."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)


class Folder(Base):
    __tablename__ = "folders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    role: Mapped[str] = mapped_column(String)  # inbox | sent | team
    uidvalidity: Mapped[int | None] = mapped_column(Integer)
    last_uid: Mapped[int] = mapped_column(Integer, default=0)
    uidnext: Mapped[int | None] = mapped_column(Integer)
    highestmodseq: Mapped[int | None] = mapped_column(Integer)
    synced_at: Mapped[datetime | None] = mapped_column(DateTime)


class Ticket(Base):
    __tablename__ = "tickets"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    thread_key: Mapped[str] = mapped_column(String)
    subject: Mapped[str] = mapped_column(Text, default="")
    customer_email: Mapped[str | None] = mapped_column(String, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    snippet: Mapped[str] = mapped_column(Text, default="")
    waiting_since: Mapped[datetime | None] = mapped_column(DateTime)
    first_in_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_in_at: Mapped[datetime | None] = mapped_column(DateTime)
    first_out_at: Mapped[datetime | None] = mapped_column(DateTime)


class TicketState(Base):
    """Team state of a ticket (status register and claim lock), folded from the log."""

    __tablename__ = "ticket_state"
    ticket_id: Mapped[str] = mapped_column(String, primary_key=True)
    status: Mapped[str] = mapped_column(String, default="open", index=True)
    status_stamp: Mapped[int] = mapped_column(Integer, default=0)
    status_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    claimed_by: Mapped[str | None] = mapped_column(String, index=True)
    claim_event: Mapped[str | None] = mapped_column(String)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    claim_active_at: Mapped[datetime | None] = mapped_column(DateTime)
    claim_lease: Mapped[int | None] = mapped_column(Integer)  # seconds, from the claim event


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String, unique=True)
    # ix_messages_ticket_received (below) serves lookups by ticket too.
    ticket_id: Mapped[str] = mapped_column(String, ForeignKey("tickets.id"))
    message_id: Mapped[str | None] = mapped_column(String, index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String)
    references: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    from_addr: Mapped[str | None] = mapped_column(String)
    from_name: Mapped[str | None] = mapped_column(String)
    to_addrs: Mapped[str] = mapped_column(Text, default="")
    cc_addrs: Mapped[str] = mapped_column(Text, default="")
    reply_to: Mapped[str | None] = mapped_column(String)
    date_header: Mapped[datetime | None] = mapped_column(DateTime)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    direction: Mapped[str] = mapped_column(String)  # in | out
    auto_kind: Mapped[str] = mapped_column(String, default="none")
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str | None] = mapped_column(Text)
    attachments: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    defects: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (Index("ix_messages_ticket_received", "ticket_id", "received_at"),)


class Location(Base):
    """Where a stored message lives on the server (a message may live in several)."""

    __tablename__ = "locations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    folder_id: Mapped[int] = mapped_column(Integer, ForeignKey("folders.id"))
    uidvalidity: Mapped[int] = mapped_column(Integer)
    uid: Mapped[int] = mapped_column(Integer)
    message_pk: Mapped[int] = mapped_column(Integer, ForeignKey("messages.id"), index=True)
    __table_args__ = (UniqueConstraint("folder_id", "uidvalidity", "uid"),)


class Customer(Base):
    __tablename__ = "customers"
    email: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str | None] = mapped_column(String)
    organisation: Mapped[str | None] = mapped_column(String)
    vip: Mapped[bool] = mapped_column(Boolean, default=False)
    vip_tier: Mapped[str | None] = mapped_column(String)
    vip_stamp: Mapped[int] = mapped_column(Integer, default=0)
    white_glove: Mapped[bool] = mapped_column(Boolean, default=False)
    white_glove_stamp: Mapped[int] = mapped_column(Integer, default=0)
    preferred_name: Mapped[str | None] = mapped_column(String)
    preferred_name_stamp: Mapped[int] = mapped_column(Integer, default=0)
    birthday: Mapped[str | None] = mapped_column(String)
    birthday_stamp: Mapped[int] = mapped_column(Integer, default=0)
    heard_from: Mapped[str | None] = mapped_column(String)
    heard_from_stamp: Mapped[int] = mapped_column(Integer, default=0)


class Note(Base):
    """Personal-touch note: add-only by event id; deletion is its own event."""

    __tablename__ = "notes"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    customer_email: Mapped[str] = mapped_column(String, index=True)
    agent: Mapped[str] = mapped_column(String)
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class TeamEvent(Base):
    """Every event folded from the team log (kept for audit, metrics and rebuilds)."""

    __tablename__ = "team_events"
    uid: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String, unique=True)
    type: Mapped[str] = mapped_column(String, index=True)
    agent: Mapped[str] = mapped_column(String)
    at: Mapped[datetime] = mapped_column(DateTime)
    subject: Mapped[str | None] = mapped_column(String, index=True)
    body: Mapped[str] = mapped_column(Text)


class Outbox(Base):
    """Outgoing mail, stored before any network I/O (see helpdesk/mail/outbox.py)."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String, default="reply")
    ticket_id: Mapped[str | None] = mapped_column(String, index=True)
    message_id: Mapped[str] = mapped_column(String, unique=True)
    agent: Mapped[str] = mapped_column(String)
    to_addrs: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String, default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    smtp_accepted_at: Mapped[datetime | None] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
    close_after: Mapped[bool] = mapped_column(Boolean, default=False)
    sent_copy_done: Mapped[bool] = mapped_column(Boolean, default=False)
    event_done: Mapped[bool] = mapped_column(Boolean, default=False)
    meta: Mapped[str] = mapped_column(Text, default="{}")


class Template(Base):
    __tablename__ = "templates"
    name: Mapped[str] = mapped_column(String, primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    stamp: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    agent: Mapped[str | None] = mapped_column(String)


class Draft(Base):
    __tablename__ = "drafts"
    ticket_id: Mapped[str] = mapped_column(String, primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class BoardColumn(Base):
    __tablename__ = "board_columns"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    position: Mapped[int] = mapped_column(Integer)
    stamp: Mapped[int] = mapped_column(Integer, default=0)


class Card(Base):
    __tablename__ = "cards"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    column_id: Mapped[str] = mapped_column(String, default="ideas")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    created_by: Mapped[str] = mapped_column(String)
    title_stamp: Mapped[int] = mapped_column(Integer, default=0)
    column_stamp: Mapped[int] = mapped_column(Integer, default=0)
    merged_into: Mapped[str | None] = mapped_column(String)
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime)


class CardCustomer(Base):
    __tablename__ = "card_customers"
    card_id: Mapped[str] = mapped_column(String, primary_key=True)
    email: Mapped[str] = mapped_column(String, primary_key=True, index=True)
    ticket_id: Mapped[str | None] = mapped_column(String)
    quote: Mapped[str | None] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(DateTime)
    added_by: Mapped[str] = mapped_column(String)
    event_id: Mapped[str] = mapped_column(String)


class CardNotified(Base):
    __tablename__ = "card_notified"
    card_id: Mapped[str] = mapped_column(String, primary_key=True)
    email: Mapped[str] = mapped_column(String, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    message_id: Mapped[str | None] = mapped_column(String)


class Survey(Base):
    __tablename__ = "surveys"
    message_id: Mapped[str] = mapped_column(String, primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String, index=True)
    customer: Mapped[str] = mapped_column(String)
    sent_at: Mapped[datetime] = mapped_column(DateTime)


class Score(Base):
    __tablename__ = "scores"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    ticket_id: Mapped[str | None] = mapped_column(String)
    customer: Mapped[str | None] = mapped_column(String)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    source: Mapped[str] = mapped_column(String)
    agent: Mapped[str | None] = mapped_column(String)


class Cared(Base):
    __tablename__ = "cared"
    event_id: Mapped[str] = mapped_column(String, primary_key=True)
    ticket_id: Mapped[str] = mapped_column(String)
    agent: Mapped[str] = mapped_column(String)
    value: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
