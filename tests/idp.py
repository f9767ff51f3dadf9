"""A real OAuth2 identity provider on loopback, for the tests (no mocks, no internet).

:func:`start_idp` serves, over HTTPS (a throw-away CA at ``idp.ca_file``, which
``REQUESTS_CA_BUNDLE`` makes authlib and MSAL trust):

* ``/authorize`` (and ``/{tenant}/oauth2/v2.0/authorize``, the shape MSAL uses): checks
  the client, a loopback ``redirect_uri``, ``response_type=code``, a PKCE S256
  ``code_challenge`` and the scopes, then approves ``idp.user`` (the test user) and
  redirects with a one-time code, or with ``error=access_denied`` when
  ``idp.approve`` is False;
* ``/token``: the authorization-code grant (the PKCE verifier must hash to the
  challenge, the redirect must match, a code works once), the refresh grant (refresh
  tokens rotate: the old one stops working) and the device-code grant (RFC 8628:
  ``authorization_pending`` until someone approves the user code at ``/device``);
* ``/devicecode`` (device authorization), ``/revoke`` (RFC 7009), ``/introspect``
  (RFC 7662), and ``/{tenant}/v2.0/.well-known/openid-configuration`` for MSAL
  (an unknown tenant gets Microsoft's AADSTS90002 answer).

``/introspect`` is also served over plain HTTP on ``idp.introspect_url``'s port, for
Dovecot's ``oauth2`` passdb. Access tokens live ``idp.access_lifetime`` seconds.
``idp.fail_token`` makes token requests answer an error (error, description) to test
what the app says.
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.server
import json
import secrets
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from servers import HOST, _make_tls_files

CLIENT_ID = "helpdesk-test-client"
TENANT = "contoso"
SCOPES = ("mail.imap", "mail.smtp", "offline_access", "openid", "profile", "email",
          "https://outlook.office.com/IMAP.AccessAsUser.All",
          "https://outlook.office.com/SMTP.Send")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class _Grant:
    user: str
    client_id: str
    scopes: tuple[str, ...]


@dataclass
class _Access:
    grant: _Grant
    expires: float
    refresh: str


@dataclass
class _Device:
    grant: _Grant
    user_code: str
    expires: float
    approved: bool = False
    denied: bool = False
    polls: int = 0


@dataclass
class IdentityProvider:
    user: str = "agent-a"
    client_id: str = CLIENT_ID
    tenants: tuple[str, ...] = (TENANT, "common", "organizations")
    access_lifetime: float = 3600.0
    approve: bool = True
    #: (error, description) for every token request while set
    fail_token: tuple[str, str] | None = None
    host: str = HOST
    port: int = 0
    plain_port: int = 0
    ca_file: str = ""
    workdir: str = ""
    # state, under _lock
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    access: dict[str, _Access] = field(default_factory=dict)
    refresh: dict[str, _Grant] = field(default_factory=dict)
    devices: dict[str, _Device] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _servers: list[http.server.ThreadingHTTPServer] = field(default_factory=list)

    # -- addresses ---------------------------------------------------------
    @property
    def base(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.base}/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base}/token"

    @property
    def device_url(self) -> str:
        return f"{self.base}/devicecode"

    @property
    def revoke_url(self) -> str:
        return f"{self.base}/revoke"

    @property
    def introspect_url(self) -> str:
        return f"http://{self.host}:{self.plain_port}/introspect"

    def oauth_keys(self, scopes: tuple[str, ...] = ("mail.imap", "mail.smtp",
                                                    "offline_access")) -> dict[str, Any]:
        """The profile keys of a ``custom`` provider pointing here."""
        return {"auth": "oauth2", "oauth_provider": "custom", "oauth_client_id": self.client_id,
                "oauth_auth_url": self.auth_url, "oauth_token_url": self.token_url,
                "oauth_device_url": self.device_url, "oauth_revoke_url": self.revoke_url,
                "oauth_scopes": list(scopes)}

    def microsoft_keys(self, tenant: str = TENANT) -> dict[str, Any]:
        """The profile keys of the ``microsoft`` provider (MSAL) pointed here."""
        return {"auth": "oauth2", "oauth_provider": "microsoft",
                "oauth_client_id": self.client_id, "oauth_tenant": tenant,
                "oauth_auth_url": self.base}

    # -- test controls -----------------------------------------------------
    def count(self, what: str) -> int:
        with self._lock:
            return self.counts.get(what, 0)

    def approve_device(self, user_code: str, deny: bool = False) -> bool:
        """What the person does at the verification page."""
        with self._lock:
            for device in self.devices.values():
                if device.user_code == user_code:
                    device.approved, device.denied = not deny, deny
                    return True
        return False

    def revoke_user(self, user: str | None = None) -> None:
        """An admin revokes every token of ``user`` (default: the test user)."""
        who = user or self.user
        with self._lock:
            self.refresh = {k: g for k, g in self.refresh.items() if g.user != who}
            self.access = {k: a for k, a in self.access.items() if a.grant.user != who}

    def revoke_access_tokens(self) -> None:
        """Every access token stops working; refresh tokens keep working."""
        with self._lock:
            self.access.clear()

    def expire_access_tokens(self) -> None:
        with self._lock:
            for a in self.access.values():
                a.expires = 0.0

    def introspect(self, token: str) -> dict[str, Any]:
        with self._lock:
            self.counts["introspect"] = self.counts.get("introspect", 0) + 1
            found = self.access.get(token)
            if found is None or found.expires <= time.time():
                return {"active": False}
            return {"active": True, "username": found.grant.user, "sub": found.grant.user,
                    "client_id": found.grant.client_id, "scope": " ".join(found.grant.scopes),
                    "exp": int(found.expires), "token_type": "Bearer"}

    def active_tokens(self) -> int:
        with self._lock:
            return sum(1 for a in self.access.values() if a.expires > time.time())

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> IdentityProvider:
        self.workdir = tempfile.mkdtemp(prefix="helpdesk-idp-")
        ca, cert, key = _make_tls_files(Path(self.workdir) / "tls")
        self.ca_file = str(ca)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        secure = self._serve(ctx)
        plain = self._serve(None)
        self.port = secure.server_address[1]
        self.plain_port = plain.server_address[1]
        return self

    def _serve(self, ctx: ssl.SSLContext | None) -> http.server.ThreadingHTTPServer:
        idp = self

        class Handler(_Handler):
            provider = idp
            secure = ctx is not None

        server = http.server.ThreadingHTTPServer((self.host, 0), Handler)
        server.daemon_threads = True
        if ctx is not None:
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True,
                         name="test-idp").start()
        self._servers.append(server)
        return server

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        import shutil

        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the protocol ------------------------------------------------------
    def _bump(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def _issue(self, grant: _Grant, *, nonce: str = "", old_refresh: str = "",
               client_info: bool = False) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(24)
        refresh = "rt-" + secrets.token_urlsafe(24)
        if old_refresh:
            self.refresh.pop(old_refresh, None)  # rotation: the old one is spent
            for a in self.access.values():
                if a.refresh == old_refresh:
                    a.refresh = refresh
        self.refresh[refresh] = grant
        self.access[access] = _Access(grant, time.time() + self.access_lifetime, refresh)
        now = int(time.time())
        claims = {"iss": f"{self.base}/{TENANT}/v2.0", "sub": grant.user, "aud": grant.client_id,
                  "iat": now, "nbf": now, "exp": now + 3600, "preferred_username": grant.user,
                  "oid": grant.user, "tid": TENANT}
        if nonce:
            claims["nonce"] = nonce
        header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        id_token = f"{header}.{_b64(json.dumps(claims).encode())}."
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                  "expires_in": int(self.access_lifetime) or 1,
                                  "refresh_token": refresh, "scope": " ".join(grant.scopes),
                                  "id_token": id_token}
        if client_info:
            answer["client_info"] = _b64(json.dumps({"uid": grant.user,
                                                     "utid": TENANT}).encode())
        return answer

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        """(status, headers, json body) of an authorization request."""
        redirect = query.get("redirect_uri", "")
        parts = urlsplit(redirect)
        if query.get("client_id") != self.client_id:
            return 400, {}, {"error": "unauthorized_client",
                             "error_description": "AADSTS700016: Application not found"}
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            return 400, {}, {"error": "invalid_request", "error_description": "bad redirect"}

        def back(params: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
            params["state"] = query.get("state", "")
            if query.get("response_mode") == "form_post":  # what MSAL asks for
                fields = "".join(f'<input type="hidden" name="{html.escape(k)}" '
                                 f'value="{html.escape(v)}">' for k, v in params.items())
                page = (f'<html><body onload="document.forms[0].submit()"><form method="post" '
                        f'action="{html.escape(redirect)}">{fields}</form></body></html>')
                return 200, {}, {"html": page}
            sep = "&" if parts.query else "?"
            return 302, {"Location": redirect + sep + urlencode(params)}, {}

        scopes = tuple(query.get("scope", "").split())
        if query.get("response_type") != "code":
            return back({"error": "unsupported_response_type"})
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return back({"error": "invalid_request", "error_description": "PKCE S256 needed"})
        if not scopes or any(s not in SCOPES for s in scopes):
            return back({"error": "invalid_scope", "error_description": "unknown scope"})
        if not self.approve:
            return back({"error": "access_denied", "error_description": "the user said no"})
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._bump("authorize")
            self.codes[code] = {"grant": _Grant(self.user, self.client_id, scopes),
                                "challenge": query["code_challenge"], "redirect": redirect,
                                "nonce": query.get("nonce", ""), "used": False}
        return back({"code": code})

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant_type = form.get("grant_type", "")
        with self._lock:
            self._bump(f"token:{grant_type}")
            if self.fail_token is not None:
                error, description = self.fail_token
                return 400, {"error": error, "error_description": description}
            if form.get("client_id") != self.client_id:
                return 401, {"error": "invalid_client", "error_description": "who are you"}
            client_info = form.get("client_info") == "1"
            if grant_type == "authorization_code":
                entry = self.codes.get(form.get("code", ""))
                if entry is None or entry["used"]:
                    return 400, {"error": "invalid_grant", "error_description": "bad code"}
                entry["used"] = True
                verifier = form.get("code_verifier", "")
                challenge = _b64(hashlib.sha256(verifier.encode()).digest())
                if not verifier or challenge != entry["challenge"]:
                    self._bump("pkce-failed")
                    return 400, {"error": "invalid_grant",
                                 "error_description": "PKCE verification failed"}
                if form.get("redirect_uri") != entry["redirect"]:
                    return 400, {"error": "invalid_grant", "error_description": "redirect"}
                return 200, self._issue(entry["grant"], nonce=entry["nonce"],
                                        client_info=client_info)
            if grant_type == "refresh_token":
                old = form.get("refresh_token", "")
                grant = self.refresh.get(old)
                if grant is None:
                    return 400, {"error": "invalid_grant", "error_description":
                                 "AADSTS70000: The refresh token was revoked or expired."}
                asked = tuple(s for s in form.get("scope", "").split()
                              if s not in ("openid", "profile", "offline_access"))
                if any(s not in grant.scopes for s in asked):
                    return 400, {"error": "invalid_scope",
                                 "error_description": "AADSTS70011: scope not granted"}
                return 200, self._issue(grant, old_refresh=old, client_info=client_info)
            if grant_type == "urn:ietf:params:oauth:grant-type:device_code":
                device = self.devices.get(form.get("device_code", ""))
                if device is None:
                    return 400, {"error": "invalid_grant", "error_description": "bad code"}
                device.polls += 1
                if device.expires <= time.time():
                    return 400, {"error": "expired_token"}
                if device.denied:
                    return 400, {"error": "access_denied"}
                if not device.approved:
                    return 400, {"error": "authorization_pending"}
                del self.devices[form["device_code"]]
                return 200, self._issue(device.grant, client_info=client_info)
            return 400, {"error": "unsupported_grant_type"}

    def device_authorization(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("client_id") != self.client_id:
            return 401, {"error": "invalid_client"}
        scopes = tuple(form.get("scope", "").split())
        if not scopes or any(s not in SCOPES for s in scopes):
            return 400, {"error": "invalid_scope"}
        code = secrets.token_urlsafe(16)
        user_code = "".join(secrets.choice("BCDFGHJKLMNPQRSTVWXZ") for _ in range(8))
        with self._lock:
            self._bump("devicecode")
            self.devices[code] = _Device(_Grant(self.user, self.client_id, scopes), user_code,
                                         time.time() + 300)
        return 200, {"device_code": code, "user_code": user_code,
                     "verification_uri": f"{self.base}/device", "expires_in": 300,
                     "interval": 1,
                     "message": f"To sign in, open {self.base}/device and enter {user_code}."}

    def revoke(self, form: dict[str, str]) -> int:
        token = form.get("token", "")
        with self._lock:
            self._bump("revoke")
            if token in self.refresh:
                del self.refresh[token]
                self.access = {k: a for k, a in self.access.items() if a.refresh != token}
            self.access.pop(token, None)
        return 200

    def openid_configuration(self, tenant: str) -> tuple[int, dict[str, Any]]:
        if tenant not in self.tenants:
            return 400, {"error": "invalid_tenant", "error_description":
                         f"AADSTS90002: Tenant '{tenant}' not found."}
        base = f"{self.base}/{tenant}"
        return 200, {"issuer": f"{base}/v2.0",
                     "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                     "token_endpoint": f"{base}/oauth2/v2.0/token",
                     "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                     "response_types_supported": ["code"],
                     "code_challenge_methods_supported": ["S256"]}


class _Handler(http.server.BaseHTTPRequestHandler):
    provider: IdentityProvider
    secure: bool
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None, text: str | None = None) -> None:
        data = (text.encode() if text is not None
                else json.dumps(body or {}).encode() if body is not None or status != 302
                else b"")
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/html" if text is not None
                         else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):  # client_secret_basic: the id counts as sent
            user = base64.b64decode(auth[6:]).decode().partition(":")[0]
            form.setdefault("client_id", user)
        return form

    @staticmethod
    def _endpoint(path: str) -> tuple[str, str]:
        """('authorize'|'token'|..., tenant) for /x and /{tenant}/oauth2/v2.0/x."""
        parts = [p for p in path.split("/") if p]
        if len(parts) == 4 and parts[1:3] == ["oauth2", "v2.0"]:
            return parts[3], parts[0]
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return "openid", parts[0]
        return "/".join(parts), ""

    def do_GET(self) -> None:
        idp = self.provider
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        name, tenant = self._endpoint(parts.path)
        if not self.secure:
            self._send(404, {"error": "not_found"})
        elif name == "authorize":
            if tenant and tenant not in idp.tenants:
                self._send(400, {"error": "invalid_tenant"})
                return
            status, headers, body = idp.authorize(query)
            if "html" in body:
                self._send(status, text=body["html"])
            else:
                self._send(status, body if status != 302 else None, headers)
        elif name == "openid":
            self._send(*idp.openid_configuration(tenant))
        elif name == "device":
            if "user_code" in query:
                ok = idp.approve_device(query["user_code"])
                self._send(200 if ok else 404, text="approved" if ok else "unknown code")
            else:
                self._send(200, text="<form><input name=user_code></form>")
        else:
            self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:
        idp = self.provider
        name, _tenant = self._endpoint(urlsplit(self.path).path)
        form = self._form()
        if name == "introspect":
            self._send(200, idp.introspect(form.get("token", "")))
        elif not self.secure:
            self._send(404, {"error": "not_found"})
        elif name == "token":
            self._send(*idp.token(form))
        elif name == "devicecode":
            self._send(*idp.device_authorization(form))
        elif name == "revoke":
            self._send(idp.revoke(form), {})
        else:
            self._send(404, {"error": "not_found"})


def start_idp(**kwargs: Any) -> IdentityProvider:
    return IdentityProvider(**kwargs).start()
