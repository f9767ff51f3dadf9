"""The OAuth2 flows, spoken by libraries: authlib (google, custom) and MSAL (microsoft).

Each backend offers the same four steps: :meth:`browser` (authorization code with PKCE,
RFC 7636, on a loopback redirect in the system browser: Python's ``webbrowser``, which
honours ``$BROWSER``), :meth:`device` (RFC 8628, for the CLI and machines without a
browser), :meth:`refresh` and :meth:`revoke`. Both answer with a :class:`Grant` and raise
:class:`~helpdesk.auth.errors.OAuthFailure` with the provider's error code, or a
:class:`~helpdesk.auth.errors.SignInError` when the provider cannot be reached.

Google and ``custom`` are one class with different endpoint addresses, so the tests'
local identity provider (``custom``) runs Google's code; Microsoft's class is the same
MSAL calls whatever the authority, which the tests point at the local provider too.
"""

from __future__ import annotations

import secrets
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from helpdesk.auth.errors import OAuthFailure, SignInError, unreachable
from helpdesk.auth.loopback import LoopbackReceiver
from helpdesk.auth.providers import RESERVED_SCOPES, OAuthClient

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
BROWSER_TIMEOUT = 300.0
HTTP_TIMEOUT = 30.0


@dataclass
class Grant:
    """A token endpoint's answer."""

    access_token: str
    expires_in: float
    refresh_token: str = ""
    scopes: tuple[str, ...] = ()
    user: str = ""
    refresh_expires_in: float | None = None


@dataclass
class DeviceCode:
    """What the person types where: shown by the caller (CLI line, dialog)."""

    user_code: str
    verification_uri: str
    expires_in: float
    message: str = ""

    def text(self) -> str:
        return self.message or (f"To sign in, open {self.verification_uri} in any browser and "
                                f"enter the code {self.user_code}.")


ShowCode = Callable[[DeviceCode], None]
OpenBrowser = Callable[[str], bool]


class Backend(Protocol):
    def browser(self, scopes: tuple[str, ...], *, login_hint: str = "",
                open_browser: OpenBrowser | None = None, timeout: float = BROWSER_TIMEOUT,
                cancel: threading.Event | None = None) -> Grant: ...

    def device(self, scopes: tuple[str, ...], show: ShowCode,
               cancel: threading.Event | None = None) -> Grant: ...

    def refresh(self, refresh_token: str, scopes: tuple[str, ...]) -> Grant: ...

    def revoke(self, refresh_token: str) -> bool: ...


def backend_for(client: OAuthClient) -> Backend:
    if client.library == "msal":
        return MsalBackend(client)
    return AuthlibBackend(client)


def system_browser(url: str) -> bool:
    """Open ``url`` in the person's browser (``$BROWSER`` first, as ``webbrowser`` does)."""
    try:
        return bool(webbrowser.open(url))
    except webbrowser.Error:
        return False


def _no_browser() -> SignInError:
    return SignInError("No web browser could be opened on this computer. Sign in with the "
                       "device code instead: 'python main.py login imap --device'.",
                       "no-browser")


def _user_of(claims: Any) -> str:
    if not isinstance(claims, dict):
        return ""
    for key in ("preferred_username", "email", "upn", "sub"):
        value = claims.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _scopes(value: Any, asked: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str) and value.strip():
        return tuple(value.split())
    return asked


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _grant(token: Any, asked: tuple[str, ...]) -> Grant:
    if not isinstance(token, dict) or not isinstance(token.get("access_token"), str):
        raise OAuthFailure("invalid_response", "the token endpoint sent no access token")
    claims = token.get("id_token_claims")
    if claims is None and isinstance(token.get("id_token"), str):
        claims = _unverified_claims(token["id_token"])
    refresh_in = token.get("refresh_token_expires_in")
    return Grant(access_token=token["access_token"],
                 expires_in=_number(token.get("expires_in"), 3600.0),
                 refresh_token=str(token.get("refresh_token") or ""),
                 scopes=_scopes(token.get("scope"), asked),
                 user=_user_of(claims),
                 refresh_expires_in=_number(refresh_in, 0.0) or None
                 if refresh_in is not None else None)


def _unverified_claims(id_token: str) -> dict[str, Any] | None:
    """The id token's claims, only to show who signed in (the token came straight from
    the token endpoint over TLS; nothing is decided on them)."""
    import base64
    import json

    try:
        payload = id_token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- authlib: google and custom --------------------------------------------------------


