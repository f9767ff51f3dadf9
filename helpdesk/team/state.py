"""Team state as one canonical value: what a snapshot of the team log carries.

Which tables (and which of their rows and columns) are team state is declared in
one place, :data:`helpdesk.team.registry.STATE`, as :class:`TeamTable` entries: a
module that adds a table its fold handlers write adds one line there. A test folds
a log of every event type with SQLite's authorizer watching and fails if the fold
writes a table or column no entry covers, so no table is silently left out.

The canonical form (:func:`canonical_state`) is two lines of UTF-8 JSON with sorted
keys, rows in key order (SQLite's BINARY collation, the same on every desktop), no
whitespace; its sha256 is the snapshot's digest. The first line holds the header and
the live state (tickets, claims, customers, settings: what a window shows); the second
the history (``later`` tables: customer notes, cared answers, old status changes and
event ids), which a new desktop stores after the live state, so that its first launch
is useful while a year of history is still going in. JSON escapes every newline in a
string, so the first newline ends the first line. Two desktops of the same build that
folded the same log up to the same UID produce the same bytes. Builds differ in what
they fold, so :func:`layout_key` (the tables, their columns and the event versions this
build reads) travels with a snapshot: a desktop compares or loads only snapshots of its
own layout.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

FORMAT = 2  # the canonical form's version (2: live state, newline, history)


@dataclass(frozen=True)
class TeamTable:
    """One table of team state.

    ``key``: the columns rows are ordered (and, for ``upsert``, matched) by.
    ``columns``: what is team state (other columns are local or derived).
    ``where``: which rows are team state (SQL over the table's columns; ``:mark`` is
    the snapshot's UID), None for every row.
    ``restore``: ``insert`` (the loader's table is empty after a reset) or ``upsert``
    (rows another source also writes, e.g. customers found in mail: only ``columns``
    are set).
    ``label``: the entry's name in a snapshot when one table has two entries (rows
    kept with different columns). ``fill``: constant values of columns left out, for
    the restore (a NOT NULL column not worth carrying).
    ``derived``: values carried after ``columns`` that no column holds as such, as
    (name, SQL expression over the table's columns); ``rebuilt``: columns the restore
    computes instead, as (column, SQL expression over the carried values ``?1``,
    ``?2``, ... in order: ``columns`` then ``derived``). E.g. a status event's whole
    body is not carried, only the status it holds, and the restore writes a body
    holding just that. ``later``: history, on the canonical form's second line (stored
    after the live state by a desktop that joins).
    """

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    where: str | None = None
    restore: str = "insert"
    label: str | None = None
    fill: tuple[tuple[str, Any], ...] = ()
    derived: tuple[tuple[str, str], ...] = ()
    rebuilt: tuple[tuple[str, str], ...] = ()
    later: bool = False

    @property
    def entry(self) -> str:
        return self.label or self.name

    @property
    def width(self) -> int:
        """Values per row in a snapshot."""
        return len(self.columns) + len(self.derived)

    def select(self) -> str:
        cols = ", ".join([*(f'"{c}"' for c in self.columns), *(e for _n, e in self.derived)])
        where = f" WHERE {self.where}" if self.where else ""
        order = ", ".join(f'"{c}"' for c in self.key)
        return f'SELECT {cols} FROM "{self.name}"{where} ORDER BY {order}'

    def insert(self) -> str:
        """The restore's statement: one row of carried values as ``?1 .. ?width``."""
        names = (*self.columns, *(c for c, _v in self.fill), *(c for c, _e in self.rebuilt))
        values = (*(f"?{i}" for i in range(1, len(self.columns) + 1)),
                  *(_literal(v) for _c, v in self.fill), *(e for _c, e in self.rebuilt))
        cols = ", ".join(f'"{c}"' for c in names)
        marks = ", ".join(values)
        if self.restore == "upsert":
            keys = ", ".join(f'"{c}"' for c in self.key)
            sets = ", ".join(f'"{c}" = excluded."{c}"' for c in self.columns
                             if c not in self.key)
            return (f'INSERT INTO "{self.name}" ({cols}) VALUES ({marks}) '
                    f"ON CONFLICT ({keys}) DO UPDATE SET {sets}")
        return f'INSERT OR REPLACE INTO "{self.name}" ({cols}) VALUES ({marks})'


def _literal(value: Any) -> str:
    """A fill constant (declared in code, never from a snapshot) as an SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"fill values are text or whole numbers, not {value!r}")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: building a year's team state makes millions
    of lists and strings (and no cycles), and each collection the allocations trigger
    walks all of them (a third of the time of parsing a big snapshot)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class StateError(ValueError):
    """A snapshot's content that cannot be loaded (reason in the message)."""


def _value(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"b64": base64.b64encode(v).decode("ascii")}
    return v


def state_rows(cur: sqlite3.Cursor, tables: Sequence[TeamTable], mark: int
               ) -> dict[str, list[list[Any]]]:
    """Every table's team rows at this moment, in key order."""
    out: dict[str, list[list[Any]]] = {}
    for table in tables:
        params = {"mark": mark} if table.where and ":mark" in table.where else {}
        out[table.entry] = [[_value(v) for v in row]
                           for row in cur.execute(table.select(), params).fetchall()]
    return out


def canonical_state(cur: sqlite3.Cursor, tables: Sequence[TeamTable], mark: int,
                    clock: str | None, layout: str, agent: str) -> bytes:
    """The canonical bytes of team state as folded before the snapshot mark at UID
    ``mark`` (by ``agent``, at the clamped server time ``clock``): what every desktop
    of this ``layout`` computes alike."""
    with gc_paused():
        doc = {"format": FORMAT, "mark": mark, "clock": clock, "layout": layout,
               "agent": agent, "tables": state_rows(cur, tables, mark)}
        return encode_document(doc, tables)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def encode_document(doc: Mapping[str, Any], tables: Sequence[TeamTable]) -> bytes:
    """A state document (header and every entry's rows) as canonical bytes: the header
    and live entries, a newline, the ``later`` entries."""
    later = {t.entry for t in tables if t.later}
    rows: Mapping[str, Any] = doc["tables"]
    head = {**doc, "tables": {n: r for n, r in rows.items() if n not in later}}
    return _dumps(head) + b"\n" + _dumps({n: r for n, r in rows.items() if n in later})


def document(canonical: bytes) -> dict[str, Any]:
    """Canonical bytes as one document (for tests and tools: the header, and every
    entry's rows under ``tables``); ValueError if they are not of this format."""
    head, newline, tail = canonical.partition(b"\n")
    doc = json.loads(head)
    if not newline or not isinstance(doc, dict) or not isinstance(doc.get("tables"), dict):
        raise ValueError("not a snapshot of a known format")
    doc["tables"].update(json.loads(tail))
    return doc


def digest_of(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


def layout_key(tables: Sequence[TeamTable], versions: Mapping[str, int]) -> str:
    """What a snapshot's content depends on besides the log: tables, columns, filters
    and the event versions folded. Short, so it can ride in every part."""
    doc = {"tables": [[t.name, list(t.key), list(t.columns), t.where, t.restore, t.entry,
                       [list(f) for f in t.fill]]
                      + ([[list(d) for d in t.derived], [list(r) for r in t.rebuilt]]
                         if t.derived or t.rebuilt else []) + (["later"] if t.later else [])
                      for t in tables],
           "versions": dict(sorted(versions.items()))}
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True)
class LoadedState:
    """A snapshot's header and live entries, parsed; ``later``: its history line as it
    came (parsed when it is stored: :func:`parse_later`)."""

    mark: int
    clock: str | None
    layout: str
    agent: str
    tables: dict[str, list[list[Any]]]
    later: bytes = b""


def _json(raw: bytes) -> Any:
    try:
        with gc_paused():
            return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StateError(f"not a snapshot ({type(exc).__name__})") from None


def _check_rows(rows: Any, tables: Iterable[TeamTable]) -> dict[str, list[list[Any]]]:
    by_name = {t.entry: t for t in tables}
    if not isinstance(rows, dict) or set(rows) != set(by_name):
        raise StateError("a snapshot of other tables")
    for name, table_rows in rows.items():
        width = by_name[name].width
        if not isinstance(table_rows, list) or any(
                not isinstance(r, list) or len(r) != width for r in table_rows):
            raise StateError(f"a snapshot with bad rows in {name}")
    return rows


def parse_state(canonical: bytes, tables: Sequence[TeamTable]) -> LoadedState:
    """The header and live state of a snapshot, checked against this build's tables
    (StateError); its history line is kept as it is, for :func:`parse_later`."""
    head, newline, later = canonical.partition(b"\n")
    doc = _json(head)
    if not newline or not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError("not a snapshot of a known format")
    mark, clock, layout, agent, rows = (doc.get(k) for k in ("mark", "clock", "layout",
                                                               "agent", "tables"))
    if type(mark) is not int or mark < 1 or not isinstance(layout, str) \
            or not isinstance(agent, str) \
            or not (clock is None or isinstance(clock, str)) or not isinstance(rows, dict):
        raise StateError("a snapshot with a bad header")
    live = _check_rows(rows, (t for t in tables if not t.later))
    return LoadedState(mark, clock, layout, agent, live, later)


def parse_later(state: LoadedState, tables: Sequence[TeamTable]) -> dict[str, list[list[Any]]]:
    """The history entries of a parsed snapshot (StateError)."""
    return _check_rows(_json(state.later), (t for t in tables if t.later))


_PLAIN = frozenset((str, int, float, type(None), bool))


def _stored(v: Any) -> Any:
    if isinstance(v, dict):
        b64 = v.get("b64")
        if not isinstance(b64, str) or len(v) != 1:
            raise StateError("a snapshot with a bad value")
        return base64.b64decode(b64)
    if isinstance(v, list):
        raise StateError("a snapshot with a bad value")
    return v


def restore_state(cur: sqlite3.Cursor, rows: Mapping[str, list[list[Any]]],
                  tables: Iterable[TeamTable]) -> None:
    """Write the entries in ``rows`` (a snapshot's live state, its history, or both)
    into the tables a reset has just emptied (inside the caller's transaction; an
    error leaves the caller to roll back). Tables with no entry in ``rows`` are not
    touched.

    A big table with (nearly) no rows before the restore gets them with its secondary
    indexes dropped and built again after (one sorted pass instead of a random insert
    per row and index: a third of the time for a year's notes and events)."""
    with gc_paused():
        _restore(cur, rows, [t for t in tables if t.entry in rows])


def _restore(cur: sqlite3.Cursor, state: Mapping[str, list[list[Any]]],
             tables: list[TeamTable]) -> None:
    rebuild = _drop_indexes(cur, tables, state)
    for table in tables:
        if table.where is None and table.label is None and table.restore != "upsert":
            cur.execute(f'DELETE FROM "{table.name}"')  # e.g. default board columns
        rows = state[table.entry]
        sql = table.insert()
        # Values as they are (text, numbers, NULL: nearly all of them); a table with
        # something else (a blob, or what should not be there) goes value by value.
        cur.execute("SAVEPOINT restore_table")
        try:
            cur.executemany(sql, rows)
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
            cur.execute("ROLLBACK TO restore_table")
            cur.executemany(sql, [row if all(type(v) in _PLAIN for v in row)
                                  else [_stored(v) for v in row] for row in rows])
        cur.execute("RELEASE restore_table")
    for sql in rebuild:
        cur.execute(sql)


_BULK_ROWS = 5000  # rows from which a table's indexes are built after its rows


def _drop_indexes(cur: sqlite3.Cursor, tables: list[TeamTable],
                  state: Mapping[str, list[list[Any]]]) -> list[str]:
    """Drop the plain (not UNIQUE) indexes of the tables that get many rows and hold few
    now (a joiner's history goes in after the last events of its live state); the
    statements that create them again."""
    rows: dict[str, int] = {}
    for table in tables:
        rows[table.name] = rows.get(table.name, 0) + len(state[table.entry])
    again: list[str] = []
    for name, count in rows.items():
        if count < _BULK_ROWS or cur.execute(
                f'SELECT count(*) FROM (SELECT 1 FROM "{name}" LIMIT ?)',
                (_BULK_ROWS,)).fetchone()[0] >= _BULK_ROWS:
            continue
        for index, sql in cur.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL", (name,)).fetchall():
            if not str(sql).lstrip().upper().startswith("CREATE UNIQUE"):
                cur.execute(f'DROP INDEX "{index}"')
                again.append(str(sql))
    return again
