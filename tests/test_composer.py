"""The composer against Dovecot and the SMTP sink: attachments, Cc/Bcc, reply-all,
forward, new conversations, signatures, quoting and formatting, the undo window."""

from __future__ import annotations

import email
import email.policy
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile, wait_until

from helpdesk.desk import Desk, Draft, FileAttachment
from helpdesk.errors import ConflictError, HelpdeskError
from helpdesk.mail.compose import Outgoing, build, html_to_plain
from helpdesk.mail.conversations import subject_token
from helpdesk.mail.parse import extract_attachment, parse_message
from helpdesk.team.events import Event

CUSTOMER = (
    b"From: =?utf-8?q?Zo=C3=AB_=C3=85kesson?= <zoe@customer.example>\r\n"
    b"To: Support <support@example.com>, Colleague <colleague@customer.example>\r\n"
    b"Cc: boss@customer.example, SUPPORT@example.com, broken-address\r\n"
    b"Subject: Invoice question\r\n"
    b"Message-ID: <inv1@customer.example>\r\n"
    b"Date: Mon, 02 Nov 2026 10:00:00 +0100\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Hello, the invoice total looks wrong.\r\nSecond line.\r\n")

#: Every byte value, twice, and a run that looks like a MIME boundary and a dot line.
BINARY = bytes(range(256)) * 2 + b"\r\n.\r\n--boundary\r\n" + b"\x00" * 64
NAMES = ["Facture é №5 — 日本語 " + "ü" * 60 + ".pdf", "журнал.log", "plain.txt"]


def files() -> list[FileAttachment]:
    return [FileAttachment.of(NAMES[0], BINARY),
            FileAttachment.of(NAMES[1], "строка\r\nline\n\x00end".encode()),
            FileAttachment.of(NAMES[2], b"no newline at end")]


def desk_for(server: Any, sink: Any, tmp: Path, agent: str = "agent-a", **kw: Any) -> Desk:
    desk = Desk(make_profile(server, tmp, agent, smtp=sink, **kw))
    desk.sync_once()
    return desk


@pytest.fixture
def mailbox(dovecot: Any) -> Any:
    with dovecot.session() as c:
        c.append("INBOX", CUSTOMER)
    return dovecot


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def plain_of(raw: bytes) -> str:
    return str(parsed(raw).get_body(("plain",)).get_content()).replace("\r\n", "\n")


def check_files(raw: bytes, expected: list[FileAttachment]) -> None:
    """The files as the customer's mail client (our own parser) sees them: same names,
    same bytes."""
    seen = parse_message(raw).attachments
    assert [a.filename for a in seen] == [f.filename for f in expected]
    for att, want in zip(seen, expected, strict=True):
        got = extract_attachment(raw, att.index)
        assert got is not None and got[0] == want.filename and got[2] == want.data


def test_reply_all_with_attachments_cc_and_bcc(mailbox: Any, smtp_sink: Any,
                                               tmp_path: Path) -> None:
    a = desk_for(mailbox, smtp_sink, tmp_path)
    tid = a.tickets("all")[0]["id"]
    ctx = a.composer(tid)
    assert ctx["cc_all"] == ["colleague@customer.example", "boss@customer.example"]
    result = a.reply(tid, "Here is the corrected invoice.", draft=Draft(
        reply_all=True, bcc=["Audit <audit@vendor.example>"], attachments=files()))
    assert result["state"] == "sent", result
    ((_from, rcpts, raw),) = smtp_sink.wait_for(1)
    # Reply-all: the customer, then the others on the message; never our own address
    # (in any case) nor a broken one; Bcc only in the envelope.
    assert rcpts == ["zoe@customer.example", "colleague@customer.example",
                     "boss@customer.example", "audit@vendor.example"]
    msg = parsed(raw)
    assert msg["To"] == "zoe@customer.example"
    assert msg["Cc"] == "colleague@customer.example, boss@customer.example"
    assert msg["Bcc"] is None and b"audit@vendor.example" not in raw
    assert b"filename*0*=utf-8''" in raw  # RFC 2231 continuations for the long name
    check_files(raw, files())
    # Quoted below the reply in both parts, the way mail clients expect.
    plain = plain_of(raw)
    assert plain.index("corrected invoice") < plain.index("Zoë Åkesson <zoe@customer.example>"
                                                          " wrote:")
    assert "> Hello, the invoice total looks wrong.\n> Second line." in plain
    assert '<blockquote type="cite"' in msg.get_body(("html",)).get_content()
    # The Sent copy has no Bcc either, and the files open from it on a second desktop.
    b = desk_for(mailbox, smtp_sink, tmp_path, "agent-b")
    out = [m for m in b.ticket(tid)["messages"] if m["direction"] == "out"]
    assert len(out) == 1 and [x["filename"] for x in out[0]["attachments"]] == NAMES
    for i, want in enumerate(files()):
        assert b.attachment(out[0]["id"], i)[2] == want.data
    (_uid, sent_raw, _f, _d), = [m for m in mailbox.messages("Sent")]
    assert b"audit@vendor.example" not in sent_raw
    a.close()
    b.close()


