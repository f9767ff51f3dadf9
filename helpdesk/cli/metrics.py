"""CLI for surveys and service metrics: ``survey``, ``score``, ``metrics``.

``helpdesk.cli.build_parser`` calls :func:`add_parsers`; importing this module
registers the handlers with ``helpdesk.cli.registry.command``.
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from helpdesk.cli.output import emit_json, say
from helpdesk.cli.registry import command
from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a date like 2026-01-31") from None


def _nps_value(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = -1
    if not 0 <= n <= 10:
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number from 0 to 10")
    return n


def add_parsers(sub: Any) -> None:
    """Add ``survey``, ``score`` and ``metrics`` to the CLI's subparsers."""
    sv = sub.add_parser("survey", help="send the NPS survey for a ticket now")
    sv.add_argument("ticket")
    sv.add_argument("--again", action="store_true",
                    help="send even though this ticket was already surveyed")

    sc = sub.add_parser("score", help="record a score given another way (e.g. by phone)")
    sc.add_argument("ticket")
    sc.add_argument("--nps", type=_nps_value, required=True, metavar="N",
                    help="0 (not at all likely to recommend us) to 10 (extremely likely)")
    sc.add_argument("--comment", metavar="TEXT")

    m = sub.add_parser("metrics", help="NPS, response and resolution times, cared rate")
    m.add_argument("--since", type=_day, metavar="YYYY-MM-DD",
                   help="first day (UTC) of the period; tickets count by their first message")
    m.add_argument("--until", type=_day, metavar="YYYY-MM-DD", help="last day (UTC), inclusive")
    m.add_argument("--json", action="store_true")


@command("survey")
def cmd_survey(desk: Desk, args: argparse.Namespace) -> int:
    message_id = desk.metrics.send_survey(args.ticket, again=args.again)
    try:
        desk.flush_outbox()
    except HelpdeskError as exc:
        say(f"The survey is queued; it will be sent on the next sync ({exc}).")
        return 0
    item = next((i for i in desk.outbox(desk.resolve_ticket(args.ticket))
                 if i["message_id"] == message_id), None)
    if item is None or item["state"] == "sent":
        say("Survey sent.")
    elif item["state"] == "failed":
        say(f"The survey could not be sent: {item['last_error']}")
        return 1
    else:
        say("The survey is queued; it will be sent on the next sync.")
    return 0


@command("score")
def cmd_score(desk: Desk, args: argparse.Namespace) -> int:
    desk.metrics.record_score(args.ticket, args.nps, args.comment)
    say(f"Score {args.nps} recorded.")
    return 0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _print_block(data: dict[str, Any], indent: str = "") -> None:
    n = data["nps"]
    score = "-" if n["score"] is None else f"{n['score']:+d}"
    say(f"{indent}NPS {score}  ({n['responses']} responses: {n['promoters']} promoters, "
          f"{n['passives']} passives, {n['detractors']} detractors)")
    for key, label in (("first_response_seconds", "first response"),
                       ("resolution_seconds", "resolution")):
        s = data[key]
        say(f"{indent}{label}: median {_duration(s['median'])}, p90 {_duration(s['p90'])} "
              f"({s['count']} tickets)")
    f = data["first_contact_resolution"]
    say(f"{indent}first-contact resolution: {_pct(f['rate'])} of {f['count']} tickets")
    t = data["tickets"]
    say(f"{indent}tickets: {t['opened']} opened, {t['closed']} closed, "
          f"{t['reopened']} reopened")


@command("metrics")
def cmd_metrics(desk: Desk, args: argparse.Namespace) -> int:
    data = desk.metrics.compute(args.since, args.until)
    if args.json:
        emit_json(data)
        return 0
    span = f"{args.since or 'the beginning'} to {args.until or 'today'}"
    say(f"Service metrics, tickets first heard from {span} (UTC)")
    _print_block(data)
    c = data["cared"]
    say(f"cared: {_pct(c['rate'])} yes ({c['yes']} yes, {c['no']} no)")
    say(f"reopen rate: {_pct(data['reopen_rate'])}")
    say(f"oldest unclaimed ticket: {_duration(data['oldest_unclaimed_seconds'])}")
    if data["heard_from"]:
        say("heard from: " + ", ".join(f"{k} {v}" for k, v in data["heard_from"].items()))
    say("VIP customers:")
    _print_block(data["vip"], "  ")
    return 0
