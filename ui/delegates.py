"""Painters for the ticket list (three-line mail-style rows) and the sidebar."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from ui import format as fmt
from ui import style
from ui.models import COUNT_ROLE, ROW_ROLE
from ui.style import C

Index = QModelIndex | QPersistentModelIndex


def pill(painter: QPainter, right: int, top: int, height: int, text: str, font: QFont,
         fg: str, bg: str) -> int:
    """Draw a rounded label ending at ``right``; returns its left edge."""
    fm = QFontMetrics(font)
    width = fm.horizontalAdvance(text) + 12
    rect = QRectF(right - width, top, width, height)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(bg))
    painter.drawRoundedRect(rect, height / 2, height / 2)
    painter.setPen(QColor(fg))
    painter.setFont(font)
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
    return int(rect.left())


def _selected(option: QStyleOptionViewItem) -> tuple[bool, bool]:
    selected = bool(option.state & QStyle.StateFlag.State_Selected)
    active = bool(option.state & QStyle.StateFlag.State_Active) and bool(
        option.widget is not None and option.widget.hasFocus())
    return selected, active


class TicketDelegate(QStyledItemDelegate):
    """Customer and waiting time / subject and holder / snippet; VIP and white-glove marks."""

    def __init__(self, agent: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.agent = agent

    @staticmethod
    def row_height(font: QFont) -> int:
        return 3 * QFontMetrics(font).height() + 26

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(320, self.row_height(option.font))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = option.rect
        selected, active = _selected(option)
        on_accent = selected and active
        bg = C.accent if on_accent else C.accent_soft if selected else C.surface
        painter.fillRect(rect, QColor(bg))
        if not selected:
            painter.setPen(QPen(QColor(C.line), 1))
            painter.drawLine(rect.left() + 26, rect.bottom(), rect.right(), rect.bottom())

        base = QFont(option.font)
        bold = style.font(base, bold=True)
        small = style.font(base, delta=-1.5)
        small_bold = style.font(small, bold=True)
        fm = QFontMetrics(base)
        lh = fm.height()
        left = rect.left() + 26
        right = rect.right() - 12
        y1 = rect.top() + 9
        y2 = y1 + lh + 3
        y3 = y2 + lh + 3
        row: dict[str, Any] | None = index.data(ROW_ROLE)
        text_c = C.accent_text if on_accent else C.text
        muted_c = "#dbe6ff" if on_accent else C.muted

        if row is None:
            painter.setPen(Qt.PenStyle.NoPen)
            # QColor reads "#AARRGGBB": a translucent white is "#33ffffff".
            painter.setBrush(QColor("#33ffffff" if on_accent else "#eeeff2"))
            painter.drawRoundedRect(QRectF(left, y1 + 3, 140, lh - 6), 4, 4)
            painter.drawRoundedRect(QRectF(left, y2 + 3, 220, lh - 6), 4, 4)
            painter.drawRoundedRect(QRectF(left, y3 + 3, 180, lh - 6), 4, 4)
            painter.restore()
            return

        closed = row.get("status") == "closed"
        # Gutter marks: VIP star, white-glove heart.
        mark_x = rect.left() + 7
        if row.get("vip"):
            painter.drawPixmap(mark_x, y1 + (lh - 14) // 2,
                               style.pixmap("star", "#ffffff" if on_accent else C.vip_star, 14))
        if row.get("white_glove"):
            painter.drawPixmap(mark_x, y2 + (lh - 14) // 2,
                               style.pixmap("heart", "#ffffff" if on_accent else C.glove, 14))

        # Line 1: customer ........ waiting age (or last activity)
        waiting = row.get("waiting_since")
        if waiting and not closed:
            age = fmt.ago(waiting)
            level = fmt.waiting_level(waiting)
            age_c = muted_c if on_accent or level == 0 else (C.warn, C.error)[level - 1]
            age_font = small_bold if level else small
        else:
            age = fmt.ago(row.get("updated_at"))
            age_c, age_font = muted_c, small
        painter.setFont(age_font)
        age_w = QFontMetrics(age_font).horizontalAdvance(age)
        painter.setPen(QColor(age_c))
        painter.drawText(QRect(right - age_w, y1, age_w, lh),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, age)
        name_right = right - age_w - 8
        if row.get("vip"):
            tier = str(row.get("vip_tier") or "VIP")
            fg, bg_ = (C.vip, C.surface) if on_accent else (C.vip, C.vip_soft)
            name_right = pill(painter, name_right, y1 + 2, lh - 3, tier, small_bold, fg, bg_) - 6
        painter.setFont(bold)
        painter.setPen(QColor(muted_c if closed and not on_accent else text_c))
        name = fmt.display_name(row.get("customer_name"), row.get("customer_email"))
        name = QFontMetrics(bold).elidedText(name, Qt.TextElideMode.ElideRight,
                                             max(20, name_right - left))
        painter.drawText(QRect(left, y1, name_right - left, lh),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)

        # Line 2: subject ........ holder / status
        subj_right = right
        holder = row.get("claimed_by")
        if holder:
            mine = holder == self.agent
            label = "You" if mine else str(holder)
            # Solid pills on the selected (accent) row too: readable whatever the row.
            fg, bg_ = (C.ok, C.ok_soft) if mine else (C.warn, C.warn_soft)
            if on_accent:
                bg_ = C.surface
            subj_right = pill(painter, right, y2 + 2, lh - 3, label, small_bold, fg, bg_) - 6
        elif row.get("status") in ("pending", "closed"):
            label = str(row["status"]).capitalize()
            fg, bg_ = (C.muted, C.surface) if on_accent else (C.muted, "#eeeff2")
            subj_right = pill(painter, right, y2 + 2, lh - 3, label, small_bold, fg, bg_) - 6
        painter.setFont(base)
        painter.setPen(QColor(muted_c if closed and not on_accent else text_c))
        subject = str(row.get("subject") or "(no subject)")
        count = int(row.get("message_count") or 0)
        subject_w = max(20, subj_right - left - (30 if count > 1 else 0))
        subject = fm.elidedText(subject, Qt.TextElideMode.ElideRight, subject_w)
        painter.drawText(QRect(left, y2, subject_w, lh),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, subject)
        if count > 1:
            x = left + fm.horizontalAdvance(subject) + 6
            painter.setFont(small)
            painter.setPen(QColor(muted_c))
            painter.drawText(QRect(x, y2, 30, lh),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             str(count))

        # Line 3: snippet
        painter.setFont(small)
        painter.setPen(QColor(muted_c if on_accent else C.faint if closed else C.muted))
        snippet = " ".join(str(row.get("snippet") or "").split())
        snippet = QFontMetrics(small).elidedText(snippet, Qt.TextElideMode.ElideRight,
                                                 right - left)
        painter.drawText(QRect(left, y3, right - left, lh),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, snippet)
        painter.restore()


class SidebarDelegate(QStyledItemDelegate):
    """Icon, view name, and its count on the right."""

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(180, QFontMetrics(option.font).height() + 14)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = option.rect.adjusted(8, 1, -8, -1)
        selected, active = _selected(option)
        if selected:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(C.accent if active else "#d9dce3"))
            painter.drawRoundedRect(QRectF(rect), 7, 7)
        on_accent = selected and active
        ic = index.data(Qt.ItemDataRole.DecorationRole)
        if ic is not None:
            mode = ic.Mode.Selected if on_accent else ic.Mode.Normal
            pm = ic.pixmap(QSize(16, 16), painter.device().devicePixelRatioF(), mode)
            painter.drawPixmap(rect.left() + 8, rect.center().y() - 8, pm)
        count = index.data(COUNT_ROLE)
        count_text = "" if count is None else f"{count:,}"
        small = style.font(option.font, delta=-1)
        cw = QFontMetrics(small).horizontalAdvance(count_text)
        painter.setFont(small)
        painter.setPen(QColor(C.accent_text if on_accent else C.muted))
        painter.drawText(QRect(rect.right() - 10 - cw, rect.top(), cw, rect.height()),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, count_text)
        painter.setFont(option.font)
        painter.setPen(QColor(C.accent_text if on_accent else C.text))
        label = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        painter.drawText(QRect(rect.left() + 32, rect.top(), rect.width() - 50 - cw,
                               rect.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, label)
        painter.restore()