def test_bad_addresses_and_large_files_queue_nothing(mailbox: Any, smtp_sink: Any,
                                                     tmp_path: Path) -> None:
    desk = desk_for(mailbox, smtp_sink, tmp_path, max_attachment_mb=1)
    tid = desk.tickets("all")[0]["id"]
    for bad in (Draft(cc=["not an address"]), Draft(bcc=["a@b.example\r\nBcc: x@y.example"]),
                Draft(to=["zoe@customer.example, @nowhere"])):
        with pytest.raises(HelpdeskError, match="is not an e-mail address"):
            desk.reply(tid, "Hello", draft=bad)
    big = FileAttachment.of("big.bin", b"x" * (1024 * 1024 + 1))
    with pytest.raises(HelpdeskError, match="over the limit of 1 MB"):
        desk.reply(tid, "Hello", draft=Draft(attachments=[big]))
    assert desk.outbox() == [] and smtp_sink.messages == []
    # Warned and confirmed (the composer's "send anyway"): it goes.
    assert desk.reply(tid, "Hello", draft=Draft(attachments=[big], allow_large=True)
                      )["state"] == "sent"
    desk.close()


def test_formatting_is_sanitised_with_a_faithful_plain_text() -> None:
    html = ('<p>Dear <b>Zoë</b>, <span style="font-weight:700">please</span> '
            '<i>restart</i>:</p><ol><li>Open <a href="https://example.com/help">the help'
            '</a></li><li>Click <em>Reset</em></li></ol><ul><li>fast</li><li>safe</li></ul>'
            '<script>alert(1)</script><img src="https://tracker.example/p.gif">'
            '<a href="javascript:alert(1)">x</a>')
    raw = build(Outgoing(from_address="s@example.com", from_name="", to=["z@example.com"],
                         subject="Hi", body="", html=html), "m@example.com")
    msg = parsed(raw)
    markup = msg.get_body(("html",)).get_content()
    assert "<script" not in markup and "tracker.example" not in markup
    assert "javascript" not in markup and "<b>Zoë</b>" in markup and "<ol>" in markup
    plain = plain_of(raw)
    assert plain.startswith("Dear *Zoë*, *please* _restart_:\n\n"
                            "1. Open the help <https://example.com/help>\n"
                            "2. Click _Reset_\n\n- fast\n- safe\n")
    assert html_to_plain('<p><a href="mailto:a@b.example">a@b.example</a></p>') == \
        "a@b.example"


