"""The composer's parts: the rich editor, formatting buttons, To/Cc/Bcc, attachments, the
quoted message, the signature and the "Sending in 8 s... Undo" bar.

Each part is a plain widget that knows nothing of the desk: the composer
(ui/composer.py) reads their values into a ``Draft`` and sends it through the worker.
Text from mail (the quoted message, file names) is shown as plain text only.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMimeData, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QDragEnterEvent,
    QDropEvent,
    QFont,
    QImage,
    QTextCharFormat,
    QTextCursor,
    QTextListFormat,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from helpdesk.desk import FileAttachment
from ui import format as fmt
from ui import style
from ui.pool import WidgetPool
from ui.style import C


def _plain(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def split_addresses(text: str) -> list[str]:
    """What a person typed in an address field, one entry per address (checked by the core)."""
    return [part.strip() for part in re.split(r"[,;\n]", text) if part.strip()]


# --- the editor ---------------------------------------------------------------------------

class RichEditor(QTextEdit):
    """A rich-text editor whose pasted or dropped images and files become attachments."""

    files_dropped = Signal(list)  # local paths
    image_pasted = Signal(QImage)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptRichText(True)
        self.setTabChangesFocus(True)
        self.setAcceptDrops(True)

    @staticmethod
    def _local_files(source: QMimeData) -> list[str]:
        return [u.toLocalFile() for u in source.urls() if u.isLocalFile() and u.toLocalFile()]

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return bool(source.hasImage() or self._local_files(source)
                    or super().canInsertFromMimeData(source))

    def insertFromMimeData(self, source: QMimeData) -> None:
        files = self._local_files(source)
        if files:
            self.files_dropped.emit(files)
            return
        if source.hasImage():
            image = source.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.image_pasted.emit(image)
                return
        if source.hasHtml() or source.hasText():
            # Pasted mail or web pages keep simple formatting; the core sanitises what
            # is sent, and no remote image is ever loaded here.
            super().insertFromMimeData(source)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._local_files(event.mimeData()):
            event.acceptProposedAction()
            return
        super().dragEnterEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        files = self._local_files(event.mimeData())
        if files:
            event.acceptProposedAction()
            self.files_dropped.emit(files)
            return
        super().dropEvent(event)

    def loadResource(self, kind: int, name: QUrl) -> object:
        return None  # pasted HTML never fetches anything

    def has_formatting(self) -> bool:
        """Whether the text uses bold, italics, links or lists (else it goes as plain text)."""
        block = self.document().begin()
        while block.isValid():
            if block.textList() is not None:
                return True
            it = block.begin()
            while not it.atEnd():
                f = it.fragment().charFormat()
                if f.fontWeight() >= QFont.Weight.DemiBold or f.fontItalic() or f.isAnchor():
                    return True
                it += 1
            block = block.next()
        return False


class FormatBar(QWidget):
    """Bold, italic, link and the two lists, for a :class:`RichEditor`."""

    def __init__(self, editor: QTextEdit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = editor
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.bold = self._button("B", "Bold (Ctrl+B)", self.toggle_bold, "Ctrl+B")
        f = self.bold.font()
        f.setBold(True)
        self.bold.setFont(f)
        self.italic = self._button("I", "Italic (Ctrl+I)", self.toggle_italic, "Ctrl+I")
        f = self.italic.font()
        f.setItalic(True)
        self.italic.setFont(f)
        self.link = self._button("Link", "Make the selection a link (Ctrl+K)",
                                 self.ask_link, "Ctrl+K")
        self.bullets = self._button("• List", "Bulleted list", lambda: self.make_list(False))
        self.numbers = self._button("1. List", "Numbered list", lambda: self.make_list(True))
        for b in (self.bold, self.italic, self.link, self.bullets, self.numbers):
            lay.addWidget(b)
        lay.addStretch(1)

    def _button(self, text: str, tip: str, slot: object, shortcut: str | None = None
                ) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        b.clicked.connect(slot)
        if shortcut:
            b.setShortcut(shortcut)
        return b

    def _merge(self, fmt_: QTextCharFormat) -> None:
        cursor = self.editor.textCursor()
        if not cursor.hasSelection():
            cursor.select(QTextCursor.SelectionType.WordUnderCursor)
        cursor.mergeCharFormat(fmt_)
        self.editor.mergeCurrentCharFormat(fmt_)
        self.editor.setFocus()

    def toggle_bold(self) -> None:
        f = QTextCharFormat()
        bold = self.editor.currentCharFormat().fontWeight() >= QFont.Weight.DemiBold
        f.setFontWeight(QFont.Weight.Normal if bold else QFont.Weight.Bold)
        self._merge(f)

    def toggle_italic(self) -> None:
        f = QTextCharFormat()
        f.setFontItalic(not self.editor.currentCharFormat().fontItalic())
        self._merge(f)

    def ask_link(self) -> None:
        url, ok = QInputDialog.getText(self, "Link", "Address (https://… or mailto:…):")
        if ok:
            self.set_link(url)

    def set_link(self, url: str) -> bool:
        """Make the selection (or the word under the cursor) a link to ``url``."""
        url = url.strip()
        if not re.match(r"(?i)^(https?://|mailto:)\S+$", url):
            return False
        cursor = self.editor.textCursor()
        if not cursor.hasSelection():
            cursor.select(QTextCursor.SelectionType.WordUnderCursor)
        if not cursor.hasSelection():
            cursor.insertText(url)
            cursor.movePosition(QTextCursor.MoveOperation.Left,
                                QTextCursor.MoveMode.KeepAnchor, len(url))
        f = QTextCharFormat()
        f.setAnchor(True)
        f.setAnchorHref(url)
        f.setFontUnderline(True)
        f.setForeground(self.palette().link())
        cursor.mergeCharFormat(f)
        self.editor.setFocus()
        return True

    def make_list(self, numbered: bool) -> None:
        cursor = self.editor.textCursor()
        style_ = QTextListFormat.Style.ListDecimal if numbered else \
            QTextListFormat.Style.ListDisc
        current = cursor.currentList()
        if current is not None and current.format().style() == style_:
            for i in reversed(range(current.count())):  # the same button again: no list
                current.remove(current.item(i))
            return
        cursor.createList(style_)
        self.editor.setFocus()


# --- recipients -------------------------------------------------------------------------

class Recipients(QWidget):
    """To, Cc and Bcc (Cc and Bcc shown on demand), and reply-all."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(4)
        self.to = QLineEdit()
        self.cc = QLineEdit()
        self.bcc = QLineEdit()
        self.to.setPlaceholderText("customer@example.com")
        self.cc.setPlaceholderText("Copies, separated by commas")
        self.bcc.setPlaceholderText("Hidden copies: in no header")
        self.cc_label, self.bcc_label = _plain("Cc"), _plain("Bcc")
        grid.addWidget(_plain("To"), 0, 0)
        grid.addWidget(self.to, 0, 1)
        self.more = QToolButton()
        self.more.setText("Cc Bcc")
        self.more.setAutoRaise(True)
        self.more.setToolTip("Show the Cc and Bcc fields")
        self.more.clicked.connect(lambda: self.show_copies(True))
        self.reply_all = QToolButton()
        self.reply_all.setText("Reply all")
        self.reply_all.setAutoRaise(True)
        self.reply_all.setToolTip("Copy everyone else on the message (never our own address)")
        self.reply_all.clicked.connect(self.add_others)
        grid.addWidget(self.more, 0, 2)
        grid.addWidget(self.reply_all, 0, 3)
        grid.addWidget(self.cc_label, 1, 0)
        grid.addWidget(self.cc, 1, 1, 1, 3)
        grid.addWidget(self.bcc_label, 2, 0)
        grid.addWidget(self.bcc, 2, 1, 1, 3)
        self.others: list[str] = []
        self.show_copies(False)

    def show_copies(self, on: bool) -> None:
        for w in (self.cc_label, self.cc, self.bcc_label, self.bcc):
            w.setVisible(on)
        self.more.setVisible(not on)

    def set_values(self, to: list[str], cc: list[str] | None = None,
                   bcc: list[str] | None = None, others: list[str] | None = None) -> None:
        self.to.setText(", ".join(to))
        self.cc.setText(", ".join(cc or []))
        self.bcc.setText(", ".join(bcc or []))
        self.others = list(others or [])
        self.reply_all.setVisible(bool(self.others))
        self.show_copies(bool(cc or bcc))

    def add_others(self) -> None:
        """Reply all: the others on the answered message join Cc (each once)."""
        have = {a.lower() for a in self.values()[0] + self.values()[1]}
        extra = [a for a in self.others if a.lower() not in have]
        if extra:
            self.cc.setText(", ".join(self.values()[1] + extra))
        self.show_copies(True)

    def values(self) -> tuple[list[str], list[str], list[str]]:
        return (split_addresses(self.to.text()), split_addresses(self.cc.text()),
                split_addresses(self.bcc.text()))


