"""A damaged local database: a plain message on every command, sync never "succeeds",
and ``rebuild-store`` brings it back from the server keeping local-only rows.

Real database files are damaged the ways disks and crashes damage them (bytes
overwritten in the middle, a truncated file, a garbage header, one page of the
outbox, a -wal full of garbage); the store was built from a real Dovecot.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_sync import fill, write_profile

from helpdesk.config import load_profile
from helpdesk.desk import Desk

ROOT = Path(__file__).resolve().parent.parent
PAGE = 4096
SMTP_DOWN = ('[smtp]\nhost = "127.0.0.1"\nport = 9\nsecurity = "plain"\n'
             'from_address = "support@example.com"\n')


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=120)


class Built:
    """A store synced from Dovecot with local-only rows: outbox items and drafts."""

    def __init__(self, server: Any, tmp: Path, outbox: int = 3, body: str = "Thanks!") -> None:
        fill(server, 25)
        self.cfg = write_profile(server, tmp)
        self.cfg.write_text(self.cfg.read_text() + SMTP_DOWN)  # outbox items stay unsent
        profile = load_profile(self.cfg)
        self.db = Path(profile.database)
        desk = Desk(profile)
        desk.sync_once()
        self.tickets = desk.ticket_ids("all")
        self.customer = desk.ticket(self.tickets[0])["customer"]
        self.subjects = []
        for i in range(outbox):
            subject = f"Re: outbox item {i}"
            desk.queue_mail(kind="reply", to=self.customer, subject=subject,
                            body=f"{body} ({i})", ticket_id=self.tickets[i % len(self.tickets)])
            self.subjects.append(subject)
        self.drafts = {self.tickets[0]: "Draft one", self.tickets[1]: "Draft two"}
        for tid, text in self.drafts.items():
            desk.save_draft(tid, text)
        desk.close()
        checkpoint(self.db)
        self.size = self.db.stat().st_size


def checkpoint(db: Path) -> None:
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def overwrite(db: Path, offset: int, length: int, seed: int = 7) -> None:
    with open(db, "r+b") as f:
        f.seek(offset)
        f.write(random.Random(seed).randbytes(length))


def pages_of(db: Path, table: str, kind: str = "leaf") -> list[int]:
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = ? ORDER BY pageno",
            (table, kind))]
    finally:
        con.close()


def owners(db: Path, first: int, count: int) -> set[str]:
    """Which tables and indexes own pages first..first+count-1."""
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute(
            "SELECT DISTINCT name FROM dbstat WHERE pageno BETWEEN ? AND ?",
            (first, first + count - 1))}
    finally:
        con.close()


def damage(built: Built, how: str) -> set[str]:
    """Damage the store; returns the tables and indexes whose pages were overwritten
    when that is known (else an empty set)."""
    db = built.db
    if how == "middle":
        offset = (built.size // 2) // PAGE * PAGE
        # Pages of the schema itself make every table unreadable (that is "header"):
        # the middle is the first run of three pages past the middle that holds none.
        while "sqlite_schema" in owners(db, offset // PAGE + 1, 3):
            offset += PAGE
        hit = owners(db, offset // PAGE + 1, 3)
        overwrite(db, offset, 3 * PAGE)
        return hit
    elif how == "truncated":
        with open(db, "r+b") as f:
            f.truncate(built.size // 2)
    elif how == "header":
        overwrite(db, 0, 100)
    elif how == "outbox-page":
        (page, *_rest) = pages_of(db, "outbox")
        overwrite(db, (page - 1) * PAGE, PAGE)
        return {"outbox"}
    else:
        raise ValueError(how)
    return set()


def every_command(b: Built, tmp: Path) -> list[list[str]]:
    body = tmp / "body.txt"
    body.write_text("Hello,\n")
    t, c = b.tickets[0], b.customer
    return [["sync", "--once"], ["sync"], ["tickets"], ["tickets", "--json"],
            ["tickets", "--view", "all", "--search", "hello"], ["show", t], ["show", t, "--json"],
            ["status"], ["status", "--json"], ["claim", t], ["release", t], ["takeover", t],
            ["close", t, "--cared", "yes"], ["reopen", t], ["customer", c],
            ["customer", c, "--vip", "Gold"], ["reply", t, "--body-file", str(body)],
            ["outbox"], ["outbox", "--json"], ["outbox", "--retry", "1"],
            ["outbox", "--discard", "1"], ["templates"], ["templates", "--json"],
            ["templates", "add", "hi", "--body-file", str(body)], ["templates", "delete", "hi"],
            ["card", "add", t, "--title", "Dark mode"], ["card", "show", "abcd"],
            ["card", "move", "abcd", "ideas"], ["card", "merge", "abcd", "efgh"],
            ["card", "ship", "abcd"], ["card", "rename-column", "ideas", "Wishes"],
            ["cards"], ["cards", "--json"], ["cards", "export", "--format", "csv"],
            ["survey", t], ["score", t, "--nps", "9"], ["metrics"], ["metrics", "--json"]]


@pytest.mark.allow_log_errors
@pytest.mark.parametrize("how", ["middle", "truncated", "header", "outbox-page"])
def test_every_command_says_plainly_that_the_store_is_damaged(
        how: str, dovecot: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from helpdesk.cli import main

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    built = Built(dovecot, tmp_path)
    damage(built, how)
    for argv in every_command(built, tmp_path):
        code = main(["--config", str(built.cfg), *argv])
        out, err = capsys.readouterr()
        assert code == 1, (argv, out, err)
        assert "synced" not in out and "Traceback" not in out + err, argv
        assert err.startswith(f"error: The local database {built.db} is damaged"), (argv, err)
        assert "rebuild-store" in err and err.count("\n") == 1, (argv, err)
    # The same from a real process, for the commands people run most.
    for argv in (["sync", "--once"], ["tickets"], ["status"], ["outbox"]):
        done = cli(built.cfg, *argv)
        assert done.returncode == 1 and done.stdout == "", argv
        assert done.stderr.startswith("error: The local database") and \
            "Traceback" not in done.stderr, (argv, done.stderr)


@pytest.mark.allow_log_errors
def test_on_a_big_store_damage_is_found_where_it_is_read(
        dovecot: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Past FULL_CHECK_BYTES only small tables are checked at open: damage among the
    messages surfaces, translated, when a command reads them; sync checks everything."""
    import helpdesk.store.engine as engine
    from helpdesk.cli import main

    monkeypatch.setattr(engine, "FULL_CHECK_BYTES", 0)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    built = Built(dovecot, tmp_path)
    for page in pages_of(built.db, "messages"):
        overwrite(built.db, (page - 1) * PAGE, PAGE, seed=page)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--config", str(built.cfg), *argv])
        return (code, *capsys.readouterr())

    code, out, _err = run("tickets", "--view", "all")  # tickets and their state: intact
    assert code == 0 and built.tickets[0] in out
    for argv in (["show", built.tickets[0]], ["sync", "--once"], ["sync"]):
        code, out, err = run(*argv)
        assert code == 1 and "synced" not in out, (argv, out, err)
        assert err.startswith(f"error: The local database {built.db} is damaged"), (argv, err)
        assert "Traceback" not in err and err.count("\n") == 1, (argv, err)


