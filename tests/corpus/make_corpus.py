"""Regenerate the tricky-mail corpus in this directory.

    python tests/corpus/make_corpus.py

Writes every ``*.eml`` file byte-exactly (several contain deliberately invalid
bytes, so they are built as ``bytes``, never via text mode) and ``expected.json``.
All content was written from scratch for this project; see README.md.

Line endings are LF everywhere except ``31_crlf_large_attachment.eml``,
which is CRLF on purpose.
"""

from __future__ import annotations

import base64
import json
import quopri
import random
import struct
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

FILES: dict[str, bytes] = {}
EXPECTED: dict[str, dict[str, object]] = {}


def b64(data: bytes) -> str:
    """Base64 with 76-character lines and LF, ending in a newline."""
    return base64.encodebytes(data).decode("ascii")


def b64w(text: str, charset: str = "utf-8") -> str:
    """Body of one RFC 2047 B encoded word."""
    return base64.b64encode(text.encode(charset)).decode("ascii")


def qp(data: bytes) -> str:
    return quopri.encodestring(data).decode("ascii")


def add(name: str, raw: bytes | str, *, from_: str | None, from_name: str | None,
        subject: str, message_id: str | None, in_reply_to: str | None = None,
        references: list[str] | None = None, text_contains: list[str],
        html: bool = False, attachments: list[tuple[str, int]] | None = None,
        auto: str = "none", defects: bool = False) -> None:
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    assert name not in FILES, name
    FILES[name] = raw
    EXPECTED[name] = {
        "from": from_,
        "from_name": from_name,
        "subject": subject,
        "message_id": message_id,
        "in_reply_to": in_reply_to,
        "references": references or [],
        "text_contains": text_contains,
        "html": html,
        "attachments": [{"filename": f, "size": s} for f, s in (attachments or [])],
        "auto": auto,
        "defects": defects,
    }


def tiny_png() -> bytes:
    """A valid 8x8 RGB PNG (a red square), built without third-party libraries."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    rows = b"".join(b"\x00" + b"\xd0\x20\x20" * 8 for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9))
            + chunk(b"IEND", b""))


# ---------------------------------------------------------------------------
# 01 plain ASCII, no MIME headers at all (defaults to text/plain; us-ascii)
add("01_plain_ascii.eml", """\
From: Alice Example <alice@example.com>
To: Support <support@example.org>
Subject: Cannot log in to the customer portal
Date: Mon, 2 Nov 2026 09:15:00 +0000
Message-ID: <20261102091500.4711@mail.example.com>

Hello,

since this morning I cannot log in to the customer portal. The page
says "Session expired" right after I enter my password.

Thanks,
Alice
""", from_="alice@example.com", from_name="Alice Example",
    subject="Cannot log in to the customer portal",
    message_id="20261102091500.4711@mail.example.com",
    text_contains=["cannot log in to the customer portal", '"Session expired"'])

# ---------------------------------------------------------------------------
# 02 UTF-8 8bit body, B-encoded display name, Q/B subject over folded lines
add("02_utf8_encoded_words.eml", f"""\
From: =?UTF-8?B?{b64w("José Müller")}?= <Jose.Mueller@Example.COM>
To: support@example.org
Subject: =?UTF-8?Q?Rechnung_f=C3=BCr_M=C3=A4rz_=E2=80=93_?=
 =?UTF-8?Q?Zahlung_doppelt_?= =?UTF-8?B?{b64w("abgebucht")}?= (Kundennr. 4711)
Date: Mon, 2 Nov 2026 10:02:11 +0100
Message-ID: <b3f1c2a0-8d7e-4c55-9a61-0f2e1d3c4b5a@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8; format=flowed
Content-Transfer-Encoding: 8bit

Guten Tag,

mir wurde die Rechnung für März zweimal abgebucht (2 × 49,90 €).
Bitte erstatten Sie den doppelten Betrag.

Mit freundlichen Grüßen
José Müller
""", from_="jose.mueller@example.com", from_name="José Müller",
    subject="Rechnung für März – Zahlung doppelt abgebucht (Kundennr. 4711)",
    message_id="b3f1c2a0-8d7e-4c55-9a61-0f2e1d3c4b5a@example.com",
    text_contains=["Rechnung für März zweimal abgebucht", "49,90 €", "Grüßen"])

# ---------------------------------------------------------------------------
# 03 ISO-2022-JP subject, display name and body (7bit with escape sequences)
jp_body = ("サポートご担当者様\n\n"
           "お世話になっております。山田です。\n"
           "先月分の請求書を紛失してしまいました。\n"
           "再発行をお願いできますでしょうか。\n\n"
           "よろしくお願いいたします。\n"
           "山田 太郎\n")
add("03_iso2022jp.eml", (f"""\
From: =?ISO-2022-JP?B?{b64w("山田 太郎", "iso2022_jp")}?= <yamada.taro@example.jp.example>
To: support@example.org
Subject: =?ISO-2022-JP?B?{b64w("請求書の再発行について", "iso2022_jp")}?=
Date: Tue, 3 Nov 2026 09:40:00 +0900
Message-ID: <20261103004000.A1B2@mx.example.jp.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-2022-JP
Content-Transfer-Encoding: 7bit

""").encode("ascii") + jp_body.encode("iso2022_jp"),
    from_="yamada.taro@example.jp.example", from_name="山田 太郎",
    subject="請求書の再発行について",
    message_id="20261103004000.A1B2@mx.example.jp.example",
    text_contains=["請求書を紛失", "再発行をお願いできますでしょうか"])

# ---------------------------------------------------------------------------
# 04 Shift_JIS 8bit body; several characters have 0x5C ("\") as trail byte
sjis_body = ("お世話になっております。\n"
             "ソフトウェアの表示が崩れてしまい、ボタンが押せません。\n"
             "予定表の機能も使えない状態です。\n"
             "画面のスクリーンショットを後ほど送ります。\n"
             "Version: 3.2.1\n")
assert b"\\" in sjis_body.encode("shift_jis")
add("04_shift_jis.eml", (f"""\
From: Sato Hanako <sato@example.net>
To: support@example.org
Subject: =?shift_jis?B?{b64w("ソフトウェアの表示不具合", "shift_jis")}?=
Date: Tue, 3 Nov 2026 11:05:42 +0900
Message-ID: <sjis-0001@example.net>
MIME-Version: 1.0
Content-Type: text/plain; charset="shift_jis"
Content-Transfer-Encoding: 8bit

