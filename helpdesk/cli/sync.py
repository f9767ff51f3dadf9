"""``sync [--once]``: mail and team state from the server, the outbox to it."""

from __future__ import annotations

import argparse
import signal
from typing import Any

from helpdesk.changes import Changes
from helpdesk.cli.output import say
from helpdesk.cli.registry import command
from helpdesk.desk import Desk
from helpdesk.mail.backfill import SyncProgress
from helpdesk.mail.push import LoopStatus


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("sync", help="sync mail and team state (keeps going unless --once)")
    s.add_argument("--once", action="store_true", help="sync once and exit")


def _older(progress: SyncProgress) -> str:
    said = [f"older mail: {progress.stored} of {progress.total} messages in"] \
        if progress.pending else []
    if progress.team_history:
        said.append("team history (notes, cared answers, past status changes): "
                    "storing it next")
    return "; ".join(said)


def _changed(changes: Changes) -> str:
    if "*" in changes.tickets:
        return "many tickets changed"
    return f"{len(changes.tickets)} tickets changed"


@command("sync")
def cmd_sync(desk: Desk, args: argparse.Namespace) -> int:
    """Exit 1, never "synced", when the local store turns out damaged (nothing to retry).

    The whole store is checked first (SQLite's quick check; 0.29 s for 100,000
    messages with a warm disk cache): a sync must not report success on a damaged
    store, even when the damage is in pages this pass would not read.
    """
    desk.store.check()
    if args.once:
        changes = desk.sync_once(on_progress=lambda p: say(_older(p), err=True))
        if desk.store.damage is not None:
            raise desk.store.damage
        say(f"synced: {_changed(changes)}")
        return 0

    def on_status(s: LoopStatus) -> None:
        if desk.store.damage is not None:
            loop.stop()  # every later pass would fail the same way
        elif not s.ok:
            say(f"sync failed: {s.message} (retrying in {s.retry_in:.0f} s)", err=True)
        else:
            if s.progress is not None and s.progress.more:
                say(_older(s.progress), err=True)
            if args.verbose:
                say("sync ok", err=True)

    def on_changes(c: Changes) -> None:
        if desk.store.damage is None:
            say(_changed(c))

    loop = desk.push_loop(on_status=on_status, on_changes=on_changes)

    def interrupt(_sig: int, _frame: Any) -> None:
        loop.stop()

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    loop.run()
    if desk.store.damage is not None:
        raise desk.store.damage
    return 0