# --- attachments --------------------------------------------------------------------------

class _FileRow(QWidget):
    """One file to send: its name and size, and × to remove it (refilled, ui.pool)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        h = QHBoxLayout(self)
        h.setContentsMargins(0, 0, 0, 0)
        icon = QLabel()
        icon.setPixmap(style.pixmap("attach", C.muted, 14))
        h.addWidget(icon)
        self.name = _plain()
        self.name.setObjectName("attachmentName")
        h.addWidget(self.name, 1)
        self.remove = QToolButton()
        self.remove.setIcon(style.icon("close", C.muted))
        self.remove.setAutoRaise(True)
        self.remove.setToolTip("Remove this file")
        h.addWidget(self.remove)


class Attachments(QWidget):
    """The files to send: name and size each, the total, a warning above the limit."""

    changed = Signal()
    problem = Signal(str)  # a file that could not be read

    def __init__(self, limit_mb: int = 20, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.limit_mb = limit_mb
        self.files: list[FileAttachment] = []
        self._labels: list[QLabel] = []
        self._pasted = 0
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.rows = QVBoxLayout()
        self.rows.setSpacing(2)
        lay.addLayout(self.rows)
        self._rows: WidgetPool[_FileRow] = WidgetPool(self.rows, self._make_row, keep=10)
        self.summary = _plain()
        self.summary.setObjectName("muted")
        self.warning = _plain()
        self.warning.setObjectName("attachWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(f"color: {C.warn};")
        lay.addWidget(self.summary)
        lay.addWidget(self.warning)
        self._refresh()

    @property
    def total(self) -> int:
        return sum(len(f.data) for f in self.files)

    @property
    def over_limit(self) -> bool:
        return self.total > self.limit_mb * 1024 * 1024

    def choose(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Attach files")
        self.add_paths(paths)

    def add_paths(self, paths: list[str]) -> None:
        for path in paths:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                self.problem.emit(f"Cannot attach {Path(path).name}: {exc.strerror or exc}.")
                continue
            self.files.append(FileAttachment.of(Path(path).name, data))
        self._refresh()

    def add_image(self, image: QImage) -> None:
        """A pasted image, as a PNG file."""
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buf, "PNG")
        buf.close()
        self._pasted += 1
        self.files.append(FileAttachment.of(f"pasted image {self._pasted}.png",
                                            bytes(data.data()), "image/png"))
        self._refresh()

    def set_files(self, files: list[FileAttachment]) -> None:
        self.files = list(files)
        self._refresh()

    def names(self) -> list[str]:
        """What each file's row shows: its name and size."""
        return [label.text() for label in self._labels]

    def remove(self, index: int) -> None:
        if 0 <= index < len(self.files):
            del self.files[index]
            self._refresh()

    def _make_row(self) -> _FileRow:
        i = len(self._rows)  # the row always shows the i-th file
        row = _FileRow()
        row.remove.clicked.connect(lambda _=False: self.remove(i))
        return row

    def _refresh(self) -> None:
        # Rows are kept and refilled (ui.pool: each widget made costs references to None).
        self._labels = []
        for row, f in zip(self._rows.take(len(self.files)), self.files, strict=True):
            row.name.setText(f"{f.filename}  ({fmt.size(len(f.data))})")
            row.name.setToolTip(f.content_type)
            self._labels.append(row.name)
        n = len(self.files)
        self.summary.setText(f"{n} file{'s' if n != 1 else ''}, {fmt.size(self.total)}"
                             if n else "")
        self.summary.setVisible(bool(n))
        self.warning.setText(
            f"Over {self.limit_mb} MB: many mail servers refuse messages this large. "
            f"Sending asks you to confirm." if self.over_limit else "")
        self.warning.setVisible(self.over_limit)
        self.setVisible(bool(n))
        self.changed.emit()


