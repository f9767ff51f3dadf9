"""GUI entry point."""

from __future__ import annotations

import argparse
import sys


def run_gui(args: argparse.Namespace) -> int:
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication(sys.argv[:1])
    label = QLabel("Help desk: the desktop window arrives with the UI issue.")
    label.resize(480, 120)
    label.show()
    return int(app.exec())
