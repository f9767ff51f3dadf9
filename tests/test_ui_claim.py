"""Two desktops on one Dovecot: a claim in one window shows up in the other by itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot
from test_ui_support import App, fill, synced_desk


@pytest.fixture
def two(qtbot: QtBot, dovecot: Any, tmp_path: Path) -> Iterator[tuple[App, App]]:
    fill(dovecot, 8, extra=False)
    a = App(qtbot, synced_desk(dovecot, tmp_path, "agent-a"))
    b = App(qtbot, synced_desk(dovecot, tmp_path, "agent-b"))
    yield a, b
    a.stop()
    b.stop()


def test_claim_and_takeover_reach_the_other_window_without_refresh(
        two: tuple[App, App], qtbot: QtBot) -> None:
    a, b = two
    tid = a.desk.ticket_ids("unclaimed")[0]
    a.open(tid)
    b.open(tid)
    assert a.window.pane.banner.state == b.window.pane.banner.state == "unclaimed"
    b.service.start_sync()  # IDLE on the team log brings agent-a's claim
    a.service.start_sync()
    qtbot.waitUntil(lambda: b.window.sync_label.text().startswith("Synced"), timeout=10_000)
    # The push loop starts its IDLE watchers after the first pass; an event appended in
    # between waits for the next poll (reported to the core), so let them get ready.
    qtbot.waitUntil(lambda: _idle_ready(a) and _idle_ready(b), timeout=10_000)

    qtbot.mouseClick(a.window.pane.banner.button, _left())
    qtbot.waitUntil(lambda: a.window.pane.banner.state == "mine", timeout=10_000)
    qtbot.waitUntil(lambda: b.window.pane.banner.state == "other", timeout=15_000)
    assert b.window.pane.banner.label.text() == "Held by agent-a"
    assert b.window.pane.banner.button.text() == "Take over…"
    # B's list and counts follow too: the ticket left B's Unclaimed view.
    qtbot.waitUntil(lambda: b.window.model.row_of(tid) == -1, timeout=10_000)

    # B takes over, after confirming; A is told and its banner follows.
    qtbot.mouseClick(b.window.pane.banner.button, _left())
    box = _wait_for_box(qtbot)
    take = next(btn for btn in box.buttons() if btn.text() == "Take over")
    qtbot.mouseClick(take, _left())
    qtbot.waitUntil(lambda: b.window.pane.banner.state == "mine", timeout=10_000)
    assert b.desk.holder(tid).agent == "agent-b"
    qtbot.waitUntil(lambda: a.window.pane.banner.state == "other", timeout=15_000)
    assert a.window.pane.banner.label.text() == "Held by agent-b"
    # The notice names the subject, not only the id.
    subject = a.desk.ticket_rows([tid])[tid]["subject"]
    qtbot.waitUntil(lambda: any(f"agent-b took over “{subject}” (#{tid})" in text
                                for _t, text, _id in a.window.notifier.sent), timeout=10_000)


def _idle_ready(app: App) -> bool:
    loop = app.service._loop
    return loop is not None and bool(loop.watchers) and all(w.ready.is_set()
                                                            for w in loop.watchers)


def _wait_for_box(qtbot: QtBot) -> QMessageBox:
    found: list[QMessageBox] = []

    def seen() -> bool:
        found[:] = [w for w in QApplication.topLevelWidgets()
                    if isinstance(w, QMessageBox) and w.isVisible()]
        return bool(found)

    qtbot.waitUntil(seen, timeout=5_000)
    return found[0]


def _left() -> Any:
    from PySide6.QtCore import Qt
    return Qt.MouseButton.LeftButton
