"""Composing outgoing mail: threading headers, greeting names, saved-reply placeholders."""

from __future__ import annotations

import email.policy
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

MAX_REFERENCES = 20


@dataclass
class Outgoing:
    """Everything needed to build one message."""

    from_address: str
    from_name: str
    to: list[str]
    subject: str
    body: str
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    ticket_id: str | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)


def new_message_id(from_address: str) -> str:
    """A Message-ID without angle brackets, generated before the first send attempt."""
    domain = from_address.rpartition("@")[2] or "helpdesk.invalid"
    return make_msgid(domain=domain)[1:-1]


def text_to_html(body: str) -> str:
    """A light HTML alternative of a plain-text reply (quoted lines muted)."""
    parts: list[str] = []
    for para in re.split(r"\n\s*\n", body.strip()):
        lines = para.splitlines()
        if lines and all(line.startswith(">") for line in lines):
            inner = "<br>".join(html.escape(line.lstrip("> ")) for line in lines)
            parts.append(f'<blockquote style="color:#666;border-left:2px solid #ccc;'
                         f'margin:0;padding-left:8px">{inner}</blockquote>')
        else:
            parts.append("<p>" + "<br>".join(html.escape(line) for line in lines) + "</p>")
    return ('<!DOCTYPE html><html><body style="font-family:sans-serif;font-size:14px">'
            + "\n".join(parts) + "</body></html>")


def build(out: Outgoing, message_id: str, date: datetime | None = None) -> bytes:
    """RFC 5322 bytes: plain text with an HTML alternative, threading headers."""
    msg = EmailMessage()
    msg["From"] = formataddr((out.from_name, out.from_address)) if out.from_name \
        else out.from_address
    msg["To"] = ", ".join(out.to)
    msg["Subject"] = out.subject
    msg["Date"] = format_datetime(date or datetime.now(UTC))
    msg["Message-ID"] = f"<{message_id}>"
    if out.in_reply_to:
        msg["In-Reply-To"] = f"<{out.in_reply_to}>"
    refs = list(dict.fromkeys(out.references))
    if out.in_reply_to and out.in_reply_to not in refs:
        refs.append(out.in_reply_to)
    if len(refs) > MAX_REFERENCES:  # keep the root and the most recent ones
        refs = refs[:1] + refs[-(MAX_REFERENCES - 1):]
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    if out.ticket_id:
        msg["X-Helpdesk-Ticket"] = out.ticket_id
    for key, value in out.extra_headers.items():
        msg[key] = value
    body = out.body if out.body.endswith("\n") else out.body + "\n"
    # Quoted-printable keeps every line short whatever the text (SMTP limits lines to 998).
    msg.set_content(body, cte="quoted-printable")
    msg.add_alternative(text_to_html(body), subtype="html", cte="quoted-printable")
    return msg.as_bytes(policy=email.policy.SMTP)  # CRLF line ends, as SMTP and IMAP expect


def is_address(value: str) -> bool:
    try:
        Address(addr_spec=value)
    except (ValueError, IndexError):
        return False
    return "@" in value


def first_name(display_name: str | None, address: str | None = None) -> str | None:
    """'Chloé' from 'Chloé Dubois', 'Dubois, Chloé' or 'chloe.dubois@x' (best effort)."""
    name = (display_name or "").strip().strip('"')
    if name and "@" not in name:
        if "," in name:
            name = name.split(",", 1)[1].strip()
        if re.search(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]", name):
            return name  # CJK names: the whole name, not a guess at a given name
        token = name.split()[0] if name.split() else ""
        if token and token.lower() not in ("mr", "mrs", "ms", "dr", "mr.", "mrs.", "ms.", "dr."):
            return token
        parts = name.split()
        return parts[1] if len(parts) > 1 else None
    if address:
        local = address.split("@")[0]
        token = re.split(r"[._+-]", local)[0]
        if token.isalpha() and len(token) > 1 and token not in ("info", "support", "admin",
                                                                "contact", "noreply", "office"):
            return token.capitalize()
    return None


class _Keep(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render_placeholders(body: str, values: dict[str, str]) -> str:
    """Fill ``{first_name}``-style placeholders; unknown ones are left as written."""
    try:
        return body.format_map(_Keep(values))
    except (ValueError, IndexError, AttributeError):
        out = body
        for key, value in values.items():
            out = out.replace("{" + key + "}", value)
        return out
