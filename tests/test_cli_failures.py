"""No traceback ever reaches a person: every failure is one plain line on stderr.

Faults are injected into a command (a Desk method raising each kind of error) and the
CLI is run both in-process (``main([...])``) and as a real process
(``python -m helpdesk.cli``); tracebacks go to the log file in the user state dir,
without the profile's secrets.
"""

from __future__ import annotations

import imaplib
import os
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any

import imapclient.exceptions
import keyring.errors
import pytest
import sqlalchemy.exc

from helpdesk.desk import Desk

ROOT = Path(__file__).resolve().parent.parent
SECRET = "hunter2-secret"


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A profile whose servers are never contacted (port 9), and a private state dir."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = tmp_path / "profile.toml"
    path.write_text(textwrap.dedent(f"""\
        agent = "agent-a"
        database = "{tmp_path / 'desk.sqlite3'}"
        [imap]
        host = "127.0.0.1"
        port = 9
        security = "plain"
        username = "support@example.com"
        password_command = "echo {SECRET}"
        [smtp]
        host = "127.0.0.1"
        port = 9
        security = "plain"
        from_address = "support@example.com"
        """))
    return path


def log_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "helpdesk" / "helpdesk.log"


# (what is raised, words the sentence must hold)
FAULTS: list[tuple[BaseException, tuple[str, ...]]] = [
    (sqlite3.DatabaseError("database disk image is malformed"),
     ("desk.sqlite3", "is damaged", "rebuild-store")),
    (sqlite3.OperationalError("database or disk is full"), ("desk.sqlite3", "is full")),
    (sqlite3.OperationalError("disk I/O error"), ("desk.sqlite3", "failed to read or write")),
    (sqlalchemy.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError(
        "database is locked")), ("desk.sqlite3", "busy")),
    (sqlalchemy.exc.DatabaseError("SELECT 1", {}, sqlite3.DatabaseError(
        "file is not a database")), ("desk.sqlite3", "damaged", "rebuild-store")),
    (sqlalchemy.exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError(
        "UNIQUE constraint failed: outbox.message_id")), ("desk.sqlite3", "refused",
                                                          "IntegrityError", "bug")),
    (keyring.errors.KeyringLocked("the collection is locked"), ("keyring", "KeyringLocked",
                                                                "password_command")),
    (keyring.errors.NoKeyringError("no backend"), ("keyring", "password_command")),
    (TimeoutError("timed out"), ("network connection", "timed out")),
    (ConnectionResetError(104, "Connection reset by peer"), ("was reset",
                                                             "Connection reset by peer")),
    (ConnectionRefusedError(111, "Connection refused"), ("was refused",)),
    (socket.gaierror(-2, "Name or service not known"), ("looked up", "DNS")),
    (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), ("TLS",
                                                                          "security")),
    (imaplib.IMAP4.error("UID command error: BAD [b'Invalid arguments']"),
     ("IMAP server 127.0.0.1:9", "Invalid arguments")),
    (imaplib.IMAP4.abort("socket error: EOF"), ("IMAP server 127.0.0.1:9", "EOF")),
    (imapclient.exceptions.LoginError("[AUTHENTICATIONFAILED] Authentication failed."),
     ("IMAP server rejected the user name or password",)),
    (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
     ("SMTP server 127.0.0.1:9", "Connection unexpectedly closed")),
    (smtplib.SMTPResponseException(421, b"Service not available"),
     ("SMTP server 127.0.0.1:9", "421 Service not available")),
    (PermissionError(13, "Permission denied", "/srv/export.csv"),
     ("Cannot use /srv/export.csv", "Permission denied")),
    (MemoryError(), ("out of memory",)),
    (ValueError(f"the password is {SECRET}"), ("unexpected problem", "ValueError",
                                               "helpdesk.log")),
]


def _raiser(exc: BaseException) -> Any:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise exc
    return boom


