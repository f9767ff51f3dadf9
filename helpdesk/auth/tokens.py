"""Access tokens, in memory only: refreshed ahead of expiry and once after a refusal.

One :class:`TokenSource` per sign-in (per refresh token) in this process, shared by every
connection that uses it (the worker's two IMAP links, the IDLE watchers, SMTP), with a
lock so that a refresh happens once however many threads want a token at that moment:
providers that rotate refresh tokens may refuse the older one after a refresh.

:meth:`TokenSource.token` hands out the current token while it has more than
:func:`margin` left, else refreshes first. A server refusing a token that looked good
(revoked at the provider, a clock off) calls :meth:`TokenSource.rejected`; the next
:meth:`token` then refreshes, once (helpdesk/auth/sasl.py ``authenticate``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from helpdesk.auth import store
from helpdesk.auth.errors import OAuthFailure, SignInError, explain, not_signed_in
from helpdesk.auth.flows import Backend, Grant, backend_for
from helpdesk.auth.providers import OAuthClient, client_of, scopes_of
from helpdesk.clock import iso, utcnow
from helpdesk.config import ServerSettings

log = logging.getLogger(__name__)

#: Refresh when less than this is left of a token (five minutes, or a fifth of a short
#: token's life): a connection opened with it must not see it expire mid-login.
MAX_MARGIN = 300.0


def margin(lifetime: float) -> float:
    return min(MAX_MARGIN, max(lifetime, 0.0) / 5)


@dataclass
class Token:
    value: str
    #: monotonic deadline, and the wall-clock time shown to people
    expires: float
    expires_at: datetime
    #: True: just obtained from the provider (a refusal is then not the token's age)
    fresh: bool


class TokenSource:
    """The access token of one sign-in."""

    def __init__(self, client: OAuthClient, username: str, backend: Backend | None = None,
                 ) -> None:
        self.client = client
        self.username = username
        self.account = client.account(username)
        self.backend = backend or backend_for(client)
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._lifetime = 0.0
        self.refreshes = 0

    def token(self, protocol: str, needs: tuple[str, ...] = ()) -> Token:
        """A token good for a while yet; SignInError (plain, with the cure) if none can be had.

        ``needs``: the scopes ``protocol`` must have been granted (a sign-in made for
        IMAP alone does not carry SMTP's).
        """
        with self._lock:
            now = time.monotonic()
            current = self._token
            if current is not None and current.expires - now > margin(self._lifetime):
                current.fresh = False
                return current
            return self._refresh(protocol, needs)

    def rejected(self, token: Token) -> None:
        """A server refused ``token``: drop it, so the next :meth:`token` refreshes."""
        with self._lock:
            if self._token is token:
                self._token = None

    def forget(self) -> None:
        with self._lock:
            self._token = None

    def _refresh(self, protocol: str, needs: tuple[str, ...]) -> Token:
        record = store.load(self.account)
        if record is None:
            self._token = None
            raise not_signed_in(protocol, self.username)
        missing = [s for s in needs if record.scopes and s not in record.scopes]
        if missing:
            raise SignInError(
                f"The sign-in for {self.username} was made without the permission "
                f"{protocol.upper()} needs ({', '.join(missing)}); run 'python main.py login "
                f"{protocol}' to sign in again for it.", "scope", protocol)
        scopes = tuple(record.scopes) or needs
        try:
            grant = self.backend.refresh(record.refresh_token, scopes)
        except OAuthFailure as failure:
            self._token = None
            raise explain(failure, self.client.provider, protocol, self.username) from None
        self.refreshes += 1
        log.info("renewed the %s sign-in for %s (valid %.0f s)", protocol, self.username,
                 grant.expires_in)
        if grant.refresh_token != record.refresh_token:
            record.refresh_token = grant.refresh_token
            store.save(self.account, record)
        return self._keep(grant)

    def _keep(self, grant: Grant) -> Token:
        self._lifetime = grant.expires_in
        self._token = Token(grant.access_token, time.monotonic() + grant.expires_in,
                            utcnow() + timedelta(seconds=grant.expires_in), True)
        return self._token

    def adopt(self, grant: Grant, scopes: tuple[str, ...]) -> Token:
        """A new sign-in: its refresh token to the keyring, its access token kept here."""
        record = store.Record(refresh_token=grant.refresh_token,
                              scopes=list(grant.scopes or scopes), user=grant.user,
                              signed_in_at=iso(utcnow()) or "")
        if grant.refresh_expires_in:
            record.refresh_expires_at = iso(
                utcnow() + timedelta(seconds=grant.refresh_expires_in)) or ""
        for scope in scopes:  # some providers leave granted scopes out of the answer
            if scope not in record.scopes:
                record.scopes.append(scope)
        if not grant.refresh_token:
            raise SignInError("The identity provider gave no refresh token, so the app could "
                              "not stay signed in. For a custom provider, add "
                              "\"offline_access\" to oauth_scopes.", "config")
        store.save(self.account, record)
        with self._lock:
            return self._keep(grant)

    def current(self) -> Token | None:
        with self._lock:
            return self._token


_sources: dict[str, TokenSource] = {}
_sources_lock = threading.Lock()


def source(settings: ServerSettings) -> TokenSource:
    """The process's token source for ``settings``' sign-in (made on first use)."""
    client = client_of(settings)
    account = client.account(settings.username)
    with _sources_lock:
        found = _sources.get(account)
        if found is None or found.client != client:
            found = _sources[account] = TokenSource(client, settings.username)
        return found


def token_for(settings: ServerSettings, protocol: str) -> Token:
    return source(settings).token(protocol, scopes_of(settings, protocol))


def reset() -> None:
    """Forget every access token of this process (tests; a profile switch)."""
    with _sources_lock:
        _sources.clear()
