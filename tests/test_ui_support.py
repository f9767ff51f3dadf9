"""Shared pieces for the UI tests (imported by the other test_ui_* modules).

Real servers throughout: a Dovecot with a small, known mailbox, synced once
into a fresh store before the window opens.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile
from mailgen import generate
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from helpdesk.desk import Desk
from ui.main_window import MainWindow
from ui.worker import DeskService

__all__ = ["PNG", "App", "app", "fill", "filled_dovecot", "special_messages", "synced_desk",
           "ticket_with_subject"]


def _png() -> bytes:
    """A valid 2x2 PNG, for inline cid: images."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + b"\xff\x80\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = _png()


def special_messages() -> list[bytes]:
    """Hand-made mail: an attachment, an inline image, remote images, a VIP customer."""
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
    out = []

    m = EmailMessage()
    m["Subject"] = "Contract attached for review"
    m["From"] = "Vera Vip <vera@bigclient.example>"
    m["To"] = "support@example.com"
    m["Date"] = format_datetime(start)
    m["Message-ID"] = make_msgid(domain="bigclient.example")
    m.set_content("Hi team,\n\nPlease find the contract attached.\n\nVera\n")
    m.add_attachment(b"%PDF-1.4 contract bytes", maintype="application", subtype="pdf",
                     filename="contract.pdf")
    out.append(bytes(m))

    m = EmailMessage()
    m["Subject"] = "Newsletter with pictures"
    m["From"] = "News Letter <news@letters.example>"
    m["To"] = "support@example.com"
    m["Date"] = format_datetime(start + timedelta(minutes=5))
    m["Message-ID"] = make_msgid(domain="letters.example")
    m.set_content("Plain version")
    m.add_alternative(
        '<html><body><p>Hello <b>there</b></p><img src="cid:logo@letters">'
        '<img src="https://tracker.example/a.png"><img src="http://cdn.example/b.png">'
        '<a href="https://letters.example/read">Read</a></body></html>', subtype="html")
    html_part = m.get_payload()[1]
    html_part.add_related(PNG, maintype="image", subtype="png", cid="<logo@letters>")
    out.append(bytes(m))
    return out


def fill(server: Any, n: int = 16, extra: bool = True) -> None:
    msgs = list(generate(n, seed=7))
    if extra:
        msgs += special_messages()
    with server.session() as c:
        for raw in msgs:
            c.append("INBOX", raw)


def synced_desk(server: Any, tmp_path: Path, agent: str = "agent-a", **kw: Any) -> Desk:
    desk = Desk(make_profile(server, tmp_path, agent, **kw))
    desk.sync_once()
    return desk


class App:
    """A desk, its service and its main window, torn down in the right order."""

    def __init__(self, qtbot: QtBot, desk: Desk) -> None:
        self.qtbot = qtbot
        self.desk = desk
        self.service = DeskService(desk)
        self.window = MainWindow(self.service, persist=False)
        qtbot.addWidget(self.window)
        self.window.resize(1300, 820)
        self.window.show()
        qtbot.waitUntil(lambda: self.window.model.rowCount() > 0 or
                        self.window.column.empty.isVisible(), timeout=10_000)

    def stop(self) -> None:
        self.window.close()
        self.service.stop()
        self.desk.close()

    # helpers for tests
    def select_view(self, view: str) -> None:
        applied: list[float] = []
        self.window.list_applied.connect(applied.append)
        self.window.sidebar.select(view)
        if self.window.view != view or not applied:
            self.qtbot.waitUntil(lambda: bool(applied), timeout=10_000)
        self.window.list_applied.disconnect(applied.append)

    def open(self, ticket_id: str) -> None:
        self.window.open_ticket(ticket_id)
        self.qtbot.waitUntil(lambda: self.window.pane.ticket_id == ticket_id
                             and self.window.pane.conversation.ticket_id == ticket_id
                             and bool(self.window.pane.row), timeout=10_000)

    def settle(self) -> None:
        self.service.wait_idle()
        self.qtbot.wait(1)


@pytest.fixture
def filled_dovecot(dovecot: Any) -> Any:
    fill(dovecot)
    return dovecot


@pytest.fixture
def app(qtbot: QtBot, filled_dovecot: Any, tmp_path: Path) -> Iterator[App]:
    a = App(qtbot, synced_desk(filled_dovecot, tmp_path))
    yield a
    a.stop()


def ticket_with_subject(desk: Desk, text: str) -> str:
    for tid in desk.ticket_ids("all"):
        if text in desk.ticket_rows([tid])[tid]["subject"]:
            return tid
    raise AssertionError(f"no ticket with '{text}'")


class WidgetsMade(QObject):
    """Counts widgets made and shown (Qt polishes each new widget once, as it shows)."""

    def __init__(self) -> None:
        super().__init__()
        self.made: dict[str, int] = {}

    def eventFilter(self, obj: Any, event: Any) -> bool:
        if event.type() == QEvent.Type.Polish:
            name = f"{type(obj).__name__}#{obj.objectName()}"
            self.made[name] = self.made.get(name, 0) + 1
        return False


@contextmanager
def widgets_made() -> Iterator[WidgetsMade]:
    """The widgets made inside the block (an application event filter while it runs)."""
    counter = WidgetsMade()
    app = QApplication.instance()
    assert app is not None
    app.installEventFilter(counter)
    try:
        yield counter
    finally:
        app.removeEventFilter(counter)


class NoneRise:
    """Around a block: how far None's refcount rose over it (:attr:`rise`), garbage
    collected on both sides, log records muted inside (pytest keeps each one, and each
    holds references to None)."""

    rise = 0

    def __enter__(self) -> NoneRise:
        gc.collect()
        self._before = sys.getrefcount(None)
        logging.disable(logging.CRITICAL)
        return self

    def __exit__(self, *_exc: object) -> None:
        logging.disable(logging.NOTSET)
        gc.collect()
        self.rise = sys.getrefcount(None) - self._before
