"""The fast MIME tree builder against the stdlib parser it stands in for.

``fast_tree`` must either decline (return None) or build exactly the tree the stdlib
``compat32`` parser builds, for a message the stdlib parses without any defect; and
``parse_message`` must give the same result on either tree.
"""

from __future__ import annotations

import email
import email.utils
import random
from email.message import Message
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest
from mailgen import generate

from helpdesk.mail import parse
from helpdesk.mail.fastmime import fast_tree

ROOT = Path(__file__).parent.parent
CORPUS = sorted((ROOT / "tests" / "corpus").glob("*.eml"))
DEMO = sorted((ROOT / "resources" / "demo").rglob("*.eml"))


def shape(m: Message) -> list[Any]:
    payload = m._payload
    return [m.get_unixfrom(), list(m._headers), m.preamble, m.epilogue, m.get_default_type(),
            [shape(p) for p in payload] if isinstance(payload, list) else payload]


def stdlib_tree(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=compat32)


def has_defects(m: Message) -> bool:
    return any(part.defects for part in m.walk())


def check(raw: bytes) -> bool:
    """Assert the fast tree is the stdlib tree (or declined); True if it was built."""
    fast = fast_tree(raw)
    if fast is None:
        return False
    slow = stdlib_tree(raw)
    assert not has_defects(slow), "accepted a message the stdlib finds defective"
    assert shape(fast) == shape(slow)
    return True


def parsed_both_ways(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    fast = parse.parse_message(raw)
    with monkeypatch.context() as m:
        m.setattr(parse, "fast_tree", lambda raw: None)
        slow = parse.parse_message(raw)
    return fast, slow


def samples() -> list[bytes]:
    return ([p.read_bytes() for p in CORPUS + DEMO]
            + list(generate(300, seed=7)) + list(generate(100, seed=8)))


def test_same_tree_as_stdlib_on_corpus_demo_and_generated_mail() -> None:
    built = [check(raw) for raw in samples()]
    # Generated and demo mail is well formed: nearly all of it takes the fast path.
    assert sum(built) >= len(built) - len(CORPUS) - 10


def test_same_parse_result_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw in samples():
        fast, slow = parsed_both_ways(raw, monkeypatch)
        assert fast == slow


def mutations(raw: bytes, rng: random.Random) -> list[bytes]:
    lines = raw.split(b"\n")
    out = [
        raw[:rng.randrange(1, len(raw))],  # truncated anywhere
        raw.replace(b"\r\n", b"\n"),  # bare LF line ends
        raw.replace(b"\r\n", b"\r", 1),  # one bare CR
        b"From someone Mon Jan  1 00:00:00 2024\r\n" + raw,
        b" folded first line\r\n" + raw,
        b"not a header line\r\n" + raw,
        b":no name\r\n" + raw,
        raw.replace(b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: BASE64"),
    ]
    for _ in range(6):  # drop, duplicate or damage a random line
        i = rng.randrange(len(lines))
        choice = rng.randrange(4)
        copy = list(lines)
        if choice == 0:
            del copy[i]
        elif choice == 1:
            copy.insert(i, copy[i])
        elif choice == 2:
            copy[i] = copy[i] + b"--"
        else:
            copy[i] = copy[i][:rng.randrange(len(copy[i]) + 1)] + b" \t"
        out.append(b"\n".join(copy))
    boundary_lines = [ln for ln in lines if ln.startswith(b"--")]
    for ln in boundary_lines[:3]:
        out.append(raw.replace(ln + b"\n", b"", 1))  # a missing boundary line
        out.append(raw.replace(ln + b"\n", ln + b"\n" + ln + b"\n", 1))  # doubled
        out.append(raw.replace(ln + b"\n", ln + b"  \n", 1))  # trailing blanks
        out.append(raw.replace(ln + b"\n", ln + b"x\n", 1))  # not a boundary any more
        out.append(raw.replace(ln, b"  " + ln, 1))  # not at the line start
    return out


def test_mutated_mail_declined_or_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    bases = [p.read_bytes() for p in CORPUS] + list(generate(60, seed=9))
    built = declined = 0
    for raw in bases:
        for variant in mutations(raw, rng):
            if check(variant):
                built += 1
                fast, slow = parsed_both_ways(variant, monkeypatch)
                assert fast == slow
            else:
                declined += 1
    assert built > 100 and declined > 100  # both paths exercised


def test_declines_what_the_stdlib_must_handle() -> None:
    multipart = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                 b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n")
    assert fast_tree(multipart) is not None
    assert fast_tree(multipart.replace(b"--b--", b"--b")) is None  # no close boundary
    assert fast_tree(multipart.replace(b"boundary=b", b"boundary=x")) is None  # never used
    assert fast_tree(multipart.replace(b"; boundary=b", b"")) is None  # no boundary
    assert fast_tree(b"Content-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\nbody") is None
    assert fast_tree(b"") is None


def test_attachment_size_without_decoding_matches_decoding() -> None:
    for raw in list(generate(80, seed=3)) + [p.read_bytes() for p in CORPUS]:
        tree = stdlib_tree(raw)
        for part in tree.walk():
            if not part.is_multipart():
                assert parse._decoded_size(part) == len(parse._decoded(part))


def random_address_header(rng: random.Random) -> str:
    atoms = ["jo", "Smith", "J.", "o'neil", "a+b", "x_y", "=?utf-8?b?w6k=?=", "Müller", "é",
             "a..b", "(c)", "\\", ",", ";", ":", "<", ">", "@", '"', " ", "  ", "\t", "[x]"]
    def mailbox() -> str:
        addr = f"{rng.choice(['a', 'b.c', 'd-e', 'f+g', 'h..i', ''])}@" \
               f"{rng.choice(['x.org', 'y', 'z-q.co.uk', 'w..v', ''])}"
        name = "".join(rng.choice(atoms) + rng.choice(["", " "]) for _ in range(rng.randrange(4)))
        form = rng.randrange(4)
        if form == 0:
            return addr
        if form == 1:
            return f"{name}<{addr}>"
        if form == 2:
            return f'"{name}" <{addr}>'
        return f"{name} {addr}"
    return rng.choice([", ", ",", " , "]).join(mailbox() for _ in range(rng.randrange(1, 4)))


def test_simple_addresses_agree_with_getaddresses() -> None:
    rng = random.Random(11)
    fast = 0
    for _ in range(5000):
        header = random_address_header(rng)
        got = parse._simple_addresses(header)
        if got is not None:
            fast += 1
            assert got == email.utils.getaddresses([header]), header
    assert fast > 300


@pytest.mark.parametrize("body", ["QUJD", "QUI=", "QQ==", "QQ=\r\n=", "QQ\r\n==\r\n", "QQ=A",
                                  "Q Q==", "QQ==\r\nQQ==", "QQ", "====", "QUJD\r\nRA==\r\n",
                                  "QU*D", "", "\r\n", "QUJ\u00e9"])
def test_attachment_size_of_odd_base64(body: str) -> None:
    part = Message()
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(body.encode("utf-8").decode("ascii", "surrogateescape"))
    assert parse._decoded_size(part) == len(parse._decoded(part))
