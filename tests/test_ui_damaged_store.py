"""The app offers to rebuild a damaged store when it opens (ui/app.py open_window)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import make_profile
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot
from test_store_damage import overwrite, pages_of
from test_ui_support import fill

from helpdesk.desk import Desk
from ui.app import open_window


def damaged_store(server: Any, tmp_path: Path) -> tuple[Any, list[str]]:
    """A store synced from ``server`` with one draft, then a messages page overwritten."""
    fill(server, 6, extra=False)
    profile = make_profile(server, tmp_path)
    desk = Desk(profile)
    desk.sync_once()
    tickets = desk.ticket_ids("all")
    desk.save_draft(tickets[0], "Half-written answer")
    desk.close()
    con = sqlite3.connect(profile.database)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    page = pages_of(profile.database, "messages")[0]
    overwrite(profile.database, (page - 1) * 4096, 4096)
    return profile, tickets


def answering(choice: str, seen: list[str]) -> Callable[[], None]:
    """Answer each message box as it comes: ``choice`` on the rebuild offer, OK after."""
    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox) or not box.isVisible():
            return
        seen.append(box.text())
        for button in box.buttons():
            if button.text() == choice:
                button.click()
                return
        ok = box.button(QMessageBox.StandardButton.Ok)
        assert ok is not None
        ok.click()
    return answer


def test_a_damaged_store_is_rebuilt_from_the_server(qtbot: QtBot, dovecot: Any,
                                                    tmp_path: Path) -> None:
    profile, tickets = damaged_store(dovecot, tmp_path)
    seen: list[str] = []
    timer = QTimer()
    timer.timeout.connect(answering("Rebuild from the server", seen))
    timer.start(20)
    try:
        opened = open_window(profile, persist=False)
    finally:
        timer.stop()
    assert opened is not None
    window, service = opened
    try:
        assert "The local ticket store is damaged" in seen[0] and "rebuild-store" in seen[0]
        assert "Kept 1 draft." in seen[1]
        assert list(tmp_path.glob("agent-a.sqlite3.damaged-*"))
        service.desk.sync_once()  # what run_gui's start_sync does next
        assert sorted(service.desk.ticket_ids("all")) == sorted(tickets)
        assert service.desk.draft(tickets[0]) == "Half-written answer"
    finally:
        window.close()
        service.stop()
        service.desk.close()


def test_declining_the_rebuild_leaves_the_file_alone(qtbot: QtBot, dovecot: Any,
                                                     tmp_path: Path) -> None:
    profile, _tickets = damaged_store(dovecot, tmp_path)
    before = Path(profile.database).read_bytes()
    seen: list[str] = []
    timer = QTimer()
    timer.timeout.connect(answering("Quit", seen))
    timer.start(20)
    try:
        assert open_window(profile, persist=False) is None
    finally:
        timer.stop()
    assert len(seen) == 1 and "damaged" in seen[0]
    assert Path(profile.database).read_bytes() == before
    assert not list(tmp_path.glob("*.damaged-*"))
