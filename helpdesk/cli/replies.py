"""Outgoing mail: ``reply``, ``outbox`` and saved replies (``templates``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from helpdesk.cli.output import emit_json, say
from helpdesk.cli.registry import command
from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError


def add_parsers(sub: Any) -> None:
    rp = sub.add_parser("reply", help="reply to a ticket (exit 3 if a teammate holds it)")
    rp.add_argument("ticket")
    rp.add_argument("--body-file", required=True, metavar="FILE",
                    help="the reply text ('-' reads standard input)")
    rp.add_argument("--close", action="store_true", help="close the ticket once sent")

    ob = sub.add_parser("outbox", help="pending and failed outgoing mail")
    ob.add_argument("--json", action="store_true")
    ob.add_argument("--retry", type=int, metavar="ID", help="send a failed or held item again")
    ob.add_argument("--discard", type=int, metavar="ID", help="drop an unsent item")

    tp = sub.add_parser("templates", help="saved replies shared by the team")
    tp_sub = tp.add_subparsers(dest="action", metavar="ACTION")
    tp.add_argument("--json", action="store_true")
    tadd = tp_sub.add_parser("add", help="add or replace a saved reply")
    tadd.add_argument("name")
    tadd.add_argument("--body-file", required=True, metavar="FILE")
    tdel = tp_sub.add_parser("delete", help="delete a saved reply")
    tdel.add_argument("name")


def read_body(path: str) -> str:
    """The text of ``path`` ('-' for standard input), or a HelpdeskError saying why not."""
    if path == "-":
        try:
            return sys.stdin.read()
        except UnicodeDecodeError:
            raise HelpdeskError("Standard input is not UTF-8 text.") from None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise HelpdeskError(f"Cannot read {path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise HelpdeskError(f"{path} is not UTF-8 text.") from None


@command("reply")
def cmd_reply(desk: Desk, args: argparse.Namespace) -> int:
    result = desk.reply(args.ticket, read_body(args.body_file), close=args.close)
    say(result["message"])
    return 1 if result["state"] == "failed" else 0


@command("outbox")
def cmd_outbox(desk: Desk, args: argparse.Namespace) -> int:
    if args.retry is not None:
        desk.retry_outbox(args.retry)
        desk.flush_outbox(force=True)
    if args.discard is not None:
        desk.discard_outbox(args.discard)
    items = desk.outbox()
    if args.json:
        emit_json(items)
        return 0
    if not items:
        say("The outbox is empty.")
    for i in items:
        say(f"{i['id']:>4}  {i['state']:<9} #{i['ticket_id'] or '-'}  {i['to'][0]}  "
            f"{i['subject'][:50]}" + (f"\n      {i['last_error']}" if i["last_error"] else ""))
    return 0


@command("templates")
def cmd_templates(desk: Desk, args: argparse.Namespace) -> int:
    if args.action == "add":
        desk.save_template(args.name, read_body(args.body_file))
        say(f"Saved reply '{args.name}' stored for the team.")
        return 0
    if args.action == "delete":
        desk.delete_template(args.name)
        say(f"Saved reply '{args.name}' deleted.")
        return 0
    items = desk.templates()
    if args.json:
        emit_json(items)
    elif not items:
        say("No saved replies yet.")
    else:
        for t in items:
            say(f"{t['name']}: {t['body'][:70]!r}")
    return 0
