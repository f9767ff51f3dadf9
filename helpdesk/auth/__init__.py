"""Signing in with OAuth2 (Google, Microsoft 365, any standard provider).

The flows (helpdesk/auth/flows.py) run in libraries: authlib for Google and ``custom``,
MSAL for Microsoft. Refresh tokens live only in the OS keyring (helpdesk/auth/store.py),
access tokens only in memory (helpdesk/auth/tokens.py); the mail code asks for a token
when it opens a connection (helpdesk/auth/sasl.py). This module is what the CLI and the
setup dialog call: :func:`sign_in`, :func:`sign_out`, :func:`state`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from helpdesk.auth import store
from helpdesk.auth.errors import OAuthFailure, SignInError, explain
from helpdesk.auth.flows import DeviceCode, OpenBrowser, ShowCode
from helpdesk.auth.providers import client_of, sharing, side, sign_in_scopes
from helpdesk.auth.tokens import source
from helpdesk.config import Profile, ServerSettings
from helpdesk.errors import ConfigError

__all__ = ["DeviceCode", "SignInError", "SignedIn", "sign_in", "sign_out", "state"]


@dataclass
class SignedIn:
    sides: list[str]
    user: str
    expires_at: datetime


def _oauth_side(profile: Profile, protocol: str) -> ServerSettings:
    settings = side(profile, protocol)
    if not settings.host:
        raise ConfigError(f"The profile has no [{protocol}] section to sign in to.")
    if not settings.oauth:
        raise ConfigError(f"[{protocol}] signs in with a password (auth = \"password\"); set "
                          f"auth = \"oauth2\" and the oauth_* keys to sign in with Google, "
                          f"Microsoft 365 or another provider (README \"Signing in with "
                          f"OAuth2\"), or use 'set-password {protocol}'.")
    return settings


def sign_in(profile: Profile, protocol: str, *, device: bool = False,
            show: ShowCode | None = None, open_browser: OpenBrowser | None = None,
            cancel: threading.Event | None = None) -> SignedIn:
    """Run the browser (or device-code) flow for ``protocol`` and keep the sign-in.

    Every side that shares the account (same provider, registration and username) is
    signed in by it, with the scopes of all of them.
    """
    settings = _oauth_side(profile, protocol)
    if device and settings.oauth_provider == "google" and not settings.oauth_device_url:
        raise SignInError(
            "Google does not offer the device-code sign-in for mail (its device flow leaves "
            "out the Gmail scope). Run 'python main.py login " + protocol + "' without "
            "--device on a computer with a browser, or use the setup dialog's Sign in.",
            "config")
    scopes = sign_in_scopes(profile, protocol)
    src = source(settings)
    try:
        if device:
            grant = src.backend.device(scopes, show or (lambda code: None), cancel)
        else:
            grant = src.backend.browser(scopes, open_browser=open_browser, cancel=cancel)
    except OAuthFailure as failure:
        raise explain(failure, settings.oauth_provider, protocol, settings.username) \
            from None
    token = src.adopt(grant, scopes)
    return SignedIn(sharing(profile, protocol), grant.user, token.expires_at)


def sign_out(profile: Profile, protocol: str) -> tuple[list[str], bool, bool]:
    """Forget ``protocol``'s sign-in here (and revoke it at the provider when it has a
    revocation endpoint): (sides signed out, whether one was stored, whether revoked)."""
    settings = _oauth_side(profile, protocol)
    src = source(settings)
    record = store.load(src.account)
    revoked = False
    if record is not None:
        try:
            revoked = src.backend.revoke(record.refresh_token)
        except (OAuthFailure, SignInError):
            revoked = False  # forgotten here all the same
    src.forget()
    had = store.forget(src.account)
    return sharing(profile, protocol), had, revoked


def state(profile: Profile, protocol: str, *, check: bool = True) -> dict[str, Any]:
    """Whether ``protocol`` is signed in: ``{auth, signed_in, provider, user, ...}``.

    ``check``: get an access token (refreshing it if need be), which proves the sign-in
    still works and tells until when the token runs; a failure is reported in
    ``problem``, never raised.
    """
    settings = side(profile, protocol)
    if not settings.host:
        return {"auth": None, "signed_in": False}
    if not settings.oauth:
        return {"auth": "password", "signed_in": None}
    client = client_of(settings)
    out: dict[str, Any] = {"auth": "oauth2", "provider": settings.oauth_provider,
                           "username": settings.username, "signed_in": False,
                           "user": None, "signed_in_at": None, "token_expires_at": None,
                           "refresh_expires_at": None, "shared_with": sharing(
                               profile, protocol)[1:], "problem": None}
    try:
        record = store.load(client.account(settings.username))
    except SignInError as exc:
        out["problem"] = str(exc)
        return out
    if record is None:
        return out
    out.update(signed_in=True, user=record.user or None,
               signed_in_at=record.signed_in_at or None,
               refresh_expires_at=record.refresh_expires_at or None)
    if check:
        from helpdesk.auth.providers import scopes_of
        from helpdesk.clock import iso

        try:
            token = source(settings).token(protocol, scopes_of(settings, protocol))
            out["token_expires_at"] = iso(token.expires_at)
        except SignInError as exc:
            out["problem"] = str(exc)
            if exc.sign_in_again:
                out["signed_in"] = False
    return out
