"""Starting the loopback servers the demo and the test suite both run: pymap (IMAP) and
an aiosmtpd sink. One place for what both need: a free port, pymap's arguments (the
demo runs it in its own asyncio loop, the tests as a process), and what a sink got.
"""

from __future__ import annotations

import socket
from typing import Any

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def pymap_args(host: str, port: int, user: str, password: str) -> list[str]:
    """``pymap`` arguments for its in-memory ``dict`` backend with one login, no TLS and
    only the IMAP service (what ``pymap --host H --port P --no-tls dict ...`` parses)."""
    return ["--host", host, "--port", str(port), "--no-tls",
            "--no-service", "admin", "--no-service", "managesieve", "--no-service", "swim",
            "dict", "--demo-user", user, "--demo-password", password]


def received(envelope: Any) -> tuple[str, list[str], bytes]:
    """(MAIL FROM, RCPT TOs, the message's bytes as sent) of an aiosmtpd envelope."""
    raw = envelope.original_content
    if raw is None:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
    return str(envelope.mail_from or ""), [str(r) for r in envelope.rcpt_tos], raw
