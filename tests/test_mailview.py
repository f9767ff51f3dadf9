"""ui.mailview.MailView: shows hostile mail without a single network request."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPoint, Qt, QUrl
from PySide6.QtGui import QColor, QImage, QPainter, QTextCursor, QTextDocument
from pytestqt.qtbot import QtBot

from ui.mailview import MailView

# ------------------------------------------------------------------ fixtures


@dataclass
class Recorder:
    """A loopback HTTP server that records every connection and request."""

    url: str = ""
    hostport: str = ""
    connections: list[Any] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            with rec.lock:
                rec.requests.append(self.path)
            body = b"x"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_HEAD = do_POST = _record

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def process_request(self, request: Any, client_address: Any) -> None:
            with rec.lock:
                rec.connections.append(client_address)
            super().process_request(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    rec.hostport = f"127.0.0.1:{port}"
    rec.url = f"http://{rec.hostport}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="recorder", daemon=True
    )
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def view(qtbot: QtBot) -> MailView:
    widget = MailView()
    qtbot.addWidget(widget)
    widget.resize(640, 480)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


# ------------------------------------------------------------------ helpers


def png(width: int, height: int, color: str = "red") -> bytes:
    image = QImage(width, height, QImage.Format.Format_ARGB32)
    image.fill(QColor(color))
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    assert image.save(buffer, "PNG")  # type: ignore[call-overload]
    buffer.close()
    return bytes(data.data())


def render_everything(qtbot: QtBot, view: MailView) -> None:
    """Lay out and paint the whole document (not only the visible part), so
    that every resource it references has been asked for."""
    doc = view.document()
    qtbot.waitUntil(lambda: doc.documentLayout().documentSize().height() > 0, timeout=5000)
    size = doc.documentLayout().documentSize().toSize()
    canvas = QImage(max(size.width(), 1), max(size.height(), 1), QImage.Format.Format_ARGB32)
    painter = QPainter(canvas)
    doc.drawContents(painter)
    painter.end()
    view.grab()  # and the widget itself, through its own paint path


def image_resource(view: MailView, url: str) -> QImage:
    resource = view.document().resource(QTextDocument.ResourceType.ImageResource, QUrl(url))
    assert isinstance(resource, QImage), resource
    return resource


def assert_no_traffic(recorder: Recorder) -> None:
    """Zero requests so far -- and a control request proves the recorder works."""
    with recorder.lock:
        assert recorder.connections == [] and recorder.requests == []
    with urllib.request.urlopen(f"{recorder.url}/control", timeout=5) as response:
        assert response.read() == b"x"
    with recorder.lock:
        assert recorder.requests == ["/control"]
        assert len(recorder.connections) == 1


def attributes(fragment: str) -> list[tuple[str, str, str]]:
    """(tag, attribute, value) of every attribute in an HTML fragment."""
    found: list[tuple[str, str, str]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.extend((tag, name, value or "") for name, value in attrs)

    collector = Collector(convert_charrefs=True)
    collector.feed(fragment)
    collector.close()
    return found


def click_text(qtbot: QtBot, view: MailView, needle: str) -> None:
    """A real mouse click in the middle of the first occurrence of ``needle``."""
    found = view.document().find(needle)
    assert not found.isNull(), needle
    cursor = QTextCursor(view.document())
    cursor.setPosition(found.selectionStart() + len(needle) // 2)
    rect = view.cursorRect(cursor)
    pos = QPoint(rect.x() + 1, rect.center().y())
    assert view.anchorAt(pos), f"no link under {needle!r}"
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def hostile_newsletter(base: str, hostport: str) -> str:
    """Every way we know of for HTML to reference a remote resource."""
    return f"""<!DOCTYPE html>
<html><head>
<meta http-equiv="refresh" content="0;url={base}/refresh">
<base href="{base}/base/">
<link rel="stylesheet" type="text/css" href="{base}/link.css">
<link rel="preload" as="image" href="{base}/preload.png">
<link rel="icon" href="{base}/favicon.ico">
<style type="text/css">
  @import url({base}/import1.css);
  @import "{base}/import2.css";
  body {{ background-image: url('{base}/body-bg.png'); }}
  p {{ background: url({base}/p-bg.png) }}
  .x {{ behavior: url({base}/x.htc); }}
