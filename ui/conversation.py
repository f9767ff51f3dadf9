"""The conversation: one card per message, in order, each with its own MailView; a
long thread's middle folds behind "N earlier messages" (:func:`shown_messages`).

Mail is shown by :class:`ui.mailview.MailView` (sanitised, never touches the
network). Remote images are fetched only after a click on "Load remote content"
for that message, by :class:`RemoteImages` here; inline ``cid:`` images and
attachments come from the core through the worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QWheelEvent
from PySide6.QtNetwork import QNetworkAccessManager, QNetworkReply, QNetworkRequest
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ui import format as fmt
from ui import style
from ui.mailview import MailView
from ui.notes_thread import NoteCard
from ui.pool import WidgetPool
from ui.style import C
from ui.widgets import ElidedLabel, plain_label, plain_tooltip
from ui.worker import DeskService

AUTO_LABELS = {"auto-reply": "Auto-reply", "bounce": "Bounce", "list": "Mailing list",
               "forward": "Forwarded"}
COLLAPSE_AFTER = 4          # longer threads show older messages as one-line summaries
FOLD_OVER = 6               # longer threads show their middle as "N earlier messages"
FOLD_KEEP_LAST = 3          # the messages shown after the fold
MAX_REMOTE_IMAGES = 40
MAX_REMOTE_BYTES = 5 * 1024 * 1024


class FlowMailView(MailView):
    """A MailView as tall as its content, so cards stack in one scrolling column."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(lambda _s: self.fit())
        self.setFixedHeight(40)

    def fit(self) -> None:
        height = math.ceil(self.document().size().height()) + 2 * self.frameWidth()
        bar = self.horizontalScrollBar()
        if bar.isVisible():
            height += bar.height()
        if height != self.height():
            self.setFixedHeight(max(20, height))

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.fit()

    def wheelEvent(self, event: QWheelEvent) -> None:
        event.ignore()  # the conversation scrolls, not the message


class Avatar(QWidget):
    """A round badge with a person's initials, in a colour of their address."""

    def __init__(self, name: str | None = None, email: str | None = None,
                 outgoing: bool = False, size: int = 34,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedSize(size, size)
        self.set_person(name, email, outgoing)

    def set_person(self, name: str | None, email: str | None, outgoing: bool) -> None:
        """Show this person (the badge is reused from one message or customer to the next)."""
        palette = ("#5b8def", "#e07a5f", "#3d9970", "#9b5de5", "#f2a541", "#00a6a6", "#d1495b")
        self._text = fmt.initials(name, email)
        self._colour = C.accent if outgoing else palette[sum(map(ord, email or "?")) % 7]
        self.update()

    def paintEvent(self, _event: Any) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(self._colour))
        p.drawEllipse(self.rect())
        f = QFont(self.font())
        f.setPixelSize(int(self.height() * 0.38))
        f.setWeight(QFont.Weight.DemiBold)
        p.setFont(f)
        p.setPen(QColor("#ffffff"))
        p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._text)


def _attachment_button() -> QPushButton:
    b = QPushButton()
    b.setObjectName("attachment")
    b.setIcon(style.icon("attach", C.muted))
    b.setCursor(Qt.CursorShape.PointingHandCursor)
    return b


