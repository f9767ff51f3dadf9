"""Team state as one canonical value: what a snapshot of the team log carries.

Which tables (and which of their rows and columns) are team state is declared in
one place, :data:`helpdesk.team.registry.STATE`, as :class:`TeamTable` entries: a
module that adds a table its fold handlers write adds one line there. A test folds
a log of every event type with SQLite's authorizer watching and fails if the fold
writes a table or column no entry covers, so no table is silently left out.

The canonical form (:func:`canonical_state`) is UTF-8 JSON with sorted keys, rows in
key order (SQLite's BINARY collation, the same on every desktop), no whitespace; its
sha256 is the snapshot's digest. Two desktops of the same build that folded the same
log up to the same UID produce the same bytes. Builds differ in what they fold, so
:func:`layout_key` (the tables, their columns and the event versions this build
reads) travels with a snapshot: a desktop compares or loads only snapshots of its
own layout.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

FORMAT = 1  # the canonical form's version


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
    """

    name: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    where: str | None = None
    restore: str = "insert"
    label: str | None = None
    fill: tuple[tuple[str, Any], ...] = ()

    @property
    def entry(self) -> str:
        return self.label or self.name

    def select(self) -> str:
        cols = ", ".join(f'"{c}"' for c in self.columns)
        where = f" WHERE {self.where}" if self.where else ""
        order = ", ".join(f'"{c}"' for c in self.key)
        return f'SELECT {cols} FROM "{self.name}"{where} ORDER BY {order}'


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
    doc = {"format": FORMAT, "mark": mark, "clock": clock, "layout": layout,
           "agent": agent, "tables": state_rows(cur, tables, mark)}
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def digest_of(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()


def layout_key(tables: Sequence[TeamTable], versions: Mapping[str, int]) -> str:
    """What a snapshot's content depends on besides the log: tables, columns, filters
    and the event versions folded. Short, so it can ride in every part."""
    doc = {"tables": [[t.name, list(t.key), list(t.columns), t.where, t.restore, t.entry,
                       [list(f) for f in t.fill]] for t in tables],
           "versions": dict(sorted(versions.items()))}
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True)
class LoadedState:
    mark: int
    clock: str | None
    layout: str
    agent: str
    tables: dict[str, list[list[Any]]]


def parse_state(canonical: bytes, tables: Sequence[TeamTable]) -> LoadedState:
    """The content of a snapshot, checked against this build's tables (StateError)."""
    try:
        doc = json.loads(canonical.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StateError(f"not a snapshot ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError("not a snapshot of a known format")
    mark, clock, layout, agent, rows = (doc.get(k) for k in ("mark", "clock", "layout",
                                                               "agent", "tables"))
    if type(mark) is not int or mark < 1 or not isinstance(layout, str) \
            or not isinstance(agent, str) \
            or not (clock is None or isinstance(clock, str)) or not isinstance(rows, dict):
        raise StateError("a snapshot with a bad header")
    by_name = {t.entry: t for t in tables}
    if set(rows) != set(by_name):
        raise StateError("a snapshot of other tables")
    for name, table_rows in rows.items():
        width = len(by_name[name].columns)
        if not isinstance(table_rows, list) or any(
                not isinstance(r, list) or len(r) != width for r in table_rows):
            raise StateError(f"a snapshot with bad rows in {name}")
    return LoadedState(mark, clock, layout, agent, rows)


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


def restore_state(cur: sqlite3.Cursor, state: LoadedState, tables: Iterable[TeamTable]
                  ) -> None:
    """Write ``state`` into tables a reset has just emptied (inside the caller's
    transaction; an error leaves the caller to roll back)."""
    for table in tables:
        extra = tuple(v for _c, v in table.fill)
        # Most values are plain (text, numbers, NULL) and stored as they are; a row with
        # a blob or something that should not be there goes value by value.
        rows = [[*row, *extra] if all(type(v) in _PLAIN for v in row)
                else [*(_stored(v) for v in row), *extra]
                for row in state.tables[table.entry]]
        names = (*table.columns, *(c for c, _v in table.fill))
        cols = ", ".join(f'"{c}"' for c in names)
        marks = ", ".join("?" * len(names))
        if table.restore == "upsert":
            keys = ", ".join(f'"{c}"' for c in table.key)
            sets = ", ".join(f'"{c}" = excluded."{c}"' for c in table.columns
                             if c not in table.key)
            sql = (f'INSERT INTO "{table.name}" ({cols}) VALUES ({marks}) '
                   f"ON CONFLICT ({keys}) DO UPDATE SET {sets}")
        else:
            if table.where is None and table.label is None:
                cur.execute(f'DELETE FROM "{table.name}"')  # e.g. default board columns
            sql = f'INSERT OR REPLACE INTO "{table.name}" ({cols}) VALUES ({marks})'
        cur.executemany(sql, rows)
