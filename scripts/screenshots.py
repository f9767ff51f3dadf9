"""Save README screenshots of the app running on the demo mailbox.

    xvfb-run -a .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Starts a private demo server (its own state and data dirs, stopped at the end),
lets a second agent claim a ticket so the list shows a teammate at work, then
saves: the main window, a VIP ticket with the customer panel, and the composer
on a white-glove customer's ticket.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def wait(app: Any, predicate: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        app.processEvents()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            window = next((w for w in app.topLevelWidgets() if hasattr(w, "message_bar")), None)
            notes = window.message_bar.history if window is not None else []
            if window is not None:
                notes.append(("debug", f"{window.pane.ticket_id} {window.pane.currentIndex()} "
                              f"{len(window.pane.conversation.cards)} {window.view}"))
            raise SystemExit(f"timed out waiting for {what or 'the window'}; notes: {notes}")
        time.sleep(0.01)


def settle(app: Any, seconds: float = 0.4) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="helpdesk-shots-"))
    os.environ["HELPDESK_DEMO_DIR"] = str(work / "state")
    os.environ["HELPDESK_DEMO_DATA"] = str(work / "data")

    from PySide6.QtWidgets import QApplication

    from helpdesk.demo import demo_profile, stop_demo_servers
    from helpdesk.desk import Desk
    from ui import style
    from ui.app import open_window

    app = QApplication(sys.argv[:1])
    app.setApplicationName("Help desk")
    style.apply(app)
    try:
        profile = demo_profile("agent-a")
        teammate = Desk(demo_profile("agent-b"))
        teammate.sync_once()
        desk_a = Desk(profile)
        desk_a.sync_once()
        # A teammate holds one ticket, we hold another: the list shows both.
        open_ids = teammate.ticket_ids("open")
        rows = teammate.ticket_rows(open_ids)
        plain = [t for t in open_ids if not rows[t]["vip"] and not rows[t]["white_glove"]
                 and rows[t]["message_count"] >= 2
                 and all(ord(ch) < 0x2000 for ch in rows[t]["snippet"])]  # no emoji font
        if len(plain) > 3:
            teammate.claim(plain[1])
            desk_a.claim(plain[3])
        desk_a.close()
        teammate.close()

        opened = open_window(profile, demo=True, persist=False)
        assert opened is not None
        window, service = opened
        window.resize(args.width, args.height)
        service.start_sync()
        wait(app, lambda: window.model.rowCount() > 0, what="the ticket list")
        applied: list[float] = []
        window.list_applied.connect(applied.append)

        def show_view(key: str) -> None:
            before = len(applied)
            window.sidebar.select(key)
            wait(app, lambda: len(applied) > before, what=f"the {key} view")

        # 1. The main window: all open tickets, one we are handling selected.
        show_view("open")
        mine = plain[3] if len(plain) > 3 else window.model.id_at(0)
        window.column.select_row(max(0, window.model.row_of(mine)))
        wait(app, lambda: window.pane.ticket_id == mine and window.pane.conversation.cards
             and window.pane.banner.state == "mine", what="a conversation")
        wait(app, lambda: all(window.model.cached(t) for t in window.model.ids[:12]),
             what="rows")
        settle(app, 1.0)
        window.grab().save(str(out / "main-window.png"))

        # 2. A VIP ticket with its customer panel.
        show_view("vip")
        window.column.select_row(0)
        wait(app, lambda: window.pane.ticket_id == window.model.id_at(0)
             and window.pane.customer.data, what="the VIP customer")
        settle(app, 1.0)
        window.grab().save(str(out / "vip-customer.png"))

        # 3. The composer on the white-glove customer's ticket.
        show_view("open")
        before = len(applied)
        window.column.search.setText("finch")
        wait(app, lambda: len(applied) > before, what="the search")
        wait(app, lambda: all(window.model.cached(t) for t in window.model.ids), what="rows")
        settle(app, 0.5)
        window.column.select_row(0)
        wait(app, lambda: window.pane.ticket_id == window.model.id_at(0)
             and window.pane.conversation.cards, what="Harold's ticket")
        window.pane.reply()
        composer = window.pane.composer
        wait(app, lambda: composer.is_open and composer.editor.isEnabled(), what="composer")
        composer.editor.insertPlainText(
            "I completely understand how worrying this is, and your recipes are safe: "
            "nothing is lost.\n\nHere is what happens next:\n1. ")
        settle(app, 1.0)
        window.grab().save(str(out / "composer.png"))
        composer.close_composer(save=False)
        window.close()
        service.stop()
        service.desk.close()
    finally:
        stop_demo_servers()
    for name in ("main-window.png", "vip-customer.png", "composer.png"):
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
