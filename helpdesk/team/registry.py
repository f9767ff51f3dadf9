"""Every module's fold handlers, listed explicitly, and the team state they write.

Which handlers run never depends on which modules happen to be imported: the fold
(:mod:`helpdesk.team.fold`) looks event types up in :data:`REGISTRY`, built from
this one list. What this build understands (each type's newest version) is part of
the registry too: an event it does not understand is kept for a build that does.

:data:`STATE` declares the team state a snapshot carries (see
:mod:`helpdesk.team.state`): a table a fold handler writes is one line here. A test
folds every event type and fails if the fold writes a table or column not covered.
"""

from __future__ import annotations

from helpdesk import outgoing, team_settings
from helpdesk.cards import fold as cards
from helpdesk.digest import fold as digest
from helpdesk.metrics import fold as metrics
from helpdesk.rota import fold as rota
from helpdesk.team import claims, merges, registers, snapshots, ticket_marks, ticket_notes
from helpdesk.team.fold import Handler, Handlers, Registry
from helpdesk.team.state import TeamTable

# Team settings kept in ``meta`` (last-writer-wins registers): exact keys and prefixes.
_META_KEYS = (team_settings.TIERS_KEY, rota.ROTA_KEY, digest.SETTINGS_KEY)
_META_PREFIXES = (team_settings.NOTE_PREFIX, rota.SWAP_PREFIX, rota.LEARNING_PREFIX)

TABLES: tuple[Handlers, ...] = (claims.HANDLERS, registers.HANDLERS, cards.HANDLERS,
                                metrics.HANDLERS, team_settings.HANDLERS, outgoing.HANDLERS,
                                merges.HANDLERS, rota.HANDLERS, digest.HANDLERS,
                                ticket_notes.HANDLERS, ticket_marks.HANDLERS,
                                snapshots.HANDLERS)
REGISTRY: Registry = Registry.of(TABLES)
HANDLERS: dict[str, Handler] = REGISTRY.handlers

_STAMPS = ("vip_stamp", "white_glove_stamp", "preferred_name_stamp", "birthday_stamp",
           "heard_from_stamp")
_OWN = "(" + ", ".join(f"'{t}'" for t in snapshots.TYPES) + ")"
_WINDOW = f":mark - {snapshots.DUPLICATE_WINDOW}"
# Of the log's history, what readers need: the last 1,000 events whole (a retried APPEND
# seen again after the mark is still a duplicate); of older status events what metrics
# read (when, by whom, which ticket, the status: not the id or the rest of the body); the
# ids and order of the events notes, cards, scores and cared checks came from (without
# their bodies).
_KEPT_EVENTS = f"uid < :mark AND type NOT IN {_OWN} AND uid > {_WINDOW}"
_OLD_STATUS = f"uid <= {_WINDOW} AND type = 'status'"
# A status event's body as metrics read it (json_valid: a refused event's body is kept
# as it came); restored as an event id no real one can be (ids are hex) and a body
# holding only the status.
_STATUS = ("status", "CASE WHEN json_valid(body) THEN json_extract(body, '$.data.status') END")
_STATUS_BACK = (("event_id", "'~' || ?1"),
                ("body", "'{\"data\":{\"status\":' || json_quote(?6) || '}}'"))
_KEPT_IDS = (f"uid <= {_WINDOW} AND type IN ('note', 'card-create', 'card-add', 'score', "
             "'cared')")

