"""Who issues the tokens: the google, microsoft and custom providers, resolved from a profile.

A server table with ``auth = "oauth2"`` names its provider; :func:`client_of` turns the
table's ``oauth_*`` keys (README "Signing in with OAuth2") into one :class:`OAuthClient`:
the endpoints, the app registration and the library that speaks to it. Google and
``custom`` share one code path (authlib); Microsoft goes through MSAL, pointed at
``login.microsoftonline.com`` or, for a national cloud, at ``oauth_auth_url``.

Two sides (IMAP, SMTP) whose client and ``username`` are the same share one sign-in:
one refresh token in the keyring (:meth:`OAuthClient.account`), one access token in
memory, granted the scopes of both.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from helpdesk.config import Profile, ServerSettings
from helpdesk.errors import ConfigError

GOOGLE_AUTH_URL = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_DEVICE_URL = "https://oauth2.googleapis.com/device/code"
GOOGLE_REVOKE_URL = "https://oauth2.googleapis.com/revoke"
GOOGLE_SCOPES = ("https://mail.google.com/",)

MICROSOFT_HOST = "https://login.microsoftonline.com"
MICROSOFT_SCOPES = {
    "imap": ("https://outlook.office.com/IMAP.AccessAsUser.All",),
    "smtp": ("https://outlook.office.com/SMTP.Send",),
}
#: Hosts MSAL knows itself (instance discovery); any other host is a national cloud or a
#: test identity provider, whose OpenID configuration MSAL reads from the host itself.
MICROSOFT_KNOWN_HOSTS = ("login.microsoftonline.com", "login.microsoftonline.us",
                         "login.partner.microsoftonline.cn", "login.microsoft.com")
#: Scopes every provider grants alongside (MSAL adds them itself and refuses them).
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})

PROTOCOLS = ("imap", "smtp")


@dataclass(frozen=True)
class OAuthClient:
    """One app registration at one identity provider."""

    provider: str  # google | microsoft | custom
    client_id: str
    client_secret: str = ""
    tenant: str = ""
    auth_url: str = ""
    token_url: str = ""
    device_url: str = ""
    revoke_url: str = ""
    #: Microsoft: the authority MSAL signs in at (``https://host/tenant``).
    authority: str = ""

    @property
    def issuer(self) -> str:
        """What tells identity providers apart in a keyring entry's name."""
        return self.authority or self.token_url

    @property
    def library(self) -> str:
        return "msal" if self.provider == "microsoft" else "authlib"

    @property
    def known_microsoft_host(self) -> bool:
        return (urlsplit(self.authority).hostname or "") in MICROSOFT_KNOWN_HOSTS

    @property
    def name(self) -> str:
        return {"google": "Google", "microsoft": "Microsoft"}.get(self.provider,
                                                                  self.issuer_host)

    @property
    def issuer_host(self) -> str:
        return urlsplit(self.issuer).hostname or self.issuer

    def account(self, username: str) -> str:
        """The keyring entry (under service ``helpdesk``) of this sign-in's refresh token."""
        return f"oauth2:{self.provider}:{self.issuer}:{self.client_id}:{username}"


def client_of(settings: ServerSettings) -> OAuthClient:
    """The provider's endpoints with the profile's registration; ConfigError if unusable."""
    provider = settings.oauth_provider
    if provider == "google":
        return OAuthClient(
            provider="google", client_id=settings.oauth_client_id,
            client_secret=settings.oauth_client_secret,
            auth_url=settings.oauth_auth_url or GOOGLE_AUTH_URL,
            token_url=settings.oauth_token_url or GOOGLE_TOKEN_URL,
            device_url=settings.oauth_device_url or GOOGLE_DEVICE_URL,
            revoke_url=settings.oauth_revoke_url or GOOGLE_REVOKE_URL)
    if provider == "microsoft":
        host = (settings.oauth_auth_url or MICROSOFT_HOST).rstrip("/")
        tenant = settings.oauth_tenant or "common"
        return OAuthClient(provider="microsoft", client_id=settings.oauth_client_id,
                           tenant=tenant, authority=f"{host}/{tenant}")
    if provider == "custom":
        return OAuthClient(
            provider="custom", client_id=settings.oauth_client_id,
            client_secret=settings.oauth_client_secret, auth_url=settings.oauth_auth_url,
            token_url=settings.oauth_token_url, device_url=settings.oauth_device_url,
            revoke_url=settings.oauth_revoke_url)
    raise ConfigError(f"auth = \"oauth2\" needs oauth_provider = \"google\", \"microsoft\" or "
                      f"\"custom\", not {provider!r}.")


def scopes_of(settings: ServerSettings, protocol: str) -> tuple[str, ...]:
    """What this side needs granted: the profile's ``oauth_scopes``, else the preset's."""
    if settings.oauth_scopes:
        return settings.oauth_scopes
    if settings.oauth_provider == "google":
        return GOOGLE_SCOPES
    if settings.oauth_provider == "microsoft":
        return MICROSOFT_SCOPES[protocol]
    return ()


def side(profile: Profile, protocol: str) -> ServerSettings:
    if protocol not in PROTOCOLS:
        raise ValueError(protocol)
    return profile.imap if protocol == "imap" else profile.smtp


def sharing(profile: Profile, protocol: str) -> list[str]:
    """The sides (``protocol`` first) that sign in with the same account as ``protocol``."""
    mine = side(profile, protocol)
    if not mine.oauth:
        return [protocol]
    account = client_of(mine).account(mine.username)
    out = [protocol]
    for other in PROTOCOLS:
        settings = side(profile, other)
        if other != protocol and settings.oauth and settings.host \
                and client_of(settings).account(settings.username) == account:
            out.append(other)
    return out


def sign_in_scopes(profile: Profile, protocol: str) -> tuple[str, ...]:
    """What a sign-in for ``protocol`` asks for: the scopes of every side sharing it."""
    wanted: list[str] = []
    for name in sharing(profile, protocol):
        for scope in scopes_of(side(profile, name), name):
            if scope not in wanted:
                wanted.append(scope)
    return tuple(wanted)
