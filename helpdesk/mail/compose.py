"""Composing outgoing mail: MIME, threading headers, quoting, greeting names, placeholders.

:func:`build` makes the bytes that are stored in the outbox and sent: a plain-text
part and an HTML alternative (the agent's formatting, sanitised with
helpdesk/mail/html/, with a plain text that says the same: lists, links, emphasis),
the answered message quoted below it in both (or a forwarded message's header block),
and attachments with RFC 2231 file names (any Unicode, any length). Bcc recipients
are never given to it: they exist only in the SMTP envelope.
"""

from __future__ import annotations

import email.errors
import email.policy
import html
import mimetypes
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, make_msgid
from html.parser import HTMLParser

from helpdesk.errors import HelpdeskError

MAX_REFERENCES = 20
_HEADER_BREAKS = re.compile(r"[\r\n\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]+")


@dataclass(frozen=True)
class FileAttachment:
    """A file to send: its name as the recipient sees it, MIME type and bytes."""

    filename: str
    content_type: str
    data: bytes

    @staticmethod
    def of(filename: str, data: bytes, content_type: str | None = None) -> FileAttachment:
        name = safe_filename(filename)
        ctype = (content_type or mimetypes.guess_type(name)[0]
                 or "application/octet-stream").lower()
        if not re.fullmatch(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*", ctype):
            ctype = "application/octet-stream"
        return FileAttachment(name, ctype, data)


@dataclass(frozen=True)
class Quote:
    """The message quoted below a reply (``style`` "reply") or forwarded inline ("forward")."""

    text: str
    html: str | None = None
    from_name: str | None = None
    from_addr: str | None = None
    date: datetime | None = None
    subject: str = ""
    to: str = ""
    style: str = "reply"

    def attribution(self) -> str:
        name = _one_line(self.from_name or "").strip('"')
        addr = self.from_addr or ""
        who = (f"{name} <{addr}>" if name and addr else name or addr or "someone")
        if self.style == "forward":
            lines = ["---------- Forwarded message ---------", f"From: {who}"]
            if self.date:
                lines.append(f"Date: {format_datetime(self.date)}")
            lines.append(f"Subject: {self.subject}")
            if self.to:
                lines.append(f"To: {self.to}")
            return "\n".join(_one_line(x) for x in lines)
        when = f"On {self.date.strftime('%a, %d %b %Y at %H:%M')}, " if self.date else ""
        return _one_line(f"{when}{who} wrote:")


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
    cc: list[str] = field(default_factory=list)
    #: The agent's formatted text (composer HTML, any markup: it is sanitised); the
    #: plain part is then made from it and ``body`` is not used for the plain part.
    html: str | None = None
    attachments: list[FileAttachment] = field(default_factory=list)
    quote: Quote | None = None
    #: The signature, below the text and above the quote ("-- " line in plain text).
    signature: str = ""


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
    """RFC 5322 bytes: plain text with an HTML alternative (quote included), threading
    headers, attachments. Bcc is not an input: it is never in the headers."""
    msg = EmailMessage()
    msg["From"] = formataddr((_one_line(out.from_name), out.from_address)) if out.from_name \
        else out.from_address
    msg["To"] = ", ".join(out.to)
    if out.cc:
        msg["Cc"] = ", ".join(out.cc)
    msg["Subject"] = _one_line(out.subject)
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
    plain, markup = bodies(out)
    # Quoted-printable keeps every line short whatever the text (SMTP limits lines to 998).
    msg.set_content(plain, cte="quoted-printable")
    msg.add_alternative(markup, subtype="html", cte="quoted-printable")
    for att in out.attachments:
        maintype, _, subtype = att.content_type.partition("/")
        # Always base64: the bytes arrive exactly as they were, text files included.
        msg.add_attachment(att.data, maintype=maintype, subtype=subtype,
                           filename=att.filename, cte="base64")
        parts = msg.get_payload()
        if isinstance(parts, list) and isinstance(parts[-1], EmailMessage):
            parts[-1].set_param("name", att.filename)  # for clients that read only this
    return msg.as_bytes(policy=email.policy.SMTP)  # CRLF line ends, as SMTP and IMAP expect


_HTML_START = ('<!DOCTYPE html><html><body style="font-family:sans-serif;font-size:14px">')
_QUOTE_STYLE = "margin:0 0 0 0.8ex;border-left:2px solid #ccc;padding-left:1ex;color:#555"


def bodies(out: Outgoing) -> tuple[str, str]:
    """(plain text, HTML) of a message: the text, the signature, the quote."""
    from helpdesk.mail.html import sanitize

    if out.html is not None and out.html.strip():
        safe = sanitize(out.html).html
        plain = html_to_plain(safe)
        inner = safe
    else:
        plain = out.body.rstrip("\n")
        inner = _text_fragment(plain)
    plain = plain.rstrip() + "\n"
    if out.signature.strip():
        sig = out.signature.strip("\n")
        plain += "\n-- \n" + sig + "\n"
        inner += '<div class="signature">-- <br>' + _text_fragment(sig, paragraphs=False) \
            + "</div>"
    if out.quote is not None:
        q = out.quote
        head = q.attribution()
        if q.style == "forward":
            plain += "\n" + head + "\n\n" + q.text.rstrip() + "\n"
        else:
            plain += "\n" + head + "\n" + quote_lines(q.text) + "\n"
        quoted = sanitize(q.html).html if q.html and q.html.strip() else \
            _text_fragment(q.text.rstrip())
        head_html = "<br>".join(html.escape(line) for line in head.splitlines())
        if q.style == "forward":
            inner += (f'<div class="forwarded"><p>{head_html}</p>{quoted}</div>')
        else:
            inner += (f'<div class="quote"><p>{head_html}</p><blockquote type="cite" '
                      f'style="{_QUOTE_STYLE}">{quoted}</blockquote></div>')
    return plain, _HTML_START + inner + "</body></html>"


def _text_fragment(text: str, paragraphs: bool = True) -> str:
    if not paragraphs:
        return "<br>".join(html.escape(line) for line in text.splitlines())
    return text_to_html(text).removeprefix(_HTML_START).removesuffix("</body></html>")


def quote_lines(text: str) -> str:
    """``text`` quoted the way mail clients expect: ``> `` before each line."""
    return "\n".join(">" + (" " + line if line and not line.startswith(">") else line)
                     for line in text.rstrip().splitlines())


_TIGHT = re.compile(r"margin-top:0(px|em|pt)?(;|$)")
_TIGHT_END = re.compile(r"margin-bottom:0(px|em|pt)?(;|$)")


class _Plain(HTMLParser):
    """Sanitised HTML to a plain text that says the same (lists, links, emphasis)."""

    _BLOCKS = frozenset({"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr",
                         "pre", "hr", "section", "article", "header", "footer"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.lists: list[list[int]] = []  # per open list: [kind (0 ul, 1 ol), counter]
        self.links: list[str | None] = []
        self.link_text: list[int] = []
        self.marks: list[str] = []  # per open tag: the emphasis mark it closes with
        self.quote = 0
        self.pre = 0
        # Per open block: whether it is "tight" (no margins: Qt's rich text writes one
        # paragraph per line), so it ends with a line break, not an empty line.
        self.blocks: list[bool] = []

    def _newline(self, blank: bool = False) -> None:
        text = "".join(self.out)
        if not text:
            return
        want = "\n\n" if blank else "\n"
        trailing = len(text) - len(text.rstrip("\n"))
        if trailing < len(want):
            self.out.append(want[trailing:])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        style = (dict(attrs).get("style") or "").replace(" ", "").lower()
        if tag == "br":
            self.out.append("\n")
        elif tag in ("ul", "ol"):
            self._newline(blank=not self.lists)
            start = dict(attrs).get("start")
            self.lists.append([1 if tag == "ol" else 0,
                               int(start) - 1 if start and start.isdigit() else 0])
        elif tag == "li":
            self._newline()
            kind = self.lists[-1] if self.lists else [0, 0]
            kind[1] += 1
            indent = "   " * max(0, len(self.lists) - 1)
            self.out.append(indent + (f"{kind[1]}. " if kind[0] else "- "))
        elif tag == "blockquote":
            self._newline(blank=True)
            self.quote += 1
        elif tag in self._BLOCKS:
            tight = tag in ("div", "tr") or bool(_TIGHT.search(style) and _TIGHT_END.search(style))
            self.blocks.append(tight)
            self._newline(blank=not tight)
            if tag == "pre":
                self.pre += 1
        if tag == "a":
            self.links.append(dict(attrs).get("href"))
            self.link_text.append(len("".join(self.out)))
        mark = ""
        if tag in ("b", "strong") or "font-weight:bold" in style or \
                re.search(r"font-weight:[6-9]00", style):
            mark = "*"
        elif tag in ("i", "em") or "font-style:italic" in style:
            mark = "_"
        if tag not in ("br", "img", "hr", "wbr"):
            self.marks.append(mark)
            if mark:
                self.out.append(mark)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("br", "img", "hr", "wbr"):
            return
        if self.marks:
            mark = self.marks.pop()
            if mark:
                self.out.append(mark)
        if tag == "a" and self.links:
            href = self.links.pop()
            start = self.link_text.pop()
            shown = "".join(self.out)[start:].strip("*_ ")
            target = (href or "").removeprefix("mailto:")
            if href and shown not in (target, href):
                self.out.append(f" <{target}>")
        elif tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self._newline(blank=not self.lists)
        elif tag == "blockquote":
            self.quote = max(0, self.quote - 1)
            self._newline(blank=True)
        elif tag in self._BLOCKS:
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
            tight = self.blocks.pop() if self.blocks else tag in ("div", "tr")
            self._newline(blank=not tight)

    def handle_data(self, data: str) -> None:
        if not self.pre:
            data = re.sub(r"\s+", " ", data)
            text = "".join(self.out)
            if not text or text.endswith(("\n", " ")):
                data = data.lstrip()
        if data:
            self.out.append(data)

    def text(self) -> str:
        lines = "".join(self.out).splitlines()
        return "\n".join(line.rstrip() for line in lines).strip("\n")


def html_to_plain(markup: str) -> str:
    """The plain-text alternative of (sanitised) composer HTML."""
    parser = _Plain()
    parser.feed(markup)
    parser.close()
    return parser.text()


def _one_line(value: str) -> str:
    return _HEADER_BREAKS.sub(" ", value or "").strip()


def safe_filename(name: str) -> str:
    """A file name fit for a header and for the recipient's disk: no path, no controls."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(c for c in unicodedata.normalize("NFC", base)
                   if unicodedata.category(c)[0] != "C")
    base = base.strip().strip(".") or "attachment"
    return base[:200]


def addresses(values: list[str] | tuple[str, ...]) -> list[str]:
    """Plain addresses from what a person typed (``a@x, Bo <b@y>``), each checked,
    in order, each once (compared without case). Raises HelpdeskError naming the
    first one that is not an address: nothing is queued with a bad recipient."""
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        if _HEADER_BREAKS.search(value.replace("\n", "").replace("\r", "")) or \
                "\r" in value:
            raise HelpdeskError(f"{value!r} is not an e-mail address.")
        for piece in re.split(r"[\n;]", value):
            if not piece.strip():
                continue
            found = getaddresses([piece])
            if not found or not any(addr for _n, addr in found):
                raise HelpdeskError(f"'{piece.strip()}' is not an e-mail address.")
            for _name, addr in found:
                addr = addr.strip()
                if not addr:
                    continue
                if not is_address(addr):
                    raise HelpdeskError(f"'{addr}' is not an e-mail address.")
                if addr.lower() not in seen:
                    seen.add(addr.lower())
                    out.append(addr)
    return out


def is_address(value: str) -> bool:
    if not value or _HEADER_BREAKS.search(value) or " " in value or "," in value:
        return False
    try:
        parsed = Address(addr_spec=value)
    except (ValueError, IndexError, TypeError, email.errors.HeaderParseError):
        return False
    local, _, domain = value.rpartition("@")
    return (bool(local and domain and parsed.addr_spec) and "." in domain.strip(".")) \
        or domain == "localhost"


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
