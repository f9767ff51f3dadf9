"""Look and feel: one calm light palette, the style sheet, and recolourable icons.

Icons in ``resources/icons`` are stroke drawings using ``currentColor``; :func:`icon`
renders them in any colour (and caches the result), so one drawing serves the
sidebar, buttons and the selected-row state.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
ICONS = RESOURCES / "icons"


class C:
    """Named colours (hex) used by painters and the style sheet."""

    window = "#f5f5f7"
    sidebar = "#eceef2"
    surface = "#ffffff"
    line = "#e3e4e8"
    text = "#1d1d1f"
    muted = "#6b6b72"
    faint = "#a0a0a8"
    accent = "#2f6fed"
    accent_soft = "#dde7fc"
    accent_text = "#ffffff"
    vip = "#8f5c00"
    vip_soft = "#fdf1d3"
    vip_star = "#e3a008"
    glove = "#7a4fc9"
    glove_soft = "#efe8fb"
    ok = "#1e7a3c"
    ok_soft = "#e4f4e9"
    warn = "#8a5a00"
    warn_soft = "#fff3dc"
    error = "#a4262c"
    error_soft = "#fdeceb"
    outgoing = "#f3f6fd"


def stylesheet() -> str:
    text = (RESOURCES / "style.qss").read_text(encoding="utf-8")
    text = text.replace("@icons", ICONS.as_posix())
    names = sorted((n for n in vars(C) if not n.startswith("_")), key=len, reverse=True)
    for name in names:
        text = text.replace("@" + name, getattr(C, name))
    return text


def apply(app: QApplication) -> None:
    """Fusion with our palette and style sheet: the same calm look on every desktop."""
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: C.window, QPalette.ColorRole.Base: C.surface,
        QPalette.ColorRole.AlternateBase: C.window, QPalette.ColorRole.Text: C.text,
        QPalette.ColorRole.WindowText: C.text, QPalette.ColorRole.ButtonText: C.text,
        QPalette.ColorRole.Button: "#fbfbfc", QPalette.ColorRole.Highlight: C.accent,
        QPalette.ColorRole.HighlightedText: C.accent_text,
        QPalette.ColorRole.PlaceholderText: C.faint, QPalette.ColorRole.Link: C.accent,
        QPalette.ColorRole.ToolTipBase: "#2b2b30", QPalette.ColorRole.ToolTipText: "#ffffff",
        QPalette.ColorRole.Mid: C.line, QPalette.ColorRole.Light: "#ffffff",
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(C.faint))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(C.faint))
    app.setPalette(pal)
    font = app.font()
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    app.setFont(font)
    app.setStyleSheet(stylesheet())
    app.setWindowIcon(app_icon())


@cache
def _svg(name: str) -> str:
    return (ICONS / f"{name}.svg").read_text(encoding="utf-8")


@cache
def pixmap(name: str, color: str = C.muted, size: int = 18, ratio: float = 2.0) -> QPixmap:
    svg = _svg(name).replace("currentColor", color)
    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    pm = QPixmap(int(size * ratio), int(size * ratio))
    pm.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pm)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, pm.width(), pm.height()))
    painter.end()
    pm.setDevicePixelRatio(ratio)
    return pm


@cache
def icon(name: str, color: str = C.muted, active: str | None = None) -> QIcon:
    """``name`` drawn in ``color`` (and in ``active`` when selected/checked)."""
    ic = QIcon()
    for size in (16, 18, 24):
        ic.addPixmap(pixmap(name, color, size), QIcon.Mode.Normal)
        ic.addPixmap(pixmap(name, C.faint, size), QIcon.Mode.Disabled)
        if active:
            ic.addPixmap(pixmap(name, active, size), QIcon.Mode.Selected)
            ic.addPixmap(pixmap(name, active, size), QIcon.Mode.Normal, QIcon.State.On)
    return ic


@cache
def app_icon() -> QIcon:
    return QIcon(str(ICONS / "app.svg"))


def font(base: QFont, *, delta: float = 0, bold: bool = False,
         weight: QFont.Weight | None = None) -> QFont:
    f = QFont(base)
    if delta:
        f.setPointSizeF(max(6.0, base.pointSizeF() + delta))
    if bold:
        f.setWeight(QFont.Weight.DemiBold)
    if weight is not None:
        f.setWeight(weight)
    return f
