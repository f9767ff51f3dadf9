"""From an e-mail address to server settings: provider presets, then the domain's own
autoconfig document, then DNS SRV records (RFC 6186 / RFC 8314).

:func:`discover` answers with a :class:`Suggestion`: profile keys for ``[imap]`` and
``[smtp]`` (the README's contract) that the setup dialog fills in, and where they came
from. Nothing here changes anything; a suggestion the domain cannot give is ``None``.

Order, first hit wins:

1. the address's domain is a known provider's (``gmail.com``, ``outlook.com``, ...);
2. the domain's MX records point at a known provider (a Google Workspace or Microsoft
   365 domain: ``company.com`` with ``aspmx.l.google.com`` or ``*.mail.protection
   .outlook.com``);
3. the domain's autoconfig document (Thunderbird's format,
   ``https://autoconfig.DOMAIN/mail/config-v1.1.xml`` and
   ``https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml``);
4. SRV records ``_imaps._tcp``/``_imap._tcp`` and ``_submissions._tcp``/``_submission._tcp``.

Everything from the network is untrusted: documents are capped in size, parsed without
entities, and only the fields below are read; host names are checked.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: (priority, weight, port, target) records for a name, [] when there are none.
SrvLookup = Callable[[str], list[tuple[int, int, int, str]]]
#: Host names of the MX records for a domain, [] when there are none.
MxLookup = Callable[[str], list[str]]
#: The body at a URL, or None (not found, unreachable).
Fetch = Callable[[str], bytes | None]

AUTOCONFIG_URLS = ("https://autoconfig.{domain}/mail/config-v1.1.xml?emailaddress={address}",
                   "https://{domain}/.well-known/autoconfig/mail/config-v1.1.xml"
                   "?emailaddress={address}")
MAX_DOCUMENT = 64 * 1024
TIMEOUT = 5.0
_HOST = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                   r"[A-Za-z0-9-]{2,63}$")


@dataclass
class Suggestion:
    """Profile keys for ``[imap]`` and ``[smtp]``, and what they came from."""

    provider: str  # a preset's name, "autoconfig" or "srv"
    imap: dict[str, Any]
    smtp: dict[str, Any]
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        """The provider as a person knows it ("Microsoft 365"), for messages."""
        return TITLES.get(self.provider, self.provider)

    @property
    def oauth_provider(self) -> str | None:
        value = self.imap.get("oauth_provider")
        return str(value) if value else None


def _gmail(address: str, domain: str) -> Suggestion:
    return Suggestion(
        "google",
        {"host": "imap.gmail.com", "port": 993, "security": "tls", "username": address,
         "auth": "oauth2", "oauth_provider": "google", "sent_folder": "[Gmail]/Sent Mail",
         "team_folder": "HelpDesk/Log"},
        {"host": "smtp.gmail.com", "port": 465, "security": "tls", "username": address,
         "auth": "oauth2", "oauth_provider": "google", "from_address": address,
         "save_sent": False},
        notes=["Gmail files sent mail in [Gmail]/Sent Mail itself (save_sent = false); the "
               "team folder is a label."])


def _microsoft(address: str, domain: str) -> Suggestion:
    consumer = domain in _MICROSOFT_CONSUMER
    tenant = "consumers" if consumer else domain
    return Suggestion(
        "microsoft",
        {"host": "outlook.office365.com", "port": 993, "security": "tls",
         "username": address, "auth": "oauth2", "oauth_provider": "microsoft",
         "oauth_tenant": tenant, "sent_folder": "Sent Items", "team_folder": "HelpDesk/Log"},
        {"host": "smtp.office365.com", "port": 587, "security": "starttls",
         "username": address, "auth": "oauth2", "oauth_provider": "microsoft",
         "oauth_tenant": tenant, "from_address": address},
        notes=["A shared mailbox: its address is the username; each agent signs in as "
               "themselves (they need Full Access and Send As on it)."])


def _password_preset(name: str, imap_host: str, smtp_host: str, smtp_port: int, sent: str,
                     note: str) -> Callable[[str, str], Suggestion]:
    def make(address: str, domain: str) -> Suggestion:
        security = "tls" if smtp_port == 465 else "starttls"
        return Suggestion(
            name,
            {"host": imap_host, "port": 993, "security": "tls", "username": address,
             "auth": "password", "sent_folder": sent, "team_folder": "HelpDesk/Log"},
            {"host": smtp_host, "port": smtp_port, "security": security, "username": address,
             "auth": "password", "from_address": address},
            notes=[note])
    return make


TITLES = {"google": "Gmail / Google Workspace", "microsoft": "Microsoft 365 / Outlook.com",
          "fastmail": "Fastmail", "icloud": "iCloud Mail", "yahoo": "Yahoo Mail",
          "srv": "the domain's DNS records"}
_MICROSOFT_CONSUMER = frozenset({"outlook.com", "hotmail.com", "live.com", "msn.com",
                                 "outlook.de", "outlook.fr", "hotmail.co.uk", "hotmail.fr",
                                 "live.co.uk"})
_PRESETS: dict[str, Callable[[str, str], Suggestion]] = {
    "google": _gmail,
    "microsoft": _microsoft,
    "fastmail": _password_preset("fastmail", "imap.fastmail.com", "smtp.fastmail.com", 465,
                                 "Sent", "Fastmail: use an app password (Settings > "
                                 "Privacy & Security > App passwords)."),
    "icloud": _password_preset("icloud", "imap.mail.me.com", "smtp.mail.me.com", 587,
                               "Sent Messages", "iCloud: use an app-specific password "
                               "(appleid.apple.com)."),
    "yahoo": _password_preset("yahoo", "imap.mail.yahoo.com", "smtp.mail.yahoo.com", 465,
                              "Sent", "Yahoo: use an app password (Account security)."),
}
_DOMAINS: dict[str, str] = {
    "gmail.com": "google", "googlemail.com": "google",
    **{d: "microsoft" for d in _MICROSOFT_CONSUMER},
    "fastmail.com": "fastmail", "fastmail.fm": "fastmail", "messagingengine.com": "fastmail",
    "icloud.com": "icloud", "me.com": "icloud", "mac.com": "icloud",
    "yahoo.com": "yahoo", "ymail.com": "yahoo", "rocketmail.com": "yahoo",
    "yahoo.co.uk": "yahoo", "yahoo.fr": "yahoo", "yahoo.de": "yahoo",
}
#: MX host suffixes of providers that host other people's domains.
_MX_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("google.com", "google"), ("googlemail.com", "google"),
    ("mail.protection.outlook.com", "microsoft"), ("messagingengine.com", "fastmail"),
    ("mail.icloud.com", "icloud"), ("yahoodns.net", "yahoo"),
)


def split(address: str) -> tuple[str, str]:
    """(local part, lower-cased domain) of an address; ValueError if it is not one."""
    local, at, domain = address.strip().rpartition("@")
    domain = domain.strip().rstrip(".").lower()
    if not at or not local or not _HOST.match(domain):
        raise ValueError(f"{address!r} is not an e-mail address")
    return local, domain


def preset(name: str, address: str) -> Suggestion:
    """A provider's settings for ``address`` (``google``, ``microsoft``, ``fastmail``,
    ``icloud``, ``yahoo``): what the setup dialog's provider buttons fill in."""
    _local, domain = split(address)
    found = _PRESETS[name](address.strip(), domain)
    found.source = "preset"
    return found


