"""Outgoing mail: ``reply``, ``forward``, ``compose``, ``outbox``, ``signature`` and saved
replies (``templates``).

Mail a person writes waits out the profile's undo window (``send_delay_seconds``) in
the outbox, stored before any network I/O: the command says "Sending in N s", waits,
then sends it, unless ``outbox --cancel ID`` (from another terminal) undid it first.
``--now`` skips the wait. A process killed while it waits loses nothing: the next
``sync`` sends the item once its window is over.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from helpdesk.cli.output import emit_json, say
from helpdesk.cli.registry import command
from helpdesk.clock import utcnow
from helpdesk.desk import Desk, Draft, FileAttachment
from helpdesk.errors import HelpdeskError


def _recipients(p: argparse.ArgumentParser, to_required: bool = False) -> None:
    p.add_argument("--to", action="append", default=[], metavar="ADDR", required=to_required,
                   help="a recipient (repeat for more)" + ("" if to_required else
                                                            "; default: the customer"))
    p.add_argument("--cc", action="append", default=[], metavar="ADDR", help="a Cc recipient")
    p.add_argument("--bcc", action="append", default=[], metavar="ADDR",
                   help="a Bcc recipient (in no header)")


def _extras(p: argparse.ArgumentParser) -> None:
    p.add_argument("--attach", action="append", default=[], metavar="FILE",
                   help="attach a file (repeat for more)")
    p.add_argument("--now", action="store_true", help="send at once, without the undo window")
    p.add_argument("--no-signature", action="store_true", help="leave the signature out")


def add_parsers(sub: Any) -> None:
    rp = sub.add_parser("reply", help="reply to a ticket (exit 3 if a teammate holds it)")
    rp.add_argument("ticket")
    rp.add_argument("--body-file", required=True, metavar="FILE",
                    help="the reply text ('-' reads standard input)")
    rp.add_argument("--close", action="store_true", help="close the ticket once sent")
    _recipients(rp)
    rp.add_argument("--all", action="store_true",
                    help="reply to all: also Cc the others on the message (never us)")
    rp.add_argument("--no-quote", action="store_true",
                    help="do not quote the answered message below the reply")
    _extras(rp)

    fw = sub.add_parser("forward", help="forward a ticket's message with its attachments")
    fw.add_argument("ticket")
    _recipients(fw, to_required=True)
    fw.add_argument("--body-file", metavar="FILE", help="a note above the forwarded message")
    fw.add_argument("--message", type=int, metavar="N",
                    help="which message (1 = the first, as 'show' lists them; default: the "
                    "customer's latest)")
    _extras(fw)

    cp = sub.add_parser("compose", help="start a new conversation; prints its ticket id")
    _recipients(cp, to_required=True)
    cp.add_argument("--subject", required=True, metavar="TEXT")
    cp.add_argument("--body-file", required=True, metavar="FILE")
    cp.add_argument("--json", action="store_true")
    _extras(cp)

    ob = sub.add_parser("outbox", help="pending and failed outgoing mail")
    ob.add_argument("--json", action="store_true")
    ob.add_argument("--retry", type=int, metavar="ID", help="send a failed or held item again")
    ob.add_argument("--discard", type=int, metavar="ID", help="drop an unsent item")
    ob.add_argument("--cancel", type=int, metavar="ID",
                    help="undo a send still in its window: nothing goes, the draft is kept")
    ob.add_argument("--approve", metavar="ID", help="approve a newcomer's held reply (IDs: "
                    "'approvals'); their desktop sends it once")

    sg = sub.add_parser("signature", help="your signature, or the team's (--team)")
    sg.add_argument("--team", action="store_true", help="the team's signature")
    what = sg.add_mutually_exclusive_group(required=True)
    what.add_argument("--body-file", metavar="FILE",
                      help="set it ({agent}, {first_name}... placeholders; empty file: remove)")
    what.add_argument("--show", action="store_true", help="print it")
    sg.add_argument("--json", action="store_true")

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


def read_attachments(paths: list[str]) -> list[FileAttachment]:
    """Every ``--attach`` file, read before anything is queued (a clear error, nothing lost)."""
    out = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise HelpdeskError(f"Cannot attach {path}: {exc.strerror or exc}.") from None
        out.append(FileAttachment.of(Path(path).name, data))
    return out


def _draft(args: argparse.Namespace, body: str) -> Draft:
    return Draft(body=body, cc=list(args.cc), bcc=list(args.bcc),
                 attachments=read_attachments(args.attach), now=args.now,
                 signature=not args.no_signature)


def wait_and_send(desk: Desk, result: dict[str, Any], quiet: bool = False) -> dict[str, Any]:
    """Wait out the item's undo window in this process, then send it (unless cancelled)."""
    due = result.get("not_before")
    if result.get("state") != "queued" or due is None:
        return result
    if not quiet:
        say(result["message"])
        sys.stdout.flush()
    item_id = int(result["outbox_id"])
    while (left := (due - utcnow()).total_seconds()) > 0:
        time.sleep(min(left, 0.25))  # the window is a time to wait for, not a condition
        if desk.session.outbox.get(item_id).state != "queued":
            break  # cancelled from another terminal (or sent by another process)
    return desk.send_due(item_id)


