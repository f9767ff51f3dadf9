"""Teamwork on a ticket: ``note``, ``assign``, ``unassign``, ``snooze``, ``unsnooze``,
``tag``, ``tags``, ``spam``, ``unspam`` and ``mine``."""

from __future__ import annotations

import argparse
from typing import Any

from helpdesk.cli.output import emit_json, say
from helpdesk.cli.registry import command
from helpdesk.desk import Desk
from helpdesk.teamwork import parse_duration, parse_until


def add_parsers(sub: Any) -> None:
    n = sub.add_parser("note", help="add an internal note to a ticket (@agent tells them; "
                       "never sent to the customer)")
    n.add_argument("ticket")
    n.add_argument("--text", required=True)
    n.add_argument("--json", action="store_true")

    a = sub.add_parser("assign", help="make an agent the ticket's owner (they are told)")
    a.add_argument("ticket")
    a.add_argument("agent")
    u = sub.add_parser("unassign", help="the ticket has no assigned owner any more")
    u.add_argument("ticket")

    s = sub.add_parser("snooze", help="hide a ticket from the open views until a time")
    s.add_argument("ticket")
    when = s.add_mutually_exclusive_group(required=True)
    when.add_argument("--until", metavar="YYYY-MM-DDTHH:MM",
                      help="local time (end with Z for UTC)")
    when.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 2h, 3d, 1w")
    us = sub.add_parser("unsnooze", help="bring a snoozed ticket back now")
    us.add_argument("ticket")

    t = sub.add_parser("tag", help="add or remove tags on a ticket")
    t.add_argument("ticket")
    t.add_argument("--add", action="append", default=[], metavar="TAG")
    t.add_argument("--remove", action="append", default=[], metavar="TAG")
    ts = sub.add_parser("tags", help="every tag in use, with its ticket count")
    ts.add_argument("--json", action="store_true")

    sp = sub.add_parser("spam", help="close a ticket and send later mail from its sender to "
                        "the spam view")
    sp.add_argument("ticket")
    sp.add_argument("--domain", action="store_true", help="block the sender's whole domain")
    un = sub.add_parser("unspam", help="mail from this address (or domain) is no spam")
    un.add_argument("address")

    m = sub.add_parser("mine", help="tickets assigned to me or held by me")
    m.add_argument("--json", action="store_true")


@command("note")
def cmd_note(desk: Desk, args: argparse.Namespace) -> int:
    out = desk.note(args.ticket, args.text)
    if args.json:
        emit_json(out)
    else:
        told = f"; told {', '.join(out['mentions'])}" if out["mentions"] else ""
        say(f"Note added to ticket {out['ticket']}{told}.")
    return 0


@command("assign")
def cmd_assign(desk: Desk, args: argparse.Namespace) -> int:
    desk.assign(args.ticket, args.agent)
    say(f"Ticket {desk.resolve_ticket(args.ticket)} is assigned to {args.agent.strip()}.")
    return 0


@command("unassign")
def cmd_unassign(desk: Desk, args: argparse.Namespace) -> int:
    desk.unassign(args.ticket)
    say(f"Ticket {desk.resolve_ticket(args.ticket)} is assigned to nobody.")
    return 0


@command("snooze")
def cmd_snooze(desk: Desk, args: argparse.Namespace) -> int:
    if args.until is not None:
        desk.snooze(args.ticket, until=parse_until(args.until))
    else:
        desk.snooze(args.ticket, seconds=parse_duration(args.duration))
    row = desk.ticket(args.ticket)
    say(f"Ticket {row['id']} is snoozed until {row['snoozed_until'] or 'now'} (server time, "
        f"UTC), or until the customer writes.")
    return 0


@command("unsnooze")
def cmd_unsnooze(desk: Desk, args: argparse.Namespace) -> int:
    desk.unsnooze(args.ticket)
    say(f"Ticket {desk.resolve_ticket(args.ticket)} is back in the open views.")
    return 0


@command("tag")
def cmd_tag(desk: Desk, args: argparse.Namespace) -> int:
    desk.tag(args.ticket, args.add, args.remove)
    tags = desk.ticket(args.ticket)["tags"]
    say(f"Tags: {', '.join(tags) if tags else '(none)'}")
    return 0


@command("tags")
def cmd_tags(desk: Desk, args: argparse.Namespace) -> int:
    counts = desk.tag_counts()
    if args.json:
        emit_json([{"tag": t, "count": c} for t, c in counts.items()])
    elif not counts:
        say("No tags.")
    else:
        for tag, count in counts.items():
            say(f"{tag}  {count}")
    return 0


@command("spam")
def cmd_spam(desk: Desk, args: argparse.Namespace) -> int:
    out = desk.spam(args.ticket, args.domain)
    who = f"anyone at {out['blocked']}" if out["kind"] == "domain" else out["blocked"]
    say(f"Ticket {out['ticket']} is closed; later mail from {who} goes to the spam view.")
    return 0


@command("unspam")
def cmd_unspam(desk: Desk, args: argparse.Namespace) -> int:
    lifted = desk.unspam(args.address)
    say(f"Mail from {', '.join(lifted)} is no longer treated as spam.")
    return 0


@command("mine")
def cmd_mine(desk: Desk, args: argparse.Namespace) -> int:
    from helpdesk.cli.tickets import _print_table

    rows = desk.tickets("mine")
    if args.json:
        emit_json(rows)
    else:
        _print_table(rows)
    return 0
