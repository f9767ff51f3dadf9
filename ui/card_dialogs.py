"""Dialogs of the feedback board: a card's details, merging two cards, telling customers."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any, TypeVar

import shiboken6
from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from helpdesk.cards.rank import typed_match
from ui import format as fmt
from ui import style
from ui.style import C
from ui.worker import DeskService

__all__ = ["CardDialog", "MergeDialog", "NotifyDialog", "customers_html", "guarded"]

TICKET_SCHEME = "ticket"
T = TypeVar("T")


def guarded(widget: QObject, fn: Callable[[T], None]) -> Callable[[T], None]:
    """``fn`` as a worker callback that does nothing once ``widget`` has been deleted."""
    def call(value: T) -> None:
        if shiboken6.isValid(widget):
            fn(value)
    return call


def customers_html(card: dict[str, Any]) -> str:
    """Every customer on the card: name, address, their words, a link to their ticket."""
    if not card["customers"]:
        return f'<p style="color:{C.muted}">Nobody has been added to this card yet.</p>'
    parts: list[str] = []
    for c in card["customers"]:
        who = html.escape(fmt.display_name(c["name"], c["email"]))
        line = f"<b>{who}</b> &lt;{html.escape(c['email'])}&gt;"
        if c["ticket_id"]:
            tid = html.escape(c["ticket_id"])
            line += f' · <a href="{TICKET_SCHEME}:{tid}">ticket #{tid}</a>'
        meta = f"added by {html.escape(c['added_by'])} {html.escape(fmt.ago(c['added_at']))}"
        if c["notified_at"]:
            meta += f" · <span style='color:{C.ok}'>told it shipped " \
                    f"{html.escape(fmt.ago(c['notified_at']))}</span>"
        parts.append(f'<p style="margin:{0 if not parts else 12}px 0 0 0">{line}<br>'
                     f'<span style="color:{C.muted}">{meta}</span></p>')
        if c["quote"]:
            words = html.escape(c["quote"]).replace("\n", "<br>")
            parts.append(f'<p style="margin:4px 0 0 14px; font-style:italic">“{words}”</p>')
    return "".join(parts)


class CardDialog(QDialog):
    """One card: edit its title and description, see who asked and open their tickets."""

    openTicket = Signal(str)
    mergeRequested = Signal(str)  # this card's id
    loaded = Signal()

    def __init__(self, service: DeskService, card_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.card_id = card_id
        self.card: dict[str, Any] | None = None
        self.setWindowTitle("Feedback card")
        self.resize(620, 640)
        self.title = QLineEdit()
        self.title.setFont(style.font(self.font(), delta=2, bold=True))
        self.description = QPlainTextEdit()
        self.description.setPlaceholderText("What is asked for, and the words customers use "
                                            "for it (this helps the picker find the card).")
        self.description.setFixedHeight(90)
        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet(f"color: {C.muted};")
        self.customers = QTextBrowser()
        self.customers.setOpenLinks(False)
        self.customers.anchorClicked.connect(self._link)
        self.status = QLabel()
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)
        self.save_button = QPushButton("Save")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self.save)
        merge = QPushButton("Merge into…")
        merge.clicked.connect(lambda: self.mergeRequested.emit(self.card_id))
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        self.title.textEdited.connect(self._edited)
        self.description.textChanged.connect(self._edited)
        buttons = QHBoxLayout()
        buttons.addWidget(merge)
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.summary)
        layout.addWidget(self.description)
        layout.addWidget(QLabel("Customers who asked"))
        layout.addWidget(self.customers, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self._loading = False
        self.reload()

    def reload(self) -> None:
        card_id = self.card_id
        self.service.read(lambda desk: desk.cards.card(card_id),
                         on_done=guarded(self, self._show), on_error=guarded(self, self._error))

    def _show(self, card: dict[str, Any]) -> None:
        self.card = card
        self.card_id = card["id"]
        self._loading = True
        self.title.setText(card["title"])
        self.description.setPlainText(card["description"])
        self._loading = False
        self.save_button.setEnabled(False)
        told = f", {len(card['notified'])} told it shipped" if card["notified"] else ""
        merged = ""
        if card["merged"]:
            merged = " · merged from: " + ", ".join(m["title"] for m in card["merged"])
        self.summary.setText(f"{card['column_name']} · {card['votes']} customer"
                             f"{'' if card['votes'] == 1 else 's'}{told} · created by "
                             f"{card['created_by']} {fmt.ago(card['created_at'])}{merged}")
        self.setWindowTitle(f"Feedback card: {card['title']}")
        self.customers.setHtml(customers_html(card))
        self.loaded.emit()

    def _edited(self) -> None:
        if not self._loading and self.card is not None:
            self.save_button.setEnabled(
                bool(self.title.text().strip()) and (
                    self.title.text().strip() != self.card["title"]
                    or self.description.toPlainText().strip() != self.card["description"]))

    def save(self) -> None:
        card_id, title = self.card_id, self.title.text().strip()
        description = self.description.toPlainText().strip()
        self.save_button.setEnabled(False)
        self.service.run(lambda desk: desk.cards.update(card_id, title, description),
                         on_done=guarded(self, lambda _c: self.reload()),
                         on_error=guarded(self, self._error))

    def _link(self, url: QUrl) -> None:
        if url.scheme() == TICKET_SCHEME and url.path():
            self.openTicket.emit(url.path())

    def _error(self, message: str) -> None:
        self.status.setText(message)
        self.status.setStyleSheet(f"color: {C.error};")


class MergeDialog(QDialog):
    """Choose the card another card turns out to be the same request as."""

    def __init__(self, card: dict[str, Any], others: list[dict[str, Any]],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.card = card
        self.others = others
        self.target_id: str | None = None
        self.setWindowTitle("Merge cards")
        self.resize(460, 420)
        intro = QLabel(f"Merge “{card['title']}” into which card? Every customer is kept and "
                       f"counted once; “{card['title']}” leaves the board.")
        intro.setTextFormat(Qt.TextFormat.PlainText)
        intro.setWordWrap(True)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter cards…")
        self.list = QListWidget()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.merge_button = self.buttons.addButton("Merge",
                                                   QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        self.filter.textChanged.connect(self._fill)
        self.list.itemDoubleClicked.connect(lambda _i: self._accept())
        self.list.currentRowChanged.connect(
            lambda row: self.merge_button.setEnabled(row >= 0))
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.filter)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.buttons)
        self._fill()

    def _fill(self) -> None:
        typed = self.filter.text()
        ranked = sorted(((typed_match(typed, c["title"], c["description"]), i, c)
                         for i, c in enumerate(self.others)), key=lambda t: (-t[0], t[1]))
        self.list.clear()
        for score, _i, c in ranked:
            if typed.strip() and score < 60:
                continue
            item = QListWidgetItem(f"{c['title']}  ({c['votes']})")
            item.setData(Qt.ItemDataRole.UserRole, c["id"])
            self.list.addItem(item)
        self.list.setCurrentRow(0 if self.list.count() else -1)
        self.merge_button.setEnabled(self.list.count() > 0)

    def select(self, card_id: str) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == card_id:
                self.list.setCurrentRow(row)

    def _accept(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.target_id = str(item.data(Qt.ItemDataRole.UserRole))
            self.accept()


class CardNoteDialog(QDialog):
    """The card's shipped note in one language, written once for the whole team."""

    written = Signal(str, str, str)  # language tag, subject, body

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Shipped note in another language: {title}")
        self.resize(560, 420)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 16)
        layout.setSpacing(10)
        intro = QLabel("The whole team can then send this card's note in this language. "
                       "{name}, {title}, {quote}, {agent} and {team} are filled in.")
        intro.setTextFormat(Qt.TextFormat.PlainText)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.lang = QLineEdit()
        self.lang.setPlaceholderText("language code, e.g. de, fr, pt-br")
        self.subject = QLineEdit()
        self.subject.setPlaceholderText(title)
        self.body = QPlainTextEdit()
        form.addRow("Language", self.lang)
        form.addRow("Subject", self.subject)
        form.addRow("Text", self.body)
        layout.addLayout(form, 1)
        self.error = QLabel()
        self.error.setTextFormat(Qt.TextFormat.PlainText)
        self.error.setObjectName("errorText")
        self.error.hide()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.save_button = buttons.addButton("Save for the team",
                                             QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self._save)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _save(self) -> None:
        from helpdesk.team_settings import clean_lang

        try:
            lang = clean_lang(self.lang.text())
        except ValueError:
            self.error.setText("Give a language code like de, fr or pt-br.")
            self.error.show()
            return
        if not self.body.toPlainText().strip():
            self.error.setText("Write the note first.")
            self.error.show()
            return
        self.written.emit(lang, self.subject.text(), self.body.toPlainText())
        self.accept()


