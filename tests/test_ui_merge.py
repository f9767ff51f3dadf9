"""The GUI's "Merge into…" (issue 14, item 5): the ticket menu opens a picker of the
target; merging moves the conversation there and opens it; a refused merge says why in
the dialog. Offscreen against Dovecot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytestqt.qtbot import QtBot
from test_threads import mail, placement, put, tid
from test_ui_support import App, synced_desk


def test_merge_into_from_the_ticket_menu(qtbot: QtBot, dovecot: Any, tmp_path: Path) -> None:
    put(dovecot, [("INBOX", mail("y@cust.example", "Cannot print <b>now</b>", 2)),
                  ("INBOX", mail("x@cust.example", "Printing still broken", 5))])
    x, y = tid("x@cust.example"), tid("y@cust.example")
    app = App(qtbot, synced_desk(dovecot, tmp_path, "agent-a"))
    try:
        app.open(x)
        app.window.ticket_actions["merge"].trigger()
        picker = app.window.pane.merge_picker
        qtbot.waitUntil(lambda: picker.list.count() == 1, timeout=10_000)
        item = picker.list.item(0)
        assert f"#{y}" in item.text() and "<b>now</b>" in item.text()  # plain text
        assert "cannot be undone" in picker.explain.text()
        picker.merge_button.click()
        qtbot.waitUntil(lambda: app.window.pane.ticket_id == y, timeout=15_000)
        assert placement(app.desk.profile.database) == {y: ["x@cust.example",
                                                            "y@cust.example"]}
        qtbot.waitUntil(lambda: any(f"merged into {y}" in t
                                    for _k, t in app.window.message_bar.history),
                        timeout=10_000)
        # Merging the survivor back into the merged id is refused, in the dialog.
        app.window.ticket_actions["merge"].trigger()
        again = app.window.pane.merge_picker
        again.search.setText(x)
        again.refresh()
        qtbot.waitUntil(lambda: again.list.count() == 0, timeout=10_000)
        again._show([{"id": x, "subject": "s", "customer": "c", "status": "open"}])
        again.merge_button.click()
        qtbot.waitUntil(lambda: "already one ticket" in again.error.text(), timeout=10_000)
        again.reject()
    finally:
        app.stop()
