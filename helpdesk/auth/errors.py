"""What a failed sign-in says: one sentence per cause, naming what to do.

Identity providers answer with an OAuth error code (RFC 6749 section 5.2: ``invalid_grant``,
``invalid_scope``, ...) and a description; Microsoft puts an ``AADSTS`` number in the
description that tells the real cause (a wrong tenant, consent an admin must give).
:func:`explain` sorts both into a :class:`SignInError` whose ``kind`` a caller (the
setup dialog) can act on, e.g. offer to sign in again when it is ``"revoked"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from helpdesk.errors import SecretError

#: Every sentence whose cure is a new sign-in ends its advice with this, so that a window
#: showing only the sentence (a sync status) can offer a "Sign in" button next to it.
SIGN_IN_HINT = "(or Sign in in Settings)"

#: Kinds after which signing in again is the cure.
SIGN_IN_AGAIN = frozenset({"revoked", "signed-out", "consent", "scope", "mfa", "refused"})


class SignInError(SecretError):
    """No usable token: the message says why and what to do; ``kind`` sorts the cause;
    ``protocol`` ("imap", "smtp"), when known, is the side to sign in again."""

    def __init__(self, message: str, kind: str = "other", protocol: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.protocol = protocol

    @property
    def sign_in_again(self) -> bool:
        return self.kind in SIGN_IN_AGAIN


@dataclass
class OAuthFailure(Exception):
    """An error answer of an identity provider (or of the loopback redirect)."""

    error: str
    description: str = ""

    def __str__(self) -> str:
        return f"{self.error}: {self.description}" if self.description else self.error


_AADSTS = re.compile(r"AADSTS(\d+)")

# Microsoft Entra error numbers (learn.microsoft.com "Microsoft Entra authentication and
# authorization error codes") by the kind of cure.
_MS_KINDS: dict[int, str] = {
    50020: "tenant", 90002: "tenant", 90072: "tenant", 700016: "tenant", 50059: "tenant",
    65001: "consent", 65004: "consent", 650052: "consent",
    90094: "admin", 90095: "admin", 900971: "admin", 50105: "admin", 53003: "admin",
    70011: "scope", 70000: "revoked", 700082: "revoked", 70008: "revoked", 50173: "revoked",
    50076: "mfa", 50079: "mfa", 50078: "mfa",
    7000218: "client", 700025: "client",
}


def _kind(failure: OAuthFailure) -> str:
    text = f"{failure.error} {failure.description}"
    m = _AADSTS.search(text)
    if m and int(m.group(1)) in _MS_KINDS:
        return _MS_KINDS[int(m.group(1))]
    error = failure.error
    if error == "invalid_grant":
        if "consent" in text.lower():
            return "consent"
        return "revoked"
    if error in ("admin_policy_enforced", "org_internal", "unauthorized_client",
                 "admin_consent_required"):
        return "admin"
    if error == "consent_required":
        return "consent"
    if error in ("invalid_scope", "insufficient_scope"):
        return "scope"
    if error == "invalid_client":
        return "client"
    if error in ("invalid_tenant", "invalid_request") and "tenant" in text.lower():
        return "tenant"
    if error in ("access_denied", "authorization_declined"):
        return "declined"
    if error in ("expired_token", "timeout"):
        return "timeout"
    if error == "interaction_required":
        return "mfa"
    return "other"


def explain(failure: OAuthFailure, provider: str, protocol: str, username: str) -> SignInError:
    """The sentence for ``failure`` of a sign-in or refresh for ``protocol``."""
    side = protocol.upper()
    again = sign_in_advice(protocol)
    said = f" (the identity provider said: {failure})"
    kind = _kind(failure)
    admin = ("Microsoft Entra admin center (Enterprise applications)"
             if provider == "microsoft" else "Google Workspace admin console "
             "(Security > API controls)" if provider == "google" else "identity provider")
    messages = {
        "revoked": f"The {side} sign-in for {username} has expired or was revoked (a "
                   f"changed password, an admin, or 'sign out everywhere'); {again}. "
                   f"Nothing queued is lost.",
        "consent": f"Consent for this app to use {side} for {username} is missing or was "
                   f"withdrawn; {again} and approve the access asked for.",
        "tenant": f"The {side} sign-in used the wrong organisation (tenant): the app "
                  f"registration or {username} is not in it. Check oauth_tenant (your "
                  f"directory's id or domain, e.g. \"company.com\") and oauth_client_id in "
                  f"the profile.",
        "admin": f"An administrator has not allowed this app for {username} (or a sign-in "
                 f"policy blocks it). Ask your admin to allow it in the {admin}; see "
                 f"README \"Signing in with OAuth2\".",
        "scope": f"The {side} sign-in does not carry the permission the mail server needs; "
                 f"check oauth_scopes in [{protocol}] (or leave it out for the preset), "
                 f"then {again}.",
        "mfa": f"Your organisation asks for another check (multi-factor sign-in) for "
               f"{username}; {again} in a browser to complete it.",
        "client": "The identity provider does not accept the app registration "
                  "(oauth_client_id, or oauth_client_secret for Google): check them "
                  "against the registration (README \"Signing in with OAuth2\").",
        "declined": f"The sign-in for {side} was declined in the browser; nothing was "
                    f"changed. Run login again to approve it.",
        "timeout": f"The sign-in for {side} was not completed in time; run login again.",
    }
    message = messages.get(kind, f"Signing in for {side} ({username}) failed; {again}")
    return SignInError(message + ("" if kind in ("declined", "timeout") else said), kind,
                       protocol)


def not_signed_in(protocol: str, username: str) -> SignInError:
    return SignInError(
        f"Not signed in for {protocol.upper()} ({username}): {sign_in_advice(protocol)}. "
        f"Nothing queued is lost.", "signed-out",
        protocol)


def unreachable(what: str, exc: BaseException) -> SignInError:
    detail = type(exc).__name__
    return SignInError(f"Cannot reach the identity provider to {what} ({detail}). You may "
                       f"be offline; nothing queued is lost, the app tries again.", "network")


def needs_sign_in(exc: BaseException) -> str | None:
    """The side ("imap", "smtp") a person should sign in to again after ``exc``, if any:
    what a window offers with a "Sign in" button next to the sentence."""
    if isinstance(exc, SignInError) and exc.sign_in_again and exc.protocol:
        return exc.protocol
    return None


def sign_in_advice(protocol: str) -> str:
    return f"run 'python main.py login {protocol}' {SIGN_IN_HINT}"


def offers_sign_in(message: str) -> bool:
    """Whether a plain sentence (a sync status) is cured by signing in again."""
    return SIGN_IN_HINT in message
