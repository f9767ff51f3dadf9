"""The PySide6 layer: windows, widgets, item models and workers over the Desk facade."""
