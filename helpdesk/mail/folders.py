"""Folder names as the server spells them, and the folder rules servers differ on.

Profile folder names always use ``/`` between levels, whatever the server's hierarchy
delimiter is, and never mention the personal namespace: ``HelpDesk/Log`` is
``HelpDesk/Log`` on Dovecot and ``INBOX.HelpDesk.Log`` on Courier and on Cyrus as Debian
ships it (both keep every personal folder under ``INBOX.``). :class:`FolderMap` knows
one connection's delimiter and namespaces (NAMESPACE, RFC 2342; else ``LIST "" ""``)
and maps names both ways; it finds the Sent folder by SPECIAL-USE ``\\Sent`` (RFC
6154) when the profile names none.

Also here: :func:`ensure_folder` (create a folder, parents too where the server needs
that, or say which profile key to change), :func:`append` (never APPEND to the folder
selected read-only on the connection: Courier refuses it) and :func:`check_uid_search`
(refuse servers whose ``UID SEARCH UID n:*`` answers wrongly, e.g. GNU Mailutils
imap4d).

Costs: :meth:`FolderMap.of` asks the server once per connection (one NAMESPACE) and
keeps the answer on the client; the Sent lookup is one LIST, only when the profile
names no Sent folder, also kept; :func:`append` adds a round trip only when it must
leave a read-only selection of its target.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import imapclient
import imapclient.exceptions

from helpdesk.config import ImapSettings
from helpdesk.errors import MailError
from helpdesk.mail.imap import examine, selected, uid_at

log = logging.getLogger(__name__)

#: The hierarchy separator of profile folder names.
SEPARATOR = "/"
_SENT = b"\\SENT"
_NOSELECT = b"\\NOSELECT"
#: Names other clients give the Sent folder, for servers without SPECIAL-USE.
_USUAL_SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "Sent Mail")
_CACHE_ATTR = "helpdesk_namespaces"
_SEARCH_OK_ATTR = "helpdesk_uid_search_ok"
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


def _is_abort(exc: BaseException) -> bool:
    return isinstance(exc, imapclient.exceptions.IMAPClientAbortError)


def _server_words(exc: BaseException) -> str:
    """The server's own words from an IMAP error, safe to show (hostile text)."""
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = _UNPRINTABLE.sub(" ", str(text)).strip()
    return text[:200] or type(exc).__name__


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _has_prefix(name: str, prefix: str) -> bool:
    """``name`` lies inside the namespace ``prefix`` (INBOX is case-insensitive)."""
    if not prefix:
        return False
    if prefix[:5].upper() == "INBOX":
        return name[:5].upper() == "INBOX" and name[5:].startswith(prefix[5:])
    return name.startswith(prefix)


@dataclass
class Namespaces:
    """What one server said about its folder names (one connection's answer)."""

    delimiter: str | None  # None: a flat server without hierarchy
    personal: str = ""  # the personal namespace's prefix, e.g. "INBOX."
    others: tuple[str, ...] = ()  # other users' and shared namespaces' prefixes
    # From the Sent lookup (one LIST, made only when needed): \Sent folders first.
    sent_candidates: tuple[str, ...] | None = field(default=None, repr=False)

    @classmethod
    def ask(cls, client: imapclient.IMAPClient) -> Namespaces:
        """NAMESPACE (RFC 2342) when offered, else the delimiter from ``LIST "" ""``."""
        if client.has_capability("NAMESPACE"):
            try:
                ns = client.namespace()
            except imapclient.exceptions.IMAPClientError as exc:
                if _is_abort(exc):
                    raise
                log.info("NAMESPACE failed (%s); using LIST", _server_words(exc))
            else:
                personal = list(ns.personal or ())
                others = [_text(p) for group in (ns.other, ns.shared) for p, _d in group or ()]
                if personal:
                    prefix, delim = personal[0]
                    return cls(_text(delim) if delim else None, _text(prefix), tuple(others))
                return cls(cls._list_delimiter(client), "", tuple(others))
        return cls(cls._list_delimiter(client))

    @staticmethod
    def _list_delimiter(client: imapclient.IMAPClient) -> str | None:
        rows = client.list_folders("", "")
        for _flags, delim, _name in rows:
            return _text(delim) if delim else None
        return SEPARATOR


