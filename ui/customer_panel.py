"""The customer panel: who this is, VIP / white-glove, personal-touch notes, past tickets.

Every edit is an intent on the desk (``update_customer``, ``delete_note``) run on
the worker; the panel re-reads the customer when the core reports the change.
"""

from __future__ import annotations

import re
from typing import Any

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from helpdesk import team_settings
from helpdesk.desk import Changes
from ui import format as fmt
from ui import style
from ui.conversation import Avatar
from ui.pool import WidgetPool
from ui.style import C
from ui.widgets import ElidedLabel, plain_label, plain_tooltip
from ui.worker import DeskService

TIERS = team_settings.DEFAULT_TIERS  # until the team's order is read
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _section(title: str) -> QLabel:
    label = QLabel(title.upper())
    label.setObjectName("sectionTitle")
    return label


class NoteCard(QFrame):
    """A note with its author; × asks once more before removing it for the whole team.

    Reused from one note to the next: :meth:`set_note` sets all it shows and disarms
    the × of the note shown before."""

    remove = Signal(str)

    def __init__(self, note: dict[str, Any] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.note_id = ""
        self.setObjectName("noteCard")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 6, 8)
        layout.setSpacing(3)
        self.text = plain_label()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.text)
        foot = QHBoxLayout()
        self.who = plain_label()
        self.who.setObjectName("muted")
        foot.addWidget(self.who, 1)
        self.button = QToolButton()
        self.button.setAutoRaise(True)
        self.button.clicked.connect(self._clicked)
        foot.addWidget(self.button)
        layout.addLayout(foot)
        self._armed = False
        if note is not None:
            self.set_note(note)

    def set_note(self, note: dict[str, Any]) -> None:
        self.note_id = str(note["id"])
        self.text.setText(str(note.get("text") or ""))
        self.who.setText(f"{note.get('agent') or '?'} · {fmt.ago(note.get('at'))}")
        self.who.setToolTip(fmt.exact(note.get("at")))
        self._disarm()  # as a freshly shown note: a refresh asks again before removing

    def _disarm(self) -> None:
        self._armed = False
        self.button.setEnabled(True)
        self.button.setIcon(style.icon("close", C.faint))
        self.button.setText("")
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        self.button.setToolTip("Remove this note (for the whole team)")

    def _clicked(self) -> None:
        if not self._armed:
            self._armed = True
            self.button.setIcon(style.icon("close", C.error))
            self.button.setText("Remove")
            self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            self.button.setToolTip("Click again to remove the note for everyone")
            return
        self.button.setEnabled(False)
        self.remove.emit(self.note_id)


