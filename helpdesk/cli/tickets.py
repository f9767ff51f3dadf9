"""Tickets and claims: ``tickets``, ``show``, ``status``, ``claim``, ``release``,
``takeover``, ``close``, ``reopen``, ``merge``."""

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
    t.add_argument("--search", default="", metavar="TEXT",
                   help="words to find; tag:NAME keeps tickets with that tag")
    t.add_argument("--tag", action="append", default=[], metavar="TAG",
                   help="only tickets with this tag (repeat: with all of them)")
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
    mg = sub.add_parser("merge", help="merge a ticket into another, for the whole team")
    mg.add_argument("ticket")
    mg.add_argument("into")
    mg.add_argument("--json", action="store_true")
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
        owner = f" (assigned: {r['assignee']})" if r.get("assignee") else ""
        tags = " " + " ".join(f"#{t}" for t in r["tags"]) if r.get("tags") else ""
        say(f"{r['id']}  {r['status']:<7} {flags}{r['customer'] or '?':<28} "
            f"{r['subject'][:60]}{holder}{owner}{tags}")


@command("tickets")
def cmd_tickets(desk: Desk, args: argparse.Namespace) -> int:
    from helpdesk.errors import HelpdeskError
    from helpdesk.team.ticket_marks import normalise_tag

    tags = []
    for value in args.tag:
        tag = normalise_tag(value)
        if tag is None:
            raise HelpdeskError(f"'{value}' is not a tag.")
        tags.append(tag)
    rows = desk.tickets(args.view, args.search, tuple(tags))
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
    extra = []
    if data["assignee"]:
        extra.append(f"assigned to: {data['assignee']}")
    if data["snoozed_until"]:
        extra.append(f"snoozed until: {data['snoozed_until']}")
    if data["tags"]:
        extra.append("tags: " + ", ".join(data["tags"]))
    if data["spam"]:
        extra.append("spam")
    if extra:
        say("   ".join(extra))
    messages = {m["id"]: m for m in data["messages"]}
    notes = {n["id"]: n for n in data["notes"]}
    for item in data["timeline"]:
        if item["kind"] == "note":
            n = notes[item["id"]]
            say(f"\n✎ internal note by {n['agent']}  {n['at']}")
            say(n["text"])
            continue
        m = messages[item["id"]]
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
    if data["team_log"]["note"]:
        say(data["team_log"]["note"])
    older = data["older_mail"]
    if older["pending"]:
        say(f"older mail: {older['stored']} of {older['total']} messages in, still coming")
    if older.get("team_history"):
        say("team history (notes, cared answers, past status changes): stored by the next "
            "sync")
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


@command("merge")
def cmd_merge(desk: Desk, args: argparse.Namespace) -> int:
    src = desk.resolve_ticket(args.ticket)
    desk.merge(args.ticket, args.into)
    into = desk.resolve_ticket(src)
    if args.json:
        emit_json({"ticket": src, "into": into})
    else:
        say(f"Ticket {src} is merged into {into}; {src} now opens it.")
    return 0