class FolderMap:
    """The profile's folders under one connection's names.

    Get one with :meth:`of` (cached per connection). ``server_name`` and
    ``profile_name`` are pure; :meth:`sent_folder` may ask the server once.
    """

    def __init__(self, namespaces: Namespaces, settings: ImapSettings) -> None:
        self.namespaces = namespaces
        self.settings = settings

    @classmethod
    def of(cls, client: imapclient.IMAPClient, settings: ImapSettings) -> FolderMap:
        """The map for this connection: NAMESPACE once per connection, then free."""
        namespaces = getattr(client, _CACHE_ATTR, None)
        if not isinstance(namespaces, Namespaces):
            namespaces = Namespaces.ask(client)
            setattr(client, _CACHE_ATTR, namespaces)
        return cls(namespaces, settings)

    # --- names --------------------------------------------------------------

    @property
    def delimiter(self) -> str | None:
        return self.namespaces.delimiter

    @property
    def prefix(self) -> str:
        """The personal namespace's prefix ("" on most servers, "INBOX." on Courier)."""
        return self.namespaces.personal

    def server_name(self, name: str) -> str:
        """The server's name for the profile folder ``name`` (levels split by ``/``).

        INBOX stays INBOX; a name already inside the personal namespace (or inside
        another user's or a shared namespace) is not prefixed again.
        """
        parts = [p for p in name.split(SEPARATOR) if p]
        if not parts:
            return name
        if parts[0].upper() == "INBOX":
            parts[0] = "INBOX"
        if parts == ["INBOX"]:
            return "INBOX"
        delim = self.namespaces.delimiter
        if delim is None:
            return name  # a flat server: the name as written
        joined = delim.join(parts)
        personal = self.namespaces.personal
        for prefix in (personal, *self.namespaces.others):
            if _has_prefix(joined, prefix) or (prefix and joined + delim == prefix):
                return joined
        return personal + joined

    def profile_name(self, server_name: str) -> str:
        """The profile's spelling of a server folder name (inverse of ``server_name``)."""
        if server_name.upper() == "INBOX":
            return "INBOX"
        rest = server_name
        personal = self.namespaces.personal
        if _has_prefix(server_name, personal):
            rest = server_name[len(personal):]
        delim = self.namespaces.delimiter
        if delim and delim != SEPARATOR:
            return SEPARATOR.join(rest.split(delim))
        return rest

    # --- the profile's folders ------------------------------------------------

    def inbox_folders(self) -> list[str]:
        """Server names of the profile's ``folders``."""
        return [self.server_name(f) for f in self.settings.folders]

    def team_folder(self) -> str:
        """Server name of the team log (``team_folder``)."""
        return self.server_name(self.settings.team_folder)

    def sent_folder(self, client: imapclient.IMAPClient) -> str | None:
        """Server name of the Sent folder; None when the profile turned it off.

        ``sent_folder`` named in the profile (``sent_folder_set``): that folder,
        mapped (``Sent`` is ``INBOX.Sent`` on Courier). Not named: the folder the
        server marks ``\\Sent`` (SPECIAL-USE), else one with a usual Sent name, else
        ``Sent`` mapped (which may not exist yet: the Sent copy creates it). Asks the
        server once per connection, and only when the profile names no Sent folder.
        """
        if self.settings.sent_folder_set:
            named = self.settings.sent_folder
            return self.server_name(named) if named else None
        candidates = self.namespaces.sent_candidates
        if candidates is None:
            candidates = self.namespaces.sent_candidates = self._find_sent(client)
        return candidates[0] if candidates else self.server_name("Sent")

    def sync_folders(self, client: imapclient.IMAPClient) -> list[tuple[str, str]]:
        """(server name, role) of the folders to sync, inbox folders first (roles
        ``inbox`` and ``sent``), as ``MailSync.folders()`` lists them."""
        out = [(f, "inbox") for f in self.inbox_folders()]
        sent = self.sent_folder(client)
        if sent is not None and sent not in {f for f, _r in out}:
            out.append((sent, "sent"))
        return out

    def _find_sent(self, client: imapclient.IMAPClient) -> tuple[str, ...]:
        if client.has_capability("SPECIAL-USE") and client.has_capability("LIST-EXTENDED"):
            # Only the special-use folders: small whatever the mailbox's size.
            rows = _list(client, "(SPECIAL-USE)", "", "*")
            marked = [n for flags, n in rows if _SENT in flags and _NOSELECT not in flags]
            if marked:
                return tuple(marked)
        rows = _list(client, None, "", "*")
        marked = [n for flags, n in rows if _SENT in flags and _NOSELECT not in flags]
        selectable = {n.lower(): n for flags, n in rows if _NOSELECT not in flags}
        usual = [selectable[self.server_name(n).lower()] for n in _USUAL_SENT_NAMES
                 if self.server_name(n).lower() in selectable]
        return tuple(dict.fromkeys([*marked, *usual]))


