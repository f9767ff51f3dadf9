"""The built-in demo: a shared support mailbox on loopback, filled with sample mail.

``python main.py --demo`` calls :func:`demo_profile`, which makes sure a demo
server process is running (:func:`ensure_demo_servers`) and returns a profile
pointing at it. The server process (``python -m helpdesk.demo serve``) runs,
in one asyncio loop:

* pymap's in-memory ``dict`` backend as a plain-text IMAP server on
  127.0.0.1. It has exactly one login (``support@lumen.example`` /
  ``demopass``), the hierarchy delimiter is ``/``, and it starts with INBOX
  only: ``Sent`` is created here; ``CREATE HelpDesk/Log`` makes the parent
  ``HelpDesk`` as a ``\\Noselect`` folder by itself;
* an SMTP sink (aiosmtpd) that accepts every message, logs it and keeps a
  copy under ``<state dir>/outbox/``; nothing is delivered anywhere.

The mailbox is filled over IMAP APPEND from ``resources/demo/``: ``mail/*.eml``
go to INBOX, ``sent/*.eml`` to Sent, in file-name order. All dates are shifted
by one offset so that the newest message is about an hour old; the shifted
date is also the APPEND date, so INTERNALDATE matches the Date header.

The process is detached from the app (new session, output to a log file), so a
second ``--demo --agent NAME`` window joins the same server and both windows
see each other's claims. It records itself in ``<state dir>/state.json``
(ports, pid, a random ``server_id``) and exits on SIGTERM or as soon as that
file is removed or names another server. ``python -m helpdesk.demo stop``
stops it; ``status`` shows it.

The state dir is ``$HELPDESK_DEMO_DIR``, else ``<user runtime dir>/helpdesk-demo``.
Demo databases live in ``$HELPDESK_DEMO_DATA``, else the user data dir, as
``demo-<agent>.sqlite3``. Because the in-memory server comes back empty with
new UIDVALIDITYs after a restart, each database has a ``.server`` sidecar with
the id of the server it was synced from, and is deleted when that differs.

This module is Qt-free; pymap and aiosmtpd are imported only by the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import json
import logging
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import platformdirs

from helpdesk.config import APP_NAME, ImapSettings, Profile, SmtpSettings
from helpdesk.errors import HelpdeskError
from helpdesk.team.events import Event, encode

log = logging.getLogger("helpdesk.demo")

HOST = "127.0.0.1"
SUPPORT_ADDRESS = "support@lumen.example"
SUPPORT_NAME = "Lumen Support"
DEMO_USER = SUPPORT_ADDRESS  # pymap's single "demo user" login
DEMO_PASSWORD = "demopass"
INBOX = "INBOX"
SENT_FOLDER = "Sent"
TEAM_FOLDER = "HelpDesk/Log"  # pymap's hierarchy delimiter is "/"
POLL_SECONDS = 10

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"
LOG_FILE = "server.log"
OUTBOX_DIR = "outbox"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
WATCH_INTERVAL = 0.5
NEWEST_AGE = timedelta(hours=1)

RESOURCES = Path(__file__).resolve().parent.parent / "resources" / "demo"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Servers started by this process, so stop_demo_servers() can reap them.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class DemoError(HelpdeskError):
    """The demo servers could not be started."""


@dataclass(frozen=True)
class DemoInfo:
    """A running demo server, as recorded in its state file."""

    host: str
    imap_port: int
    smtp_port: int
    pid: int
    server_id: str
    started_at: str
    username: str
    password: str
    state_dir: Path
    started: bool  # True when this call launched the server

    @property
    def log_file(self) -> Path:
        return self.state_dir / LOG_FILE


# --- places ------------------------------------------------------------------------


def demo_dir() -> Path:
    """Where the state file, lock and server log live."""
    env = os.environ.get("HELPDESK_DEMO_DIR")
    if env:
        return Path(env).expanduser()
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            base = Path(platformdirs.user_runtime_dir())
        path = base / "helpdesk-demo"
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
        return Path(tempfile.gettempdir()) / f"helpdesk-demo-{uid}"


def demo_data_dir() -> Path:
    """Where the demo agents' databases live."""
    env = os.environ.get("HELPDESK_DEMO_DATA")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME))


