"""IMAP connections with verified TLS and plain-language errors.

An :class:`imapclient.IMAPClient` is not thread-safe: whoever calls
:func:`connect` owns the connection and uses it from one thread only.
"""

from __future__ import annotations

import imaplib
import logging
import re
import socket
import ssl
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import imapclient
import imapclient.exceptions

from helpdesk.config import ImapSettings, ServerSettings, get_password
from helpdesk.errors import HelpdeskError, MailError, SecretError

TIMEOUT = 30.0


def tls_context(settings: ServerSettings) -> ssl.SSLContext:
    """Default verification, plus the profile's extra trust anchor when given."""
    ctx = ssl.create_default_context()
    if settings.ca_file:
        ctx.load_verify_locations(cafile=settings.ca_file)
    return ctx


def explain_network_error(exc: BaseException, settings: ServerSettings, what: str) -> str:
    """One sentence a person can act on, for errors from connecting or logging in."""
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, socket.gaierror):
        return f"Cannot find the {what} server '{settings.host}' (DNS lookup failed). " \
               f"Check the host name and your network."
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"The {what} server {where} presented a certificate that is not trusted " \
               f"({exc.verify_message}). Check the host name, or set ca_file to your " \
               f"organisation's certificate authority."
    if isinstance(exc, ssl.SSLError):
        return f"Secure connection to the {what} server {where} failed ({exc.reason}). " \
               f"Check 'security' and 'port' (993 for tls, 143 for starttls)."
    if isinstance(exc, ConnectionRefusedError):
        return f"The {what} server {where} refused the connection. Check the port, " \
               f"or whether the server is running."
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"The {what} server {where} did not answer in time. You may be offline."
    if isinstance(exc, imaplib.IMAP4.abort | EOFError):
        return f"The connection to the {what} server {where} was lost ({exc}). It will be " \
               f"reopened on the next try."
    if isinstance(exc, imapclient.exceptions.LoginError):
        return f"The {what} server rejected the user name or password for " \
               f"'{settings.username}'."
    if isinstance(exc, OSError):
        return f"Cannot reach the {what} server {where}: {exc.strerror or exc}."
    if isinstance(exc, imapclient.exceptions.IMAPClientError):
        return f"The {what} server {where} reported an error: {exc}."
    return f"Unexpected error talking to the {what} server {where}: {type(exc).__name__}."


def connect(settings: ImapSettings, password: str | None = None,
            timeout: float = TIMEOUT) -> imapclient.IMAPClient:
    """A logged-in client; raises :class:`MailError` with a plain message.

    ``auth = "oauth2"``: SASL OAUTHBEARER or XOAUTH2 (whichever the server offers) with
    an access token from helpdesk/auth (``password`` is then ignored); a sign-in that
    cannot be had raises :class:`~helpdesk.auth.errors.SignInError` (a SecretError).
    """
    if settings.oauth:
        password = ""
    elif password is None:
        password = get_password(settings, "imap")
    client: imapclient.IMAPClient | None = None
    try:
        if settings.security == "tls":
            client = imapclient.IMAPClient(settings.host, settings.port, ssl=True,
                                           ssl_context=tls_context(settings), timeout=timeout)
        else:
            client = imapclient.IMAPClient(settings.host, settings.port, ssl=False,
                                           timeout=timeout)
            if settings.security == "starttls":
                client.starttls(tls_context(settings))
        _no_delay(client)
        if settings.oauth:
            _oauth_login(client, settings)
        else:
            client.login(settings.username, password)
        return client
    except HelpdeskError:  # no sign-in, no OAuth2 on the server: as it is
        if client is not None:
            try:
                client.shutdown()
            except Exception:
                pass
        raise
    except Exception as exc:
        if client is not None:
            try:
                client.shutdown()
            except Exception:
                pass
        raise MailError(explain_network_error(exc, settings, "IMAP")) from None


def _oauth_login(client: imapclient.IMAPClient, settings: ImapSettings) -> None:
    """AUTHENTICATE with a bearer token (helpdesk/auth/sasl.py picks and retries)."""
    from helpdesk.auth import sasl

    offered = [c.decode("ascii", "replace")[5:] for c in client.capabilities()
               if c.upper().startswith(b"AUTH=")]
    mech = sasl.choose(offered)
    if mech is None:
        raise MailError(f"The IMAP server {settings.host} does not offer OAuth2 sign-in "
                        f"(SASL OAUTHBEARER or XOAUTH2; it offers "
                        f"{', '.join(offered) or 'none'}). Check the host, or use "
                        f"auth = \"password\" in [imap].")

    def attempt(mech: str, token: Any) -> None:
        exchange = sasl.Exchange(mech, sasl.initial(mech, settings.username, token.value,
                                                    settings.host, settings.port))
        try:
            client._command_and_check("authenticate", mech, exchange)
        except imaplib.IMAP4.abort:
            raise
        except imapclient.exceptions.IMAPClientError as exc:
            raise sasl.Refused(str(exc), exchange.detail) from None

    try:
        sasl.login(settings, "imap", mech, attempt)
    except sasl.Refused as exc:
        raise sasl.refused_sentence(exc, settings, "imap") from None