def discover(address: str, *, fetch: Fetch | None = None, srv: SrvLookup | None = None,
             mx: MxLookup | None = None,
             autoconfig_urls: tuple[str, ...] = AUTOCONFIG_URLS) -> Suggestion | None:
    """Settings for ``address`` (see the module's order), or None when nothing is known."""
    local, domain = split(address)
    address = address.strip()
    name = _DOMAINS.get(domain)
    if name is not None:
        return preset(name, address)
    for host in (mx or mx_hosts)(domain):
        host = host.rstrip(".").lower()
        for suffix, provider in _MX_SUFFIXES:
            if host == suffix or host.endswith("." + suffix):
                found = preset(provider, address)
                found.source = f"mx:{host}"
                return found
    get = fetch or http_get
    for template in autoconfig_urls:
        body = get(template.format(domain=domain, address=address))
        if body:
            found_doc = parse_autoconfig(body, address, local, domain)
            if found_doc is not None:
                found_doc.source = template.split("?")[0].format(domain=domain)
                return found_doc
    return from_srv(address, domain, srv or srv_records)


# --- autoconfig ------------------------------------------------------------------------


def _fill(template: str, address: str, local: str, domain: str) -> str:
    return (template.replace("%EMAILADDRESS%", address).replace("%EMAILLOCALPART%", local)
            .replace("%EMAILDOMAIN%", domain))


_SOCKET = {"SSL": "tls", "STARTTLS": "starttls", "plain": "plain"}