class AuthlibBackend:
    """Authorization code + PKCE, device code, refresh and revocation through authlib."""

    def __init__(self, client: OAuthClient) -> None:
        self.client = client

    def _session(self, scopes: tuple[str, ...], redirect_uri: str | None = None) -> Any:
        from authlib.integrations.requests_client import OAuth2Session

        c = self.client
        return OAuth2Session(
            client_id=c.client_id, client_secret=c.client_secret or None,
            token_endpoint_auth_method="client_secret_post" if c.client_secret else "none",
            revocation_endpoint_auth_method="client_secret_post" if c.client_secret
            else "none",
            scope=" ".join(scopes) or None, redirect_uri=redirect_uri,
            code_challenge_method="S256")

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one request; the provider's error answer as OAuthFailure, the network's as
        SignInError."""
        import requests
        from authlib.common.errors import AuthlibBaseError

        try:
            return fn()
        except AuthlibBaseError as exc:
            raise OAuthFailure(str(exc.error or "error"), str(exc.description or "")) \
                from None
        except requests.RequestException as exc:
            raise unreachable(what, exc) from None
        except ValueError as exc:  # not JSON
            raise OAuthFailure("invalid_response", f"not an OAuth answer ({exc})") from None

    def browser(self, scopes: tuple[str, ...], *, login_hint: str = "",
                open_browser: OpenBrowser | None = None, timeout: float = BROWSER_TIMEOUT,
                cancel: threading.Event | None = None) -> Grant:
        from authlib.common.security import generate_token

        c = self.client
        if not c.auth_url:
            raise SignInError("This provider has no browser sign-in configured "
                              "(oauth_auth_url); use 'login --device'.", "config")
        state = secrets.token_urlsafe(24)
        verifier = generate_token(64)
        with LoopbackReceiver(state) as receiver:
            session = self._session(scopes, receiver.redirect_uri)
            extra: dict[str, str] = {}
            if c.provider == "google":
                # Without these Google gives no refresh token on a second sign-in.
                extra = {"access_type": "offline", "prompt": "consent"}
            if login_hint:
                extra["login_hint"] = login_hint
            url, _state = session.create_authorization_url(
                c.auth_url, state=state, code_verifier=verifier, **extra)
            if not (open_browser or system_browser)(url):
                raise _no_browser()
            query = receiver.wait(timeout, cancel)
        if query is None:
            raise OAuthFailure("timeout", "no answer from the browser")
        if "error" in query:
            raise OAuthFailure(query["error"], query.get("error_description", ""))
        code = query.get("code", "")
        token = self._call("finish signing in", lambda: session.fetch_token(
            c.token_url, grant_type="authorization_code", code=code,
            code_verifier=verifier, redirect_uri=receiver.redirect_uri,
            timeout=HTTP_TIMEOUT))
        return _grant(token, scopes)

    def device(self, scopes: tuple[str, ...], show: ShowCode,
               cancel: threading.Event | None = None) -> Grant:
        c = self.client
        if not c.device_url:
            raise SignInError("This provider has no device-code sign-in configured "
                              "(oauth_device_url); sign in with the browser instead.",
                              "config")
        session = self._session(scopes)
        data = {"client_id": c.client_id, "scope": " ".join(scopes)}
        if c.client_secret:
            data["client_secret"] = c.client_secret

        def ask() -> Any:
            resp = session.post(c.device_url, data=data, timeout=HTTP_TIMEOUT,
                                withhold_token=True)
            answer = resp.json()
            if not isinstance(answer, dict):
                raise ValueError("not an object")
            if "error" in answer:
                raise OAuthFailure(str(answer["error"]), str(answer.get("error_description")
                                                             or ""))
            return answer

        answer = self._call("start signing in", ask)
        device_code = str(answer.get("device_code") or "")
        uri = str(answer.get("verification_uri_complete") or answer.get("verification_uri")
                  or answer.get("verification_url") or "")
        if not device_code or not uri or "user_code" not in answer:
            raise OAuthFailure("invalid_response", "the device endpoint sent no code")
        expires_in = _number(answer.get("expires_in"), 900.0)
        interval = max(1.0, _number(answer.get("interval"), 5.0))
        show(DeviceCode(str(answer["user_code"]), str(answer.get("verification_uri")
                                                       or answer.get("verification_url")
                                                       or uri), expires_in))
        deadline = time.monotonic() + expires_in
        stop = cancel or threading.Event()
        while time.monotonic() < deadline:
            try:
                token = self._call("finish signing in", lambda: session.fetch_token(
                    c.token_url, grant_type=DEVICE_GRANT, device_code=device_code,
                    timeout=HTTP_TIMEOUT))
                return _grant(token, scopes)
            except OAuthFailure as failure:
                if failure.error == "slow_down":
                    interval += 5
                elif failure.error != "authorization_pending":
                    raise
            if stop.wait(interval):  # RFC 8628 section 3.5: the server's pace
                raise OAuthFailure("access_denied", "cancelled")
        raise OAuthFailure("expired_token", "the code ran out")

    def refresh(self, refresh_token: str, scopes: tuple[str, ...]) -> Grant:
        session = self._session(())
        # No scope: the grant keeps what was approved (RFC 6749 section 6).
        token = self._call("renew the sign-in", lambda: session.refresh_token(
            self.client.token_url, refresh_token=refresh_token, timeout=HTTP_TIMEOUT))
        grant = _grant(token, scopes)
        if not grant.refresh_token:
            grant.refresh_token = refresh_token  # not rotated: the old one stays good
        return grant

    def revoke(self, refresh_token: str) -> bool:
        if not self.client.revoke_url:
            return False
        session = self._session(())

        def call() -> Any:
            resp = session.revoke_token(self.client.revoke_url, token=refresh_token,
                                        token_type_hint="refresh_token",
                                        timeout=HTTP_TIMEOUT)
            return resp.status_code

        status = self._call("revoke the sign-in", call)
        return bool(200 <= int(status) < 300)


# --- MSAL: microsoft -------------------------------------------------------------------


class MsalBackend:
    """The same steps through MSAL's public client (Entra ID, Microsoft accounts)."""

    def __init__(self, client: OAuthClient) -> None:
        self.client = client
        self._app: Any = None

    def app(self) -> Any:
        if self._app is None:
            import msal
            import requests

            try:
                self._app = msal.PublicClientApplication(
                    self.client.client_id, authority=self.client.authority,
                    instance_discovery=None if self.client.known_microsoft_host else False,
                    token_cache=msal.TokenCache(), timeout=HTTP_TIMEOUT)
            except requests.RequestException as exc:
                raise unreachable("start signing in", exc) from None
            except ValueError as exc:  # MSAL's words for a tenant that does not exist
                raise OAuthFailure("invalid_tenant", f"{exc} (AADSTS90002)") from None
        return self._app

    @staticmethod
    def _scopes(scopes: tuple[str, ...]) -> list[str]:
        return [s for s in scopes if s not in RESERVED_SCOPES]

    def _result(self, what: str, fn: Callable[[], Any], scopes: tuple[str, ...]) -> Grant:
        import requests

        try:
            result = fn()
        except requests.RequestException as exc:
            raise unreachable(what, exc) from None
        if not isinstance(result, dict):
            raise OAuthFailure("invalid_response", "no answer")
        if "error" in result:
            raise OAuthFailure(str(result["error"]), str(result.get("error_description") or ""))
        grant = _grant(result, scopes)
        if not grant.refresh_token:
            grant.refresh_token = self._cached_refresh_token()
        return grant

    def _cached_refresh_token(self) -> str:
        for item in self.app().token_cache.find("RefreshToken"):
            secret = item.get("secret")
            if isinstance(secret, str) and secret:
                return secret
        return ""

    def browser(self, scopes: tuple[str, ...], *, login_hint: str = "",
                open_browser: OpenBrowser | None = None, timeout: float = BROWSER_TIMEOUT,
                cancel: threading.Event | None = None) -> Grant:
        app = self.app()
        kwargs: dict[str, Any] = {"prompt": "select_account", "timeout": int(timeout)}
        if login_hint:
            kwargs["login_hint"] = login_hint
        try:
            return self._result("sign in", lambda: app.acquire_token_interactive(
                self._scopes(scopes), **kwargs), scopes)
        except webbrowser.Error:
            raise _no_browser() from None

    def device(self, scopes: tuple[str, ...], show: ShowCode,
               cancel: threading.Event | None = None) -> Grant:
        import requests

        app = self.app()
        try:
            flow = app.initiate_device_flow(scopes=self._scopes(scopes))
        except requests.RequestException as exc:
            raise unreachable("start signing in", exc) from None
        if "user_code" not in flow:
            raise OAuthFailure(str(flow.get("error") or "invalid_response"),
                               str(flow.get("error_description") or ""))
        show(DeviceCode(str(flow["user_code"]), str(flow.get("verification_uri") or ""),
                        _number(flow.get("expires_in"), 900.0), str(flow.get("message") or "")))
        stop = cancel or threading.Event()
        return self._result("finish signing in", lambda: app.acquire_token_by_device_flow(
            flow, exit_condition=lambda f: stop.is_set() or f.get("expires_at", 0)
            <= time.time()), scopes)

    def refresh(self, refresh_token: str, scopes: tuple[str, ...]) -> Grant:
        app = self.app()
        grant = self._result("renew the sign-in", lambda: app.acquire_token_by_refresh_token(
            refresh_token, self._scopes(scopes)), scopes)
        if not grant.refresh_token:
            grant.refresh_token = refresh_token
        return grant

    def revoke(self, refresh_token: str) -> bool:
        return False  # Entra has no revocation endpoint for public clients
