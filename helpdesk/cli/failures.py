"""What the CLI says when something fails: one plain line, never a traceback.

:func:`sentence` turns any exception into a sentence naming what failed (the local
database, the OS keyring, a mail server, a file); tracebacks go only to a log file in
the user state dir (:func:`log_path`), with the profile's secrets blotted out.
:func:`logging_to_terminal` routes the core's log records the same way while a
command runs: the message on stderr, the details in the file.
"""

from __future__ import annotations

import imaplib
import logging
import logging.handlers
import os
import shlex
import smtplib
import socket
import sqlite3
import ssl
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from helpdesk.cli.output import clean
from helpdesk.config import Profile

LOG_NAME = "helpdesk.log"
REDACTED = "[redacted]"


def log_path() -> Path:
    """Where details of failures are written (``~/.local/state/helpdesk/`` on Linux)."""
    import platformdirs

    return platformdirs.user_state_path("helpdesk", appauthor=False) / LOG_NAME


def secrets_of(profile: Profile | None) -> list[str]:
    """Strings that must never be written to the log: the password commands (a
    password may be written in one, ``echo hunter2``) and their arguments, and an OAuth
    client secret. (Tokens never reach a log: they are only in the keyring and memory.)"""
    if profile is None:
        return []
    found: list[str] = []
    for server in (profile.imap, profile.smtp):
        client_secret = getattr(server, "oauth_client_secret", "")
        if client_secret:  # Google's "not confidential" one: kept out of logs all the same
            found.append(client_secret)
        command = getattr(server, "password_command", None)
        if not command:
            continue
        found.append(command)
        try:
            words = shlex.split(command)
        except ValueError:
            words = command.split()
        found.extend(w for w in words[1:] if len(w) >= 4)
    return sorted(set(found), key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class _Redacting(logging.Formatter):
    """Full records (tracebacks included) for the log file, secrets removed."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


class _Terse(logging.Formatter):
    """One cleaned line per record for the terminal: no traceback, no stack, and of a
    message of several lines (one may carry a formatted traceback) only the first."""

    def __init__(self, where: Path) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.where = where

    def format(self, record: logging.LogRecord) -> str:
        first, _, more = record.getMessage().partition("\n")
        line = f"{record.levelname} {record.name}: {first.rstrip().rstrip(':')}"
        if more.strip() or record.exc_info or record.exc_text or record.stack_info:
            line += f" (details in {self.where})"
        return clean(line)


def _file_handler(path: Path, secrets: list[str], level: int) -> logging.Handler | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=1_000_000, backupCount=2, encoding="utf-8", delay=True)
    except OSError:
        return None
    handler.setLevel(level)
    handler.setFormatter(_Redacting(secrets))
    return handler


@contextmanager
def logging_to_terminal(verbose: bool, profile_secrets: list[str]) -> Iterator[None]:
    """While a command runs: records at WARNING (INFO with ``-v``) on stderr as one
    line each, and in full (tracebacks too) in the log file."""
    import sys

    root = logging.getLogger()
    level = root.level
    wanted = logging.INFO if verbose else logging.WARNING
    where = log_path()
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(wanted)
    terminal.setFormatter(_Terse(where))
    handlers: list[logging.Handler] = [terminal]
    logfile = _file_handler(where, profile_secrets, wanted)
    if logfile is not None:
        handlers.append(logfile)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(wanted)
    # A record that cannot be formatted is dropped, not reported with a traceback.
    raising, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        yield
    finally:
        logging.raiseExceptions = raising
        root.setLevel(level)
        for h in handlers:
            root.removeHandler(h)
            h.close()


def record(exc: BaseException, command: str | None, secrets: list[str]) -> Path | None:
    """Append ``exc`` with its traceback to the log file; its path, or None if that
    failed too. No locals, no argv: only the exception chain, secrets removed."""
    path = log_path()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    text = "".join(traceback.format_exception(exc))
    entry = f"{stamp} command {command or '-'} failed (pid {os.getpid()}):\n{text}\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8", errors="replace") as f:
            f.write(redact(entry, secrets))
    except OSError:
        return None
    return path


def sentence(exc: BaseException, profile: Profile | None, command: str | None) -> str:
    """One plain sentence for an exception that escaped a command (not HelpdeskError).

    Also writes its traceback to the log file (see :func:`record`).
    """
    secrets = secrets_of(profile)
    where = record(exc, command, secrets)
    logged = f"details are in {where}" if where else "the details could not be logged"
    doing = f" during '{command}'" if command else ""
    plain = _known(exc, profile)
    if plain is not None:
        return redact(plain, secrets)
    return (f"An unexpected problem ({type(exc).__name__}) stopped the command{doing}; "
            f"{logged}.")


def _where(server: object) -> str:
    host = getattr(server, "host", "") or "?"
    port = getattr(server, "port", "")
    return f"{host}:{port}" if port else str(host)


def _known(exc: BaseException, profile: Profile | None) -> str | None:
    """A sentence for the kinds of failure a person can act on, else None."""
    import keyring.errors
    import sqlalchemy.exc

    from helpdesk.mail.imap import explain_network_error
    from helpdesk.store.engine import store_error

    database = profile.database if profile is not None else Path("(the local database)")
    if isinstance(exc, sqlite3.Error | sqlalchemy.exc.SQLAlchemyError):
        plain = store_error(exc, Path(database))
        if plain is not None:
            return str(plain)
        cause = getattr(exc, "orig", None) or exc
        return (f"The local database {database} refused an operation "
                f"({type(cause).__name__}: {cause}). This is a bug in Help desk; the details "
                f"are in {log_path()}.")
    if isinstance(exc, keyring.errors.KeyringError):
        return (f"The OS keyring failed ({type(exc).__name__}: {exc}). Unlock or install a "
                f"keyring (GNOME Keyring, KWallet, macOS Keychain), or set password_command "
                f"in the profile instead.")
    if isinstance(exc, smtplib.SMTPException):
        server = profile.smtp if profile is not None else None
        code = getattr(exc, "smtp_code", None)
        said = getattr(exc, "smtp_error", b"")
        said = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
        detail = f"{code} {said}".strip() if code else str(exc) or type(exc).__name__
        return f"The SMTP server {_where(server)} refused or failed: {detail}."
    if isinstance(exc, imaplib.IMAP4.error):  # imapclient's errors are these too
        if profile is not None:
            return explain_network_error(exc, profile.imap, "IMAP")
        return f"The IMAP server reported an error: {exc}."
    if isinstance(exc, ssl.SSLError):
        return (f"A secure (TLS) connection to a mail server failed "
                f"({getattr(exc, 'reason', None) or exc}). "
                f"Check 'security', 'port' and 'ca_file' in the profile.")
    if isinstance(exc, socket.gaierror):
        return ("A mail server's name could not be looked up (DNS); check the host names in "
                "the profile and your network.")
    if isinstance(exc, ConnectionError | TimeoutError | socket.timeout | EOFError):
        kind = {ConnectionRefusedError: "was refused", ConnectionResetError: "was reset",
                BrokenPipeError: "was closed", TimeoutError: "timed out",
                EOFError: "was closed"}.get(type(exc), "failed")
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror \
            else type(exc).__name__
        return (f"The network connection to a mail server {kind} ({detail}). "
                f"You may be offline; try again.")
    if isinstance(exc, OSError):
        if exc.filename:
            return f"Cannot use {exc.filename}: {exc.strerror or exc}."
        return f"The system refused an operation: {exc.strerror or exc}."
    if isinstance(exc, MemoryError):
        return "The computer ran out of memory; close other programs and try again."
    return None
