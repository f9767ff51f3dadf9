"""``set-password imap|smtp``: store a password in the OS keyring (no Desk needed)."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from helpdesk.cli.output import clean, say
from helpdesk.cli.registry import profile_command
from helpdesk.config import Profile, set_password
from helpdesk.errors import HelpdeskError


def add_parsers(sub: Any) -> None:
    pw = sub.add_parser("set-password", help="store the IMAP or SMTP password in the OS keyring")
    pw.add_argument("protocol", choices=("imap", "smtp"))


@profile_command("set-password")
def cmd_set_password(profile: Profile, args: argparse.Namespace) -> int:
    server = profile.imap if args.protocol == "imap" else profile.smtp
    try:
        secret = getpass.getpass(clean(f"{args.protocol.upper()} password for "
                                       f"{server.username}@{server.host}: "))
    except EOFError:
        raise HelpdeskError("No password was typed (standard input ended).") from None
    set_password(server, args.protocol, secret)
    say("Saved in the OS keyring.")
    return 0
