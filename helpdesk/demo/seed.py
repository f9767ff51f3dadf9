"""The demo mailbox's contents: sample mail with shifted dates, and the seeded team log."""


from __future__ import annotations

import contextlib
import email.utils
import json
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from helpdesk.demo.state import INBOX, NEWEST_AGE, RESOURCES, SENT_FOLDER, TEAM_FOLDER, DemoError
from helpdesk.team.events import Event, encode


def team_seed(resources: Path = RESOURCES) -> list[dict[str, Any]]:
    """The initial team state (VIPs, white-glove, notes, cards) from ``team.json``."""
    data = json.loads((resources / "team.json").read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise DemoError("resources/demo/team.json must hold a list of objects.")
    return [item for item in data if isinstance(item, dict)]



# --- demo mail ---------------------------------------------------------------------

_DATE_LINE_RE = re.compile(
    rb"^(Date|Arrival-Date|Last-Attempt-Date|Resent-Date):[ \t]*"
    rb"([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class DemoMessage:
    folder: str
    name: str
    raw: bytes  # CRLF line endings, dates shifted
    date: datetime  # aware; the shifted Date header (used as INTERNALDATE)
    flags: tuple[bytes, ...]


def _parse_date(value: bytes) -> datetime | None:
    text = re.sub(r"\s+", " ", value.decode("ascii", "replace")).strip()
    try:
        dt = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None or dt.tzinfo is None:
        return None
    return dt


def _header_date(raw: bytes) -> datetime | None:
    head = raw.split(b"\r\n\r\n", 1)[0]
    m = re.search(rb"^Date:[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head,
                  re.MULTILINE | re.IGNORECASE)
    return _parse_date(m.group(1)) if m else None


def shift_dates(raw: bytes, delta: timedelta) -> bytes:
    """``raw`` with every parseable Date-like header line moved by ``delta``.

    Covers the message's own Date, and dates in embedded headers (the returned
    message in a bounce, its Arrival-Date). Each keeps its own UTC offset.
    """
    def repl(m: re.Match[bytes]) -> bytes:
        dt = _parse_date(m.group(2))
        if dt is None:
            return m.group(0)
        return m.group(1) + b": " + email.utils.format_datetime(dt + delta).encode("ascii")

    return _DATE_LINE_RE.sub(repl, raw)


def _crlf(raw: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", raw)


def load_demo_messages(resources: Path = RESOURCES, now: datetime | None = None,
                       ) -> list[DemoMessage]:
    """Read the demo mail, shifted so the newest message is :data:`NEWEST_AGE` old.

    ``mail/`` goes to INBOX, ``sent/`` to Sent; each folder in file-name order.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    files: list[tuple[str, Path]] = []
    for sub, folder in (("mail", INBOX), ("sent", SENT_FOLDER)):
        files += [(folder, p) for p in sorted((resources / sub).glob("*.eml"))]
    if not files:
        raise DemoError(f"No demo mail found in {resources}.")
    raws = [(folder, path, _crlf(path.read_bytes())) for folder, path in files]
    dates = [d for _f, _p, raw in raws if (d := _header_date(raw)) is not None]
    newest = max(dates) if dates else now - NEWEST_AGE
    delta = (now - NEWEST_AGE) - newest
    delta = timedelta(minutes=round(delta.total_seconds() / 60))
    recent = now - timedelta(days=1)
    out: list[DemoMessage] = []
    for folder, path, raw in raws:
        shifted = shift_dates(raw, delta)
        date = _header_date(shifted) or (now - NEWEST_AGE)
        seen = folder == SENT_FOLDER or date < recent
        out.append(DemoMessage(folder, path.name, shifted, date,
                               (b"\\Seen",) if seen else ()))
    return out


def fill_mailbox(host: str, port: int, username: str, password: str,
                 messages: Sequence[DemoMessage]) -> int:
    """APPEND ``messages`` (creating folders as needed); returns how many went in."""
    import imapclient

    client = imapclient.IMAPClient(host, port, ssl=False, timeout=30)
    # imapclient writes a command in pieces; without NODELAY each APPEND waits
    # for the server's delayed ACK (~40 ms).
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        client.login(username, password)
        for folder in dict.fromkeys(m.folder for m in messages):
            if not client.folder_exists(folder):
                client.create_folder(folder)
        for m in messages:
            client.append(m.folder, m.raw, m.flags, msg_time=m.date)
        return len(messages)
    finally:
        with contextlib.suppress(Exception):
            client.logout()


def seed_events(messages: Sequence[DemoMessage], seed: list[dict[str, Any]]) -> list[Event]:
    """Team-log events for the demo's starting state (VIPs, notes, feedback cards)."""
    from helpdesk.mail.conversations import ticket_for
    from helpdesk.mail.parse import parse_message

    tickets: dict[str, str] = {}
    for m in messages:
        if m.folder == INBOX:
            parsed = parse_message(m.raw)
            if parsed.from_addr and parsed.from_addr not in tickets:
                tickets[parsed.from_addr] = ticket_for(parsed)[0]
    agent = "demo-lead"
    events: list[Event] = []
    for item in seed:
        kind, who = item.get("type"), str(item.get("customer", ""))
        if kind == "vip":
            events.append(Event("vip", agent, who, {"vip": bool(item.get("vip", True)),
                                                    "tier": item.get("tier")}))
        elif kind == "white-glove":
            events.append(Event("white-glove", agent, who, {"on": bool(item.get("on", True))}))
        elif kind == "note":
            data = {k: item[k] for k in ("text", "preferred_name", "birthday", "heard_from")
                    if item.get(k)}
            events.append(Event("note", agent, who, data))
        elif kind == "card":
            events.extend(card_seed_events(agent, item, tickets))
    return events


def card_seed_events(agent: str, item: dict[str, Any], tickets: dict[str, str]) -> list[Event]:
    """card-create plus one card-add per customer who asked (see helpdesk/cards/)."""
    import uuid

    card_id = uuid.uuid4().hex
    out = [Event("card-create", agent, card_id, {
        "title": item.get("title", ""), "description": item.get("description", ""),
        "column": item.get("column", "ideas")})]
    for address in item.get("requested_by", []):
        out.append(Event("card-add", agent, card_id, {
            "email": address, "ticket": tickets.get(address), "quote": None}))
    return out


def seed_team_log(host: str, port: int, username: str, password: str,
                  messages: Sequence[DemoMessage], seed: list[dict[str, Any]]) -> int:
    """APPEND the demo's starting team state to the team log folder."""
    import imapclient

    events = seed_events(messages, seed)
    client = imapclient.IMAPClient(host, port, ssl=False, timeout=30)
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        client.login(username, password)
        if not client.folder_exists(TEAM_FOLDER):
            client.create_folder(TEAM_FOLDER)
        for event in events:
            client.append(TEAM_FOLDER, encode(event, event.id), [b"\\Seen"])
        return len(events)
    finally:
        with contextlib.suppress(Exception):
            client.logout()
