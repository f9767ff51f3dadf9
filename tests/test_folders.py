"""Folder names and folder rules against real servers as they are (helpdesk/mail/folders.py).

Dovecot (``/``, no prefix), pymap, Dovecot with a personal namespace ``INBOX.``, Courier
and Cyrus as Debian ships them (``INBOX.``, ``.``), and GNU Mailutils imap4d, whose broken
``UID SEARCH`` must be refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import imapclient
import imapclient.exceptions
import pytest
from fixtures_servers import serve
from servers import ImapServer

from helpdesk.config import ImapSettings, parse_profile
from helpdesk.errors import MailError
from helpdesk.mail import folders as fm
from helpdesk.mail.imap import check_connection, examine, selected

RAW = b"From: a@example.com\r\nSubject: hello\r\nMessage-ID: <m1@example.com>\r\n\r\nbody\r\n"
ALL = ["dovecot", "pymap", "dovecot_inbox_ns", "courier", "cyrus"]
PREFIXED = ["dovecot_inbox_ns", "courier", "cyrus"]
# Servers that refuse some folder names (pymap accepts any).
STRICT = ["dovecot", "dovecot_inbox_ns", "courier", "cyrus"]


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[ImapServer]:
    yield from serve(request.param)


def settings_for(server: ImapServer, **kw: object) -> ImapSettings:
    user = next(iter(server.users))
    base = ImapSettings(host=server.host, port=server.port, security="plain", username=user)
    return replace(base, **kw)  # type: ignore[arg-type]


def password(server: ImapServer) -> str:
    return next(iter(server.users.values()))


def names(c: imapclient.IMAPClient) -> set[str]:
    return {name for _flags, _delim, name in c.list_folders()}


# --- pure mapping (no server) -----------------------------------------------------------


def test_mapping_inside_a_personal_namespace() -> None:
    courier = fm.FolderMap(fm.Namespaces(".", "INBOX.", ("#shared.", "shared.")), ImapSettings())
    assert courier.server_name("HelpDesk/Log") == "INBOX.HelpDesk.Log"
    assert courier.server_name("Sent") == "INBOX.Sent"
    assert courier.server_name("INBOX") == "INBOX"
    assert courier.server_name("inbox") == "INBOX"
    # Already inside the namespace: not prefixed twice.
    assert courier.server_name("INBOX/HelpDesk/Log") == "INBOX.HelpDesk.Log"
    assert courier.server_name("inbox/Sent") == "INBOX.Sent"
    # Another namespace is left alone.
    assert courier.server_name("shared/Team") == "shared.Team"
    assert courier.profile_name("INBOX.HelpDesk.Log") == "HelpDesk/Log"
    assert courier.profile_name("INBOX") == "INBOX"
    assert courier.profile_name("shared.Team") == "shared/Team"
    plain = fm.FolderMap(fm.Namespaces("/"), ImapSettings())
    assert plain.server_name("HelpDesk/Log") == "HelpDesk/Log"
    assert plain.profile_name("HelpDesk/Log") == "HelpDesk/Log"
    dotted = fm.FolderMap(fm.Namespaces("."), ImapSettings())
    assert dotted.server_name("HelpDesk/Log") == "HelpDesk.Log"
    assert dotted.profile_name("HelpDesk.Log") == "HelpDesk/Log"


def test_sent_folder_not_configured_unless_named() -> None:
    absent = parse_profile({"agent": "a", "imap": {"host": "h"}}).imap
    assert not absent.sent_folder_set and absent.sent_folder == "Sent"
    named = parse_profile({"agent": "a", "imap": {"host": "h", "sent_folder": "Sent"}}).imap
    assert named.sent_folder_set and named.sent_folder == "Sent"
    off = parse_profile({"agent": "a", "imap": {"host": "h", "sent_folder": ""}}).imap
    assert off.sent_folder_set and off.sent_folder is None
    courier = fm.FolderMap(fm.Namespaces(".", "INBOX."), off)
    assert courier.sent_folder(None) is None  # turned off: asks nothing
    assert fm.FolderMap(fm.Namespaces(".", "INBOX."), named).sent_folder(None) == "INBOX.Sent"


# --- namespace, delimiter, creation -------------------------------------------------------


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_namespace_and_delimiter_from_the_server(server: ImapServer) -> None:
    with server.session() as c:
        folders = fm.FolderMap.of(c, settings_for(server))
        assert (folders.prefix, folders.delimiter) == (server.prefix, server.delimiter)
        # Once per connection: the second map asks nothing.
        assert fm.FolderMap.of(c, settings_for(server)).namespaces is folders.namespaces


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_team_folder_lands_inside_the_personal_namespace(server: ImapServer) -> None:
    settings = settings_for(server, team_folder="HelpDesk/Log")
    expected = f"{server.prefix}HelpDesk{server.delimiter}Log"
    with server.session() as c:
        folders = fm.FolderMap.of(c, settings)
        assert folders.team_folder() == expected
        assert fm.ensure_folder(c, folders, settings.team_folder, "team_folder") == expected
        assert expected in names(c)
        assert folders.profile_name(expected) == "HelpDesk/Log"
        # Exists now: ensuring again changes nothing.
        assert fm.ensure_folder(c, folders, "HelpDesk/Log", "team_folder") == expected
        response = fm.append(c, expected, RAW, [imapclient.SEEN])
    assert [raw for _u, raw, _f, _d in server.messages(expected)] == [RAW]
    if server.kind != "pymap":
        assert b"APPENDUID" in response


@pytest.mark.parametrize("server", PREFIXED, indirect=True)
def test_names_outside_the_namespace_are_refused_by_such_servers(server: ImapServer) -> None:
    """Why the mapping matters: Courier, Cyrus (and Dovecot with a prefix) refuse
    ``HelpDesk``, the name as the profile spells it."""
    with server.session() as c, pytest.raises(imapclient.exceptions.IMAPClientError):
        c.create_folder("HelpDesk")


@pytest.mark.parametrize("server", STRICT, indirect=True)
def test_a_folder_that_cannot_be_created_names_the_setting(server: ImapServer) -> None:
    name = "HelpDesk/" + "x" * 600
    settings = settings_for(server, team_folder=name)
    with server.session() as c:
        folders = fm.FolderMap.of(c, settings)
        with pytest.raises(MailError) as err:
            fm.ensure_folder(c, folders, name, "team_folder")
    message = str(err.value)
    assert "team_folder in [imap]" in message
    assert "HelpDesk/xxxx" in message
    with pytest.raises(MailError, match="team_folder in \\[imap\\]"):
        check_connection(settings, password(server))


@pytest.mark.parametrize("server", ["courier", "cyrus"], indirect=True)
def test_parents_are_created_where_needed(server: ImapServer) -> None:
    settings = settings_for(server)
    with server.session() as c:
        folders = fm.FolderMap.of(c, settings)
        made = fm.ensure_folder(c, folders, "Teams/Support/Log", "team_folder")
        assert made == "INBOX.Teams.Support.Log"
        assert made in names(c)


# --- Sent by SPECIAL-USE --------------------------------------------------------------------


@pytest.mark.parametrize("server", ["dovecot", "dovecot_inbox_ns"], indirect=True)
def test_sent_found_by_special_use_when_not_configured(server: ImapServer) -> None:
    with server.session() as c:
        folders = fm.FolderMap.of(c, settings_for(server))
        assert folders.sent_folder(c) == f"{server.prefix}Sent"
        assert folders.sync_folders(c) == [("INBOX", "inbox"), (f"{server.prefix}Sent", "sent")]


@pytest.mark.parametrize("server", ["cyrus"], indirect=True)
def test_sent_found_by_special_use_under_any_name(server: ImapServer) -> None:
    with server.session() as c:
        typ, data = c._imap._simple_command("CREATE", '"INBOX.Gesendet"', "(USE (\\Sent))")
        assert typ == "OK", data
        c.create_folder("INBOX.Sent")  # a decoy without the \Sent mark
        folders = fm.FolderMap.of(c, settings_for(server))
        assert folders.sent_folder(c) == "INBOX.Gesendet"
        # A configured name wins, mapped into the namespace.
        named = fm.FolderMap.of(c, settings_for(server, sent_folder="Sent", sent_folder_set=True))
        assert named.sent_folder(c) == "INBOX.Sent"


@pytest.mark.parametrize("server", ["courier"], indirect=True)
def test_sent_without_special_use(server: ImapServer) -> None:
    """Courier has no SPECIAL-USE: a usual name inside the namespace, else INBOX.Sent."""
    with server.session() as c:
        assert not c.has_capability("SPECIAL-USE")
        assert fm.FolderMap.of(c, settings_for(server)).sent_folder(c) == "INBOX.Sent"
    with server.session() as c:
        c.create_folder("INBOX.Sent Items")
        assert fm.FolderMap.of(c, settings_for(server)).sent_folder(c) == "INBOX.Sent Items"
        named = fm.FolderMap.of(c, settings_for(server, sent_folder="Sent", sent_folder_set=True))
        assert named.sent_folder(c) == "INBOX.Sent"


# --- never APPEND to the read-only selection -------------------------------------------------


@pytest.mark.parametrize("server", ["courier"], indirect=True)
def test_courier_refuses_append_to_the_examined_folder(server: ImapServer) -> None:
    with server.session() as c:
        examine(c, "INBOX")
        with pytest.raises(imapclient.exceptions.IMAPClientError, match="READ-ONLY"):
            c.append("INBOX", RAW)
    assert server.messages("INBOX") == []


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_append_leaves_the_read_only_selection_and_expunges_nothing(server: ImapServer) -> None:
    team = f"{server.prefix}HelpDesk{server.delimiter}Log"
    server.create_folder(team)
    deleted = server.append(team, RAW.replace(b"m1@", b"gone@"), [imapclient.DELETED])
    with server.session() as c:
        examine(c, team)
        assert selected(c) == team
        response = fm.append(c, team, RAW, [imapclient.SEEN])
        assert selected(c) != team  # callers select again before reading
        if c.has_capability("UIDPLUS"):
            assert b"APPENDUID" in response
        # Another folder's read-only selection is kept: APPEND elsewhere is allowed.
        examine(c, "INBOX")
        fm.append(c, team, RAW.replace(b"m1@", b"m2@"))
        assert selected(c) == "INBOX"
    uids = [uid for uid, *_ in server.messages(team)]
    assert len(uids) == 3 and deleted in uids  # the \Deleted message survived


# --- broken UID SEARCH -----------------------------------------------------------------------


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_uid_search_probe_passes_on_good_servers(server: ImapServer) -> None:
    with server.session() as c:
        assert fm.check_uid_search(c, ["INBOX"]) is False  # empty: nothing to check yet
    server.append("INBOX", RAW)
    server.append("INBOX", RAW.replace(b"m1@", b"m2@"))
    with server.session() as c:
        assert fm.check_uid_search(c, ["INBOX"]) is True
        folders = fm.probe(c, settings_for(server))
        assert folders.team_folder().endswith("Log")


def test_imap4d_is_refused(imap4d: ImapServer) -> None:
    for n in range(3):
        imap4d.append("INBOX", RAW.replace(b"m1@", f"m{n}@".encode()))
    settings = settings_for(imap4d)
    with imap4d.session() as c:
        examine(c, "INBOX")
        assert c.search(["UID", "1:*"]) == []  # the bug itself
        with pytest.raises(MailError) as err:
            fm.probe(c, settings)
    assert str(err.value).startswith(
        f"This IMAP server ({imap4d.host}) answers UID SEARCH wrongly; "
        f"Help desk cannot use it safely.")
    with pytest.raises(MailError, match="answers UID SEARCH wrongly"):
        check_connection(settings, password(imap4d))


# --- Test connection -------------------------------------------------------------------------


@pytest.mark.parametrize("server", ALL, indirect=True)
def test_check_connection_maps_folders_and_creates_the_team_folder(server: ImapServer) -> None:
    server.append("INBOX", RAW)
    settings = settings_for(server, team_folder="HelpDesk/Log")
    caps = check_connection(settings, password(server))
    assert "IMAP4REV1" in {c.upper() for c in caps}
    with server.session() as c:
        assert f"{server.prefix}HelpDesk{server.delimiter}Log" in names(c)


@pytest.mark.parametrize("server", PREFIXED, indirect=True)
def test_check_connection_names_a_missing_folder(server: ImapServer) -> None:
    settings = settings_for(server, folders=("INBOX", "Support"), sent_folder="Outgoing",
                            sent_folder_set=True)
    with pytest.raises(MailError) as err:
        check_connection(settings, password(server))
    message = str(err.value)
    assert f"'Support' ({server.prefix}Support on this server)" in message
    assert "folders in [imap]" in message and "sent_folder in [imap]" in message
    server.create_folder(f"{server.prefix}Support")
    server.create_folder(f"{server.prefix}Outgoing")
    check_connection(settings, password(server))
