"""Real mail servers on loopback for tests and benchmarks (no mocks).

* :func:`start_dovecot` - a private Dovecot 2.3/2.4 instance in a temp dir. All
  users share ONE mail store (the team's shared support mailbox).
* :func:`start_pymap` - pymap's in-memory ``dict`` backend (one login only).
* :func:`start_courier`, :func:`start_cyrus`, :func:`start_imap4d` - Debian's Courier,
  Cyrus and GNU Mailutils servers as Debian configures them, unpacked (not installed)
  into ``.test-servers/`` by ``scripts/test-servers.sh`` and run in a private mount
  namespace (root only) where that tree is overlaid on ``/usr``. One login each.
* :func:`start_smtp_sink` - an aiosmtpd server recording every message.

Every ``start_*`` function returns an object with ``stop()`` that can also be
used as a context manager. Readiness is detected by polling the port for a
greeting with a deadline, never by fixed sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import grp
import hashlib
import ipaddress
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import imapclient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from helpdesk.demo import starters

__all__ = [
    "DEFAULT_USERS",
    "ImapServer",
    "ServerStartError",
    "SmtpSink",
    "dovecot_version",
    "find_tool",
    "free_port",
    "start_courier",
    "start_cyrus",
    "start_dovecot",
    "start_dovecot_oauth",
    "start_imap4d",
    "start_pymap",
    "start_smtp_sink",
    "unpacked_servers_missing",
]

HOST = "127.0.0.1"
#: Agents sharing the support mailbox (Dovecot). pymap only gets the first one.
DEFAULT_USERS: dict[str, str] = {
    "agent-a": "secret-a",
    "agent-b": "secret-b",
    "agent-c": "secret-c",
}
START_TIMEOUT = 20.0
CLIENT_TIMEOUT = 30.0

_APPENDUID_RE = re.compile(rb"\[APPENDUID (\d+) (\d+)\]", re.IGNORECASE)
_FlagsArg = Iterable[bytes | str]


def find_tool(name: str) -> str | None:
    """The program ``name``, found the same way in any environment.

    First beside the Python running us (the venv's ``bin``, where pip put pymap:
    ``.venv/bin/python -m pytest`` must work without an activated venv), then on
    PATH, then in the sbin directories (Debian's dovecot is ``/usr/sbin/dovecot``).
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")


def _tool(name: str) -> str:
    return find_tool(name) or name


class ServerStartError(RuntimeError):
    """A server process did not come up; the message includes its log tail."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    return starters.free_port(HOST)


def _port_bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _poll(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.005
) -> None:
    """Call ``predicate()`` until it is truthy; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def _read_greeting(
    host: str, port: int, timeout: float, ssl_context: ssl.SSLContext | None
) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock: socket.socket = raw
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(raw, server_hostname=host)
        with sock:
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data


def _tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _kill_group(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait(timeout=10)


# --------------------------------------------------------------------- TLS ---


def _make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """Create a throw-away CA and a server cert for 127.0.0.1/localhost.

    Returns ``(ca_file, cert_file, key_file)`` (PEM).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "helpdesk test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address(HOST)),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


# -------------------------------------------------------------------- IMAP ---


@dataclass(eq=False)
class ImapServer:
    """A running IMAP server. ``users`` maps login -> password."""

    host: str
    port: int
    users: dict[str, str]
    kind: str  # "dovecot" | "pymap" | "courier" | "cyrus" | "imap4d"
    delimiter: str = "/"
    prefix: str = ""  # the personal namespace's prefix, e.g. "INBOX." (Courier, Cyrus)
    tls: bool = False  # True: implicit TLS (IMAPS) on ``port``, trust ``ca_file``
    ca_file: str | None = None
    workdir: str | None = None  # private temp dir (config, logs, mail store)
    mail_home: str | None = None  # dovecot: the shared mail home
    log_file: str | None = None
    _argv: list[str] = field(default_factory=list, repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _doveconf: str | None = field(default=None, repr=False)
    _greeting: bytes = field(default=b"* OK", repr=False)  # expected in the greeting
    _ready_path: str | None = field(default=None, repr=False)  # must exist once it is up
    # One cached logged-in connection for the data helpers (append, messages,
    # ...): pymap spends ~170 ms hashing the password on every login.
    _helper_client: imapclient.IMAPClient | None = field(default=None, repr=False)
    _helper_lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- lifecycle ---------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """SIGKILL the server's process group and delete its temp dir."""
        self._drop_helper()
        _kill_group(self._proc)
        self._proc = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> None:
        """Kill the server and start it again on the same port.

        Dovecot keeps its mail store. pymap's ``dict`` backend is in memory, so
        a pymap restart comes back EMPTY (new UIDVALIDITYs, only INBOX + Sent).
        Open clients are disconnected either way.
        """
        self._drop_helper()
        _kill_group(self._proc)
        self._proc = None
        _poll(lambda: _port_bindable(self.port), 10, f"port {self.port} to be released")
        self._launch()

    def log_text(self) -> str:
        """The server's log so far (for assertion messages)."""
        if self.log_file is None or not Path(self.log_file).exists():
            return ""
        return Path(self.log_file).read_text(errors="replace")

    # -- clients -----------------------------------------------------------
    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=self.ca_file)

    def connect(self, timeout: float = CLIENT_TIMEOUT) -> imapclient.IMAPClient:
        """A connected but NOT logged-in client.

        TCP_NODELAY is set: imapclient writes commands in several pieces and
        pymap delays its ACKs, which otherwise costs 40 ms per SEARCH/APPEND.
        """
        client = imapclient.IMAPClient(
            self.host,
            self.port,
            ssl=self.tls,
            ssl_context=self.ssl_context(),
            timeout=timeout,
        )
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client

    def client(self, user: str | None = None) -> imapclient.IMAPClient:
        """A logged-in client (plain TCP, or IMAPS when ``tls``).

        ``user`` defaults to the first user. Caller must ``logout()``.
        """
        login = user if user is not None else next(iter(self.users))
        client = self.connect()
        try:
            client.login(login, self.users.get(login, ""))
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    @contextlib.contextmanager
    def session(self, user: str | None = None) -> Iterator[imapclient.IMAPClient]:
        """``with server.session() as c:`` - logged-in client, logged out after."""
        client = self.client(user)
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    @contextlib.contextmanager
    def _helper(self) -> Iterator[imapclient.IMAPClient]:
        """The cached helper connection (first user, nothing selected)."""
        with self._helper_lock:
            client = self._helper_client
            if client is not None:
                try:
                    client.noop()
                except (imapclient.exceptions.IMAPClientError, OSError):
                    self._drop_helper()
                    client = None
            if client is None:
                client = self._helper_client = self.client()
            try:
                yield client
            except (imapclient.exceptions.IMAPClientAbortError, OSError):
                self._drop_helper()
                raise

    def _drop_helper(self) -> None:
        with self._helper_lock:
            client, self._helper_client = self._helper_client, None
            if client is not None:
                with contextlib.suppress(Exception):
                    client.shutdown()

    # -- data helpers ------------------------------------------------------
    def create_folder(self, folder: str) -> None:
        """Create ``folder`` (and parents) unless it exists."""
        with self._helper() as c:
            _ensure_folder(c, folder)

    def uidvalidity(self, folder: str) -> int:
        with self._helper() as c:
            return int(c.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: _FlagsArg = (),
        date: datetime | None = None,
        *,
        create: bool = True,
    ) -> int:
        """APPEND one message; returns its UID. Creates ``folder`` if missing."""
        return self.append_many(folder, [raw], flags, date, create=create)[0]

    def append_many(
        self,
        folder: str,
        raws: Iterable[bytes],
        flags: _FlagsArg = (),
        date: datetime | None = None,
        *,
        create: bool = True,
    ) -> list[int]:
        """APPEND several messages over one connection; returns their UIDs."""
        flag_list = list(flags)
        with self._helper() as c:
            if create:
                _ensure_folder(c, folder)
            return [_append(c, folder, raw, flag_list, date) for raw in raws]

    def messages(self, folder: str) -> list[tuple[int, bytes, tuple[bytes, ...], datetime]]:
        """All messages in ``folder`` as ``(uid, raw, flags, internaldate)``."""
        with self._helper() as c:
            return _fetch_all(c, folder)

    def reset_uidvalidity(self, folder: str) -> None:
        """Give ``folder`` a new, higher UIDVALIDITY; keep its messages.

        All messages are re-appended (same bytes, flags and INTERNALDATE) -
        what a client sees when a server rebuilds a mailbox. Sessions that
        have the folder selected may be disconnected (Dovecot sends BYE).

        Dovecot: any folder incl. INBOX (expunge, ``doveadm mailbox update
        --uid-validity``, re-append); the new UIDs are above all old ones.
        pymap: folders other than INBOX (delete + re-create); UIDs restart
        at 101, so old and new UIDs may coincide.
        """
        with self._helper() as c:
            old = int(c.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])
            saved = _fetch_all(c, folder)
            if self.kind == "dovecot":
                if saved:
                    c.select_folder(folder)
                    c.delete_messages([uid for uid, *_ in saved])
                    c.expunge()
                    _deselect(c)
                new = max(old + 1, int(time.time()))
                self._doveadm("mailbox", "update", "--uid-validity", str(new), folder)
            else:
                if folder.upper() == "INBOX":
                    raise NotImplementedError("pymap cannot reset INBOX's UIDVALIDITY")
                c.delete_folder(folder)
                c.create_folder(folder)
            for _uid, raw, flags, date in saved:
                _append(c, folder, raw, [f for f in flags if f != b"\\Recent"], date)
        # Dovecot may serve the old value from a cached index for a moment;
        # make sure the change is visible to new sessions before returning.
        _poll(lambda: self.uidvalidity(folder) != old, 10, f"new UIDVALIDITY of {folder}")

    # -- internals ---------------------------------------------------------
    def _doveadm(self, *args: str) -> str:
        if self._doveconf is None:
            raise RuntimeError("doveadm is only available for dovecot servers")
        user = next(iter(self.users))
        cmd = [_tool("doveadm"), "-c", self._doveconf, args[0], args[1], "-u", user, *args[2:]]
        done = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({done.returncode}): "
                f"{done.stderr.decode(errors='replace')}\n{_tail(self._log_path)}"
            )
        return done.stdout.decode(errors="replace")

    @property
    def _log_path(self) -> Path | None:
        return Path(self.log_file) if self.log_file else None

    def _launch(self) -> None:
        """Start the process described by ``_argv`` and wait for its greeting."""
        log = open(self.log_file or os.devnull, "ab")  # noqa: SIM115 - handed to child
        try:
            self._proc = subprocess.Popen(
                self._argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.workdir,
            )
        finally:
            log.close()
        try:
            self._await_greeting(self._proc)
            if self._ready_path is not None:
                ready = Path(self._ready_path)
                _poll(ready.exists, START_TIMEOUT, f"{self.kind}: {ready}")
            if self.kind == "pymap":
                # pymap starts with INBOX only; the app expects a Sent folder.
                self.create_folder("Sent")
        except BaseException:
            self._drop_helper()
            _kill_group(self._proc)
            self._proc = None
            raise

    def _await_greeting(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        ctx = self.ssl_context()
        while True:
            if proc.poll() is not None:
                raise ServerStartError(
                    f"{self.kind} exited with {proc.returncode} on port {self.port}:\n"
                    + _tail(self._log_path)
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerStartError(
                    f"{self.kind} did not greet on port {self.port} within "
                    f"{START_TIMEOUT}s:\n" + _tail(self._log_path)
                )
            try:
                greeting = _read_greeting(self.host, self.port, min(remaining, 0.5), ctx)
            except (OSError, ssl.SSLError):
                time.sleep(0.005)
                continue
            # Check it is OUR server (a unique token for Dovecot), not another
            # process that grabbed the port after free_port().
            if greeting.startswith(b"* OK") and self._greeting in greeting:
                if proc.poll() is None:
                    return
                continue  # reported as "exited" above
            time.sleep(0.005)


def _ensure_folder(c: imapclient.IMAPClient, folder: str) -> None:
    if folder.upper() == "INBOX" or c.folder_exists(folder):
        return
    c.create_folder(folder)


def _append(
    c: imapclient.IMAPClient,
    folder: str,
    raw: bytes,
    flags: Sequence[bytes | str],
    date: datetime | None,
) -> int:
    response = c.append(folder, raw, flags=tuple(flags), msg_time=date)
    match = _APPENDUID_RE.search(response)
    if match:
        return int(match.group(2))
    # No UIDPLUS: the new message is the one with the highest UID.
    c.select_folder(folder, readonly=True)
    try:
        uids = c.search(["ALL"])
        if not uids:
            raise RuntimeError(f"APPEND to {folder} succeeded but folder is empty")
        return int(max(uids))
    finally:
        _deselect(c)


def _deselect(c: imapclient.IMAPClient) -> None:
    """Leave the selected folder without expunging anything."""
    if c.has_capability("UNSELECT"):
        c.unselect_folder()
        return
    # pymap has no UNSELECT and answers NO to CLOSE on an EXAMINEd folder:
    # move the selection to INBOX (read-only) so the folder can be deleted.
    try:
        c.close_folder()
    except imapclient.exceptions.IMAPClientError:
        c.select_folder("INBOX", readonly=True)


def _fetch_all(
    c: imapclient.IMAPClient, folder: str
) -> list[tuple[int, bytes, tuple[bytes, ...], datetime]]:
    c.select_folder(folder, readonly=True)
    try:
        uids = c.search(["ALL"])
        if not uids:
            return []
        data = c.fetch(uids, [b"BODY.PEEK[]", b"FLAGS", b"INTERNALDATE"])
    finally:
        _deselect(c)
    return [
        (
            int(uid),
            data[uid][b"BODY[]"],
            tuple(data[uid][b"FLAGS"]),
            data[uid][b"INTERNALDATE"],
        )
        for uid in sorted(data)
    ]


# ----------------------------------------------------------------- Dovecot ---


def dovecot_version() -> tuple[int, ...]:
    """``dovecot --version`` as a tuple, e.g. ``(2, 3, 19, 1)``."""
    out = subprocess.run(
        [_tool("dovecot"), "--version"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    match = re.match(r"\s*(\d+(?:\.\d+)*)", out)
    if not match:
        raise RuntimeError(f"cannot parse dovecot version: {out!r}")
    return tuple(int(p) for p in match.group(1).split("."))


def _check_credentials(users: dict[str, str]) -> None:
    if not users:
        raise ValueError("need at least one user")
    for name, password in users.items():
        bad = {":", "\n", "\r", "\t", " "}
        if not name or bad & set(name) or {":", "\n", "\r"} & set(password):
            raise ValueError(f"unsupported characters in credentials for {name!r}")


def _dovecot_identity() -> dict[str, str | int]:
    """Which system accounts the private instance runs as.

    root: mail as nobody/nogroup, internal/login processes as Debian's
    dovecot/dovenull. Otherwise everything runs as the current user.
    """
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        try:
            gid = grp.getgrnam("nogroup").gr_gid
        except KeyError:
            gid = nobody.pw_gid
        try:
            pwd.getpwnam("dovecot")
            pwd.getpwnam("dovenull")
            grp.getgrnam("dovecot")
        except KeyError:
            return {
                "uid": nobody.pw_uid,
                "gid": gid,
                "internal": "nobody",
                "group": grp.getgrgid(gid).gr_name,
                "login": "nobody",
            }
        return {
            "uid": nobody.pw_uid,
            "gid": gid,
            "internal": "dovecot",
            "group": "dovecot",
            "login": "dovenull",
        }
    me = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    return {"uid": os.getuid(), "gid": os.getgid(), "internal": me, "group": group, "login": me}


def _dovecot_conf(
    version: tuple[int, ...],
    workdir: Path,
    port: int,
    ident: dict[str, str | int],
    tls_files: tuple[Path, Path, Path] | None,
    greeting: str,
    namespace: str = "",
) -> str:
    home = workdir / "mail" / "shared"
    run = workdir / "run"
    log = workdir / "dovecot.log"
    passwd = workdir / "passwd"
    imap_port, imaps_port = (0, port) if tls_files else (port, 0)
    # 2.4 renamed service_count to restart_request_count (default unlimited).
    login_reuse = "" if version >= (2, 4) else "  service_count = 0\n"
    # Shared between 2.3 and 2.4: service/namespace blocks.
    services = f"""
service imap-login {{
  chroot =
{login_reuse}  process_min_avail = 1
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap {{
  process_limit = 1024
}}
namespace inbox {{
  inbox = yes
  separator = {namespace[-1:] or "/"}
  prefix = {namespace}
  mailbox Sent {{
    auto = create
    special_use = \\Sent
  }}
}}
"""
    if version >= (2, 4):
        ssl_part = (
            f"ssl = required\nssl_server_cert_file = {tls_files[1]}\n"
            f"ssl_server_key_file = {tls_files[2]}\n"
            if tls_files
            else "ssl = no\n"
        )
        return f"""dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
base_dir = {run}
state_dir = {workdir / "state"}
instance_name = helpdesk-test-{port}
log_path = {log}
info_log_path = {log}
listen = {HOST}
protocols = imap
login_greeting = {greeting}
{ssl_part}default_internal_user = {ident["internal"]}
default_internal_group = {ident["group"]}
default_login_user = {ident["login"]}
first_valid_uid = 1
first_valid_gid = 1
mail_uid = {ident["uid"]}
mail_gid = {ident["gid"]}
mail_home = {home}
mail_driver = sdbox
mail_path = ~/mail
mail_fsync = never
auth_allow_cleartext = yes
auth_mechanisms = plain login
auth_failure_delay = 0
mailbox_idle_check_interval = 1s
mail_max_userip_connections = 1000
passdb passwd-file {{
  passwd_file_path = {passwd}
}}
userdb static {{
  fields {{
    uid = {ident["uid"]}
    gid = {ident["gid"]}
    home = {home}
  }}
}}
{services}"""
    ssl_part = (
        f"ssl = required\nssl_cert = <{tls_files[1]}\nssl_key = <{tls_files[2]}\n"
        if tls_files
        else "ssl = no\n"
    )
    return f"""# private test instance generated by tests/servers.py
base_dir = {run}
state_dir = {workdir / "state"}
instance_name = helpdesk-test-{port}
log_path = {log}
info_log_path = {log}
listen = {HOST}
protocols = imap
login_greeting = {greeting}
{ssl_part}default_internal_user = {ident["internal"]}
default_internal_group = {ident["group"]}
default_login_user = {ident["login"]}
first_valid_uid = 1
first_valid_gid = 1
mail_uid = {ident["uid"]}
mail_gid = {ident["gid"]}
mail_location = sdbox:~/mail
mail_fsync = never
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mailbox_idle_check_interval = 1 secs
mail_max_userip_connections = 1000
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid={ident["uid"]} gid={ident["gid"]} home={home}
}}
{services}"""


def start_dovecot(
    users: dict[str, str] | None = None, *, tls: bool = False, namespace: str = ""
) -> ImapServer:
    """Start a private Dovecot on 127.0.0.1 (~20-50 ms).

    All ``users`` (default :data:`DEFAULT_USERS`) log in to the SAME mail
    store. Folders: INBOX, Sent (auto-created, ``\\Sent``); others may be
    created, hierarchy separator ``/``. With ``tls=True`` the port speaks
    implicit TLS (IMAPS) with a cert for 127.0.0.1/localhost signed by a
    throw-away CA at ``server.ca_file``.

    ``namespace="INBOX."`` makes the personal namespace's prefix ``INBOX.`` and its
    separator ``.`` (the prefix's last character), so folder names look as on
    Courier and Debian's Cyrus: ``INBOX.Sent``, ``INBOX.HelpDesk.Log``.
    """
    return _start_dovecot(users, tls=tls, namespace=namespace)


def start_dovecot_oauth(
    introspection_url: str, users: dict[str, str] | None = None, *, tls: bool = False
) -> ImapServer:
    """A private Dovecot (as :func:`start_dovecot`) that accepts only SASL XOAUTH2 and
    OAUTHBEARER, checking each bearer token with its ``oauth2`` passdb against
    ``introspection_url`` (RFC 7662, ``introspection_mode = post``): the token must be
    active and its ``username`` the login's. No password login works. ``users`` are
    still listed (the passwords are unused) so that test helpers know the logins.
    """
    def oauth2(conf: str, version: tuple[int, ...], workdir: Path) -> str:
        settings = (
            "introspection_mode = post\n"
            f"introspection_url = {introspection_url}\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
        )
        if version >= (2, 4):
            conf = conf.replace("auth_mechanisms = plain login",
                                "auth_mechanisms = oauthbearer xoauth2")
            block = "oauth2 {\n" + "".join(f"  oauth2_{line}\n"
                                             for line in settings.splitlines()) + "}\n"
            return re.sub(r"passdb passwd-file \{[^}]*\}\n", block, conf)
        (workdir / "oauth2.conf.ext").write_text(settings)
        conf = conf.replace("auth_mechanisms = plain login",
                            "auth_mechanisms = oauthbearer xoauth2")
        return re.sub(
            r"passdb \{\n  driver = passwd-file\n[^}]*\}\n",
            "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
            f"  args = {workdir / 'oauth2.conf.ext'}\n}}\n",
            conf,
        )

    return _start_dovecot(users, tls=tls, namespace="", conf_hook=oauth2)


def _start_dovecot(
    users: dict[str, str] | None,
    *,
    tls: bool,
    namespace: str,
    conf_hook: Callable[[str, tuple[int, ...], Path], str] | None = None,
) -> ImapServer:
    if namespace and namespace[-1].isalnum():
        raise ValueError("the namespace prefix ends with its separator, e.g. 'INBOX.'")
    users = dict(DEFAULT_USERS if users is None else users)
    _check_credentials(users)
    if find_tool("dovecot") is None:
        raise ServerStartError("dovecot binary not found (apt-get install dovecot-imapd)")
    version = dovecot_version()
    ident = _dovecot_identity()

    workdir = Path(tempfile.mkdtemp(prefix="helpdesk-dovecot-"))
    try:
        workdir.chmod(0o755)
        home = workdir / "mail" / "shared"
        home.mkdir(parents=True)
        (workdir / "mail").chmod(0o755)
        uid, gid = int(ident["uid"]), int(ident["gid"])
        if os.geteuid() == 0:
            os.chown(home, uid, gid)
        home.chmod(0o700)
        passwd = workdir / "passwd"
        passwd.write_text("".join(f"{name}:{{PLAIN}}{pw}::::::\n" for name, pw in users.items()))
        passwd.chmod(0o644)
        tls_files = _make_tls_files(workdir / "tls") if tls else None

        last_error: Exception | None = None
        for _attempt in range(5):
            port = free_port()
            conf = workdir / "dovecot.conf"
            greeting = f"helpdesk-test-{secrets.token_hex(6)} ready."
            text = _dovecot_conf(version, workdir, port, ident, tls_files, greeting, namespace)
            if conf_hook is not None:
                text = conf_hook(text, version, workdir)
            conf.write_text(text)
            server = ImapServer(
                host=HOST,
                port=port,
                users=users,
                kind="dovecot",
                delimiter=namespace[-1:] or "/",
                prefix=namespace,
                tls=tls,
                ca_file=str(tls_files[0]) if tls_files else None,
                workdir=str(workdir),
                mail_home=str(home),
                log_file=str(workdir / "dovecot.log"),
                _argv=[_tool("dovecot"), "-F", "-c", str(conf)],
                _doveconf=str(conf),
                _greeting=greeting.encode(),
            )
            try:
                server._launch()
            except ServerStartError as exc:
                last_error = exc
                if "in use" in str(exc):  # lost the free_port() race: try another
                    continue
                raise
            return server
        raise ServerStartError(f"could not bind dovecot: {last_error}")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


# ------------------------------------------------------------------- pymap ---


def start_pymap(users: dict[str, str] | None = None) -> ImapServer:
    """Start ``pymap --no-tls dict`` on 127.0.0.1 (~0.5 s: Python start-up).

    The dict backend has exactly ONE login (its "demo user"), so ``users``
    must hold one entry; default: the first of :data:`DEFAULT_USERS`. The
    mailbox starts empty apart from INBOX and Sent (created here).
    Capabilities: UIDPLUS, MOVE, IDLE - no CONDSTORE, no custom keywords in
    PERMANENTFLAGS. Hierarchy delimiter ``/``. First UID in a folder is 101.
    """
    if users is None:
        name = next(iter(DEFAULT_USERS))
        users = {name: DEFAULT_USERS[name]}
    users = dict(users)
    _check_credentials(users)
    if len(users) != 1:
        raise ValueError("pymap's dict backend supports exactly one login")
    ((user, password),) = users.items()
    exe = find_tool("pymap")
    if exe is None:
        raise ServerStartError("pymap not found (pip install pymap)")
    workdir = Path(tempfile.mkdtemp(prefix="helpdesk-pymap-"))
    try:
        last_error: Exception | None = None
        for _attempt in range(5):
            port = free_port()
            argv = [exe, "--pid-file", str(workdir / "pymap.pid"),
                    *starters.pymap_args(HOST, port, user, password)]
            server = ImapServer(
                host=HOST,
                port=port,
                users=users,
                kind="pymap",
                delimiter="/",
                workdir=str(workdir),
                log_file=str(workdir / "pymap.log"),
                _argv=argv,
            )
            try:
                server._launch()
            except ServerStartError as exc:
                last_error = exc
                if "in use" in str(exc):
                    continue
                raise
            return server
        raise ServerStartError(f"could not bind pymap: {last_error}")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


# ------------------------------------- Courier, Cyrus, imap4d (unpacked) ---

#: Where ``scripts/test-servers.sh`` unpacks Debian's server packages.
UNPACKED = Path(__file__).resolve().parent.parent / ".test-servers"
SETUP_COMMAND = "sh scripts/setup.sh --test"
#: The one login of the unpacked servers (a shared support mailbox).
SUPPORT_USER = {"support": "secret-support"}


def unpacked_servers_missing() -> str | None:
    """None when the unpacked servers can run here, else why not (with the fix)."""
    if not (UNPACKED / "complete").is_file() or not (UNPACKED / "root" / "usr").is_dir():
        return f"Courier, Cyrus and imap4d are not unpacked in {UNPACKED}; run '{SETUP_COMMAND}'"
    if os.geteuid() != 0:
        return "Courier, Cyrus and imap4d run in a private mount namespace, which needs root"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare/mount (util-linux) are missing; run 'apt-get install util-linux mount'"
    return None


def _namespace_argv(script: str) -> list[str]:
    """Run ``script`` (sh) in a private mount namespace where the unpacked packages
    are overlaid (read-only) on /usr, so the servers' compiled-in paths work. The
    mounts vanish with the last process of the namespace."""
    problem = unpacked_servers_missing()
    if problem is not None:
        raise ServerStartError(problem)
    usr = UNPACKED / "root" / "usr"
    overlay = f"lowerdir={usr}:/usr"
    if any(c in str(usr) for c in ",: "):
        raise ServerStartError(f"the path {usr} cannot be mounted (',', ':' or space in it)")
    prologue = f"mount -t overlay overlay -o {shlex.quote(overlay)} /usr\n"
    return ["unshare", "--mount", "--propagation", "private", "sh", "-ec", prologue + script]


def _nobody() -> tuple[int, int]:
    nobody = pwd.getpwnam("nobody")
    try:
        return nobody.pw_uid, grp.getgrnam("nogroup").gr_gid
    except KeyError:
        return nobody.pw_uid, nobody.pw_gid


def _chown_tree(top: Path, uid: int, gid: int) -> None:
    os.chown(top, uid, gid)
    for base, dirs, files in os.walk(top):
        for name in dirs + files:
            os.chown(os.path.join(base, name), uid, gid)


def _maildir(path: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)


def _start_unpacked(
    kind: str,
    prefix: str,
    users: dict[str, str],
    build: Callable[[Path, int], tuple[list[str], bytes, str | None]],
) -> ImapServer:
    """Shared start-up: a private dir, a free port (retried), a greeting to wait for.

    ``build(workdir, port)`` writes the configuration and returns the argv, the
    greeting token that identifies the server and an optional path that exists once
    the server is ready.
    """
    _check_credentials(users)
    if len(users) != 1:
        raise ValueError(f"the {kind} fixture has exactly one login")
    workdir = Path(tempfile.mkdtemp(prefix=f"helpdesk-{kind}-"))
    try:
        workdir.chmod(0o755)
        last_error: Exception | None = None
        for _attempt in range(5):
            port = free_port()
            argv, token, ready = build(workdir, port)
            server = ImapServer(
                host=HOST,
                port=port,
                users=users,
                kind=kind,
                delimiter=prefix[-1:] or "/",
                prefix=prefix,
                workdir=str(workdir),
                log_file=str(workdir / f"{kind}.log"),
                _argv=argv,
                _greeting=token,
                _ready_path=ready,
            )
            try:
                server._launch()
            except ServerStartError as exc:
                last_error = exc
                if "in use" in str(exc) or "Address already" in str(exc):
                    continue
                raise
            return server
        raise ServerStartError(f"could not bind {kind}: {last_error}")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def start_courier(users: dict[str, str] | None = None) -> ImapServer:
    """Courier-IMAP 5 (couriertcpd, imaplogin, authdaemond with userdb, imapd) with
    Debian's /etc/courier/imapd settings: personal namespace ``INBOX.``, separator
    ``.``, no SPECIAL-USE, no UNSELECT, ``IMAP_ENHANCEDIDLE=0`` (IDLE reports changes
    only every ``IMAP_IDLE_TIMEOUT`` = 60 s). Refuses APPEND to the folder that is
    selected read-only. One login (default ``support``); the mailbox has INBOX only.
    """
    users = dict(SUPPORT_USER if users is None else users)
    ((user, password),) = users.items()

    def build(workdir: Path, port: int) -> tuple[list[str], bytes, str | None]:
        uid, gid = _nobody()
        etc, run, home = workdir / "etc", workdir / "run", workdir / "home"
        (etc / "courier").mkdir(parents=True, exist_ok=True)
        (workdir / "etc-work").mkdir(exist_ok=True)
        (run / "courier" / "authdaemon").mkdir(parents=True, exist_ok=True)
        _maildir(home / "Maildir")
        _chown_tree(home, uid, gid)
        (etc / "courier" / "authdaemonrc").write_text(
            'authmodulelist="authuserdb"\ndaemons=2\nauthdaemonvar=/run/courier/authdaemon\n'
            'DEBUG_LOGIN=0\nDEFAULTOPTIONS=""\nLOGGEROPTS=""\n'
        )
        digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
        userdb = etc / "courier" / "userdb"
        userdb.write_text(
            f"{user}\tuid={uid}|gid={gid}|home={home}|mail={home}/Maildir|systempw={{SHA}}{digest}\n"
        )
        userdb.chmod(0o600)
        etc_overlay = (
            f"lowerdir={UNPACKED / 'root' / 'etc'}:/etc,upperdir={etc},"
            f"workdir={workdir / 'etc-work'}"
        )
        script = f"""
mount -t overlay overlay -o {shlex.quote(etc_overlay)} /etc
mount --bind {shlex.quote(str(run))} /run
makeuserdb
/usr/lib/courier/courier-authlib/authdaemond &
set -a
. /etc/courier/imapd
set +a
exec /usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=200 -maxperip=200 \\
  -nodnslookup -noidentlookup {port} /usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir
"""
        ready = run / "courier" / "authdaemon" / "socket"
        return _namespace_argv(script), b"Courier-IMAP ready", str(ready)

    return _start_unpacked("courier", "INBOX.", users, build)


def start_cyrus(users: dict[str, str] | None = None) -> ImapServer:
    """Cyrus IMAP 3.6 (master + imapd) with Debian's imapd.conf namespace settings
    (``altnamespace: no``, ``unixhierarchysep: no``: personal namespace ``INBOX.``,
    separator ``.``), INBOX created at first login, no ``idled`` (as Debian ships it,
    IDLE then polls), SPECIAL-USE, UIDPLUS, CONDSTORE. Passwords are not checked
    (SASL ``alwaystrue``); one login (default ``support``).
    """
    users = dict(SUPPORT_USER if users is None else users)

    def build(workdir: Path, port: int) -> tuple[list[str], bytes, str | None]:
        uid, gid = _nobody()
        conf, lib, spool, run = (workdir / d for d in ("conf", "lib", "spool", "run"))
        for d in (conf, lib, spool, run / "socket", run / "proc", run / "lock"):
            d.mkdir(parents=True, exist_ok=True)
        for d in (lib, spool, run):
            _chown_tree(d, uid, gid)
        imapd_conf = conf / "imapd.conf"
        imapd_conf.write_text(f"""configdirectory: {lib}
proc_path: {run}/proc
mboxname_lockpath: {run}/lock
defaultpartition: default
partition-default: {spool}
altnamespace: no
unixhierarchysep: no
autocreate_quota: 0
umask: 077
hashimapspool: true
allowplaintext: yes
sasl_pwcheck_method: alwaystrue
sasl_mech_list: PLAIN LOGIN
cyrus_user: {pwd.getpwuid(uid).pw_name}
cyrus_group: {grp.getgrgid(gid).gr_name}
idlesocket: {run}/socket/idle
notifysocket: {run}/socket/notify
lmtpsocket: {run}/socket/lmtp
syslog_prefix: helpdesk-cyrus-{port}
""")
        bin_dir = "/usr/lib/cyrus/bin"
        (conf / "cyrus.conf").write_text(f"""START {{
  recover cmd="{bin_dir}/ctl_cyrusdb -r -C {imapd_conf}"
}}
SERVICES {{
  imap cmd="{bin_dir}/imapd -C {imapd_conf}" listen="127.0.0.1:{port}" prefork=0 maxchild=200
}}
EVENTS {{
}}
""")
        pid_file = run / "master.pid"
        script = (
            f"exec {bin_dir}/master -D -C {shlex.quote(str(imapd_conf))} "
            f"-M {shlex.quote(str(conf / 'cyrus.conf'))} -p {shlex.quote(str(pid_file))}\n"
        )
        return _namespace_argv(script), b"Cyrus IMAP", None

    return _start_unpacked("cyrus", "INBOX.", users, build)


def _crypt_sha512(password: str) -> str:
    """crypt(3) SHA-512 hash through libcrypt (the stdlib's crypt module is deprecated)."""
    import ctypes
    import ctypes.util

    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    salt = "$6$" + secrets.token_hex(8)
    hashed: bytes | None = lib.crypt(password.encode(), salt.encode())
    if not hashed or not hashed.startswith(b"$6$"):
        raise ServerStartError("libcrypt cannot make a SHA-512 crypt hash")
    return hashed.decode()


def start_imap4d(users: dict[str, str] | None = None) -> ImapServer:
    """GNU Mailutils imap4d 3.15, maildir folders, separator ``/``, no personal
    prefix, no UIDPLUS. Its ``UID SEARCH UID n:*`` answers nothing (a known bug):
    a server Help desk must refuse. One login, default ``support@example.com``
    (virtual-domain passwd file).
    """
    users = dict({"support@example.com": "secret-support"} if users is None else users)
    ((user, password),) = users.items()
    if "@" not in user:
        raise ValueError("imap4d's virtual domains need a login like user@example.com")
    local, domain = user.split("@", 1)

    def build(workdir: Path, port: int) -> tuple[list[str], bytes, str | None]:
        uid, gid = _nobody()
        pw_dir, home = workdir / "passwd", workdir / "home"
        pw_dir.mkdir(exist_ok=True)
        _maildir(home / "INBOX")
        _chown_tree(home, uid, gid)
        (pw_dir / domain).write_text(
            f"{local}:{_crypt_sha512(password)}:{uid}:{gid}::{home}:/bin/sh\n"
        )
        conf = workdir / "imap4d.conf"
        conf.write_text(f"""logging {{ syslog false; }};
foreground true;
mode daemon;
pidfile "{workdir / 'imap4d.pid'}";
server 127.0.0.1:{port} {{ }};
auth {{ authorization virtdomain; authentication generic; }};
virtdomain {{ passwd-dir "{pw_dir}"; }};
mailbox {{ mailbox-pattern "maildir://{home}/INBOX"; }};
namespace personal {{ prefix "" {{ directory "{home}"; delimiter "/"; mailbox-type maildir; }}; }};
tcp-wrappers {{ enable false; }};
""")
        script = f"exec imap4d --no-site-config --config-file={shlex.quote(str(conf))}\n"
        return _namespace_argv(script), b"IMAP4rev1", None

    return _start_unpacked("imap4d", "", users, build)


# -------------------------------------------------------------------- SMTP ---

Message = tuple[str, list[str], bytes]
FailStage = Literal["rcpt", "data"]


class _SinkHandler:
    """aiosmtpd handler: records messages, can be told to fail."""

    def __init__(self, sink: SmtpSink, require_auth: bool) -> None:
        self.sink = sink
        self.require_auth = require_auth

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        # Enforced here rather than with SMTP(auth_required=True), which emits a
        # UserWarning without TLS (an error under filterwarnings=error).
        if self.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        fail = self.sink._failure("rcpt", address)
        if fail is not None:
            return fail
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fail = self.sink._failure("data", None)
        if fail is not None:
            return fail
        auth = session.auth_data
        user = auth.login.decode(errors="replace") if isinstance(auth, LoginPassword) else None
        self.sink._record(starters.received(envelope), user)
        return "250 Message accepted for delivery"


class _OAuthSinkHandler(_SinkHandler):
    """Also offers AUTH XOAUTH2 and OAUTHBEARER (and nothing else): the bearer token is
    checked at the identity provider's introspection endpoint (RFC 7662), as a real
    submission server does; the login must be the token's user."""

    def __init__(self, sink: SmtpSink, introspection_url: str) -> None:
        super().__init__(sink, require_auth=True)
        self.introspection_url = introspection_url

    def _introspect(self, token: str) -> dict[str, Any]:
        import urllib.parse
        import urllib.request

        data = urllib.parse.urlencode({"token": token}).encode()
        with urllib.request.urlopen(self.introspection_url, data=data, timeout=10) as resp:
            answer = json.loads(resp.read())
        return answer if isinstance(answer, dict) else {}

    async def _bearer(self, server: SMTP, args: list[str], mech: str) -> AuthResult:
        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except ValueError:
                return AuthResult(success=False, handled=False, message="501 5.5.2 bad base64")
        else:
            got = await server.challenge_auth("")
            if not isinstance(got, bytes):
                return AuthResult(success=False, handled=True)
            blob = got
        text = blob.decode("utf-8", "replace")
        fields = dict(f.split("=", 1) for f in text.split("\x01") if "=" in f)
        if mech == "OAUTHBEARER":
            gs2 = text.split("\x01", 1)[0]
            user = next((p[2:] for p in gs2.split(",") if p.startswith("a=")), "")
            user = user.replace("=2C", ",").replace("=3D", "=")
        else:
            user = fields.get("user", "")
        auth = fields.get("auth", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        loop = asyncio.get_running_loop()
        info = await loop.run_in_executor(None, self._introspect, token) if token else {}
        if info.get("active") is True and info.get("username") == user:
            self.sink.oauth_logins.append((mech, user))
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        self.sink.oauth_refusals.append((mech, user))
        error = {"status": "invalid_token", "schemes": "bearer", "scope": "mail.smtp"}
        await server.challenge_auth(json.dumps(error))  # RFC 7628 section 3.2.2
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Authentication credentials invalid")

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "OAUTHBEARER")


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that stores what it gets.

    ``messages`` holds ``(mail_from, rcpt_tos, raw_bytes)``; ``auth_users``
    holds, per message, the login used (or None).
    """

    def __init__(
        self, *, require_auth: dict[str, str] | None = None, oauth_introspection: str = ""
    ) -> None:
        self.host = HOST
        self.port = 0
        self.require_auth = dict(require_auth) if require_auth else None
        self.oauth_introspection = oauth_introspection
        #: (mechanism, user) of each accepted / refused bearer-token login
        self.oauth_logins: list[tuple[str, str]] = []
        self.oauth_refusals: list[tuple[str, str]] = []
        self.messages: list[Message] = []
        self.auth_users: list[str | None] = []
        self._cond = threading.Condition()
        self._fail: tuple[int, str, FailStage, frozenset[str] | None] | None = None
        self._controller: Controller | None = None

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> Self:
        handler: _SinkHandler = _SinkHandler(self, require_auth=self.require_auth is not None)
        kwargs: dict[str, Any] = {}
        if self.oauth_introspection:
            handler = _OAuthSinkHandler(self, self.oauth_introspection)
            kwargs["auth_require_tls"] = False
            kwargs["auth_exclude_mechanism"] = ["LOGIN", "PLAIN"]
        elif self.require_auth is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = False
        last_error: Exception | None = None
        for _attempt in range(5):
            self.port = free_port()
            controller = Controller(
                handler,
                hostname=self.host,
                port=self.port,
                loop=asyncio.new_event_loop(),
                ready_timeout=10,
                **kwargs,
            )
            try:
                controller.start()
            except OSError as exc:  # lost the free_port() race
                last_error = exc
                with contextlib.suppress(Exception):
                    controller.loop.close()
                continue
            self._controller = controller
            return self
        raise ServerStartError(f"could not start SMTP sink: {last_error}")

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
            with contextlib.suppress(Exception):
                controller.loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- behaviour ---------------------------------------------------------
    def set_fail(
        self,
        code: int | None,
        text: str = "",
        *,
        stage: FailStage = "rcpt",
        recipients: Iterable[str] | None = None,
    ) -> None:
        """Make subsequent transactions fail with ``code`` (None: accept again).

        ``stage="rcpt"`` (default) rejects RCPT TO - smtplib raises
        SMTPRecipientsRefused (when all recipients fail). ``stage="data"``
        accepts recipients and rejects the message after DATA - smtplib raises
        SMTPDataError. ``recipients`` limits RCPT failures to those addresses
        (case-insensitive), so a mixed send partly succeeds.
        """
        with self._cond:
            if code is None:
                self._fail = None
                return
            if not 400 <= code <= 599:
                raise ValueError("SMTP failure codes are 4xx or 5xx")
            text = text or ("Temporary failure" if code < 500 else "Rejected")
            only = frozenset(r.lower() for r in recipients) if recipients is not None else None
            self._fail = (code, text, stage, only)

    def wait_for(self, n: int, timeout: float = 10) -> list[Message]:
        """Block until at least ``n`` messages arrived; return a copy of them."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.messages) >= n, timeout=timeout)
            if not ok:
                raise TimeoutError(
                    f"SMTP sink got {len(self.messages)} messages, expected {n} within {timeout}s"
                )
            return list(self.messages)

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()
            self.auth_users.clear()

    # -- internals ---------------------------------------------------------
    def _failure(self, stage: FailStage, address: str | None) -> str | None:
        with self._cond:
            fail = self._fail
        if fail is None:
            return None
        code, text, fail_stage, only = fail
        if fail_stage != stage:
            return None
        if only is not None and (address is None or address.lower() not in only):
            return None
        return f"{code} {text}"

    def _record(self, message: Message, user: str | None) -> None:
        with self._cond:
            self.messages.append(message)
            self.auth_users.append(user)
            self._cond.notify_all()

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        creds = self.require_auth or {}
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode(errors="replace")
            password = auth_data.password.decode(errors="replace")
            if login in creds and creds[login] == password:
                return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)


def start_smtp_sink(
    *, require_auth: dict[str, str] | None = None, oauth_introspection: str = ""
) -> SmtpSink:
    """Start an SMTP sink on 127.0.0.1 (plain, no TLS).

    With ``require_auth`` ({login: password}) AUTH PLAIN/LOGIN is offered
    without TLS and MAIL FROM is refused (530) until the client authenticated.
    With ``oauth_introspection`` (an RFC 7662 endpoint) only AUTH XOAUTH2 and
    OAUTHBEARER are offered, each bearer token checked there, and MAIL FROM is
    refused until one was accepted.
    """
    return SmtpSink(require_auth=require_auth, oauth_introspection=oauth_introspection).start()