</style>
<script src="{base}/script.js"></script>
</head>
<body background="{base}/body-attr.png">
<h1 style="background-image: url({base}/h1.png)">Big <b>SALE</b></h1>
<img src="cid:logo@acme" alt="ACME">
<img src="{base}/tracker.gif" width="1" height="1">
<img src="//{hostport}/protocol-relative.gif" alt="pr">
<img src="relative.png" alt="relative">
<img src="x" srcset="{base}/srcset-1x.png 1x, {base}/srcset-2x.png 2x">
<img lowsrc="{base}/lowsrc.png" dynsrc="{base}/dynsrc.avi">
<img src="{base}/styled.png" style="content: url({base}/content.png)">
<picture><source srcset="{base}/source.webp"><img src="{base}/picture.png"></picture>
<table background="{base}/table.png" style="background: url({base}/table-style.png)">
<tr><td background="{base}/td.png">cell</td></tr></table>
<div style="background:url(&quot;{base}/entity.png&quot;)">entity</div>
<div style="background: u\\72l({base}/escaped.png)">escaped</div>
<video poster="{base}/poster.jpg" src="{base}/video.mp4"></video>
<audio src="{base}/audio.mp3"></audio>
<input type="image" src="{base}/input.png">
<iframe src="{base}/iframe.html"></iframe>
<object data="{base}/object.swf"></object>
<embed src="{base}/embed.swf">
<applet code="A" codebase="{base}/applet/"></applet>
<svg><image href="{base}/svg-image.png"/><image xlink:href="{base}/svg-xlink.png"/></svg>
<form action="{base}/form"><input name="p"><button>Send</button></form>
<p>Shop now at <a href="{base}/click?id=1">https://bank.example/offers</a>.</p>
</body></html>"""


# ------------------------------------------------------------------ tests


def test_hostile_newsletter_makes_no_network_request(
    qtbot: QtBot, view: MailView, recorder: Recorder
) -> None:
    view.show_message(
        hostile_newsletter(recorder.url, recorder.hostport),
        "plain fallback",
        {"<logo@acme>": png(3, 2)},
    )
    qtbot.waitUntil(lambda: "cid:logo@acme" in view.requested_urls, timeout=5000)
    render_everything(qtbot, view)

    assert view.requested_urls
    assert all(url.startswith("cid:") for url in view.requested_urls), view.requested_urls
    assert image_resource(view, "cid:logo@acme").size().toTuple() == (3, 2)
    assert view.sanitized is not None
    # The server's address survives only as the phishing link's (clickable) target.
    assert [v for _, name, v in attributes(view.sanitized.html) if recorder.hostport in v] == [
        f"{recorder.url}/click?id=1"
    ] * 2  # href and title
    assert [name for _, name, v in attributes(view.sanitized.html)
            if recorder.hostport in v] == ["href", "title"]
    assert view.remote_blocked >= 30
    text = view.toPlainText()
    assert "SALE" in text and "cell" in text
    assert f"https://bank.example/offers [{recorder.hostport}]" in text  # real target shown
    assert_no_traffic(recorder)


def test_allow_remote_still_never_fetches(
    qtbot: QtBot, view: MailView, recorder: Recorder
) -> None:
    view.show_message(
        hostile_newsletter(recorder.url, recorder.hostport),
        "",
        {"logo@acme": png(3, 2)},
        allow_remote=True,
    )
    render_everything(qtbot, view)
    remote = [u for u in view.requested_urls if not u.startswith("cid:")]
    # Only <img src> survives allow_remote, and the view only shows placeholders for it.
    assert remote and all(u.startswith(f"{recorder.url}/") for u in remote), remote
    assert {u.rsplit("/", 1)[1] for u in remote} <= {"tracker.gif", "styled.png",
                                                      "picture.png"}
    assert image_resource(view, f"{recorder.url}/tracker.gif").size().toTuple() == (1, 1)
    assert_no_traffic(recorder)


def test_remote_images_come_only_from_the_application(
    qtbot: QtBot, view: MailView, recorder: Recorder
) -> None:
    url = f"{recorder.url}/banner.png"
    view.remote_images = {url: png(5, 4)}
    view.show_message(f'<img src="{url}">', "", {})
    render_everything(qtbot, view)
    assert view.remote_blocked == 1 and view.requested_urls == []
    view.show_message(f'<img src="{url}">', "", {}, allow_remote=True)
    render_everything(qtbot, view)
    assert view.requested_urls == [url]
    assert view.remote_blocked == 0
    assert image_resource(view, url).size().toTuple() == (5, 4)
    assert_no_traffic(recorder)


def test_view_alone_blocks_unsanitised_html_and_local_files(
    qtbot: QtBot, view: MailView, recorder: Recorder, tmp_path: Path
) -> None:
    """Second line of defence: even HTML that skipped the sanitiser fetches nothing,
    and Qt's fallback of reading image URLs as local files never happens."""
    local = tmp_path / "secret.png"
    local.write_bytes(png(4, 4))
    raw = hostile_newsletter(recorder.url, recorder.hostport) + (
        f'<img src="{local.as_uri()}"><img src="{local}"><img src="secret.png">'
    )
    view.setSearchPaths([str(tmp_path)])  # would make "secret.png" resolvable for Qt
    view.setHtml(raw)
    render_everything(qtbot, view)
    remote = [u for u in view.requested_urls if recorder.hostport in u]
    assert len(remote) >= 5, view.requested_urls  # Qt did ask, and got nothing
    for url in (local.as_uri(), str(local), "secret.png", f"{recorder.url}/tracker.gif"):
        assert image_resource(view, url).size().toTuple() == (1, 1), url
    assert_no_traffic(recorder)


