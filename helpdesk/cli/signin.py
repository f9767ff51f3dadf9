"""``login imap|smtp [--device]`` and ``logout imap|smtp``: OAuth2 sign-in (no Desk needed).

``status`` (helpdesk/cli/tickets.py) shows each side's sign-in with :func:`sign_in_lines`.
"""

from __future__ import annotations

import argparse
from typing import Any

from helpdesk.auth import DeviceCode, sign_in, sign_out
from helpdesk.cli.output import say
from helpdesk.cli.registry import profile_command
from helpdesk.clock import iso
from helpdesk.config import Profile


def add_parsers(sub: Any) -> None:
    li = sub.add_parser("login", help="sign in with OAuth2 (Google, Microsoft 365, ...) and "
                        "keep the token in the OS keyring")
    li.add_argument("protocol", choices=("imap", "smtp"))
    li.add_argument("--device", action="store_true",
                    help="sign in with a code on another device (no browser here)")
    lo = sub.add_parser("logout", help="forget (and revoke) the OAuth2 sign-in")
    lo.add_argument("protocol", choices=("imap", "smtp"))


def _sides(sides: list[str]) -> str:
    return " and ".join(s.upper() for s in sides)


@profile_command("login")
def cmd_login(profile: Profile, args: argparse.Namespace) -> int:
    def show(code: DeviceCode) -> None:
        say(code.text())
        say("Waiting for you to approve...")

    if not args.device:
        say("Opening your browser to sign in (if none opens, use 'login "
            f"{args.protocol} --device')...")
    done = sign_in(profile, args.protocol, device=args.device, show=show)
    who = f" as {done.user}" if done.user else ""
    shared = " (they share one sign-in)" if len(done.sides) > 1 else ""
    say(f"Signed in for {_sides(done.sides)}{who}{shared}; the access token runs until "
        f"{iso(done.expires_at)} and renews itself.")
    return 0


@profile_command("logout")
def cmd_logout(profile: Profile, args: argparse.Namespace) -> int:
    sides, had, revoked = sign_out(profile, args.protocol)
    if not had:
        say(f"Not signed in for {_sides(sides)}; nothing to forget.")
        return 0
    how = ("revoked at the provider and forgotten here" if revoked
           else "forgotten on this computer (revoke it at the provider to end it everywhere)")
    say(f"Signed out of {_sides(sides)}: the sign-in was {how}.")
    return 0


def sign_in_lines(states: dict[str, dict[str, Any]]) -> list[str]:
    """``status`` lines: one per side that signs in with OAuth2."""
    lines: list[str] = []
    for side, st in states.items():
        if st.get("auth") != "oauth2":
            continue
        head = f"{side} sign-in ({st['provider']}, {st['username']}): "
        if st["signed_in"]:
            who = f" as {st['user']}" if st.get("user") else ""
            until = (f"; token valid until {st['token_expires_at']}"
                     if st.get("token_expires_at") else "")
            lines.append(head + f"signed in{who}{until}")
        else:
            lines.append(head + f"not signed in (run 'login {side}')")
        if st.get("problem"):
            lines.append(f"  {st['problem']}")
    return lines