class NotifyDialog(QDialog):
    """Preview and edit each personalised "it shipped" email before it is queued.

    ``alternatives`` maps a language tag to the same drafts written from the team's
    text for that language (team state: ``card-note`` events); each customer's email
    can be switched to their language. "Write in another language…" asks the window
    (``write_language``) to let the person add one for the whole team.
    """

    write_language = Signal()

    def __init__(self, title: str, drafts: list[dict[str, Any]],
                 parent: QWidget | None = None,
                 alternatives: dict[str, list[dict[str, Any]]] | None = None) -> None:
        super().__init__(parent)
        self._drafts = [dict(d) for d in drafts]
        self._defaults = [dict(d) for d in drafts]
        self._alternatives: dict[str, list[dict[str, Any]]] = {}
        self._current = -1
        self.setWindowTitle(f"Tell the customers: {title}")
        self.resize(820, 560)
        self.list = QListWidget()
        for d in self._drafts:
            item = QListWidgetItem(f"{d['name']} <{d['email']}>")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.list.addItem(item)
        self.to = QLabel()
        self.to.setTextFormat(Qt.TextFormat.PlainText)
        self.language = QComboBox()
        self.language.setToolTip("Write this customer's email from the team's text in "
                                 "their language")
        self.language.activated.connect(lambda _i: self._language_chosen())
        self.more_languages = QPushButton("Write in another language…")
        self.more_languages.setToolTip("Add this card's note in a language, for the whole "
                                       "team")
        self.more_languages.clicked.connect(self.write_language)
        lang_row = QHBoxLayout()
        lang_row.addWidget(self.language, 1)
        lang_row.addWidget(self.more_languages)
        self.subject = QLineEdit()
        self.body = QPlainTextEdit()
        editor = QWidget()
        form = QFormLayout(editor)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("To", self.to)
        form.addRow("Language", lang_row)
        form.addRow("Subject", self.subject)
        form.addRow(self.body)
        split = QSplitter()
        split.addWidget(self.list)
        split.addWidget(editor)
        split.setSizes([260, 560])
        self.all = QCheckBox("Send to everyone checked")
        self.all.setChecked(True)
        self.all.toggled.connect(self._check_all)
        note = QLabel("Each email goes through the outbox with the next sync. A customer "
                      "already told about this card by a teammate is skipped.")
        note.setWordWrap(True)
        note.setStyleSheet(f"color: {C.muted};")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.send_button = self.buttons.addButton("", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 16, 18, 16)
        layout.setSpacing(10)
        layout.addWidget(split, 1)
        layout.addWidget(note)
        row = QHBoxLayout()
        row.addWidget(self.all)
        row.addStretch(1)
        row.addWidget(self.buttons)
        layout.addLayout(row)
        self.list.currentRowChanged.connect(self._select)
        self.list.itemChanged.connect(lambda _i: self._count())
        self.set_alternatives(alternatives or {})
        self.list.setCurrentRow(0)
        self._count()

    # --- languages --------------------------------------------------------------------

    def set_alternatives(self, alternatives: dict[str, list[dict[str, Any]]]) -> None:
        """The drafts per language tag (same customers, same order as the defaults)."""
        self._alternatives = {lang: [dict(d) for d in ds] for lang, ds in alternatives.items()
                              if lang}
        self.language.blockSignals(True)
        self.language.clear()
        self.language.addItem("The team's language (default)", "")
        for lang in sorted(self._alternatives):
            self.language.addItem(lang, lang)
        self.language.blockSignals(False)
        self._show_language()

    def languages(self) -> list[str]:
        return sorted(self._alternatives)

    def set_language(self, row: int, lang: str) -> None:
        """Write draft ``row`` from the team's text in ``lang`` ('' for the default)."""
        source = self._alternatives.get(lang) if lang else self._defaults
        if source is None or not 0 <= row < len(self._drafts):
            return
        email = self._drafts[row]["email"]
        match = next((d for d in source if d["email"] == email), None)
        if match is None:
            return
        self._drafts[row].update(subject=match["subject"], body=match["body"],
                                 lang=lang or None)
        if row == self._current:
            self.subject.setText(match["subject"])
            self.body.setPlainText(match["body"])
            self._show_language()

    def _language_chosen(self) -> None:
        self.set_language(self._current, str(self.language.currentData() or ""))

    def _show_language(self) -> None:
        lang = ""
        if 0 <= self._current < len(self._drafts):
            lang = str(self._drafts[self._current].get("lang") or "")
        i = self.language.findData(lang)
        self.language.setCurrentIndex(max(0, i))
        self.language.setEnabled(bool(self._alternatives))

    def _save_current(self) -> None:
        if 0 <= self._current < len(self._drafts):
            self._drafts[self._current].update(subject=self.subject.text(),
                                               body=self.body.toPlainText())

    def _select(self, row: int) -> None:
        self._save_current()
        self._current = row
        if 0 <= row < len(self._drafts):
            d = self._drafts[row]
            self.to.setText(f"{d['name']} <{d['email']}>")
            self.subject.setText(d["subject"])
            self.body.setPlainText(d["body"])
            self._show_language()

    def _check_all(self, on: bool) -> None:
        state = Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        for row in range(self.list.count()):
            self.list.item(row).setCheckState(state)

    def _count(self) -> None:
        n = len(self.checked_rows())
        self.send_button.setText(f"Queue {n} email" + ("" if n == 1 else "s"))
        self.send_button.setEnabled(n > 0)

    def checked_rows(self) -> list[int]:
        return [r for r in range(self.list.count())
                if self.list.item(r).checkState() == Qt.CheckState.Checked]

    def edit(self, row: int, *, subject: str | None = None, body: str | None = None) -> None:
        """Select draft ``row`` and change it as the agent would (used by tests)."""
        self.list.setCurrentRow(row)
        if subject is not None:
            self.subject.setText(subject)
        if body is not None:
            self.body.setPlainText(body)

    def drafts(self) -> list[dict[str, Any]]:
        """The checked drafts with the agent's edits."""
        self._save_current()
        return [self._drafts[r] for r in self.checked_rows()]