def test_garbage_in_the_wal_is_ignored_by_sqlite(dovecot: Any, tmp_path: Path) -> None:
    """SQLite checksums every WAL frame: a -wal of garbage is discarded, not read, so
    the store stays usable with everything up to its last checkpoint."""
    built = Built(dovecot, tmp_path)
    Path(f"{built.db}-wal").write_bytes(random.Random(3).randbytes(64 * 1024))
    for argv in (["tickets", "--view", "all", "--json"], ["outbox", "--json"], ["status"],
                 ["sync", "--once"]):
        done = cli(built.cfg, *argv)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (argv, done.stderr)
    listed = json.loads(cli(built.cfg, "tickets", "--view", "all", "--json").stdout)
    assert sorted(t["id"] for t in listed) == sorted(built.tickets)
    assert len(json.loads(cli(built.cfg, "outbox", "--json").stdout)) == 3


def rebuilt_state(built: Built) -> tuple[list[str], list[str], dict[str, str | None]]:
    desk = Desk(load_profile(built.cfg))
    try:
        return (desk.ticket_ids("all"), [i["subject"] for i in desk.outbox()],
                {tid: desk.draft(tid) for tid in built.drafts})
    finally:
        desk.close()


@pytest.mark.parametrize("how", ["middle", "truncated", "header"])
def test_rebuild_store_brings_tickets_back_and_keeps_what_it_can(
        how: str, dovecot: Any, tmp_path: Path) -> None:
    built = Built(dovecot, tmp_path)
    hit = damage(built, how)
    done = cli(built.cfg, "rebuild-store")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    report = done.stdout
    assert f"The damaged database was moved to {built.db}.damaged-" in report
    assert f"Synced back from the server: {len(built.tickets)} tickets, 25 messages." in report
    (aside,) = (p for p in tmp_path.glob(f"{built.db.name}.damaged-*") if p.suffix != ".sqlite3"
                and not p.name.endswith(("-wal", "-shm")))
    assert aside.stat().st_size == built.db.stat().st_size or how == "truncated"  # kept as is
    tickets, outbox, drafts = rebuilt_state(built)
    assert sorted(tickets) == sorted(built.tickets)
    if how == "header":  # nothing of the old file can be read
        assert "No outgoing mail items could be read" in report
        assert outbox == [] and set(drafts.values()) == {None}
    elif how == "middle":  # what was not on the overwritten pages is kept
        assert hit, "the overwritten pages belong to something"
        if "outbox" not in hit:
            assert "Kept 3 outgoing mail items." in report
            assert sorted(outbox) == built.subjects
        if "drafts" not in hit:
            assert "Kept 2 drafts." in report and drafts == built.drafts
        else:
            assert "No drafts could be read" in report and set(drafts.values()) == {None}
    # Every command works again.
    for argv in (["tickets"], ["status"], ["outbox"], ["sync", "--once"]):
        again = cli(built.cfg, *argv)
        assert again.returncode == 0, (argv, again.stderr)