def _muted(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("muted")
    return label


class TicketLink(QLabel):
    """One of the customer's tickets: a link to open it (the open one in bold)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ticketLink")
        self.setTextFormat(Qt.TextFormat.RichText)  # built here, every datum escaped

    def set_ticket(self, tid: str, row: dict[str, Any], current: bool) -> None:
        subject = str(row.get("subject") or tid)
        status = str(row.get("status") or "")
        elided = self.fontMetrics().elidedText(subject, Qt.TextElideMode.ElideRight, 190)
        when = fmt.ago(row.get("created_at"))
        text = (f"<b>{_esc(elided)}</b>" if current else
                f"<a href='ticket:{_esc(tid)}' style='color:{C.accent}; "
                f"text-decoration:none'>{_esc(elided)}</a>")
        self.setText(f"{text}<br><span style='color:{C.muted}'>{_esc(when)}"
                     f"{' · ' + _esc(status) if status else ''}</span>")
        opened = fmt.exact(row.get("created_at"))
        self.setToolTip(plain_tooltip(f"#{tid}: {subject}\nOpened {opened}"))


def _card_link() -> ElidedLabel:
    label = ElidedLabel()
    label.setObjectName("cardLink")
    return label


class CustomerPanel(QScrollArea):
    """Shows and edits one customer (see the module docstring)."""

    open_ticket = Signal(str)
    loaded = Signal(str)  # email

    def __init__(self, service: DeskService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.email: str | None = None
        self.current_ticket: str | None = None
        self.data: dict[str, Any] | None = None
        self._seq = 0
        self._filling = False
        self.setObjectName("customerPanel")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(290)
        inner = QWidget()
        inner.setObjectName("customerInner")
        self.setWidget(inner)
        lay = QVBoxLayout(inner)
        lay.setContentsMargins(16, 16, 16, 16)
        lay.setSpacing(10)

        top = QHBoxLayout()
        self.avatar = Avatar(size=44)
        top.addWidget(self.avatar)
        who = QVBoxLayout()
        who.setSpacing(1)
        self.name = plain_label()
        self.name.setObjectName("customerName")
        self.name.setWordWrap(True)
        self.address = ElidedLabel(mode=Qt.TextElideMode.ElideMiddle)
        self.address.setObjectName("muted")
        self.address.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.organisation = ElidedLabel()
        self.organisation.setObjectName("muted")
        for w in (self.name, self.address, self.organisation):
            who.addWidget(w)
        top.addLayout(who, 1)
        lay.addLayout(top)

        self.vip = QCheckBox("VIP customer")
        self.vip.setToolTip("VIP customers are marked for the whole team and can sort first")
        self.tier = QComboBox()
        self.tier.setEditable(True)
        self.tier.addItems(TIERS)
        self.tier.setToolTip("VIP tier (in the team's order, highest first)")
        self.tier_order: list[str] = list(TIERS)
        self.tier_order_button = QToolButton()
        self.tier_order_button.setIcon(style.icon("more", C.muted))
        self.tier_order_button.setAutoRaise(True)
        self.tier_order_button.setToolTip("Set the team's order of VIP tiers…")
        self.tier_order_button.clicked.connect(self.edit_tier_order)
        vip_row = QHBoxLayout()
        vip_row.addWidget(self.vip)
        vip_row.addWidget(self.tier, 1)
        vip_row.addWidget(self.tier_order_button)
        self.glove = QCheckBox("White-glove")
        self.glove.setToolTip("Extra reassurance and politeness: replies show a reminder")
        lay.addWidget(_section("Care"))
        lay.addLayout(vip_row)
        lay.addWidget(self.glove)
        self.vip.toggled.connect(self._vip_changed)
        self.tier.activated.connect(lambda _i: self._tier_changed())
        self.tier.lineEdit().editingFinished.connect(self._tier_changed)
        self.glove.toggled.connect(self._glove_changed)

        lay.addWidget(_section("Personal touch"))
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(6)
        self.preferred = QLineEdit()
        self.preferred.setPlaceholderText("e.g. Sam")
        self.preferred.setToolTip("How they like to be greeted: the composer uses it")
        self.birthday = QLineEdit()
        self.birthday.setPlaceholderText("YYYY-MM-DD")
        self.heard = QLineEdit()
        self.heard.setPlaceholderText("e.g. a friend")
        self.heard.setToolTip("How did they hear about us?")
        form.addRow("Preferred name", self.preferred)
        form.addRow("Birthday", self.birthday)
        form.addRow("Heard from", self.heard)
        lay.addLayout(form)
        self.field_error = plain_label()
        self.field_error.setObjectName("errorText")
        self.field_error.setWordWrap(True)
        self.field_error.hide()
        lay.addWidget(self.field_error)
        for edit, key in ((self.preferred, "preferred_name"), (self.birthday, "birthday"),
                          (self.heard, "heard_from")):
            edit.editingFinished.connect(lambda e=edit, k=key: self._field_changed(k, e))

        lay.addWidget(_section("Notes"))
        # The panel's lists keep their widgets from one customer to the next (ui.pool).
        self.notes_box = QVBoxLayout()
        self.notes_box.setSpacing(6)
        lay.addLayout(self.notes_box)
        self.no_notes = _muted("No notes yet.")
        self.notes_box.addWidget(self.no_notes)
        self._notes: WidgetPool[NoteCard] = WidgetPool(self.notes_box, self._make_note,
                                                       start=lambda: 1, keep=20)
        self.new_note = QPlainTextEdit()
        self.new_note.setObjectName("newNote")
        self.new_note.setPlaceholderText("Add a note for the team…")
        self.new_note.setFixedHeight(56)
        self.new_note.setTabChangesFocus(True)
        self.add_note = QPushButton("Add note")
        self.add_note.clicked.connect(self._add_note)
        lay.addWidget(self.new_note)
        lay.addWidget(self.add_note, 0, Qt.AlignmentFlag.AlignRight)

        lay.addWidget(_section("Feedback cards"))
        self.cards_box = QVBoxLayout()
        self.cards_box.setSpacing(2)
        lay.addLayout(self.cards_box)
        self.no_cards = _muted("Not on any card yet (F adds them).")
        self.cards_box.addWidget(self.no_cards)
        self._card_links: WidgetPool[ElidedLabel] = WidgetPool(self.cards_box, _card_link,
                                                              start=lambda: 1)
        self.cards: list[dict[str, Any]] = []

        lay.addWidget(_section("Tickets"))
        self.tickets_box = QVBoxLayout()
        self.tickets_box.setSpacing(2)
        lay.addLayout(self.tickets_box)
        self._ticket_links: WidgetPool[TicketLink] = WidgetPool(self.tickets_box,
                                                               self._make_ticket_link)
        self.more_tickets = _muted("")
        self.more_tickets.hide()
        self.tickets_box.addWidget(self.more_tickets)
        lay.addStretch(1)
        self._editors = (self.vip, self.tier, self.glove, self.preferred, self.birthday,
                         self.heard, self.new_note, self.add_note)

    def _make_note(self) -> NoteCard:
        card = NoteCard()
        card.remove.connect(self._remove_note)
        return card

    def _make_ticket_link(self) -> TicketLink:
        link = TicketLink()
        link.linkActivated.connect(lambda href: self.open_ticket.emit(href.split(":", 1)[1]))
        return link

    # --- loading ------------------------------------------------------------------

    def show_customer(self, email: str | None, current_ticket: str | None = None) -> None:
        self.current_ticket = current_ticket
        if email != self.email:
            self.data = None
            self.field_error.hide()
            self.new_note.clear()
        self.email = email
        self.reload()

    def reload(self) -> None:
        email = self.email
        self._seq += 1
        seq = self._seq
        if not email:
            self._fill(None, {})
            return

        def load(desk: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            data = desk.customer(email)
            cards = getattr(desk, "cards", None)
            data = {**data, "cards": cards.cards_of(email) if cards is not None else [],
                    "tier_order": team_settings.tier_order(desk)}
            return data, desk.ticket_rows(list(data["tickets"][:30]))

        def done(result: tuple[dict[str, Any], dict[str, Any]]) -> None:
            if shiboken6.isValid(self) and seq == self._seq:
                self._fill(*result)
                self.loaded.emit(email)

        def failed(message: str) -> None:
            if shiboken6.isValid(self) and seq == self._seq:
                self._fill({"email": email, "name": None, "missing": message}, {})

        self.service.read(load, on_done=done, on_error=failed)

    def set_tiers(self, order: list[str], current: str | None = None) -> None:
        """The tier picker in the team's rank order (highest first), then any other."""
        items = list(order)
        if current and current.casefold() not in {t.casefold() for t in items}:
            items.append(current)
        if [self.tier.itemText(i) for i in range(self.tier.count())] != items:
            self.tier.blockSignals(True)
            self.tier.clear()
            self.tier.addItems(items)
            self.tier.blockSignals(False)
        self.tier_order = list(order)

    def edit_tier_order(self) -> None:
        """Let the person set the team's tier order (published for every desktop)."""
        from ui.tier_dialog import TierOrderDialog

        dialog = TierOrderDialog(self.tier_order or list(TIERS), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def save(order: list[str]) -> None:
            self.service.run(lambda d: team_settings.set_tier_order(d, order),
                             on_done=lambda _c: self.reload(),
                             on_error=lambda m: (self.field_error.setText(m),
                                                 self.field_error.show()))

        dialog.chosen.connect(save)
        dialog.open()

    def on_changed(self, changes: Changes) -> None:
        if self.email and (self.email in changes.customers or "*" in changes.tickets
                           or changes.cards
                           or (self.data and set(self.data.get("tickets", []))
                               & changes.tickets)):
            self.reload()

    def _fill(self, data: dict[str, Any] | None, rows: dict[str, Any]) -> None:
        self._filling = True
        try:
            self.data = data
            data = data or {}
            email = data.get("email") or ""
            self.avatar.set_person(data.get("name"), email, False)
            self.name.setText(fmt.display_name(data.get("name"), email))
            self.address.setText(email)
            org = data.get("organisation") or ""
            self.organisation.setText(org)
            self.organisation.setVisible(bool(org))
            known = bool(data) and "missing" not in data
            for w in self._editors:
                w.setEnabled(known)
            self.vip.setChecked(bool(data.get("vip")))
            order = list(data.get("tier_order") or TIERS)
            tier = data.get("vip_tier") or order[0]
            self.set_tiers(order, tier)
            self.tier.setCurrentText(tier)
            self.tier.setEnabled(known and bool(data.get("vip")))
            self.glove.setChecked(bool(data.get("white_glove")))
            for edit, key in ((self.preferred, "preferred_name"), (self.birthday, "birthday"),
                              (self.heard, "heard_from")):
                if not edit.hasFocus():
                    edit.setText(str(data.get(key) or ""))
                    edit.setCursorPosition(0)
            self._fill_notes(data.get("notes") or [], bool(data.get("notes_loading")))
            self._fill_cards(data.get("cards") or [])
            self._fill_tickets(data.get("tickets") or [], rows)
        finally:
            self._filling = False

    def _fill_notes(self, notes: list[dict[str, Any]], loading: bool = False) -> None:
        # A new desktop stores the team's history (notes among it) right after the rest:
        # until then "no notes" would not be true.
        self.no_notes.setText("Notes are still coming in (team history)…" if loading
                              else "No notes yet.")
        self.no_notes.setVisible(not notes or loading)
        for card, note in zip(self._notes.take(len(notes)), notes, strict=True):
            card.set_note(note)

    def _fill_cards(self, cards: list[dict[str, Any]]) -> None:
        """The feedback cards this customer is on (asked for), with their column."""
        self.cards = cards
        self.no_cards.setVisible(not cards)
        shown = cards[:20]
        for label, card in zip(self._card_links.take(len(shown)), shown, strict=True):
            label.setText(f"{card.get('title') or ''}  ·  {card.get('column_name') or ''}")
            quote = str(card.get("quote") or "")
            label.setToolTip(plain_tooltip(f"{card.get('title')}\n“{quote}”" if quote
                                           else str(card.get("title") or "")))

    def _fill_tickets(self, ids: list[str], rows: dict[str, Any]) -> None:
        shown = ids[:30]
        for link, tid in zip(self._ticket_links.take(len(shown)), shown, strict=True):
            link.set_ticket(tid, rows.get(tid, {}), tid == self.current_ticket)
        self.more_tickets.setText(f"and {len(ids) - 30} older tickets" if len(ids) > 30
                                  else "")
        self.more_tickets.setVisible(len(ids) > 30)

    # --- edits ----------------------------------------------------------------------

    def _update(self, **kw: Any) -> None:
        email = self.email
        if not email or self._filling:
            return
        self.field_error.hide()

        def failed(message: str) -> None:
            if shiboken6.isValid(self):
                self.field_error.setText(message)
                self.field_error.show()
                self.reload()

        self.service.run(lambda d: d.update_customer(email, **kw), on_error=failed)

    def _vip_changed(self, on: bool) -> None:
        self.tier.setEnabled(on)
        self._update(vip=on, tier=self.tier.currentText().strip() or "VIP" if on else None)

    def _tier_changed(self) -> None:
        if not self._filling and self.vip.isChecked() and self.data is not None:
            tier = self.tier.currentText().strip() or "VIP"
            if tier != (self.data.get("vip_tier") or ""):
                self._update(vip=True, tier=tier)

    def _glove_changed(self, on: bool) -> None:
        self._update(white_glove=on)

    def _field_changed(self, key: str, edit: QLineEdit) -> None:
        if self._filling or self.data is None:
            return
        value = edit.text().strip()
        if value == str(self.data.get(key) or ""):
            return
        if key == "birthday" and value and not _DATE_RE.match(value):
            self.field_error.setText(f"Birthday '{value}' should look like 1980-04-23.")
            self.field_error.show()
            return
        self.data[key] = value
        self._update(**{key: value or None})

    def _add_note(self) -> None:
        text = self.new_note.toPlainText().strip()
        if not text:
            return
        self.new_note.clear()
        self._update(note=text)

    def _remove_note(self, note_id: str) -> None:
        email = self.email
        if email:
            self.service.run(lambda d: d.delete_note(email, note_id),
                             on_error=lambda m: self.field_error.setText(m))


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
