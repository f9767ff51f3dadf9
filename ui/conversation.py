"""The conversation: one card per message, in order, each with its own MailView.

Mail is shown by :class:`ui.mailview.MailView` (sanitised, never touches the
network). Remote images are fetched only after a click on "Load remote content"
for that message, by :class:`RemoteImages` here; inline ``cid:`` images and
attachments come from the core through the worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
from ui.style import C
from ui.widgets import ElidedLabel, plain_label, plain_tooltip
from ui.worker import DeskService

AUTO_LABELS = {"auto-reply": "Auto-reply", "bounce": "Bounce", "list": "Mailing list",
               "forward": "Forwarded"}
COLLAPSE_AFTER = 4          # longer threads show older messages folded
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
    def __init__(self, name: str | None, email: str | None, outgoing: bool,
                 size: int = 34, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedSize(size, size)
        self._text = fmt.initials(name, email)
        palette = ("#5b8def", "#e07a5f", "#3d9970", "#9b5de5", "#f2a541", "#00a6a6", "#d1495b")
        self._colour = C.accent if outgoing else palette[sum(map(ord, email or "?")) % 7]

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


class MessageCard(QFrame):
    """One message: header, remote-content bar, body, attachments."""

    link_activated = Signal(QUrl)
    save_attachment = Signal(int, dict)   # message pk, attachment
    remote_requested = Signal(object)     # this card

    def __init__(self, msg: dict[str, Any], expanded: bool = True,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.msg = msg
        self.pk = int(msg["id"])
        self.inline_images: dict[str, bytes] = {}
        self.allow_remote = False
        self.view: FlowMailView | None = None
        outgoing = msg.get("direction") == "out"
        self.setObjectName("messageCard")
        self.setProperty("direction", "out" if outgoing else "in")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(6)

        head = QHBoxLayout()
        head.setSpacing(10)
        head.addWidget(Avatar(msg.get("from_name"), msg.get("from"), outgoing),
                       0, Qt.AlignmentFlag.AlignTop)
        who = QVBoxLayout()
        who.setSpacing(1)
        # Elided lines: a long name or address list never widens the card (and with it
        # the conversation column, pushing the customer panel off the window).
        name = ElidedLabel()
        name.setText(fmt.display_name(msg.get("from_name"), msg.get("from")))
        name.setObjectName("senderName")
        addr = ElidedLabel(mode=Qt.TextElideMode.ElideMiddle)
        addr.setText(self._address_line(msg, outgoing))
        addr.setObjectName("muted")
        addr.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        who.addWidget(name)
        who.addWidget(addr)
        head.addLayout(who, 1)
        auto = AUTO_LABELS.get(str(msg.get("auto") or "none"))
        if auto:
            chip = QLabel(auto)
            chip.setObjectName("chip")
            head.addWidget(chip, 0, Qt.AlignmentFlag.AlignTop)
        sent_at = msg.get("date") or msg.get("received_at")
        when = QLabel(fmt.ago(sent_at))
        when.setObjectName("muted")
        when.setToolTip(f"Sent {fmt.exact(sent_at)}" if sent_at else "")
        head.addWidget(when, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(head)

        self.summary = ElidedLabel()
        self.summary.setText(" ".join(str(msg.get("text") or "").split())[:300])
        self.summary.setObjectName("muted")
        self.summary.setCursor(Qt.CursorShape.PointingHandCursor)
        self.summary.setToolTip("Show this message")
        self.summary.mousePressEvent = lambda _e: self.set_expanded(True)  # type: ignore[method-assign]
        layout.addWidget(self.summary)

        self.remote_bar = QFrame()
        self.remote_bar.setObjectName("remoteBar")
        rb = QHBoxLayout(self.remote_bar)
        rb.setContentsMargins(10, 4, 6, 4)
        icon = QLabel()
        icon.setPixmap(style.pixmap("image", C.muted, 16))
        rb.addWidget(icon)
        self.remote_label = QLabel()
        self.remote_label.setObjectName("muted")
        rb.addWidget(self.remote_label, 1)
        self.remote_button = QPushButton("Load remote content")
        self.remote_button.setObjectName("linkButton")
        self.remote_button.setFlat(True)
        self.remote_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.remote_button.setToolTip("Fetch this message's pictures from the sender's servers "
                                      "(the sender may learn that you read it)")
        self.remote_button.clicked.connect(lambda: self.remote_requested.emit(self))
        rb.addWidget(self.remote_button)
        self.remote_bar.hide()
        layout.addWidget(self.remote_bar)

        self.body = QVBoxLayout()
        self.body.setContentsMargins(2, 2, 0, 0)
        layout.addLayout(self.body)

        files = [a for a in msg.get("attachments") or [] if not a.get("inline")]
        self.attachments = QWidget()
        al = QHBoxLayout(self.attachments)
        al.setContentsMargins(0, 2, 0, 0)
        al.setSpacing(6)
        for att in files:
            name_text = str(att.get("filename") or "attachment")
            shown = name_text if len(name_text) <= 40 else name_text[:24] + "…" + name_text[-12:]
            b = QPushButton(f"{shown}  ·  {fmt.size(att.get('size'))}")
            b.setObjectName("attachment")
            b.setIcon(style.icon("attach", C.muted))
            b.setToolTip(plain_tooltip(
                f"Save “{name_text}” ({att.get('content_type') or 'file'}) as…"))
            b.setCursor(Qt.CursorShape.PointingHandCursor)
            b.clicked.connect(lambda _=False, a=att: self.save_attachment.emit(self.pk, a))
            al.addWidget(b)
        al.addStretch(1)
        # Many attachments scroll sideways inside the card rather than widen it.
        self.attachments_area = QScrollArea()
        self.attachments_area.setObjectName("attachmentsArea")
        self.attachments_area.setFrameShape(QFrame.Shape.NoFrame)
        self.attachments_area.setWidgetResizable(True)
        self.attachments_area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.attachments_area.setHorizontalScrollBarPolicy(
            Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.attachments_area.setWidget(self.attachments)
        self.attachments_area.setFixedHeight(
            self.attachments.sizeHint().height()
            + self.attachments_area.horizontalScrollBar().sizeHint().height() + 2)
        layout.addWidget(self.attachments_area)
        self.expanded = False
        self.set_expanded(expanded)

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
            self.render()
        if self.view is not None:
            self.view.setVisible(expanded)
        self.attachments_area.setVisible(expanded and self.attachments.layout().count() > 1)
        self._update_remote_bar()

    def render(self) -> None:
        if self.view is None:
            return
        html = self.msg.get("html")
        self.view.show_message(html, str(self.msg.get("text") or ""), self.inline_images,
                               allow_remote=self.allow_remote)
        self._update_remote_bar()

    def _update_remote_bar(self) -> None:
        n = self.view.remote_blocked if self.view is not None else 0
        show = self.expanded and n > 0 and not self.allow_remote
        if show:
            self.remote_label.setText(
                f"{n} remote image{'s' if n != 1 else ''} blocked to protect your privacy.")
        self.remote_bar.setVisible(show)

    @property
    def needs_inline_images(self) -> bool:
        return any(a.get("content_id") for a in self.msg.get("attachments") or [])

    def set_inline_images(self, images: dict[str, bytes]) -> None:
        self.inline_images = images
        self.render()

    def selected_text(self) -> str:
        if self.view is None:
            return ""
        return self.view.textCursor().selectedText().replace("\u2029", "\n")


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


class ConversationView(QScrollArea):
    """All messages of one ticket, oldest first, plus replies still in the outbox."""

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
        self.cards: list[MessageCard] = []
        self._outbox: list[QWidget] = []
        # Internal notes by id, reused while the same ticket is shown (add-only).
        self.notes: dict[str, NoteCard] = {}
        self._notes_of: str | None = None
        self.ticket_id: str | None = None
        self._remote = RemoteImages(self)
        self._generation = 0

    def clear(self) -> None:
        self._generation += 1
        for w in [*self.cards, *self._outbox]:
            w.hide()
            w.deleteLater()
        self.cards = []
        self._outbox = []

    def show_ticket(self, data: dict[str, Any], keep_scroll: bool = False) -> None:
        """Show ``desk.ticket(id)``'s messages; re-showing the same ticket keeps the place."""
        same = data.get("id") == self.ticket_id
        scroll = self.verticalScrollBar().value()
        expanded = {c.pk: c.expanded for c in self.cards} if same else {}
        remote = {c.pk for c in self.cards if c.allow_remote} if same else set()
        images = {c.pk: c.inline_images for c in self.cards} if same else {}
        self.clear()
        self.ticket_id = data.get("id")
        messages = data.get("messages") or []
        for i, msg in enumerate(messages):
            fold = len(messages) > COLLAPSE_AFTER and i < len(messages) - 2
            card = MessageCard(msg, expanded=expanded.get(int(msg["id"]), not fold))
            card.allow_remote = card.pk in remote
            if card.pk in images:
                card.inline_images = images[card.pk]
                card.render()
            card.link_activated.connect(self.link_activated)
            card.save_attachment.connect(self._save_attachment)
            card.remote_requested.connect(self._load_remote)
            self._layout.insertWidget(self._layout.count() - 1, card)
            self.cards.append(card)
            if card.needs_inline_images and card.pk not in images:
                self._fetch_inline(card)
        if same and keep_scroll:
            self.verticalScrollBar().setValue(scroll)
        elif self.cards:
            # The newest message matters most; its place is known once the cards have
            # been laid out at their final heights.
            gen = self._generation
            last = self.cards[-1]
            QTimer.singleShot(30, self, lambda: self._show_last(gen, last))

    def show_notes(self, data: dict[str, Any]) -> None:
        """Place the ticket's internal notes among its messages, in time order
        (``data['timeline']``); cards for notes already shown are reused."""
        tid = data.get("id")
        if tid != self._notes_of:
            for card in self.notes.values():
                card.hide()
                card.deleteLater()
            self.notes = {}
            self._notes_of = tid
        by_pk = {c.pk: c for c in self.cards}
        notes = {str(n["id"]): n for n in data.get("notes") or []}
        order: list[QWidget] = []
        for item in data.get("timeline") or []:
            if item.get("kind") == "note":
                note = notes.get(str(item.get("id")))
                if note is None:
                    continue
                card = self.notes.get(note["id"])
                if card is None:
                    card = NoteCard(note)
                    self.notes[note["id"]] = card
                else:
                    card.update_note(note)
                order.append(card)
            else:
                message = by_pk.get(int(item.get("id") or 0))
                if message is not None:
                    order.append(message)
        placed = set(map(id, order))
        order += [c for c in self.cards if id(c) not in placed]  # none expected
        order += self._outbox
        for w in order:
            self._layout.removeWidget(w)
        for i, w in enumerate(order):
            self._layout.insertWidget(i, w)
            w.show()

    def note_texts(self) -> list[str]:
        """The notes' texts as shown, in order (tests, accessibility)."""
        cards = sorted(self.notes.values(), key=lambda c: self._layout.indexOf(c))
        return [c.text.text() for c in cards]

    def _show_last(self, gen: int, last: MessageCard) -> None:
        if gen == self._generation and shiboken6.isValid(last):
            self.verticalScrollBar().setValue(max(0, last.y() - 12))

    def show_latest_incoming(self) -> None:
        """Scroll so that the customer's latest message starts at the top."""
        card = next((c for c in reversed(self.cards) if c.msg.get("direction") == "in"),
                    self.cards[-1] if self.cards else None)
        if card is None:
            return
        if not card.expanded:
            card.set_expanded(True)
        gen = self._generation
        QTimer.singleShot(30, self, lambda: self._show_last(gen, card))

    def show_outbox(self, entries: list[dict[str, Any]]) -> None:
        """Replies for this ticket that are not sent yet (queued, failed, held)."""
        for w in self._outbox:
            w.hide()
            w.deleteLater()
        self._outbox = []
        for e in entries:
            if e.get("state") == "sent":
                continue
            frame = QFrame()
            frame.setObjectName("outboxCard")
            frame.setProperty("state", e.get("state"))
            row = QHBoxLayout(frame)
            row.setContentsMargins(14, 8, 14, 8)
            icon = QLabel()
            failed = e.get("state") == "failed"
            icon.setPixmap(style.pixmap("warning" if failed else "send",
                                        C.error if failed else C.warn, 16))
            row.addWidget(icon)
            text = outbox_text(e)
            label = plain_label(text)
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            row.addWidget(label, 1)
            if e.get("state") in ("failed", "held", "uncertain"):
                item = int(e["id"])
                retry = QPushButton("Send again")
                retry.setToolTip("Put this reply back in the outbox and try to send it now")
                retry.clicked.connect(lambda _=False, i=item: self._outbox_action("retry", i))
                discard = QPushButton("Discard")
                discard.setToolTip("Remove this reply from the outbox without sending it")
                discard.clicked.connect(lambda _=False, i=item: self._outbox_action("discard", i))
                row.addWidget(retry)
                row.addWidget(discard)
            self._layout.insertWidget(self._layout.count() - 1, frame)
            self._outbox.append(frame)

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

    def outbox_texts(self) -> list[str]:
        return [_label_text(w) for w in self._outbox]

    # --- helpers ------------------------------------------------------------------

    def quote_text(self) -> str:
        """Selected text in any message, else the latest customer message."""
        for card in self.cards:
            text = card.selected_text()
            if text.strip():
                return text.strip()
        for card in reversed(self.cards):
            if card.msg.get("direction") == "in":
                return str(card.msg.get("text") or "").strip()
        return ""

    def _fetch_inline(self, card: MessageCard) -> None:
        gen = self._generation
        pk = card.pk

        def done(images: dict[str, bytes]) -> None:
            if gen == self._generation and shiboken6.isValid(card) and images:
                card.set_inline_images(images)

        self.service.run(lambda d: d.inline_images(pk), on_done=done, on_error=lambda _m: None)

    def _load_remote(self, card: MessageCard) -> None:
        card.allow_remote = True
        card.render()
        view = card.view
        if view is None or view.sanitized is None:
            return
        urls = list(view.sanitized.remote_image_urls)

        def done(images: dict[str, bytes]) -> None:
            if shiboken6.isValid(card) and card.view is not None and images:
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


def _label_text(w: QWidget) -> str:
    labels = [lbl.text() for lbl in w.findChildren(QLabel) if lbl.text()]
    return labels[0] if labels else ""