def test_rebuild_copies_row_by_row_around_a_damaged_page(dovecot: Any, tmp_path: Path) -> None:
    """Thirty outbox items over many pages, one page overwritten: the rows on it are
    counted as lost, every other one is kept intact."""
    built = Built(dovecot, tmp_path, outbox=30, body="x" * 1500)
    leaves = pages_of(built.db, "outbox")
    assert len(leaves) >= 5
    overwrite(built.db, (leaves[2] - 1) * PAGE, PAGE)
    done = cli(built.cfg, "rebuild-store")
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if "outgoing mail items" in x)
    kept, lost = (int(w) for w in line.replace(";", " ").split() if w.isdigit())
    assert kept + lost == 30 and kept >= 20 and lost >= 1, line
    assert "Kept 2 drafts." in done.stdout
    _tickets, outbox, drafts = rebuilt_state(built)
    assert len(outbox) == kept and set(outbox) <= set(built.subjects)
    assert drafts == built.drafts


def test_rebuild_store_on_a_healthy_store_changes_nothing(dovecot: Any, tmp_path: Path) -> None:
    built = Built(dovecot, tmp_path)
    done = cli(built.cfg, "rebuild-store")
    assert done.returncode == 0 and "nothing to rebuild" in done.stdout
    assert not list(tmp_path.glob("*.damaged-*"))
    forced = cli(built.cfg, "rebuild-store", "--force")
    assert forced.returncode == 0 and "Kept 3 outgoing mail items." in forced.stdout
    assert sorted(rebuilt_state(built)[0]) == sorted(built.tickets)


def test_rebuild_store_when_the_server_is_down_keeps_the_new_store(
        dovecot: Any, tmp_path: Path) -> None:
    built = Built(dovecot, tmp_path)
    damage(built, "middle")
    down = tmp_path / "down.toml"
    down.write_text(built.cfg.read_text().replace(f"port = {dovecot.port}", "port = 9"))
    done = cli(down, "rebuild-store")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "Kept 3 outgoing mail items." in done.stdout
    assert done.stderr.startswith("error: The new database is ready, but syncing it")
    assert cli(built.cfg, "sync", "--once").returncode == 0  # later, with the server back
    assert sorted(rebuilt_state(built)[0]) == sorted(built.tickets)
