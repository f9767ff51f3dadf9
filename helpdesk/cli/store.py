"""``rebuild-store``: set a damaged local database aside and rebuild it from the server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from helpdesk.cli.output import error, say
from helpdesk.cli.registry import profile_command
from helpdesk.config import Profile
from helpdesk.errors import HelpdeskError
from helpdesk.store.rebuild import rebuild_store, store_health


def add_parsers(sub: Any) -> None:
    rb = sub.add_parser(
        "rebuild-store",
        help="set a damaged local database aside and rebuild it from the server "
             "(readable outbox items and drafts are kept)")
    rb.add_argument("--force", action="store_true",
                    help="rebuild even when the database passes SQLite's quick check")


@profile_command("rebuild-store")
def cmd_rebuild_store(profile: Profile, args: argparse.Namespace) -> int:
    """Exit 0 when rebuilt and synced (or nothing to do), 1 when the sync failed."""
    from helpdesk.desk import Desk

    path = Path(profile.database)
    problem = store_health(path) if path.exists() else None
    if path.exists() and problem is None and not args.force:
        say(f"The local database {path} passes SQLite's quick check; nothing to rebuild "
            f"(--force rebuilds it from the server anyway).")
        return 0
    say(f"Rebuilding {path}" + (f" ({problem})." if problem else "."))
    for line in rebuild_store(path).lines():
        say(line)
    say("Syncing mail and team state back from the server…")
    desk = Desk(profile)
    try:
        desk.sync_once()
        status = desk.status()
    except HelpdeskError as exc:
        error(f"The new database is ready, but syncing it from the server failed: {exc} "
              f"Run 'sync' once the server can be reached.")
        return 1
    finally:
        desk.close()
    say(f"Synced back from the server: {status['counts'].get('all', 0)} tickets, "
        f"{status['messages']} messages.")
    return 0