def _state_path(directory: Path) -> Path:
    return directory / STATE_FILE


def read_state(directory: Path | None = None) -> dict[str, Any] | None:
    """The state file's content, or None when absent or unreadable."""
    path = _state_path(directory or demo_dir())
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    keys = ("server_id", "pid", "imap_port", "smtp_port")
    return data if isinstance(data, dict) and all(k in data for k in keys) else None


def _write_state(directory: Path, state: dict[str, Any]) -> None:
    path = _state_path(directory)
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _remove_state_if(directory: Path, server_id: str) -> None:
    state = read_state(directory)
    if state is not None and state.get("server_id") == server_id:
        with contextlib.suppress(OSError):
            _state_path(directory).unlink()


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive inter-process lock (two windows starting at once share one server)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a+b") as fh:
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            import msvcrt

            fh.seek(0)
            deadline = time.monotonic() + START_TIMEOUT * 2
            while True:
                try:
                    msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise DemoError("Another demo start is stuck; try again.") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --- probing -----------------------------------------------------------------------


def _greeting(host: str, port: int, timeout: float = 2.0) -> bytes:
    """The server's first line, or b"" when nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            data = b""
            while b"\n" not in data and len(data) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data.startswith(b"220"):
                with contextlib.suppress(OSError):
                    sock.sendall(b"QUIT\r\n")
            return data
    except OSError:
        return b""


def _smtp_ident(server_id: str) -> str:
    return f"helpdesk-demo {server_id}"


def servers_answer(state: dict[str, Any]) -> bool:
    """True when both servers of ``state`` answer, and the SMTP one is really that server."""
    host = str(state.get("host", HOST))
    try:
        imap_port, smtp_port = int(state["imap_port"]), int(state["smtp_port"])
    except (KeyError, TypeError, ValueError):
        return False
    smtp = _greeting(host, smtp_port)
    if not smtp.startswith(b"220") or _smtp_ident(str(state["server_id"])).encode() not in smtp:
        return False
    return _greeting(host, imap_port).startswith(b"* OK")


def _info(state: dict[str, Any], directory: Path, started: bool) -> DemoInfo:
    return DemoInfo(
        host=str(state.get("host", HOST)), imap_port=int(state["imap_port"]),
        smtp_port=int(state["smtp_port"]), pid=int(state["pid"]),
        server_id=str(state["server_id"]), started_at=str(state.get("started_at", "")),
        username=str(state.get("username", DEMO_USER)),
        password=str(state.get("password", DEMO_PASSWORD)), state_dir=directory,
        started=started)


def _log_tail(directory: Path, lines: int = 30) -> str:
    try:
        text = (directory / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _pid_alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    if sys.platform == "win32":  # pragma: no cover
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- starting and stopping ---------------------------------------------------------


def ensure_demo_servers(timeout: float = START_TIMEOUT) -> DemoInfo:
    """Return the running demo server, starting one (detached) if none answers."""
    directory = demo_dir()
    with _locked(directory):
        state = read_state(directory)
        if state is not None and servers_answer(state):
            return _info(state, directory, started=False)
        if state is not None:
            # A dead or foreign server: dropping the file also tells a hung one to exit.
            log.info("demo server %s does not answer; starting a new one", state["server_id"])
            with contextlib.suppress(OSError):
                _state_path(directory).unlink()
        server_id = secrets.token_hex(8)
        proc = _spawn(directory, server_id)
        try:
            state = _wait_ready(proc, directory, server_id, timeout)
        except BaseException:
            _terminate(proc)
            raise
        return _info(state, directory, started=True)


def _spawn(directory: Path, server_id: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    kwargs: dict[str, Any] = {}
    if sys.platform == "win32":  # pragma: no cover
        kwargs["creationflags"] = (subprocess.CREATE_NEW_PROCESS_GROUP
                                   | subprocess.DETACHED_PROCESS
                                   | subprocess.CREATE_NO_WINDOW)
    else:
        kwargs["start_new_session"] = True
    argv = [sys.executable, "-m", "helpdesk.demo", "serve",
            "--dir", str(directory), "--server-id", server_id]
    with open(directory / LOG_FILE, "wb") as log_fh:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fh,
                                    stderr=subprocess.STDOUT, cwd=str(directory), env=env,
                                    close_fds=True, **kwargs)
        except OSError as exc:
            raise DemoError(f"Could not start the demo server ({exc.strerror or exc}).") from None
    _CHILDREN[proc.pid] = proc
    log.info("started demo server %s (pid %d), log: %s", server_id, proc.pid,
             directory / LOG_FILE)
    return proc


def _wait_ready(proc: subprocess.Popen[bytes], directory: Path, server_id: str,
                timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        state = read_state(directory)
        if state is not None and state.get("server_id") == server_id and servers_answer(state):
            return state
        if proc.poll() is not None:
            raise DemoError(f"The demo server stopped while starting (exit status "
                            f"{proc.returncode}). Its log says:\n{_log_tail(directory)}")
        if time.monotonic() >= deadline:
            raise DemoError(f"The demo server did not become ready within {timeout:.0f} s. "
                            f"Its log says:\n{_log_tail(directory)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)
    _CHILDREN.pop(proc.pid, None)


def stop_demo_servers(timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the demo server named by the state file; True if one was running."""
    directory = demo_dir()
    with _locked(directory):
        state = read_state(directory)
        if state is None:
            return False
        alive = servers_answer(state)  # the SMTP ident proves the pid is ours to signal
        with contextlib.suppress(OSError):
            _state_path(directory).unlink()  # the server's watchdog exits on this alone
        pid = int(state["pid"])
        if alive:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            try:
                child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=timeout)
            return alive
        deadline = time.monotonic() + timeout
        while alive and _pid_alive(pid):
            if time.monotonic() >= deadline:
                raise DemoError(f"The demo server (pid {pid}) did not stop within "
                                f"{timeout:.0f} s.")
            time.sleep(0.05)
        return alive