""").encode("ascii") + sjis_body.encode("shift_jis"),
    from_="sato@example.net", from_name="Sato Hanako",
    subject="ソフトウェアの表示不具合", message_id="sjis-0001@example.net",
    text_contains=["ソフトウェアの表示が崩れて", "予定表の機能", "Version: 3.2.1"])

# ---------------------------------------------------------------------------
# 04b labelled Shift_JIS but really Windows-31J/cp932 (NEC/IBM extension chars)
cp932_body = ("株式会社エグザンプル\n"
              "ご担当者様\n\n"
              "お見積もりの件、以下の通りご確認ください。\n"
              "① ライセンス 10本\n"
              "② 保守契約 1年\n"
              "納期：11月20日～11月30日\n"
              "㈱エグザンプル 髙橋\n")
cp932_bytes = cp932_body.encode("cp932")
try:
    cp932_bytes.decode("shift_jis")
except UnicodeDecodeError:
    pass
else:  # pragma: no cover - the point of the file
    raise AssertionError("04b must not be decodable as strict shift_jis")
add("04b_cp932_labelled_shift_jis.eml", (f"""\
From: =?ISO-2022-JP?B?{b64w("高橋 一郎", "iso2022_jp")}?= <takahashi@example.co.jp.example>
To: support@example.org
Subject: =?Shift_JIS?B?{b64w("お見積もりの件", "cp932")}?=
Date: Wed, 4 Nov 2026 16:20:00 +0900
Message-ID: <cp932-0001@example.co.jp.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=Shift_JIS
Content-Transfer-Encoding: 8bit

""").encode("ascii") + cp932_bytes,
    from_="takahashi@example.co.jp.example", from_name="高橋 一郎",
    subject="お見積もりの件", message_id="cp932-0001@example.co.jp.example",
    text_contains=["お見積もりの件", "① ライセンス", "㈱エグザンプル"])

# ---------------------------------------------------------------------------
# 05 windows-1252 bytes labelled iso-8859-1 (0x80, 0x85, 0x92-0x96)
add("05_cp1252_labelled_latin1.eml", b"""\
From: Marta Silva <marta@example.net>
To: support@example.org
Subject: Invoice still shows as unpaid
Date: Tue, 3 Nov 2026 13:00:00 +0000
Message-ID: <000401db2e5a$1a2b3c40$4e5f6a70@example.net>
MIME-Version: 1.0
Content-Type: text/plain; charset="iso-8859-1"
Content-Transfer-Encoding: 8bit
X-Mailer: Microsoft Outlook 16.0

Hi,

The invoice says \x93paid\x94 but the portal still shows \x80 120.00
outstanding \x96 could you check? We\x92re a small caf\xe9, so this matters\x85

Thanks,
Marta
""", from_="marta@example.net", from_name="Marta Silva",
    subject="Invoice still shows as unpaid",
    message_id="000401db2e5a$1a2b3c40$4e5f6a70@example.net",
    text_contains=["The invoice says", "paid", "120.00", "small caf\u00e9"])

# ---------------------------------------------------------------------------
# 06 unknown charset label, bytes are latin-1
add("06_unknown_charset.eml", b"""\
From: Klaus Becker <klaus.becker@example.org>
To: support@example.org
Subject: Drucker im Buero druckt nicht
Date: Tue, 3 Nov 2026 14:10:00 +0100
Message-ID: <unknown-cs-77@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset="x-unknown-zz"
Content-Transfer-Encoding: 8bit

Gr\xfc\xdfe aus K\xf6ln,

unser Drucker im B\xfcro druckt seit gestern nur noch leere Seiten.
Modell: LaserJet 4000

Klaus
""", from_="klaus.becker@example.org", from_name="Klaus Becker",
    subject="Drucker im Buero druckt nicht", message_id="unknown-cs-77@example.org",
    text_contains=["K\u00f6ln", "unser Drucker im B", "leere Seiten", "LaserJet 4000"],
    defects=True)

# ---------------------------------------------------------------------------
# 07 body declared UTF-8 with invalid / truncated sequences mixed with valid ones
add("07_invalid_utf8.eml", b"""\
From: Piotr Nowak <piotr@example.com>
To: support@example.org
Subject: Export crashes the app
Date: Tue, 3 Nov 2026 15:30:00 +0100
Message-ID: <invalid-utf8-1@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hello,

the export file name shows as "Bericht_M\xe4rz.csv" and then the app crashes
\xff\xfe on open. The caf\xc3\xa9 menu is broken too: \xc3\x28 and \xe2\x82 end.
Valid bits still work: Zg\xc5\x82oszenie.

Regards,
Piotr \xf0\x9f\x98
""", from_="piotr@example.com", from_name="Piotr Nowak", subject="Export crashes the app",
    message_id="invalid-utf8-1@example.com",
    text_contains=["the export file name shows as", "then the app crashes", "Regards"],
    defects=True)

# ---------------------------------------------------------------------------
# 08 raw 8-bit UTF-8 in From, To and Subject (RFC 6532 style, no RFC 2047)
add("08_raw_utf8_headers.eml", """\
From: Zoë Ångström <zoe.angstrom@example.com>
To: Kundtjänst <support@example.org>
Subject: Återbetalning för order 5521 – ännu inte mottagen
Date: Wed, 4 Nov 2026 08:12:00 +0100
Message-ID: <raw8bit-5521@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hej!

Jag har fortfarande inte fått återbetalningen för order 5521.

Zoë
""", from_="zoe.angstrom@example.com", from_name="Zoë Ångström",
    subject="Återbetalning för order 5521 – ännu inte mottagen",
    message_id="raw8bit-5521@example.com",
    text_contains=["inte fått återbetalningen", "order 5521"])

# ---------------------------------------------------------------------------
# 09 / 10 / 11 missing Message-ID, Date, From
add("09_missing_message_id.eml", """\
From: Ben Carter <ben.carter@example.com>
To: support@example.org
Subject: Where is my order?
Date: Wed, 4 Nov 2026 09:00:00 -0500
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hi, my order #88213 has not arrived yet. Can you check the tracking?

Ben
""", from_="ben.carter@example.com", from_name="Ben Carter", subject="Where is my order?",
    message_id=None, text_contains=["order #88213 has not arrived"])

add("10_missing_date.eml", """\
From: Chloe Dubois <chloe@example.net>
To: support@example.org
Subject: Password reset link expired
Message-ID: <no-date-0001@example.net>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