def test_forward_keeps_attachments_and_joins_the_ticket(dovecot: Any, smtp_sink: Any,
                                                        tmp_path: Path) -> None:
    original = email.message.EmailMessage()
    original["From"] = "Zoë <zoe@customer.example>"
    original["To"] = "support@example.com"
    original["Subject"] = "Crash log attached"
    original["Message-ID"] = "<log1@customer.example>"
    original.set_content("It crashed again, log attached.")
    original.add_attachment(BINARY, maintype="application", subtype="octet-stream",
                            filename="crash é.dmp")
    with dovecot.session() as c:
        c.append("INBOX", original.as_bytes(policy=email.policy.SMTP))
    a = desk_for(dovecot, smtp_sink, tmp_path)
    tid = a.tickets("all")[0]["id"]
    note = FileAttachment.of("notes.txt", b"our notes")
    result = a.forward(tid, ["Vendor <vendor@vendor.example>"],
                       Draft(body="Could you look at this crash?", attachments=[note]))
    assert result["state"] == "sent", result
    ((_f, rcpts, raw),) = smtp_sink.wait_for(1)
    assert rcpts == ["vendor@vendor.example"]
    msg = parsed(raw)
    assert msg["Subject"] == f"Fwd: Crash log attached [#{tid}]"
    plain = plain_of(raw)
    assert "Could you look at this crash?" in plain and \
        "---------- Forwarded message ---------" in plain and "It crashed again" in plain
    check_files(raw, [note, FileAttachment.of("crash é.dmp", BINARY)])
    # Recorded in the ticket on another desktop: the Sent copy and the team event.
    b = desk_for(dovecot, smtp_sink, tmp_path, "agent-b")
    assert [m["direction"] for m in b.ticket(tid)["messages"]] == ["in", "out"]
    (fwd,) = b.forwards(tid)
    assert fwd["agent"] == "agent-a" and fwd["to"] == ["vendor@vendor.example"]
    # A forward is no answer: the customer still waits, and it is no first response.
    for desk in (a, b):
        row = desk.ticket_rows([tid])[tid]
        assert row["waiting_since"] is not None and row["first_out_at"] is None, row
    assert [m["auto"] for m in b.ticket(tid)["messages"]] == ["none", "forward"]
    # The vendor's answer joins the ticket.
    answer = (f"From: vendor@vendor.example\r\nTo: support@example.com\r\n"
              f"Subject: Re: {msg['Subject']}\r\nMessage-ID: <v1@vendor.example>\r\n"
              f"In-Reply-To: {msg['Message-ID']}\r\nReferences: {msg['References']} "
              f"{msg['Message-ID']}\r\n\r\nFixed in 2.1\r\n").encode()
    with dovecot.session() as c:
        c.append("INBOX", answer)
    b.sync_once()
    assert len(b.tickets("all")) == 1 and b.ticket(tid)["message_count"] == 3
    a.close()
    b.close()


def test_compose_makes_a_ticket_claimed_by_the_sender(dovecot: Any, smtp_sink: Any,
                                                      tmp_path: Path) -> None:
    a = desk_for(dovecot, smtp_sink, tmp_path)
    b = desk_for(dovecot, smtp_sink, tmp_path, "agent-b")
    result = a.compose(["Chloé <chloe.dubois@customer.example>"], "Your upgrade",
                       Draft(body="Hi {first_name}, your account is ready.",
                             attachments=[FileAttachment.of("guide.pdf", BINARY)]))
    tid = result["ticket"]
    assert result["state"] == "sent"
    ((_f, rcpts, raw),) = smtp_sink.wait_for(1)
    msg = parsed(raw)
    assert rcpts == ["chloe.dubois@customer.example"]
    assert subject_token(str(msg["Subject"])) == tid and msg["Subject"].startswith("Your upgrade")
    assert "Hi Chloe, your account is ready." in plain_of(raw)
    # The planned Message-ID gives the same ticket id by the conversation rules.
    from helpdesk.mail.conversations import ticket_for
    assert ticket_for(parse_message(raw))[0] == tid
    b.sync_once()
    shown = b.ticket(tid)
    assert [m["direction"] for m in shown["messages"]] == ["out"]
    assert shown["customer"] == "chloe.dubois@customer.example"
    assert b.holder(tid).agent == "agent-a"
    with pytest.raises(ConflictError):
        b.reply(tid, "me too")
    # The customer's answer, with the usual headers, joins it.
    answer = (f"From: chloe.dubois@customer.example\r\nTo: support@example.com\r\n"
              f"Subject: Re: Your upgrade\r\nMessage-ID: <c9@customer.example>\r\n"
              f"In-Reply-To: {msg['Message-ID']}\r\n\r\nThanks!\r\n").encode()
    with dovecot.session() as c:
        c.append("INBOX", answer)
    b.sync_once()
    assert [t["id"] for t in b.tickets("all")] == [tid]
    a.close()
    b.close()


