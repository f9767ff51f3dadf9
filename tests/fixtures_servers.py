"""pytest fixtures for real loopback servers (star-imported by tests/conftest.py).

Every fixture is function-scoped: each test gets a fresh, empty server that
is killed (and its temp dir removed) afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import ImapServer, SmtpSink, find_tool, start_dovecot, start_pymap, start_smtp_sink

__all__ = ["dovecot", "imap_server", "pymap_server", "smtp_sink"]


def _need(binary: str) -> None:
    if find_tool(binary) is None:
        # Never skip: a missing server would silently hide every network test.
        pytest.fail(f"{binary} is not installed; run 'sh scripts/setup.sh --test'")


def _start(kind: str) -> ImapServer:
    if kind == "dovecot":
        _need("dovecot")
        return start_dovecot()
    if kind == "pymap":
        _need("pymap")
        return start_pymap()
    raise ValueError(kind)


@pytest.fixture
def dovecot() -> Iterator[ImapServer]:
    """Private Dovecot; users agent-a/-b/-c share one mailbox."""
    server = _start("dovecot")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pymap_server() -> Iterator[ImapServer]:
    """pymap dict backend; one user (agent-a), INBOX + Sent."""
    server = _start("pymap")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["dovecot", "pymap"])
def imap_server(request: pytest.FixtureRequest) -> Iterator[ImapServer]:
    """Each test runs once against Dovecot and once against pymap.

    Only the first user is guaranteed to exist on both (pymap has one login).
    """
    server = _start(request.param)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """aiosmtpd sink without AUTH; see ``start_smtp_sink(require_auth=...)``."""
    sink = start_smtp_sink()
    try:
        yield sink
    finally:
        sink.stop()
