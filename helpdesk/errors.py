"""Errors that carry a plain-language message meant for a person.

Every error the user can cause or fix (configuration, secrets, network, a
teammate holding a ticket) is a :class:`HelpdeskError`; the CLI prints its
message and exits with its ``exit_code`` instead of showing a traceback.
"""

from __future__ import annotations

from pathlib import Path


class HelpdeskError(Exception):
    """A failure with a message written for the user, not the programmer."""

    exit_code = 1


class ConfigError(HelpdeskError):
    """The profile is missing, unreadable or has a bad value."""


class SecretError(HelpdeskError):
    """No password could be obtained (no keyring, failing password command)."""


class StoreError(HelpdeskError):
    """The local database cannot be opened or used (newer version, corrupt, disk full)."""


class DamagedStoreError(StoreError):
    """The local database file is corrupt; it can be rebuilt from the server.

    ``path`` is the database file; the message names the ``rebuild-store`` command.
    """

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


class MailError(HelpdeskError):
    """A mail server could not be reached or refused us."""


class NotFoundError(HelpdeskError):
    """A ticket, customer or card named by the user does not exist."""


class ConflictError(HelpdeskError):
    """Another agent holds what this agent tried to act on (exit code 3)."""

    exit_code = 3
