"""helpdesk.mail.html: hostile mail HTML made inert, and quote folding (no Qt)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from helpdesk.mail.html import SanitizedHtml, quote_fold, sanitize

EVIL = "evil.example"


class _Fetchables(HTMLParser):
    """Every tag, attribute and CSS url() of a sanitised fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend((tag, name, value or "") for name, value in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(fragment: str) -> _Fetchables:
    p = _Fetchables()
    p.feed(fragment)
    p.close()
    return p


def url_attrs(fragment: str) -> list[str]:
    """Values of every attribute that a renderer could fetch or navigate to."""
    return [v for _, name, v in parse(fragment).attrs if name in {"src", "href", "srcset",
            "background", "poster", "data", "action", "formaction", "content", "style"}]


def assert_inert(result: SanitizedHtml, *, host: str = EVIL) -> None:
    out = result.html
    lowered = out.lower()
    for needle in ("<script", "<iframe", "<object", "<embed", "<form", "<input", "<button",
                   "<link", "<meta", "<base", "<svg", "<style", "javascript:", "vbscript:",
                   "data:", "expression(", "@import", "url("):
        assert needle not in lowered, (needle, out)
    p = parse(out)
    assert not [a for a in p.attrs if a[1].startswith("on")], out
    for value in url_attrs(out):
        assert host not in value, (value, out)
    assert set(p.tags) <= {"a", "b", "div", "p", "span", "img", "table", "tbody", "tr", "td",
                           "i", "em", "strong", "br", "font", "ul", "li"}, p.tags


# ------------------------------------------------------------------------- hostile

HOSTILE = {
    "script": "<p>a</p><script>alert(1)</script><p>b</p>",
    "onerror": "<img src=x onerror=alert(1)>",
    "onerror_upper": '<IMG SRC="x" ONERROR="alert(1)" onMouseOver=alert(2)>',
    "tracker": '<img src="http://tracker.evil.example/p.gif" width=1 height=1>',
    "tracker_protocol_relative": '<img src="//tracker.evil.example/p.gif">',
    "css_attr": '<div style="background:url(http://evil.example/x)">d</div>',
    "css_block": "<style>@import url(http://evil.example/a.css); "
                 "body{background:url('https://evil.example/b')}</style><p>text</p>",
    "css_expression": '<div style="width: expression(alert(1)); color: red">d</div>',
    "css_escaped": r'<div style="background: u\72l(http://evil.example/x)">d</div>',
    "css_entity": '<div style="background: &#117;rl(http://evil.example/x)">d</div>',
    "css_comment": '<div style="background: ur/**/l(http://evil.example/x)">d</div>',
    "css_behavior": '<div style="behavior: url(http://evil.example/x.htc)">d</div>',
    "js_link": '<a href="javascript:alert(1)">x</a>',
    "js_link_mixed_case": '<a href="JaVaScRiPt:alert(1)">x</a>',
    "js_link_entity": '<a href="&#106;avascript:alert(1)">x</a>',
    "js_link_hex_entity": '<a href="&#x6A;&#x61;vascript&#x3A;alert(1)">x</a>',
    "js_link_tab": '<a href="java\tscript:alert(1)">x</a>',
    "js_link_newline": '<a href="java\nscript:alert(1)">x</a>',
    "js_link_leading_space": '<a href="  \x01javascript:alert(1)">x</a>',
    "vbscript": '<a href="vbscript:msgbox(1)">x</a>',
    "data_link": '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "data_image": '<img src="data:image/png;base64,iVBORw0KGgo=">',
    "js_img": '<img src="JaVaScRiPt:alert(1)">',
    "form": '<form action="http://evil.example"><input name=p>'
            '<button formaction="http://evil.example/b">Go</button></form>',
    "iframe": '<iframe src="http://evil.example/frame"></iframe>',
    "iframe_srcdoc": '<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>',
    "object": '<object data="http://evil.example/o.swf"><param name=x value=y></object>',
    "embed": '<embed src="http://evil.example/e.swf">',
    "svg_script": "<svg><script>alert(1)</script></svg>",
    "svg_image": '<svg><image href="http://evil.example/s.png"/></svg>',
    "svg_onload": "<svg onload=alert(1)><circle r=1 /></svg>",
    "meta_refresh": '<meta http-equiv="refresh" content="0;url=http://evil.example">',
    "link_css": "<link rel=stylesheet href=http://evil.example/c.css>",
    "base": "<base href=http://evil.example/><a href=x>relative</a>",
    "background_attr": '<table background="http://evil.example/t.png"><tr>'
                       '<td background="http://evil.example/td.png">c</td></tr></table>',
    "body_background": '<body background="http://evil.example/bg.png">hi</body>',
    "srcset": '<img srcset="http://evil.example/1.png 1x, http://evil.example/2.png 2x">',
    "video": '<video poster="http://evil.example/p.jpg" src="http://evil.example/v.mp4">'
             "<source src=http://evil.example/v.webm></video>",
    "input_image": '<input type=image src="http://evil.example/i.png">',
    "file_img": '<img src="file:///etc/passwd"><img src="\\\\evil.example\\share\\x.png">',
    "mutation_xss": "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "noscript": '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    "comment": "<!--><img src=x onerror=alert(1)>-->",
    "unclosed": '<img src="http://evil.example/x.gif',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_html_is_inert(name: str) -> None:
    assert_inert(sanitize(HOSTILE[name]))


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_html_is_inert_even_with_remote_allowed(name: str) -> None:
    result = sanitize(HOSTILE[name], allow_remote=True)
    if name in ("tracker", "tracker_protocol_relative"):
        return  # the only thing allow_remote is for: checked below
    assert_inert(result)


def test_all_hostile_cases_together() -> None:
    result = sanitize("\n".join(HOSTILE.values()))
    assert_inert(result)
    assert "alert" not in result.html
    assert result.blocked_remote >= 20


def test_script_removed_with_content() -> None:
    out = sanitize(HOSTILE["script"]).html
    assert out == "<p>a</p><p>b</p>"


def test_tracking_pixel_blocked_and_counted() -> None:
    result = sanitize(HOSTILE["tracker"])
    assert result.html == ""
    assert result.blocked_remote == 1
    assert result.remote_image_urls == ["http://tracker.evil.example/p.gif"]


def test_blocked_image_keeps_alt_text_as_inert_placeholder() -> None:
    result = sanitize('<p><img src="https://cdn.evil.example/logo.png" alt="ACME logo"></p>')
    assert "[ACME logo]" in result.html
    assert "<img" not in result.html
    assert result.blocked_remote == 1


def test_css_urls_removed_but_harmless_styles_kept() -> None:
    result = sanitize(
        '<div style="color: #123456; background:url(http://evil.example/x); '
        "font-family: 'Segoe UI', Arial; background-image: url(https://evil.example/y); "
        'width: expression(alert(1)); background-color: rgb(1, 2, 3)">d</div>'
    )
    assert result.html == (
        "<div style=\"color: #123456; font-family: 'Segoe UI', Arial; "
        'background-color: rgb(1, 2, 3)">d</div>'
    )
    assert result.blocked_remote == 2


def test_style_block_dropped_and_counted() -> None:
    result = sanitize(HOSTILE["css_block"])
    assert result.html == "<p>text</p>"
    assert result.blocked_remote == 2


@pytest.mark.parametrize("name", [n for n in HOSTILE if n.startswith(("js_link", "vbscript",
                                                                        "data_link"))])
def test_script_links_lose_their_href(name: str) -> None:
    result = sanitize(HOSTILE[name])
    assert "href" not in result.html
    assert result.links == []
    assert ">x</a>" in result.html  # the text stays, as a dead link


def test_forms_and_embedded_content_removed() -> None:
    for name in ("form", "iframe", "iframe_srcdoc", "object", "embed", "svg_script",
                 "svg_image", "meta_refresh", "link_css", "base", "input_image"):
        out = sanitize(HOSTILE[name]).html
        assert EVIL not in out and "alert" not in out, (name, out)


def test_base_does_not_make_relative_links_absolute() -> None:
    out = sanitize(HOSTILE["base"]).html
    assert "href" not in out
    assert "relative" in out


def test_links_keep_safe_schemes_with_rel_and_real_target() -> None:
    result = sanitize(
        '<a href="https://ok.example/a?b=1&amp;c=2" title="lies">Docs</a> '
        '<a href="mailto:help@ok.example">write to us</a> '
        '<a href="ftp://ok.example/f">ftp</a> <a href="/relative">rel</a>'
    )
    assert result.links == [
        ("Docs", "https://ok.example/a?b=1&c=2"),
        ("write to us", "mailto:help@ok.example"),
    ]
    rels = [v for t, n, v in parse(result.html).attrs if t == "a" and n == "rel"]
    assert rels == ["noopener noreferrer"] * 4
    assert 'title="https://ok.example/a?b=1&amp;c=2"' in result.html  # real target, not "lies"
    assert "lies" not in result.html
    assert "ftp:" not in result.html and "/relative" not in result.html


def test_phishing_link_shows_real_host() -> None:
    result = sanitize('<a href="http://evil.example/login">https://bank.example/login</a>')
    assert result.links == [("https://bank.example/login", "http://evil.example/login")]
    visible = "".join(parse(result.html).text)
    assert visible == "https://bank.example/login [evil.example]"


@pytest.mark.parametrize(
    ("markup", "warning"),
    [
        ('<a href="https://bank.example@evil.example/">https://bank.example/</a>', "evil.example"),
        ('<a href="https://evil.example/">Log in at www.bank.example today</a>', "evil.example"),
        ('<a href="https://evil.example/">bank.example</a>', "evil.example"),
        ('<a href="https://evil.example:8443/">https://bank.example/</a>', "evil.example:8443"),
        ('<a href="https://b\u00e4nk.example/">https://bank.example</a>', "xn--bnk-qla.example"),
        ('<a href="mailto:phish@evil.example">support@bank.example</a>', "phish@evil.example"),
        ('<a href="https://evil.example/">support@bank.example</a>', "evil.example"),
        ('<a href="http://evil.example/"><b>https://</b><i>bank.example</i></a>', "evil.example"),
    ],
)
def test_misleading_link_text_is_annotated(markup: str, warning: str) -> None:
    visible = "".join(parse(sanitize(markup).html).text)
    assert visible.endswith(f" [{warning}]"), visible


@pytest.mark.parametrize(
    "markup",
    [
        '<a href="https://bank.example/login">https://bank.example/</a>',
        '<a href="https://www.bank.example/login">bank.example</a>',
        '<a href="https://bank.example/">www.bank.example</a>',
        '<a href="https://click.example/track?id=1">Read more</a>',
        '<a href="mailto:Help@Bank.example?subject=x">help@bank.example</a>',
        '<a href="https://bank.example/"><img src="cid:logo" alt="bank.example"></a>',
    ],
)
def test_honest_link_text_is_left_alone(markup: str) -> None:
    assert "[" not in "".join(parse(sanitize(markup).html).text)


def test_cid_images_kept_and_rewritable() -> None:
    result = sanitize('<img src="cid:logo@acme" alt="Logo" width="120"><img src="CID:<x@y>">')
    assert result.html == '<img src="cid:logo@acme" alt="Logo" width="120"><img src="cid:x@y">'
    assert result.blocked_remote == 0
    other = sanitize('<img src="cid:logo@acme">', cid_scheme="helpdesk-cid")
    assert other.html == '<img src="helpdesk-cid:logo@acme">'
    with pytest.raises(ValueError):
        sanitize("<p>x</p>", cid_scheme="bad scheme")


def test_allow_remote_keeps_https_images_but_nothing_else() -> None:
    markup = (
        '<img src="https://cdn.example/a.png" alt="a"><img src="http://cdn.example/b.png">'
        '<img src="ftp://cdn.example/c.png"><img src="file:///etc/passwd">'
        "<script>alert(1)</script><img src=x onerror=alert(1)>"
        '<div style="background:url(https://cdn.example/bg.png)">d</div>'
    )
    result = sanitize(markup, allow_remote=True)
    srcs = [v for t, n, v in parse(result.html).attrs if n == "src"]
    assert srcs == ["https://cdn.example/a.png", "http://cdn.example/b.png"]
    assert "alert" not in result.html and "onerror" not in result.html
    assert "url(" not in result.html
    assert result.blocked_remote == 2  # the ftp image and the CSS background
    blocked = sanitize(markup)
    assert [v for t, n, v in parse(blocked.html).attrs if n == "src"] == []
    assert blocked.blocked_remote == 4


def test_text_is_escaped_not_interpreted() -> None:
    out = sanitize("<p>1 &lt; 2 &amp;&amp; &lt;b&gt;not bold&lt;/b&gt; \u00a9</p>").html
    assert out == "<p>1 &lt; 2 &amp;&amp; &lt;b&gt;not bold&lt;/b&gt; \u00a9</p>"


def test_full_document_reduced_to_body_content() -> None:
    doc = (
        "<!DOCTYPE html><html><head><title>Newsletter</title>"
        '<meta charset="utf-8"><style>p{color:red}</style></head>'
        '<body bgcolor="#eee"><table width="600" cellpadding="4"><tr>'
        '<td bgcolor="#ffffff" style="font-size: 14px">Hello <b>there</b></td>'
        "</tr></table></body></html>"
    )
    out = sanitize(doc).html
    assert out == (
        '<table width="600" cellpadding="4"><tbody><tr>'
        '<td bgcolor="#ffffff" style="font-size: 14px">Hello <b>there</b></td>'
        "</tr></tbody></table>"
    )


def test_attribute_values_are_validated() -> None:
    out = sanitize('<td bgcolor="red;background:url(x)" width="100%" colspan="2x">c</td>'
                   '<font color="#ff0000" face="Arial, sans-serif" size="3">f</font>').html
    assert "bgcolor" not in out and "colspan" not in out
    assert '<font color="#ff0000" face="Arial, sans-serif" size="3">f</font>' in out


def test_empty_and_whitespace() -> None:
    assert sanitize("") == SanitizedHtml(html="")
    assert sanitize("   \n").html == ""


def test_big_newsletter_is_fast_enough() -> None:
    row = ('<tr><td style="color:#333"><a href="https://click.example/?id=1">Read more at '
           'https://shop.example</a><img src="http://t.example/p.gif" width=1 height=1></td></tr>')
    result = sanitize(f"<table>{row * 500}</table>")
    assert result.blocked_remote == 500
    assert len(result.links) == 500
    assert all(h == "https://click.example/?id=1" for _, h in result.links)


def test_sanitize_is_qt_free() -> None:
    code = ("import sys, helpdesk.mail.html as h; h.sanitize('<p>x</p>'); "
            "sys.exit('PySide6' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ------------------------------------------------------------------------- quote_fold

GMAIL = (
    "Thanks, that fixed it.\n"
    "\n"
    "On Mon, 1 Jan 2024 at 10:00, Alice Example <alice@example.com> wrote:\n"
    "> Could you try restarting the router?\n"
    ">\n"
    "> > Earlier: it is broken\n"
    "\n"
    "> Alice\n"
)

GMAIL_WRAPPED = (
    "Yes.\r\n"
    "\r\n"
    "On Tue, Feb 6, 2024 at 9:15 AM Support Team of a Long Company Name <\r\n"
    "support@long-company.example> wrote:\r\n"
    "\r\n"
    "> Is it working now?\r\n"
)

OUTLOOK = (
    "Hi Bob,\n"
    "please see below.\n"
    "\n"
    "-----Original Message-----\n"
    "From: Alice <alice@example.com>\n"
    "Sent: Monday, January 1, 2024 10:00 AM\n"
    "To: Bob\n"
    "Subject: Printer\n"
    "\n"
    "The printer is on fire.\n"
)

OUTLOOK_RULE = (
    "Done.\n"
    "\n"
    "________________________________\n"
    "From: Alice <alice@example.com>\n"
    "Sent: Monday, January 1, 2024 10:00\n"
    "To: Bob\n"
    "\n"
    "Old text\n"
)


def _roundtrip(text: str) -> list[tuple[str, bool]]:
    segments = quote_fold(text)
    assert "".join(s for s, _ in segments) == text
    assert all(a[1] != b[1] for a, b in itertools.pairwise(segments))
    return segments


def test_quote_fold_gmail() -> None:
    assert _roundtrip(GMAIL) == [
        ("Thanks, that fixed it.\n\n", False),
        (GMAIL.split("\n\n", 1)[1], True),
    ]


def test_quote_fold_gmail_wrapped_attribution() -> None:
    segments = _roundtrip(GMAIL_WRAPPED)
    assert segments[0] == ("Yes.\r\n\r\n", False)
    assert segments[1][1] is True
    assert segments[1][0].startswith("On Tue") and segments[1][0].endswith("working now?\r\n")


def test_quote_fold_outlook() -> None:
    segments = _roundtrip(OUTLOOK)
    assert segments == [
        ("Hi Bob,\nplease see below.\n\n", False),
        (OUTLOOK[OUTLOOK.index("-----Original"):], True),
    ]


def test_quote_fold_outlook_rule_and_header_block() -> None:
    segments = _roundtrip(OUTLOOK_RULE)
    assert segments == [("Done.\n\n", False), (OUTLOOK_RULE[7:], True)]


def test_quote_fold_interleaved_reply() -> None:
    text = "> question one\n\nanswer one\n\n> question two\n> more\nanswer two\n-- \nBob\n"
    assert _roundtrip(text) == [
        ("> question one\n", True),
        ("\nanswer one\n\n", False),
        ("> question two\n> more\n", True),
        ("answer two\n-- \nBob\n", False),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "On Monday I wrote: the report is ready.\nSee attached.\n",
        "On Monday Alice wrote:\nno quote follows this line\n",
        "From: Alice\nSent: Monday\nSubject: a forwarded mail at the very top\n\nbody\n",
        " > space-stuffed, not a quote (format=flowed)\n",
        "No quotes at all.",
    ],
)
def test_quote_fold_leaves_unquoted_text_alone(text: str) -> None:
    assert _roundtrip(text) == [(text, False)]


def test_quote_fold_empty() -> None:
    assert quote_fold("") == []


def test_html_quote_cut_finds_the_common_reply_layouts() -> None:
    from helpdesk.mail.html import html_quote_cut

    outlook_web = ('<div>Done.</div><hr style="display:inline-block;width:98%">'
                   '<div id="divRplyFwdMsg" dir="ltr"><b>From:</b> Alice</div><div>old</div>')
    outlook_desktop = ('<p class="MsoNormal">Done.</p><div style="border:none;border-top:solid '
                       '#E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm"><p><b>From:</b> Alice</p></div>')
    multiline = "<p>\nline one\n</p>\n\n<blockquote  type=\"cite\">old</blockquote>"
    for html, marker in ((outlook_web, '<div id="divRplyFwdMsg"'),
                         (outlook_desktop, '<div style="border:none'),
                         (multiline, "<blockquote")):
        cut = html_quote_cut(html)
        assert cut is not None and html[cut:].startswith(marker), html
    assert html_quote_cut("<p>plain</p><blockquote>not a cite</blockquote>") is None
    assert html_quote_cut("<div class=gmail_quote>x") is None  # nothing before it