# --- the profile -------------------------------------------------------------------


def _password_command(password: str) -> str:
    if os.name == "posix":
        return f"echo {shlex.quote(password)}"
    return f'"{sys.executable}" -c "print({password!r})"'  # pragma: no cover


def _agent_file_stem(agent: str) -> str:
    return "demo-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", agent).strip("._") or "agent")


def _reset_database_if_stale(database: Path, server_id: str) -> None:
    """Delete ``database`` when it was synced from another (now gone) demo server."""
    marker = database.with_suffix(".server")
    try:
        previous = marker.read_text(encoding="utf-8").strip()
    except OSError:
        previous = None
    if previous == server_id:
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            database.with_name(database.name + suffix).unlink()
    database.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(server_id + "\n", encoding="utf-8")


def demo_profile(agent: str) -> Profile:
    """A profile for ``agent`` on the demo server (started if needed)."""
    agent = agent.strip() or "agent-a"
    info = ensure_demo_servers()
    database = demo_data_dir() / f"{_agent_file_stem(agent)}.sqlite3"
    _reset_database_if_stale(database, info.server_id)
    imap = ImapSettings(host=info.host, port=info.imap_port, security="plain",
                        username=info.username,
                        password_command=_password_command(info.password),
                        folders=(INBOX,), sent_folder=SENT_FOLDER, team_folder=TEAM_FOLDER,
                        poll_seconds=POLL_SECONDS)
    smtp = SmtpSettings(host=info.host, port=info.smtp_port, security="plain", username="",
                        password_command=None, from_address=SUPPORT_ADDRESS,
                        from_name=SUPPORT_NAME)
    return Profile(agent=agent, database=database, imap=imap, smtp=smtp)


