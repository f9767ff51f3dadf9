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
from sqlalchemy.exc import DBAPIError

from helpdesk.errors import DamagedStoreError, StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
# Damage found at open (cheaply): a store up to FULL_CHECK_BYTES gets SQLite's whole
# quick check (~35 ms with a warm disk cache, ~0.3 s cold), a bigger one only these tables,
# small and needed first by a sync or the outbox (a whole check of a 100,000-message
# store, 340 MB, costs 0.29 s warm, 3.6 s cold: too much for every command; see
# bench/store_bench.py).
# Damage elsewhere surfaces as DamagedStoreError when it is read; `sync` checks it all.
FULL_CHECK_BYTES = 32 * 2**20
CHECKED_AT_OPEN = ("meta", "folders", "outbox", "drafts")
# The newest revision this code understands; a test keeps it equal to Alembic's head.
SCHEMA_HEAD = "0015"


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
    """The local database of one desktop. Thread-safe: one pooled connection per thread.

    Errors from the database itself (damaged file, full or failing disk, busy, no
    permission) leave :meth:`begin` and :meth:`read` as :class:`StoreError` with a
    message naming the file and what to do; a damaged file raises
    :class:`DamagedStoreError`, which is also remembered in :attr:`damage`.
    """

    def __init__(self, engine: Engine, path: Path) -> None:
        self.engine = engine
        self.path = path
        self.damage: DamagedStoreError | None = None

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction that commits on success and rolls back on error."""
        with self._plainly(), self.engine.connect() as conn:
            conn = conn.execution_options(helpdesk_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (each statement, or an explicit transaction, a snapshot)."""
        with self._plainly(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _plainly(self) -> Iterator[None]:
        """SQLite's trouble with the file, the disk or another process as a StoreError."""
        try:
            yield
        except (DBAPIError, sqlite3.Error) as exc:
            plain = self._plain(exc)
            if plain is None:
                raise
            raise plain from exc

    def check(self, tables: tuple[str, ...] | None = None) -> None:
        """Raise :class:`DamagedStoreError` unless SQLite's quick check passes.

        Without ``tables`` the whole file is read (0.29 s warm, 3.6 s from a cold disk
        cache, for 100,000 messages: bench/store_bench.py); with them, only those
        tables and their indexes (under a millisecond warm for the small ones).
        """
        pragmas = [f"PRAGMA quick_check({t})" for t in tables] if tables is not None \
            else ["PRAGMA quick_check(1)"]
        with self.read() as conn:
            for pragma in pragmas:
                verdict = conn.exec_driver_sql(pragma).scalar()
                if verdict != "ok":
                    detail = str(verdict).replace("\n", " ").strip()
                    self.damage = DamagedStoreError(damaged_message(self.path, detail),
                                                    self.path)
                    raise self.damage

    def _plain(self, exc: DBAPIError | sqlite3.Error) -> StoreError | None:
        """The StoreError for ``exc``; None for a mistake in our code (bad SQL, a
        constraint), which is not the file's fault and stays as it is."""
        plain = store_error(exc, self.path)
        if isinstance(plain, DamagedStoreError):
            self.damage = plain
        return plain

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


# SQLite's primary result codes that say something about the file, the disk or other
# processes (https://sqlite.org/rescode.html); the others (SQLITE_ERROR for bad SQL,
# SQLITE_CONSTRAINT, SQLITE_MISUSE, ...) are mistakes in our code and stay as they are.
_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_ENVIRONMENT = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_BUSY", "SQLITE_LOCKED",
                "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_NOMEM",
                "SQLITE_PROTOCOL", "SQLITE_NOLFS", "SQLITE_AUTH")


def _sqlite_cause(exc: BaseException) -> sqlite3.Error | None:
    if isinstance(exc, sqlite3.Error):
        return exc
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, sqlite3.Error) else None


def is_damage(exc: BaseException) -> bool:
    """Whether ``exc`` (sqlite3's or SQLAlchemy's) says the database file is corrupt."""
    cause = _sqlite_cause(exc)
    if cause is None:
        return False
    name = getattr(cause, "sqlite_errorname", "") or ""
    msg = str(cause)
    return name.startswith(_DAMAGED) or "malformed" in msg or "not a database" in msg


