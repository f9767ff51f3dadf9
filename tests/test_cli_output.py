"""CLI output is safe for a terminal: mail and team-log text cannot drive it.

Hostile mail goes into a real Dovecot and hostile team-log data comes from a
teammate's desktop (whose agent name is hostile too); the CLI runs as a subprocess
and the bytes it prints are checked. JSON output must still hold the exact text.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from helpers import make_profile
from test_sync import write_profile

from helpdesk.desk import Desk

ROOT = Path(__file__).resolve().parent.parent

# Clear the screen, a link whose text lies about its target (OSC 8), a clipboard write
# (OSC 52), a C1 CSI (U+009B) colour change, a right-to-left override that shows
# "exe.pdf" as "fdp.exe", and a bidi isolate.
PAYLOAD = ("\x1b[2J\x1b[H" "\x1b]8;;https://evil.example/\x1b\\" "click" "\x1b]8;;\x1b\\"
           "\x1b]52;c;ZXZpbA==\x07" "\x9b31m" "\u202egpj.exe\u202c" "\u2066x\u2069")
# What a teammate's event may carry: the team log refuses every C0 and C1 control in an
# event (helpdesk/team/events.py), so only the bidi tricks are left to clean there.
TEAM_PAYLOAD = "\u202egpj.exe\u202c" "\u2066x\u2069"
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
CUSTOMER = "mallory@evil.example"


def assert_safe(raw: bytes, where: str) -> str:
    """``raw`` (what a command printed) holds no terminal control; returns it as text."""
    assert b"\x1b" not in raw, f"{where}: ESC printed"
    assert b"\xc2\x9b" not in raw, f"{where}: C1 CSI printed"
    text = raw.decode("utf-8")
    bad = FORBIDDEN.search(text)
    assert bad is None, f"{where}: {bad.group()!r} printed in {text[:300]!r}"
    return text


def rfc2047(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def hostile_mail() -> bytes:
    filename = f"invoice{PAYLOAD}.pdf"
    return (
        f"From: {rfc2047('Mallory ' + PAYLOAD)} <{CUSTOMER}>\r\n"
        "To: support@example.com\r\n"
        f"Subject: {rfc2047('Invoice ' + PAYLOAD + ' overdue')}\r\n"
        "Message-ID: <hostile-1@evil.example>\r\n"
        "Date: Mon, 05 Jan 2026 09:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"Hello{PAYLOAD}, please pay.\r\n\r\n"
        "--b1\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Disposition: attachment; filename*=utf-8''{quote(filename)}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        "aGVsbG8=\r\n"
        "--b1--\r\n").encode()


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(cfg), *args],
                          capture_output=True, timeout=120)


@pytest.fixture
def hostile(dovecot: Any, smtp_sink: Any, tmp_path: Path) -> dict[str, Any]:
    """A Dovecot holding hostile mail, a team log full of hostile text, a local outbox
    item with a hostile subject; returns the profile path and the ids."""
    with dovecot.session() as c:
        c.append("INBOX", hostile_mail())
    cfg = write_profile(dovecot, tmp_path)
    assert cli(cfg, "sync", "--once").returncode == 0

    teammate = Desk(make_profile(dovecot, tmp_path, "agent-b" + TEAM_PAYLOAD, db_name="b.sqlite3"))
    teammate.sync_once()
    (tid,) = teammate.ticket_ids("all")
    teammate.claim(tid)
    teammate.update_customer(CUSTOMER, vip=True, tier="Gold" + TEAM_PAYLOAD,
                             note="Prefers phone" + TEAM_PAYLOAD,
                             preferred_name="Mal" + TEAM_PAYLOAD,
                             heard_from="a friend" + TEAM_PAYLOAD)
    card = teammate.cards.add(tid, title="Dark mode" + TEAM_PAYLOAD, quote="Please" + TEAM_PAYLOAD,
                              description="Asked" + TEAM_PAYLOAD)
    teammate.save_template("Refund" + TEAM_PAYLOAD, "Dear {first_name}," + TEAM_PAYLOAD)
    teammate.close()

    mine = Desk(make_profile(dovecot, tmp_path, smtp=smtp_sink))
    mine.sync_once()
    mine.queue_mail(kind="reply", to=CUSTOMER, subject="Re: Invoice" + PAYLOAD,
                    body="Paid" + PAYLOAD, ticket_id=tid)
    mine.close()
    return {"cfg": cfg, "ticket": tid, "card": card}


HUMAN_COMMANDS = [
    ("tickets", "--view", "all"),
    ("tickets", "--view", "all", "--search", "invoice"),
    ("show", "{ticket}"),
    ("customer", CUSTOMER),
    ("cards",),
    ("card", "show", "{card}"),
    ("cards", "export", "--format", "csv"),
    ("cards", "export", "--format", "md"),
    ("templates",),
    ("outbox",),
    ("status",),
]


def test_human_output_holds_no_terminal_controls(hostile: dict[str, Any]) -> None:
    cfg = hostile["cfg"]
    seen = ""
    for command in HUMAN_COMMANDS:
        argv = [a.format(**hostile) for a in command]
        done = cli(cfg, *argv)
        assert done.returncode == 0, (argv, done.stderr)
        out = done.stdout.replace(b"\r\n", b"\n") if "export" in argv else done.stdout  # CSV
        seen += assert_safe(out, " ".join(argv))
        assert_safe(done.stderr, " ".join(argv) + " (stderr)")
    # The text itself is still shown, only the controls are gone.
    for visible in ("Invoice", "gpj.exex overdue", "Helloclickgpj.exex, please pay", "Mallory",
                    "Prefers phonegpj.exex", "Dark modegpj.exex", "Refundgpj",
                    "agent-bgpj.exex", "Gold", "Pleasegpj.exex"):
        assert visible in seen, visible


def test_json_output_stays_valid_and_exact(hostile: dict[str, Any]) -> None:
    cfg, tid = hostile["cfg"], hostile["ticket"]

    def data(*argv: str) -> Any:
        done = cli(cfg, *argv)
        assert done.returncode == 0, (argv, done.stderr)
        assert_safe(done.stdout, " ".join(argv))
        return json.loads(done.stdout)

    (ticket,) = data("tickets", "--view", "all", "--json")
    # Header decoding drops C0 controls (ESC included); C1 and bidi survive it.
    assert "\u202egpj.exe\u202c" in ticket["subject"] and "\x9b31m" in ticket["subject"]
    assert ticket["claimed_by"] == "agent-b" + TEAM_PAYLOAD
    capped = len(ticket["vip_tier"])  # by the fold
    assert ticket["vip_tier"] == ("Gold" + TEAM_PAYLOAD)[:capped]
    shown = data("show", tid, "--json")
    assert PAYLOAD in shown["messages"][0]["text"]
    assert "\u202egpj.exe\u202c" in shown["messages"][0]["attachments"][0]["filename"]
    customer = data("customer", CUSTOMER, "--json")
    assert customer["notes"][0]["text"] == "Prefers phone" + TEAM_PAYLOAD
    assert customer["notes"][0]["agent"] == "agent-b" + TEAM_PAYLOAD
    assert customer["preferred_name"] == "Mal" + TEAM_PAYLOAD
    (card,) = data("cards", "--json")
    assert card["title"] == "Dark mode" + TEAM_PAYLOAD
    assert data("card", "show", card["id"], "--json")["customers"][0]["quote"] == \
        "Please" + TEAM_PAYLOAD
    (template,) = data("templates", "--json")
    assert template["name"] == "Refund" + TEAM_PAYLOAD
    (item,) = data("outbox", "--json")
    assert item["subject"] == "Re: Invoice" + PAYLOAD
    assert data("status", "--json")["agent"] == "agent-a"


class HostileImapServer:
    """A real (if tiny) IMAP server that logs anyone in and answers every other
    command with NO and ``text``: a server's words reach the person too."""

    def __init__(self, text: bytes) -> None:
        self.text = text
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", self.listener.getsockname()[1]
        self.users = {"agent-a": "pw"}
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as f:
            f.write(b"* OK [CAPABILITY IMAP4rev1] hostile ready\r\n")
            f.flush()
            for line in f:
                tag, _, rest = line.strip().partition(b" ")
                verb = rest.split(b" ", 1)[0].upper()
                if verb == b"CAPABILITY":
                    f.write(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n")
                elif verb in (b"LOGIN", b"NOOP"):
                    f.write(tag + b" OK done\r\n")
                elif verb == b"LOGOUT":
                    f.write(b"* BYE\r\n" + tag + b" OK bye\r\n")
                    f.flush()
                    return
                else:
                    f.write(tag + b" NO " + self.text + b"\r\n")
                f.flush()

    def close(self) -> None:
        self.listener.close()


def test_a_servers_words_are_cleaned_in_errors_and_status(tmp_path: Path) -> None:
    words = "\x1b[2J\x1b]8;;https://evil.example/\x1b\\denied\x1b]8;;\x1b\\\x1b]52;c;ZXZpbA==\x07"
    server = HostileImapServer(words.encode())
    try:
        cfg = write_profile(server, tmp_path)
        failed = cli(cfg, "sync", "--once")
        assert failed.returncode == 1
        err = assert_safe(failed.stderr, "sync --once (stderr)")
        last = err.splitlines()[-1]  # (the core may log a line of its own first)
        assert last.startswith("error: ") and "denied" in last and "Traceback" not in err
        status = cli(cfg, "status")
        assert status.returncode == 0
        assert "last error:" in assert_safe(status.stdout, "status")
        raw = cli(cfg, "status", "--json").stdout
        assert_safe(raw, "status --json")
        assert words in json.loads(raw)["last_error"]
    finally:
        server.close()


def test_clean_removes_every_kind_of_control() -> None:
    from helpdesk.cli.output import clean

    assert clean("a\x1b[2Jb") == "ab"
    assert clean("x\x1b]8;;http://e/\x1b\\link\x1b]8;;\x1b\\y") == "xlinky"
    assert clean("p\x1b]52;c;ZXZpbA==\x07q") == "pq"
    assert clean("\x1b]0;title") == ""  # unterminated
    assert clean("\x1b]52;c;ZX cut short, the text goes on") == " cut short, the text goes on"
    assert clean("\x1b]0;my title\x07") == " title"  # never past white space
    assert clean("c\x9b2Jz") == "cz"  # C1 CSI with its parameters
    assert clean("e\x1b(Bf\x1b7g") == "efg"  # ESC X and ESC ( B
    assert clean("t\tn\nr\rb\bz\x00\x7f\x85") == "t\tn\nrbz"
    assert clean("l\u202ar\u202bo\u202cv\u202de\u202ei\u2066s\u2067o\u2068l\u2069") == \
        "lroveisol"
    assert clean("zoë 日本 ✓ 📎") == "zoë 日本 ✓ 📎"  # ordinary text is untouched
    assert clean("bad \udcff byte") == "bad \ufffd byte"


def test_json_escapes_what_json_dumps_leaves_raw() -> None:
    from helpdesk.cli.output import json_text

    value = "a\x1b[2J\x7f\x85\x9b\u202e\u2066 zoë\udcff"
    text = json_text({"v": value})
    assert not FORBIDDEN.search(text) and "\udcff" not in text
    assert "\\u009b" in text and "\\u202e" in text and "zoë" in text
    assert json.loads(text) == {"v": value}