def _list(client: imapclient.IMAPClient, selection: str | None, directory: str,
          pattern: str) -> list[tuple[set[bytes], str]]:
    """LIST (with an RFC 5258 selection option) as (upper-cased flags, name) pairs."""
    if selection is None:
        rows = client.list_folders(directory, pattern)
    else:
        imap = client._imap
        typ, data = imap._simple_command("LIST", selection, client._normalise_folder(directory),
                                         client._normalise_folder(pattern))
        if typ != "OK":
            raise imapclient.exceptions.IMAPClientError(f"LIST failed: {_text(data)[:200]}")
        typ, data = imap._untagged_response(typ, data, "LIST")
        rows = client._proc_folder_list(data)
    out: list[tuple[set[bytes], str]] = []
    for flags, _delim, name in rows:
        upper = {f.upper() if isinstance(f, bytes) else str(f).upper().encode() for f in flags}
        out.append((upper, _text(name)))
    return out


# --- creating folders ------------------------------------------------------------


def ensure_folder(client: imapclient.IMAPClient, folders: FolderMap, name: str,
                  key: str) -> str:
    """Make sure the profile folder ``name`` exists; return its server name.

    Creates it when missing, and its parents first where the server wants that.
    ``key`` is the profile key that names the folder (``"team_folder"``,
    ``"sent_folder"``, ``"folders"``): when the folder cannot be created the
    :class:`MailError` names the folder and that key. Costs one LIST when the
    folder exists.
    """
    server = folders.server_name(name)
    if server.upper() == "INBOX" or client.folder_exists(server):
        return server
    try:
        client.create_folder(server)
        return server
    except imapclient.exceptions.IMAPClientError as exc:
        if _is_abort(exc):
            raise
        first_error = exc
    if client.folder_exists(server):  # a teammate created it meanwhile
        return server
    try:
        for parent in _parents(folders, server):
            if not client.folder_exists(parent):
                client.create_folder(parent)
        client.create_folder(server)
        return server
    except imapclient.exceptions.IMAPClientError as exc:
        if _is_abort(exc):
            raise
        if client.folder_exists(server):
            return server
    shown = f"'{name}'" if server == name else f"'{name}' ({server} on this server)"
    raise MailError(
        f"Help desk cannot create the folder {shown} on the IMAP server "
        f"{folders.settings.host} (the server said: {_server_words(first_error)}). "
        f"Create it with another mail client, or change {key} in [imap] of the profile "
        f"to a folder that exists or may be created."
    )


def _parents(folders: FolderMap, server: str) -> list[str]:
    """The server names above ``server`` inside its namespace, outermost first."""
    delim = folders.delimiter
    if not delim:
        return []
    prefix = folders.prefix if _has_prefix(server, folders.prefix) else ""
    parts = server[len(prefix):].split(delim)
    return [prefix + delim.join(parts[:i]) for i in range(1, len(parts))]


