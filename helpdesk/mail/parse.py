"""Best-effort MIME parsing that never raises.

Mail in a support inbox is often broken: wrong or unknown charsets, raw 8-bit
headers, missing boundaries, headers that make the stdlib ``email`` package
raise. :func:`parse_message` always returns a :class:`ParsedMessage`; what it
could not decode exactly is listed in ``defects`` (and the caller keeps the raw
bytes for such messages).

We parse with the ``compat32`` policy, which records defects instead of raising,
and decode every header and body ourselves with explicit fallbacks:
declared charset -> UTF-8 -> Windows-1252 (which also decodes any byte).
"""

from __future__ import annotations

import codecs
import email
import email.header
import email.utils
import html as html_lib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.policy import compat32
from html.parser import HTMLParser
from typing import Any

from helpdesk.mail.fastmime import ParsedPart, fast_tree

_ID_RE = re.compile(r"<([^<>]+)>")
_WS_RE = re.compile(r"\s+")
_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FOLD_RE = re.compile(r"\r?\n[ \t]+")
_SURROGATE_RE = re.compile("[\udc80-\udcff]")  # raw 8-bit bytes, surrogate-escaped
MAX_HEADER_CHARS = 4000

# Charsets whose labels commonly lie: decode with the superset browsers use.
_CHARSET_SUPERSETS = {
    "iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "us-ascii": "cp1252",
    "ascii": "cp1252", "iso8859-1": "cp1252", "shift_jis": "cp932", "shift-jis": "cp932",
    "sjis": "cp932", "x-sjis": "cp932", "gb2312": "gb18030", "gbk": "gb18030",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "iso-8859-9": "cp1254",
    "utf8": "utf-8", "unicode-1-1-utf-7": "utf-7",
}


@dataclass
class Attachment:
    index: int
    filename: str
    content_type: str
    size: int
    content_id: str | None = None
    inline: bool = False

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"index": self.index, "filename": self.filename,
                             "content_type": self.content_type, "size": self.size}
        if self.content_id:
            d["content_id"] = self.content_id
        if self.inline:
            d["inline"] = True
        return d


@dataclass
class ParsedMessage:
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    subject: str = ""
    from_addr: str | None = None
    from_name: str | None = None
    reply_to: str | None = None
    to: list[tuple[str, str]] = field(default_factory=list)
    cc: list[tuple[str, str]] = field(default_factory=list)
    date: datetime | None = None
    text: str = ""
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    auto_kind: str = "none"  # none | auto-reply | bounce | list
    defects: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


# --- decoding helpers ----------------------------------------------------------

def lookup_codec(charset: str | None) -> str | None:
    """Map a declared charset label to a Python codec name, or None if unknown."""
    if not charset:
        return None
    label = charset.strip().strip('"').lower()
    label = _CHARSET_SUPERSETS.get(label, label)
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):
        return None


