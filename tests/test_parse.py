"""The parser against a corpus of broken real-world-style mail (tests/corpus)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpdesk.mail.parse import extract_attachment, parse_message

CORPUS = Path(__file__).parent / "corpus"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_message(name: str) -> None:
    exp = EXPECTED[name]
    raw = (CORPUS / name).read_bytes()
    p = parse_message(raw)
    assert p.from_addr == exp["from"]
    assert p.from_name == exp["from_name"]
    assert p.subject == exp["subject"]
    assert p.message_id == exp["message_id"]
    assert p.in_reply_to == exp["in_reply_to"]
    assert p.references == exp["references"]
    for fragment in exp["text_contains"]:
        assert fragment in p.text, fragment
    assert (p.html is not None) == exp["html"]
    assert [(a.filename, a.size) for a in p.attachments] == \
        [(a["filename"], a["size"]) for a in exp["attachments"]]
    assert p.auto_kind == exp["auto"]
    assert bool(p.defects) == exp["defects"], p.defects
    for a in p.attachments:
        got = extract_attachment(raw, a.index)
        assert got is not None and len(got[2]) == a.size


def test_parser_never_raises_on_garbage() -> None:
    import random

    rng = random.Random(3)
    samples = [b"", b"\x00\xff" * 50, b"Content-Type: multipart/mixed; boundary=\n\n--\n--",
               b"From: \xff\xfe <\x00@\x00>\nSubject: =?utf-8?b?====?=\n\n"]
    for raw_file in sorted(CORPUS.glob("*.eml"))[:10]:
        data = bytearray(raw_file.read_bytes()[:3000])
        for _ in range(20):
            i = rng.randrange(len(data))
            data[i] = rng.randrange(256)
        samples.append(bytes(data))
    for raw in samples:
        parse_message(raw)  # must not raise