# --- quote and signature --------------------------------------------------------------------

class QuotedMessage(QWidget):
    """The answered message, quoted below the reply when sent: optional, collapsed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        head = QHBoxLayout()
        self.include = QCheckBox("Quote the message below the reply")
        self.include.setChecked(True)
        self.toggle = QToolButton()
        self.toggle.setText("show quoted text")
        self.toggle.setAutoRaise(True)
        self.toggle.setCheckable(True)
        self.toggle.toggled.connect(self._show)
        head.addWidget(self.include)
        head.addWidget(self.toggle)
        head.addStretch(1)
        lay.addLayout(head)
        self.view = QPlainTextEdit()
        self.view.setReadOnly(True)
        self.view.setMaximumHeight(140)
        self.view.hide()
        lay.addWidget(self.view)

    def _show(self, on: bool) -> None:
        self.view.setVisible(on)
        self.toggle.setText("hide quoted text" if on else "show quoted text")

    def set_quote(self, attribution: str, text: str) -> None:
        lines = "\n".join("> " + line if line else ">" for line in text.rstrip().splitlines())
        self.view.setPlainText(f"{attribution}\n{lines}" if text.strip() else "")
        self.setVisible(bool(text.strip()))
        self.toggle.setChecked(False)


class SignatureRow(QWidget):
    """The signature that goes below the text (the agent's own, else the team's)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.include = QCheckBox("Signature")
        self.include.setChecked(True)
        self.preview = _plain()
        self.preview.setObjectName("muted")
        lay.addWidget(self.include)
        lay.addWidget(self.preview, 1)

    def set_signature(self, text: str) -> None:
        first = text.strip().splitlines()[0] if text.strip() else ""
        more = " …" if len(text.strip().splitlines()) > 1 else ""
        self.preview.setText(first + more)
        self.preview.setToolTip(text)
        self.setVisible(bool(text.strip()))


