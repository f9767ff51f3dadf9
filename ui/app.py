"""GUI entry point: find (or set up) the profile, open the desk, show the main window."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

log = logging.getLogger(__name__)


def run_gui(args: argparse.Namespace) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from ui import style

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Help desk")
    app.setOrganizationName("helpdesk")
    app.setDesktopFileName("helpdesk")
    style.apply(app)

    profile = resolve_profile(args)
    if profile is None:
        return 0
    opened = open_window(profile, demo=bool(getattr(args, "demo", False)))
    if opened is None:
        return 1
    window, service = opened

    # Ctrl+C in the terminal quits cleanly: Python handles signals only between
    # bytecodes, so let the interpreter run now and then.
    signal.signal(signal.SIGINT, lambda *_a: app.quit())
    tick = QTimer()
    tick.start(300)
    tick.timeout.connect(lambda: None)

    settle_heap()
    service.start_sync()
    try:
        return int(app.exec())
    finally:
        window.hide()
        service.stop()
        service.desk.close()


def settle_heap() -> None:
    """Move everything built at start-up out of the garbage collector's way.

    A full (generation 2) collection walks every container object in the process:
    with Qt wrappers, the ORM and a large ticket list that is 30-70 ms with the GIL
    held, a visible stall whichever thread triggers it. Start-up objects live as
    long as the app, so freezing them keeps later collections small.
    """
    import gc

    gc.collect()
    gc.freeze()


def resolve_profile(args: argparse.Namespace) -> Any:
    """The profile to run with: the demo's, the user's, or one made by the setup dialog."""
    from helpdesk.config import find_config, load_profile, with_agent
    from helpdesk.errors import ConfigError

    agent = getattr(args, "agent", None)
    if getattr(args, "demo", False):
        from helpdesk.demo import demo_profile

        profile, error = _with_splash("Starting the demo mailbox…",
                                      lambda: demo_profile(agent or "agent-a"))
        if error:
            _fatal("The demo mailbox could not be started", error)
            return None
    else:
        try:
            profile = load_profile(getattr(args, "config", None))
        except ConfigError as exc:
            from PySide6.QtWidgets import QDialog

            from ui.setup_dialog import SetupDialog

            path = find_config(getattr(args, "config", None))
            dialog = SetupDialog(path=path, problem=str(exc) if path.exists() else None)
            if dialog.exec() != QDialog.DialogCode.Accepted or dialog.profile is None:
                return None
            profile = dialog.profile
    if agent:
        profile = with_agent(profile, agent)
    return profile


def open_window(profile: Any, demo: bool = False, persist: bool = True) -> Any:
    """Open the desk for ``profile`` and show the main window; None after telling why not.

    A damaged store is offered a rebuild from the server (as ``rebuild-store`` does):
    the file is set aside, readable outbox items and drafts are kept, and the sync
    that starts with the window brings mail and team state back.
    """
    import html

    from PySide6.QtWidgets import QMessageBox

    from helpdesk.desk import Desk
    from helpdesk.errors import DamagedStoreError, HelpdeskError
    from helpdesk.store.rebuild import rebuild_store
    from ui.main_window import MainWindow
    from ui.worker import DeskService

    try:
        desk = Desk(profile)
    except DamagedStoreError as exc:
        box = QMessageBox(QMessageBox.Icon.Warning, "Help desk",
                          "<b>The local ticket store is damaged.</b><br><br>"
                          f"{html.escape(str(exc))}")
        box.setObjectName("damagedStore")
        rebuild = box.addButton("Rebuild from the server", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(rebuild)
        box.exec()
        if box.clickedButton() is not rebuild:
            return None
        try:
            report = rebuild_store(profile.database)
            desk = Desk(profile)
        except HelpdeskError as again:
            _fatal("The local ticket store could not be rebuilt", str(again))
            return None
        log.warning("store rebuilt: %s", " ".join(report.lines()))
        QMessageBox.information(None, "Help desk", "<br>".join(
            html.escape(line) for line in
            [*report.lines(), "Mail and team state now sync back from the server."]))
    except HelpdeskError as exc:
        _fatal("The local ticket store could not be opened", str(exc))
        return None
    service = DeskService(desk)
    window = MainWindow(service, persist=persist)
    if demo:
        window.setWindowTitle(f"Help desk — {profile.agent} (demo mailbox)")
    window.show()
    return window, service


def _with_splash(text: str, fn: Any) -> tuple[Any, str | None]:
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel

    from ui.tasks import wait_for

    splash = QLabel(text)
    splash.setObjectName("splash")
    splash.setWindowFlags(Qt.WindowType.SplashScreen | Qt.WindowType.FramelessWindowHint)
    splash.setAlignment(Qt.AlignmentFlag.AlignCenter)
    splash.resize(360, 120)
    splash.show()
    try:
        return wait_for(fn)
    finally:
        splash.close()


def _fatal(title: str, message: str) -> None:
    from PySide6.QtWidgets import QMessageBox

    log.error("%s: %s", title, message)
    import html

    QMessageBox.critical(None, "Help desk",
                         f"<b>{html.escape(title)}.</b><br><br>{html.escape(message)}")