# --- APPEND --------------------------------------------------------------------


def leave_read_only(client: imapclient.IMAPClient, folder: str) -> None:
    """Make sure ``folder`` is not the connection's read-only selection.

    Courier answers NO to an APPEND into the folder selected read-only (EXAMINE).
    UNSELECT where offered; else CLOSE, which on a read-only selection expunges
    nothing (RFC 3501 6.4.2); a server that refuses that too (pymap) gets INBOX
    EXAMINEd instead. A selection of another folder, or a read-write one, is kept.
    """
    imap = client._imap
    if getattr(imap, "state", None) != "SELECTED" or not getattr(imap, "is_readonly", False):
        return
    current = selected(client)
    if current is not None and current != folder:
        return
    client.helpdesk_selected = None
    if client.has_capability("UNSELECT"):
        client.unselect_folder()
        return
    try:
        client.close_folder()
        return
    except imapclient.exceptions.IMAPClientError as exc:
        if _is_abort(exc):
            raise
        log.info("CLOSE of a read-only folder refused (%s)", _server_words(exc))
    if folder.upper() != "INBOX":
        examine(client, "INBOX")


def append(client: imapclient.IMAPClient, folder: str, message: bytes,
           flags: Sequence[bytes | str] = (), msg_time: datetime | None = None) -> bytes:
    """APPEND ``message`` to the server folder ``folder``; the server's answer (with
    ``[APPENDUID v uid]`` on UIDPLUS servers). Never into a read-only selection."""
    leave_read_only(client, folder)
    response = client.append(folder, message, flags=tuple(flags), msg_time=msg_time)
    return response if isinstance(response, bytes) else str(response).encode()


# --- servers that cannot be used -------------------------------------------------


def check_uid_search(client: imapclient.IMAPClient, folders: Iterable[str],
                     host: str = "") -> bool:
    """Check that ``UID SEARCH UID n:*`` finds the last message of a folder.

    Help desk depends on it (the team log finds its own events with it on servers
    without UIDPLUS, and its settle check); GNU Mailutils imap4d answers nothing.
    Tries ``folders`` (server names) in turn and checks the first that holds mail:
    EXAMINE, the last message's UID, the search (three round trips, once per
    connection: the outcome is kept on the client). Returns True when checked,
    False when every folder was empty or missing (nothing to check against yet;
    ask again on a later connection). Raises :class:`MailError` when the answer is
    wrong.
    """
    if getattr(client, _SEARCH_OK_ATTR, False):
        return True
    for folder in folders:
        try:
            info = examine(client, folder)
        except imapclient.exceptions.IMAPClientError as exc:
            if _is_abort(exc):
                raise
            continue
        exists = int(info.get(b"EXISTS", 0) or 0)
        if exists <= 0:
            continue
        last = uid_at(client, exists)
        if last is None:
            continue
        try:
            found = client.search(["UID", f"{last}:*"])
        except imapclient.exceptions.IMAPClientError as exc:
            if _is_abort(exc):
                raise
            found = []
        if last not in found:
            raise MailError(broken_search_message(host))
        setattr(client, _SEARCH_OK_ATTR, True)
        return True
    return False


def broken_search_message(host: str) -> str:
    where = host or "this server"
    return (f"This IMAP server ({where}) answers UID SEARCH wrongly; Help desk cannot use "
            f"it safely. Use another IMAP server for the support mailbox.")


def probe(client: imapclient.IMAPClient, settings: ImapSettings) -> FolderMap:
    """At connection time: the connection's :class:`FolderMap`, after refusing a
    server whose UID SEARCH is broken (checked on the team log, then the inbox
    folders). Raises :class:`MailError`."""
    folders = FolderMap.of(client, settings)
    check_uid_search(client, [folders.team_folder(), *folders.inbox_folders()], settings.host)
    return folders


__all__ = [
    "FolderMap",
    "Namespaces",
    "append",
    "broken_search_message",
    "check_uid_search",
    "ensure_folder",
    "leave_read_only",
    "probe",
]