# --- the undo window ------------------------------------------------------------------------

class UndoBar(QFrame):
    """"Sending in 8 s... Undo" while a sent item waits out its window in the outbox."""

    undo = Signal(int)     # the outbox item to cancel
    elapsed = Signal(int)  # the window is over (the core sends it now)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("undoBar")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        self.label = _plain()
        self.button = QPushButton("Undo")
        self.button.setToolTip("Stop it: nothing is sent and the draft comes back")
        self.button.clicked.connect(self._undo)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.button)
        self.item_id: int | None = None
        self._until = 0.0
        self._tick = QTimer(self)
        self._tick.setInterval(250)
        self._tick.timeout.connect(self._update)
        self.hide()

    def start(self, item_id: int, seconds: float) -> None:
        self.item_id = item_id
        self._until = time.monotonic() + max(0.0, seconds)
        self.button.setEnabled(True)
        self._update()
        self._tick.start()
        self.show()

    def left(self) -> int:
        return max(0, int(self._until - time.monotonic() + 0.999))

    def _update(self) -> None:
        left = self.left()
        if left <= 0 and self.item_id is not None:
            self._tick.stop()
            item, self.item_id = self.item_id, None
            self.label.setText("Sending…")
            self.button.setEnabled(False)
            self.elapsed.emit(item)
            return
        self.label.setText(f"Sending in {left} s...")

    def _undo(self) -> None:
        if self.item_id is None:
            return
        self._tick.stop()
        self.button.setEnabled(False)
        self.label.setText("Cancelling…")
        self.undo.emit(self.item_id)

    def stop(self) -> None:
        self._tick.stop()
        self.item_id = None
        self.hide()
