"""Everything the CLI prints goes through here, made safe for a terminal.

Text that came from mail or from the team log may hold any characters, among them
terminal controls: ``ESC[2J`` clears the screen, OSC 8 makes a link that lies about
its target, OSC 52 writes the clipboard, a C1 ``CSI`` (U+009B) does what ``ESC[`` does
on some terminals, and the bidi overrides (U+202A-U+202E, U+2066-U+2069) make a line
show something other than what it holds. :func:`clean` removes them all from
human-readable output; :func:`emit_json` keeps JSON valid and escapes them as
``\\uXXXX`` so that a program reading it still gets the exact text.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any, TextIO

# One pass, longest match first at each position: whole escape sequences, then any
# single control character left over. A string sequence (OSC: links, clipboard, titles)
# goes up to its BEL or ST but never past white space or another ESC: one cut short
# (a truncated field) must not swallow the text after it; the rest is plain text once
# its introducer is gone.
_UNSAFE = re.compile(
    r"""
      \x1b\[ [\x30-\x3f]* [\x20-\x2f]* [\x40-\x7e]?         # CSI ... final
    | \x1b[\]PX^_] [^\s\x07\x1b\x9c]* (?:\x07|\x1b\\|\x9c)?  # OSC, DCS, SOS, PM, APC ... BEL/ST
    | \x1b [\x20-\x2f]* [\x30-\x7e]?                       # two-character ESC X (and ESC ( B)
    | \x9b [\x30-\x3f]* [\x20-\x2f]* [\x40-\x7e]?          # C1 CSI ... final
    | [\x00-\x08\x0b-\x1f\x7f-\x9f]                         # other C0 (not \t, \n), DEL, C1
    | [\u202a-\u202e\u2066-\u2069]                          # bidi embeddings, overrides, isolates
    """,
    re.VERBOSE,
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# What json.dumps(ensure_ascii=False) leaves raw but a terminal would act on, plus lone
# surrogates (undecodable bytes), which no UTF-8 stream can carry.
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def clean(text: object) -> str:
    """``text`` as a string without terminal controls; newlines and tabs stay."""
    s = text if isinstance(text, str) else str(text)
    s = _UNSAFE.sub("", s)
    return _SURROGATE.sub("\ufffd", s)


def say(text: object = "", *, err: bool = False, end: str = "\n") -> None:
    """Print one human-readable line (or several) to stdout, or stderr with ``err``."""
    stream: TextIO = sys.stderr if err else sys.stdout
    stream.write(clean(text) + end)
    stream.flush()


def error(text: object) -> None:
    """The one line a failure shows: ``error: ...`` on stderr."""
    say(f"error: {text}", err=True)


def write_raw_text(text: str, stream: TextIO | None = None) -> None:
    """A whole document (an export) to stdout: controls removed, CRLF line ends kept."""
    out = stream or sys.stdout
    out.write("\r\n".join(clean(part) for part in text.split("\r\n")))
    out.flush()


def json_text(data: Any) -> str:
    """``data`` as indented JSON in which every terminal control is a ``\\uXXXX`` escape."""
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    # Outside strings JSON text is plain ASCII, so every match is inside a string.
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def emit_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")
    sys.stdout.flush()