def _no_delay(client: imapclient.IMAPClient) -> None:
    """imapclient writes a command in pieces; without TCP_NODELAY each waits ~40 ms.

    imapclient also turns on imaplib's protocol trace, which formats every line
    read; off unless debug logging is wanted (it halves bulk FETCH parsing).
    """
    try:
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass
    if not logging.getLogger("imapclient").isEnabledFor(logging.DEBUG):
        client._imap.debug = 0


def connector(settings: ImapSettings) -> Callable[[], imapclient.IMAPClient]:
    """A factory that opens new connections, reading the secret once per call."""
    def make() -> imapclient.IMAPClient:
        return connect(settings)
    return make


def examine(client: imapclient.IMAPClient, folder: str, *,
            readonly: bool = True) -> dict[bytes, Any]:
    """SELECT ``folder`` read-only (EXAMINE) and remember it was the last one selected.

    Every selection in the core goes through here, so code that wants a folder
    selected can skip a round trip when it already is. ``readonly=False`` is for the
    team log only (the app's own folder, APPENDed to while selected: Courier refuses
    an APPEND into a folder selected read-only); mail folders are only EXAMINEd.
    """
    client.helpdesk_selected = None
    info = dict(client.select_folder(folder, readonly=readonly))
    client.helpdesk_selected = folder
    return info


def selected(client: imapclient.IMAPClient) -> str | None:
    return getattr(client, "helpdesk_selected", None)


_UID = re.compile(rb"UID (\d+)")
_INTERNALDATE = re.compile(
    rb'INTERNALDATE "\s?(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"')
_QUOTED_BODY = re.compile(rb'BODY\[[A-Z]*\] "((?:[^"\\]|\\.)*)"')
_NEW_ITEM = re.compile(rb"^\d+ \(")
_MONTHS = {m: i for i, m in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
     b"Dec"), start=1)}


def _internaldate(text: bytes) -> datetime | None:
    m = _INTERNALDATE.search(text)
    if not m:
        return None
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    local = datetime(int(year), _MONTHS.get(mon, 1), int(day), int(hh), int(mm), int(ss))
    offset = timedelta(hours=int(oh), minutes=int(om))
    return local - offset if sign == b"+" else local + offset


def fetch_bodies(client: imapclient.IMAPClient, uids: str, section: str = "TEXT"
                 ) -> list[tuple[int, datetime, bytes]]:
    """(uid, INTERNALDATE as naive UTC, body section) for a UID set, in UID order.

    Read-only (BODY.PEEK). Bulk reads (initial sync, a new desktop replaying the
    team log) read imaplib's raw answer with a few regular expressions instead of
    imapclient's general response parser: about twice as fast.
    """
    typ, data = client._imap.uid("FETCH", uids, f"(INTERNALDATE BODY.PEEK[{section}])")
    if typ != "OK":
        raise imapclient.exceptions.IMAPClientError(f"UID FETCH failed: {data!r}")
    records: list[list[bytes]] = []
    for item in data:
        if isinstance(item, tuple):
            records.append([item[0], item[1], b""])
        elif isinstance(item, bytes):
            if _NEW_ITEM.match(item):
                quoted = _QUOTED_BODY.search(item)
                records.append([item, quoted.group(1) if quoted else b"", b""])
            elif records:
                records[-1][2] += item
    out: list[tuple[int, datetime, bytes]] = []
    for head, body, tail in records:
        meta = head + b" " + tail
        uid = _UID.search(meta)
        when = _internaldate(meta)
        if uid is None or when is None:
            continue  # an unsolicited FETCH (flag change), not ours
        out.append((int(uid.group(1)), when, body))
    out.sort(key=lambda r: r[0])
    return out


_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_SEQ_UID = re.compile(rb"^(\d+) \(.*?\bUID (\d+)")