class RemoteBar(QFrame):
    """"N remote images blocked" and a button to load them (made for the cards that
    need one: most messages have no remote images)."""

    def __init__(self, load: Callable[[], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("remoteBar")
        rb = QHBoxLayout(self)
        rb.setContentsMargins(10, 4, 6, 4)
        icon = QLabel()
        icon.setPixmap(style.pixmap("image", C.muted, 16))
        rb.addWidget(icon)
        self.label = QLabel()
        self.label.setObjectName("muted")
        rb.addWidget(self.label, 1)
        self.button = QPushButton("Load remote content")
        self.button.setObjectName("linkButton")
        self.button.setFlat(True)
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.button.setToolTip("Fetch this message's pictures from the sender's servers "
                               "(the sender may learn that you read it)")
        self.button.clicked.connect(load)
        rb.addWidget(self.button)


class AttachmentsArea(QScrollArea):
    """A message's attachments, one button each (made for the cards that need it).

    Many attachments scroll sideways inside the card rather than widen it. The i-th
    button calls ``save(i)``; :meth:`show_files` refills the buttons (pooled)."""

    def __init__(self, save: Callable[[int], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._save = save
        self.setObjectName("attachmentsArea")
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(True)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.row = QWidget()
        al = QHBoxLayout(self.row)
        al.setContentsMargins(0, 2, 0, 0)
        al.setSpacing(6)
        al.addStretch(1)
        self._buttons: WidgetPool[QPushButton] = WidgetPool(al, self._make_button)
        self.setWidget(self.row)

    def _make_button(self) -> QPushButton:
        b = _attachment_button()
        i = len(self._buttons)  # this button always shows the i-th file
        b.clicked.connect(lambda _=False: self._save(i))
        return b

    def show_files(self, files: list[dict[str, Any]]) -> None:
        for b, att in zip(self._buttons.take(len(files)), files, strict=True):
            name_text = str(att.get("filename") or "attachment")
            shown = name_text if len(name_text) <= 40 else name_text[:24] + "…" + name_text[-12:]
            b.setText(f"{shown}  ·  {fmt.size(att.get('size'))}")
            b.setToolTip(plain_tooltip(
                f"Save “{name_text}” ({att.get('content_type') or 'file'}) as…"))
        self.horizontalScrollBar().setValue(0)
        self.setFixedHeight(self.row.sizeHint().height()
                            + self.horizontalScrollBar().sizeHint().height() + 2)


class MessageCard(QFrame):
    """One message: header, remote-content bar, body, attachments.

    A card is reused for one message after another (:meth:`set_message`): the
    conversation keeps its cards (see :mod:`ui.pool`), and each refill sets
    everything the card shows.
    """

    link_activated = Signal(QUrl)
    save_attachment = Signal(int, dict)   # message pk, attachment
    remote_requested = Signal(object)     # this card

    def __init__(self, msg: dict[str, Any] | None = None, expanded: bool = True,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.msg: dict[str, Any] = {}
        self.pk = 0
        self.inline_images: dict[str, bytes] = {}
        self.allow_remote = False
        self.view: FlowMailView | None = None
        self._rendered = False   # the view shows self.msg (not a message shown before)
        self._files: list[dict[str, Any]] = []
        self.setObjectName("messageCard")
        self._layout = layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(6)

        head = QHBoxLayout()
        head.setSpacing(10)
        self.avatar = Avatar()
        head.addWidget(self.avatar, 0, Qt.AlignmentFlag.AlignTop)
        who = QVBoxLayout()
        who.setSpacing(1)
        # Elided lines: a long name or address list never widens the card (and with it
        # the conversation column, pushing the customer panel off the window).
        self.name = ElidedLabel()
        self.name.setObjectName("senderName")
        self.address = ElidedLabel(mode=Qt.TextElideMode.ElideMiddle)
        self.address.setObjectName("muted")
        self.address.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        who.addWidget(self.name)
        who.addWidget(self.address)
        head.addLayout(who, 1)
        self.chip = plain_label()
        self.chip.setObjectName("chip")
        head.addWidget(self.chip, 0, Qt.AlignmentFlag.AlignTop)
        self.when = QLabel()
        self.when.setObjectName("muted")
        head.addWidget(self.when, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(head)

        self.summary = ElidedLabel()
        self.summary.setObjectName("muted")
        self.summary.setCursor(Qt.CursorShape.PointingHandCursor)
        self.summary.mousePressEvent = lambda _e: self.set_expanded(True)  # type: ignore[method-assign]
        layout.addWidget(self.summary)

        # Built when a message first needs them (most never do): a card costs widgets,
        # and each widget shown costs references to None for good (see ui/pool.py).
        self._remote_bar: RemoteBar | None = None
        self._attachments_area: AttachmentsArea | None = None

        self.body = QVBoxLayout()
        self.body.setContentsMargins(2, 2, 0, 0)
        layout.addLayout(self.body)

        self.expanded = False
        if msg is not None:
            self.set_message(msg, expanded)

    @property
    def remote_bar(self) -> RemoteBar | None:
        """The "N remote images blocked" bar, once a message of this card needed one."""
        return self._remote_bar

    @property
    def remote_label(self) -> QLabel | None:
        return self._remote_bar.label if self._remote_bar is not None else None

    @property
    def attachments_area(self) -> AttachmentsArea | None:
        """The attachment buttons, once a message of this card had attachments."""
        return self._attachments_area

    @property
    def attachments(self) -> QWidget | None:
        """The row of attachment buttons inside :attr:`attachments_area`."""
        return self._attachments_area.row if self._attachments_area is not None else None

    def _save(self, i: int) -> None:
        if i < len(self._files):
            self.save_attachment.emit(self.pk, self._files[i])

    def set_message(self, msg: dict[str, Any], expanded: bool) -> None:
        """Show ``msg`` (folded or not), forgetting the message shown before."""
        self.msg = msg
        self.pk = int(msg["id"])
        self.inline_images = {}
        self.allow_remote = False
        self._rendered = False
        outgoing = msg.get("direction") == "out"
        direction = "out" if outgoing else "in"
        if self.property("direction") != direction:
            self.setProperty("direction", direction)
            self.style().unpolish(self)
            self.style().polish(self)
        self.avatar.set_person(msg.get("from_name"), msg.get("from"), outgoing)
        self.name.setText(fmt.display_name(msg.get("from_name"), msg.get("from")))
        self.address.setText(self._address_line(msg, outgoing))
        auto = AUTO_LABELS.get(str(msg.get("auto") or "none"))
        self.chip.setText(auto or "")
        self.chip.setVisible(bool(auto))
        sent_at = msg.get("date") or msg.get("received_at")
        self.when.setText(fmt.ago(sent_at))
        self.when.setToolTip(f"Sent {fmt.exact(sent_at)}" if sent_at else "")
        self.summary.setText(" ".join(str(msg.get("text") or "").split())[:300])
        self.summary.setToolTip("Show this message")
        self._files = [a for a in msg.get("attachments") or [] if not a.get("inline")]
        if self._files and self._attachments_area is None:
            self._attachments_area = AttachmentsArea(self._save)
            self._attachments_area.hide()
            self._layout.addWidget(self._attachments_area)  # under the body
        if self._attachments_area is not None:
            self._attachments_area.show_files(self._files)
        if self.view is not None:
            self.view.remote_images.clear()
            if not expanded:
                self.forget_view()  # (an expanded card renders the new message now)
        self.set_expanded(expanded)

    def forget_view(self) -> None:
        """Empty the body view (kept for the next message): no text, selection or
        images of the last message stay in it, hidden or not."""
        if self.view is not None:
            self.view.remote_images.clear()
            self.view.show_message(None, "", {})
            self.view.horizontalScrollBar().setValue(0)
            self._rendered = False

    @staticmethod
    def _address_line(msg: dict[str, Any], outgoing: bool) -> str:
        to = ", ".join(msg.get("to") or [])
        sender = msg.get("from") or ""
        return f"{sender} → {to}" if outgoing and to else (f"<{sender}>" if sender else "")

    def set_expanded(self, expanded: bool) -> None:
        self.expanded = expanded
        self.summary.setVisible(not expanded)
        if expanded and self.view is None:
            self.view = FlowMailView(self)
            self.view.linkActivated.connect(self.link_activated)
            self.body.addWidget(self.view)
        if expanded and not self._rendered:
            self.render()
        if self.view is not None:
            self.view.setVisible(expanded)
        if self._attachments_area is not None:
            self._attachments_area.setVisible(expanded and bool(self._files))
        self._update_remote_bar()

    def render(self) -> None:
        if self.view is None:
            return
        html = self.msg.get("html")
        self.view.show_message(html, str(self.msg.get("text") or ""), self.inline_images,
                               allow_remote=self.allow_remote)
        self._rendered = True
        self._update_remote_bar()

    def _update_remote_bar(self) -> None:
        n = self.view.remote_blocked if self.view is not None and self._rendered else 0
        show = self.expanded and n > 0 and not self.allow_remote
        if show and self._remote_bar is None:
            self._remote_bar = RemoteBar(lambda: self.remote_requested.emit(self))
            self._remote_bar.hide()
            above_body = self._layout.indexOf(self.summary) + 1
            self._layout.insertWidget(above_body, self._remote_bar)
        if show and self._remote_bar is not None:
            self._remote_bar.label.setText(
                f"{n} remote image{'s' if n != 1 else ''} blocked to protect your privacy.")
        if self._remote_bar is not None:
            self._remote_bar.setVisible(show)

    @property
    def needs_inline_images(self) -> bool:
        return any(a.get("content_id") for a in self.msg.get("attachments") or [])

    def set_inline_images(self, images: dict[str, bytes]) -> None:
        self.inline_images = images
        if self.expanded or self._rendered:
            self.render()

    def selected_text(self) -> str:
        if self.view is None or not self._rendered:
            return ""
        return str(self.view.textCursor().selectedText()).replace("\u2029", "\n")


class RemoteImages(QObject):
    """Fetches a message's remote images once the person asked for them."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._net = QNetworkAccessManager(self)
        self._net.setRedirectPolicy(QNetworkRequest.RedirectPolicy.NoLessSafeRedirectPolicy)
        self._net.setTransferTimeout(15_000)

    def fetch(self, urls: list[str], done: Callable[[dict[str, bytes]], None]) -> None:
        wanted = [u for u in dict.fromkeys(urls) if QUrl(u).scheme() in ("http", "https")]
        wanted = wanted[:MAX_REMOTE_IMAGES]
        results: dict[str, bytes] = {}
        left = {"n": len(wanted)}
        if not wanted:
            done(results)
            return

        def finished(url: str, reply: QNetworkReply) -> None:
            if reply.error() == QNetworkReply.NetworkError.NoError:
                data = bytes(reply.read(MAX_REMOTE_BYTES).data())
                if data:
                    results[url] = data
            reply.deleteLater()
            left["n"] -= 1
            if left["n"] == 0:
                done(results)

        for url in wanted:
            request = QNetworkRequest(QUrl(url))
            request.setAttribute(QNetworkRequest.Attribute.CookieSaveControlAttribute, 0)
            reply = self._net.get(request)
            reply.finished.connect(lambda u=url, r=reply: finished(u, r))


class OutboxRow(QFrame):
    """A reply of this ticket not sent yet: what happened, and Send again / Discard.

    Reused from one entry to the next (:meth:`set_entry` sets all it shows)."""

    action = Signal(str, int)  # "retry" | "discard", outbox item id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("outboxCard")
        self.item_id = 0
        row = QHBoxLayout(self)
        row.setContentsMargins(14, 8, 14, 8)
        self.icon = QLabel()
        row.addWidget(self.icon)
        self.label = plain_label()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row.addWidget(self.label, 1)
        self.retry = QPushButton("Send again")
        self.retry.setToolTip("Put this reply back in the outbox and try to send it now")
        self.retry.clicked.connect(lambda: self.action.emit("retry", self.item_id))
        self.discard = QPushButton("Discard")
        self.discard.setToolTip("Remove this reply from the outbox without sending it")
        self.discard.clicked.connect(lambda: self.action.emit("discard", self.item_id))
        row.addWidget(self.retry)
        row.addWidget(self.discard)

    def set_entry(self, entry: dict[str, Any]) -> None:
        state = entry.get("state")
        self.item_id = int(entry.get("id") or 0)
        if self.property("state") != state:
            self.setProperty("state", state)
            self.style().unpolish(self)
            self.style().polish(self)
        failed = state == "failed"
        self.icon.setPixmap(style.pixmap("warning" if failed else "send",
                                         C.error if failed else C.warn, 16))
        self.label.setText(outbox_text(entry))
        actions = state in ("failed", "held", "uncertain")
        self.retry.setVisible(actions)
        self.retry.setEnabled(True)
        self.discard.setVisible(actions)
        self.discard.setEnabled(True)


def shown_messages(messages: list[dict[str, Any]]) -> list[int]:
    """Which of a thread's messages (indices, in order) show before it is unfolded.

    A thread of up to FOLD_OVER messages shows them all. A longer one shows its first
    message, the customer's latest (the one a reply answers and quotes) and the last
    FOLD_KEEP_LAST; the others fold into "N earlier messages" controls, so a thread
    answered all day costs a few cards, not one per message. A fold of a single
    message shows that message instead (the control would take its place for nothing).
    """
    n = len(messages)
    if n <= FOLD_OVER:
        return list(range(n))
    keep = {0, *range(n - FOLD_KEEP_LAST, n)}
    latest_in = next((i for i in range(n - 1, -1, -1)
                      if messages[i].get("direction") == "in"), None)
    if latest_in is not None:
        keep.add(latest_in)
    shown = sorted(keep)
    keep.update(a + 1 for a, b in pairwise(shown) if b - a == 2)
    return sorted(keep)


def _fold_button() -> QPushButton:
    b = QPushButton()
    b.setObjectName("foldButton")
    b.setFlat(True)
    b.setCursor(Qt.CursorShape.PointingHandCursor)
    return b


class ConversationView(QScrollArea):
    """All messages of one ticket, oldest first, plus replies still in the outbox.

    The message cards and outbox rows are kept and refilled from one ticket to the
    next (:mod:`ui.pool`); :attr:`cards` are the ones showing the current ticket. A
    long thread shows its middle folded (:func:`shown_messages`) behind :attr:`folds`,
    "N earlier messages" buttons; one of them shows every message of the ticket, and
    it stays so while the ticket stays open (refreshes too).
    """

    link_activated = Signal(QUrl)
    outbox_changed = Signal()

    def __init__(self, service: DeskService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.setObjectName("conversation")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._inner = QWidget()
        self._inner.setObjectName("conversationInner")
        self._layout = QVBoxLayout(self._inner)
        self._layout.setContentsMargins(14, 12, 14, 16)
        self._layout.setSpacing(10)
        self._layout.addStretch(1)
        self.setWidget(self._inner)
        self._cards: WidgetPool[MessageCard] = WidgetPool(
            self._layout, self._make_card, forget=MessageCard.forget_view)
        # Outbox rows come after the cards, before the stretch.
        self._outbox: WidgetPool[OutboxRow] = WidgetPool(
            self._layout, self._make_outbox_row,
            start=lambda: self._layout.count() - 1 - len(self._outbox), keep=10)
        self._folds: WidgetPool[QPushButton] = WidgetPool(
            self._layout, self._make_fold, keep=2)
        self.cards: list[MessageCard] = []
        self.folds: list[QPushButton] = []
        self._unfolded = False          # the person asked for every message of this ticket
        self._data: dict[str, Any] | None = None        # what show_ticket shows
        self._notes_data: dict[str, Any] | None = None  # what show_notes placed
        # Each message's place: its card, or the fold standing for it (by message pk).
        self._place: dict[int, QWidget] = {}
        # Internal notes by id, reused while the same ticket is shown (add-only); the
        # cards of another ticket's notes are kept hidden and refilled (see ui/pool.py).
        self.notes: dict[str, NoteCard] = {}
        self._note_spares: list[NoteCard] = []
        self._notes_of: str | None = None
        self.ticket_id: str | None = None
        self._remote = RemoteImages(self)
        self._generation = 0
        # One timer brings the newest message into view once the cards are laid out.
        self._scroll_timer = QTimer(self)
        self._scroll_timer.setSingleShot(True)
        self._scroll_timer.setInterval(30)
        self._scroll_timer.timeout.connect(self._show_target)
        self._scroll_target: MessageCard | None = None

    def _make_card(self) -> MessageCard:
        card = MessageCard()
        card.link_activated.connect(self.link_activated)
        card.save_attachment.connect(self._save_attachment)
        card.remote_requested.connect(self._load_remote)
        return card

    def _make_fold(self) -> QPushButton:
        b = _fold_button()
        b.clicked.connect(self.unfold)
        return b

    def _make_outbox_row(self) -> OutboxRow:
        row = OutboxRow()
        row.action.connect(self._outbox_action)
        return row

    def clear(self) -> None:
        self._generation += 1
        self._scroll_timer.stop()
        self._scroll_target = None
        self._cards.take(0)
        self._folds.take(0)
        self._outbox.take(0)
        self.cards = []
        self.folds = []
        self._place = {}
        self._unfolded = False
        self._data = self._notes_data = None

    def show_ticket(self, data: dict[str, Any], keep_scroll: bool = False) -> None:
        """Show ``desk.ticket(id)``'s messages; re-showing the same ticket keeps the place."""
        same = data.get("id") == self.ticket_id
        scroll = self.verticalScrollBar().value()
        expanded = {c.pk: c.expanded for c in self.cards} if same else {}
        remote = {c.pk for c in self.cards if c.allow_remote} if same else set()
        images = {c.pk: c.inline_images for c in self.cards} if same else {}
        fetched = {c.pk: dict(c.view.remote_images) for c in self.cards
                   if same and c.allow_remote and c.view is not None}
        self._generation += 1
        self._scroll_timer.stop()
        self.ticket_id = data.get("id")
        self._data = data
        if not same:
            self._unfolded = False
        messages = data.get("messages") or []
        n = len(messages)
        shown = list(range(n)) if self._unfolded else shown_messages(messages)
        self.cards = self._cards.take(len(shown))
        gaps = [(a + 1, b) for a, b in pairwise(shown) if b - a > 1]
        self.folds = self._folds.take(len(gaps))
        places: list[QWidget | None] = [None] * n
        for button, (a, b) in zip(self.folds, gaps, strict=True):
            text = f"{b - a} earlier message{'s' if b - a != 1 else ''}"
            button.setText(text)
            button.setAccessibleName(text)
            button.setToolTip(f"Show all {n} messages of this conversation")
            places[a:b] = [button] * (b - a)
        for i, card in zip(shown, self.cards, strict=True):
            places[i] = card
            msg = messages[i]
            collapse = n > COLLAPSE_AFTER and i < n - 2
            pk = int(msg["id"])
            card.set_message(msg, expanded.get(pk, not collapse))
            card.allow_remote = pk in remote
            if card.allow_remote and card.view is not None:
                card.view.remote_images.update(fetched.get(pk, {}))
            if pk in images:
                card.set_inline_images(images[pk])
            elif card.allow_remote and card.expanded:
                card.render()
            if card.needs_inline_images and pk not in images:
                self._fetch_inline(card)
        self._place = {int(m["id"]): w for m, w in zip(messages, places, strict=True)
                       if w is not None}
        self._arrange(_unique([w for w in places if w is not None]))
        if same and keep_scroll:
            self.verticalScrollBar().setValue(scroll)
        elif self.cards:
            # The newest message matters most; its place is known once the cards have
            # been laid out at their final heights.
            self._scroll_to(self.cards[-1])

    def show_notes(self, data: dict[str, Any]) -> None:
        """Place the ticket's internal notes among its messages, in time order
        (``data['timeline']``); cards for notes already shown are reused."""
        tid = data.get("id")
        if tid != self._notes_of:
            for card in self.notes.values():
                card.hide()
                self._note_spares.append(card)
            self.notes = {}
            self._notes_of = tid
        self._notes_data = data
        notes = {str(n["id"]): n for n in data.get("notes") or []}
        order: list[QWidget] = []
        for item in data.get("timeline") or []:
            if item.get("kind") == "note":
                note = notes.get(str(item.get("id")))
                if note is None:
                    continue
                card = self.notes.get(note["id"])
                if card is None:
                    if self._note_spares:
                        card = self._note_spares.pop()
                        card.update_note(note)
                    else:
                        card = NoteCard(note)
                    self.notes[note["id"]] = card
                else:
                    card.update_note(note)
                order.append(card)
            else:
                place = self._place.get(int(item.get("id") or 0))
                if place is not None:
                    order.append(place)  # (a fold, once for each message it holds)
        order += [*self.cards, *self.folds]  # none expected here (dropped as repeats)
        self._arrange([*_unique(order), *self._outbox.shown])

    def _arrange(self, widgets: list[QWidget]) -> None:
        """Put ``widgets`` first in the column, in this order (the pools' other widgets,
        hidden, and the stretch stay after them)."""
        for w in widgets:
            self._layout.removeWidget(w)
        for i, w in enumerate(widgets):
            self._layout.insertWidget(i, w)
            w.show()

    def unfold(self) -> None:
        """Show every message of this ticket, until another ticket is shown."""
        if self._unfolded or self._data is None:
            return
        focused = any(b.hasFocus() for b in self.folds)
        self._unfolded = True
        self.show_ticket(self._data, keep_scroll=True)
        if self._notes_data is not None and self._notes_data.get("id") == self.ticket_id:
            self.show_notes(self._notes_data)
        if focused:  # (the button is gone: the conversation keeps the keyboard)
            self.setFocus(Qt.FocusReason.OtherFocusReason)

    def note_texts(self) -> list[str]:
        """The notes' texts as shown, in order (tests, accessibility)."""
        cards = sorted(self.notes.values(), key=lambda c: self._layout.indexOf(c))
        return [c.text.text() for c in cards]

    def _scroll_to(self, card: MessageCard) -> None:
        self._scroll_target = card
        self._scroll_timer.start()

    def _show_target(self) -> None:
        card = self._scroll_target
        self._scroll_target = None
        if card is not None and card in self.cards:
            self.verticalScrollBar().setValue(max(0, card.y() - 12))

    def show_latest_incoming(self) -> None:
        """Scroll so that the customer's latest message starts at the top."""
        card = next((c for c in reversed(self.cards) if c.msg.get("direction") == "in"),
                    self.cards[-1] if self.cards else None)
        if card is None:
            return
        if not card.expanded:
            card.set_expanded(True)
        self._scroll_to(card)

    def show_outbox(self, entries: list[dict[str, Any]]) -> None:
        """Replies for this ticket that are not sent yet (queued, failed, held)."""
        waiting = [e for e in entries if e.get("state") != "sent"]
        for row, entry in zip(self._outbox.take(len(waiting)), waiting, strict=True):
            row.set_entry(entry)

    def _outbox_action(self, action: str, item: int) -> None:
        def work(desk: Any) -> None:
            if action == "retry":
                desk.retry_outbox(item)
                desk.flush_outbox(force=True)
            else:
                desk.discard_outbox(item)

        self.service.run(work, on_done=lambda _r: self.outbox_changed.emit(),
                         on_error=lambda m: (self.service.error.emit(m),
                                             self.outbox_changed.emit()))

    def outbox_rows(self) -> list[OutboxRow]:
        return self._outbox.shown

    def outbox_texts(self) -> list[str]:
        return [row.label.text() for row in self._outbox.shown]

    # --- helpers ------------------------------------------------------------------

    def quote_text(self) -> str:
        """Selected text in any message, else the latest customer message."""
        for card in self.cards:
            text = card.selected_text()
            if text.strip():
                return text.strip()
        for msg in reversed((self._data or {}).get("messages") or []):
            if msg.get("direction") == "in":  # (shown, folded or not: see shown_messages)
                return str(msg.get("text") or "").strip()
        return ""

    def _fetch_inline(self, card: MessageCard) -> None:
        gen = self._generation
        pk = card.pk

        def done(images: dict[str, bytes]) -> None:
            # (the card may show another message by now: it is reused)
            if gen == self._generation and shiboken6.isValid(card) and card.pk == pk \
                    and images:
                card.set_inline_images(images)

        self.service.run(lambda d: d.inline_images(pk), on_done=done, on_error=lambda _m: None)

    def _load_remote(self, card: MessageCard) -> None:
        card.allow_remote = True
        card.render()
        view = card.view
        if view is None or view.sanitized is None:
            return
        urls = list(view.sanitized.remote_image_urls)
        gen = self._generation
        pk = card.pk

        def done(images: dict[str, bytes]) -> None:
            if gen == self._generation and shiboken6.isValid(card) and card.pk == pk \
                    and card.view is not None and images:
                card.view.remote_images.update(images)
                card.render()

        self._remote.fetch(urls, done)

    def _save_attachment(self, pk: int, att: dict[str, Any]) -> None:
        name = str(att.get("filename") or "attachment")
        start = str(Path.home() / "Downloads" / name) if (Path.home() / "Downloads").is_dir() \
            else str(Path.home() / name)
        path, _ = QFileDialog.getSaveFileName(self, "Save attachment", start)
        if not path:
            return
        index = int(att.get("index", 0))
        window = self.window()

        def fetch_and_write(desk: Any) -> str:
            _fn, _ctype, data = desk.attachment(pk, index)
            Path(path).write_bytes(data)
            return path

        def saved(where: str) -> None:
            notify = getattr(window, "notify", None)
            if notify:
                notify(f"Saved {Path(where).name} to {Path(where).parent}.", "ok")

        self.service.run(fetch_and_write, on_done=saved)


def _unique(widgets: list[QWidget]) -> list[QWidget]:
    """``widgets`` in order, each once (where it first comes)."""
    return list({id(w): w for w in widgets}.values())


def outbox_text(entry: dict[str, Any]) -> str:
    state = entry.get("state")
    if state == "queued":
        return ("Reply queued: it will be sent as soon as the mail server can be reached "
                f"(tried {entry.get('attempts') or 0}×).")
    if state == "failed":
        why = entry.get("last_error") or "the server gave no reason"
        return f"Reply not sent: {why}"
    if state == "held":
        why = entry.get("last_error") or "a teammate took the ticket before it was sent."
        return f"Reply held, not sent: {why}"
    if state in ("sending", "accepted"):
        return "Reply being sent…"
    if state == "uncertain":
        return f"Reply may not have been sent: {entry.get('last_error') or ''}".strip()
    return f"Reply {state}."
