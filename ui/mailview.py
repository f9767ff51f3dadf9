"""MailView: shows one message without ever touching the network.

HTML bodies go through :func:`helpdesk.mail.html.sanitize`; plain-text bodies
are escaped, linkified (http/https only) and have quoted earlier mail folded
behind a "…show quoted text" anchor (``#toggle-quote``).

Second line of defence, independent of the sanitiser: :meth:`loadResource`
serves ``cid:`` images from the message's inline parts and answers *every*
other request (http, https, ftp, file, relative paths, style sheets, ...) with
an inert placeholder. It must not return ``None`` for those: Qt then falls
back to reading the URL as a local file (``QTextDocument::loadResource``, and
``QImage::load(src)`` in the image handler) -- on Windows a ``\\\\host\\share``
path would even go out over SMB.

Links are never followed: clicks are re-emitted as :attr:`linkActivated` so the
application can ask before opening anything.
"""

from __future__ import annotations

import html as html_lib
import re
from urllib.parse import unquote

from PySide6.QtCore import QByteArray, QUrl, Signal
from PySide6.QtGui import QImage, QTextDocument
from PySide6.QtWidgets import QTextBrowser, QWidget

from helpdesk.mail.html import (
    SanitizedHtml,
    clean_svg,
    html_quote_cut,
    looks_like_svg,
    quote_fold,
    sanitize,
)
from helpdesk.mail.parse import html_to_text

__all__ = ["MailView"]

TOGGLE_QUOTE = "toggle-quote"
_CID_SCHEME = "cid"
_URL_RE = re.compile(r"""https?://[^\s<>"'\[\]{}|\\^`]+""", re.IGNORECASE)
_URL_TRAILING = ".,;:!?)]}'\""
_MUTED = "#808080"


def _placeholder_image() -> QImage:
    image = QImage(1, 1, QImage.Format.Format_ARGB32)
    image.fill(0)
    return image


def _joined(first: SanitizedHtml, second: SanitizedHtml) -> SanitizedHtml:
    """One message's sanitised HTML from its two parts."""
    return SanitizedHtml(html=first.html + second.html,
                         blocked_remote=first.blocked_remote + second.blocked_remote,
                         links=first.links + second.links,
                         remote_image_urls=first.remote_image_urls + second.remote_image_urls)


def _normalise_cid(content_id: str) -> str:
    return unquote(content_id).strip().strip("<>").strip()


def _linkify(text: str) -> str:
    """Escape plain text, turning http(s) URLs into links that show themselves."""
    out: list[str] = []
    pos = 0
    for m in _URL_RE.finditer(text):
        url = m.group(0).rstrip(_URL_TRAILING)
        end = m.start() + len(url)
        out.append(html_lib.escape(text[pos:m.start()]))
        shown = html_lib.escape(url)
        out.append(f'<a href="{shown}" title="{shown}">{shown}</a>')
        pos = end
    out.append(html_lib.escape(text[pos:]))
    return "".join(out)


def _block(text: str, style: str = "") -> str:
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    if body.endswith("\n"):
        body = body[:-1]  # the block itself ends the line
    return f'<div style="white-space: pre-wrap;{style}">{_linkify(body)}</div>'


