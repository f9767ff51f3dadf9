"""Customers: ``customer EMAIL`` shows one and changes VIP, white-glove, notes, profile."""

from __future__ import annotations

import argparse
from typing import Any

from helpdesk.cli.output import emit_json, say
from helpdesk.cli.registry import command
from helpdesk.desk import Desk


def add_parsers(sub: Any) -> None:
    cu = sub.add_parser("customer", help="show or change a customer")
    cu.add_argument("email")
    vip = cu.add_mutually_exclusive_group()
    vip.add_argument("--vip", metavar="TIER", help="mark as VIP with this tier label")
    vip.add_argument("--no-vip", action="store_true", help="remove the VIP mark")
    wg = cu.add_mutually_exclusive_group()
    wg.add_argument("--white-glove", action="store_true", dest="white_glove", default=None)
    wg.add_argument("--no-white-glove", action="store_false", dest="white_glove")
    cu.add_argument("--note", metavar="TEXT", help="add a personal-touch note")
    cu.add_argument("--delete-note", metavar="NOTE_ID")
    cu.add_argument("--preferred-name", metavar="NAME")
    cu.add_argument("--birthday", metavar="YYYY-MM-DD")
    cu.add_argument("--heard-from", metavar="TEXT", help='"how did you hear about us?"')
    cu.add_argument("--json", action="store_true")


@command("customer")
def cmd_customer(desk: Desk, args: argparse.Namespace) -> int:
    profile = {k: v for k, v in (("preferred_name", args.preferred_name),
                                 ("birthday", args.birthday),
                                 ("heard_from", args.heard_from)) if v is not None}
    vip = True if args.vip else (False if args.no_vip else None)
    desk.update_customer(args.email, vip=vip, tier=args.vip, white_glove=args.white_glove,
                         note=args.note, **profile)
    if args.delete_note:
        desk.delete_note(args.email, args.delete_note)
    data = desk.customer(args.email)
    if args.json:
        emit_json(data)
        return 0
    flags = []
    if data["vip"]:
        flags.append(f"VIP ({data['vip_tier']})")
    if data["white_glove"]:
        flags.append("white-glove")
    say(f"{data['name'] or ''} <{data['email']}>  {', '.join(flags)}")
    for key in ("preferred_name", "birthday", "heard_from", "organisation"):
        if data[key]:
            say(f"  {key.replace('_', ' ')}: {data[key]}")
    for n in data["notes"]:
        say(f"  note {n['id'][:8]} by {n['agent']} at {n['at']}: {n['text']}")
    say(f"  tickets: {', '.join(data['tickets']) or 'none'}")
    return 0