def test_inline_images_do_not_leak_into_the_next_message(qtbot: QtBot, view: MailView) -> None:
    view.show_message('<img src="cid:img1">', "", {"img1": png(6, 6)})
    render_everything(qtbot, view)
    assert image_resource(view, "cid:img1").size().toTuple() == (6, 6)
    view.show_message('<p>other</p><img src="cid:img1">', "", {})
    render_everything(qtbot, view)
    assert view.requested_urls == ["cid:img1"]
    assert image_resource(view, "cid:img1").size().toTuple() == (1, 1)


def test_content_id_lookup_is_lenient(qtbot: QtBot, view: MailView) -> None:
    view.show_message('<img src="cid:Part1.ABC%40example.com">', "",
                      {"<part1.abc@example.com>": png(2, 7)})
    render_everything(qtbot, view)
    assert image_resource(view, "cid:Part1.ABC%40example.com").size().toTuple() == (2, 7)


def test_link_click_is_reported_not_followed(
    qtbot: QtBot, view: MailView, recorder: Recorder
) -> None:
    href = f"{recorder.url}/landing?x=1"
    view.show_message(f'<p>Read the <a href="{href}">release notes</a> now.</p>', "", {})
    render_everything(qtbot, view)
    assert view.links == [("release notes", href)]
    with qtbot.waitSignal(view.linkActivated, timeout=2000) as blocker:
        click_text(qtbot, view, "release notes")
    assert blocker.args == [QUrl(href)]
    assert view.source() == QUrl()
    assert "release notes" in view.toPlainText()
    assert_no_traffic(recorder)


PLAIN = (
    "Thanks, that fixed it. See https://status.example/incident?id=4 for details.\n"
    "\n"
    "On Mon, 1 Jan 2024 at 10:00, Alice <alice@example.com> wrote:\n"
    "> Could you try restarting the <router>?\n"
    "> Alice\n"
)


