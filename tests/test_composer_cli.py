"""The composer's command line against Dovecot and the SMTP sink: attachments and
recipients, forward, compose, signatures, the undo window across processes and kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
from test_composer import BINARY, CUSTOMER, check_files, parsed, plain_of
from test_replies import cli, write_smtp_profile
from test_sync import ROOT

from helpdesk.mail.compose import FileAttachment


@pytest.fixture
def mailbox(dovecot: Any) -> Any:
    with dovecot.session() as c:
        c.append("INBOX", CUSTOMER)
    return dovecot


def first_ticket(cfg: Path) -> str:
    assert cli(cfg, "sync", "--once").returncode == 0
    return str(json.loads(cli(cfg, "tickets", "--json").stdout)[0]["id"])


def files_in(tmp: Path) -> tuple[list[str], list[FileAttachment]]:
    paths = []
    for name, data in (("Reçu №5 — 日本.bin", BINARY), ("notes.txt", b"a\r\nb\n")):
        path = tmp / name
        path.write_bytes(data)
        paths.append(str(path))
    return paths, [FileAttachment.of(Path(p).name, Path(p).read_bytes()) for p in paths]


def outbox_rows(db: Path) -> list[tuple[int, str]]:
    """The outbox as another process sees it, straight from the database file."""
    if not db.exists():
        return []
    con = sqlite3.connect(db, timeout=10)
    try:
        return [(int(r[0]), str(r[1])) for r in con.execute("SELECT id, state FROM outbox")]
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        con.close()


def test_cli_reply_with_files_recipients_and_reply_all(mailbox: Any, smtp_sink: Any,
                                                       tmp_path: Path) -> None:
    cfg = write_smtp_profile(mailbox, smtp_sink, tmp_path)
    tid = first_ticket(cfg)
    body = tmp_path / "body.txt"
    body.write_text("Attached, as promised.\n")
    paths, expected = files_in(tmp_path)
    bad = cli(cfg, "reply", tid, "--body-file", str(body), "--cc", "nobody", "--now")
    assert bad.returncode == 1 and "'nobody' is not an e-mail address" in bad.stderr
    missing = cli(cfg, "reply", tid, "--body-file", str(body), "--attach",
                  str(tmp_path / "nope.pdf"))
    assert missing.returncode == 1 and "Cannot attach" in missing.stderr
    assert json.loads(cli(cfg, "outbox", "--json").stdout) == []
    args = ["reply", tid, "--body-file", str(body), "--all", "--bcc", "audit@vendor.example",
            "--cc", "Extra <extra@partner.example>", "--no-quote", "--now"]
    for p in paths:
        args += ["--attach", p]
    done = cli(cfg, *args)
    assert done.returncode == 0 and "Sent to zoe@customer.example" in done.stdout, done.stderr
    ((_f, rcpts, raw),) = smtp_sink.wait_for(1)
    assert rcpts == ["zoe@customer.example", "extra@partner.example",
                     "colleague@customer.example", "boss@customer.example",
                     "audit@vendor.example"]
    assert parsed(raw)["Bcc"] is None and b"audit@" not in raw
    assert "wrote:" not in plain_of(raw)
    check_files(raw, expected)
    shown = json.loads(cli(cfg, "show", tid, "--json").stdout)
    assert [a["filename"] for a in shown["messages"][-1]["attachments"]] == \
        [f.filename for f in expected]


def test_cli_cancel_from_another_process_while_reply_waits(mailbox: Any, smtp_sink: Any,
                                                           tmp_path: Path) -> None:
    cfg = write_smtp_profile(mailbox, smtp_sink, tmp_path, delay=30)
    tid = first_ticket(cfg)
    body = tmp_path / "body.txt"
    body.write_text("Oops, wrong customer.\n")
    waiting = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(cfg),
                                "reply", tid, "--body-file", str(body)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = tmp_path / "agent-a.sqlite3"
    ((item, _state),) = wait_until(lambda: outbox_rows(db), timeout=30, what="queued reply")
    cancelled = cli(cfg, "outbox", "--cancel", str(item))
    assert cancelled.returncode == 0 and "nothing was sent" in cancelled.stdout
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0 and "Sending in" in out and "Cancelled" in out, err
    assert cli(cfg, "sync", "--once").returncode == 0
    assert smtp_sink.messages == [] and outbox_rows(db) == [(item, "cancelled")]
    again = cli(cfg, "outbox", "--cancel", str(item))
    assert again.returncode == 1 and "already cancelled" in again.stderr


def test_cli_queued_reply_with_files_survives_kill_9_and_goes_once(
        mailbox: Any, smtp_sink: Any, tmp_path: Path) -> None:
    cfg = write_smtp_profile(mailbox, smtp_sink, tmp_path, delay=4)
    tid = first_ticket(cfg)
    body = tmp_path / "body.txt"
    body.write_text("Survives a crash.\n")
    paths, expected = files_in(tmp_path)
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--config", str(cfg),
                             "reply", tid, "--body-file", str(body), "--attach", paths[0],
                             "--attach", paths[1]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "agent-a.sqlite3"
    wait_until(lambda: outbox_rows(db), timeout=30, what="queued reply")
    os.kill(proc.pid, signal.SIGKILL)  # mid-wait: queued, its window not over
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert [s for _i, s in outbox_rows(db)] == ["queued"] and smtp_sink.messages == []

    def synced_and_sent() -> bool:
        assert cli(cfg, "sync", "--once").returncode == 0
        return bool(smtp_sink.messages)

    wait_until(synced_and_sent, timeout=60, interval=0.2, what="the reply sent by sync")
    assert cli(cfg, "sync", "--once").returncode == 0
    ((_f, _r, raw),) = smtp_sink.messages
    check_files(raw, expected)
    assert [s for _i, s in outbox_rows(db)] == ["sent"]


def test_cli_forward_compose_and_signature(mailbox: Any, smtp_sink: Any,
                                           tmp_path: Path) -> None:
    ca = write_smtp_profile(mailbox, smtp_sink, tmp_path, "agent-a")
    cb = write_smtp_profile(mailbox, smtp_sink, tmp_path, "agent-b")
    tid = first_ticket(ca)
    sig = tmp_path / "sig.txt"
    sig.write_text("-- {agent}, Example support\n")
    assert cli(ca, "signature", "--team", "--body-file", str(sig)).returncode == 0
    shown = cli(cb, "sync", "--once") and cli(cb, "signature", "--team", "--show")
    assert shown.stdout.strip() == "-- {agent}, Example support"
    mine = cli(cb, "signature", "--show")
    assert "No personal signature is set (the team's is used)." in mine.stdout
    note = tmp_path / "note.txt"
    note.write_text("FYI, see below.\n")
    fw = cli(ca, "forward", tid, "--to", "vendor@vendor.example", "--body-file", str(note),
             "--message", "1", "--now")
    assert fw.returncode == 0, fw.stderr
    body = tmp_path / "body.txt"
    body.write_text("Hello {first_name}, a quick follow-up.\n")
    made = cli(ca, "compose", "--to", "newcomer@customer.example", "--subject",
               "Welcome aboard", "--body-file", str(body), "--now")
    assert made.returncode == 0, made.stderr
    new_tid = made.stdout.strip().splitlines()[-1]
    sent = smtp_sink.wait_for(2)
    fwd, new = parsed(sent[0][2]), parsed(sent[1][2])
    assert fwd["Subject"] == f"Fwd: Invoice question [#{tid}]"
    assert "-- agent-a, Example support" in plain_of(sent[0][2])
    assert new["Subject"] == f"Welcome aboard [#{new_tid}]"
    assert plain_of(sent[1][2]).startswith("Hello Newcomer, a quick follow-up.")
    assert cli(cb, "sync", "--once").returncode == 0
    tickets = {t["id"]: t for t in json.loads(cli(cb, "tickets", "--view", "all",
                                                  "--json").stdout)}
    assert set(tickets) == {tid, new_tid}
    assert tickets[new_tid]["claimed_by"] == "agent-a"
    assert tickets[new_tid]["customer"] == "newcomer@customer.example"
    bad = cli(ca, "forward", tid, "--to", "x", "--now")
    assert bad.returncode == 1 and "is not an e-mail address" in bad.stderr