def test_signatures_team_and_personal(mailbox: Any, smtp_sink: Any, tmp_path: Path) -> None:
    a = desk_for(mailbox, smtp_sink, tmp_path)
    b = desk_for(mailbox, smtp_sink, tmp_path, "agent-b")
    tid = a.tickets("all")[0]["id"]
    a.set_signature("The Example team\n{agent} — ticket {ticket}", team=True)
    a.set_signature("Ann from Example")
    # A teammate's event cannot set somebody else's personal signature (skipped).
    b.publish(Event(type="signature", agent="agent-b", subject="agent:agent-a",
                    data={"body": "hijacked"}))
    b.publish(Event(type="signature", agent="agent-b", subject="team", data={"body": 42}))
    b.refresh_team()
    a.refresh_team()
    assert a.signatures() == {"team": "The Example team\n{agent} — ticket {ticket}",
                              "personal": "Ann from Example"}
    assert b.signatures()["personal"] == ""
    assert b.composer(tid)["signature"] == f"The Example team\nagent-b — ticket {tid}"
    b.reply(tid, "From b", draft=Draft(quote=False))
    a.release(tid)
    b.close_ticket(tid)
    a.reopen(tid)
    a.reply(tid, "From a", draft=Draft(quote=False))
    a.reply(tid, "No signature", draft=Draft(quote=False, signature=False))
    texts = [plain_of(m[2]) for m in smtp_sink.wait_for(3)]
    assert texts[0] == f"From b\n\n-- \nThe Example team\nagent-b — ticket {tid}\n"
    assert texts[1] == "From a\n\n-- \nAnn from Example\n"
    assert texts[2] == "No signature\n"
    a.close()
    b.close()


def test_undo_window_cancel_sends_nothing_and_puts_the_draft_back(
        mailbox: Any, smtp_sink: Any, tmp_path: Path) -> None:
    desk = desk_for(mailbox, smtp_sink, tmp_path, send_delay_seconds=60)
    tid = desk.tickets("all")[0]["id"]
    result = desk.reply(tid, "Wait, not yet", draft=Draft(cc=["boss@customer.example"],
                                                          attachments=files()))
    assert result["state"] == "queued" and result["message"].startswith("Sending in 60 s")
    desk.sync_once()  # a sync pass flushes the outbox: the window holds it back
    desk.flush_outbox(force=True)
    assert [i["state"] for i in desk.outbox()] == ["queued"] and smtp_sink.messages == []
    done = desk.cancel_outbox(result["outbox_id"])
    assert done["state"] == "cancelled" and done["draft"] == tid
    back = desk.load_draft(tid)
    assert back is not None and back["body"] == "Wait, not yet"
    assert back["meta"]["cc"] == ["boss@customer.example"]
    assert back["attachments"] == files()
    with pytest.raises(HelpdeskError, match="already cancelled"):
        desk.cancel_outbox(result["outbox_id"])
    desk.sync_once()
    assert desk.outbox() == [] and smtp_sink.messages == []
    # "Send now" ends the window of another one: it goes once.
    again = desk.reply(tid, "Now it is ready")
    assert desk.send_now(again["outbox_id"])["state"] == "sent"
    desk.sync_once()
    assert len(smtp_sink.wait_for(1)) == 1
    with pytest.raises(HelpdeskError, match="already sent"):
        desk.cancel_outbox(again["outbox_id"])
    desk.close()


def test_window_end_sends_once(mailbox: Any, smtp_sink: Any, tmp_path: Path) -> None:
    desk = desk_for(mailbox, smtp_sink, tmp_path, send_delay_seconds=1)
    tid = desk.tickets("all")[0]["id"]
    item = desk.reply(tid, "After a second")["outbox_id"]
    assert smtp_sink.messages == []
    wait_until(lambda: desk.outbox() == [], what="the reply sent after its window")
    desk.sync_once()
    assert len(smtp_sink.messages) == 1
    assert desk.session.outbox.get(item).state == "sent"
    desk.close()