def _report(result: dict[str, Any]) -> int:
    say(result["message"])
    return 1 if result["state"] == "failed" else 0


@command("reply")
def cmd_reply(desk: Desk, args: argparse.Namespace) -> int:
    draft = _draft(args, read_body(args.body_file))
    draft.to = list(args.to) or None
    draft.reply_all = args.all
    draft.quote = not args.no_quote
    result = desk.reply(args.ticket, draft.body, close=args.close, draft=draft)
    return _report(wait_and_send(desk, result))


@command("forward")
def cmd_forward(desk: Desk, args: argparse.Namespace) -> int:
    draft = _draft(args, read_body(args.body_file) if args.body_file else "")
    result = desk.forward(args.ticket, list(args.to), draft, args.message)
    return _report(wait_and_send(desk, result))


@command("compose")
def cmd_compose(desk: Desk, args: argparse.Namespace) -> int:
    draft = _draft(args, read_body(args.body_file))
    result = wait_and_send(desk, desk.compose(list(args.to), args.subject, draft),
                           quiet=args.json)
    if args.json:
        emit_json({"ticket": result["ticket"], "outbox_id": result["outbox_id"],
                   "state": result["state"], "message": result["message"]})
    else:
        say(result["message"])
        say(result["ticket"])  # last, alone on its line: for scripts
    return 1 if result["state"] == "failed" else 0


@command("outbox")
def cmd_outbox(desk: Desk, args: argparse.Namespace) -> int:
    if args.cancel is not None:
        done = desk.cancel_outbox(args.cancel)
        say(f"{done['message']} (draft: {done['draft']})")
    if args.retry is not None:
        desk.retry_outbox(args.retry)
        desk.flush_outbox(force=True)
    if args.discard is not None:
        desk.discard_outbox(args.discard)
    if args.approve is not None:
        done = desk.rota.approve(args.approve)
        say(f"Approved {done['agent']}'s reply \"{done['subject'][:60]}\"" +
            ("" if done["approved_by"] == desk.agent else
             f" (already approved by {done['approved_by']})") + "; it goes once.")
        if not args.json:
            return 0
    items = desk.outbox()
    if args.json:
        emit_json(items)
        return 0
    if args.cancel is not None:
        return 0
    if not items:
        say("The outbox is empty.")
    for i in items:
        waiting = f"  (sending at {i['not_before']})" if i["state"] == "queued" and \
            i["not_before"] else ""
        files = f"  +{len(i['attachments'])} file(s)" if i["attachments"] else ""
        say(f"{i['id']:>4}  {i['state']:<9} #{i['ticket_id'] or '-'}  {i['to'][0]}  "
            f"{i['subject'][:50]}{files}{waiting}"
            + (f"\n      {i['last_error']}" if i["last_error"] else ""))
    asks = [r for r in desk.rota.approvals() if r["agent"] != desk.agent]
    if asks:
        say(f"{len(asks)} teammate's repl{'y' if len(asks) == 1 else 'ies'} waiting for "
            "your approval: see 'approvals'.")
    return 0


@command("signature")
def cmd_signature(desk: Desk, args: argparse.Namespace) -> int:
    which = "team" if args.team else "personal"
    if args.body_file is not None:
        body = read_body(args.body_file).strip("\n")
        desk.set_signature(body, team=args.team)
        who = "The team's signature" if args.team else f"{desk.agent}'s signature"
        say(f"{who} {'was removed' if not body.strip() else 'is stored for the team'}.")
        return 0
    found = desk.signatures()
    if args.json:
        emit_json({"team": found["team"], "personal": found["personal"],
                   "used": found["personal"] or found["team"]})
    elif found[which]:
        say(found[which])
    else:
        say("No team signature is set." if args.team else
            "No personal signature is set" + (" (the team's is used)." if found["team"]
                                              else "."))
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
