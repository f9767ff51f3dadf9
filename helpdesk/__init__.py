"""Help desk core: Qt-free sync, store, team log and the Desk facade."""

__version__ = "0.1.0"