def decode_bytes(data: bytes, charset: str | None, defects: list[str] | None = None) -> str:
    """Decode ``data`` declared as ``charset`` with fallbacks; note problems in ``defects``."""
    codec = lookup_codec(charset)
    if charset and codec is None and defects is not None:
        defects.append(f"unknown charset {charset.strip()[:40]!r}")
    if codec:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            if defects is not None:
                defects.append(f"text not valid {charset}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if codec and codec != "utf-8":
        return data.decode(codec, "replace")
    if codec == "utf-8" or charset is None:
        # Undeclared 8-bit or broken UTF-8: the Windows-1252 guess reads most real mail.
        if defects is not None and charset is None and any(b > 127 for b in data):
            defects.append("undeclared 8-bit text")
        if codec == "utf-8":
            return data.decode("utf-8", "replace")
    return data.decode("cp1252", "replace")


def _raw_header_to_str(value: Any) -> str:
    """Turn a compat32 header value (str with surrogates, or Header) into text."""
    if isinstance(value, email.header.Header):
        try:
            return str(value)
        except Exception:
            value = value.encode()
    text = str(value)
    if _SURROGATE_RE.search(text):
        raw = text.encode("ascii", "surrogateescape")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp1252", "replace")
    return text


def decode_header_value(value: Any, defects: list[str] | None = None) -> str:
    """Decode a header: raw 8-bit, RFC 2047 words (any charset), folding, control chars."""
    if value is None:
        return ""
    text = _FOLD_RE.sub(" ", _raw_header_to_str(value))
    if len(text) > MAX_HEADER_CHARS:
        text = text[:MAX_HEADER_CHARS]
        if defects is not None:
            defects.append("overlong header truncated")
    if "=?" in text:
        try:
            chunks = email.header.decode_header(text)
            parts: list[str] = []
            for chunk, charset in chunks:
                if isinstance(chunk, bytes):
                    if charset is None:
                        parts.append(_raw_header_to_str(chunk.decode("ascii", "surrogateescape")))
                    else:
                        parts.append(decode_bytes(chunk, charset, defects))
                else:
                    parts.append(chunk)
            text = "".join(parts)
        except Exception as exc:  # the stdlib raises on some malformed words
            if defects is not None:
                defects.append(f"undecodable encoded word ({type(exc).__name__})")
    text = _CTRL_RE.sub("", text).replace("\r", "").replace("\n", " ")
    return text.strip()


# Plain mailboxes: 'a@b', 'Name <a@b>', '"Name, Jr." <a@b>' (no comments, no groups, no
# escapes, no routes). For these, getaddresses' answer is known without its tokenizer.
_ADDR = r"[A-Za-z0-9_%+'-]+(?:\.[A-Za-z0-9_%+'-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_BARE_MAILBOX = re.compile(rf"[ \t]*({_ADDR})[ \t]*")
_NAMED_MAILBOX = re.compile(
    r'[ \t]*(?:"([^"\\\r\n]*)"[ \t]*'  # a quoted name, or words each ended by blanks or '<'
    r'|((?:[^\s()<>@,:;"\[\]\\]+(?:[ \t]+|(?=<)))*))'
    rf"<({_ADDR})>[ \t]*")


def _simple_addresses(raw: str) -> list[tuple[str, str]] | None:
    """``email.utils.getaddresses([raw])`` for plain mailbox lists, else None."""
    pieces = [raw] if '"' in raw else raw.split(",")
    out: list[tuple[str, str]] = []
    for piece in pieces:
        m = _BARE_MAILBOX.fullmatch(piece)
        if m:
            out.append(("", m.group(1)))
            continue
        m = _NAMED_MAILBOX.fullmatch(piece)
        if m is None:
            return None
        name = m.group(1) if m.group(1) is not None else " ".join(m.group(2).split())
        out.append((name, m.group(3)))
    return out


def parse_addresses(value: Any, defects: list[str] | None = None) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs; entries without an address are dropped."""
    if value is None:
        return []
    raw = _FOLD_RE.sub(" ", _raw_header_to_str(value))[:MAX_HEADER_CHARS]
    pairs = _simple_addresses(raw)
    if pairs is None:
        try:
            pairs = email.utils.getaddresses([raw])
        except Exception:
            pairs = []
    out: list[tuple[str, str]] = []
    for name, addr in pairs:
        addr = _CTRL_RE.sub("", addr).strip().strip("<>").lower()
        if "@" not in addr or addr.startswith("@") or addr.endswith("@") or " " in addr:
            continue
        out.append((decode_header_value(name, defects), addr))
    if not out and raw.strip():
        # Last resort: anything that looks like an address.
        m = re.search(r"[\w.+'-]+@[\w-]+(\.[\w-]+)+", decode_header_value(raw))
        if m:
            out.append(("", m.group(0).lower()))
        elif defects is not None:
            defects.append("unparseable address header")
    return out


def parse_ids(value: Any) -> list[str]:
    """Message-IDs in a header, in order, without angle brackets or comments."""
    if value is None:
        return []
    text = _raw_header_to_str(value)
    ids = _ID_RE.findall(text)
    if not ids:
        bare = text.strip().split()
        ids = [bare[0]] if bare and "@" in bare[0] else []
    return [i.strip()[:500] for i in ids if i.strip()]


def parse_date(value: Any) -> datetime | None:
    """A naive UTC datetime, or None when the header is absent or nonsense."""
    if value is None:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(_raw_header_to_str(value))
    except Exception:
        return None
    if dt is None:
        return None
    try:
        if dt.tzinfo is not None:
            dt = dt.astimezone(UTC).replace(tzinfo=None)
    except (OverflowError, ValueError):
        return None
    if not 1970 <= dt.year <= 2200:
        return None
    return dt


class _TextExtractor(HTMLParser):
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table",
              "blockquote", "pre", "hr", "ul", "ol"}
    _SKIP = {"script", "style", "head", "title", "noscript", "template"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip += 1
        elif tag in self._BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def html_to_text(markup: str) -> str:
    """Readable plain text from HTML (for search, snippets and the text fallback)."""
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
        text = "".join(parser.out)
    except Exception:
        text = html_lib.unescape(re.sub(r"<[^>]*>", " ", markup))
    lines = [_WS_RE.sub(" ", line).strip() for line in text.replace("\xa0", " ").splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


# --- classification ------------------------------------------------------------

def classify_auto(msg: Message, from_addr: str | None,
                  headers: _RawHeaders | None = None) -> str:
    """'bounce', 'auto-reply', 'list', 'forward' (one of our forwards) or 'none' (so
    machines are not counted as customers, and a forward not as an answer)."""
    ctype = (msg.get_content_type() or "").lower()
    local = (from_addr or "").split("@")[0]
    if ctype == "multipart/report" or local in ("mailer-daemon", "postmaster"):
        return "bounce"
    for part in msg.walk():
        if part.get_content_type() in ("message/delivery-status", "message/feedback-report"):
            return "bounce"
    h = headers or _RawHeaders(msg, [])
    if str(h.get("X-Helpdesk-Kind") or "").strip().lower() == "forward":
        return "forward"  # our forward to a colleague or vendor: not an answer, not a customer
    auto_submitted = str(h.get("Auto-Submitted") or "").strip().lower()
    precedence = str(h.get("Precedence") or "").strip().lower()
    if (auto_submitted and auto_submitted != "no") or h.get("X-Autoreply") \
            or h.get("X-Autorespond") or precedence == "auto_reply":
        return "auto-reply"
    if h.get("List-Id") or h.get("List-Unsubscribe") or precedence in ("list", "bulk", "junk"):
        return "list"
    return "none"


# --- the parser ----------------------------------------------------------------

def _safe(call: Any, default: Any) -> Any:
    try:
        return call()
    except Exception:
        return default


def _walk_leaves(msg: Message, defects: list[str]) -> list[Message]:
    leaves: list[Message] = []
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > 30:
            defects.append("MIME nesting too deep")
            continue
        payload = _safe(part.get_payload, None)
        if part.is_multipart() and isinstance(payload, list):
            stack.extend((p, depth + 1) for p in reversed(payload) if isinstance(p, Message))
        else:
            leaves.append(part)
    return leaves


def _filename(part: Message, defects: list[str]) -> str | None:
    name = _safe(part.get_filename, None)
    if name is None:
        name = _safe(lambda: part.get_param("name"), None)
        if isinstance(name, tuple):
            name = _safe(lambda: email.utils.collapse_rfc2231_value(name), None)
    if name is None:
        return None
    return decode_header_value(name, defects) or None


Leaf = tuple[str, Message, str, str | None]
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/\r\n"


def _decoded(part: Message) -> bytes:
    """The part's body with its transfer encoding undone (raw text if that fails)."""
    payload = _safe(lambda: part.get_payload(decode=True), None)
    if isinstance(payload, bytes):
        return payload
    raw_payload = _safe(part.get_payload, "")
    return raw_payload.encode("utf-8", "surrogateescape") if isinstance(raw_payload, str) else b""


def _decoded_size(part: Message) -> int:
    """``len(_decoded(part))``, without decoding well-formed base64 (attachment sizes).

    Well formed, as the stdlib decoder checks it: only the base64 alphabet once line
    ends are removed, a length that is a multiple of 4, and at most two ``=`` at the end.
    """
    payload = getattr(part, "_payload", None)  # the body as parsed, undecoded
    if isinstance(payload, str) and \
            str(part.get("content-transfer-encoding", "")).lower() == "base64":
        data = payload.encode("ascii", "surrogateescape")
        padding = len(data.translate(None, _BASE64_ALPHABET))
        length = len(data) - data.count(b"\n") - data.count(b"\r")
        if padding == data.count(b"=") and padding <= 2 and length % 4 == 0 and \
                data[len(data.rstrip(b"\r\n=")):].count(b"=") == padding:
            return length // 4 * 3 - padding
    return len(_decoded(part))


def _leaf_kinds(msg: Message, defects: list[str]) -> Iterator[Leaf]:
    """Yield (kind, part, content type, filename) for every leaf worth keeping.

    kind is 'text', 'html', 'embedded' (headers of forwarded/bounced mail) or
    'attachment'; attachments come in the order that numbers them.
    """
    for part in _walk_leaves(msg, defects):
        ctype = (_safe(part.get_content_type, "text/plain") or "text/plain").lower()
        disposition = (_safe(part.get_content_disposition, None) or "").lower()
        filename = _filename(part, defects)
        is_attachment = disposition == "attachment" or (
            filename is not None and not ctype.startswith("text/"))
        if ctype in ("text/plain", "text/html") and not is_attachment:
            yield ("html" if ctype == "text/html" else "text"), part, ctype, filename
        elif ctype.startswith("multipart/"):
            # A multipart whose boundary is missing or never used: its body is the text.
            yield "text", part, ctype, filename
        elif ctype.startswith("text/") and filename is None and disposition != "attachment":
            continue  # an unnamed alternative rendering (text/calendar, text/enriched)
        elif ctype == "text/rfc822-headers" or ctype.startswith("message/"):
            yield "embedded", part, ctype, filename
        elif filename or _decoded_size(part):
            yield "attachment", part, ctype, filename


def _parse_body(msg: Message, parsed: ParsedMessage, defects: list[str]) -> None:
    texts: list[str] = []
    htmls: list[str] = []
    index = 0
    for kind, part, ctype, filename in _leaf_kinds(msg, defects):
        if kind in ("text", "html"):
            decoded = decode_bytes(_decoded(part), _safe(part.get_content_charset, None),
                                   defects)
            (htmls if kind == "html" else texts).append(decoded)
        elif kind == "embedded":
            texts.append(decode_bytes(_decoded(part), "utf-8"))
        else:
            disposition = (_safe(part.get_content_disposition, None) or "").lower()
            cid = parse_ids(part.get("Content-ID"))
            parsed.attachments.append(Attachment(
                index=index, filename=filename or f"part-{index + 1}.{ctype.split('/')[-1][:8]}",
                content_type=ctype, size=_decoded_size(part), content_id=cid[0] if cid else None,
                inline=disposition == "inline" or (not disposition and bool(cid))))
            index += 1
    parsed.text = "\n\n".join(t.strip("\r\n") for t in texts if t.strip())
    parsed.html = "\n".join(htmls) if htmls else None
    if not parsed.text and parsed.html:
        parsed.text = html_to_text(parsed.html)
    parsed.text = parsed.text.replace("\r\n", "\n").replace("\x00", "")


def _message_tree(raw: bytes) -> Message:
    """The compat32 tree: built fast for well-formed mail, by the stdlib otherwise."""
    return fast_tree(raw) or email.message_from_bytes(raw, ParsedPart, policy=compat32)


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse ``raw`` (RFC 5322 bytes). Never raises; see module docstring."""
    defects: list[str] = []
    parsed = ParsedMessage()
    try:
        msg = _message_tree(raw)
    except Exception as exc:  # pragma: no cover - compat32 parser is very tolerant
        parsed.defects = [f"unparseable message ({type(exc).__name__})"]
        parsed.text = decode_bytes(raw, None)
        return parsed
    try:
        _fill(msg, parsed, defects)
    except Exception as exc:
        defects.append(f"parser error ({type(exc).__name__}: {str(exc)[:80]})")
        if not parsed.text:
            parsed.text = decode_bytes(raw, None)
    for d in _safe(lambda: list(msg.defects), []):
        defects.append(type(d).__name__)
    for part in _safe(lambda: list(msg.walk()), []):
        if part is not msg:
            defects.extend(type(d).__name__ for d in _safe(lambda p=part: p.defects, []))
    parsed.defects = list(dict.fromkeys(defects))
    return parsed


class _RawHeaders:
    """First occurrence of each header as the raw (surrogate-escaped) string.

    compat32's ``msg.get`` turns raw 8-bit headers into ``Header`` objects whose
    text is lost to replacement characters; the raw value keeps the bytes.
    """

    def __init__(self, msg: Message, defects: list[str]) -> None:
        self.values: dict[str, str] = {}
        for name, value in msg.raw_items():
            key = str(name).lower()
            if key not in self.values:
                text = str(value)
                if "\x00" in text:
                    defects.append(f"NUL byte in {name} header")
                self.values[key] = text

    def get(self, name: str) -> str | None:
        return self.values.get(name.lower())


def _fill(msg: Message, parsed: ParsedMessage, defects: list[str]) -> None:
    h = _RawHeaders(msg, defects)
    ids = parse_ids(h.get("Message-ID"))
    parsed.message_id = ids[0] if ids else None
    irt = parse_ids(h.get("In-Reply-To"))
    parsed.in_reply_to = irt[0] if irt else None
    parsed.references = parse_ids(h.get("References"))[:200]
    parsed.subject = decode_header_value(h.get("Subject"), defects)
    sender = parse_addresses(h.get("From"), defects)
    if not sender:
        sender = parse_addresses(h.get("Sender"), defects)
    if sender:
        parsed.from_name = sender[0][0] or None
        parsed.from_addr = sender[0][1]
    elif h.get("From"):
        name = _raw_header_to_str(h.get("From")).split("<")[0].strip().strip('"')
        parsed.from_name = decode_header_value(name) or None
    reply_to = parse_addresses(h.get("Reply-To"), defects)
    parsed.reply_to = reply_to[0][1] if reply_to else None
    parsed.to = parse_addresses(h.get("To"), defects)
    parsed.cc = parse_addresses(h.get("Cc"), defects)
    parsed.date = parse_date(h.get("Date"))
    for key in ("Auto-Submitted", "Precedence", "List-Id", "X-Autoreply"):
        if h.get(key) is not None:
            parsed.headers[key] = decode_header_value(h.get(key))
    parsed.auto_kind = classify_auto(msg, parsed.from_addr, h)
    _parse_body(msg, parsed, defects)


def extract_attachment(raw: bytes, index: int) -> tuple[str, str, bytes] | None:
    """(filename, content type, bytes) of attachment ``index`` as numbered by the parser."""
    msg = _message_tree(raw)
    attachments = [leaf for leaf in _leaf_kinds(msg, []) if leaf[0] == "attachment"]
    if not 0 <= index < len(attachments):
        return None
    _kind, part, ctype, filename = attachments[index]
    return filename or f"part-{index + 1}", ctype, _decoded(part)
