"""Replies through a real SMTP sink and Dovecot: threading, exactly once, the claim fence."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile
from test_sync import ROOT

from helpdesk.desk import Desk
from helpdesk.errors import ConflictError
from helpdesk.mail.conversations import subject_token

CUSTOMER_MAIL = (
    "From: =?utf-8?q?Zo=C3=AB_=C3=85kesson?= <zoe@customer.example>\r\n"
    "Reply-To: Zoë at home <zoe.home@customer.example>\r\n"
    "To: support@example.com\r\n"
    "Subject: =?utf-8?q?Re=3A_RE=3A_=C3=87a_ne_marche_pas_=E2=80=94_=C2=BD?=\r\n"
    "Message-ID: <c2@customer.example>\r\n"
    "In-Reply-To: <c1@customer.example>\r\n"
    "References: <c0@customer.example> <c1@customer.example>\r\n"
    "Date: Mon, 02 Nov 2026 10:00:00 +0100\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    "Bonjour, l'export ne marche toujours pas.\r\n").encode()


def sink_desk(server: Any, sink: Any, tmp: Path, agent: str = "agent-a", **kw: Any) -> Desk:
    desk = Desk(make_profile(server, tmp, agent, smtp=sink, **kw))
    desk.sync_once()
    return desk


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


@pytest.fixture
def ticket(dovecot: Any) -> Any:
    with dovecot.session() as c:
        c.append("INBOX", CUSTOMER_MAIL)
    return dovecot


def the_ticket(desk: Desk) -> str:
    return str(desk.tickets("all")[0]["id"])


def test_reply_headers_threading_and_sent_copy(ticket: Any, smtp_sink: Any,
                                               tmp_path: Path) -> None:
    desk = sink_desk(ticket, smtp_sink, tmp_path)
    tid = the_ticket(desk)
    ctx = desk.composer(tid)
    assert ctx["greeting"] == "Hi Zoë," and ctx["to"] == "zoe.home@customer.example"
    result = desk.reply(tid, f"{ctx['greeting']}\n\nMerci, c'est réparé.\n\n> old quote\n")
    assert result["state"] == "sent", result
    (mail_from, rcpts, raw), = smtp_sink.wait_for(1)
    assert rcpts == ["zoe.home@customer.example"] and mail_from == "support@example.com"
    msg = parsed(raw)
    assert msg["Subject"] == f"Re: Ça ne marche pas — ½ [#{tid}]"
    assert msg["In-Reply-To"] == "<c2@customer.example>"
    assert msg["References"].split() == ["<c0@customer.example>", "<c1@customer.example>",
                                         "<c2@customer.example>"]
    assert msg["Message-ID"] and msg["From"].addresses[0].addr_spec == "support@example.com"
    assert msg.get_content_type() == "multipart/alternative"
    assert "Merci, c'est réparé." in msg.get_body(("plain",)).get_content()
    assert "<blockquote" in msg.get_body(("html",)).get_content()
    # The copy in Sent joins the ticket on this and every other desktop.
    shown = desk.ticket(tid)
    assert [m["direction"] for m in shown["messages"]] == ["in", "out"]
    other = sink_desk(ticket, smtp_sink, tmp_path, "agent-b")
    assert [m["direction"] for m in other.ticket(tid)["messages"]] == ["in", "out"]
    # Sending claimed the ticket for the sender.
    assert other.holder(tid).agent == "agent-a"


def test_customer_answer_threads_back_by_headers_and_by_token(ticket: Any, smtp_sink: Any,
                                                              tmp_path: Path) -> None:
    desk = sink_desk(ticket, smtp_sink, tmp_path)
    tid = the_ticket(desk)
    desk.reply(tid, "Hello")
    ours = parsed(smtp_sink.wait_for(1)[0][2])
    by_headers = (f"From: zoe@customer.example\r\nSubject: Re: {ours['Subject']}\r\n"
                  f"Message-ID: <c3@customer.example>\r\nIn-Reply-To: {ours['Message-ID']}\r\n"
                  f"References: {ours['References']} {ours['Message-ID']}\r\n\r\nThanks!\r\n")
    dropped = (f"From: zoe@customer.example\r\nSubject: AW: {ours['Subject']}\r\n"
               f"Message-ID: <c4@other.example>\r\n\r\nStill broken\r\n")
    with ticket.session() as c:
        c.append("INBOX", by_headers.encode())
        c.append("INBOX", dropped.encode())
    desk.sync_once()
    assert len(desk.tickets("all")) == 1
    assert desk.ticket(tid)["message_count"] == 4
    assert subject_token(str(ours["Subject"])) == tid


def test_smtp_down_then_up_delivers_exactly_once(ticket: Any, smtp_sink: Any,
                                                 tmp_path: Path) -> None:
    desk = sink_desk(ticket, smtp_sink, tmp_path)
    tid = the_ticket(desk)
    smtp_sink.set_fail(451, "4.3.0 Try again later")
    result = desk.reply(tid, "Hello")
    assert result["state"] == "queued" and "451" in result["message"]
    assert [i["state"] for i in desk.outbox()] == ["queued"]
    desk.sync_once()  # still backing off: nothing sent, nothing lost
    smtp_sink.set_fail(None)
    desk.flush_outbox(force=True)
    desk.sync_once()
    desk.flush_outbox(force=True)
    assert len(smtp_sink.messages) == 1
    assert desk.outbox() == []


def test_network_down_queues_then_sync_sends(ticket: Any, smtp_sink: Any,
                                             tmp_path: Path) -> None:
    from dataclasses import replace

    from servers import free_port

    desk = sink_desk(ticket, smtp_sink, tmp_path)
    tid = the_ticket(desk)
    real = desk.profile
    desk.session.profile = replace(real, smtp=replace(real.smtp, port=free_port()))
    result = desk.reply(tid, "Offline reply")
    assert result["state"] == "queued" and "refused" in result["message"]
    desk.session.profile = real
    desk.flush_outbox(force=True)
    assert len(smtp_sink.wait_for(1)) == 1
    assert desk.outbox() == []


def test_permanent_failure_keeps_draft_with_server_words(ticket: Any, smtp_sink: Any,
                                                         tmp_path: Path) -> None:
    desk = sink_desk(ticket, smtp_sink, tmp_path)
    tid = the_ticket(desk)
    smtp_sink.set_fail(550, "5.1.1 No such user here")
    result = desk.reply(tid, "This will bounce")
    assert result["state"] == "failed"
    (item,) = desk.outbox()
    assert item["state"] == "failed" and "550 5.1.1 No such user here" in item["last_error"]
    smtp_sink.set_fail(None)
    desk.retry_outbox(item["id"])
    desk.flush_outbox(force=True)
    assert len(smtp_sink.wait_for(1)) == 1


def test_reply_to_ticket_held_by_teammate_sends_nothing(ticket: Any, smtp_sink: Any,
                                                        tmp_path: Path) -> None:
    a = sink_desk(ticket, smtp_sink, tmp_path, "agent-a")
    b = sink_desk(ticket, smtp_sink, tmp_path, "agent-b")
    tid = the_ticket(a)
    b.claim(tid)
    a.refresh_team()
    with pytest.raises(ConflictError, match="held by agent-b"):
        a.reply(tid, "Me too")
    # Queued while a did not know yet (offline): the fence at send time holds it back.
    a.replies.queue_mail(kind="reply", to="zoe@customer.example", subject="x", body="late",
                         ticket_id=tid)
    a.flush_outbox(force=True)
    assert [i["state"] for i in a.outbox()] == ["held"]
    assert "agent-b" in a.outbox()[0]["last_error"]
    assert smtp_sink.messages == []


def cli(cfg: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def write_smtp_profile(server: Any, sink: Any, tmp: Path, agent: str = "agent-a",
                       delay: int = 0) -> Path:
    from test_sync import write_profile

    cfg = write_profile(server, tmp, agent, top={"send_delay_seconds": delay})
    cfg.write_text(cfg.read_text() + f'[smtp]\nhost = "{sink.host}"\nport = {sink.port}\n'
                   'security = "plain"\nfrom_address = "support@example.com"\n'
                   'from_name = "{agent} at Example Support"\n')
    return cfg


def test_kill_after_smtp_accepted_does_not_resend(ticket: Any, smtp_sink: Any,
                                                  tmp_path: Path) -> None:
    cfg = write_smtp_profile(ticket, smtp_sink, tmp_path)
    assert cli(cfg, "sync", "--once").returncode == 0
    tid = json.loads(cli(cfg, "tickets", "--json").stdout)[0]["id"]
    body = tmp_path / "body.txt"
    body.write_text("Bonjour Zoë,\n\nC'est réparé.\n")
    crashed = cli(cfg, "reply", tid, "--body-file", str(body),
                  env={"HELPDESK_FAULT": "after-smtp"})
    assert crashed.returncode == 70  # killed between SMTP "250 OK" and the local update
    assert len(smtp_sink.wait_for(1)) == 1
    assert cli(cfg, "sync", "--once").returncode == 0
    outbox = json.loads(cli(cfg, "outbox", "--json").stdout)
    assert [i["state"] for i in outbox] == ["uncertain"]
    assert "may or may not" in outbox[0]["last_error"]
    assert cli(cfg, "sync", "--once").returncode == 0
    assert len(smtp_sink.messages) == 1  # never re-sent on its own


def test_kill_after_smtp_with_server_filed_copy_completes(ticket: Any, smtp_sink: Any,
                                                          tmp_path: Path) -> None:
    cfg = write_smtp_profile(ticket, smtp_sink, tmp_path)
    cli(cfg, "sync", "--once")
    tid = json.loads(cli(cfg, "tickets", "--json").stdout)[0]["id"]
    body = tmp_path / "body.txt"
    body.write_text("Fixed.\n")
    assert cli(cfg, "reply", tid, "--body-file", str(body),
               env={"HELPDESK_FAULT": "after-smtp"}).returncode == 70
    # Servers like Gmail file what SMTP accepted into Sent themselves.
    with ticket.session() as c:
        c.append("Sent", smtp_sink.wait_for(1)[0][2])
    assert cli(cfg, "sync", "--once").returncode == 0
    assert json.loads(cli(cfg, "outbox", "--json").stdout) == []
    shown = json.loads(cli(cfg, "show", tid, "--json").stdout)
    assert [m["direction"] for m in shown["messages"]] == ["in", "out"]
    assert len(smtp_sink.messages) == 1


def test_cli_reply_exit_codes_and_templates(ticket: Any, smtp_sink: Any,
                                            tmp_path: Path) -> None:
    ca = write_smtp_profile(ticket, smtp_sink, tmp_path, "agent-a")
    cb = write_smtp_profile(ticket, smtp_sink, tmp_path, "agent-b")
    for cfg in (ca, cb):
        cli(cfg, "sync", "--once")
    tid = json.loads(cli(ca, "tickets", "--json").stdout)[0]["id"]
    tpl = tmp_path / "tpl.txt"
    tpl.write_text("Hi {first_name},\n\nTicket {ticket} is fixed.\n{agent}\n")
    assert cli(ca, "templates", "add", "fixed", "--body-file", str(tpl)).returncode == 0
    cli(cb, "sync", "--once")
    assert json.loads(cli(cb, "templates", "--json").stdout)[0]["name"] == "fixed"
    body = tmp_path / "b.txt"
    body.write_text("Done.\n")
    sent = cli(ca, "reply", tid, "--body-file", str(body), "--close")
    assert sent.returncode == 0 and "Sent" in sent.stdout
    msg = parsed(smtp_sink.wait_for(1)[0][2])
    assert msg["From"].addresses[0].display_name == "agent-a at Example Support"
    cli(cb, "sync", "--once")
    assert json.loads(cli(cb, "tickets", "--view", "closed", "--json").stdout)[0]["id"] == tid
    cli(cb, "reopen", tid)
    cli(cb, "claim", tid)
    held = cli(ca, "reply", tid, "--body-file", str(body))
    assert held.returncode == 3 and "agent-b" in held.stderr
    assert len(smtp_sink.messages) == 1


def test_composer_personal_touch_and_template_render(ticket: Any, smtp_sink: Any,
                                                     tmp_path: Path) -> None:
    desk = sink_desk(ticket, smtp_sink, tmp_path)
    tid = the_ticket(desk)
    desk.update_customer("zoe@customer.example", white_glove=True, vip=True, tier="Gold",
                         preferred_name="Zozo")
    ctx = desk.composer(tid)
    assert ctx["greeting"] == "Hi Zozo," and ctx["white_glove"] and ctx["vip_tier"] == "Gold"
    assert "White-glove" in ctx["reminder"]
    desk.save_template("thanks", "Dear {first_name}, about #{ticket}: {unknown} — {agent}")
    (tpl,) = desk.templates()
    assert desk.render_template(tpl["body"], tid) == \
        f"Dear Zozo, about #{tid}: {{unknown}} — agent-a"
    desk.save_draft(tid, "half-written")
    assert desk.draft(tid) == "half-written"
    desk.reply(tid, "Done")
    assert desk.draft(tid) is None
