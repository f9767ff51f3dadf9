"""Shared fixtures: real servers (fixtures_servers), profiles, strict logging."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).parent))

from fixtures_servers import *  # noqa: F403
from helpers import MemoryKeyring


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "qapp" in names or "qtbot" in names:
            item.add_marker(pytest.mark.gui)


@pytest.fixture(autouse=True)
def memory_keyring() -> Iterator[MemoryKeyring]:
    import keyring

    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def fresh_tokens() -> Iterator[None]:
    """No access token outlives its test (they are process-wide, in memory)."""
    from helpdesk.auth import tokens

    tokens.reset()
    yield
    tokens.reset()


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def fail_on_logged_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that logs an unexpected ERROR fails (mark allow_log_errors to permit)."""
    collector = _ErrorCollector()
    root = logging.getLogger()
    root.addHandler(collector)
    yield
    root.removeHandler(collector)
    if request.node.get_closest_marker("allow_log_errors") is None and collector.records:
        msgs = "; ".join(r.getMessage() for r in collector.records[:3])
        pytest.fail(f"unexpected error logged: {msgs}")
