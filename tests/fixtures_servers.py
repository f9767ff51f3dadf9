"""pytest fixtures for real loopback servers (star-imported by tests/conftest.py).

Every fixture is function-scoped: each test gets a fresh, empty server that
is killed (and its temp dir removed) afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from idp import IdentityProvider, start_idp
from servers import (
    ImapServer,
    SmtpSink,
    find_tool,
    start_courier,
    start_cyrus,
    start_dovecot,
    start_dovecot_oauth,
    start_imap4d,
    start_pymap,
    start_smtp_sink,
    unpacked_servers_missing,
)

__all__ = [
    "courier",
    "cyrus",
    "dovecot",
    "dovecot_inbox_ns",
    "dovecot_oauth",
    "idp",
    "imap4d",
    "imap_server",
    "pymap_server",
    "smtp_oauth_sink",
    "smtp_sink",
]


def _need(binary: str) -> None:
    if find_tool(binary) is None:
        # Never skip: a missing server would silently hide every network test.
        pytest.fail(f"{binary} is not installed; run 'sh scripts/setup.sh --test'")


def _need_unpacked() -> None:
    problem = unpacked_servers_missing()
    if problem is not None:
        pytest.fail(problem)  # never skip (see _need)


def _start(kind: str) -> ImapServer:
    if kind == "dovecot":
        _need("dovecot")
        return start_dovecot()
    if kind == "dovecot_inbox_ns":
        _need("dovecot")
        return start_dovecot(namespace="INBOX.")
    if kind == "pymap":
        _need("pymap")
        return start_pymap()
    starts = {"courier": start_courier, "cyrus": start_cyrus, "imap4d": start_imap4d}
    if kind in starts:
        _need_unpacked()
        return starts[kind]()
    raise ValueError(kind)


def serve(kind: str) -> Iterator[ImapServer]:
    """A fresh server of ``kind`` for one test (for parametrised fixtures elsewhere)."""
    server = _start(kind)
    try:
        yield server
    finally:
        server.stop()


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
def dovecot_inbox_ns() -> Iterator[ImapServer]:
    """Dovecot whose personal namespace is ``INBOX.`` with separator ``.`` (Courier-like
    folder names: ``INBOX.Sent``, ``INBOX.HelpDesk.Log``); users agent-a/-b/-c."""
    yield from serve("dovecot_inbox_ns")


@pytest.fixture
def courier() -> Iterator[ImapServer]:
    """Courier-IMAP as Debian configures it; one login (support), namespace ``INBOX.``."""
    yield from serve("courier")


@pytest.fixture
def cyrus() -> Iterator[ImapServer]:
    """Cyrus IMAP as Debian configures it; one login (support), namespace ``INBOX.``."""
    yield from serve("cyrus")


@pytest.fixture
def imap4d() -> Iterator[ImapServer]:
    """GNU Mailutils imap4d (broken ``UID SEARCH UID n:*``); one login."""
    yield from serve("imap4d")


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """aiosmtpd sink without AUTH; see ``start_smtp_sink(require_auth=...)``."""
    sink = start_smtp_sink()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def idp(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityProvider]:
    """A local OAuth2 identity provider (tests/idp.py) whose CA authlib and MSAL trust
    (``REQUESTS_CA_BUNDLE``), with ``$BROWSER`` set to tests/browser.py."""
    import sys
    from pathlib import Path

    from helpdesk.auth import tokens

    provider = start_idp()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", provider.ca_file)
    browser = Path(__file__).with_name("browser.py")
    monkeypatch.setenv("BROWSER", f"{sys.executable} {browser} %s")
    tokens.reset()
    try:
        yield provider
    finally:
        tokens.reset()
        provider.stop()


@pytest.fixture
def dovecot_oauth(idp: IdentityProvider) -> Iterator[ImapServer]:
    """Dovecot accepting only XOAUTH2/OAUTHBEARER, tokens checked at ``idp``."""
    _need("dovecot")
    server = start_dovecot_oauth(idp.introspect_url)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_oauth_sink(idp: IdentityProvider) -> Iterator[SmtpSink]:
    """SMTP sink offering only XOAUTH2/OAUTHBEARER, tokens checked at ``idp``."""
    sink = start_smtp_sink(oauth_introspection=idp.introspect_url)
    try:
        yield sink
    finally:
        sink.stop()
