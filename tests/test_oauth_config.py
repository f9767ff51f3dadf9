"""The OAuth2 profile keys (a documented contract) and the pure SASL/provider logic."""

from __future__ import annotations

import json
from typing import Any

import pytest

from helpdesk.auth import sasl
from helpdesk.auth.errors import OAuthFailure, explain
from helpdesk.auth.providers import client_of, sharing, sign_in_scopes
from helpdesk.config import parse_profile
from helpdesk.errors import ConfigError


def profile(imap: dict[str, Any], smtp: dict[str, Any] | None = None) -> Any:
    data: dict[str, Any] = {"agent": "a", "imap": {"host": "imap.example.com",
                                                   "username": "support@example.com", **imap}}
    if smtp is not None:
        data["smtp"] = {"host": "smtp.example.com", "username": "support@example.com", **smtp}
    return parse_profile(data)


def test_password_profiles_are_unchanged() -> None:
    p = profile({"password_command": "echo x"})
    assert p.imap.auth == "password" and not p.imap.oauth and p.imap.oauth_provider == ""


def test_microsoft_keys_and_preset_scopes() -> None:
    keys = {"auth": "oauth2", "oauth_provider": "microsoft", "oauth_client_id": "c1",
            "oauth_tenant": "company.com"}
    p = profile(keys, keys)
    client = client_of(p.imap)
    assert client.authority == "https://login.microsoftonline.com/company.com"
    assert client.library == "msal" and client.known_microsoft_host
    assert sharing(p, "imap") == ["imap", "smtp"]  # one sign-in for both sides
    assert sign_in_scopes(p, "smtp") == ("https://outlook.office.com/SMTP.Send",
                                         "https://outlook.office.com/IMAP.AccessAsUser.All")


def test_google_preset_endpoints() -> None:
    p = profile({"auth": "oauth2", "oauth_provider": "google", "oauth_client_id": "c",
                 "oauth_client_secret": "not-secret"})
    client = client_of(p.imap)
    assert client.token_url == "https://oauth2.googleapis.com/token"
    assert client.library == "authlib" and client.client_secret == "not-secret"
    assert sign_in_scopes(p, "imap") == ("https://mail.google.com/",)


def test_custom_scopes_as_list_or_string() -> None:
    base = {"auth": "oauth2", "oauth_provider": "custom", "oauth_client_id": "c",
            "oauth_auth_url": "https://idp.example/auth",
            "oauth_token_url": "https://idp.example/token"}
    assert profile({**base, "oauth_scopes": "a b"}).imap.oauth_scopes == ("a", "b")
    assert profile({**base, "oauth_scopes": ["a"]}).imap.oauth_scopes == ("a",)


@pytest.mark.parametrize(("imap", "words"), [
    ({"auth": "token"}, "'auth' must be"),
    ({"auth": "oauth2"}, "needs oauth_provider"),
    ({"auth": "oauth2", "oauth_provider": "aol"}, "not 'aol'"),
    ({"auth": "oauth2", "oauth_provider": "google"}, "needs oauth_client_id"),
    ({"auth": "oauth2", "oauth_provider": "custom", "oauth_client_id": "c"},
     "needs oauth_auth_url (or oauth_device_url), oauth_token_url, oauth_scopes"),
    ({"auth": "oauth2", "oauth_provider": "custom", "oauth_client_id": "c",
      "oauth_token_url": "ftp://x", "oauth_auth_url": "https://x", "oauth_scopes": ["s"]},
     "must be an https:// address"),
    ({"auth": "oauth2", "oauth_provider": "google", "oauth_client_id": "c", "username": ""},
     "needs 'username'"),
    ({"oauth_scopes": [1]}, "list of scope names"),
])
def test_bad_keys_are_explained(imap: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        profile(imap)


def test_mechanism_choice_prefers_the_standard() -> None:
    assert sasl.choose(["PLAIN", "XOAUTH2", "OAUTHBEARER"]) == "OAUTHBEARER"
    assert sasl.choose(["xoauth2", "login"]) == "XOAUTH2"
    assert sasl.choose(["PLAIN"]) is None


def test_initial_responses() -> None:
    assert sasl.initial("XOAUTH2", "a@b.c", "T") == b"user=a@b.c\x01auth=Bearer T\x01\x01"
    assert sasl.initial("OAUTHBEARER", "a,=b@c", "T", "h", 993) == \
        b"n,a=a=2C=3Db@c,\x01host=h\x01port=993\x01auth=Bearer T\x01\x01"
    assert sasl.parse_error(b'{"status":"invalid_token"}') == {"status": "invalid_token"}
    assert sasl.parse_error(b"\xff") is None and sasl.parse_error(b"[1]") is None


@pytest.mark.parametrize(("error", "kind"), [
    (("invalid_grant", "AADSTS50020: User account from identity provider does not exist in "
                       "tenant"), "tenant"),
    (("invalid_request", "AADSTS700016: Application with identifier was not found in the "
                         "directory"), "tenant"),
    (("invalid_grant", "AADSTS50076: you must use multi-factor authentication"), "mfa"),
    (("invalid_client", "AADSTS53003: Access has been blocked by Conditional Access"),
     "admin"),
    (("org_internal", ""), "admin"),
    (("invalid_grant", ""), "revoked"),
    (("unknown_thing", "?"), "other"),
])
def test_error_kinds(error: tuple[str, str], kind: str) -> None:
    err = explain(OAuthFailure(*error), "microsoft", "imap", "support@company.com")
    assert err.kind == kind
    assert "imap" in str(err).lower() or kind in ("tenant", "admin", "client")


def test_auth_pairs_round_trip() -> None:
    import tomllib

    from helpdesk.config import auth_pairs

    keys = {"auth": "oauth2", "oauth_provider": "custom", "oauth_client_id": "c",
            "oauth_auth_url": "https://idp.example/a", "oauth_token_url": "https://idp.example/t",
            "oauth_scopes": ["s1", "s2"]}
    p = profile(keys)
    text = "\n".join(f"{k} = {json.dumps(v)}" for k, v in auth_pairs(p.imap))
    assert tomllib.loads(text) == keys
    assert auth_pairs(profile({}).imap) == []