class MailView(QTextBrowser):
    """Read-only display of one message (see the module docstring)."""

    linkActivated = Signal(QUrl)
    """A link was clicked (never followed by the view itself)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setUndoRedoEnabled(False)
        self.setSearchPaths([])
        self.requested_urls: list[str] = []
        """Every URL asked for through :meth:`loadResource` since the last
        :meth:`show_message` (for tests and diagnostics)."""
        self.remote_blocked = 0
        """Remote resources blocked in the message shown (0 for plain text)."""
        self.links: list[tuple[str, str]] = []
        """``(text, real href)`` of the links in the message shown."""
        self.remote_images: dict[str, bytes] = {}
        """Image bytes for http(s) URLs that the *application* fetched after the
        user allowed remote content; served only when the message was shown with
        ``allow_remote=True``. The view itself never fetches anything."""
        self.sanitized: SanitizedHtml | None = None
        self._inline: dict[str, bytes] = {}
        self._inline_folded: dict[str, bytes] = {}
        self._allow_remote = False
        self._text = ""
        self._quotes_expanded = False
        self._has_quotes = False
        self._html_parts: tuple[str, str] | None = None
        self.anchorClicked.connect(self._on_anchor_clicked)

    # ------------------------------------------------------------------ display

    def show_message(
        self,
        html: str | None,
        text: str,
        inline_images: dict[str, bytes],
        allow_remote: bool = False,
    ) -> None:
        """Display a message: sanitised ``html`` if any, else ``text``.

        The text is also used when nothing of the HTML survives sanitising.

        ``inline_images`` maps Content-IDs (with or without ``<>``) to the
        bytes of the message's inline parts, for ``cid:`` references.
        """
        self.requested_urls = []
        self._inline = {_normalise_cid(k): v for k, v in inline_images.items()}
        self._inline_folded = {k.casefold(): v for k, v in self._inline.items()}
        self._allow_remote = allow_remote
        self._text = text
        self._quotes_expanded = False
        self.document().clear()  # also drops cached resources of the last message
        self.sanitized = None
        self.remote_blocked = 0
        if html is not None and html.strip():
            # A reply that quotes earlier mail is sanitised as its two parts (the whole
            # is their sum), anything else as a whole: each byte sanitised once.
            parts = self._fold_html(html, allow_remote)
            result = _joined(*parts) if parts else \
                sanitize(html, allow_remote=allow_remote, cid_scheme=_CID_SCHEME)
            self.remote_blocked = result.blocked_remote
            if result.html.strip() or not text.strip():
                self.sanitized = result
                self.links = list(result.links)
                self._html_parts = (parts[0].html, parts[1].html) if parts else None
                self._has_quotes = parts is not None
                self._render_html()
                return
            # Nothing displayable survived (e.g. an HTML part that was all script):
            # the text part is the better view of this message.
        self._render_text()

    @staticmethod
    def _fold_html(html: str, allow_remote: bool) -> tuple[SanitizedHtml, SanitizedHtml] | None:
        """(new part, quoted part), both sanitised, when the HTML quotes earlier mail."""
        cut = html_quote_cut(html)
        if cut is None:
            return None
        new = sanitize(html[:cut], allow_remote=allow_remote, cid_scheme=_CID_SCHEME)
        if not html_to_text(new.html).strip():
            return None
        return new, sanitize(html[cut:], allow_remote=allow_remote, cid_scheme=_CID_SCHEME)

    def _render_html(self) -> None:
        assert self.sanitized is not None
        if self._html_parts is None:
            self.setHtml(self.sanitized.html)
            return
        new, quoted = self._html_parts
        self.setHtml(new + self._quote_toggle() + (quoted if self._quotes_expanded else ""))

    def _quote_toggle(self) -> str:
        """The "…show quoted text" / "…hide quoted text" link."""
        label = "…hide quoted text" if self._quotes_expanded else "…show quoted text"
        return (f'<p><a href="#{TOGGLE_QUOTE}" style="color: {_MUTED}; '
                f'text-decoration: none">{label}</a></p>')

    @property
    def has_quoted_text(self) -> bool:
        """The body shown has quoted earlier mail (folded or not)."""
        return self._has_quotes

    @property
    def quotes_expanded(self) -> bool:
        return self._quotes_expanded

    def set_quotes_expanded(self, expanded: bool) -> None:
        if not self._has_quotes or expanded == self._quotes_expanded:
            return
        self._quotes_expanded = expanded
        scroll = self.verticalScrollBar().value()
        if self.sanitized is not None:
            self._render_html()
        else:
            self._render_text()
        self.verticalScrollBar().setValue(scroll)

    def _render_text(self) -> None:
        parts: list[str] = []
        self._has_quotes = False
        self.links = []
        for segment, quoted in quote_fold(self._text):
            if not quoted:
                parts.append(_block(segment))
                continue
            self._has_quotes = True
            parts.append(self._quote_toggle())
            if self._quotes_expanded:
                parts.append(_block(segment, f" color: {_MUTED};"))
        for m in _URL_RE.finditer(self._text):
            url = m.group(0).rstrip(_URL_TRAILING)
            self.links.append((url, url))
        self.setHtml("".join(parts))

    # ------------------------------------------------------------------ links

    def _on_anchor_clicked(self, url: QUrl) -> None:
        if url.scheme() == "" and url.path() == "" and url.fragment() == TOGGLE_QUOTE:
            self.set_quotes_expanded(not self._quotes_expanded)
            return
        self.linkActivated.emit(url)

    # ------------------------------------------------------------------ resources

    def loadResource(self, resource_type: int, name: QUrl | str) -> object:
        """Serve ``cid:`` images from memory; everything else gets a placeholder."""
        if not isinstance(name, QUrl):
            name = QUrl(name)
        self.requested_urls.append(name.toString())
        if resource_type != QTextDocument.ResourceType.ImageResource:
            return QByteArray()  # style sheets, HTML, markdown: empty, never fetched
        data: bytes | None = None
        scheme = name.scheme().lower()
        if scheme == _CID_SCHEME:
            encoded = bytes(name.toEncoded().data()).decode("ascii", "replace")
            content_id = _normalise_cid(encoded[len(_CID_SCHEME) + 1:])
            data = self._inline.get(content_id)
            if data is None:
                data = self._inline_folded.get(content_id.casefold())
        elif scheme in ("http", "https") and self._allow_remote:
            data = next((v for k, v in self.remote_images.items() if QUrl(k) == name), None)
        if data and looks_like_svg(data):
            # An SVG may draw a local file through <image xlink:href>: render it only
            # with every external reference removed (or not at all).
            data = clean_svg(data)
        if data:
            image = QImage.fromData(data)
            if not image.isNull():
                return image
        return _placeholder_image()
