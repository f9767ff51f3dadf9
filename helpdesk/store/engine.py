"""Open the SQLite store: WAL mode, migrations on open, refuse newer databases."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from helpdesk.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest revision this code understands; a test keeps it equal to Alembic's head.
SCHEMA_HEAD = "0006"


def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # Transactions are begun by _on_begin, not by the driver's own guesswork.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _on_begin(conn: Connection) -> None:
    """Writers take SQLite's write lock up front (BEGIN IMMEDIATE).

    A deferred transaction that reads, then writes after another process committed,
    fails at once with "database is locked" (its snapshot is stale); an immediate
    one waits its turn (busy_timeout) and then reads what the other committed, so
    two processes storing the same message never both insert it.
    """
    write = conn.get_execution_options().get("helpdesk_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Store:
    """The local database of one desktop. Thread-safe: one pooled connection per thread."""

    def __init__(self, engine: Engine, path: Path) -> None:
        self.engine = engine
        self.path = path

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction that commits on success and rolls back on error."""
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(helpdesk_write=True)
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise _plain_store_error(exc, self.path) from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def get_meta(self, key: str, conn: Connection | None = None) -> str | None:
        sql = text("SELECT value FROM meta WHERE key = :k")
        if conn is not None:
            return conn.execute(sql, {"k": key}).scalar()
        with self.read() as c:
            return c.execute(sql, {"k": key}).scalar()

    def set_meta(self, key: str, value: str | None, conn: Connection | None = None) -> None:
        sql = text("INSERT INTO meta (key, value) VALUES (:k, :v) "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        if conn is not None:
            conn.execute(sql, {"k": key, "v": value})
            return
        with self.begin() as c:
            c.execute(sql, {"k": key, "v": value})

    def close(self) -> None:
        self.engine.dispose()


def db_time(dt: datetime) -> str:
    """The text form SQLAlchemy uses for DateTime in SQLite (always with microseconds)."""
    return dt.isoformat(" ", "microseconds")


def parse_db_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def raw_cursor(conn: Connection) -> sqlite3.Cursor:
    """The sqlite3 cursor under a SQLAlchemy connection (for hot loops such as replay)."""
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver.cursor()


def _plain_store_error(exc: OperationalError, path: Path) -> StoreError:
    msg = str(exc.orig) if exc.orig else str(exc)
    if "disk" in msg and ("full" in msg or "I/O" in msg):
        return StoreError(f"The disk holding {path} is full or failing; nothing was lost, "
                          f"but new changes cannot be saved until space is freed.")
    if "locked" in msg:
        return StoreError(f"The database {path} is busy (another program holds it); try again.")
    return StoreError(f"The database {path} could not be used: {msg}.")


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        has = conn.execute(text(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'")).scalar()
        if not has:
            return None
        rev: str | None = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return rev


def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(None)  # type: ignore[arg-type]
    return {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}


def open_store(path: Path | str) -> Store:
    """Open (creating and migrating as needed) the store at ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"Cannot create the folder for the database {path}: "
                         f"{exc.strerror}.") from None
    existed = path.exists() and path.stat().st_size > 0
    engine = create_engine(f"sqlite:///{path}", future=True)
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    try:
        current = _current_revision(engine)
    except Exception as exc:
        engine.dispose()
        raise StoreError(f"{path} is not a Help desk database or is damaged ({exc}).") from None
    if current != SCHEMA_HEAD:
        if current is not None and current not in known_revisions():
            engine.dispose()
            raise StoreError(
                f"The database {path} was written by a newer version of Help desk "
                f"(schema {current}). Update the app, or point 'database' in the profile at "
                f"another file.")
        if existed and current is not None:
            backup = path.with_name(f"{path.name}.before-{SCHEMA_HEAD}.bak")
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copy2(path, backup)
        _upgrade(engine, path)
    return Store(engine, path)


def _upgrade(engine: Engine, path: Path) -> None:
    from alembic import command

    try:
        with engine.connect() as conn:
            conn = conn.execution_options(helpdesk_write=True)
            with conn.begin():
                command.upgrade(_alembic_config(conn), "head")
    except OperationalError as exc:
        raise _plain_store_error(exc, path) from exc