@pytest.mark.parametrize(("fault", "words"), FAULTS, ids=[type(f[0]).__name__ for f in FAULTS])
def test_every_fault_is_one_plain_line(fault: BaseException, words: tuple[str, ...],
                                       cfg: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from helpdesk.cli import main

    monkeypatch.setattr(Desk, "tickets", _raiser(fault))
    code = main(["--config", str(cfg), "tickets"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and SECRET not in err
    for word in words:
        assert word in err, (word, err)
    # Whatever escaped the core's own translation is logged with its traceback,
    # and never with a secret.
    logged = log_file(tmp_path).read_text()
    assert "Traceback" in logged and type(fault).__name__ in logged
    assert SECRET not in logged


def test_interrupt_exits_130(cfg: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from helpdesk.cli import main

    monkeypatch.setattr(Desk, "tickets", _raiser(KeyboardInterrupt()))
    assert main(["--config", str(cfg), "tickets"]) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_helpdesk_errors_keep_their_message_and_exit_code(
        cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from helpdesk.cli import main

    assert main(["--config", str(cfg), "show", "nosuchticket"]) == 1
    assert capsys.readouterr().err == (
        "error: No ticket 'nosuchticket' in the local store. Run 'sync' first, or list "
        "tickets with 'tickets --view all'.\n")


@pytest.mark.allow_log_errors
def test_a_logged_traceback_stays_in_the_log_file(cfg: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from helpdesk.cli import main

    def tickets(*_a: Any, **_k: Any) -> list[dict[str, Any]]:
        try:
            raise RuntimeError(f"inner {SECRET}")
        except RuntimeError:
            logging.getLogger("helpdesk.somewhere").exception("could not do a thing")
            # The traceback put into the message itself stays off the terminal too.
            logging.getLogger("helpdesk.elsewhere").error(
                "failed unexpectedly:\n%s", traceback.format_exc())
        return []

    monkeypatch.setattr(Desk, "tickets", tickets)
    assert main(["--config", str(cfg), "tickets"]) == 0
    out, err = capsys.readouterr()
    assert out == "No tickets.\n"
    first, second = err.splitlines()
    assert first.startswith("ERROR helpdesk.somewhere: could not do a thing (details in ")
    assert second.startswith("ERROR helpdesk.elsewhere: failed unexpectedly (details in ")
    assert "Traceback" not in err
    logged = log_file(tmp_path).read_text()
    assert "Traceback" in logged and "RuntimeError: inner [redacted]" in logged
    assert SECRET not in logged


SUBPROCESS = """\
import runpy, sys
import {module} as target
from helpdesk.desk import Desk
def boom(*a, **k):
    raise {raise_}
Desk.tickets = boom
sys.argv = ["helpdesk", "--config", {cfg!r}, "tickets"]
runpy.run_module("helpdesk.cli", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(("module", "raise_", "words"), [
    ("sqlite3", 'target.DatabaseError("database disk image is malformed")', "is damaged"),
    ("sqlalchemy.exc", 'target.OperationalError("x", {}, Exception("disk I/O error"))',
     "desk.sqlite3 refused an operation"),
    ("keyring.errors", 'target.KeyringLocked("locked")', "keyring failed"),
    ("socket", "target.timeout('timed out')", "timed out"),
    ("imaplib", "target.IMAP4.abort('socket error: EOF')", "IMAP server"),
    ("os", "RuntimeError('surprise ' + 'hunter2-secret')", "unexpected problem (RuntimeError)"),
])
def test_a_real_process_never_prints_a_traceback(module: str, raise_: str, words: str,
                                                  cfg: Path, tmp_path: Path) -> None:
    code = SUBPROCESS.format(module=module, raise_=raise_, cfg=str(cfg))
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=env)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and words in done.stderr
    assert SECRET not in log_file(tmp_path).read_text()


def test_real_faults_without_injection(cfg: Path, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "helpdesk.cli", *argv],
                              capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)

    # The database path is a folder.
    folder = tmp_path / "a-folder"
    folder.mkdir()
    (folder / "x").write_text("x")
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text().replace(str(tmp_path / "desk.sqlite3"), str(folder)))
    done = run("--config", str(bad), "status")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: The local database {folder} cannot be opened")
    # The mail server cannot be reached.
    done = run("--config", str(cfg), "sync", "--once")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "127.0.0.1:9" in done.stderr and done.stderr.count("\n") == 1
    # Output to a pipe that is closed at once (``helpdesk tickets | head -0``).
    with open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "helpdesk.cli", "--config", str(cfg),
                                 "tickets"], stdout=subprocess.PIPE, stderr=err, cwd=ROOT,
                                env=env)
        assert proc.stdout is not None
        proc.stdout.close()
        assert proc.wait(timeout=60) in (0, 1)
    assert "Traceback" not in (tmp_path / "err.txt").read_text()


def test_a_log_call_that_cannot_be_formatted_prints_no_traceback(cfg: Path,
                                                                 tmp_path: Path) -> None:
    code = textwrap.dedent(f"""\
        import logging, runpy, sys
        from helpdesk.desk import Desk
        def tickets(*a, **k):
            logging.getLogger("helpdesk.somewhere").warning("two %s %s", "args")
            return []
        Desk.tickets = tickets
        sys.argv = ["helpdesk", "--config", {str(cfg)!r}, "tickets"]
        runpy.run_module("helpdesk.cli", run_name="__main__", alter_sys=True)
        """)
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=env)
    assert done.returncode == 0 and done.stdout == "No tickets.\n"
    assert "Traceback" not in done.stderr and "Logging error" not in done.stderr
