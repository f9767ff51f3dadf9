"""The demo's constants and its state file: where the running servers are recorded."""


from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import platformdirs

from helpdesk.config import APP_NAME
from helpdesk.errors import HelpdeskError

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

RESOURCES = Path(__file__).resolve().parent.parent.parent / "resources" / "demo"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent

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
