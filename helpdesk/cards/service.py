"""The feedback board's reads and intents (``desk.cards``): every change is a team-log event."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import text as sql_text

from helpdesk import team_settings
from helpdesk.cards import rank as card_rank
from helpdesk.cards.export import FORMATS, board_csv, board_markdown
from helpdesk.cards.fold import (
    _GROUP,
    _ROOT,
    _TREE,
    COLUMN_SUBJECT,
    MAX_COLUMN_NAME,
    MAX_DESCRIPTION,
    MAX_QUOTE,
    MAX_TITLE,
    SHIPPED,
    SORTS,
    Sort,
    _block,
    _line,
    _title_key,
)
from helpdesk.cards.notify import _draft, _greeting_name
from helpdesk.changes import Changes
from helpdesk.errors import HelpdeskError, NotFoundError
from helpdesk.mail.compose import new_message_id
from helpdesk.replies import Replies
from helpdesk.session import Session, intent
from helpdesk.team.events import Event
from helpdesk.tickets import TicketBook

log = logging.getLogger(__name__)


# --- the facade --------------------------------------------------------------------

@dataclass(frozen=True)
class CardMatch:
    """A card as the picker ranks it for a ticket (``score`` 0-100, higher is better)."""

    id: str
    title: str
    description: str
    column: str
    votes: int
    score: float
    has_customer: bool  # this ticket's customer is already on the card

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: Any) -> str | None:
    from helpdesk.clock import iso
    return iso(value)


def _like_fold(value: str | None) -> str:
    return card_rank.normalise(value or "")


def _like_pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class FeedbackCards:
    """Cards for one desk: reading is local; every change is a team-log event."""

    def __init__(self, session: Session, book: TicketBook, replies: Replies) -> None:
        self.session = session
        self.book = book
        self.replies = replies

    # --- reading -----------------------------------------------------------------

    def columns(self) -> list[dict[str, Any]]:
        """The board's columns in order: ``{id, name, position}``."""
        with self.session.store.read() as conn:
            return [dict(r) for r in conn.execute(sql_text(
                "SELECT id, name, position FROM board_columns ORDER BY position, id")).mappings()]

    def resolve(self, card: str) -> str:
        """The board card named by an id or unambiguous id prefix (>= 4 characters).

        A card merged into another resolves to the card it went into.
        """
        cid = card.strip().lstrip("#").lower()
        with self.session.store.read() as conn:
            found = [r[0] for r in conn.execute(sql_text("SELECT id FROM cards WHERE id = :c"),
                                                {"c": cid})]
            if not found and len(cid) >= 4:
                found = [r[0] for r in conn.execute(sql_text(
                    "SELECT id FROM cards WHERE id LIKE :p ESCAPE '\\' LIMIT 2"),
                    {"p": _like_pattern(cid)[1:]})]
            if len(found) > 1:
                raise NotFoundError(f"'{card}' names more than one card; give more of its id.")
            if found:
                root = conn.execute(sql_text(_ROOT), {"id": found[0]}).scalar()
                if root:
                    return str(root)
        raise NotFoundError(f"No card '{card}'. List cards with 'cards'.")

    def resolve_column(self, column: str) -> str:
        """A column id from its id or its (current) name, any case."""
        want = card_rank.normalise(column).replace(" ", "-")
        columns = self.columns()
        for c in columns:
            if want in (c["id"], card_rank.normalise(c["name"]).replace(" ", "-")):
                return str(c["id"])
        names = ", ".join(f"{c['id']} ({c['name']})" for c in columns)
        raise NotFoundError(f"No column '{column}'. Columns: {names}.")

    def cards(self, search: str = "", sort: Sort = "votes") -> list[dict[str, Any]]:
        """Board cards (merged ones left out), most votes first or oldest first.

        ``votes`` counts distinct customers, including those of merged cards.
        ``search`` matches words in the title, description or a customer's address,
        ignoring case and accents.
        """
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {SORTS}")
        words = card_rank.normalise(search).split()
        params: dict[str, Any] = {}
        where = ""
        for i, word in enumerate(words):
            params[f"w{i}"] = _like_pattern(word)
            where += (f" AND (hd_fold(c.title) LIKE :w{i} ESCAPE '\\' "
                      f"OR hd_fold(c.description) LIKE :w{i} ESCAPE '\\' "
                      f"OR EXISTS (SELECT 1 FROM card_customers cc JOIN tree t "
                      f"ON t.id = cc.card_id WHERE t.root = c.id "
                      f"AND cc.email LIKE :w{i} ESCAPE '\\'))")
        order = "votes DESC, c.updated_at DESC, e.uid DESC" if sort == "votes" \
            else "c.created_at, e.uid"
        with self.session.store.read() as conn:
            self._register_functions(conn)
            rows = [dict(r) for r in conn.execute(sql_text(
                f"{_TREE}, votes(root, n) AS (SELECT tree.root, count(DISTINCT cc.email) "
                f"FROM card_customers cc JOIN tree ON tree.id = cc.card_id GROUP BY tree.root) "
                f"SELECT c.id, c.title, c.description, c.column_id, c.created_at, c.updated_at, "
                f"coalesce(v.n, 0) AS votes FROM cards c LEFT JOIN votes v ON v.root = c.id "
                f"LEFT JOIN team_events e ON e.event_id = c.id "
                f"WHERE c.merged_into IS NULL{where} ORDER BY {order}"), params).mappings()]
            customers = self._members(conn, (
                "SELECT cc.card_id, cc.email, e.uid FROM card_customers cc "
                "LEFT JOIN team_events e ON e.event_id = cc.event_id"))
            notified = self._members(conn, "SELECT card_id, email, at FROM card_notified")
        return [{
            "id": r["id"], "title": r["title"], "description": r["description"],
            "column": r["column_id"], "votes": int(r["votes"]),
            "customers": customers.get(r["id"], []), "notified": notified.get(r["id"], []),
            "created_at": _iso(r["created_at"]), "updated_at": _iso(r["updated_at"]),
        } for r in rows]

    @staticmethod
    def _register_functions(conn: Connection) -> None:
        raw = conn.connection.driver_connection
        if raw is not None:
            raw.create_function("hd_fold", 1, _like_fold, deterministic=True)

    @staticmethod
    def _members(conn: Connection, select: str) -> dict[str, list[str]]:
        """Board card id -> emails from ``select`` (rows of card id, email), in order."""
        out: dict[str, list[str]] = {}
        for root, email in conn.execute(sql_text(
                f"{_TREE}, m(card_id, email, ord) AS ({select}) "
                f"SELECT tree.root, m.email FROM m JOIN tree ON tree.id = m.card_id "
                f"GROUP BY tree.root, m.email ORDER BY min(m.ord), m.email")):
            out.setdefault(root, []).append(email)
        return out

    def card(self, card_id: str) -> dict[str, Any]:
        """One card with every customer: ``{email, name, preferred_name, ticket_id, quote,
        added_at, added_by, notified_at}``, in the order they were added."""
        root = self.resolve(card_id)
        with self.session.store.read() as conn:
            row = conn.execute(sql_text(
                "SELECT c.*, b.name AS column_name FROM cards c "
                "LEFT JOIN board_columns b ON b.id = c.column_id WHERE c.id = :id"),
                {"id": root}).mappings().one()
            group = {"root": root}
            adds = conn.execute(sql_text(
                f"{_GROUP} SELECT cc.email, cc.ticket_id, cc.quote, cc.added_at, cc.added_by, "
                f"cu.name, cu.preferred_name FROM card_customers cc "
                f"JOIN grp ON grp.id = cc.card_id "
                f"LEFT JOIN team_events e ON e.event_id = cc.event_id "
                f"LEFT JOIN customers cu ON cu.email = cc.email "
                f"ORDER BY e.uid, cc.added_at"), group).mappings().all()
            told = {r["email"]: r["at"] for r in conn.execute(sql_text(
                f"{_GROUP} SELECT n.email, min(n.at) AS at FROM card_notified n "
                f"JOIN grp ON grp.id = n.card_id GROUP BY n.email"), group).mappings()}
            merged = [dict(r) for r in conn.execute(sql_text(
                f"{_GROUP} SELECT c.id, c.title FROM cards c JOIN grp ON grp.id = c.id "
                f"WHERE c.id != :root ORDER BY c.created_at"), group).mappings()]
        customers: dict[str, dict[str, Any]] = {}
        for a in adds:
            seen = customers.get(a["email"])
            if seen is None:
                customers[a["email"]] = {
                    "email": a["email"], "name": a["name"], "preferred_name": a["preferred_name"],
                    "ticket_id": a["ticket_id"], "quote": a["quote"],
                    "added_at": _iso(a["added_at"]), "added_by": a["added_by"],
                    "notified_at": _iso(told.get(a["email"]))}
            elif not seen["quote"] and a["quote"]:
                seen.update(quote=a["quote"], ticket_id=a["ticket_id"] or seen["ticket_id"])
        return {
            "id": root, "title": row["title"], "description": row["description"],
            "column": row["column_id"], "column_name": row["column_name"],
            "votes": len(customers), "customers": list(customers.values()),
            "notified": [e for e in customers if e in told],
            "merged": merged, "created_by": row["created_by"],
            "created_at": _iso(row["created_at"]), "updated_at": _iso(row["updated_at"]),
            "shipped_at": _iso(row["shipped_at"]),
        }

    def rank(self, ticket_id: str, limit: int = 20) -> list[CardMatch]:
        """Board cards ranked by how well they match the ticket (see :mod:`card_rank`)."""
        ticket = self.book.ticket(ticket_id)
        first = next((m for m in ticket["messages"]
                      if m["direction"] == "in" and m["auto"] in (None, "none")),
                     ticket["messages"][0] if ticket["messages"] else None)
        subject, body = card_rank.ticket_query(ticket["subject"] or "",
                                               first["text"] if first else "")
        cards = self.cards()
        ranked = card_rank.rank(subject, body,
                                (card_rank.CardText(c["id"], c["title"], c["description"])
                                 for c in cards))
        by_id = {c["id"]: c for c in cards}
        customer = (ticket["customer"] or "").lower()
        # Equal scores (often 0: nothing in common) fall back to the most asked-for card.
        ranked.sort(key=lambda pair: (-pair[1], -by_id[pair[0]]["votes"]))
        return [CardMatch(cid, by_id[cid]["title"], by_id[cid]["description"],
                          by_id[cid]["column"], by_id[cid]["votes"], score,
                          customer in by_id[cid]["customers"])
                for cid, score in ranked[:limit]]

    def find_by_title(self, title: str) -> str | None:
        """The board card with this title (any case, accents aside), oldest first."""
        key = _title_key(title)
        with self.session.store.read() as conn:
            for cid, other in conn.execute(sql_text(
                    "SELECT c.id, c.title FROM cards c LEFT JOIN team_events e "
                    "ON e.event_id = c.id WHERE c.merged_into IS NULL ORDER BY e.uid")):
                if _title_key(other) == key:
                    return str(cid)
        return None

    def export(self, fmt: str) -> str:
        """The board as ``csv`` or ``md`` (Markdown)."""
        if fmt not in FORMATS:
            raise HelpdeskError(f"Export format must be one of: {', '.join(FORMATS)}.")
        columns, cards = self.columns(), self.cards()
        return board_csv(columns, cards) if fmt == "csv" else board_markdown(columns, cards)

    # --- changing (every change is a team-log event) -------------------------------

    def _title(self, title: str | None) -> str:
        clean = _line(title, MAX_TITLE)
        if not clean:
            raise HelpdeskError("A card needs a title.")
        return clean

    @intent
    def create(self, title: str, description: str = "", column: str = "ideas",
               by_title: bool = False) -> str:
        """A new card (no customer yet); returns its id."""
        card_id = uuid.uuid4().hex
        column = self.resolve_column(column)
        self.session.publish(self._create_event(card_id, self._title(title), description, column,
                                             by_title))
        return self.resolve(card_id)

    def _create_event(self, card_id: str, title: str, description: str, column: str,
                      by_title: bool) -> Event:
        """The card id is the id of the event that creates it."""
        data: dict[str, Any] = {"title": title,
                                "description": _block(description, MAX_DESCRIPTION),
                                "column": column}
        if by_title:
            data["by_title"] = True
        return Event(type="card-create", agent=self.session.agent, subject=card_id, data=data,
                     id=card_id)

    @intent
    def add(self, ticket_id: str, card_id: str | None = None, title: str | None = None,
            quote: str | None = None, description: str = "") -> str:
        """Record the ticket's customer (with the ticket and an optional quote) on a card.

        ``card_id`` names an existing card; else ``title`` finds a card with that title
        or creates it. Returns the id of the board card the customer now counts for.
        """
        ticket = self.book.ticket(ticket_id)
        email = (ticket["customer"] or "").strip().lower()
        if "@" not in email:
            raise HelpdeskError(f"Ticket {ticket['id']} has no customer address to record.")
        events = []
        if card_id:
            target = self.resolve(card_id)
        elif title is not None and title.strip():
            clean = self._title(title)
            found = self.find_by_title(clean)
            if found:
                target = found
            else:
                target = uuid.uuid4().hex
                events.append(self._create_event(target, clean, description, "ideas", True))
        else:
            raise HelpdeskError("Name a card (its id) or a title for a new card.")
        data: dict[str, Any] = {"email": email, "ticket": ticket["id"]}
        if quote and quote.strip():
            data["quote"] = _block(quote, MAX_QUOTE)
        events.append(self.session.event("card-add", target, **data))
        self.session.publish(*events)
        return self.resolve(target)

    @intent
    def move(self, card_id: str, column_id: str) -> Changes:
        cid, column = self.resolve(card_id), self.resolve_column(column_id)
        return self.session.publish(self.session.event("card-move", cid, column=column))[0]

    @intent
    def rename_column(self, column_id: str, name: str) -> Changes:
        column, clean = self.resolve_column(column_id), _line(name, MAX_COLUMN_NAME)
        if not clean:
            raise HelpdeskError("A column needs a name.")
        return self.session.publish(self.session.event("card-update", COLUMN_SUBJECT + column,
                                                 name=clean))[0]

    @intent
    def update(self, card_id: str, title: str | None = None,
               description: str | None = None) -> Changes:
        cid = self.resolve(card_id)
        data: dict[str, Any] = {}
        if title is not None:
            data["title"] = self._title(title)
        if description is not None:
            data["description"] = _block(description, MAX_DESCRIPTION)
        if not data:
            return Changes(set(), set())
        return self.session.publish(self.session.event("card-update", cid, **data))[0]

    @intent
    def merge(self, card_id: str, into_id: str) -> Changes:
        """Merge ``card_id`` into ``into_id``: every customer kept, counted once."""
        cid, into = self.resolve(card_id), self.resolve(into_id)
        if cid == into:
            raise HelpdeskError("A card cannot be merged into itself.")
        return self.session.publish(self.session.event("card-merge", cid, into=into))[0]

    @intent
    def ship(self, card_id: str, notify: bool = False) -> list[int]:
        """Move the card to Shipped; with ``notify`` queue the close-the-loop emails.

        Returns the outbox ids of the queued emails (the next sync sends them).
        """
        cid = self.resolve(card_id)
        if self.card(cid)["column"] != SHIPPED:
            self.move(cid, SHIPPED)
        if not notify:
            return []
        return self.send_notifications(cid, self.notification_drafts(cid))

    # --- close the loop ------------------------------------------------------------

    def notification_drafts(self, card_id: str, languages: Mapping[str, str] | None = None
                            ) -> list[dict[str, Any]]:
        """One personalised email per customer of the card not yet told it shipped.

        ``languages`` maps a customer's address to a language tag: their draft uses the
        team's text for that language (:mod:`helpdesk.team_settings`) when the team wrote
        one, else the default text. Each draft says which: ``lang`` (None: the default)
        and ``languages`` (the card's texts).
        """
        card = self.card(card_id)
        team = self.session.profile.smtp.from_name or "The support team"
        notes = team_settings.card_notes_in(self.session.store, card["id"])
        chosen = {k.strip().lower(): v for k, v in (languages or {}).items()}
        drafts = []
        for c in card["customers"]:
            if c["notified_at"]:
                continue
            note = team_settings.note_for(notes, chosen.get(c["email"]))
            text = _draft(card, c, self.session.agent, team) if note is None else \
                team_settings.render_note(note, name=_greeting_name(c), title=card["title"],
                                          quote=(c.get("quote") or "").strip(),
                                          agent=self.session.agent, team=team)
            drafts.append({"email": c["email"], "name": _greeting_name(c),
                           "ticket_id": c["ticket_id"], **text,
                           "lang": note["lang"] if note else None,
                           "languages": [n["lang"] for n in notes]})
        return drafts

    def cards_of(self, email: str) -> list[dict[str, Any]]:
        """The board cards a customer is on (merged cards count for their board card):
        ``{id, title, column, column_name, quote}``, most recently added first."""
        address = email.strip().lower()
        with self.session.store.read() as conn:
            rows = conn.execute(sql_text(
                f"{_TREE} SELECT tree.root AS id, c.title, c.column_id AS column_id, "
                f"b.name AS column_name, cc.quote, max(cc.added_at) AS added_at "
                f"FROM card_customers cc JOIN tree ON tree.id = cc.card_id "
                f"JOIN cards c ON c.id = tree.root "
                f"LEFT JOIN board_columns b ON b.id = c.column_id "
                f"WHERE cc.email = :email GROUP BY tree.root ORDER BY added_at DESC"),
                {"email": address}).mappings().all()
        return [{"id": r["id"], "title": r["title"], "column": r["column_id"],
                 "column_name": r["column_name"], "quote": r["quote"]} for r in rows]

    @intent
    def send_notifications(self, card_id: str, drafts: Iterable[Mapping[str, Any]]) -> list[int]:
        """Queue the (possibly edited) drafts through the outbox, each customer once ever.

        First a ``card-notified`` event per customer is published and folded; only the
        customers whose winning event (first in log order) is ours get mail from this
        desktop, so two desktops sending at once never tell anyone twice.
        """
        card = self.card(card_id)
        root = card["id"]
        on_card = {c["email"]: c for c in card["customers"] if not c["notified_at"]}
        sender = self.session.profile.smtp.from_address
        planned: list[tuple[str, str, Mapping[str, Any]]] = []
        for draft in drafts:
            email = str(draft.get("email", "")).strip().lower()
            if email not in on_card:
                log.warning("card %s: not notifying %s (not on the card, or already told)",
                            root[:8], email)
                continue
            if any(email == p[0] for p in planned):
                continue
            # Planned before the mail exists: it tells our winning event from a teammate's,
            # and it is the Message-ID the notification goes out with.
            planned.append((email, new_message_id(sender), draft))
        if not planned:
            return []
        # Each mail is stored (staged) before its card-notified event is published, and
        # goes only if that event is the first for the customer in log order: never
        # told twice, never marked told without a mail.
        staged = [self.replies.queue_mail(
            kind="notify", to=email, subject=str(draft["subject"]), body=str(draft["body"]),
            ticket_id=on_card[email]["ticket_id"], meta={"card": root}, message_id=mid,
            publish=[self.session.event("card-notified", root, email=email, message_id=mid,
                                        ticket=on_card[email]["ticket_id"])],
            resolve=False)[0] for email, mid, draft in planned]
        queued = self.replies.resolve_staged(staged)
        for (email, _mid, _d), item_id in zip(planned, staged, strict=True):
            if item_id not in queued:
                log.info("card %s: %s was already told by a teammate", root[:8], email)
        return queued
