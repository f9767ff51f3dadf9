"""A fast builder of the stdlib ``email`` message tree, for well-formed mail only.

The stdlib ``compat32`` parser feeds every line of a message, attachments included,
through a Python generator: that was most of the initial sync's time. For the mail
that is well formed, which is nearly all of it, :func:`fast_tree` builds the *same*
``email.message.Message`` tree (same headers, payload strings, preamble, epilogue)
by finding header lines and boundary lines with ``str.find``; attachment bodies are
sliced, never walked line by line.

Whenever the stdlib parser would have recorded a defect, or the input is anything
but plain (a Unix ``From`` line, bare CR line ends, ``message/*`` parts, a missing
boundary, adjacent boundary lines, odd header lines), it returns ``None`` and the
caller uses the stdlib parser: the fast path declines, it never guesses. The
differential tests compare both parsers on the broken-mail corpus, generated mail
and mutated variants of both.
"""

from __future__ import annotations

import itertools
import re
from email.message import Message
from email.policy import compat32
from typing import Any

_HEADER_NAME = re.compile(r"[\041-\071\073-\176]+")  # feedparser's headerRE, name part
_PLAIN_CTE = ("7bit", "8bit", "binary")
_BARE_CR = re.compile(rb"\r(?!\n)")  # a line end only to the stdlib
MAX_DEPTH = 20


class ParsedPart(Message):
    """A compat32 ``Message`` that parses each parameterised header once.

    The parser asks a part for its content type, charset, disposition and file name
    several times; the stdlib re-parses the header on every ask. Parts are never
    modified once their headers are complete, so the answers are cached.
    """

    _params: dict[str, Any]
    _ctype: str

    def get_content_type(self) -> str:
        try:
            return self._ctype
        except AttributeError:
            self._ctype = super().get_content_type()
            return self._ctype

    def _get_params_preserve(self, failobj: Any, header: str) -> Any:
        try:
            cache = self._params
        except AttributeError:
            cache = self._params = {}
        key = header.lower()
        if key not in cache:
            cache[key] = super()._get_params_preserve(_MISSING, header)  # type: ignore[misc]
        found = cache[key]
        return failobj if found is _MISSING else found


_MISSING = object()


class _Decline(Exception):
    """The input is not plain enough for the fast path."""


def fast_tree(raw: bytes) -> Message | None:
    """The stdlib ``compat32`` tree of ``raw``, or None to say "use the stdlib parser"."""
    if not raw or raw.startswith(b"From ") or _BARE_CR.search(raw):
        return None
    text = raw.decode("ascii", "surrogateescape")
    try:
        return _part(text, 0, len(text), depth=0, sub=False)
    except _Decline:
        return None


def _part(s: str, start: int, end: int, *, depth: int, sub: bool) -> Message:
    """The message or body part in ``s[start:end]``."""
    if depth > MAX_DEPTH:
        raise _Decline
    msg = ParsedPart(policy=compat32)
    pos = start
    name_at = -1  # start of the header being collected, and its colon
    colon = 0
    while pos < end:
        nl = s.find("\n", pos, end)
        line_end = end if nl < 0 else nl + 1
        first = s[pos]
        if first == "\n" or first == "\r":  # the blank line ending the headers
            if name_at >= 0:
                msg.set_raw(*_header(s, name_at, colon, pos))
            name_at = -1
            pos = line_end
            break
        if first == " " or first == "\t":
            if name_at < 0:
                raise _Decline  # FirstHeaderLineIsContinuationDefect
        else:
            if s.startswith("From ", pos):
                raise _Decline  # envelope or misplaced envelope header
            i = s.find(":", pos, line_end)
            if i <= pos or not _HEADER_NAME.fullmatch(s, pos, i):
                raise _Decline  # a body line before the blank line, or an invalid header
            if name_at >= 0:
                msg.set_raw(*_header(s, name_at, colon, pos))
            name_at, colon = pos, i
        pos = line_end
    if name_at >= 0:  # headers up to the end, no body
        msg.set_raw(*_header(s, name_at, colon, end))
    maintype = msg.get_content_maintype()
    if maintype == "message":
        raise _Decline  # nested messages and delivery reports: the stdlib handles them
    if maintype == "multipart":
        _multipart(msg, s, pos, end, depth)
    else:
        body = s[pos:end]
        if sub:  # the line end before a boundary belongs to the boundary
            if body.endswith("\r\n"):
                body = body[:-2]
            elif body.endswith("\n"):
                body = body[:-1]
        msg.set_payload(body)
    return msg


def _header(s: str, start: int, colon: int, end: int) -> tuple[str, str]:
    """compat32's ``header_source_parse`` of the header lines ``s[start:end]``."""
    return s[start:colon], s[colon + 1:end].lstrip(" \t").rstrip("\r\n")


def _multipart(msg: Message, s: str, start: int, end: int, depth: int) -> None:
    boundary = msg.get_boundary()
    if boundary is None or msg.get_content_type() == "multipart/digest":
        raise _Decline  # NoBoundaryInMultipartDefect; digest parts default to message/*
    if str(msg.get("content-transfer-encoding", "8bit")).lower() not in _PLAIN_CTE:
        raise _Decline  # InvalidMultipartContentTransferEncodingDefect
    delimiters = _delimiters(s, "--" + boundary, start, end)
    if not delimiters or delimiters[0][2] or not delimiters[-1][2]:
        raise _Decline  # start or close boundary not found
    first = delimiters[0][0]
    if first > start:  # the preamble, without the line end that belongs to the boundary
        msg.preamble = _strip_eol(s[start:first])
    parts: list[Message | str] = []
    for (_, body_start, _), (next_start, _, _) in itertools.pairwise(delimiters):
        if next_start == body_start:
            raise _Decline  # adjacent boundary lines: the stdlib skips them specially
        part = _part(s, body_start, next_start, depth=depth + 1, sub=True)
        if part.get_content_maintype() == "multipart":
            # The newline before the outer boundary ends the inner epilogue.
            epilogue = part.epilogue
            if epilogue == "":
                part.epilogue = None
            elif epilogue is not None:
                part.epilogue = _strip_eol(epilogue)
        parts.append(part)
    msg.set_payload(parts)
    # Everything after the close boundary line is the epilogue (the stdlib keeps
    # its line ends; an enclosing multipart strips the last one, see above).
    msg.epilogue = s[delimiters[-1][1]:end]


def _strip_eol(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def _delimiters(s: str, sep: str, start: int, end: int) -> list[tuple[int, int, bool]]:
    """(line start, next line start, is close) of every boundary line, up to the close one."""
    out: list[tuple[int, int, bool]] = []
    pos = start
    n = len(sep)
    while True:
        i = s.find(sep, pos, end)
        if i < 0:
            return out
        pos = i + 1
        if i != start and s[i - 1] != "\n":
            continue  # not at the start of a line
        j = i + n
        close = s.startswith("--", j, end)
        if close:
            j += 2
        while j < end and s[j] in " \t":
            j += 1
        if j == end:
            out.append((i, end, close))
        elif s[j] == "\n":
            out.append((i, j + 1, close))
        elif s.startswith("\r\n", j, end):
            out.append((i, j + 2, close))
        else:
            continue  # the separator followed by more text: an ordinary line
        if close:
            return out
        pos = out[-1][1]