def fetch_sizes(client: imapclient.IMAPClient, uids: str) -> dict[int, int]:
    """UID -> RFC822.SIZE for a UID set such as ``"101:5100"`` (read with two regexes,
    not imapclient's general parser: a few bytes per message, whatever the set)."""
    return {uid: size for uid, (size, _at) in _fetch_sizes(client, uids, False).items()}


def fetch_sizes_dated(client: imapclient.IMAPClient, uids: str
                      ) -> dict[int, tuple[int, datetime | None]]:
    """UID -> (RFC822.SIZE, INTERNALDATE as naive UTC) for a UID set: what to download
    and when the server received it, without downloading anything (the team log
    skips oversized messages by size, yet counts their time)."""
    return _fetch_sizes(client, uids, True)


def _fetch_sizes(client: imapclient.IMAPClient, uids: str, dated: bool
                 ) -> dict[int, tuple[int, datetime | None]]:
    items = "(RFC822.SIZE INTERNALDATE)" if dated else "(RFC822.SIZE)"
    typ, data = client._imap.uid("FETCH", uids, items)
    if typ != "OK":
        raise imapclient.exceptions.IMAPClientError(f"UID FETCH failed: {data!r}")
    out: dict[int, tuple[int, datetime | None]] = {}
    for item in data:
        line = item[0] if isinstance(item, tuple) else item
        if not isinstance(line, bytes):
            continue
        uid, size = _UID.search(line), _SIZE.search(line)
        if uid is not None and size is not None:  # else an unsolicited FETCH (flags)
            out[int(uid.group(1))] = (int(size.group(1)),
                                      _internaldate(line) if dated else None)
    return out


def uid_at(client: imapclient.IMAPClient, seq: int) -> int | None:
    """The UID of message number ``seq`` in the selected folder; None when there is no
    such message (any more). One small round trip."""
    try:
        typ, data = client._imap.fetch(str(seq), "(UID)")
    except imapclient.exceptions.IMAPClientError as exc:
        if isinstance(exc, imaplib.IMAP4.abort):
            raise
        return None  # BAD/NO: past the end of the folder
    if typ != "OK":
        return None
    for item in data:
        line = item[0] if isinstance(item, tuple) else item
        if isinstance(line, bytes) and (m := _SEQ_UID.match(line)) and int(m.group(1)) == seq:
            return int(m.group(2))
    return None


def uid_set(uids: list[int]) -> str:
    """A compact IMAP UID set ("3:7,9") for sorted ``uids``."""
    parts: list[str] = []
    start = prev = uids[0]
    for uid in uids[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


def logout_quietly(client: Any) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            pass


def check_connection(settings: ImapSettings, password: str) -> list[str]:
    """Log in and check the profile's folders; raise MailError naming the problem.

    Folder names are mapped to the server's (namespace, delimiter). The inbox folders
    and a configured Sent folder must exist; the team folder must exist or be
    creatable (it is created, as the app would on first use); a server whose
    ``UID SEARCH`` answers wrongly is refused. Returns the server's capabilities.
    """
    from helpdesk.mail.folders import FolderMap, check_uid_search, ensure_folder

    client = connect(settings, password, timeout=15)
    try:
        try:
            folders = FolderMap.of(client, settings)
            problems: list[str] = []
            for name in settings.folders:
                server = folders.server_name(name)
                if not client.folder_exists(server):
                    problems.append(f"The folder {_shown(name, server)} does not exist on the "
                                    f"server; check folders in [imap].")
            if settings.sent_folder_set and settings.sent_folder:
                server = folders.server_name(settings.sent_folder)
                if not client.folder_exists(server):
                    problems.append(f"The Sent folder {_shown(settings.sent_folder, server)} "
                                    f"does not exist; check sent_folder in [imap], or leave it "
                                    f"out to use the folder the server marks as Sent.")
            if problems:
                raise MailError(" ".join(problems))
            team = ensure_folder(client, folders, settings.team_folder, "team_folder")
            check_uid_search(client, [team, *folders.inbox_folders()], settings.host)
            return [c.decode() if isinstance(c, bytes) else str(c)
                    for c in client.capabilities()]
        except imapclient.exceptions.IMAPClientError as exc:
            raise MailError(explain_network_error(exc, settings, "IMAP")) from None
        except OSError as exc:
            raise MailError(explain_network_error(exc, settings, "IMAP")) from None
    finally:
        logout_quietly(client)


def _shown(name: str, server: str) -> str:
    return f"'{name}'" if name == server else f"'{name}' ({server} on this server)"


__all__ = ["SecretError", "check_connection", "connect", "connector", "explain_network_error"]