The password reset link in your email says it has expired, even though
I clicked it within a minute.
""", from_="chloe@example.net", from_name="Chloe Dubois",
    subject="Password reset link expired", message_id="no-date-0001@example.net",
    text_contains=["password reset link", "within a minute"])

add("11_missing_from.eml", """\
To: support@example.org
Subject: Contact form submission
Date: Wed, 4 Nov 2026 10:45:00 +0000
Message-ID: <webform-20261104104500@www.example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Name: Dana
Message: Your opening hours on the website are wrong for Saturdays.
""", from_=None, from_name=None, subject="Contact form submission",
    message_id="webform-20261104104500@www.example.com",
    text_contains=["opening hours on the website are wrong"])

# ---------------------------------------------------------------------------
# 12 multipart whose boundary never appears in the body
add("12_multipart_boundary_never_used.eml", """\
From: Emil Novak <emil@example.com>
To: support@example.org
Subject: Router keeps rebooting
Date: Wed, 4 Nov 2026 11:00:00 +0100
Message-ID: <nobound-used-1@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="----=_Part_0_1234567.1793790000000"

Hello support,

my router keeps rebooting every few hours since the last update.
The status LED blinks orange before it restarts.

Emil
""", from_="emil@example.com", from_name="Emil Novak", subject="Router keeps rebooting",
    message_id="nobound-used-1@example.com",
    text_contains=["router keeps rebooting", "blinks orange"], defects=True)

# 12b multipart with parts but no closing boundary (truncated by a gateway)
sync_log = (b"2026-11-04 11:58:01 INFO  sync started\n"
            b"2026-11-04 11:58:07 WARN  retrying upload (1/3)\n"
            b"2026-11-04 11:58:19 ERROR upload failed: connection reset by peer\n")
add("12b_multipart_no_closing_boundary.eml", f"""\
From: Emil Novak <emil@example.com>
To: support@example.org
Subject: Sync log attached
Date: Wed, 4 Nov 2026 12:00:00 +0100
Message-ID: <noclose-1@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1_5f3a9c"

This is a multi-part message in MIME format.

--b1_5f3a9c
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Here is the sync log you asked for. The upload fails every time.

--b1_5f3a9c
Content-Type: text/plain; charset=us-ascii; name="sync.log"
Content-Disposition: attachment; filename="sync.log"
Content-Transfer-Encoding: base64

{b64(sync_log)}""", from_="emil@example.com", from_name="Emil Novak",
    subject="Sync log attached", message_id="noclose-1@example.com",
    text_contains=["Here is the sync log", "upload fails every time"],
    attachments=[("sync.log", len(sync_log))], defects=True)

# ---------------------------------------------------------------------------
# 13 multipart without any boundary parameter
add("13_multipart_missing_boundary.eml", """\
From: Farah Khan <farah.khan@example.org>
To: support@example.org
Subject: Scanner error E-204
Date: Wed, 4 Nov 2026 12:30:00 +0000
Message-ID: <noboundary-param-1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed

--000000000000f00dfeed0001
Content-Type: text/plain; charset="UTF-8"

The scanner on floor 3 shows error E-204 again after the paper jam.

--000000000000f00dfeed0001--
""", from_="farah.khan@example.org", from_name="Farah Khan", subject="Scanner error E-204",
    message_id="noboundary-param-1@example.org",
    text_contains=["shows error E-204 again"], defects=True)

# ---------------------------------------------------------------------------
# 14 forwarded message (message/rfc822) that carries its own attachment
export_csv = (b"invoice;date;net;vat;total\r\n"
              b"2026-101;2026-10-01;100,00;19,00;119,00\r\n"
              b"2026-102;2026-10-08;250,00;47,50;297,50\r\n"
              b"2026-103;2026-10-15;80,00;15,20;59,20\r\n")
add("14_forwarded_rfc822.eml", f"""\
From: Kim Lee <kim.lee@example.org>
To: support@example.org
Subject: Fwd: Wrong totals in export
Date: Thu, 5 Nov 2026 08:00:00 +0000
Message-ID: <fwd-outer-1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer-7d3e"

--outer-7d3e
Content-Type: text/plain; charset=utf-8

Hi team, forwarding the customer's complaint below; the spreadsheet
is attached to the original message.

-- Kim

--outer-7d3e
Content-Type: message/rfc822
Content-Disposition: inline

From: Omar Haddad <omar@example.net>
To: Kim Lee <kim.lee@example.org>
Subject: Wrong totals in export
Date: Wed, 4 Nov 2026 17:30:00 +0000
Message-ID: <fwd-inner-1@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="inner-91ab"

--inner-91ab
Content-Type: text/plain; charset=utf-8

The totals in the attached export are wrong, see invoice 2026-103.

--inner-91ab
Content-Type: text/csv; name="export-october.csv"
Content-Disposition: attachment; filename="export-october.csv"
Content-Transfer-Encoding: base64

{b64(export_csv)}
--inner-91ab--

--outer-7d3e--
""", from_="kim.lee@example.org", from_name="Kim Lee", subject="Fwd: Wrong totals in export",
    message_id="fwd-outer-1@example.org",
    text_contains=["forwarding the customer's complaint"],
    attachments=[("export-october.csv", len(export_csv))])

# ---------------------------------------------------------------------------
# 15 HTML only: <style>, comment, remote tracking image, lots of entities
add("15_html_only_entities.eml", """\
From: "Example Shop" <news@shop.example.com>
To: support@example.org
Subject: Your complaint #5521 has been escalated
Date: Thu, 5 Nov 2026 09:00:00 +0000
Message-ID: <html-only-5521@shop.example.com>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 8bit

