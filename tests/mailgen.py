"""Deterministic generator of realistic support mail (tests and benchmarks)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

NAMES = ["Ana Lucía Pérez", "Björn Åkesson", "Chloé Dubois", "Dmitri Ivanov", "Eun-ji Kim",
         "François Lefèvre", "Günther Müller", "Hiroshi Tanaka", "Ingrid Sørensen", "José Núñez",
         "Kateřina Nováková", "Liam O'Brien", "María José García", "Nguyễn Văn An", "Olivia Smith",
         "Paweł Kowalski", "Quentin Tarrant", "Renée Zellweger", "Søren Kierkegaard", "Zoë Adams",
         "山田太郎", "李小龙", "Αλέξανδρος Παπαδόπουλος", "Мария Петрова"]
DOMAINS = ["example.com", "acme.test", "globex.example", "initech.example", "gmail.com",
           "umbrella.example", "hooli.example", "outlook.com"]
TOPICS = ["Cannot log in after password reset", "Invoice #4821 shows the wrong VAT",
          "Feature request: dark mode", "Export to CSV is broken", "Réclamation : colis abîmé",
          "Frage zur Rechnung", "アカウントの削除について", "Refund for double charge",
          "App crashes on startup", "How do I add a teammate?", "Sync stuck at 99%",
          "Wish: calendar integration", "Bulk import fails with emoji names", "Ñandú shipping"]
BODY = ("Hello,\n\nI have been using your product for a while and {topic} happens again "
        "since yesterday. Could you please have a look? We rely on it every day and our "
        "team is waiting.\n\nThanks a lot,\n{name}\n")


def _address(rng: random.Random, i: int) -> tuple[str, str]:
    name = rng.choice(NAMES)
    return name, f"customer{i}@{rng.choice(DOMAINS)}"


def generate(n: int, seed: int = 1, support: str = "support@example.com",
             start: datetime | None = None) -> Iterator[bytes]:
    """Yield ``n`` RFC 5322 messages: ~40% replies, ~30% attachments, plain and HTML mixed."""
    rng = random.Random(seed)
    start = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    threads: list[tuple[str, list[str], str, tuple[str, str]]] = []
    for i in range(n):
        when = start + timedelta(minutes=7 * i + rng.randint(0, 5))
        msg = EmailMessage()
        if threads and rng.random() < 0.4:
            root_subject, refs, _mid, who = rng.choice(threads)
            msg["Subject"] = "Re: " + root_subject
            msg["In-Reply-To"] = refs[-1]
            msg["References"] = " ".join(refs[-10:])
            sender = who if rng.random() < 0.7 else ("Support", support)
        else:
            root_subject = rng.choice(TOPICS) + f" ({i})"
            msg["Subject"] = root_subject
            refs = []
            sender = _address(rng, i)
        mid = make_msgid(domain=sender[1].split("@")[1])
        msg["Message-ID"] = mid
        msg["From"] = f"{sender[0]} <{sender[1]}>"
        msg["To"] = support if sender[1] != support else "Customer <customer@example.com>"
        msg["Date"] = format_datetime(when)
        body = BODY.format(topic=root_subject.lower(), name=sender[0]) * rng.randint(1, 4)
        msg.set_content(body)
        if rng.random() < 0.5:
            html = "<html><body>" + "".join(f"<p>{line}</p>" for line in body.splitlines()) + \
                   "<img src=\"https://tracker.example/pixel.gif\"></body></html>"
            msg.add_alternative(html, subtype="html")
        if rng.random() < 0.3:
            payload = rng.randbytes(rng.randint(2_000, 60_000))
            msg.add_attachment(payload, maintype="application", subtype="octet-stream",
                               filename=rng.choice(["screenshot.png", "facture é.pdf",
                                                    "log.txt", "データ.csv"]))
        if not refs:
            threads.append((root_subject, [mid], mid, sender))
        else:
            refs.append(mid)
        yield bytes(msg)
