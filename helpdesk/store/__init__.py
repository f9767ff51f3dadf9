"""Local SQLite store: models, engine with migrations, full-text search."""

from helpdesk.store.engine import SCHEMA_HEAD, Store, open_store

__all__ = ["SCHEMA_HEAD", "Store", "open_store"]
