"""Replicas that converge across versions (issue 11, item 5): events an older build does
not understand are kept in its store and folded, in log order, once it is upgraded, with
the same result as a desktop that understood them from the start."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile
from test_sync import fill

from helpdesk.config import Profile
from helpdesk.desk import Desk
from helpdesk.store.engine import MIGRATIONS
from helpdesk.team.events import Event, encode
from helpdesk.team.log import TeamLog

LOG = "HelpDesk/Log"

# Everything team state is made of, compared table by table between replicas.
TEAM_TABLES = {
    "ticket_state": "ticket_id",
    "customers": "email",
    "notes": "id",
    "templates": "name",
    "cards": "id",
    "card_customers": "card_id, email",
    "card_notified": "card_id, email",
    "board_columns": "id",
    "surveys": "message_id",
    "scores": "id",
    "cared": "event_id",
    "ticket_notes": "event_id",
    "ticket_mentions": "agent, ticket_id",
    "ticket_work": "ticket_id",
    "ticket_tags": "ticket_id, tag",
    "spam_blocks": "pattern",
    "team_events": "uid",
    "team_pending": "uid",
    "team_skipped": "uid",
}
TEAM_META = ("team.uidvalidity", "team.cursor", "team.clock", "team.seen")


def tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = sqlite3.connect(db)
    try:
        out = {name: con.execute(f"SELECT * FROM {name} ORDER BY {order}").fetchall()
               for name, order in TEAM_TABLES.items()}
        out["meta"] = con.execute(
            f"SELECT key, value FROM meta WHERE key IN ({', '.join('?' * len(TEAM_META))}) "
            "ORDER BY key", TEAM_META).fetchall()
        return out
    finally:
        con.close()


def assert_same_tables(a: Path, b: Path) -> None:
    ta, tb = tables(a), tables(b)
    for name in ta:
        assert ta[name] == tb[name], f"table {name} differs"


def on_build(desk: Desk, *missing: str, **versions: int) -> Desk:
    """The same desk running another build: without the handlers of ``missing`` (an
    older one), or reading newer ``versions`` of some types (a newer one)."""
    registry = desk.team.registry.without(*missing)
    if versions:
        registry = registry.reading(**versions)
    desk.session.team = TeamLog(desk.store, desk.team.folder, desk.profile.imap, registry)
    return desk


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """UID sets of every team-log FETCH of bodies."""
    import helpdesk.mail.imap as imap

    asked: list[str] = []
    original = imap.fetch_bodies

    def fetch_bodies(client: Any, uids: str, section: str = "TEXT") -> Any:
        if section == "TEXT":
            asked.append(uids)
        return original(client, uids, section)

    monkeypatch.setattr(imap, "fetch_bodies", fetch_bodies)
    yield asked


def lowest(uid_sets: list[str]) -> int:
    return min(int(part.split(":")[0]) for s in uid_sets for part in s.split(","))


def test_an_upgrade_folds_kept_events_in_log_order_and_agrees_with_the_others(
        dovecot: Any, tmp_path: Path, fetched: list[str]) -> None:
    fill(dovecot, 4)
    a = Desk(make_profile(dovecot, tmp_path, "agent-a"))  # always had every handler
    b = Desk(make_profile(dovecot, tmp_path, "agent-b"))  # a teammate, same build as a
    c = Desk(make_profile(dovecot, tmp_path, "agent-c"))
    old = on_build(Desk(make_profile(dovecot, tmp_path, "agent-o")), "release", "white-glove")
    for desk in (a, b, c, old):
        desk.sync_once()
    t1, t2 = (t["id"] for t in a.tickets("all")[:2])
    email = a.tickets("all")[0]["customer"]
    b.claim(t1)
    old.sync_once()  # mid-log: the old build has folded part of the story
    b.release(t1)  # unknown to the old build ...
    assert c.claim(t1).agent == "agent-c"  # ... so it cannot see why this claim won
    b.update_customer(email, white_glove=True, note="Likes short answers")
    b.update_customer(email, white_glove=False)
    b.update_customer(email, white_glove=True)  # register order matters
    c.takeover(t2)
    b.cards.create("Dark mode")
    a.sync_once()
    old.sync_once()
    # The old build kept what it did not understand, and so it disagrees for now.
    with old.store.read() as conn:
        kept = conn.exec_driver_sql("SELECT type FROM team_pending ORDER BY uid").all()
    assert [k for (k,) in kept] == ["release", "white-glove", "white-glove", "white-glove"]
    assert old.holder(t1).agent == "agent-b" and a.holder(t1).agent == "agent-c"
    assert not old.customer(email)["white_glove"]
    cursor = old.team.cursor()[1]
    old.close()
    # The upgrade: the same database, opened by the current build.
    fetched.clear()
    new = Desk(old.profile)
    new.sync_once()
    assert not fetched or lowest(fetched) > cursor  # folded from the store, not re-read
    assert new.holder(t1).agent == "agent-c" and new.customer(email)["white_glove"]
    a.sync_once()
    assert_same_tables(new.profile.database, a.profile.database)
    # A desktop that joins now, with the current build, agrees as well.
    late = Desk(make_profile(dovecot, tmp_path, "agent-l"))
    late.sync_once()
    assert_same_tables(late.profile.database, a.profile.database)


def v2(event: Event) -> Event:
    return Event(event.type, event.agent, event.subject, event.data, version=2)


def test_a_newer_version_is_kept_and_folded_by_a_build_that_reads_it(
        dovecot: Any, tmp_path: Path) -> None:
    """v2 events of a known type, interleaved with v1 ones: the build that reads v2
    refolds them in UID order (later v1 events still win where they are later)."""
    fill(dovecot, 2)
    dovecot.create_folder(LOG)
    today = Desk(make_profile(dovecot, tmp_path, "agent-a"))
    today.sync_once()
    events = [Event("vip", "agent-b", "x@example.com", {"vip": True, "tier": "Gold"}),
              v2(Event("vip", "agent-b", "x@example.com", {"vip": False})),
              v2(Event("vip", "agent-b", "y@example.com", {"vip": True, "tier": "Star"})),
              Event("vip", "agent-b", "y@example.com", {"vip": True, "tier": "Silver"}),
              v2(Event("escalate", "agent-b", "y@example.com", {"level": 3}))]
    for ev in events:
        dovecot.append(LOG, encode(ev, "n" * 8), [b"\\Seen"])
    today.sync_once()
    assert today.customer("x@example.com")["vip"]  # the v2 "off" is not understood here
    with today.store.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM team_pending").scalar() == 3
    today.close()
    upgraded = on_build(Desk(today.profile), vip=2)
    upgraded.sync_once()
    assert not upgraded.customer("x@example.com")["vip"]
    assert upgraded.customer("y@example.com")["vip_tier"] == "Silver"
    always = on_build(Desk(make_profile(dovecot, tmp_path, "agent-z")), vip=2)
    always.sync_once()
    assert_same_tables(upgraded.profile.database, always.profile.database)
    with upgraded.store.read() as conn:  # what it still does not understand stays kept
        assert conn.exec_driver_sql("SELECT type, v FROM team_pending").all() == \
            [("escalate", 2)]


def test_a_store_folded_before_events_were_kept_reads_the_log_again_once(
        dovecot: Any, tmp_path: Path) -> None:
    """Builds before revision 0006 forgot events of unknown types: such a store re-reads
    the log once after the upgrade, so the events are kept from then on."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    fill(dovecot, 2)
    dovecot.create_folder(LOG)
    claim = Event("claim", "agent-b", "t1", {"lease": 3600})
    dovecot.append(LOG, encode(claim, "n" * 8), [b"\\Seen"])
    dovecot.append(LOG, encode(Event("escalate", "agent-b", "t1", {}), "n" * 8), [b"\\Seen"])
    profile: Profile = make_profile(dovecot, tmp_path, "agent-a")
    engine = create_engine(f"sqlite:///{profile.database}")
    with engine.begin() as conn:  # what a 0005 build left: the claim folded, the rest lost
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        conn.exec_driver_sql(
            "INSERT INTO meta (key, value) VALUES ('team.uidvalidity', ?), "
            "('team.cursor', '2'), ('team.seen', '2')", (dovecot.uidvalidity(LOG),))
        conn.exec_driver_sql(
            "INSERT INTO team_events (uid, event_id, type, agent, at, subject, body) "
            "VALUES (1, ?, 'claim', 'agent-b', '2026-01-01 00:00:00.000000', 't1', ?)",
            (claim.id, claim.to_json()))
    engine.dispose()
    desk = Desk(profile)
    desk.sync_once()
    with desk.store.read() as conn:
        assert conn.exec_driver_sql("SELECT uid, type FROM team_pending").all() == \
            [(2, "escalate")]
        assert desk.store.get_meta("team.reread", conn) is None
    assert desk.holder("t1").agent == "agent-b"
