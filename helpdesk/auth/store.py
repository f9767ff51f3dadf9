"""Refresh tokens in the OS keyring, and nowhere else.

One keyring entry per sign-in (service ``helpdesk``, user
:meth:`helpdesk.auth.providers.OAuthClient.account`) holds a small JSON record: the
refresh token, the scopes granted, who signed in and when. Access tokens are never
stored (helpdesk/auth/tokens.py keeps them in memory). The record stays small: Windows
Credential Manager takes about 2.5 KB per entry.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from helpdesk.auth.errors import SignInError
from helpdesk.config import KEYRING_SERVICE


@dataclass
class Record:
    refresh_token: str
    scopes: list[str] = field(default_factory=list)
    #: Who approved (the id token's name for the person), when the provider said.
    user: str = ""
    signed_in_at: str = ""
    #: When the refresh token itself runs out, when the provider said (ISO, UTC).
    refresh_expires_at: str = ""

    def dumps(self) -> str:
        return json.dumps({"v": 1, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> Record | None:
        try:
            data: Any = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("refresh_token"), str) \
                or not data["refresh_token"]:
            return None
        scopes = data.get("scopes")
        return cls(refresh_token=data["refresh_token"],
                   scopes=[s for s in scopes if isinstance(s, str)]
                   if isinstance(scopes, list) else [],
                   user=str(data.get("user") or ""),
                   signed_in_at=str(data.get("signed_in_at") or ""),
                   refresh_expires_at=str(data.get("refresh_expires_at") or ""))


def _keyring_failed(exc: BaseException, doing: str) -> SignInError:
    return SignInError(
        f"No usable password store (OS keyring) to {doing} ({type(exc).__name__}). Install "
        f"and unlock a keyring (GNOME Keyring, KWallet, macOS Keychain, Windows Credential "
        f"Manager): sign-in tokens are kept only there.", "keyring")


def load(account: str) -> Record | None:
    import keyring
    import keyring.errors

    try:
        text = keyring.get_password(KEYRING_SERVICE, account)
    except keyring.errors.KeyringError as exc:
        raise _keyring_failed(exc, "read the sign-in") from None
    return Record.loads(text) if text else None


def save(account: str, record: Record) -> None:
    import keyring
    import keyring.errors

    try:
        keyring.set_password(KEYRING_SERVICE, account, record.dumps())
    except keyring.errors.KeyringError as exc:
        raise _keyring_failed(exc, "keep the sign-in") from None


def forget(account: str) -> bool:
    """Delete the entry; False when there was none."""
    import keyring
    import keyring.errors

    try:
        if keyring.get_password(KEYRING_SERVICE, account) is None:
            return False
        keyring.delete_password(KEYRING_SERVICE, account)
    except keyring.errors.PasswordDeleteError:
        return False
    except keyring.errors.KeyringError as exc:
        raise _keyring_failed(exc, "forget the sign-in") from None
    return True
