"""Command line over the Desk facade. Exit codes: 0 ok, 1 error, 2 usage, 3 conflict."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from helpdesk.changes import Changes
from helpdesk.config import Profile, load_profile, set_password, with_agent
from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError
from helpdesk.store.queries import VIEWS

log = logging.getLogger("helpdesk")

Handler = Callable[[Desk, argparse.Namespace], int]
COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = fn
        return fn
    return register


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2, default=str)
    sys.stdout.write("\n")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="helpdesk", description="Help desk for a shared mailbox.")
    p.add_argument("--config", metavar="FILE", help="profile TOML (default: $HELPDESK_CONFIG, "
                   "else the user config dir)")
    p.add_argument("--agent", metavar="NAME", help="act as this agent (overrides the profile)")
    p.add_argument("--demo", action="store_true", help="use the built-in demo mailbox")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("sync", help="sync mail and team state (keeps going unless --once)")
    s.add_argument("--once", action="store_true", help="sync once and exit")

    t = sub.add_parser("tickets", help="list tickets")
    t.add_argument("--view", choices=VIEWS, default="open")
    t.add_argument("--search", default="", metavar="TEXT")
    t.add_argument("--json", action="store_true")

    sh = sub.add_parser("show", help="show one ticket and its messages")
    sh.add_argument("ticket")
    sh.add_argument("--json", action="store_true")

    st = sub.add_parser("status", help="last sync, last error, counts")
    st.add_argument("--json", action="store_true")

    for name, text in (("claim", "claim a ticket (exit 3 if a teammate holds it)"),
                       ("release", "release your claim"),
                       ("takeover", "take a ticket over from the teammate holding it"),
                       ("reopen", "reopen a closed ticket")):
        c = sub.add_parser(name, help=text)
        c.add_argument("ticket")
    cl = sub.add_parser("close", help="close a ticket (releases the claim)")
    cl.add_argument("ticket")
    cl.add_argument("--cared", choices=("yes", "no"),
                    help="did this customer feel we genuinely cared?")

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

    from helpdesk import cli_cards, cli_metrics
    cli_cards.add_parsers(sub)
    cli_metrics.add_parsers(sub)

    pw = sub.add_parser("set-password", help="store the IMAP or SMTP password in the OS keyring")
    pw.add_argument("protocol", choices=("imap", "smtp"))

    return p


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("No tickets.")
        return
    for r in rows:
        flags = ("★" + (r["vip_tier"] or "VIP") + " " if r["vip"] else "") + \
                ("♥ " if r["white_glove"] else "")
        holder = f" [{r['claimed_by']}]" if r["claimed_by"] else ""
        print(f"{r['id']}  {r['status']:<7} {flags}{r['customer'] or '?':<28} "
              f"{r['subject'][:60]}{holder}")


@command("tickets")
def cmd_tickets(desk: Desk, args: argparse.Namespace) -> int:
    rows = desk.tickets(args.view, args.search)
    if args.json:
        emit_json(rows)
    else:
        _print_table(rows)
    return 0


@command("show")
def cmd_show(desk: Desk, args: argparse.Namespace) -> int:
    data = desk.ticket(args.ticket)
    if args.json:
        emit_json(data)
        return 0
    print(f"#{data['id']}  {data['subject']}")
    print(f"customer: {data['customer_name'] or ''} <{data['customer']}>   status: "
          f"{data['status']}   held by: {data['claimed_by'] or 'nobody'}")
    for m in data["messages"]:
        arrow = "→" if m["direction"] == "out" else "←"
        print(f"\n{arrow} {m['from_name'] or ''} <{m['from']}>  {m['date']}")
        print(m["text"].strip() or "(no text)")
        for a in m["attachments"]:
            print(f"  📎 {a['filename']} ({a['size']} bytes)")
    return 0


@command("status")
def cmd_status(desk: Desk, args: argparse.Namespace) -> int:
    data = desk.status()
    if args.json:
        emit_json(data)
        return 0
    print(f"agent: {data['agent']}")
    print(f"last sync: {data['last_sync'] or 'never'}")
    if data["last_error"]:
        print(f"last error: {data['last_error']} ({data['last_error_at']})")
    print("tickets: " + ", ".join(f"{k} {v}" for k, v in data["counts"].items()))
    print(f"messages: {data['messages']}")
    return 0


@command("claim")
def cmd_claim(desk: Desk, args: argparse.Namespace) -> int:
    info = desk.claim(args.ticket)
    print(f"You ({desk.agent}) hold ticket {info.ticket}.")
    return 0


@command("takeover")
def cmd_takeover(desk: Desk, args: argparse.Namespace) -> int:
    info = desk.takeover(args.ticket)
    taken = f" (taken over from {info.previous}, who will be told)" if info.previous else ""
    print(f"You ({desk.agent}) hold ticket {info.ticket}{taken}.")
    return 0


@command("release")
def cmd_release(desk: Desk, args: argparse.Namespace) -> int:
    desk.release(args.ticket)
    holder = desk.holder(desk.resolve_ticket(args.ticket))
    if holder.agent and holder.agent != desk.agent:
        print(f"Ticket is held by {holder.agent}; only they can release it.")
    else:
        print("Released.")
    return 0


@command("close")
def cmd_close(desk: Desk, args: argparse.Namespace) -> int:
    tid = desk.resolve_ticket(args.ticket)
    desk.close_ticket(tid, cared=None if args.cared is None else args.cared == "yes")
    print("Closed.")
    if desk.metrics.survey_after_close(tid):
        print("A one-question satisfaction survey is queued for the customer.")
    return 0


@command("reopen")
def cmd_reopen(desk: Desk, args: argparse.Namespace) -> int:
    desk.reopen(args.ticket)
    print("Reopened.")
    return 0


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
    print(f"{data['name'] or ''} <{data['email']}>  {', '.join(flags)}")
    for key in ("preferred_name", "birthday", "heard_from", "organisation"):
        if data[key]:
            print(f"  {key.replace('_', ' ')}: {data[key]}")
    for n in data["notes"]:
        print(f"  note {n['id'][:8]} by {n['agent']} at {n['at']}: {n['text']}")
    print(f"  tickets: {', '.join(data['tickets']) or 'none'}")
    return 0


def _read_body(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise HelpdeskError(f"Cannot read {path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise HelpdeskError(f"{path} is not UTF-8 text.") from None


@command("reply")
def cmd_reply(desk: Desk, args: argparse.Namespace) -> int:
    result = desk.reply(args.ticket, _read_body(args.body_file), close=args.close)
    print(result["message"])
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
        print("The outbox is empty.")
    for i in items:
        print(f"{i['id']:>4}  {i['state']:<9} #{i['ticket_id'] or '-'}  {i['to'][0]}  "
              f"{i['subject'][:50]}" + (f"\n      {i['last_error']}" if i["last_error"] else ""))
    return 0


@command("templates")
def cmd_templates(desk: Desk, args: argparse.Namespace) -> int:
    if args.action == "add":
        desk.save_template(args.name, _read_body(args.body_file))
        print(f"Saved reply '{args.name}' stored for the team.")
        return 0
    if args.action == "delete":
        desk.delete_template(args.name)
        print(f"Saved reply '{args.name}' deleted.")
        return 0
    items = desk.templates()
    if args.json:
        emit_json(items)
    elif not items:
        print("No saved replies yet.")
    else:
        for t in items:
            print(f"{t['name']}: {t['body'][:70]!r}")
    return 0


def _changed(changes: Changes) -> str:
    if "*" in changes.tickets:
        return "many tickets changed"
    return f"{len(changes.tickets)} tickets changed"


@command("sync")
def cmd_sync(desk: Desk, args: argparse.Namespace) -> int:
    if args.once:
        changes = desk.sync_once()
        print(f"synced: {_changed(changes)}")
        return 0
    loop = desk.push_loop(
        on_status=lambda s: print(("sync ok" if s.ok else f"sync failed: {s.message} "
                                   f"(retrying in {s.retry_in:.0f} s)"), file=sys.stderr)
        if not s.ok or args.verbose else None,
        on_changes=lambda c: print(_changed(c), flush=True))
    stop = threading.Event()

    def interrupt(_sig: int, _frame: Any) -> None:
        loop.stop()
        stop.set()

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    loop.run()
    return 0


def _profile_for(args: argparse.Namespace) -> Profile:
    if args.demo:
        from helpdesk.demo import demo_profile
        profile = demo_profile(args.agent or "agent-a")
    else:
        profile = load_profile(args.config)
    if args.agent:
        profile = with_agent(profile, args.agent)
    return profile


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        from ui.app import run_gui
        return int(run_gui(args))
    desk: Desk | None = None
    try:
        profile = _profile_for(args)
        if args.command == "set-password":
            server = profile.imap if args.protocol == "imap" else profile.smtp
            set_password(server, args.protocol,
                         getpass.getpass(f"{args.protocol.upper()} password for "
                                         f"{server.username}@{server.host}: "))
            print("Saved in the OS keyring.")
            return 0
        desk = Desk(profile)
        return COMMANDS[args.command](desk, args)
    except HelpdeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        if desk is not None:
            desk.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