def test_plain_text_quotes_are_folded_and_expand_on_click(qtbot: QtBot, view: MailView) -> None:
    view.show_message(None, PLAIN, {})
    text = view.toPlainText()
    assert "Thanks, that fixed it." in text
    assert "…show quoted text" in text
    assert "Could you try" not in text and "wrote:" not in text
    assert view.has_quoted_text and not view.quotes_expanded
    assert view.remote_blocked == 0
    assert view.links == [("https://status.example/incident?id=4",) * 2]

    with qtbot.assertNotEmitted(view.linkActivated):
        click_text(qtbot, view, "show quoted text")
    assert view.quotes_expanded
    text = view.toPlainText()
    assert "> Could you try restarting the <router>?" in text  # escaped, not a tag
    assert "…hide quoted text" in text

    with qtbot.assertNotEmitted(view.linkActivated):
        click_text(qtbot, view, "hide quoted text")
    assert "Could you try" not in view.toPlainText()


def test_plain_text_links_are_clickable(qtbot: QtBot, view: MailView) -> None:
    view.show_message("   ", PLAIN, {})  # blank HTML part: the text is shown
    with qtbot.waitSignal(view.linkActivated, timeout=2000) as blocker:
        click_text(qtbot, view, "status.example")
    assert blocker.args == [QUrl("https://status.example/incident?id=4")]


def test_plain_text_without_quotes(view: MailView) -> None:
    view.show_message(None, "Just a line <b>not bold</b>\n  indented\n", {})
    assert view.toPlainText() == "Just a line <b>not bold</b>\n  indented"
    assert not view.has_quoted_text


def test_text_part_shown_when_nothing_of_the_html_survives(view: MailView) -> None:
    view.show_message('<script>alert(1)</script><img src="http://t.example/p.gif">',
                      "the real text", {})
    assert view.toPlainText() == "the real text"
    assert view.sanitized is None and view.remote_blocked == 1


GMAIL_REPLY = (
    '<div dir="ltr">Thanks, <b>that fixed it</b>.</div><br>'
    '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, 1 Jan 2024, Alice '
    '&lt;alice@example.com&gt; wrote:<br></div>'
    '<blockquote class="gmail_quote" style="margin:0 0 0 .8ex">Could you try restarting '
    'the router?<img src="http://tracker.example/q.gif"></blockquote></div>')
THUNDERBIRD_REPLY = (
    "<html><head><style>p { color: red }</style></head><body>\n<p>Sure, done.</p>\n"
    '<div class="moz-cite-prefix">On 1/1/24 Alice wrote:<br></div>\n'
    '<blockquote type="cite"><p>Please close my account.</p></blockquote>\n</body></html>')


@pytest.mark.parametrize(("html", "new", "old"), [
    (GMAIL_REPLY, "that fixed it", "restarting the router"),
    (THUNDERBIRD_REPLY, "Sure, done.", "close my account"),
])
def test_html_quotes_are_folded_and_expand_on_click(
        qtbot: QtBot, view: MailView, html: str, new: str, old: str) -> None:
    view.show_message(html, "text part", {})
    assert view.sanitized is not None and view.has_quoted_text
    text = view.toPlainText()
    assert new in text and "…show quoted text" in text
    assert old not in text and "wrote:" not in text
    with qtbot.assertNotEmitted(view.linkActivated):
        click_text(qtbot, view, "show quoted text")
    text = view.toPlainText()
    assert view.quotes_expanded and old in text and "wrote:" in text
    assert "…hide quoted text" in text
    assert "tracker.example" not in " ".join(view.requested_urls)  # still never fetched
    click_text(qtbot, view, "hide quoted text")
    assert old not in view.toPlainText()


@pytest.mark.parametrize("html", [
    '<blockquote type="cite">Forwarded, nothing before it</blockquote>',
    "<style>.x{}</style><div class=\"gmail_quote\">only the quote</div>",
    "<p>No quote at all</p>",
])
def test_html_without_new_text_before_a_quote_is_not_folded(view: MailView, html: str) -> None:
    view.show_message(html, "", {})
    assert not view.has_quoted_text
    assert "show quoted text" not in view.toPlainText()
