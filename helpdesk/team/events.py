"""Team-log events: the codec between an event and the small message that carries it.

One message per event in the team folder. The body is JSON::

    {"v": 1, "id": "<uuid hex>", "type": "claim", "agent": "agent-a",
     "subject": "<ticket id | customer email | card id>", "data": {...},
     "client_time": "2026-11-23T12:00:00Z"}

``client_time`` is informational only: every time that decides anything is the
server's INTERNALDATE.

Anyone with the mailbox password can write any bytes into the team folder, so
:func:`decode_body` accepts any input and raises nothing but :class:`EventError`.
It checks the envelope (``v``, ``id``, ``type``, ``agent``, ``subject`` of the
right JSON type and shape) and every string anywhere in the event, ``data``
included (no NUL or other control characters, no lone surrogates, which SQLite
refuses to encode), numbers SQLite can store, and a bounded nesting depth.

It does **not** reject an event of a type this build has no handler for, or of a
newer version: such an event is well-formed, and is kept so that an upgraded
desktop folds it (see :mod:`helpdesk.team.fold`, ``Registry.understands``).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

VERSION = 1  # the version this build writes; what it folds is per type (fold.Registry)
MAX_VERSION = 2**31 - 1
MAX_EVENT_BYTES = 64 * 1024  # the JSON body
# The whole message as the server counts it (RFC822.SIZE): the body plus our dozen
# header lines, with room for headers a server may add. Larger ones are never downloaded.
MAX_MESSAGE_BYTES = MAX_EVENT_BYTES + 16 * 1024
MAX_DEPTH = 32  # nesting of lists and objects inside an event
NONCE_HEADER = "X-Helpdesk-Nonce"
_SAFE_SUBJECT = re.compile(r"[^\w@.+-]")
_EVENT_ID = re.compile(r"[0-9a-f]{8,64}")
_TYPE = re.compile(r"[a-z][a-z0-9-]{0,63}")
# Envelope strings (agent, subject, client_time) are one line of printable text.
_BAD_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Strings in ``data`` may hold tabs and line breaks, no other control characters.
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_INT64 = (-(2**63), 2**63 - 1)

# Event types this version writes (and folds: see helpdesk.team.registry).
TYPES = frozenset({
    "claim", "renew", "release", "takeover", "status",
    "vip", "white-glove", "note", "note-delete", "profile",
    "reply-sent", "template", "template-delete",
    "card-create", "card-update", "card-add", "card-move", "card-merge", "card-notified",
    "survey-sent", "score", "cared",
    "vip-tiers", "card-note",  # team settings (helpdesk.team_settings)
    "signature", "forwarded",
    "merge",  # helpdesk.team.merges
    "rota", "rota-swap", "rota-handoff", "learning", "approval-request", "approval",
    "digest-settings", "digest-sending",  # helpdesk.rota, helpdesk.digest
    "ticket-note", "assign", "snooze", "tag", "spam",  # teamwork on a ticket
    "snapshot-mark", "snapshot", "snapshot-ack", "compact", "compact-done",  # team/snapshots
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
        f"Subject: [helpdesk] {_SAFE_SUBJECT.sub('', event.type)[:64]} {label} {event.id[:6]}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: <{event.id}@helpdesk.invalid>",
        f"{NONCE_HEADER}: {nonce}",
        "X-Helpdesk-Event: " + _SAFE_SUBJECT.sub("", event.type)[:64],
        "Auto-Submitted: auto-generated",
        "MIME-Version: 1.0",
        "Content-Type: application/json; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode("utf-8")


def check_encodable(event: Event) -> None:
    """Raise :class:`EventError` if every desktop would skip ``event`` once appended
    (too large, or a string no decoder accepts): better refused than silently lost."""
    body = event.to_json().encode("utf-8", "surrogatepass")
    if len(body) > MAX_EVENT_BYTES:
        raise EventError(f"it is too large ({len(body) // 1024} KB; at most "
                         f"{MAX_EVENT_BYTES // 1024} KB)")
    decode_body(body)


def decode_body(body: bytes) -> Event:
    """Parse the JSON body of an event message; raise :class:`EventError` if unusable.

    Never raises anything else, whatever the bytes.
    """
    try:
        return _decode(body)
    except EventError:
        raise
    except Exception as exc:  # RecursionError (deep JSON), int digit limits, ...
        raise EventError(f"not an event ({type(exc).__name__})") from None


def _decode(body: bytes) -> Event:
    if len(body) > MAX_EVENT_BYTES:
        raise EventError(f"oversized event ({len(body)} bytes)")
    try:
        obj = _JSON.decode(body.decode("utf-8").strip())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(f"not an event ({type(exc).__name__})") from None
    if not isinstance(obj, dict):
        raise EventError("not an event (JSON is not an object)")
    version = obj.get("v")
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise EventError("event without a valid version")
    etype, eid, agent, subject = (obj.get(k) for k in ("type", "id", "agent", "subject"))
    if not isinstance(etype, str) or not _TYPE.fullmatch(etype):
        raise EventError("event with a bad type")
    if not isinstance(eid, str) or not _EVENT_ID.fullmatch(eid):
        raise EventError("event with a bad id")
    if not isinstance(agent, str) or not agent or len(agent) > 200 or _BAD_LINE.search(agent):
        raise EventError("event without a valid agent")
    if not isinstance(subject, str) or len(subject) > 500 or _BAD_LINE.search(subject):
        raise EventError("event with a bad subject")
    data = obj.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise EventError("event data is not an object")
    _check(data, 1)
    client_time = obj.get("client_time")
    if not isinstance(client_time, str) or len(client_time) > 64 \
            or _BAD_LINE.search(client_time):
        client_time = ""  # informational only: a bad one is dropped, not fatal
    return Event(type=etype, agent=agent, subject=subject, data=data, id=eid,
                 client_time=client_time, version=version)


def _no_constant(name: str) -> Any:
    raise EventError(f"event with a non-number ({name[:10]})")


_JSON = json.JSONDecoder(parse_constant=_no_constant)  # one decoder: json.loads with an
# argument builds a new one per call


def _check(value: Any, depth: int) -> None:
    """Every string storable and showable, every number storable, depth bounded."""
    if isinstance(value, str):
        if _BAD_TEXT.search(value):
            raise EventError("event data holds control characters or lone surrogates")
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise EventError("event data holds a number too large to store")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise EventError("event data holds a number too large to store")
    elif isinstance(value, dict | list):
        if depth > MAX_DEPTH:
            raise EventError(f"event data nested deeper than {MAX_DEPTH}")
        if isinstance(value, dict):
            for key, item in value.items():
                if len(key) > 200 or _BAD_TEXT.search(key):
                    raise EventError("event data has a bad key")
                _check(item, depth + 1)
        else:
            for item in value:
                _check(item, depth + 1)
    else:  # json.loads makes nothing else; a caller's object is refused alike
        raise EventError(f"event data holds a {type(value).__name__}")


def split_body(raw: bytes) -> bytes:
    """The body of a raw message (after the first blank line)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep)
        if i >= 0:
            return raw[i + len(sep):]
    return raw
