"""Mail and team data are never markup: labels and tooltips show them as plain text,
and an inline SVG draws nothing from outside itself."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QColor, QImage, QTextDocument
from PySide6.QtWidgets import QApplication, QLabel, QWidget
from pytestqt.qtbot import QtBot
from test_ui_support import App, fill, synced_desk

from helpdesk.mail.html import clean_svg
from ui.mailview import MailView
from ui.models import Col

HOSTILE = ('<img src="{png}"> <h1>Account suspended</h1>')


def _local_png(tmp_path: Path) -> Path:
    path = tmp_path / "local.png"
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    image.fill(QColor("#ff0000"))
    assert image.save(str(path))
    return path


@pytest.fixture
def hostile(qtbot: QtBot, dovecot: Any, tmp_path: Path) -> Iterator[tuple[App, str, str]]:
    png = _local_png(tmp_path)
    subject = HOSTILE.format(png=png)
    fill(dovecot, 3, extra=False)
    m = EmailMessage()
    m["Subject"] = subject
    m["From"] = '"<b>Boss</b> <i>x</i>" <boss@evil.example>'
    m["To"] = "support@example.com"
    m["Date"] = format_datetime(__import__("datetime").datetime.now(
        __import__("datetime").UTC))
    m["Message-ID"] = make_msgid(domain="evil.example")
    m.set_content(f"<h1>Body heading</h1> {subject}")
    with dovecot.session() as c:
        c.append("INBOX", bytes(m))
    desk = synced_desk(dovecot, tmp_path)
    desk.update_customer("boss@evil.example", note=f"<h1>Note</h1>{subject}",
                         preferred_name="<h1>Bo</h1>")
    tid = next(t for t in desk.ticket_ids("all")
               if "Account suspended" in desk.ticket_rows([t])[t]["subject"])
    app = App(qtbot, desk)
    yield app, tid, str(png)
    app.stop()


def _widgets() -> list[QWidget]:
    out: list[QWidget] = []
    for top in QApplication.topLevelWidgets():
        out.append(top)
        out.extend(top.findChildren(QWidget))
    return out


def _markup(text: str) -> bool:
    return "<h1>" in text or "<img" in text or "<b>Boss" in text


def test_labels_and_tooltips_show_mail_and_team_data_as_plain_text(
        hostile: tuple[App, str, str], qtbot: QtBot) -> None:
    app, tid, _png = hostile
    w = app.window
    app.select_view("all")
    app.open(tid)
    panel = w.pane.customer
    qtbot.waitUntil(lambda: panel.data is not None and bool(panel.data.get("notes")),
                    timeout=10_000)
    w.pane.composer.open_for(tid)
    qtbot.waitUntil(lambda: w.pane.composer.editor.isEnabled(), timeout=10_000)
    w.notify(f"A server said: {HOSTILE}", "warn")

    shown = [lbl for lbl in _widgets() if isinstance(lbl, QLabel) and _markup(lbl.text())]
    assert any("Account suspended" in lbl.text() for lbl in shown)  # the subject is there
    rich = [lbl.text()[:60] for lbl in shown
            if lbl.textFormat() != Qt.TextFormat.PlainText]
    assert rich == [], f"labels that would render mail data as markup: {rich}"
    # Tooltips are rich text whenever Qt thinks they might be: data in them is escaped.
    tips = [(type(x).__name__, x.toolTip()[:60]) for x in _widgets() if _markup(x.toolTip())]
    assert tips == [], f"tooltips that would render mail data as markup: {tips}"
    row = w.model.row_of(tid)
    assert row >= 0
    for col in Col:
        tip = w.model.data(w.model.index(row, col), Qt.ItemDataRole.ToolTipRole)
        assert not _markup(str(tip or "")), (col, tip)


def _svg(href: str) -> bytes:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
        ' width="16" height="16"><rect width="16" height="16" fill="#00ff00"/>'
        f'<image xlink:href="{href}" x="0" y="0" width="16" height="16"/>'
        f'<use href="{href}#x"/><rect width="4" height="4" style="fill:url({href})"/>'
        '</svg>').encode()


def _colours(image: QImage) -> set[str]:
    return {image.pixelColor(x, y).name() for x in range(image.width())
            for y in range(image.height()) if image.pixelColor(x, y).alpha()}


def test_inline_svg_never_draws_a_local_file(qtbot: QtBot, tmp_path: Path) -> None:
    png = _local_png(tmp_path)
    view = MailView()
    qtbot.addWidget(view)
    for href in (png.as_uri(), str(png)):
        view.show_message('<p>Logo: <img src="cid:logo@x"></p>', "Logo",
                          {"logo@x": _svg(href)})
        image = view.loadResource(QTextDocument.ResourceType.ImageResource,
                                  QUrl("cid:logo@x"))
        assert isinstance(image, QImage) and not image.isNull()
        colours = _colours(image)
        assert "#ff0000" not in colours, f"the SVG drew {png} ({href})"
        assert "#00ff00" in colours  # the drawing itself still shows


@pytest.mark.parametrize("svg", [
    b'<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>',
    b"<html><svg/></html>",
    b"<svg",
    b"\xff\xfe garbage",
])
def test_svg_that_is_not_plain_svg_is_refused(svg: bytes) -> None:
    assert clean_svg(svg) is None


def test_clean_svg_keeps_internal_references_only() -> None:
    out = clean_svg(
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        b'<defs><linearGradient id="g"/></defs><rect fill="url(#g)" onload="x()"/>'
        b'<use xlink:href="#g"/><use xlink:href="http://evil.example/a.svg#g"/>'
        b'<foreignObject><p>hi</p></foreignObject><script>alert(1)</script>'
        b'<set attributeName="href" to="file:///etc/passwd"/>'
        b'<a href="https://evil.example"><text style="fill:url(https://t.example/p)">x</text>'
        b'</a></svg>')
    assert out is not None
    text = out.decode()
    assert 'fill="url(#g)"' in text and "#g" in text
    for bad in ("evil.example", "onload", "foreignObject", "script", "passwd", "t.example"):
        assert bad not in text
