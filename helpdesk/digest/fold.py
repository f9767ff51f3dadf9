"""Fold handlers of the digest (team state).

* ``digest-settings`` (subject ``team``): ``{"recipients": ["all@company.example", ...]}``,
  the list the digest goes to (empty: no digest by mail); last writer wins
  (``meta`` key ``team.digest``).
* ``digest-sending`` (subject: a period key such as ``2026-W48``): ``{"message_id": ...}``.
  The first one per period in log order wins on every replica (``digests``); the desktop
  whose staged mail carries that Message-ID sends it, every other drops its own. That is
  how a digest goes once per period whichever desktops are running (as a shipped card's
  notes do).
"""

from __future__ import annotations

import re
import sqlite3

from helpdesk.mail.compose import is_address
from helpdesk.team.fold import BadData, FoldContext, Handlers, db_time, required_text
from helpdesk.team_settings import put_meta as put

HANDLERS = Handlers("digest")
SETTINGS_KEY = "team.digest"
MAX_RECIPIENTS = 200
_PERIOD = re.compile(r"\d{4}-W\d{2}|\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}")


def clean_recipients(value: object) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_RECIPIENTS:
        raise ValueError(f"recipients is a list of at most {MAX_RECIPIENTS} addresses")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or not is_address(item.strip()):
            raise ValueError(f"'{str(item)[:60]}' is not an e-mail address")
        if item.strip().lower() not in out:
            out.append(item.strip().lower())
    return out


@HANDLERS.on("digest-settings")
def _settings(ctx: FoldContext) -> None:
    try:
        recipients = clean_recipients(ctx.event.data.get("recipients") or [])
    except ValueError as exc:
        raise BadData(str(exc)) from None
    put(ctx.cur, SETTINGS_KEY, {"recipients": recipients}, ctx.uid)


@HANDLERS.on("digest-sending")
def _sending(ctx: FoldContext) -> None:
    period = ctx.event.subject
    if not _PERIOD.fullmatch(period):
        raise BadData("not a digest period")
    mid = required_text(ctx.event.data, "message_id").strip()[:500]
    ctx.cur.execute("INSERT OR IGNORE INTO digests (period, message_id, agent, at, uid) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (period, mid, ctx.event.agent, db_time(ctx.at), ctx.uid))


@HANDLERS.reset
def _reset(cur: sqlite3.Cursor) -> None:
    cur.execute("DELETE FROM meta WHERE key = ?", (SETTINGS_KEY,))
    cur.execute("DELETE FROM digests")
