"""Rebuild a damaged local store: set the file aside, start afresh, keep local-only rows.

Mail and team state live on the IMAP server, so a new store syncs them back; only the
outbox (replies not yet sent, or not yet confirmed) and the composer drafts exist
nowhere else. :func:`rebuild_store` copies what can still be read of those, row by
row, from the damaged file into a new one and says what it kept and what it lost;
the caller then syncs (``Desk.sync_once``).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from helpdesk.clock import utcnow
from helpdesk.errors import StoreError
from helpdesk.store.engine import Store, open_store, raw_cursor

# Tables whose rows exist only on this desktop (everything else comes from the server).
LOCAL_TABLES = ("outbox", "drafts", "draft_attachments")
SIDE_FILES = ("", "-wal", "-shm")


@dataclass
class TableReport:
    """What became of one local-only table."""

    table: str
    kept: int = 0
    lost: int = 0  # rows that were found but could not be read (or written)
    incomplete: bool = False  # the table could not be listed to its end: more may be lost


@dataclass
class RebuildReport:
    path: Path
    damaged: list[Path] = field(default_factory=list)  # where the old files now are
    tables: list[TableReport] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report in plain sentences, one per line."""
        names = {"outbox": ("outgoing mail item", "outgoing mail items"),
                 "draft_attachments": ("draft attachment", "draft attachments"),
                 "drafts": ("draft", "drafts")}
        out = [f"The damaged database was moved to {self.damaged[0]}." if self.damaged
               else "There was no database file to set aside.",
               f"A new database was created at {self.path}."]
        for t in self.tables:
            one, many = names.get(t.table, (f"{t.table} row", f"{t.table} rows"))
            if t.incomplete and not t.kept and not t.lost:
                out.append(f"No {many} could be read: that part of the file is unreadable.")
                continue
            kept = f"Kept {t.kept} {one if t.kept == 1 else many}"
            if t.lost:
                kept += f"; {t.lost} could not be read and are lost"
            if t.incomplete:
                kept += "; part of the table could not be read, so some may be missing"
            out.append(kept + ".")
        return out


def aside_name(path: Path) -> Path:
    """A free ``<name>.damaged-<UTC time>`` next to ``path``."""
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while any(Path(f"{candidate}{s}").exists() for s in SIDE_FILES):
        n += 1
        candidate = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    return candidate


def store_health(path: Path | str) -> str | None:
    """None when SQLite's quick check passes on ``path``, else what is wrong.

    Reads the whole file (about a second per few hundred MB): for the rebuild
    command and diagnostics, not for every open.
    """
    try:
        conn = _open_read_only(Path(path))
    except sqlite3.Error as exc:
        return str(exc)
    try:
        rows = conn.execute("PRAGMA quick_check(1)").fetchall()
        verdict = str(rows[0][0]) if rows else "no answer"
        return None if verdict == "ok" else verdict.replace("\n", " ")
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        conn.close()


def rebuild_store(path: Path | str) -> RebuildReport:
    """Move the store at ``path`` (with its -wal and -shm) aside, create a new one,
    and copy over the readable rows of :data:`LOCAL_TABLES`.

    Close every Desk on this file first. If the new store cannot be made, the old
    files are put back and :class:`StoreError` says why.
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"There is no local database at {path}; nothing to rebuild.")
    aside = aside_name(path)
    report = RebuildReport(path)
    try:
        for suffix in SIDE_FILES:
            src = Path(f"{path}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
                report.damaged.append(Path(f"{aside}{suffix}"))
    except OSError as exc:
        _put_back(report.damaged, path, aside)
        raise StoreError(f"Cannot move the damaged database {path} aside: "
                         f"{exc.strerror or exc}.") from None
    try:
        store = open_store(path)
    except BaseException:
        _remove_new(path)
        _put_back(report.damaged, path, aside)
        raise
    try:
        for table in LOCAL_TABLES:
            report.tables.append(_copy_table(aside, store, table))
    finally:
        store.close()
    return report


def _put_back(moved: list[Path], path: Path, aside: Path) -> None:
    for m in moved:
        suffix = str(m)[len(str(aside)):]
        try:
            os.replace(m, f"{path}{suffix}")
        except OSError:
            pass


def _remove_new(path: Path) -> None:
    for suffix in SIDE_FILES:
        try:
            os.remove(f"{path}{suffix}")
        except OSError:
            pass


def _open_read_only(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    conn.execute("PRAGMA query_only=ON")
    return conn


def _copy_table(source: Path, store: Store, table: str) -> TableReport:
    report = TableReport(table)
    try:
        old = _open_read_only(source)
    except sqlite3.Error:
        report.incomplete = True
        return report
    try:
        try:
            columns = [r[1] for r in old.execute(f'PRAGMA table_info("{table}")')]
        except sqlite3.Error:
            columns = []
        if not columns:
            report.incomplete = True
            return report
        rowids, complete = _rowids(old, table)
        report.incomplete = not complete
        with store.begin() as conn:
            new_columns = {r[1] for r in conn.exec_driver_sql(f'PRAGMA table_info("{table}")')}
            keep = [c for c in columns if c in new_columns]
            names = ", ".join(f'"{c}"' for c in keep)
            select = f'SELECT {names} FROM "{table}" WHERE rowid = ?'
            insert = (f'INSERT INTO "{table}" ({names}) '
                      f'VALUES ({", ".join("?" for _ in keep)})')
            cur = raw_cursor(conn)
            for rowid in sorted(rowids):
                try:
                    row = old.execute(select, (rowid,)).fetchone()
                except sqlite3.Error:
                    report.lost += 1
                    continue
                if row is None:  # listed by a damaged index only
                    report.lost += 1
                    continue
                cur.execute("SAVEPOINT copy_row")
                try:
                    cur.execute(insert, row)
                except sqlite3.Error:
                    cur.execute("ROLLBACK TO copy_row")
                    report.lost += 1
                else:
                    report.kept += 1
                cur.execute("RELEASE copy_row")
    finally:
        old.close()
    return report


def _rowids(conn: sqlite3.Connection, table: str) -> tuple[set[int], bool]:
    """Every rowid that can be listed, and whether the table's own b-tree could be
    walked from end to end.

    A damaged page stops a scan where it is: walking forwards and then backwards gets
    the rows on both sides of it, and each index lists rowids of its own (rows on the
    damaged page among them, so that they count as lost rather than vanish).
    """
    found: set[int] = set()
    complete = _scan(conn, f'SELECT rowid FROM "{table}" NOT INDEXED ORDER BY rowid', found)
    if not complete:
        _scan(conn, f'SELECT rowid FROM "{table}" NOT INDEXED ORDER BY rowid DESC', found)
    indexes: list[str] = []
    try:
        indexes = [str(r[1]) for r in conn.execute(f'PRAGMA index_list("{table}")')]
    except sqlite3.Error:
        pass
    for index in indexes:
        _scan(conn, f'SELECT rowid FROM "{table}" INDEXED BY "{index}"', found)
    return found, complete


def _scan(conn: sqlite3.Connection, sql: str, into: set[int]) -> bool:
    """Add the rowids ``sql`` yields to ``into``; False if it stopped on an error."""
    try:
        for (rowid,) in conn.execute(sql):
            into.add(int(rowid))
    except sqlite3.Error:
        return False
    return True
