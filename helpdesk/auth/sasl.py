"""SASL XOAUTH2 and OAUTHBEARER (RFC 7628) for IMAP and SMTP, chosen from capabilities.

OAUTHBEARER is the standard and preferred when offered; XOAUTH2 (Google's and
Microsoft's older mechanism) otherwise. A server that refuses the token sends a JSON
error as a SASL challenge (``{"status": "invalid_token", "scope": ...}``, Google's
``"401"``/``"400"``); the client answers it with the mechanism's empty reply and the
server then says NO (IMAP) or 535 (SMTP). :func:`login` keeps that JSON to say why,
and retries once with a refreshed token when the refused one was not brand new.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from typing import Any

from helpdesk.auth.errors import SignInError, sign_in_advice
from helpdesk.auth.providers import scopes_of
from helpdesk.auth.tokens import Token, TokenSource, source
from helpdesk.config import ServerSettings

PREFERENCE = ("OAUTHBEARER", "XOAUTH2")


class Refused(Exception):
    """The server refused the token; ``detail`` is its SASL error JSON, if it sent one."""

    def __init__(self, said: str, detail: dict[str, Any] | None) -> None:
        super().__init__(said)
        self.said = said
        self.detail = detail


def choose(offered: Iterable[str]) -> str | None:
    """The mechanism to use among those the server ``offered`` (upper-case names)."""
    names = {m.upper() for m in offered}
    for mech in PREFERENCE:
        if mech in names:
            return mech
    return None


def initial(mech: str, user: str, token: str, host: str = "", port: int = 0) -> bytes:
    """The client's first message (before base64) for ``mech``."""
    if mech == "XOAUTH2":
        return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    where = (f"host={host}\x01port={port}\x01" if host and port else "")
    gs2 = "n,a=" + user.replace("=", "=3D").replace(",", "=2C") + ","
    return f"{gs2}\x01{where}auth=Bearer {token}\x01\x01".encode()


def error_reply(mech: str) -> bytes:
    """What answers the server's error challenge: RFC 7628 section 3.2.3 (a lone ^A) for
    OAUTHBEARER, an empty line for XOAUTH2."""
    return b"\x01" if mech == "OAUTHBEARER" else b""


def parse_error(challenge: bytes) -> dict[str, Any] | None:
    """The server's error JSON (already base64-decoded), or None."""
    try:
        data = json.loads(challenge.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Exchange:
    """One AUTHENTICATE conversation: the first call gives the initial response, a later
    one (the server's error challenge) the empty reply, keeping what the server said."""

    def __init__(self, mech: str, payload: bytes) -> None:
        self.mech = mech
        self.payload = payload
        self.calls = 0
        self.detail: dict[str, Any] | None = None

    def __call__(self, challenge: bytes | None) -> bytes:
        self.calls += 1
        if self.calls == 1 and not challenge:
            return self.payload
        if challenge:
            self.detail = parse_error(challenge) or self.detail
        return error_reply(self.mech)


Attempt = Callable[[str, Token], None]


def login(settings: ServerSettings, protocol: str, mech: str, attempt: Attempt,
          tokens: TokenSource | None = None) -> None:
    """Authenticate with ``attempt(mech, token)`` (raises :class:`Refused`), refreshing
    once when a token that was not brand new is refused; SignInError or Refused after."""
    src = tokens or source(settings)
    needs = scopes_of(settings, protocol)
    token = src.token(protocol, needs)
    try:
        attempt(mech, token)
        return
    except Refused:
        if token.fresh:
            raise
        src.rejected(token)
    attempt(mech, src.token(protocol, needs))


def refused_sentence(exc: Refused, settings: ServerSettings, protocol: str) -> SignInError:
    """Why a server refused a token the provider had just handed out."""
    side = protocol.upper()
    detail = exc.detail or {}
    status = str(detail.get("status") or "")
    again = sign_in_advice(protocol)
    if status == "insufficient_scope":
        return SignInError(
            f"The {side} server wants a permission the sign-in does not carry "
            f"({detail.get('scope') or 'a mail scope'}); check oauth_scopes in [{protocol}] "
            f"(or leave it out for the preset), then {again}.", "scope", protocol)
    shared = ""
    if settings.oauth_provider == "microsoft":
        shared = (" If it is a shared mailbox, the account you signed in with needs Full "
                  "Access to it (Exchange admin center), and IMAP/SMTP AUTH must be enabled "
                  "for it.")
    return SignInError(
        f"The {side} server {settings.host} refused the sign-in token for "
        f"{settings.username} ({exc.said}).{shared} If the sign-in was revoked, {again}.",
        "refused", protocol)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