STATE: tuple[TeamTable, ...] = (
    TeamTable("ticket_state", ("ticket_id",), (
        "ticket_id", "status", "status_stamp", "status_at", "closed_at", "claimed_by",
        "claim_event", "claimed_at", "claim_active_at", "claim_lease")),
    # History (``later``: a desktop joining from a snapshot stores it after the rest, and
    # is useful meanwhile): cared answers, customer notes, old status changes, event ids.
    TeamTable("cared", ("event_id",), ("event_id", "ticket_id", "agent", "value", "at"),
              later=True),
    TeamTable("customers", ("email",), (
        "email", "organisation", "vip", "vip_tier", "vip_stamp", "white_glove",
        "white_glove_stamp", "preferred_name", "preferred_name_stamp", "birthday",
        "birthday_stamp", "heard_from", "heard_from_stamp"),
        where=" OR ".join(f"{s} > 0" for s in _STAMPS)
        + " OR email IN (SELECT customer_email FROM notes)", restore="upsert"),
    TeamTable("notes", ("id",), ("id", "customer_email", "agent", "text", "at", "deleted"),
              later=True),
    TeamTable("templates", ("name",), ("name", "body", "stamp", "deleted", "agent")),
    TeamTable("board_columns", ("id",), ("id", "name", "position", "stamp")),
    TeamTable("cards", ("id",), (
        "id", "title", "description", "column_id", "created_at", "updated_at", "created_by",
        "title_stamp", "column_stamp", "merged_into", "shipped_at")),
    TeamTable("card_customers", ("card_id", "email"), (
        "card_id", "email", "ticket_id", "quote", "added_at", "added_by", "event_id")),
    TeamTable("card_notified", ("card_id", "email"), ("card_id", "email", "at", "message_id")),
    TeamTable("surveys", ("message_id",), ("message_id", "ticket_id", "customer", "sent_at")),
    TeamTable("scores", ("id",), (
        "id", "ticket_id", "customer", "score", "comment", "at", "source", "agent"),
        where="source != 'email'"),
    TeamTable("signatures", ("scope",), ("scope", "body", "stamp", "agent")),
    TeamTable("forwards", ("event_id",), (
        "event_id", "ticket_id", "agent", "message_id", "to_addrs", "at")),
    TeamTable("meta", ("key",), ("key", "value"),
              where=" OR ".join([f"key = '{k}'" for k in _META_KEYS]
                                + [f"key LIKE '{p}%'" for p in _META_PREFIXES])),
    # merge TICKET INTO (helpdesk/team/merges.py); thread aliases are derived from the mail
    # on every desktop, and a desktop that loads a snapshot places its messages after it.
    TeamTable("ticket_merges", ("ticket_id",), ("ticket_id", "into_id", "uid", "agent", "at")),
    # Teamwork on a ticket (helpdesk/team/ticket_notes.py, ticket_marks.py).
    TeamTable("ticket_notes", ("event_id",), (
        "event_id", "ticket_id", "agent", "text", "at", "uid", "mentions")),
    TeamTable("ticket_mentions", ("agent", "ticket_id"), (
        "agent", "ticket_id", "note_id", "by_agent", "uid", "at")),
    TeamTable("ticket_work", ("ticket_id",), (
        "ticket_id", "assignee", "assigned_by", "assigned_at", "assign_stamp",
        "snoozed_until", "snoozed_at", "snoozed_by", "snooze_stamp")),
    TeamTable("ticket_tags", ("ticket_id", "tag"), ("ticket_id", "tag", "stamp")),
    TeamTable("spam_blocks", ("pattern",), (
        "pattern", "kind", "active", "stamp", "agent", "at", "ticket_id")),
    # The rota's hand-offs, the digest's sendings, newcomers' approvals (helpdesk/rota,
    # helpdesk/digest).
    TeamTable("rota_handoffs", ("ticket_id",), (
        "ticket_id", "agent", "day", "at", "uid", "event_id", "by_agent")),
    TeamTable("digests", ("period",), ("period", "message_id", "agent", "at", "uid")),
    TeamTable("approval_requests", ("message_id",), (
        "message_id", "ticket_id", "agent", "subject", "to_addrs", "text", "attachments",
        "at", "uid")),
    TeamTable("approvals", ("message_id",), ("message_id", "agent", "at", "uid")),
    TeamTable("team_events", ("uid",), (
        "uid", "event_id", "type", "agent", "at", "subject", "body"), where=_KEPT_EVENTS),
    TeamTable("team_events", ("uid",), ("uid", "type", "agent", "at", "subject"),
              where=_OLD_STATUS, label="team_events_status", derived=(_STATUS,),
              rebuilt=_STATUS_BACK, later=True),
    TeamTable("team_events", ("uid",), ("uid", "event_id", "type", "agent", "at", "subject"),
              where=_KEPT_IDS, label="team_events_ids", fill=(("body", "{}"),), later=True),
    # The log's own snapshot and compaction events just before the mark, and the mark
    # itself, without their bodies: so that one appended again after the mark is still a
    # duplicate on a desktop that loaded the snapshot.
    TeamTable("team_events", ("uid",), ("uid", "event_id", "type", "agent", "at", "subject"),
              where=f"uid <= :mark AND uid > {_WINDOW} AND type IN {_OWN}",
              label="team_events_own", fill=(("body", "{}"),)),
    TeamTable("team_pending", ("uid",), (
        "uid", "event_id", "type", "v", "agent", "at", "subject", "body"), where="uid < :mark"),
    TeamTable("team_snapshot_marks", ("uid",), ("uid", "agent", "at"), where="uid < :mark"),
    TeamTable("team_compactions", ("uid",), (
        "uid", "event_id", "agent", "mark", "at", "lease", "done"), where="uid < :mark"),
)