<!DOCTYPE html>
<html><head><title>Escalation notice</title>
<style type="text/css">
  p.note { color: #c00; font-family: "Segoe UI", sans-serif; }
  .hidden { display: none; }
</style></head>
<body>
<!-- tracking: campaign=escalation-7 -->
<p>Dear&nbsp;customer,</p>
<p>Our R&amp;D team confirmed that 5 &lt; 6 &amp;&amp; 7 &gt; 3 still holds, and we
don&#8217;t charge for the caf&eacute; voucher (&#x20AC;20) &hellip; promise.</p>
<p class="note">Quote: &quot;we&apos;ll fix it&quot; &mdash; Ren&eacute;e</p>
<img src="https://tracker.example.net/open.gif?u=5521" width="1" height="1" alt="">
</body></html>
""", from_="news@shop.example.com", from_name="Example Shop",
    subject="Your complaint #5521 has been escalated",
    message_id="html-only-5521@shop.example.com", html=True,
    text_contains=["R&D team", "5 < 6 && 7 > 3", "don\u2019t charge", "caf\u00e9 voucher",
                   "\u20ac20", "\"we'll fix it\"", "Ren\u00e9e"])

# ---------------------------------------------------------------------------
# 16 multipart/alternative, quoted-printable with soft breaks and =3D
add("16_alternative_quoted_printable.eml", """\
From: =?utf-8?Q?Jo=C3=A3o_Pereira?= <joao.pereira@example.com>
To: support@example.org
Subject: Config for the Lisbon rollout
Date: Thu, 5 Nov 2026 10:00:00 +0000
Message-ID: <qp-alt-1@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="=_alt_6f2c"

--=_alt_6f2c
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hello,=20

we are planning the internation=
alization rollout for the Lisbon office. In the config file please set=
 timeout=3D30 and retries=3D5 =E2=80=94 the defaults are too aggressive=
.

Obrigado,
Jo=C3=A3o

--=_alt_6f2c
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<html><head><meta http-equiv=3D"Content-Type" content=3D"text/html; charset=
=3Dutf-8"></head><body><p>Hello,</p><p>we are planning the internation=
alization rollout for the Lisbon office. In the config file please set <cod=
e>timeout=3D30</code> and <code>retries=3D5</code> =E2=80=94 the defaults a=
re too aggressive.</p><p>Obrigado,<br>Jo=C3=A3o</p></body></html>

--=_alt_6f2c--
""", from_="joao.pereira@example.com", from_name="João Pereira",
    subject="Config for the Lisbon rollout", message_id="qp-alt-1@example.com", html=True,
    text_contains=["internationalization rollout", "timeout=30", "retries=5",
                   "\u2014 the defaults", "João"])

# ---------------------------------------------------------------------------
# 17 base64 with whitespace inside lines, odd line lengths, garbage, no padding
b17_text = ("Hello support,\n"
            "the nightly backup job failed with code 0x80070005 at 02:14.\n"
            "The log is attached. Please advise!!\n"
            "Greetings from Zürich\n").encode("utf-8")
b17_log = (b"[02:00:01] backup: starting job nightly-full\n"
           b"[02:14:33] backup: access denied (0x80070005) on \\\\nas01\\share\n"
           b"[02:14:33] backup: job aborted\n")
assert len(b17_text) % 3 and len(b17_log) % 3, "need missing padding"


def mangle_text(data: bytes) -> str:
    enc = base64.b64encode(data).decode("ascii").rstrip("=")
    lines, i, widths = [], 0, [60, 33, 71, 17, 76, 44]
    while i < len(enc):
        w = widths[len(lines) % len(widths)]
        chunk = enc[i:i + w]
        i += w
        if len(lines) % 2 == 0 and len(chunk) > 10:
            chunk = chunk[:8] + " " + chunk[8:] + " \t"
        lines.append(chunk)
    return "\n".join(lines) + "\n"


def mangle_garbage(data: bytes) -> str:
    enc = base64.b64encode(data).decode("ascii").rstrip("=")
    junk = "!*#~."
    out = []
    for n, line in enumerate(enc[i:i + 64] for i in range(0, len(enc), 64)):
        pos = (n * 7) % max(1, len(line))
        out.append(line[:pos] + junk[n % len(junk)] + line[pos:])
    return "\n".join(out) + "\n"


add("17_base64_garbage.eml", f"""\
From: Lars Holm <lars.holm@example.net>
To: support@example.org
Subject: Backup job failed
Date: Thu, 5 Nov 2026 11:00:00 +0100
Message-ID: <b64-garbage-1@example.net>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="xx-b64-xx"

--xx-b64-xx
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

{mangle_text(b17_text)}
--xx-b64-xx
Content-Type: text/plain; charset=us-ascii; name="backup.log"
Content-Disposition: attachment; filename="backup.log"
Content-Transfer-Encoding: BASE64

{mangle_garbage(b17_log)}
--xx-b64-xx--
""", from_="lars.holm@example.net", from_name="Lars Holm", subject="Backup job failed",
    message_id="b64-garbage-1@example.net",
    text_contains=["nightly backup job failed with code 0x80070005", "Zürich"],
    attachments=[("backup.log", len(b17_log))], defects=True)

# ---------------------------------------------------------------------------
# 18 RFC 2231 filenames: extended value, and a 3-segment continuation that mixes
#    encoded (*N*) and plain quoted (*N) segments; Content-Type name= disagrees.
pdf_bytes = (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\n"
             b"trailer<</Root 1 0 R>>\n%%EOF\n")
xlsx_bytes = b"PK\x03\x04" + bytes(range(256)) + b"PK\x05\x06" + b"\x00" * 18
add("18_rfc2231_filenames.eml", f"""\
From: Ines Garcia <ines.garcia@example.com>
To: support@example.org
Subject: Documents for the application
Date: Thu, 5 Nov 2026 12:00:00 +0100
Message-ID: <rfc2231-1@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="------------x2231x"

This is a multi-part message in MIME format.
--------------x2231x
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 7bit

Please find my CV and the quarterly overview attached.

--------------x2231x
Content-Type: application/pdf; name="naive resume.pdf"
Content-Disposition: attachment;
 filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf
Content-Transfer-Encoding: base64

{b64(pdf_bytes)}
--------------x2231x
Content-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet
Content-Disposition: attachment;
 filename*0*=UTF-8''Quartalsbericht%20Q3%20%E2%80%93%20;
 filename*1*=%C3%9Cbersicht%20;
 filename*2="2026.xlsx"
Content-Transfer-Encoding: base64

{b64(xlsx_bytes)}
--------------x2231x--
""", from_="ines.garcia@example.com", from_name="Ines Garcia",
    subject="Documents for the application", message_id="rfc2231-1@example.com",
    text_contains=["Please find my CV"],
    attachments=[("naïve résumé.pdf", len(pdf_bytes)),
                 ("Quartalsbericht Q3 – Übersicht 2026.xlsx", len(xlsx_bytes))])

# ---------------------------------------------------------------------------
# 19 RFC 2047 encoded words inside quoted name=/filename= parameters
fn19a = "Angebot für Müller & Söhne – März 2026.pdf"
w1, w2 = fn19a[:21], fn19a[21:]
pptx_bytes = b"PK\x03\x04fake-pptx-content\x00\x01\x02" * 3
add("19_rfc2047_filenames.eml", f"""\
From: =?iso-8859-1?Q?J=FCrgen_Wei=DF?= <juergen.weiss@example.org>
To: support@example.org
Subject: =?iso-8859-1?Q?Angebot_und_Pr=E4sentation?=
Date: Thu, 5 Nov 2026 13:00:00 +0100
Message-ID: <rfc2047-names-1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="_004_rfc2047names_"

--_004_rfc2047names_
Content-Type: text/plain; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

Anbei das Angebot und die Pr=E4sentation.

--_004_rfc2047names_
Content-Type: application/pdf;
	name="=?utf-8?B?{b64w(w1)}?=
 =?utf-8?B?{b64w(w2)}?="
Content-Disposition: attachment;
	filename="=?utf-8?B?{b64w(w1)}?=
 =?utf-8?B?{b64w(w2)}?="; size={len(pdf_bytes)}
Content-Transfer-Encoding: base64

{b64(pdf_bytes)}
--_004_rfc2047names_
Content-Type: application/vnd.openxmlformats-officedocument.presentationml.presentation;
 name="=?iso-8859-1?Q?Pr=E4sentation_Entwurf.pptx?="
Content-Disposition: attachment;
 filename="=?iso-8859-1?Q?Pr=E4sentation_Entwurf.pptx?="
Content-Transfer-Encoding: base64

{b64(pptx_bytes)}
--_004_rfc2047names_--
""", from_="juergen.weiss@example.org", from_name="Jürgen Weiß",
    subject="Angebot und Präsentation", message_id="rfc2047-names-1@example.org",
    text_contains=["Anbei das Angebot und die Präsentation."],
    attachments=[(fn19a, len(pdf_bytes)), ("Präsentation Entwurf.pptx", len(pptx_bytes))])

# ---------------------------------------------------------------------------
# 20 Outlook reply: Thread-Index, "-----Original Message-----" block, QP, cp1252
outlook_text = ("Hi,\n\n"
                "Thanks, the printer is working again after the firmware update.\n"
                "One more question: can we get a spare drum unit for the 2nd floor?\n\n"
                "Best regards,\nJohn Doe\nIT Coordinator\n\n"
                "-----Original Message-----\n"
                "From: Support <support@example.org>\n"
                "Sent: Monday, November 2, 2026 4:05 PM\n"
                "To: Doe, John <John.Doe@contoso.example>\n"
                "Subject: Printer jams on 2nd floor [#kmnp4627]\n\n"
                "Hello John,\n\n"
                "please update the printer firmware to version 5.1 \u2013 that fixes the\n"
                "paper-feed timing problem that causes the jams.\n\n"
                "Kind regards,\nSupport\n").encode("cp1252")
outlook_html = (
    '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>'
    '<meta http-equiv="Content-Type" content="text/html; charset=Windows-1252">'
    "<style><!-- p.MsoNormal {margin:0cm; font-size:11.0pt;} --></style></head>"
    '<body lang="EN-US"><div class="WordSection1">'
    '<p class="MsoNormal">Hi,<o:p></o:p></p>'
    '<p class="MsoNormal">Thanks, the printer is working again after the firmware '
    "update.<o:p></o:p></p>"
    '<p class="MsoNormal">One more question: can we get a spare drum unit for the 2nd '
    "floor?<o:p></o:p></p>"
    '<div style="border:none;border-top:solid #E1E1E1 1.0pt">'
    '<p class="MsoNormal"><b>From:</b> Support &lt;support@example.org&gt;<br>'
    "<b>Sent:</b> Monday, November 2, 2026 4:05 PM<br><b>Subject:</b> Printer jams on "
    "2nd floor [#kmnp4627]</p></div>"
    '<p class="MsoNormal">please update the printer firmware to version 5.1 \u2013 that '
    "fixes the paper-feed timing problem.</p></div></body></html>\n").encode("cp1252")
add("20_outlook_reply.eml", f"""\
From: "Doe, John" <John.Doe@Contoso.example>
To: Support <support@example.org>
Subject: RE: Printer jams on 2nd floor [#kmnp4627]
Thread-Topic: Printer jams on 2nd floor [#kmnp4627]
Thread-Index: AQHbLk5bX2y1c0vL0kG9m3QpR7s8fbKx4Q==
Date: Tue, 3 Nov 2026 14:22:31 +0000
Message-ID:
 <DM6PR11MB4321A1B2C3D4E5F6A7B8C9D0E1F2@DM6PR11MB4321.namprd11.prod.outlook.example>
References: <ticket-kmnp4627.1@helpdesk.example.org>
In-Reply-To: <ticket-kmnp4627.1@helpdesk.example.org>
Accept-Language: en-US
Content-Language: en-US
X-MS-Has-Attach:
X-MS-TNEF-Correlator:
MIME-Version: 1.0
Content-Type: multipart/alternative;
	boundary="_000_DM6PR11MB4321A1B2C3D4E5F6A7B8C9D0E1F2DM6PR11MB4321namp_"

--_000_DM6PR11MB4321A1B2C3D4E5F6A7B8C9D0E1F2DM6PR11MB4321namp_
Content-Type: text/plain; charset="Windows-1252"
Content-Transfer-Encoding: quoted-printable

{qp(outlook_text)}
--_000_DM6PR11MB4321A1B2C3D4E5F6A7B8C9D0E1F2DM6PR11MB4321namp_
Content-Type: text/html; charset="Windows-1252"
Content-Transfer-Encoding: quoted-printable

{qp(outlook_html)}
--_000_DM6PR11MB4321A1B2C3D4E5F6A7B8C9D0E1F2DM6PR11MB4321namp_--
""", from_="john.doe@contoso.example", from_name="Doe, John",
    subject="RE: Printer jams on 2nd floor [#kmnp4627]",
    message_id="DM6PR11MB4321A1B2C3D4E5F6A7B8C9D0E1F2@DM6PR11MB4321.namprd11.prod.outlook.example",
    in_reply_to="ticket-kmnp4627.1@helpdesk.example.org",
    references=["ticket-kmnp4627.1@helpdesk.example.org"], html=True,
    text_contains=["the printer is working again after the firmware update",
                   "spare drum unit"])

# ---------------------------------------------------------------------------
# 21 Gmail reply: attribution line wrapped inside the address, 3 References,
#    Message-IDs with "+" "=" "_" characters
add("21_gmail_reply.eml", """\
MIME-Version: 1.0
References: <ticket-wxyz5273.1@helpdesk.example.org>
 <CAGx9vL=Q8d+Y3k_pT1mXw@mail.gmail.example>
 <ticket-wxyz5273.2@helpdesk.example.org>
In-Reply-To: <ticket-wxyz5273.2@helpdesk.example.org>
From: Priya Raman <priya.raman@example.com>
Date: Mon, 2 Nov 2026 11:31:07 +0530
Message-ID: <CAH+w=7Nq3_Zr0b-8uJ2vKp=9aQ@mail.gmail.example>
Subject: Re: VPN drops every 10 minutes [#wxyz5273]
To: Support Team <support@example.org>
Content-Type: multipart/alternative; boundary="000000000000a1b2c3d4e5f60708"

--000000000000a1b2c3d4e5f60708
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

Hi,

It still drops, but now every 30 minutes instead of 10 =E2=80=93 progress!

Priya

On Mon, 2 Nov 2026 at 10:00, Support Team <support@example.org>
wrote:

> Hello Priya,
>
> please install client version 4.2 and let us know whether the VPN
> still disconnects.
>
> --
> Support Team
>

--000000000000a1b2c3d4e5f60708
Content-Type: text/html; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

<div dir=3D"ltr">Hi,<div><br></div><div>It still drops, but now every 30 m=
inutes instead of 10 =E2=80=93 progress!</div><div><br></div><div>Priya</di=
v></div><br><div class=3D"gmail_quote"><div dir=3D"ltr" class=3D"gmail_attr=
">On Mon, 2 Nov 2026 at 10:00, Support Team &lt;<a href=3D"mailto:support@e=
xample.org">support@example.org</a>&gt; wrote:<br></div><blockquote class=
=3D"gmail_quote" style=3D"margin:0px 0px 0px 0.8ex;border-left:1px solid rg=
b(204,204,204);padding-left:1ex">Hello Priya,<br><br>please install client =
version 4.2 and let us know whether the VPN still disconnects.<br></blockqu=
ote></div>

--000000000000a1b2c3d4e5f60708--
""", from_="priya.raman@example.com", from_name="Priya Raman",
    subject="Re: VPN drops every 10 minutes [#wxyz5273]",
    message_id="CAH+w=7Nq3_Zr0b-8uJ2vKp=9aQ@mail.gmail.example",
    in_reply_to="ticket-wxyz5273.2@helpdesk.example.org",
    references=["ticket-wxyz5273.1@helpdesk.example.org",
                "CAGx9vL=Q8d+Y3k_pT1mXw@mail.gmail.example",
                "ticket-wxyz5273.2@helpdesk.example.org"],
    html=True, text_contains=["now every 30 minutes instead of 10 \u2013 progress!"])

# ---------------------------------------------------------------------------
# 22 out-of-office with Auto-Submitted: auto-replied
add("22_auto_reply_auto_submitted.eml", """\
From: Marco Rossi <marco.rossi@example.com>
To: Support <support@example.org>
Subject: Out of office
Date: Thu, 5 Nov 2026 14:00:00 +0100
Message-ID: <ooo-20261105-1@example.com>
In-Reply-To: <ticket-hjkl5326.1@helpdesk.example.org>
References: <ticket-hjkl5326.1@helpdesk.example.org>
Auto-Submitted: auto-replied
X-Auto-Response-Suppress: All
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

I am out of the office until Monday 16 November 2026 with limited access
to email. For urgent matters please contact my colleague Giulia.
""", from_="marco.rossi@example.com", from_name="Marco Rossi", subject="Out of office",
    message_id="ooo-20261105-1@example.com",
    in_reply_to="ticket-hjkl5326.1@helpdesk.example.org",
    references=["ticket-hjkl5326.1@helpdesk.example.org"],
    text_contains=["out of the office until Monday 16 November 2026"], auto="auto-reply")

# 23 auto-reply recognisable only by X-Autoreply / Precedence: auto_reply
add("23_auto_reply_x_autoreply.eml", """\
From: Example Logistics <info@logistics.example.net>
To: support@example.org
Subject: Re: Invoice 2026-118 [#hjkl5326]
Date: Thu, 5 Nov 2026 14:05:00 +0100
Message-ID: <autoresp-9f8e7d@logistics.example.net>
X-Autoreply: yes
Precedence: auto_reply
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Thank you for your message. We have received it and will get back to
you within two business days.
""", from_="info@logistics.example.net", from_name="Example Logistics",
    subject="Re: Invoice 2026-118 [#hjkl5326]",
    message_id="autoresp-9f8e7d@logistics.example.net",
    text_contains=["within two business days"], auto="auto-reply")

# ---------------------------------------------------------------------------
# 24 Postfix-style DSN: multipart/report with delivery-status and headers part;
#    From uses the old "addr (Comment)" form and it also says Auto-Submitted.
add("24_bounce_dsn.eml", """\
Return-Path: <>
Received: by mx1.example.org (Postfix)
	id 4Nq3xY0abc; Wed,  4 Nov 2026 09:30:12 +0000 (UTC)
Date: Wed,  4 Nov 2026 09:30:12 +0000 (UTC)
From: MAILER-DAEMON@mx1.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: support@example.org
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4Nq3xY0abc.1793784612/mx1.example.org"
Content-Transfer-Encoding: 8bit
Message-Id: <20261104093012.4Nq3xY0abc@mx1.example.org>

This is a MIME-encapsulated message.

--4Nq3xY0abc.1793784612/mx1.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx1.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<ghost.user@example.net>: host mx.example.net[192.0.2.25] said: 550 5.1.1
    <ghost.user@example.net>: Recipient address rejected: User unknown in
    virtual mailbox table (in reply to RCPT TO command)

--4Nq3xY0abc.1793784612/mx1.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx1.example.org
X-Postfix-Queue-ID: 4Nq3xY0abc
X-Postfix-Sender: rfc822; support@example.org
Arrival-Date: Wed,  4 Nov 2026 09:30:10 +0000 (UTC)

Final-Recipient: rfc822; ghost.user@example.net
Original-Recipient: rfc822;ghost.user@example.net
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 550 5.1.1 <ghost.user@example.net>: Recipient address
    rejected: User unknown in virtual mailbox table

--4Nq3xY0abc.1793784612/mx1.example.org
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <support@example.org>
Received: from helpdesk.example.org (helpdesk.example.org [192.0.2.10])
	by mx1.example.org (Postfix) with ESMTPS id 4Nq3xY0abc
	for <ghost.user@example.net>; Wed,  4 Nov 2026 09:30:10 +0000 (UTC)
From: Support <support@example.org>
To: ghost.user@example.net
Subject: Re: Password reset [#qrst6723]
Message-ID: <reply-qrst6723.3@helpdesk.example.org>
In-Reply-To: <CAFw1x2y3z@mail.example.net>
Date: Wed, 4 Nov 2026 09:30:09 +0000

--4Nq3xY0abc.1793784612/mx1.example.org--
""", from_="mailer-daemon@mx1.example.org", from_name="Mail Delivery System",
    subject="Undelivered Mail Returned to Sender",
    message_id="20261104093012.4Nq3xY0abc@mx1.example.org",
    text_contains=["could not\nbe delivered", "550 5.1.1", "User unknown"], auto="bounce")

# ---------------------------------------------------------------------------
# 25 mailing-list post (Google-Groups-like rewritten From, footer, List-* headers)
add("25_list_mail.eml", """\
From: "'Hannah Berg' via Product Users" <users@lists.example.net>
Reply-To: users@lists.example.net
Sender: users+bncBAABB@lists.example.net
To: Product Users <users@lists.example.net>
Cc: support@example.org
Subject: [users] Export to CSV loses leading zeros
Date: Thu, 5 Nov 2026 15:00:00 +0000
Message-ID: <list-post-0042@mail.example.com>
Precedence: list
Mailing-list: list users@lists.example.net; contact users+owners@lists.example.net
List-Id: Product Users Discussion <users.lists.example.net>
List-Post: <mailto:users@lists.example.net>
List-Archive: <https://lists.example.net/archive/users>
List-Unsubscribe: <mailto:users+unsubscribe@lists.example.net>,
 <https://lists.example.net/unsubscribe/users?u=42>
List-Unsubscribe-Post: List-Unsubscribe=One-Click
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8

When I export the customer table to CSV, postal codes like 01067 lose
the leading zero. Is there a setting for this?

Hannah

--
You received this message because you are subscribed to Product Users.
To unsubscribe, send an email to users+unsubscribe@lists.example.net.
""", from_="users@lists.example.net", from_name="'Hannah Berg' via Product Users",
    subject="[users] Export to CSV loses leading zeros",
    message_id="list-post-0042@mail.example.com",
    text_contains=["lose\nthe leading zero", "01067"], auto="list")

# ---------------------------------------------------------------------------
# 26a address headers that trip parsers
add("26a_bad_address_headers.eml", """\
From: =?utf-8?q?broken?= <@>
To: "unterminated <helpdesk@example.org>
Cc: Support <support@example.org>,, , "Lee, Ann" <ann.lee@example.com>, <>
Reply-To: undisclosed-recipients:;
Bcc: @example.org
Subject: Address headers from a broken mailer
Date: Fri, 6 Nov 2026 08:00:00 +0000
Message-ID: <bad-addr-1@mailer.example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

This message was generated by a mail merge tool with broken address
handling.
""", from_=None, from_name="broken", subject="Address headers from a broken mailer",
    message_id="bad-addr-1@mailer.example.com",
    text_contains=["broken address\nhandling"], defects=True)

# 26b impossible Date, Message-ID with spaces, bogus encoded-word charset,
#     body that claims quoted-printable but is not
add("26b_bad_date_msgid_charset.eml", """\
From: Ravi Kumar <ravi.kumar@example.com>
To: support@example.org
Subject: =?x-bogus?B?SGVsbG8=?= from the =?utf-8?Q?caf=C3=A9?= team
Date: Tue, 31 Feb 2026 25:61:00 +9999
Message-ID: <abc def 123@ex ample.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Our spreadsheet formula total=SUM(A1:A9) returns =ERR in your viewer,
and 2+2=4 is shown as a broken character.
""", from_="ravi.kumar@example.com", from_name="Ravi Kumar",
    subject="Hello from the café team", message_id="abc def 123@ex ample.com",
    text_contains=["formula total=SUM(A1:A9) returns", "in your viewer"], defects=True)

# 26c one header line > 2000 chars (an unfolded References) and NUL bytes in
#     Subject (must be dropped: expected subject has no NUL) and X-Mailer
refs26 = [f"thread-{n:03d}.{(n * 7919) % 100000:05d}@helpdesk.example.org"
          for n in range(1, 61)]
long_refs = " ".join(f"<{r}>" for r in refs26)
assert len(long_refs) > 2000
long_subject = ("Re: " * 12 + "Fwd: " * 6 + "Monthly report problem").strip()
add("26c_long_header_nul.eml",
    b"From: Nina Petrova <nina@example.net>\n"
    b"To: support@example.org\n"
    + f"Subject: {long_subject}\n".replace("Monthly", "Monthly\x00").encode("ascii")
    + b"Date: Fri, 6 Nov 2026 09:00:00 +0300\n"
    b"Message-ID: <long-refs-1@example.net>\n"
    + f"In-Reply-To: <{refs26[-1]}>\n".encode("ascii")
    + f"References: {long_refs}\n".encode("ascii")
    + b"X-Mailer: Acme\x00Mail 2.1\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=us-ascii\n"
    b"\n"
    b"The monthly report still shows last month's numbers.\n",
    from_="nina@example.net", from_name="Nina Petrova", subject=long_subject,
    message_id="long-refs-1@example.net", in_reply_to=refs26[-1], references=refs26,
    text_contains=["monthly report still shows"], defects=True)

# ---------------------------------------------------------------------------
# 27 reply with only the ticket token to thread on
add("27_ticket_token_no_threading.eml", """\
From: Grace Okafor <grace.okafor@example.com>
To: support@example.org
Subject: Re: Printer jams [#abcd2345]
Date: Fri, 6 Nov 2026 10:00:00 +0100
Message-ID: <token-only-1@example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

It jammed again this morning, same tray.

Grace
""", from_="grace.okafor@example.com", from_name="Grace Okafor",
    subject="Re: Printer jams [#abcd2345]", message_id="token-only-1@example.com",
    text_contains=["jammed again this morning"])

# ---------------------------------------------------------------------------
# 28 messy ids: comments, odd whitespace, mixed case, RFC 822-era In-Reply-To phrase
add("28_messy_references.eml", """\
From: Henrik Berg <henrik.berg@example.net>
To: support@example.org
Subject: Re: Licence key not accepted
Date: Fri, 6 Nov 2026 11:00:00 +0100
Message-ID:   <Reply.7F3A@Client.Example.Net>  (generated by client)
In-Reply-To: Your message of "Thu, 5 Nov 2026 16:00:00 +0000"
	<Mixed.Case.ID@Example.Org>
References: <A1B2c3D4@Mail.Example.COM>  (original ticket)
 <b7@x.example.com>
	<Mixed.Case.ID@Example.Org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

The licence key is still rejected with "checksum mismatch".
""", from_="henrik.berg@example.net", from_name="Henrik Berg",
    subject="Re: Licence key not accepted", message_id="Reply.7F3A@Client.Example.Net",
    in_reply_to="Mixed.Case.ID@Example.Org",
    references=["A1B2c3D4@Mail.Example.COM", "b7@x.example.com", "Mixed.Case.ID@Example.Org"],
    text_contains=['still rejected with "checksum mismatch"'])

# ---------------------------------------------------------------------------
# 29 calendar invitation (text/calendar alternative + application/ics attachment)
ics = """\
BEGIN:VCALENDAR
PRODID:-//Example Corp//Calendar 1.0//EN
VERSION:2.0
CALSCALE:GREGORIAN
METHOD:REQUEST
BEGIN:VEVENT
DTSTART:20261105T140000Z
DTEND:20261105T143000Z
DTSTAMP:20261102T120000Z
ORGANIZER;CN=Lena Fischer:mailto:lena.fischer@example.com
UID:7kq2m9v4r1@calendar.example.com
ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=
 TRUE;CN=support@example.org;X-NUM-GUESTS=0:mailto:support@example.org
SUMMARY:Onboarding call
DESCRIPTION:Walkthrough of the new ticket workflow.\\nAgenda: queues\\, macros
LOCATION:https://meet.example.com/abc-defg-hij
SEQUENCE:0
STATUS:CONFIRMED
END:VEVENT
END:VCALENDAR
"""
ics_crlf = ics.replace("\n", "\r\n").encode("ascii")
add("29_calendar_invite.eml", f"""\
From: Lena Fischer <lena.fischer@example.com>
To: support@example.org
Subject: Invitation: Onboarding call @ Thu 5 Nov 2026 15:00 - 15:30 (CET)
 (support@example.org)
Date: Mon, 2 Nov 2026 12:00:00 +0000
Message-ID: <invite-7kq2m9v4r1@calendar.example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="000000000000mixed29"

--000000000000mixed29
Content-Type: multipart/alternative; boundary="000000000000alt29"

--000000000000alt29
Content-Type: text/plain; charset="UTF-8"; format=flowed; delsp=yes

You have been invited to the following event.

Onboarding call
Thursday 5 Nov 2026 15:00 - 15:30 (Central European Time)
Joining: https://meet.example.com/abc-defg-hij

--000000000000alt29
Content-Type: text/html; charset="UTF-8"

<p>You have been invited to the following event.</p>
<h2>Onboarding call</h2><p>Thursday 5 Nov 2026 15:00 &ndash; 15:30</p>

--000000000000alt29
Content-Type: text/calendar; charset="UTF-8"; method=REQUEST
Content-Transfer-Encoding: 7bit

{ics}
--000000000000alt29--

--000000000000mixed29
Content-Type: application/ics; name="invite.ics"
Content-Disposition: attachment; filename="invite.ics"
Content-Transfer-Encoding: base64

{b64(ics_crlf)}
--000000000000mixed29--
""", from_="lena.fischer@example.com", from_name="Lena Fischer",
    subject="Invitation: Onboarding call @ Thu 5 Nov 2026 15:00 - 15:30 (CET) "
            "(support@example.org)",
    message_id="invite-7kq2m9v4r1@calendar.example.com", html=True,
    text_contains=["You have been invited to the following event.", "Onboarding call"],
    attachments=[("invite.ics", len(ics_crlf))])

# ---------------------------------------------------------------------------
# 30 inline image referenced by cid: inside multipart/related (Outlook layout)
png = tiny_png()
html30 = ('<html><body><p>The error dialog looks like this:</p>'
          '<p><img width="120" height="120" id="Picture_x0020_1" '
          'src="cid:image001.png@01DB2E5A.3C4D5E60" alt="Error dialog"></p>'
          "<p>It appears when I click &quot;Save&quot;.</p></body></html>\n").encode("ascii")
add("30_inline_cid_image.eml", f"""\
From: Yusuf Demir <yusuf.demir@example.com>
To: support@example.org
Subject: Screenshot of the error
Date: Fri, 6 Nov 2026 12:00:00 +0300
Message-ID: <cid-inline-1@example.com>
MIME-Version: 1.0
Content-Type: multipart/related;
	boundary="_005_related30_";
	type="multipart/alternative"

--_005_related30_
Content-Type: multipart/alternative; boundary="_000_alt30_"

--_000_alt30_
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

The error dialog looks like this:

[cid:image001.png@01DB2E5A.3C4D5E60]

It appears when I click "Save".

--_000_alt30_
Content-Type: text/html; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

{qp(html30)}
--_000_alt30_--

--_005_related30_
Content-Type: image/png; name="image001.png"
Content-Description: image001.png
Content-Disposition: inline; filename="image001.png"; size={len(png)};
	creation-date="Fri, 06 Nov 2026 09:00:00 GMT"
Content-ID: <image001.png@01DB2E5A.3C4D5E60>
Content-Transfer-Encoding: base64

{b64(png)}
--_005_related30_--
""", from_="yusuf.demir@example.com", from_name="Yusuf Demir",
    subject="Screenshot of the error", message_id="cid-inline-1@example.com", html=True,
    text_contains=["The error dialog looks like this:", 'It appears when I click "Save".'],
    attachments=[("image001.png", len(png))])

# ---------------------------------------------------------------------------
# 31 CRLF line endings throughout, ~200 KB base64 attachment (deterministic)
blob = random.Random(42).randbytes(200 * 1024)
msg31 = f"""\
From: Backup Appliance <appliance@example.com>
To: support@example.org
Subject: Diagnostic dump from appliance SN 4471-22
Date: Fri, 6 Nov 2026 13:00:00 +0000
Message-ID: <diag-dump-4471-22@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="==diag31=="

--==diag31==
Content-Type: text/plain; charset=us-ascii

Attached is the diagnostic dump requested in your last message.
Serial number: 4471-22

--==diag31==
Content-Type: application/octet-stream; name="diag-4471-22.bin"
Content-Disposition: attachment; filename="diag-4471-22.bin"
Content-Transfer-Encoding: base64

{b64(blob)}
--==diag31==--
"""
add("31_crlf_large_attachment.eml", msg31.replace("\n", "\r\n").encode("ascii"),
    from_="appliance@example.com", from_name="Backup Appliance",
    subject="Diagnostic dump from appliance SN 4471-22",
    message_id="diag-dump-4471-22@example.com",
    text_contains=["Attached is the diagnostic dump", "Serial number: 4471-22"],
    attachments=[("diag-4471-22.bin", len(blob))])


def main() -> None:
    for old in HERE.glob("*.eml"):
        if old.name not in FILES:
            old.unlink()
    for name, raw in FILES.items():
        if name != "31_crlf_large_attachment.eml":
            assert b"\r" not in raw, name
        (HERE / name).write_bytes(raw)
    (HERE / "expected.json").write_text(
        json.dumps(EXPECTED, indent=2, ensure_ascii=False, sort_keys=False) + "\n",
        encoding="utf-8", newline="\n")
    print(f"wrote {len(FILES)} messages to {HERE}")


if __name__ == "__main__":
    main()