def damaged_message(path: Path, detail: str) -> str:
    what = "is damaged"
    if "not a database" in detail:
        # Perhaps 'database' in the profile names some other file: say so.
        what = "is damaged, or is not a Help desk database at all"
    return (f"The local database {path} {what} ({detail}). Mail and team state live on "
            f"the server: run 'rebuild-store' (python main.py rebuild-store) to rebuild it "
            f"from there; the damaged file is kept aside, and what can be read of your "
            f"outbox and drafts is copied over.")


def store_error(exc: BaseException, path: Path) -> StoreError | None:
    """A plain :class:`StoreError` for an SQLite error caused by the file, the disk or
    another process; None for errors that are mistakes in the code (bad SQL, a
    constraint), which callers should let through."""
    cause = _sqlite_cause(exc)
    if cause is None:
        return None
    name = getattr(cause, "sqlite_errorname", "") or ""
    msg = str(cause)
    if is_damage(cause):
        return DamagedStoreError(damaged_message(path, msg), path)
    if name.startswith("SQLITE_FULL") or "is full" in msg:
        return StoreError(f"The disk holding the local database {path} is full; nothing was "
                          f"lost, but new changes cannot be saved until space is freed.")
    if name.startswith("SQLITE_IOERR") or "I/O error" in msg:
        return StoreError(f"The disk holding the local database {path} failed to read or "
                          f"write it ({msg}); check the disk, then try again.")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in msg:
        return StoreError(f"The local database {path} is busy (another program holds it); "
                          f"try again.")
    if name.startswith("SQLITE_READONLY") or "readonly" in msg:
        return StoreError(f"The local database {path} cannot be written (read-only file or "
                          f"folder); check its permissions.")
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return StoreError(f"The local database {path} cannot be opened ({msg}); check that "
                          f"its folder exists and that you may write to it.")
    if name.startswith(_ENVIRONMENT):
        return StoreError(f"The local database {path} could not be used ({msg}); try again.")
    return None


def _plain_store_error(exc: BaseException, path: Path) -> StoreError:
    return store_error(exc, path) or StoreError(
        f"The local database {path} could not be used: {_sqlite_cause(exc) or exc}.")


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
        raise store_error(exc, path) or DamagedStoreError(
            damaged_message(path, f"not a database: {_sqlite_cause(exc) or exc}"),
            path) from None
    if current != SCHEMA_HEAD:
        if current is not None and current not in known_revisions():
            engine.dispose()
            raise StoreError(
                f"The database {path} was written by a newer version of Help desk "
                f"(schema {current}). Update the app, or point 'database' in the profile at "
                f"another file.")
        if existed and current is not None:
            _backup(engine, path)
        _upgrade(engine, path)
    store = Store(engine, path)
    try:
        store.check(None if _size(path) <= FULL_CHECK_BYTES else CHECKED_AT_OPEN)
    except BaseException:
        store.close()
        raise
    return store


def _size(path: Path) -> int:
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += Path(f"{path}{suffix}").stat().st_size
        except OSError:
            pass
    return total


def _backup(engine: Engine, path: Path) -> None:
    backup = path.with_name(f"{path.name}.before-{SCHEMA_HEAD}.bak")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy2(path, backup)
    except (DBAPIError, sqlite3.Error) as exc:
        engine.dispose()
        raise _plain_store_error(exc, path) from exc
    except OSError as exc:
        engine.dispose()
        raise StoreError(f"Cannot back up the local database {path} to {backup} before "
                         f"upgrading it: {exc.strerror or exc}.") from None


def _upgrade(engine: Engine, path: Path) -> None:
    from alembic import command

    try:
        with engine.connect() as conn:
            conn = conn.execution_options(helpdesk_write=True)
            with conn.begin():
                command.upgrade(_alembic_config(conn), "head")
    except (DBAPIError, sqlite3.Error) as exc:
        engine.dispose()
        raise _plain_store_error(exc, path) from exc
