"""Tickets and claims: ``tickets``, ``show``, ``status``, ``claim``, ``release``,
``takeover``, ``close``, ``reopen``."""

from __future__ import annotations

import argparse
from typing import Any

from helpdesk.cli.output import emit_json, say
from helpdesk.cli.registry import command
from helpdesk.desk import Desk
from helpdesk.store.queries import VIEWS


def add_parsers(sub: Any) -> None:
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


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        say("No tickets.")
        return
    for r in rows:
        flags = ("★" + (r["vip_tier"] or "VIP") + " " if r["vip"] else "") + \
                ("♥ " if r["white_glove"] else "")
        holder = f" [{r['claimed_by']}]" if r["claimed_by"] else ""
        say(f"{r['id']}  {r['status']:<7} {flags}{r['customer'] or '?':<28} "
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
    say(f"#{data['id']}  {data['subject']}")
    say(f"customer: {data['customer_name'] or ''} <{data['customer']}>   status: "
        f"{data['status']}   held by: {data['claimed_by'] or 'nobody'}")
    for m in data["messages"]:
        arrow = "→" if m["direction"] == "out" else "←"
        say(f"\n{arrow} {m['from_name'] or ''} <{m['from']}>  {m['date']}")
        say(m["text"].strip() or "(no text)")
        for a in m["attachments"]:
            say(f"  📎 {a['filename']} ({a['size']} bytes)")
    return 0


@command("status")
def cmd_status(desk: Desk, args: argparse.Namespace) -> int:
    from helpdesk.auth import state
    from helpdesk.cli.signin import sign_in_lines

    data = desk.status()
    data["sign_in"] = {side: state(desk.profile, side) for side in ("imap", "smtp")}
    if args.json:
        emit_json(data)
        return 0
    say(f"agent: {data['agent']}")
    say(f"last sync: {data['last_sync'] or 'never'}")
    if data["last_error"]:
        say(f"last error: {data['last_error']} ({data['last_error_at']})")
    say("tickets: " + ", ".join(f"{k} {v}" for k, v in data["counts"].items()))
    say(f"messages: {data['messages']}")
    older = data["older_mail"]
    if older["pending"]:
        say(f"older mail: {older['stored']} of {older['total']} messages in, still coming")
    for line in sign_in_lines(data["sign_in"]):
        say(line)
    return 0


@command("claim")
def cmd_claim(desk: Desk, args: argparse.Namespace) -> int:
    info = desk.claim(args.ticket)
    say(f"You ({desk.agent}) hold ticket {info.ticket}.")
    return 0


@command("takeover")
def cmd_takeover(desk: Desk, args: argparse.Namespace) -> int:
    info = desk.takeover(args.ticket)
    taken = f" (taken over from {info.previous}, who will be told)" if info.previous else ""
    say(f"You ({desk.agent}) hold ticket {info.ticket}{taken}.")
    return 0


@command("release")
def cmd_release(desk: Desk, args: argparse.Namespace) -> int:
    desk.release(args.ticket)
    holder = desk.holder(desk.resolve_ticket(args.ticket))
    if holder.agent and holder.agent != desk.agent:
        say(f"Ticket is held by {holder.agent}; only they can release it.")
    else:
        say("Released.")
    return 0


@command("close")
def cmd_close(desk: Desk, args: argparse.Namespace) -> int:
    tid = desk.resolve_ticket(args.ticket)
    desk.close_ticket(tid, cared=None if args.cared is None else args.cared == "yes")
    say("Closed.")
    if desk.metrics.survey_after_close(tid):
        say("A one-question satisfaction survey is queued for the customer.")
    return 0


@command("reopen")
def cmd_reopen(desk: Desk, args: argparse.Namespace) -> int:
    desk.reopen(args.ticket)
    say("Reopened.")
    return 0
