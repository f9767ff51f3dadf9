"""CLI for feedback cards: ``card add|show|move|merge|ship|rename-column`` and ``cards``.

Card ids may be given as an unambiguous prefix of at least 4 characters.
"""

from __future__ import annotations

import argparse
from typing import Any

from helpdesk.cards.export import FORMATS
from helpdesk.cards.fold import SORTS
from helpdesk.cli.output import emit_json, say, write_raw_text
from helpdesk.cli.registry import command
from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError

LIST_FIELDS = ("id", "title", "description", "column", "votes", "customers", "notified")


def add_parsers(sub: Any) -> None:
    """Add the ``card`` and ``cards`` subcommands to the top-level subparsers."""
    card = sub.add_parser("card", help="add a customer to a feedback card, move, merge, ship")
    actions = card.add_subparsers(dest="card_action", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="record a ticket's customer on a card; prints its id")
    add.add_argument("ticket")
    which = add.add_mutually_exclusive_group(required=True)
    which.add_argument("--card", metavar="ID", help="an existing card")
    which.add_argument("--title", metavar="TEXT",
                       help="the card with this title (any case), created if there is none")
    add.add_argument("--quote", metavar="TEXT", help="the customer's words, kept on the card")
    add.add_argument("--description", metavar="TEXT", default="",
                     help="description for a card created by --title")

    show = actions.add_parser("show", help="one card with every customer")
    show.add_argument("card", metavar="ID")
    show.add_argument("--json", action="store_true")

    move = actions.add_parser("move", help="move a card to a column (id or name)")
    move.add_argument("card", metavar="ID")
    move.add_argument("column")

    merge = actions.add_parser("merge", help="merge a card into another (customers kept)")
    merge.add_argument("card", metavar="ID")
    merge.add_argument("into", metavar="INTO_ID")

    ship = actions.add_parser("ship", help="move a card to Shipped")
    ship.add_argument("card", metavar="ID")
    ship.add_argument("--notify", action="store_true",
                      help="queue a personal email to each customer not yet told ('sync' "
                           "sends them)")

    rename = actions.add_parser("rename-column", help="rename a board column")
    rename.add_argument("column")
    rename.add_argument("name")

    cards = sub.add_parser("cards", help="list feedback cards (most votes first), or export")
    cards.add_argument("--json", action="store_true")
    cards.add_argument("--search", default="", metavar="TEXT")
    cards.add_argument("--sort", choices=SORTS, default="votes")
    more = cards.add_subparsers(dest="cards_action", metavar="ACTION")
    export = more.add_parser("export", help="the whole board as CSV or Markdown")
    export.add_argument("--format", choices=FORMATS, required=True)
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")


@command("card")
def cmd_card(desk: Desk, args: argparse.Namespace) -> int:
    cards = desk.cards
    action = args.card_action
    if action == "add":
        say(cards.add(args.ticket, card_id=args.card, title=args.title, quote=args.quote,
                        description=args.description))
    elif action == "show":
        _show(cards.card(args.card), args.json)
    elif action == "move":
        cards.move(args.card, args.column)
        card = cards.card(args.card)
        say(f"Moved \"{card['title']}\" to {card['column_name']}.")
    elif action == "merge":
        cards.merge(args.card, args.into)
        card = cards.card(args.into)
        say(f"Merged into \"{card['title']}\": {card['votes']} customers.")
    elif action == "ship":
        queued = cards.ship(args.card, notify=args.notify)
        card = cards.card(args.card)
        say(f"Shipped \"{card['title']}\".")
        if args.notify:
            say(f"Queued {len(queued)} notification(s); 'sync' sends them." if queued
                  else "Every customer on this card has been told already.")
    elif action == "rename-column":
        cards.rename_column(args.column, args.name)
        say("Renamed.")
    return 0


def _show(card: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(card)
        return
    say(f"{card['id']}  {card['title']}  [{card['column_name']}]  {card['votes']} customers")
    if card["description"]:
        say(f"  {card['description']}")
    for c in card["customers"]:
        told = f"  told {c['notified_at']}" if c["notified_at"] else ""
        ticket = f"  #{c['ticket_id']}" if c["ticket_id"] else ""
        say(f"- {c['name'] or ''} <{c['email']}>{ticket}{told}")
        if c["quote"]:
            say(f"    \"{c['quote']}\"")
    for m in card["merged"]:
        say(f"  merged: {m['id'][:8]} {m['title']}")


@command("cards")
def cmd_cards(desk: Desk, args: argparse.Namespace) -> int:
    if args.cards_action == "export":
        text = desk.cards.export(args.format)
        if args.output:
            try:
                with open(args.output, "w", encoding="utf-8", newline="") as f:
                    write_raw_text(text, f)
            except OSError as exc:
                raise HelpdeskError(f"Cannot write {args.output}: {exc.strerror}.") from None
            say(f"Wrote {args.output}.", err=True)
        else:
            write_raw_text(text)
        return 0
    rows = desk.cards.cards(args.search, args.sort)
    if args.json:
        emit_json([{k: r[k] for k in LIST_FIELDS} for r in rows])
        return 0
    if not rows:
        say("No cards.")
    names = {c["id"]: c["name"] for c in desk.cards.columns()}
    for r in rows:
        told = f" ({len(r['notified'])} told)" if r["notified"] else ""
        say(f"{r['id'][:8]}  {r['votes']:>3}{told}  {names.get(r['column'], r['column']):<13} "
              f"{r['title']}")
    return 0
