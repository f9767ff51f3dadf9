"""The demo: detached pymap + SMTP sink server process, demo data, demo profiles."""

from __future__ import annotations

import json
import smtplib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpdesk import demo
from helpdesk.demo import (
    DemoInfo,
    demo_profile,
    ensure_demo_servers,
    load_demo_messages,
    read_state,
    shift_dates,
    stop_demo_servers,
    team_seed,
)
from helpdesk.desk import Desk
from helpdesk.mail.parse import parse_message


@pytest.fixture
def demo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Private state and data dirs, so a user's running demo is never touched."""
    monkeypatch.setenv("HELPDESK_DEMO_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("HELPDESK_DEMO_DATA", str(tmp_path / "data"))
    try:
        yield tmp_path
    finally:
        stop_demo_servers()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_demo_data_is_complete() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    messages = load_demo_messages(now=now)
    inbox = [m for m in messages if m.folder == "INBOX"]
    sent = [m for m in messages if m.folder == "Sent"]
    assert len(inbox) >= 40 and len(sent) >= 10
    assert [m.name for m in inbox] == sorted(m.name for m in inbox)
    # Newest message about an hour old; the rest keep their spacing (3 weeks).
    newest = max(m.date for m in messages)
    oldest = min(m.date for m in messages)
    assert timedelta(minutes=59) <= now - newest <= timedelta(minutes=61)
    assert timedelta(days=19) <= newest - oldest <= timedelta(days=22)
    parsed = {m.name: parse_message(m.raw) for m in messages}
    assert all(not p.defects for p in parsed.values()), {
        n: p.defects for n, p in parsed.items() if p.defects}
    for m in sent:
        assert parsed[m.name].from_addr == "support@lumen.example"
        assert b"\\Seen" in m.flags
    kinds = {p.auto_kind for p in parsed.values()}
    assert {"none", "bounce", "auto-reply", "list"} <= kinds
    senders = {p.from_addr for p in parsed.values()}
    assert {"margaret@okafor-law.example", "harold.finch@example.net"} <= senders
    subjects = " ".join(p.subject for p in parsed.values())
    for word in ("Dunkelmodus", "calendario", "accentués", "同期エラー"):
        assert word in subjects
    attachments = [a.content_type for p in parsed.values() for a in p.attachments]
    assert "application/pdf" in attachments and "image/png" in attachments
    # Every CRLF-normalised, and dates match between header and APPEND date.
    for m in messages:
        assert b"\n" not in m.raw.replace(b"\r\n", b"")
        assert parsed[m.name].date == m.date.astimezone(UTC).replace(tzinfo=None)


def test_team_seed_names_demo_customers() -> None:
    seed = team_seed()
    kinds = {item["type"] for item in seed}
    assert {"vip", "white-glove", "note", "card"} <= kinds
    vip = next(i for i in seed if i["type"] == "vip")
    assert vip == {"type": "vip", "customer": "margaret@okafor-law.example", "vip": True,
                   "tier": "Gold"}
    assert json.loads(json.dumps(seed)) == seed


def test_shift_dates_moves_embedded_headers_too() -> None:
    raw = (b"Date: Mon, 19 Oct 2026 17:02:09 +0100\r\nSubject: x\r\n\r\n"
           b"--b\r\nArrival-Date: Mon, 19 Oct 2026 17:02:00 +0100\r\n"
           b"Date: not a date\r\n")
    out = shift_dates(raw, timedelta(days=2, hours=1))
    assert out.startswith(b"Date: Wed, 21 Oct 2026 18:02:09 +0100\r\n")
    assert b"Arrival-Date: Wed, 21 Oct 2026 18:02:00 +0100\r\n" in out
    assert b"Date: not a date\r\n" in out


def test_demo_servers_start_sync_reuse_and_stop(demo_env: Path) -> None:
    info = ensure_demo_servers()
    assert isinstance(info, DemoInfo) and info.started
    assert info.state_dir == demo_env / "run"

    again = ensure_demo_servers()  # a second window joins the same server
    assert not again.started
    assert (again.imap_port, again.smtp_port, again.pid, again.server_id) == \
        (info.imap_port, info.smtp_port, info.pid, info.server_id)

    profile = demo_profile("agent-a")
    assert profile.database == demo_env / "data" / "demo-agent-a.sqlite3"
    assert profile.imap.port == info.imap_port and profile.imap.security == "plain"
    assert profile.smtp.from_address == "support@lumen.example"
    assert "support@lumen.example" in profile.support_addresses
    desk = Desk(profile)
    try:
        desk.sync_once()
        tickets = desk.tickets("all")
        assert len(tickets) >= 30
        status = desk.status()
        assert {f["name"] for f in status["folders"]} == {"INBOX", "Sent"}
        vip_ticket = next(t for t in tickets if t["customer"] == "margaret@okafor-law.example"
                          and t["messages"] >= 5)
        detail = desk.ticket(vip_ticket["id"])
        assert {m["direction"] for m in detail["messages"]} == {"in", "out"}
        newest = max(datetime.fromisoformat(t["updated_at"].rstrip("Z")) for t in tickets)
        age = datetime.now(UTC).replace(tzinfo=None) - newest
        assert timedelta(minutes=50) <= age <= timedelta(minutes=70)
    finally:
        desk.close()

    # The SMTP sink accepts mail and keeps a copy.
    with smtplib.SMTP(info.host, info.smtp_port, timeout=10) as smtp:
        smtp.sendmail("support@lumen.example", ["margaret@okafor-law.example"],
                      b"Subject: Re: test\r\nFrom: support@lumen.example\r\n\r\nHello\r\n")
    assert (info.state_dir / "outbox" / "0001.eml").read_bytes().endswith(b"Hello\r\n")

    assert stop_demo_servers()
    assert read_state() is None
    assert not _port_open(info.imap_port) and not _port_open(info.smtp_port)
    assert not stop_demo_servers()

    # A new server (new UIDVALIDITYs) resets the agent's demo database.
    fresh = ensure_demo_servers()
    assert fresh.started and fresh.server_id != info.server_id
    stale_db = demo_env / "data" / "demo-agent-a.sqlite3"
    assert stale_db.exists()
    profile = demo_profile("agent-a")
    assert not stale_db.exists()
    assert (demo_env / "data" / "demo-agent-a.server").read_text().strip() == fresh.server_id


def test_server_exits_when_state_file_is_removed(demo_env: Path) -> None:
    info = ensure_demo_servers()
    child = demo._CHILDREN[info.pid]
    (info.state_dir / "state.json").unlink()
    child.wait(timeout=10)  # the watchdog notices within a second
    assert not _port_open(info.imap_port)
    demo._CHILDREN.pop(info.pid, None)
