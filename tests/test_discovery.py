"""Provider presets and discovery: a local HTTP server for autoconfig documents, a stub
resolver for MX and SRV records (no internet)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from helpdesk.auth.discovery import discover, parse_autoconfig, preset, split
from helpdesk.config import parse_profile

AUTOCONFIG = b"""<?xml version="1.0"?>
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>example.org</domain>
    <displayShortName>Example Mail</displayShortName>
    <incomingServer type="pop3"><hostname>pop.example.org</hostname><port>995</port>
      <socketType>SSL</socketType></incomingServer>
    <incomingServer type="imap">
      <hostname>imap.example.org</hostname><port>993</port><socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.org</hostname><port>587</port><socketType>STARTTLS</socketType>
      <username>%EMAILADDRESS%</username><authentication>OAuth2</authentication>
    </outgoingServer>
  </emailProvider>
</clientConfig>
"""


class _Docs(http.server.BaseHTTPRequestHandler):
    docs: dict[str, bytes] = {}
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = self.docs.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def docs() -> Iterator[tuple[str, dict[str, bytes], list[str]]]:
    store: dict[str, bytes] = {}
    seen: list[str] = []

    class Handler(_Docs):
        pass

    Handler.docs, Handler.seen = store, seen
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", store, seen
    finally:
        server.shutdown()
        server.server_close()


def no_dns(name: str) -> list[Any]:
    return []


def urls(base: str) -> tuple[str, ...]:
    return (f"{base}/autoconfig/{{domain}}/mail/config-v1.1.xml?emailaddress={{address}}",
            f"{base}/wellknown/{{domain}}/.well-known/autoconfig/mail/config-v1.1.xml")


@pytest.mark.parametrize(("address", "provider", "imap_host", "sent"), [
    ("support@gmail.com", "google", "imap.gmail.com", "[Gmail]/Sent Mail"),
    ("help@outlook.com", "microsoft", "outlook.office365.com", "Sent Items"),
    ("team@fastmail.com", "fastmail", "imap.fastmail.com", "Sent"),
    ("me@icloud.com", "icloud", "imap.mail.me.com", "Sent Messages"),
    ("shop@yahoo.com", "yahoo", "imap.mail.yahoo.com", "Sent"),
])
def test_presets_by_domain_need_no_network(address: str, provider: str, imap_host: str,
                                           sent: str) -> None:
    def fail(_: str) -> Any:
        raise AssertionError("a known domain needs no look-up")

    found = discover(address, fetch=fail, srv=fail, mx=fail)
    assert found is not None and found.provider == provider
    assert found.imap["host"] == imap_host and found.imap["sent_folder"] == sent
    assert found.imap["username"] == address and found.smtp["from_address"] == address


def test_gmail_files_sent_mail_itself_and_signs_in_with_google() -> None:
    found = preset("google", "support@gmail.com")
    assert found.smtp["save_sent"] is False and found.title == "Gmail / Google Workspace"
    assert found.imap["auth"] == found.smtp["auth"] == "oauth2"
    assert found.oauth_provider == "google"


def test_workspace_and_microsoft_365_domains_by_their_mx_records() -> None:
    mx = {"company.com": ["company-com.mail.protection.outlook.com."],
          "shop.example": ["aspmx.l.google.com.", "alt1.aspmx.l.google.com."]}
    ms = discover("support@company.com", mx=lambda d: mx.get(d, []), srv=no_dns,
                  fetch=lambda u: None)
    assert ms is not None and ms.provider == "microsoft"
    assert ms.imap["oauth_tenant"] == "company.com"  # the domain names the tenant
    assert ms.imap["username"] == "support@company.com"  # the shared mailbox, by address
    assert ms.source == "mx:company-com.mail.protection.outlook.com"
    google = discover("help@shop.example", mx=lambda d: mx.get(d, []), srv=no_dns,
                      fetch=lambda u: None)
    assert google is not None and google.provider == "google"


def test_autoconfig_document_from_the_domain(docs: Any) -> None:
    base, store, seen = docs
    store["/wellknown/example.org/.well-known/autoconfig/mail/config-v1.1.xml"] = AUTOCONFIG
    found = discover("anna@example.org", mx=no_dns, srv=no_dns, autoconfig_urls=urls(base))
    assert found is not None and found.provider == "Example Mail"
    assert found.imap == {"host": "imap.example.org", "port": 993, "security": "tls",
                          "username": "anna", "auth": "password"}
    assert found.smtp["security"] == "starttls" and found.smtp["auth"] == "oauth2"
    assert found.smtp["oauth_provider"] == "custom"
    assert len(seen) == 2  # the first place was asked, then the well-known one
    assert "emailaddress=anna@example.org" in seen[0].replace("%40", "@")


def test_srv_records_when_there_is_no_document(docs: Any) -> None:
    base, _store, _seen = docs
    records = {
        "_imaps._tcp.example.net": [(10, 0, 993, "mail2.example.net."),
                                    (0, 5, 993, "mail.example.net.")],
        "_submissions._tcp.example.net": [(0, 0, 0, ".")],  # decidedly not offered
        "_submission._tcp.example.net": [(0, 0, 587, "smtp.example.net.")],
    }
    found = discover("bob@example.net", mx=no_dns, srv=lambda n: records.get(n, []),
                     autoconfig_urls=urls(base))
    assert found is not None and found.source == "dns-srv"
    assert (found.imap["host"], found.imap["port"], found.imap["security"]) == \
        ("mail.example.net", 993, "tls")
    assert (found.smtp["host"], found.smtp["port"], found.smtp["security"]) == \
        ("smtp.example.net", 587, "starttls")


def test_nothing_known_is_none(docs: Any) -> None:
    base, _store, _seen = docs
    assert discover("x@nowhere.example", mx=no_dns, srv=no_dns,
                    autoconfig_urls=urls(base)) is None


@pytest.mark.parametrize("body", [
    b"<clientConfig><emailProvider><incomingServer type='imap'><hostname>bad host; rm"
    b"</hostname><port>993</port><socketType>SSL</socketType></incomingServer>"
    b"</emailProvider></clientConfig>",
    b'<!DOCTYPE x [<!ENTITY a "aaaa">]><clientConfig>&a;</clientConfig>',
    b"\xff\xfe not xml",
    b"<clientConfig>" + b"<x>" * 10 + b"</clientConfig>",
    b"<a>" + b"b" * 70_000 + b"</a>",
])
def test_hostile_documents_are_ignored(body: bytes) -> None:
    assert parse_autoconfig(body, "a@example.org", "a", "example.org") is None


def test_a_suggestion_is_a_valid_profile() -> None:
    for name in ("google", "microsoft", "fastmail"):
        found = preset(name, "support@company.com")
        imap, smtp = dict(found.imap), dict(found.smtp)
        if imap.get("auth") == "oauth2":
            imap["oauth_client_id"] = smtp["oauth_client_id"] = "client-id"
        profile = parse_profile({"agent": "a", "imap": imap, "smtp": smtp})
        assert profile.imap.host == found.imap["host"]


def test_addresses_are_checked() -> None:
    assert split("Support@Company.COM") == ("Support", "company.com")
    for bad in ("nobody", "@x.com", "a@", "a@bad_domain", "a@x"):
        with pytest.raises(ValueError):
            split(bad)