def _server(node: ET.Element, address: str, local: str, domain: str) -> dict[str, Any] | None:
    host = _fill((node.findtext("hostname") or "").strip(), address, local, domain)
    port_text = (node.findtext("port") or "").strip()
    security = _SOCKET.get((node.findtext("socketType") or "").strip())
    if not _HOST.match(host) or not port_text.isdigit() or security is None:
        return None
    port = int(port_text)
    if not 0 < port < 65536:
        return None
    auths = [(a.text or "").strip() for a in node.findall("authentication")]
    out: dict[str, Any] = {"host": host.lower(), "port": port, "security": security,
                           "username": _fill((node.findtext("username") or
                                              "%EMAILADDRESS%").strip(), address, local,
                                             domain)[:320],
                           "auth": "oauth2" if auths and auths[0] == "OAuth2" else "password"}
    return out


def parse_autoconfig(body: bytes, address: str, local: str, domain: str) -> Suggestion | None:
    """A Thunderbird autoconfig document's first IMAP and SMTP servers, or None."""
    if len(body) > MAX_DOCUMENT or b"<!ENTITY" in body or b"<!DOCTYPE" in body:
        return None  # no entity tricks: the document is someone else's
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    provider = root.find("emailProvider")
    if provider is None:
        return None
    imap = smtp = None
    for node in provider.findall("incomingServer"):
        if node.get("type") == "imap" and imap is None:
            imap = _server(node, address, local, domain)
    for node in provider.findall("outgoingServer"):
        if node.get("type") == "smtp" and smtp is None:
            smtp = _server(node, address, local, domain)
    if imap is None:
        return None
    notes = []
    if imap.get("auth") == "oauth2":
        notes.append("The domain asks for OAuth2 sign-in; choose the provider (custom) and "
                     "its endpoints.")
        imap["oauth_provider"] = "custom"
    if smtp is not None:
        smtp["from_address"] = address
        if smtp.get("auth") == "oauth2":
            smtp["oauth_provider"] = "custom"
    name = (provider.findtext("displayShortName") or domain).strip()[:80]
    return Suggestion(name, imap, smtp or {}, notes=notes)


def http_get(url: str) -> bytes | None:
    """GET ``url`` (TLS verified) and return at most :data:`MAX_DOCUMENT` bytes, or None."""
    import requests

    try:
        with requests.get(url, timeout=TIMEOUT, stream=True, allow_redirects=True) as resp:
            if resp.status_code != 200:
                return None
            body = resp.raw.read(MAX_DOCUMENT + 1, decode_content=True)
    except (requests.RequestException, OSError, ValueError):
        return None
    return body if isinstance(body, bytes) and len(body) <= MAX_DOCUMENT else None


# --- DNS -------------------------------------------------------------------------------


def _best(records: list[tuple[int, int, int, str]]) -> tuple[str, int] | None:
    usable = [(p, -w, port, t.rstrip(".").lower()) for p, w, port, t in records
              if t.rstrip(".") and 0 < port < 65536 and _HOST.match(t.rstrip("."))]
    if not usable:
        return None  # none, or "." (RFC 2782: the service is decidedly not offered)
    _p, _w, port, target = min(usable)
    return target, port


def from_srv(address: str, domain: str, lookup: SrvLookup) -> Suggestion | None:
    """Servers from RFC 6186 SRV records (implicit TLS preferred, RFC 8314)."""
    imap = smtp = None
    for name, security in ((f"_imaps._tcp.{domain}", "tls"), (f"_imap._tcp.{domain}",
                                                              "starttls")):
        best = _best(lookup(name))
        if best is not None:
            imap = {"host": best[0], "port": best[1], "security": security,
                    "username": address, "auth": "password"}
            break
    if imap is None:
        return None
    for name, security in ((f"_submissions._tcp.{domain}", "tls"),
                           (f"_submission._tcp.{domain}", "starttls")):
        best = _best(lookup(name))
        if best is not None:
            smtp = {"host": best[0], "port": best[1], "security": security,
                    "username": address, "auth": "password", "from_address": address}
            break
    return Suggestion("srv", imap, smtp or {}, source="dns-srv")


def srv_records(name: str) -> list[tuple[int, int, int, str]]:
    """SRV records of ``name`` through the system's resolver; [] on any failure."""
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(name, "SRV", lifetime=TIMEOUT)
    except (dns.exception.DNSException, OSError):
        return []
    return [(int(r.priority), int(r.weight), int(r.port), r.target.to_text())
            for r in answer]


def mx_hosts(domain: str) -> list[str]:
    """MX host names of ``domain``, best first; [] on any failure."""
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(domain, "MX", lifetime=TIMEOUT)
    except (dns.exception.DNSException, OSError):
        return []
    return [r.exchange.to_text() for r in sorted(answer, key=lambda r: int(r.preference))]
