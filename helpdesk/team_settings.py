"""Team-wide settings that live in the team log: the VIP tier order, shipped-note texts.

Both are team state, so they are events folded like every other (never local
settings): every desktop replays the same events into the same values.

* ``vip-tiers`` (subject ``team``): ``{"tiers": ["Platinum", "Gold", ...]}``, highest
  first, the order the team set. VIP-first lists and tier pickers follow it instead of
  the alphabet. A last-writer-wins register (the log UID decides).
* ``card-note`` (subject: a card id): ``{"lang": "de", "mail_subject": ..., "body": ...}``,
  the shipped note for that card in one language, written by the team. A register per
  (card, language), last writer wins; an empty body removes that language. Texts may
  use ``{name}`` (the customer's greeting name), ``{title}``, ``{quote}``, ``{agent}``
  and ``{team}``.

Folded values are kept in the ``meta`` table under ``team.`` keys, as JSON with the
UID that set them; a rebuild of the team state forgets them with the rest. The fold
handlers are :data:`HANDLERS` (listed in :mod:`helpdesk.team.registry`); the reads and
intents take the desk (its ``store``, ``event``, ``publish`` and ``cards``). Anything
in an event may be hostile: types, lengths and language tags are checked, and a bad
event is skipped (the fold logs it) without touching the stored value.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import text as sql_text

from helpdesk.errors import HelpdeskError
from helpdesk.team.events import Event
from helpdesk.team.fold import FoldContext, FoldResult, Handlers

if TYPE_CHECKING:
    from helpdesk.changes import Changes
    from helpdesk.store import Store


class _Cards(Protocol):
    def resolve(self, card: str) -> str: ...


class Desk(Protocol):
    """What these reads and intents use of the facade (``helpdesk.desk.Desk``): a core
    module never imports the facade itself."""

    @property
    def store(self) -> Store: ...

    @property
    def cards(self) -> _Cards: ...

    def event(self, etype: str, subject: str, **data: Any) -> Event: ...

    def publish(self, *events: Event) -> tuple[Changes, FoldResult]: ...

__all__ = ["DEFAULT_TIERS", "HANDLERS", "CardNote", "card_notes", "card_notes_in", "note_for",
           "rank_of", "render_note", "set_card_note", "set_tier_order", "tier_order"]

DEFAULT_TIERS = ("Platinum", "Gold", "Silver", "VIP")
MAX_TIERS, MAX_TIER = 20, 40
MAX_NOTE_SUBJECT, MAX_NOTE_BODY = 200, 5000
TIERS_KEY = "team.vip_tiers"
NOTE_PREFIX = "team.card_note."
TEAM_SUBJECT = "team"
_LANG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")

CardNote = dict[str, str]  # {"lang", "subject", "body"}

HANDLERS = Handlers("team settings")


# --- values --------------------------------------------------------------------------

def clean_tiers(tiers: Any) -> list[str]:
    """Tier names, highest first: one line each, no blanks or repeats (case-blind)."""
    if not isinstance(tiers, list | tuple):
        raise ValueError("tiers is not a list")
    out: list[str] = []
    seen: set[str] = set()
    for tier in tiers:
        if not isinstance(tier, str):
            raise ValueError("a tier is not a string")
        name = " ".join(tier.split())[:MAX_TIER]
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            out.append(name)
    if not out or len(out) > MAX_TIERS:
        raise ValueError(f"a tier order has 1 to {MAX_TIERS} tiers")
    return out


def clean_lang(lang: Any) -> str:
    """A language tag like ``de`` or ``pt-br`` (lower case)."""
    if not isinstance(lang, str) or not _LANG.match(lang.strip().lower()):
        raise ValueError("not a language tag like 'de' or 'pt-br'")
    return lang.strip().lower()


def rank_of(order: Sequence[str], tier: str | None) -> int:
    """Where ``tier`` stands in the team's order (0 highest); unknown tiers come last."""
    if not tier:
        return len(order) + 1
    folded = tier.casefold()
    return next((i for i, t in enumerate(order) if t.casefold() == folded), len(order))


# --- fold ----------------------------------------------------------------------------

def meta_stamp(cur: sqlite3.Cursor, key: str) -> int:
    row = cur.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if not row or not row[0]:
        return 0
    try:
        return int(json.loads(row[0]).get("uid", 0))
    except (ValueError, TypeError, AttributeError):
        return 0


def put_meta(cur: sqlite3.Cursor, key: str, value: Mapping[str, Any], uid: int) -> bool:
    """Last writer wins: store ``value`` unless a later event already set ``key``."""
    if uid < meta_stamp(cur, key):
        return False
    cur.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps({**value, "uid": uid}, ensure_ascii=False)))
    return True


