"""CLI of the duty rota, newcomer weeks and the digest: ``rota show|set|swap|learning``,
``approvals``, ``digest``; ``outbox --approve`` lives with the outbox (cli/replies.py)."""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from helpdesk.cli.output import emit_json, say
from helpdesk.cli.registry import command
from helpdesk.desk import Desk
from helpdesk.digest.service import render_text
from helpdesk.errors import HelpdeskError


def add_parsers(sub: Any) -> None:
    """Add ``rota``, ``approvals`` and ``digest`` to the top-level subparsers."""
    rota = sub.add_parser("rota", help="the duty rota: who is on duty, the week ahead")
    actions = rota.add_subparsers(dest="rota_action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="on duty today and the week ahead")
    show.add_argument("--json", action="store_true")
    show.add_argument("--days", type=int, default=7, help="how many days ahead (default 7)")
    st = actions.add_parser("set", help="set the rotation for the whole team")
    st.add_argument("--people", required=True, metavar="A,B,C",
                    help="teammates in rotation order (empty: no rota)")
    st.add_argument("--days", type=int, default=1, help="length of a shift in working days")
    st.add_argument("--weekdays", metavar="mon-fri", help="working days (default: as now, "
                    "else mon-fri)")
    st.add_argument("--timezone", metavar="ZONE", help="the team's time zone, e.g. "
                    "Europe/Berlin (default: as now, else UTC)")
    st.add_argument("--covers", metavar="A=B,...", help="who covers whom (A is covered by B)")
    st.add_argument("--start", metavar="YYYY-MM-DD", help="the first person's first day "
                    "(default: today)")
    hand = st.add_mutually_exclusive_group()
    hand.add_argument("--handoff-minutes", type=int, metavar="N",
                      help="hand a new unclaimed ticket to the person on duty after N minutes")
    hand.add_argument("--no-handoff", action="store_true", help="no automatic hand-off")
    sw = actions.add_parser("swap", help="put AGENT on duty on DATE (one click in the app)")
    sw.add_argument("date", metavar="DATE")
    sw.add_argument("agent", metavar="AGENT", help="a teammate; '-' gives the day back to the "
                    "rotation")
    le = actions.add_parser("learning", help="newcomer weeks: hold AGENT's replies for a "
                            "teammate's approval")
    le.add_argument("agent", metavar="AGENT")
    which = le.add_mutually_exclusive_group(required=True)
    which.add_argument("--until", metavar="YYYY-MM-DD", help="the last day replies are held")
    which.add_argument("--done", action="store_true", help="no longer learning")

    ap = sub.add_parser("approvals", help="newcomers' replies waiting for approval")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--all", action="store_true", help="approved ones too")

    dg = sub.add_parser("digest", help="the weekly digest: what customers are telling us")
    dg.add_argument("--since", metavar="YYYY-MM-DD", help="from this date to today "
                    "(default: last week)")
    dg.add_argument("--send", action="store_true",
                    help="send it to the team's list (once per period, whoever sends it)")
    dg.add_argument("--recipients", metavar="A,B", help="set the team's list ('' for none)")
    dg.add_argument("--json", action="store_true")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise HelpdeskError(f"'{text}' is not a date like 2026-12-01.") from None


def _covers(text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    out: dict[str, str] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        who, sep, by = pair.partition("=")
        if not sep:
            raise HelpdeskError(f"'{pair}' is not A=B (A is covered by B).")
        out[who.strip()] = by.strip()
    return out


@command("rota")
def cmd_rota(desk: Desk, args: argparse.Namespace) -> int:
    if args.rota_action == "set":
        people = [p.strip() for p in args.people.split(",") if p.strip()]
        if not people:
            desk.rota.clear_rota()
            say("No rota: everyone sees new tickets as before.")
            return 0
        minutes: Any = None if args.no_handoff else args.handoff_minutes
        kw: dict[str, Any] = {} if minutes is None and not args.no_handoff else {
            "handoff_minutes": minutes}
        desk.rota.set_rota(people, days=args.days, weekdays=args.weekdays,
                           timezone=args.timezone, covers=_covers(args.covers),
                           start=args.start, **kw)
    elif args.rota_action == "swap":
        day = _day(args.date)
        desk.rota.swap(day.isoformat(), None if args.agent == "-" else args.agent)
    elif args.rota_action == "learning":
        until = None if args.done else _day(args.until).isoformat()
        desk.rota.set_learning(args.agent, until)
        say(f"{args.agent} is no longer learning." if until is None else
            f"{args.agent}'s replies wait for a teammate's approval through {until}.")
        return 0
    else:
        desk.refresh_team()
    shown = desk.rota.show(max(1, min(args.days if args.rota_action == "show" else 7, 62)))
    if getattr(args, "json", False):
        emit_json(shown)
        return 0
    _print_rota(shown)
    return 0


def _print_rota(shown: dict[str, Any]) -> None:
    rota = shown["rota"]
    if rota is None:
        say("No rota: the team answers as a free-for-all ('rota set --people a,b,c').")
        return
    today = shown["today"]
    who = today["agent"] or "nobody (a day off)"
    say(f"On duty today: {who}" + (f" (covered by {today['backup']})"
                                   if today["backup"] else ""))
    say(f"Rotation: {', '.join(rota['people'])}; {rota['days']} day(s) a shift on "
        f"{', '.join(rota['weekdays'])}; time zone {rota['timezone']}"
        + (f"; hand-off after {rota['handoff_minutes']} min" if rota["handoff_minutes"]
           else "; no automatic hand-off"))
    for d in shown["week"]:
        mark = "  (swapped)" if d["swapped"] else ""
        say(f"  {d['date']} {d['weekday']}  {d['agent'] or '-'}{mark}")
    for agent, until in shown["learning"].items():
        say(f"Learning: {agent} (replies approved through {until})")


@command("approvals")
def cmd_approvals(desk: Desk, args: argparse.Namespace) -> int:
    desk.refresh_team()
    items = desk.rota.approvals(pending_only=not args.all)
    if args.json:
        emit_json(items)
        return 0
    if not items:
        say("No reply is waiting for approval.")
    for r in items:
        state = f"approved by {r['approved_by']}" if r["approved_by"] else "waiting"
        say(f"{r['id']}  {r['agent']}  #{r['ticket'] or '-'}  {r['subject'][:50]}  ({state})")
        for line in r["text"].splitlines()[:12]:
            say(f"    | {line}")
    if items and not args.all:
        say("Approve one with 'outbox --approve ID'.")
    return 0


@command("digest")
def cmd_digest(desk: Desk, args: argparse.Namespace) -> int:
    if args.recipients is not None:
        desk.digest.set_recipients(args.recipients.split(","))
    desk.refresh_team()
    period = desk.digest.period(_day(args.since) if args.since else None)
    if args.send:
        done = desk.digest.send(period)
        if args.json:
            emit_json(done)
        elif done["state"] == "already sent":
            say(f"The digest of {done['period']} was already sent by {done['by']} "
                f"({done['at']}); it is not sent again.")
        else:
            say(f"The digest of {done['period']} is on its way to "
                f"{', '.join(desk.digest.recipients())}.")
        return 0
    data = desk.digest.build(period)
    if args.json:
        emit_json(data)
    else:
        say(render_text(data), end="")
    return 0


__all__ = ["add_parsers"]
