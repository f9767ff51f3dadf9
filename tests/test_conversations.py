"""Ticket keys are pure functions of a message, identical on every desktop."""

from __future__ import annotations

from helpdesk.mail.conversations import (
    dedup_key,
    quoted_stripped,
    reply_subject,
    strip_subject,
    subject_token,
    ticket_for,
    ticket_id_for_key,
)
from helpdesk.mail.parse import parse_message


def msg(headers: str, body: str = "hello") -> bytes:
    return (headers.strip() + "\n\n" + body + "\n").encode()


def test_root_from_references_then_in_reply_to_then_own_id() -> None:
    root = parse_message(msg("Message-ID: <root@x>\nFrom: a@x.com\nSubject: Help"))
    reply = parse_message(msg("Message-ID: <r2@y>\nIn-Reply-To: <r1@y>\n"
                              "References: <root@x> <r1@y>\nFrom: a@x.com\nSubject: Re: Help"))
    only_irt = parse_message(msg("Message-ID: <r3@y>\nIn-Reply-To: <root@x>\nFrom: a@x.com"))
    assert ticket_for(root)[0] == ticket_for(reply)[0] == ticket_for(only_irt)[0]
    assert ticket_for(root)[0] == ticket_id_for_key("id:root@x")


def test_subject_token_joins_ticket_without_headers() -> None:
    root = parse_message(msg("Message-ID: <root@x>\nFrom: a@x.com\nSubject: Printer jams"))
    tid = ticket_for(root)[0]
    dropped = parse_message(msg(f"Message-ID: <new@z>\nFrom: a@x.com\n"
                                f"Subject: RE: Re: Printer jams [#{tid}]"))
    assert ticket_for(dropped)[0] == tid
    assert subject_token(f"Re: x [#{tid.upper()}]") == tid


def test_ticket_id_shape_and_stability() -> None:
    tid = ticket_id_for_key("id:abc@example.com")
    assert len(tid) == 8 and tid == ticket_id_for_key("id:abc@example.com")
    assert tid.isalnum() and tid.lower() == tid


def test_missing_message_id_uses_stable_hash() -> None:
    raw = msg("From: a@x.com\nSubject: No id\nDate: Tue, 3 Nov 2026 10:00:00 +0000")
    a, b = parse_message(raw), parse_message(raw)
    assert ticket_for(a) == ticket_for(b)
    assert ticket_for(a)[1].startswith("hash:")
    assert dedup_key(a, raw) == dedup_key(b, raw)


def test_reply_subject_never_stacks() -> None:
    assert reply_subject("Re: RE: AW: Printer [#abcdefgh]", "abcdefgh") == \
        "Re: Printer [#abcdefgh]"
    assert reply_subject("", "abcdefgh") == "Re: (no subject) [#abcdefgh]"
    assert strip_subject("Fwd: Re: Hello") == "Hello"


def test_quoted_text_is_stripped() -> None:
    text = "Thanks, works now!\n\nOn Mon, 2 Nov 2026 at 10:00, Bob <b@x> wrote:\n> old text"
    assert quoted_stripped(text) == "Thanks, works now!"
    outlook = "9\n\n-----Original Message-----\nFrom: us\nSubject: survey"
    assert quoted_stripped(outlook) == "9"


def test_snippet_early_stop_matches_the_whole_text() -> None:
    import random
    import re

    from helpdesk.mail.conversations import quoted_stripped, snippet

    rng = random.Random(1)
    pieces = ["a", " ", "\n", "> quoted\n", "On Monday Jo wrote:\n", "word  \t", "x" * 30]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(400)))
        whole = re.sub(r"\s+", " ", quoted_stripped(text))[:140].strip()
        assert snippet(text) == whole
