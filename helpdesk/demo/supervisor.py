"""Start, find and stop the detached demo server process; the demo profile."""


from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpdesk.config import ImapSettings, Profile, SmtpSettings
from helpdesk.demo.state import (
    _CHILDREN,
    _PROJECT_ROOT,
    DEMO_PASSWORD,
    DEMO_USER,
    HOST,
    INBOX,
    LOG_FILE,
    POLL_SECONDS,
    SENT_FOLDER,
    START_TIMEOUT,
    STOP_TIMEOUT,
    SUPPORT_ADDRESS,
    SUPPORT_NAME,
    TEAM_FOLDER,
    DemoError,
    DemoInfo,
    _locked,
    _state_path,
    demo_data_dir,
    demo_dir,
    log,
    read_state,
)

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