def _queue(desk: Desk, tid: str, n: int) -> tuple[int, str]:
    return desk.replies.queue_mail(kind="reply", to="zoe@customer.example",
                                   subject=f"race {n}", body=f"race {n}", ticket_id=tid)


def _copies(sink: Any, message_id: str) -> int:
    return sum(1 for _f, _r, raw in list(sink.messages)
               if parsed(raw)["Message-ID"] == f"<{message_id}>")


def test_cancel_racing_the_send_cancels_or_sends_once(mailbox: Any, smtp_sink: Any,
                                                      tmp_path: Path) -> None:
    """One session flushes, another (same database, as a GUI and a CLI) cancels at the
    same instant: every run ends either cancelled with nothing sent, or sent once with
    the cancel refused, and says which."""
    flusher = desk_for(mailbox, smtp_sink, tmp_path)
    canceller = Desk(flusher.profile)
    tid = flusher.tickets("all")[0]["id"]
    outcomes = []
    for n in range(16):
        item, mid = _queue(flusher, tid, n)
        start = threading.Barrier(2)
        refused: list[str] = []

        def flush(start: threading.Barrier = start) -> None:
            start.wait()
            flusher.flush_outbox()

        def cancel(item: int = item, refused: list[str] = refused, n: int = n,
                   start: threading.Barrier = start) -> None:
            start.wait()
            # Each run cancels a little later (a busy count, not a sleep), so the runs
            # sweep from before the flush takes the item to after it sent it.
            for _ in range(n * n * 3000):
                pass
            try:
                canceller.cancel_outbox(item)
            except HelpdeskError as exc:
                refused.append(str(exc))

        threads = [threading.Thread(target=flush), threading.Thread(target=cancel)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        state = flusher.session.outbox.get(item).state
        if refused:
            assert state == "sent" and _copies(smtp_sink, mid) == 1, (state, refused)
            assert "being sent" in refused[0] or "already sent" in refused[0]
        else:
            assert state == "cancelled" and _copies(smtp_sink, mid) == 0
        outcomes.append(state)
    # Both ends happen for certain: a cancel after the take is refused, one before wins.
    item, mid = _queue(flusher, tid, 99)
    sending = threading.Thread(target=flusher.flush_outbox)
    sending.start()
    wait_until(lambda: flusher.session.outbox.get(item).state != "queued",
               what="the flush taking the item")
    with pytest.raises(HelpdeskError, match=r"being sent|already sent"):
        canceller.cancel_outbox(item)
    sending.join(timeout=60)
    assert _copies(smtp_sink, mid) == 1
    item, mid = _queue(flusher, tid, 100)
    canceller.cancel_outbox(item)
    flusher.flush_outbox(force=True)
    assert _copies(smtp_sink, mid) == 0
    assert len(smtp_sink.messages) == outcomes.count("sent") + 1
    canceller.close()
    flusher.close()


def test_addresses_and_file_names_are_checked() -> None:
    from helpdesk.mail.compose import addresses, is_address, safe_filename

    # "@nowhere" made the stdlib parser raise HeaderParseError (not a ValueError): an
    # unexpected crash of the reply intent instead of a plain "not an address".
    for bad in ("@nowhere", "a@", "a b@c.example", "a@b.example\r\nBcc: x@y.example",
                "a@b.example,c@d.example", "", "a@b\x00.example"):
        assert not is_address(bad), bad
    assert is_address("zoe.home+tag@customer.example")
    assert addresses(["Zoë <zoe@customer.example>; b@x.example", "ZOE@customer.example"]) \
        == ["zoe@customer.example", "b@x.example"]
    assert safe_filename("../../etc/pass\x00wd\u202e.exe") == "passwd.exe"
    assert safe_filename("C:\\Users\\me\\report.pdf") == "report.pdf"
    assert safe_filename("...") == "attachment"
    assert FileAttachment.of("x.bin", b"", "text/html; charset=x\r\nX: y").content_type \
        == "application/octet-stream"


def test_a_store_from_before_the_composer_sends_its_queued_reply(
        mailbox: Any, smtp_sink: Any, tmp_path: Path) -> None:
    """Migration 0009 on a store an older build left with a queued reply: it goes once."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from helpdesk.store.engine import MIGRATIONS

    profile = make_profile(mailbox, tmp_path, "agent-a", smtp=smtp_sink)
    engine = create_engine(f"sqlite:///{profile.database}")
    raw = build(Outgoing(from_address="support@example.com", from_name="", to=[
        "zoe@customer.example"], subject="Old build", body="Queued before 0009"), "old@x.example")
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0007")
        conn.exec_driver_sql(
            "INSERT INTO outbox (kind, message_id, agent, to_addrs, subject, body, raw, "
            "state, created_at) VALUES ('note', 'old@x.example', 'agent-a', "
            "'[\"zoe@customer.example\"]', 'Old build', 'Queued before 0009', ?, 'queued', "
            "'2026-11-01 00:00:00.000000')", (raw,))
    engine.dispose()
    desk = Desk(profile)
    desk.sync_once()
    ((_f, rcpts, got),) = smtp_sink.wait_for(1)
    assert rcpts == ["zoe@customer.example"] and got == raw
    assert desk.outbox() == []
    desk.close()


def test_a_window_long_over_arms_no_wake_up(mailbox: Any, smtp_sink: Any,
                                            tmp_path: Path) -> None:
    """A reply whose window is over but that waits out an SMTP back-off must not wake
    the worker again and again (it once armed a timer for a time already past)."""
    desk = desk_for(mailbox, smtp_sink, tmp_path, send_delay_seconds=1)
    tid = desk.tickets("all")[0]["id"]
    smtp_sink.set_fail(451, "4.3.0 Try again later")
    item = desk.reply(tid, "Soon")["outbox_id"]
    wait_until(lambda: (desk.session.outbox.get(item).attempts,
                        desk.session.outbox.get(item).state) == (1, "queued"),
               what="the first attempt after the window, given back to back off")
    desk.sync_once()  # backing off: not taken
    assert desk.replies._timer is None
    smtp_sink.set_fail(None)
    desk.flush_outbox(force=True)
    assert len(smtp_sink.wait_for(1)) == 1
    desk.close()


def test_signatures_and_forwards_fold_alike_on_every_desktop(dovecot: Any, smtp_sink: Any,
                                                           tmp_path: Path) -> None:
    """Last writer (by log UID) wins per signature, whoever folds when; hostile events
    (wrong types, someone else's scope) are skipped the same everywhere."""
    a = desk_for(dovecot, smtp_sink, tmp_path, "agent-a")
    b = desk_for(dovecot, smtp_sink, tmp_path, "agent-b")
    a.set_signature("Team v1", team=True)
    b.set_signature("Team v2", team=True)
    b.set_signature("Bea")
    a.set_signature("Ann v1")
    b.publish(Event(type="signature", agent="agent-b", subject="agent:agent-a",
                    data={"body": "not yours"}))
    a.set_signature("Ann v2")
    for bad in ({"message_id": "m@x", "to": "vendor@x.example"}, {"message_id": 7, "to": []},
                {"to": ["vendor@x.example"]}, {"message_id": "m@x", "to": [None]}):
        b.publish(Event(type="forwarded", agent="agent-b", subject="t1", data=bad))
    b.publish(Event(type="forwarded", agent="agent-b", subject="t1",
                    data={"message_id": "m@x", "to": ["vendor@x.example"], "original": ""}))
    a.refresh_team()
    b.refresh_team()
    c = Desk(make_profile(dovecot, tmp_path, "agent-a", smtp=smtp_sink, db_name="c.sqlite3"))
    c.sync_once()  # a new desktop, folding the whole log at once
    assert a.signatures() == c.signatures() == {"team": "Team v2", "personal": "Ann v2"}
    assert b.signatures() == {"team": "Team v2", "personal": "Bea"}
    with a.store.read() as x, c.store.read() as y:
        rows = "SELECT ticket_id, agent, message_id, to_addrs FROM forwards"
        assert x.exec_driver_sql(rows).all() == y.exec_driver_sql(rows).all() == \
            [("t1", "agent-b", "m@x", '["vendor@x.example"]')]
    for d in (a, b, c):
        d.close()
