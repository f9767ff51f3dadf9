"""The composer's parts offscreen: Qt's rich text becomes the mail we mean, files come
in by paste and drop, the size warning, To/Cc/Bcc and reply-all, the undo countdown."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QUrl
from PySide6.QtGui import QColor, QImage, QTextCharFormat, QTextCursor
from pytestqt.qtbot import QtBot

from helpdesk.mail.compose import html_to_plain
from helpdesk.mail.html import sanitize
from ui.compose_parts import Attachments, FormatBar, Recipients, RichEditor, UndoBar


def as_sent(editor: RichEditor) -> str:
    return html_to_plain(sanitize(editor.toHtml()).html)


def test_plain_text_in_the_rich_editor_sends_as_typed(qtbot: QtBot) -> None:
    editor = RichEditor()
    qtbot.addWidget(editor)
    text = "Hi Zoë,\n\nThe export works again.\nTry it now.\n\n\nBest,\nAnn"
    editor.setPlainText(text)
    assert not editor.has_formatting()
    assert as_sent(editor) == text


def test_bold_italic_links_and_lists_reach_the_plain_text(qtbot: QtBot) -> None:
    editor = RichEditor()
    bar = FormatBar(editor)
    qtbot.addWidget(editor)
    qtbot.addWidget(bar)
    editor.setPlainText("Please restart now")
    cursor = editor.textCursor()
    cursor.setPosition(7)
    cursor.setPosition(14, QTextCursor.MoveMode.KeepAnchor)  # "restart"
    editor.setTextCursor(cursor)
    bar.toggle_bold()
    cursor.setPosition(15)
    cursor.setPosition(18, QTextCursor.MoveMode.KeepAnchor)  # "now"
    editor.setTextCursor(cursor)
    bar.toggle_italic()
    editor.moveCursor(QTextCursor.MoveOperation.End)
    editor.textCursor().insertText("\nthe guide", QTextCharFormat())
    cursor = editor.textCursor()
    cursor.movePosition(QTextCursor.MoveOperation.StartOfBlock)
    cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor)
    editor.setTextCursor(cursor)
    assert bar.set_link("https://example.com/guide") and not bar.set_link("javascript:x")
    editor.moveCursor(QTextCursor.MoveOperation.End)
    editor.textCursor().insertText("\nfirst", QTextCharFormat())
    bar.make_list(numbered=True)
    editor.textCursor().insertText("\nsecond")
    assert editor.has_formatting()
    assert as_sent(editor) == ("Please *restart* _now_\nthe guide <https://example.com/guide>"
                               "\n\n1. first\n2. second")


def test_files_come_in_by_paste_and_drop_with_sizes_and_a_warning(
        qtbot: QtBot, tmp_path: Path) -> None:
    editor = RichEditor()
    files = Attachments(limit_mb=1)
    qtbot.addWidget(editor)
    qtbot.addWidget(files)
    editor.files_dropped.connect(files.add_paths)
    editor.image_pasted.connect(files.add_image)
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    image.fill(QColor("red"))
    pasted = QMimeData()
    pasted.setImageData(image)
    editor.insertFromMimeData(pasted)
    big = tmp_path / "Größe.bin"
    big.write_bytes(b"\x00" * (1024 * 1024 + 10))
    dropped = QMimeData()
    dropped.setUrls([QUrl.fromLocalFile(str(big))])
    assert editor.canInsertFromMimeData(dropped)
    editor.insertFromMimeData(dropped)
    assert [f.filename for f in files.files] == ["pasted image 1.png", "Größe.bin"]
    assert files.files[0].content_type == "image/png" and files.files[0].data[:4] == b"\x89PNG"
    assert files.over_limit and "Over 1 MB" in files.warning.text()
    assert files.summary.text().startswith("2 files, 1")
    files.remove(1)
    assert not files.over_limit and files.warning.text() == ""
    assert editor.toPlainText() == ""  # files never land in the text


def test_recipients_and_reply_all(qtbot: QtBot) -> None:
    r = Recipients()
    qtbot.addWidget(r)
    r.set_values(["zoe@customer.example"], others=["boss@customer.example",
                                                   "zoe@customer.example"])
    assert r.cc.isHidden()
    r.add_others()
    assert not r.cc.isHidden()
    r.bcc.setText("audit@vendor.example; second@vendor.example")
    assert r.values() == (["zoe@customer.example"], ["boss@customer.example"],
                          ["audit@vendor.example", "second@vendor.example"])


def test_undo_bar_counts_down_and_undoes(qtbot: QtBot) -> None:
    bar = UndoBar()
    qtbot.addWidget(bar)
    bar.start(7, 30)
    assert bar.label.text() == "Sending in 30 s..."
    with qtbot.waitSignal(bar.undo) as undo:
        bar.button.click()
    assert undo.args == [7]
    bar.start(8, 0.3)
    with qtbot.waitSignal(bar.elapsed, timeout=5000) as over:
        pass
    assert over.args == [8] and bar.label.text() == "Sending…"