def team_seed(resources: Path = RESOURCES) -> list[dict[str, Any]]:
    """The initial team state (VIPs, white-glove, notes, cards) from ``team.json``."""
    data = json.loads((resources / "team.json").read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise DemoError("resources/demo/team.json must hold a list of objects.")
    return [item for item in data if isinstance(item, dict)]


# --- demo mail ---------------------------------------------------------------------

_DATE_LINE_RE = re.compile(
    rb"^(Date|Arrival-Date|Last-Attempt-Date|Resent-Date):[ \t]*"
    rb"([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class DemoMessage:
    folder: str
    name: str
    raw: bytes  # CRLF line endings, dates shifted
    date: datetime  # aware; the shifted Date header (used as INTERNALDATE)
    flags: tuple[bytes, ...]


def _parse_date(value: bytes) -> datetime | None:
    text = re.sub(r"\s+", " ", value.decode("ascii", "replace")).strip()
    try:
        dt = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None or dt.tzinfo is None:
        return None
    return dt


def _header_date(raw: bytes) -> datetime | None:
    head = raw.split(b"\r\n\r\n", 1)[0]
    m = re.search(rb"^Date:[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head,
                  re.MULTILINE | re.IGNORECASE)
    return _parse_date(m.group(1)) if m else None


def shift_dates(raw: bytes, delta: timedelta) -> bytes:
    """``raw`` with every parseable Date-like header line moved by ``delta``.

    Covers the message's own Date, and dates in embedded headers (the returned
    message in a bounce, its Arrival-Date). Each keeps its own UTC offset.
    """
    def repl(m: re.Match[bytes]) -> bytes:
        dt = _parse_date(m.group(2))
        if dt is None:
            return m.group(0)
        return m.group(1) + b": " + email.utils.format_datetime(dt + delta).encode("ascii")

    return _DATE_LINE_RE.sub(repl, raw)


def _crlf(raw: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", raw)


def load_demo_messages(resources: Path = RESOURCES, now: datetime | None = None,
                       ) -> list[DemoMessage]:
    """Read the demo mail, shifted so the newest message is :data:`NEWEST_AGE` old.

    ``mail/`` goes to INBOX, ``sent/`` to Sent; each folder in file-name order.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    files: list[tuple[str, Path]] = []
    for sub, folder in (("mail", INBOX), ("sent", SENT_FOLDER)):
        files += [(folder, p) for p in sorted((resources / sub).glob("*.eml"))]
    if not files:
        raise DemoError(f"No demo mail found in {resources}.")
    raws = [(folder, path, _crlf(path.read_bytes())) for folder, path in files]
    dates = [d for _f, _p, raw in raws if (d := _header_date(raw)) is not None]
    newest = max(dates) if dates else now - NEWEST_AGE
    delta = (now - NEWEST_AGE) - newest
    delta = timedelta(minutes=round(delta.total_seconds() / 60))
    recent = now - timedelta(days=1)
    out: list[DemoMessage] = []
    for folder, path, raw in raws:
        shifted = shift_dates(raw, delta)
        date = _header_date(shifted) or (now - NEWEST_AGE)
        seen = folder == SENT_FOLDER or date < recent
        out.append(DemoMessage(folder, path.name, shifted, date,
                               (b"\\Seen",) if seen else ()))
    return out


def fill_mailbox(host: str, port: int, username: str, password: str,
                 messages: Sequence[DemoMessage]) -> int:
    """APPEND ``messages`` (creating folders as needed); returns how many went in."""
    import imapclient

    client = imapclient.IMAPClient(host, port, ssl=False, timeout=30)
    # imapclient writes a command in pieces; without NODELAY each APPEND waits
    # for the server's delayed ACK (~40 ms).
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        client.login(username, password)
        for folder in dict.fromkeys(m.folder for m in messages):
            if not client.folder_exists(folder):
                client.create_folder(folder)
        for m in messages:
            client.append(m.folder, m.raw, m.flags, msg_time=m.date)
        return len(messages)
    finally:
        with contextlib.suppress(Exception):
            client.logout()


def seed_events(messages: Sequence[DemoMessage], seed: list[dict[str, Any]]) -> list[Event]:
    """Team-log events for the demo's starting state (VIPs, notes, feedback cards)."""
    from helpdesk.mail.conversations import ticket_for
    from helpdesk.mail.parse import parse_message

    tickets: dict[str, str] = {}
    for m in messages:
        if m.folder == INBOX:
            parsed = parse_message(m.raw)
            if parsed.from_addr and parsed.from_addr not in tickets:
                tickets[parsed.from_addr] = ticket_for(parsed)[0]
    agent = "demo-lead"
    events: list[Event] = []
    for item in seed:
        kind, who = item.get("type"), str(item.get("customer", ""))
        if kind == "vip":
            events.append(Event("vip", agent, who, {"vip": bool(item.get("vip", True)),
                                                    "tier": item.get("tier")}))
        elif kind == "white-glove":
            events.append(Event("white-glove", agent, who, {"on": bool(item.get("on", True))}))
        elif kind == "note":
            data = {k: item[k] for k in ("text", "preferred_name", "birthday", "heard_from")
                    if item.get(k)}
            events.append(Event("note", agent, who, data))
        elif kind == "card":
            events.extend(card_seed_events(agent, item, tickets))
    return events


def card_seed_events(agent: str, item: dict[str, Any], tickets: dict[str, str]) -> list[Event]:
    """card-create plus one card-add per customer who asked (see helpdesk/feedback.py)."""
    import uuid

    card_id = uuid.uuid4().hex
    out = [Event("card-create", agent, card_id, {
        "title": item.get("title", ""), "description": item.get("description", ""),
        "column": item.get("column", "ideas")})]
    for address in item.get("requested_by", []):
        out.append(Event("card-add", agent, card_id, {
            "email": address, "ticket": tickets.get(address), "quote": None}))
    return out


def seed_team_log(host: str, port: int, username: str, password: str,
                  messages: Sequence[DemoMessage], seed: list[dict[str, Any]]) -> int:
    """APPEND the demo's starting team state to the team log folder."""
    import imapclient

    events = seed_events(messages, seed)
    client = imapclient.IMAPClient(host, port, ssl=False, timeout=30)
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        client.login(username, password)
        if not client.folder_exists(TEAM_FOLDER):
            client.create_folder(TEAM_FOLDER)
        for event in events:
            client.append(TEAM_FOLDER, encode(event, event.id), [b"\\Seen"])
        return len(events)
    finally:
        with contextlib.suppress(Exception):
            client.logout()


# --- the server process ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def _start_imap(stack: AsyncExitStack, username: str, password: str) -> int:
    """Run pymap's dict backend + IMAP service in this loop; returns the port."""
    from pymap.backend.dict import DictBackend
    from pymap.imap import IMAPService

    # The same arguments `pymap --host H --port P --no-tls dict --demo-user U
    # --demo-password W` would parse (see pymap.main).
    parser = argparse.ArgumentParser(prog="pymap")
    parser.add_argument("--debug", action="store_true")
    parser.set_defaults(skip_services=[], passlib_cfg=None)
    backends = parser.add_subparsers(dest="backend", required=True)
    DictBackend.add_subparser("dict", backends)
    IMAPService.add_arguments(parser)
    last_error: OSError | None = None
    for _attempt in range(10):
        port = _free_port()
        args = parser.parse_args(["--host", HOST, "--port", str(port), "--no-tls", "dict",
                                  "--demo-user", username, "--demo-password", password])
        backend, config = await DictBackend.init(args)
        config.apply_context()
        service = IMAPService(backend, config)
        try:
            await backend.start(stack)
            await service.start(stack)
        except OSError as exc:  # lost the race for the free port
            last_error = exc
            continue
        return port
    raise DemoError(f"Could not start the demo IMAP server: {last_error}")


class _SinkHandler:
    """aiosmtpd handler: accept everything, log it, keep a copy in the outbox dir."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content if isinstance(envelope.content, bytes) else b""
        mail_from = str(envelope.mail_from or "")
        rcpts = [str(r) for r in envelope.rcpt_tos]
        self.messages.append((mail_from, rcpts, raw))
        subject = ""
        m = re.search(rb"^Subject:[ \t]*([^\r\n]*)", raw, re.MULTILINE | re.IGNORECASE)
        if m:
            subject = m.group(1).decode("ascii", "replace")
        log.info("SMTP sink: message %d from %s to %s, %d bytes, subject %r",
                 len(self.messages), mail_from, ", ".join(rcpts), len(raw), subject)
        try:
            self.outbox.mkdir(parents=True, exist_ok=True)
            (self.outbox / f"{len(self.messages):04d}.eml").write_bytes(raw)
        except OSError as exc:
            log.warning("SMTP sink: could not save a copy: %s", exc)
        return "250 Message accepted for delivery"


async def _start_smtp(stack: AsyncExitStack, server_id: str, outbox: Path) -> int:
    from aiosmtpd.smtp import SMTP

    handler = _SinkHandler(outbox)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", ident=_smtp_ident(server_id),
                     enable_SMTPUTF8=True),
        host=HOST, port=0)

    async def close() -> None:
        server.close()
        await server.wait_closed()

    stack.push_async_callback(close)
    port: int = server.sockets[0].getsockname()[1]
    return port


async def _watch(directory: Path, server_id: str, stop: asyncio.Event) -> None:
    """Return when asked to stop, or when the state file no longer names this server."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_INTERVAL)
        if stop.is_set():
            break
        state = read_state(directory)
        if state is None or state.get("server_id") != server_id:
            log.info("state file removed or replaced: stopping")
            return
    log.info("asked to stop")


async def serve(directory: Path, server_id: str, resources: Path = RESOURCES) -> None:
    """Run the demo servers until SIGTERM/SIGINT or until the state file goes away."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            signal.signal(signum, lambda *_a: loop.call_soon_threadsafe(stop.set))
    async with AsyncExitStack() as stack:
        t0 = time.monotonic()
        imap_port = await _start_imap(stack, DEMO_USER, DEMO_PASSWORD)
        smtp_port = await _start_smtp(stack, server_id, directory / OUTBOX_DIR)
        messages = load_demo_messages(resources)
        count = await asyncio.to_thread(fill_mailbox, HOST, imap_port, DEMO_USER,
                                        DEMO_PASSWORD, messages)
        await asyncio.to_thread(seed_team_log, HOST, imap_port, DEMO_USER, DEMO_PASSWORD,
                                messages, team_seed(resources))
        state = {
            "server_id": server_id, "pid": os.getpid(), "host": HOST,
            "imap_port": imap_port, "smtp_port": smtp_port,
            "username": DEMO_USER, "password": DEMO_PASSWORD,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "messages": count,
        }
        _write_state(directory, state)
        log.info("demo server %s ready in %.2f s: IMAP %s:%d (login %s / %s), SMTP %s:%d, "
                 "%d messages", server_id, time.monotonic() - t0, HOST, imap_port, DEMO_USER,
                 DEMO_PASSWORD, HOST, smtp_port, count)
        try:
            await _watch(directory, server_id, stop)
        finally:
            _remove_state_if(directory, server_id)
    log.info("demo server %s stopped", server_id)


# --- command line ------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpdesk.demo",
                                     description="Run or control the demo mail servers.")
    sub = parser.add_subparsers(dest="command", required=True)
    sv = sub.add_parser("serve", help="run the servers in the foreground (used internally)")
    sv.add_argument("--dir", type=Path, default=None, help="state dir (default: the usual)")
    sv.add_argument("--server-id", default=None)
    sub.add_parser("start", help="start the servers in the background unless running")
    sub.add_parser("status", help="show the running servers")
    sub.add_parser("stop", help="stop the running servers")
    args = parser.parse_args(argv)

    if args.command == "serve":
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        log.setLevel(logging.INFO)
        directory = args.dir or demo_dir()
        directory.mkdir(parents=True, exist_ok=True)
        asyncio.run(serve(directory, args.server_id or secrets.token_hex(8)))
        return 0
    try:
        if args.command == "start":
            info = ensure_demo_servers()
            print(f"{'started' if info.started else 'running'}: IMAP {info.host}:"
                  f"{info.imap_port}, SMTP {info.host}:{info.smtp_port}, login "
                  f"{info.username} / {info.password} (pid {info.pid}, log {info.log_file})")
        elif args.command == "status":
            state = read_state()
            if state is None or not servers_answer(state):
                print("not running")
                return 1
            print(json.dumps(state, indent=2))
        elif args.command == "stop":
            print("stopped" if stop_demo_servers() else "not running")
    except HelpdeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
