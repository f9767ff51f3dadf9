"""Test helpers: an in-memory keyring, profiles pointing at test servers, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keyring.backend import KeyringBackend

from helpdesk.config import ImapSettings, Profile, SmtpSettings


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02,
               what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def make_profile(server: Any, tmp: Path, agent: str = "agent-a", *, smtp: Any = None,
                 db_name: str | None = None, **extra: Any) -> Profile:
    """A profile for ``agent`` on the test IMAP server (and SMTP sink, if given)."""
    user = next(iter(server.users)) if agent not in server.users else agent
    password = server.users[user]
    imap = ImapSettings(host=server.host, port=server.port, security="plain", username=user,
                        password_command=f"echo {password}",
                        team_folder=extra.pop("team_folder", "HelpDesk/Log"),
                        poll_seconds=extra.pop("poll_seconds", 60),
                        batch_size=extra.pop("batch_size", 200),
                        sent_folder=extra.pop("sent_folder", "Sent"))
    smtp_settings = SmtpSettings()
    if smtp is not None:
        smtp_settings = SmtpSettings(host=smtp.host, port=smtp.port, security="plain",
                                     username="", from_address="support@example.com",
                                     from_name="Example Support")
    # No undo window unless a test asks for one: most tests send and look at once.
    extra.setdefault("send_delay_seconds", 0)
    return Profile(agent=agent, database=tmp / (db_name or f"{agent}.sqlite3"), imap=imap,
                   smtp=smtp_settings, **extra)


# A start line for processes that must act at the same instant: each waits (with a
# deadline) for the file named by argv[1], then runs the CLI with argv[2:].
GO_SCRIPT = ("import sys, pathlib, time\n"
             "go = pathlib.Path(sys.argv[1])\n"
             "deadline = time.monotonic() + 60\n"
             "while not go.exists() and time.monotonic() < deadline: time.sleep(0.001)\n"
             "from helpdesk.cli import main\n"
             "sys.exit(main(sys.argv[2:]))\n")


def vm_steps(conn: Any, fn: Callable[[Any], Any]) -> int:
    """SQLite virtual-machine steps ``fn(conn)`` costs on a SQLAlchemy connection (counted
    in hundreds): the same figure on a busy machine and an idle one."""
    from helpdesk.store.engine import raw_cursor

    seen = [0]

    def tick() -> int:
        seen[0] += 1
        return 0

    raw = raw_cursor(conn).connection
    raw.set_progress_handler(tick, 100)
    try:
        fn(conn)
    finally:
        raw.set_progress_handler(None, 0)
    return seen[0] * 100
