"""Untrusted mail HTML, made safe to display (Qt-free).

:func:`sanitize` turns hostile mail HTML into a small, inert subset:

1. :mod:`nh3` (ammonia, an html5ever parser) parses the input exactly like a
   browser would and keeps only a whitelist of presentational tags and
   attributes. Every URL and every ``style=`` attribute goes through
   :func:`_filter_attribute`: links keep http/https/mailto only, images keep
   ``cid:`` (and http/https, decided in step 2), inline CSS keeps only a list of
   harmless properties whose values contain no functions other than colours (so
   no ``url(...)``, ``expression(...)``, ``@import``, escapes or comments).
   ``<style>`` blocks are dropped with their content.
2. A post-pass over nh3's (well-formed) output replaces remote images by an
   inert text placeholder unless ``allow_remote``, drops images left without a
   source, and makes link text honest: a link whose visible text names another
   host (or mail address) than its real target gets `` [real.host]`` appended.
3. The result goes through nh3 once more, as defence in depth against any bug
   in step 2.

``blocked_remote`` counts the remote references (``http:``, ``https:``,
``ftp:``, ``//host``) found in the input that would have been fetched
automatically -- ``src``, ``srcset``, ``background``, ``poster``, ``<link
href>``, CSS ``url()``/``@import``, a ``<meta>`` refresh target, ... -- minus
the remote images that were kept because of ``allow_remote``.
The input is scanned for this with :class:`html.parser.HTMLParser`, so on
pathological markup the count is an estimate; it never influences what is kept.

"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import nh3

__all__ = ["SanitizedHtml", "sanitize"]


@dataclass
class SanitizedHtml:
    """The result of :func:`sanitize`."""

    html: str
    """Safe HTML fragment: nothing in it is fetched except ``cid:`` images (and
    http/https images when ``allow_remote`` was given)."""
    blocked_remote: int = 0
    """How many remote resource references were removed or neutralised."""
    links: list[tuple[str, str]] = field(default_factory=list)
    """``(visible text, real href)`` of every link kept, in document order."""
    remote_image_urls: list[str] = field(default_factory=list)
    """The http(s) ``<img src>`` URLs seen (kept or blocked), for a viewer that
    wants to prefetch them once the user allowed remote content."""


# --------------------------------------------------------------------------- policy

_TAGS = frozenset({
    "a", "abbr", "acronym", "address", "article", "aside", "b", "bdi", "bdo", "big",
    "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup", "dd",
    "del", "details", "dfn", "div", "dl", "dt", "em", "figcaption", "figure", "font",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "i", "img", "ins",
    "kbd", "li", "main", "mark", "nav", "ol", "p", "pre", "q", "s", "samp", "section",
    "small", "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody",
    "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul", "var", "wbr",
})

# Removed together with everything inside them. Other unknown tags (form, button,
# video, ...) are unwrapped: the tag goes, its text stays.
_CLEAN_CONTENT_TAGS = frozenset({
    "applet", "datalist", "embed", "frame", "frameset", "iframe", "math", "noembed",
    "noframes", "noscript", "object", "script", "select", "style", "svg", "template",
    "textarea", "title",
})

_GLOBAL_ATTRS = frozenset({"style", "title", "dir", "lang", "align"})
_TAG_ATTRS: dict[str, frozenset[str]] = {
    "a": frozenset({"href"}),
    "img": frozenset({"src", "alt", "width", "height", "border", "hspace", "vspace"}),
    "font": frozenset({"color", "face", "size"}),
    "table": frozenset({"border", "cellpadding", "cellspacing", "width", "bgcolor"}),
    "tr": frozenset({"bgcolor", "valign"}),
    "td": frozenset({"colspan", "rowspan", "width", "height", "bgcolor", "valign",
                     "nowrap"}),
    "th": frozenset({"colspan", "rowspan", "width", "height", "bgcolor", "valign",
                     "nowrap"}),
    "col": frozenset({"span", "width"}),
    "colgroup": frozenset({"span", "width"}),
    "ol": frozenset({"start", "type"}),
    "ul": frozenset({"type"}),
    "li": frozenset({"value", "type"}),
    "hr": frozenset({"width", "size", "noshade", "color"}),
    "blockquote": frozenset({"type"}),
}

_LINK_SCHEMES = frozenset({"http", "https", "mailto"})
_REMOTE_IMAGE_SCHEMES = frozenset({"http", "https"})

_CSS_PROPERTIES = frozenset({
    "background", "background-color", "border", "border-bottom", "border-bottom-color",
    "border-bottom-style", "border-bottom-width", "border-collapse", "border-color",
    "border-left", "border-left-color", "border-left-style", "border-left-width",
    "border-right", "border-right-color", "border-right-style", "border-right-width",
    "border-spacing", "border-style", "border-top", "border-top-color",
    "border-top-style", "border-top-width", "border-width", "color", "direction",
    "float", "font", "font-family", "font-size", "font-style", "font-variant",
    "font-weight", "height", "letter-spacing", "line-height", "list-style-type",
    "margin", "margin-bottom", "margin-left", "margin-right", "margin-top",
    "max-width", "min-width", "padding", "padding-bottom", "padding-left",
    "padding-right", "padding-top", "text-align", "text-decoration", "text-indent",
    "text-transform", "vertical-align", "white-space", "width", "word-spacing",
})
# Anything that can name a resource or run code in some CSS engine, plus the
# syntax needed to hide such a thing (escapes, comments, at-rules, blocks).
_CSS_FORBIDDEN = (
    "\\", "/*", "*/", "<", ">", "@", "&", "{", "}", "url", "expression", "import",
    "behavior", "behaviour", "binding", "image-set", "attr(", "var(",
)
_CSS_COLOR_FUNC_RE = re.compile(r"\b(?:rgba?|hsla?)\(\s*[0-9.,%\s/]*\)")
_CSS_VALUE_RE = re.compile(r"[\w\s#%.,'\"!/+\-]*")
_CSS_PROPERTY_RE = re.compile(r"-?[a-z][a-z-]*")

_COLOR_RE = re.compile(r"#?[0-9A-Za-z]{1,20}")
_LENGTH_RE = re.compile(r"\d{1,5}(?:\.\d+)?(?:%|px)?")
_WORD_RE = re.compile(r"[A-Za-z0-9\-]{1,20}")
_FACE_RE = re.compile(r"[\w\s,'\"\-]{1,200}")

_ATTR_VALIDATORS: dict[str, re.Pattern[str]] = {
    "bgcolor": _COLOR_RE, "color": _COLOR_RE, "face": _FACE_RE,
    "width": _LENGTH_RE, "height": _LENGTH_RE, "border": _LENGTH_RE,
    "cellpadding": _LENGTH_RE, "cellspacing": _LENGTH_RE, "hspace": _LENGTH_RE,
    "vspace": _LENGTH_RE, "colspan": _LENGTH_RE, "rowspan": _LENGTH_RE,
    "span": _LENGTH_RE, "start": _LENGTH_RE, "value": _LENGTH_RE, "size": _WORD_RE,
    "align": _WORD_RE, "valign": _WORD_RE, "dir": _WORD_RE, "lang": _WORD_RE,
    "type": _WORD_RE,
}

# WHATWG URL parsing strips leading/trailing C0 controls and spaces and removes
# tabs and newlines anywhere: "java\tscript:" is "javascript:".
_URL_STRIP = "".join(chr(c) for c in range(0x21))
_URL_TAB_NL_RE = re.compile(r"[\t\n\r]")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")


def _normalise_url(value: str) -> str:
    return _URL_TAB_NL_RE.sub("", value.strip(_URL_STRIP))


def _scheme(url: str) -> str | None:
    m = _SCHEME_RE.match(url)
    return m.group(1).lower() if m else None


def _is_remote(value: str) -> bool:
    """Would fetching this reference leave the machine? (http, https, ftp, //host)"""
    url = _normalise_url(value)
    if url[:2] in ("//", "\\\\", "/\\", "\\/"):
        return True
    return _scheme(url) in ("http", "https", "ftp")


def _clean_css(style: str) -> str | None:
    """Keep only harmless declarations of an inline ``style`` attribute."""
    lowered = style.lower()
    if any(bad in lowered for bad in ("\\", "/*", "@", "{", "}")):
        return None  # escapes, comments and blocks: do not even try
    kept: list[str] = []
    for declaration in style.split(";"):
        name, sep, value = declaration.partition(":")
        name = name.strip().lower()
        value = value.strip()
        if not sep or not value or name not in _CSS_PROPERTIES:
            continue
        if not _CSS_PROPERTY_RE.fullmatch(name):
            continue
        check = value.lower()
        if any(bad in check for bad in _CSS_FORBIDDEN):
            continue
        check = _CSS_COLOR_FUNC_RE.sub("", check)
        if "(" in check or ")" in check or not _CSS_VALUE_RE.fullmatch(check):
            continue
        if value.count('"') % 2 or value.count("'") % 2:
            continue
        kept.append(f"{name}: {value}")
    return "; ".join(kept) if kept else None


def _has_host(url: str) -> bool:
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return False


def _make_attribute_filter(cid_scheme: str) -> Callable[[str, str, str], str | None]:
    image_schemes = _REMOTE_IMAGE_SCHEMES | {"cid", cid_scheme}

    def attribute_filter(tag: str, attr: str, value: str) -> str | None:
        if attr == "style":
            return _clean_css(value)
        if attr == "href":
            if tag != "a":
                return None
            url = _normalise_url(value)
            scheme = _scheme(url)
            if scheme not in _LINK_SCHEMES:
                return None
            if scheme in ("http", "https") and not _has_host(url):
                return None
            return url
        if attr == "src":
            if tag != "img":
                return None
            url = _normalise_url(value)
            scheme = _scheme(url)
            if scheme not in image_schemes:
                return None
            if scheme in _REMOTE_IMAGE_SCHEMES:
                return url if _has_host(url) else None
            content_id = url[len(scheme) + 1:].strip().strip("<>")
            return f"{cid_scheme}:{content_id}" if content_id else None
        if attr in ("alt", "title"):
            return value
        if attr == "rel":  # only ever nh3's own link_rel
            return value
        if attr in ("nowrap", "noshade"):
            return attr
        validator = _ATTR_VALIDATORS.get(attr)
        if validator is None:
            return None
        value = value.strip()
        return value if validator.fullmatch(value) else None

    return attribute_filter


@lru_cache(maxsize=8)
def _attribute_filter(cid_scheme: str) -> Callable[[str, str, str], str | None]:
    return _make_attribute_filter(cid_scheme)


def _nh3_clean(markup: str, cid_scheme: str) -> str:
    attributes: dict[str, set[str]] = {"*": set(_GLOBAL_ATTRS)}
    for tag, names in _TAG_ATTRS.items():
        attributes[tag] = set(names)
    return nh3.clean(
        markup,
        tags=set(_TAGS),
        clean_content_tags=set(_CLEAN_CONTENT_TAGS),
        attributes=attributes,
        attribute_filter=_attribute_filter(cid_scheme),
        url_schemes=set(_LINK_SCHEMES | _REMOTE_IMAGE_SCHEMES | {"cid", cid_scheme}),
        strip_comments=True,
        link_rel="noopener noreferrer",
    )


# --------------------------------------------------------------------------- counting

_CSS_URL_RE = re.compile(r"""url\(\s*(['"]?)\s*([^'")]*)""", re.IGNORECASE)
_CSS_IMPORT_RE = re.compile(r"""@import\s+(['"])\s*([^'"]*)""", re.IGNORECASE)
_META_URL_RE = re.compile(r"""url\s*=\s*['"]?\s*([^'"\s;]+)""", re.IGNORECASE)
_RESOURCE_ATTRS = frozenset({
    "src", "lowsrc", "dynsrc", "poster", "background", "data", "codebase", "longdesc",
    "manifest", "icon", "profile",
})
_SRCSET_ATTRS = frozenset({"srcset", "imagesrcset"})
_NAVIGATION_TAGS = frozenset({"a", "area", "base", "form"})


def _count_css(css: str) -> int:
    urls = [m.group(2) for m in _CSS_URL_RE.finditer(css)]
    urls += [m.group(2) for m in _CSS_IMPORT_RE.finditer(css)]
    return sum(1 for u in urls if _is_remote(u))


class _RemoteCounter(HTMLParser):
    """Counts remote references in the raw input (for ``blocked_remote`` only)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.count = 0
        self._in_style = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "style":
            self._in_style += 1
        for name, value in attrs:
            if value is None:
                continue
            if name in _RESOURCE_ATTRS:
                self.count += _is_remote(value)
            elif name in _SRCSET_ATTRS:
                self.count += sum(
                    _is_remote(part.split()[0]) for part in value.split(",") if part.split()
                )
            elif name in ("href", "xlink:href") and tag not in _NAVIGATION_TAGS:
                self.count += _is_remote(value)
            elif name == "style":
                self.count += _count_css(value)
            elif tag == "meta" and name == "content":
                self.count += sum(_is_remote(m.group(1)) for m in _META_URL_RE.finditer(value))

    def handle_endtag(self, tag: str) -> None:
        if tag == "style" and self._in_style:
            self._in_style -= 1

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.count += _count_css(data)


def _count_remote(markup: str) -> int:
    counter = _RemoteCounter()
    try:
        counter.feed(markup)
        counter.close()
    except Exception:  # counting is best effort, never fatal
        pass
    return counter.count


# --------------------------------------------------------------------------- links

_TEXT_URL_RE = re.compile(r"""(?i)\b(?:https?|ftp)://[^\s<>"'\[\]]+""")
_TEXT_WWW_RE = re.compile(r"""(?i)(?<![\w.@/])www\.[^\s<>"'\[\]/?#]+""")
_BARE_HOST_RE = re.compile(
    r"(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,63}\.?(?::\d{1,5})?(?:[/?#]\S*)?"
)
_EMAIL_RE = re.compile(r"[^\s@<>()\[\],;:\"]+@([^\s@<>()\[\],;:\"]+\.[^\s@<>()\[\],;:\"]+)")
_TRIM = " \t\r\n<>()[]{}\"'.,;:!?"


def _norm_host(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _host_of(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return _norm_host(host) if host else None


def _same_site(a: str, b: str) -> bool:
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def _claims(text: str) -> tuple[list[str], list[str]]:
    """Hosts and mail addresses that a link's visible text claims to lead to."""
    hosts: list[str] = []
    emails: list[str] = []
    for m in _TEXT_URL_RE.finditer(text):
        host = _host_of(m.group(0).rstrip(_TRIM))
        if host:
            hosts.append(host)
    for m in _TEXT_WWW_RE.finditer(text):
        hosts.append(_norm_host(m.group(0).rstrip(_TRIM).split(":")[0]))
    whole = text.strip(_TRIM)
    if whole.lower().startswith("mailto:"):
        whole = whole[7:]
    if not hosts and " " not in whole:
        if _EMAIL_RE.fullmatch(whole):
            emails.append(whole.lower())
        elif _BARE_HOST_RE.fullmatch(whole):
            hosts.append(_norm_host(re.split(r"[:/?#]", whole, maxsplit=1)[0]))
    return hosts, emails


def _mailto_addresses(href: str) -> list[str]:
    path = unquote(href[len("mailto:"):].split("?", 1)[0])
    return [a.strip().lower() for a in path.split(",") if a.strip()]


def _real_target(href: str) -> str:
    """What the user should be told a link really leads to."""
    if _scheme(href) == "mailto":
        return ", ".join(_mailto_addresses(href)) or "mailto:"
    parts = urlsplit(href)
    host = _norm_host(parts.hostname or "")
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


def _misleading(text: str, href: str) -> bool:
    hosts, emails = _claims(text)
    if not hosts and not emails:
        return False
    if _scheme(href) == "mailto":
        addresses = _mailto_addresses(href)
        return bool(hosts) or any(e not in addresses for e in emails)
    real = _host_of(href)
    if real is None or emails:
        return True
    return any(not _same_site(h, real) for h in hosts)


# --------------------------------------------------------------------------- post-pass

_VOID_TAGS = frozenset({"br", "col", "hr", "img", "wbr"})
_PLACEHOLDER_STYLE = "color: #808080"
_WARNING_STYLE = (
    "color: #b00020; background-color: #ffffff; font-size: small; "
    "font-weight: normal; font-style: normal; text-decoration: none"
)


def _start_tag(tag: str, attrs: list[tuple[str, str]]) -> str:
    rendered = "".join(f' {name}="{html_lib.escape(value)}"' for name, value in attrs)
    return f"<{tag}{rendered}>"


class _PostPass(HTMLParser):
    """Re-serialises nh3 output: image policy, honest links, link list."""

    def __init__(self, allow_remote: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.allow_remote = allow_remote
        self.out: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.remote_image_urls: list[str] = []
        self.kept_remote = 0
        self.blocked_images = 0
        self._anchors: list[tuple[str | None, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pairs = [(name, value or "") for name, value in attrs]
        if tag == "img":
            self._image(pairs)
            return
        if tag == "a":
            href = dict(pairs).get("href")
            self._anchors.append((href, []))
            if href:
                pairs = [(n, v) for n, v in pairs if n != "title"] + [("title", href)]
        self.out.append(_start_tag(tag, pairs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID_TAGS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID_TAGS:
            return
        self.out.append(f"</{tag}>")
        if tag == "a" and self._anchors:
            href, parts = self._anchors.pop()
            if href:
                text = " ".join("".join(parts).split())
                self.links.append((text, href))
                if _misleading(text, href):
                    warning = html_lib.escape(f" [{_real_target(href)}]")
                    self.out.append(f'<span style="{_WARNING_STYLE}">{warning}</span>')

    def handle_data(self, data: str) -> None:
        for _, parts in self._anchors:
            parts.append(data)
        self.out.append(html_lib.escape(data, quote=False))

    def _image(self, attrs: list[tuple[str, str]]) -> None:
        values = dict(attrs)
        src = values.get("src", "")
        alt = " ".join(values.get("alt", "").split())
        if src and _scheme(src) in _REMOTE_IMAGE_SCHEMES:
            self.remote_image_urls.append(src)
            if self.allow_remote:
                self.kept_remote += 1
                self.out.append(_start_tag("img", attrs))
                return
            self.blocked_images += 1
            if alt:
                label = html_lib.escape(f"[{alt}]", quote=False)
                self.out.append(
                    f'<span style="{_PLACEHOLDER_STYLE}" title="Remote image blocked">'
                    f"{label}</span>"
                )
            return
        if src:
            self.out.append(_start_tag("img", attrs))
        elif alt:  # an image without a usable source: its alt text, if any
            self.out.append(html_lib.escape(f"[{alt}]", quote=False))


# --------------------------------------------------------------------------- API


def sanitize(html: str, *, allow_remote: bool = False, cid_scheme: str = "cid") -> SanitizedHtml:
    """Make untrusted mail HTML safe to display; see the module docstring.

    ``cid:`` image sources are kept, rewritten to ``{cid_scheme}:{content-id}``
    (angle brackets removed) so a viewer can resolve them from the message's
    inline parts. With ``allow_remote`` http(s) images are kept (never any other
    scheme); CSS ``url()`` and friends are removed regardless.
    """
    if not _SCHEME_RE.fullmatch(cid_scheme + ":"):
        raise ValueError(f"invalid URL scheme: {cid_scheme!r}")
    cid_scheme = cid_scheme.lower()
    if not html or not html.strip():
        return SanitizedHtml(html="")
    found_remote = _count_remote(html)
    post = _PostPass(allow_remote)
    post.feed(_nh3_clean(html, cid_scheme))
    post.close()
    final = _nh3_clean("".join(post.out), cid_scheme)
    blocked = max(found_remote - post.kept_remote, post.blocked_images)
    return SanitizedHtml(
        html=final,
        blocked_remote=blocked,
        links=post.links,
        remote_image_urls=post.remote_image_urls,
    )
