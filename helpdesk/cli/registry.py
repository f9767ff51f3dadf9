"""Which function runs each command: the ``COMMANDS`` registry and its decorators."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from helpdesk.config import Profile
    from helpdesk.desk import Desk

Handler = Callable[["Desk", argparse.Namespace], int]
ProfileHandler = Callable[["Profile", argparse.Namespace], int]

# Commands that work on an open Desk (most of them).
COMMANDS: dict[str, Handler] = {}
# Commands that must not open the Desk: they run before it can be (set-password) or
# instead of it (rebuild-store, on a store that cannot be opened).
PROFILE_COMMANDS: dict[str, ProfileHandler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = fn
        return fn
    return register


def profile_command(name: str) -> Callable[[ProfileHandler], ProfileHandler]:
    def register(fn: ProfileHandler) -> ProfileHandler:
        PROFILE_COMMANDS[name] = fn
        return fn
    return register
