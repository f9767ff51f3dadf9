"""The core stays Qt-free: nothing under helpdesk/ imports PySide6."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_pyside_import_in_core_sources() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+PySide6", re.MULTILINE)
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "helpdesk").rglob("*.py")
                 if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_importing_the_core_loads_no_qt() -> None:
    code = ("import sys, helpdesk.desk, helpdesk.cli, helpdesk.demo, helpdesk.metrics, "
            "helpdesk.cards\n"
            "sys.exit(1 if any(m.startswith('PySide6') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_the_core_imports_the_ui_only_at_the_entry_point() -> None:
    """helpdesk/ never imports ui/, but for the one line that starts the GUI."""
    pattern = re.compile(r"^\s*(from\s+ui(\.|\s)|import\s+ui(\.|\s|$))", re.MULTILINE)
    found = {str(p.relative_to(ROOT)): len(pattern.findall(p.read_text(encoding="utf-8")))
             for p in (ROOT / "helpdesk").rglob("*.py")}
    assert {k: v for k, v in found.items() if v} == {"helpdesk/cli/__init__.py": 1}


def test_services_depend_on_the_session_never_on_the_desk() -> None:
    """No core module but the entry points imports the facade (no import circles)."""
    pattern = re.compile(r"^\s*(from\s+helpdesk\.desk\s+import|import\s+helpdesk\.desk)",
                         re.MULTILINE)
    users = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "helpdesk").rglob("*.py")
                   if pattern.search(p.read_text(encoding="utf-8")))
    assert all(u.startswith("helpdesk/cli/") for u in users), users
