"""Conversation keys: which ticket a message belongs to, computed the same on every desktop.

The ticket id is a pure function of the message, so desktops agree without any
coordination and regardless of the order in which they see mail:

1. a ``[#xxxxxxxx]`` token in the subject (our replies carry it) names the ticket;
2. else the thread root: first ``References`` id, else ``In-Reply-To``, else the
   message's own ``Message-ID``;
3. else a hash of stable header fields (for mail without any id).

The ticket id is the first 8 base32 characters of SHA-256 of that key.
"""

from __future__ import annotations

import base64
import hashlib
import re

from helpdesk.mail.parse import ParsedMessage

TICKET_ID_RE = re.compile(r"^[a-z2-7]{8}$")
_TOKEN_RE = re.compile(r"\[#([a-z2-7]{8})\]", re.IGNORECASE)
_PREFIX_RE = re.compile(
    r"^\s*((re|fw|fwd|aw|wg|sv|vs|antw|rif|tr|odp|r|res|enc|回复|转发|답장)\s*(\[\d+\])?\s*[:：]\s*)+",
    re.IGNORECASE)


def ticket_id_for_key(key: str) -> str:
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    # Base32 maps each 5 bytes to 8 characters: the first 5 bytes give the id.
    return base64.b32encode(digest[:5]).decode("ascii").lower()


def subject_token(subject: str) -> str | None:
    """The ticket id named by a ``[#id]`` token in ``subject``, if any."""
    m = _TOKEN_RE.search(subject or "")
    return m.group(1).lower() if m else None


def strip_subject(subject: str) -> str:
    """The subject without reply/forward prefixes and without our ticket token."""
    s = _TOKEN_RE.sub("", subject or "")
    return _PREFIX_RE.sub("", s).strip()


def reply_subject(subject: str, ticket_id: str) -> str:
    """``Re: <subject> [#id]``, never stacking ``Re: Re:`` or tokens."""
    base = strip_subject(subject) or "(no subject)"
    return f"Re: {base} [#{ticket_id}]"


def thread_key(msg: ParsedMessage) -> str:
    """The conversation key of ``msg`` (see module docstring)."""
    if msg.references:
        return "id:" + msg.references[0]
    if msg.in_reply_to:
        return "id:" + msg.in_reply_to
    if msg.message_id:
        return "id:" + msg.message_id
    stable = "\x1f".join([
        msg.from_addr or "", msg.date.isoformat() if msg.date else "",
        strip_subject(msg.subject), ",".join(a for _n, a in msg.to), msg.text[:2000]])
    return "hash:" + hashlib.sha256(stable.encode("utf-8", "surrogatepass")).hexdigest()


def ticket_for(msg: ParsedMessage) -> tuple[str, str]:
    """(ticket id, thread key) for ``msg``."""
    token = subject_token(msg.subject)
    if token:
        return token, "token:" + token
    key = thread_key(msg)
    return ticket_id_for_key(key), key


def dedup_key(msg: ParsedMessage, raw: bytes) -> str:
    """Identity of a message across folders and UIDVALIDITY resets.

    Message-ID plus a few stable headers (some senders reuse Message-IDs for
    different mail); a hash of the raw bytes for mail without a Message-ID.
    """
    if msg.message_id:
        stable = "\x1f".join([msg.message_id, msg.from_addr or "",
                              msg.date.isoformat() if msg.date else "", msg.subject])
        return "mid:" + hashlib.sha256(stable.encode("utf-8", "surrogatepass")).hexdigest()
    return "raw:" + hashlib.sha256(raw).hexdigest()


_ORIGINAL_RE = re.compile(r"^(-{2,}\s*(original message|ursprüngliche nachricht|"
                          r"message d'origine)\s*-{2,})", re.IGNORECASE)
_WROTE_RE = re.compile(r"^(on|am|le|el|il|op)\b.{0,200}(wrote|schrieb|a écrit|escribió|"
                       r"scrisse|schreef)\s*:\s*$", re.IGNORECASE)
_FROM_RE = re.compile(r"^from:\s", re.IGNORECASE)


def quoted_stripped(text: str, enough: int | None = None) -> str:
    """Text without quoted earlier mail (for snippets and score detection).

    With ``enough``, stops once that many characters are kept (a snippet needs few).
    """
    out: list[str] = []
    kept = 0
    for line in text.splitlines():
        s = line.strip()
        if s.startswith(">"):
            continue
        if s.startswith("-") and _ORIGINAL_RE.match(s):
            break
        if s[:2].lower() in ("on", "am", "le", "el", "il", "op") and _WROTE_RE.match(s):
            break
        if out and s[:5].lower() == "from:" and _FROM_RE.match(s):
            break
        out.append(line)
        kept += len(s)
        if enough is not None and kept > enough:
            break
    return "\n".join(out).strip()


_SPACES_RE = re.compile(r"\s+")


def snippet(text: str, length: int = 140) -> str:
    short = _SPACES_RE.sub(" ", quoted_stripped(text, enough=length))
    if len(short) <= length:  # blank-heavy lines: the early stop may have kept too little
        short = _SPACES_RE.sub(" ", quoted_stripped(text))
    return short[:length].strip()