@HANDLERS.on("vip-tiers")
def _vip_tiers(ctx: FoldContext) -> None:
    tiers = clean_tiers(ctx.event.data["tiers"])
    if put_meta(ctx.cur, TIERS_KEY, {"tiers": tiers}, ctx.uid):
        ctx.result.tickets.add("*")  # VIP-first lists re-sort everywhere


@HANDLERS.on("card-note")
def _card_note(ctx: FoldContext) -> None:
    card = str(ctx.event.subject)
    if not re.fullmatch(r"[0-9a-f]{8,64}", card):
        raise ValueError("not a card id")
    data = ctx.event.data
    lang = clean_lang(data["lang"])
    subject = " ".join(str(data.get("mail_subject") or "").split())[:MAX_NOTE_SUBJECT]
    body = str(data.get("body") or "").strip()[:MAX_NOTE_BODY]
    if put_meta(ctx.cur, f"{NOTE_PREFIX}{card}.{lang}",
            {"lang": lang, "subject": subject, "body": body}, ctx.uid):
        ctx.result.cards = True


@HANDLERS.reset
def _reset(cur: sqlite3.Cursor) -> None:
    cur.execute("DELETE FROM meta WHERE key = ? OR key LIKE ?", (TIERS_KEY, NOTE_PREFIX + "%"))


# --- reading and setting -------------------------------------------------------------

def _read(store: Store, key: str) -> dict[str, Any] | None:
    with store.read() as conn:
        value = conn.execute(sql_text("SELECT value FROM meta WHERE key = :k"),
                             {"k": key}).scalar()
    if not value:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def tier_order(desk: Desk) -> list[str]:
    """The VIP tiers, highest first, as the team set them (else the default order)."""
    data = _read(desk.store, TIERS_KEY)
    try:
        return clean_tiers(data["tiers"]) if data else list(DEFAULT_TIERS)
    except (KeyError, ValueError):
        return list(DEFAULT_TIERS)


def set_tier_order(desk: Desk, tiers: Iterable[str]) -> Changes:
    """Publish the team's tier order (highest first) for every desktop."""
    try:
        order = clean_tiers(list(tiers))
    except ValueError as exc:
        raise HelpdeskError(f"The tier order is not valid: {exc}.") from None
    return desk.publish(desk.event("vip-tiers", TEAM_SUBJECT, tiers=order))[0]


def card_notes(desk: Desk, card_id: str) -> list[CardNote]:
    """The shipped-note texts the team wrote for a card, one per language, by language."""
    return card_notes_in(desk.store, desk.cards.resolve(card_id))


def card_notes_in(store: Store, root: str) -> list[CardNote]:
    """:func:`card_notes` for a board card id already resolved (the cards service)."""
    prefix = f"{NOTE_PREFIX}{root}."
    with store.read() as conn:
        rows = conn.execute(sql_text("SELECT value FROM meta WHERE key LIKE :p ORDER BY key"),
                            {"p": prefix + "%"}).scalars().all()
    notes: list[CardNote] = []
    for value in rows:
        try:
            data = json.loads(value or "")
            note = {"lang": clean_lang(data["lang"]), "subject": str(data["subject"]),
                    "body": str(data["body"])}
        except (ValueError, KeyError, TypeError):
            continue
        if note["body"]:
            notes.append(note)
    return notes


def set_card_note(desk: Desk, card_id: str, lang: str, subject: str, body: str) -> Changes:
    """Publish a card's shipped note in ``lang`` (an empty body removes that language)."""
    root = desk.cards.resolve(card_id)
    try:
        tag = clean_lang(lang)
    except ValueError as exc:
        raise HelpdeskError(f"'{lang}' is {exc}.") from None
    return desk.publish(desk.event("card-note", root, lang=tag, mail_subject=subject.strip(),
                                   body=body.strip()))[0]


def note_for(notes: Sequence[CardNote], lang: str | None) -> CardNote | None:
    """The text for ``lang`` (``pt-br`` falls back to ``pt``), else None (the default)."""
    if not lang:
        return None
    tag = lang.lower()
    by_lang = {n["lang"]: n for n in notes}
    return by_lang.get(tag) or by_lang.get(tag.split("-")[0])


def render_note(note: CardNote, *, name: str, title: str, quote: str, agent: str,
                team: str) -> dict[str, str]:
    """A team text with its placeholders filled; anything else in braces stays as typed
    (plain replacement: no format mini-language on team-log text)."""
    values = {"name": name, "title": title, "quote": quote, "agent": agent, "team": team}

    def fill(text: str) -> str:
        return re.sub(r"\{(name|title|quote|agent|team)\}", lambda m: values[m.group(1)],
                      text)

    return {"subject": fill(note["subject"] or title), "body": fill(note["body"])}
