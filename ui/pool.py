"""Reused widgets: a refresh refills the widgets it showed before instead of making new ones.

Why: PySide6 (6.10.3 and 6.11.3 alike, on Python 3.11) keeps about 7-16 references to
``None`` for every widget that is created and shown, and never gives them back. A
view that rebuilt its rows on every refresh (message cards, outbox rows, the
customer's notes and tickets) raised None's refcount by hundreds of thousands over a
working day. Widgets made once and refilled cost nothing more after the first
refresh that needed them.

The contract for whoever fills a pooled widget: every refill sets *all* of what the
widget shows (texts, tooltips, pixmaps, styles, which parts are hidden), never only
what differs from the default, because the widget last showed something else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from PySide6.QtWidgets import QBoxLayout, QWidget

W = TypeVar("W", bound=QWidget)


class WidgetPool(Generic[W]):
    """The widgets of one run of a box layout, made on demand and then kept.

    ``take(n)`` returns the first ``n`` widgets, in layout order, shown, making any
    that are missing with ``make()``; the pool's other widgets are hidden and, if
    ``forget`` is given, passed to it (to drop what they showed: big documents,
    images, a selection). At most ``keep`` hidden widgets are kept beyond ``n``; a
    ticket with hundreds of messages does not hold hundreds of cards all day.

    The run starts at layout index ``start()`` (for two pools sharing a layout, the
    second one's start is after the first one's widgets).
    """

    def __init__(self, layout: QBoxLayout, make: Callable[[], W], *,
                 start: Callable[[], int] = lambda: 0,
                 forget: Callable[[W], None] | None = None, keep: int = 40) -> None:
        self._layout = layout
        self._make = make
        self._start = start
        self._forget = forget
        self._keep = keep
        self._widgets: list[W] = []
        self._shown = 0
        self.made = 0
        """How many widgets this pool has made (for tests and the soak)."""

    def __len__(self) -> int:
        return len(self._widgets)

    @property
    def shown(self) -> list[W]:
        """The widgets handed out by the last :meth:`take`, in layout order."""
        return self._widgets[:self._shown]

    def take(self, n: int) -> list[W]:
        while len(self._widgets) < n:
            widget = self._make()
            self.made += 1
            self._layout.insertWidget(self._start() + len(self._widgets), widget)
            self._widgets.append(widget)
        for i, widget in enumerate(self._widgets):
            if i < n:
                widget.setVisible(True)
            elif not widget.isHidden() or i < self._shown:
                widget.setVisible(False)
                if self._forget is not None:
                    self._forget(widget)
        # Trim the spares beyond what the largest recent refresh plus ``keep`` needs.
        while len(self._widgets) > max(n, self._keep):
            extra = self._widgets.pop()
            self._layout.removeWidget(extra)
            extra.deleteLater()
        self._shown = n
        return self._widgets[:n]
