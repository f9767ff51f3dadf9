"""Team-log events: the codec between an event and the small message that carries it.

One message per event in the team folder. The body is JSON::

    {"v": 1, "id": "<uuid hex>", "type": "claim", "agent": "agent-a",
     "subject": "<ticket id | customer email | card id>", "data": {...},
     "client_time": "2026-11-23T12:00:00Z"}

``client_time`` is informational only: every time that decides anything is the
server's INTERNALDATE. Decoding is strict and cheap; anything malformed,
oversized, of a future version or unknown type raises :class:`EventError`,
which replay logs and skips.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

VERSION = 1
MAX_EVENT_BYTES = 64 * 1024
NONCE_HEADER = "X-Helpdesk-Nonce"
_SAFE_SUBJECT = re.compile(r"[^\w@.+-]")
_EVENT_ID = re.compile(r"[0-9a-f]{8,64}")

# Event types this version understands (decode rejects others; replay skips them).
TYPES = frozenset({
    "claim", "renew", "release", "takeover", "status",
    "vip", "white-glove", "note", "note-delete", "profile",
    "reply-sent", "template", "template-delete",
    "card-create", "card-update", "card-add", "card-move", "card-merge", "card-notified",
    "survey-sent", "score", "cared",
})


class EventError(ValueError):
    """An event message that cannot be used (reason in the message)."""


@dataclass(frozen=True)
class Event:
    type: str
    agent: str
    subject: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    client_time: str = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0).isoformat())
    version: int = VERSION

    def to_json(self) -> str:
        return json.dumps({"v": self.version, "id": self.id, "type": self.type,
                           "agent": self.agent, "subject": self.subject, "data": self.data,
                           "client_time": self.client_time}, ensure_ascii=False,
                          separators=(",", ":"))


def encode(event: Event, nonce: str) -> bytes:
    """The message to APPEND: a clear subject, so it is no nuisance in other clients."""
    label = _SAFE_SUBJECT.sub("", event.subject)[:40]
    body = event.to_json()
    headers = [
        "From: Help desk <helpdesk@localhost.invalid>",
        "To: Help desk <helpdesk@localhost.invalid>",
        f"Subject: [helpdesk] {event.type} {label} {event.id[:6]}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: <{event.id}@helpdesk.invalid>",
        f"{NONCE_HEADER}: {nonce}",
        "X-Helpdesk-Event: " + event.type,
        "Auto-Submitted: auto-generated",
        "MIME-Version: 1.0",
        "Content-Type: application/json; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode("utf-8")


def decode_body(body: bytes) -> Event:
    """Parse the JSON body of an event message; raise :class:`EventError` if unusable."""
    if len(body) > MAX_EVENT_BYTES:
        raise EventError(f"oversized event ({len(body)} bytes)")
    try:
        obj = json.loads(body.decode("utf-8").strip())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(f"not an event ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise EventError("not an event (JSON is not an object)")
    version = obj.get("v")
    if not isinstance(version, int) or version < 1:
        raise EventError("event without a version")
    if version > VERSION:
        raise EventError(f"event from a newer version ({version})")
    etype, eid, agent, subject, data = (obj.get(k) for k in
                                        ("type", "id", "agent", "subject", "data"))
    if etype not in TYPES:
        raise EventError(f"unknown event type {etype!r}")
    if not isinstance(eid, str) or not _EVENT_ID.fullmatch(eid):
        raise EventError("event with a bad id")
    if not isinstance(agent, str) or not agent or len(agent) > 200:
        raise EventError("event without an agent")
    if not isinstance(subject, str) or len(subject) > 500:
        raise EventError("event with a bad subject")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventError("event data is not an object")
    return Event(type=etype, agent=agent, subject=subject, data=data, id=eid,
                 client_time=str(obj.get("client_time", "")), version=version)


def split_body(raw: bytes) -> bytes:
    """The body of a raw message (after the first blank line)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i >= 0:
            return raw[i + len(sep):]
    return raw
