"""The store: migrations on open, WAL, refusing newer databases, one schema: the migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from helpdesk.errors import StoreError
from helpdesk.store import SCHEMA_HEAD, open_store
from helpdesk.store.engine import known_revisions


def test_schema_head_matches_alembic() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from helpdesk.store.engine import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_HEAD
    assert SCHEMA_HEAD in known_revisions()


def test_open_creates_wal_database(tmp_path: Path) -> None:
    store = open_store(tmp_path / "d.sqlite3")
    with store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def test_refuses_newer_database(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    open_store(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="newer version"):
        open_store(path)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a Help desk database"):
        open_store(path)
