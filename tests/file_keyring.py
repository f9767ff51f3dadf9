"""A keyring backend in a JSON file, for CLI subprocesses in tests.

This machine has no OS keyring (keyring finds only its failing backend), and a test's
in-memory keyring cannot be seen by a ``python main.py`` subprocess. Tests run the CLI
with ``PYTHON_KEYRING_BACKEND=file_keyring.FileKeyring``, ``PYTHONPATH`` holding tests/,
and ``HELPDESK_TEST_KEYRING`` naming the file; the test reads the same file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend


class FileKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    @property
    def path(self) -> Path:
        return Path(os.environ["HELPDESK_TEST_KEYRING"])

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, str]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)

    def get_password(self, service: str, username: str) -> str | None:
        return self._read().get(f"{service}\n{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._read()
        data[f"{service}\n{username}"] = password
        self._write(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._read()
        data.pop(f"{service}\n{username}", None)
        self._write(data)
