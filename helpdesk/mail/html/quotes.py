"""Quoted earlier mail: fold it behind a link, in plain text and in the usual HTML
reply layouts (Gmail, Thunderbird, Apple Mail, Outlook, Yahoo)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_ORIGINAL_MESSAGE_RE = re.compile(
    r"\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|"
    r"Mensaje original|Messaggio originale|Oorspronkelijk bericht)\s*-{2,}\s*",
    re.IGNORECASE,
)
_OUTLOOK_RULE_RE = re.compile(r"\s*_{10,}\s*")
_HEADER_FROM_RE = re.compile(r"\s*\**(?:From|Von|De|Van|Da)\**\s*:", re.IGNORECASE)
_HEADER_NEXT_RE = re.compile(
    r"\s*\**(?:Sent|Date|Gesendet|Datum|Envoyé|Enviado|Inviato|Verzonden)\**\s*:",
    re.IGNORECASE,
)
_ATTRIBUTION_RE = re.compile(
    r"\s*(?:On|Am|Le|El|Il|Op)\s.*\b(?:wrote|schrieb|a écrit|escribió|ha scritto|"
    r"schreef)\s*:\s*",
    re.IGNORECASE | re.DOTALL,
)


def _strip_eol(line: str) -> str:
    return line.rstrip("\r\n")


def _next_nonblank(lines: list[str], start: int) -> int | None:
    for i in range(start, len(lines)):
        if lines[i].strip():
            return i
    return None


def _outlook_header_at(lines: list[str], i: int) -> bool:
    """A "From: ... / Sent: ..." header block of an inline Outlook reply (not at
    the very top of the body: a body that starts with one is a forward)."""
    if not _HEADER_FROM_RE.match(lines[i]) or not any(line.strip() for line in lines[:i]):
        return False
    window = lines[i + 1:i + 4]
    return any(_HEADER_NEXT_RE.match(line) for line in window)


def _attribution_end(lines: list[str], i: int) -> int | None:
    """If an "On ... wrote:" attribution (up to 3 lines) starts at ``i`` and is
    followed by ``>`` quoted lines, the index of its last line."""
    if not re.match(r"\s*(?:On|Am|Le|El|Il|Op)\s", lines[i], re.IGNORECASE):
        return None
    for end in range(i, min(i + 3, len(lines))):
        joined = " ".join(_strip_eol(line) for line in lines[i:end + 1])
        if _ATTRIBUTION_RE.fullmatch(joined):
            nxt = _next_nonblank(lines, end + 1)
            if nxt is not None and lines[nxt].startswith(">"):
                return end
            return None
    return None


def quote_fold(text: str) -> list[tuple[str, bool]]:
    """Split a plain-text body into ``(text, is_quoted)`` segments.

    Quoted: ``>`` lines (and blank lines between them), a Gmail-style
    "On ... wrote:" attribution followed by ``>`` lines, and an Outlook
    "-----Original Message-----" (or "________ / From: / Sent:") block with
    everything after it. ``"".join(s for s, _ in quote_fold(t)) == t``.
    """
    lines = text.splitlines(keepends=True)
    quoted = [False] * len(lines)
    i = 0
    while i < len(lines):
        line = _strip_eol(lines[i])
        if _ORIGINAL_MESSAGE_RE.fullmatch(line) or _outlook_header_at(lines, i) or (
            _OUTLOOK_RULE_RE.fullmatch(line)
            and (nxt := _next_nonblank(lines, i + 1)) is not None
            and _outlook_header_at(lines, nxt)
        ):
            for j in range(i, len(lines)):
                quoted[j] = True
            break
        end = _attribution_end(lines, i)
        if end is not None:
            for j in range(i, end + 1):
                quoted[j] = True
            i = end + 1
            continue
        if line.startswith(">"):
            quoted[i] = True
        i += 1
    # Blank lines between two quoted parts belong to the quote.
    last_quoted: int | None = None
    for i, line in enumerate(lines):
        if quoted[i]:
            if last_quoted is not None and all(not lines[k].strip()
                                               for k in range(last_quoted + 1, i)):
                for k in range(last_quoted + 1, i):
                    quoted[k] = True
            last_quoted = i
        elif line.strip():
            last_quoted = None
    segments: list[tuple[str, bool]] = []
    for line, flag in zip(lines, quoted, strict=True):
        if segments and segments[-1][1] == flag:
            segments[-1] = (segments[-1][0] + line, flag)
        else:
            segments.append((line, flag))
    return segments


# Where mail programs put the earlier mail in an HTML reply: Gmail, Thunderbird
# (attribution div, then the cite blockquote), Apple Mail, Outlook (web and desktop),
# Yahoo. Matched on the raw HTML, before sanitising drops class and id attributes.
_QUOTE_CLASSES = frozenset({"gmail_quote", "gmail_quote_container", "moz-cite-prefix",
                            "yahoo_quoted", "protonmail_quote"})
_QUOTE_IDS = frozenset({"divrplyfwdmsg", "appendonsend", "mail-editor-reference-message-container"})
_OUTLOOK_SEPARATOR_RE = re.compile(r"border-top\s*:\s*solid\s+#e1e1e1", re.IGNORECASE)


class _QuoteFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: tuple[int, int] | None = None
        self.text_before = False
        self.hidden = 0  # inside <style>, <script>, <title>: not text anyone sees

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "title"):
            self.hidden += 1
        if self.found is not None:
            return
        values = {name: (value or "") for name, value in attrs}
        classes = set(values.get("class", "").lower().split())
        if (classes & _QUOTE_CLASSES or values.get("id", "").lower() in _QUOTE_IDS
                or (tag == "blockquote" and values.get("type", "").lower() == "cite")
                or (tag == "div" and _OUTLOOK_SEPARATOR_RE.search(values.get("style", "")))):
            self.found = self.getpos()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self.hidden = max(0, self.hidden - 1)

    def handle_data(self, data: str) -> None:
        if self.found is None and not self.hidden and data.strip():
            self.text_before = True


def html_quote_cut(html: str) -> int | None:
    """Offset in ``html`` where quoted earlier mail starts, if there is new text before it.

    The part before the offset is the new message (a sanitiser closes its open tags);
    None when no known quote container is found or nothing precedes it.
    """
    finder = _QuoteFinder()
    try:
        finder.feed(html)
        finder.close()
    except Exception:  # pathological markup: show it unfolded
        return None
    if finder.found is None or not finder.text_before:
        return None
    line, column = finder.found
    offset = 0
    for _ in range(line - 1):
        offset = html.index("\n", offset) + 1
    return offset + column
