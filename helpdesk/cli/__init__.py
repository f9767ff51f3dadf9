"""Command line over the Desk facade. Exit codes: 0 ok, 1 error, 2 usage, 3 conflict.

One module per group of commands (each has ``add_parsers(sub)`` and registers its
handlers in :data:`COMMANDS`), :mod:`helpdesk.cli.output` for everything printed and
:mod:`helpdesk.cli.failures` for what a failure says. :func:`main` never lets a
traceback reach the terminal.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from helpdesk.cli import (
    cards,
    customers,
    failures,
    metrics,
    passwords,
    replies,
    rota,
    signin,
    store,
    sync,
    teamwork,
    tickets,
)
from helpdesk.cli.output import clean, emit_json, error
from helpdesk.cli.registry import COMMANDS, PROFILE_COMMANDS, command
from helpdesk.config import Profile, load_profile, with_agent
from helpdesk.errors import HelpdeskError

__all__ = ["COMMANDS", "PROFILE_COMMANDS", "build_parser", "command", "emit_json", "main"]

# In the order of the README's table.
GROUPS = (sync, tickets, teamwork, customers, replies, rota, cards, metrics, passwords, signin,
          store)


class Parser(argparse.ArgumentParser):
    """argparse whose messages (usage errors echo what was typed) are cleaned too."""

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            super()._print_message(clean(message), file)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="helpdesk", description="Help desk for a shared mailbox.")
    p.add_argument("--config", metavar="FILE", help="profile TOML (default: $HELPDESK_CONFIG, "
                   "else the user config dir)")
    p.add_argument("--agent", metavar="NAME", help="act as this agent (overrides the profile)")
    p.add_argument("--demo", action="store_true", help="use the built-in demo mailbox")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.add_parsers(sub)
    return p


def _profile_for(args: argparse.Namespace) -> Profile:
    if args.demo:
        from helpdesk.demo import demo_profile
        profile = demo_profile(args.agent or "agent-a")
    else:
        profile = load_profile(args.config)
    if args.agent:
        profile = with_agent(profile, args.agent)
    return profile


def _tolerant_streams() -> None:
    """A terminal that cannot show a character gets '?' rather than a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="replace")
            except (ValueError, OSError):
                pass


def _silence_stdout() -> None:
    """After a broken pipe (``helpdesk tickets | head``): no second error at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure becomes one plain line on stderr and an exit code."""
    _tolerant_streams()
    args = build_parser().parse_args(argv)
    profile: Profile | None = None
    try:
        if args.command is None:
            from ui.app import run_gui
            with failures.logging_to_terminal(args.verbose, []):
                return int(run_gui(args))
        profile = _profile_for(args)
        with failures.logging_to_terminal(args.verbose, failures.secrets_of(profile)):
            return _run(profile, args)
    except HelpdeskError as exc:
        error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        error("Interrupted.")
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except Exception as exc:
        error(failures.sentence(exc, profile, args.command))
        return 1


def _run(profile: Profile, args: argparse.Namespace) -> int:
    if args.command in PROFILE_COMMANDS:
        return PROFILE_COMMANDS[args.command](profile, args)
    from helpdesk.desk import Desk

    desk = Desk(profile)
    try:
        return COMMANDS[args.command](desk, args)
    finally:
        try:
            desk.close()
        except Exception as exc:  # closing must not hide what the command returned
            failures.record(exc, f"{args.command} (closing)", failures.secrets_of(profile))
