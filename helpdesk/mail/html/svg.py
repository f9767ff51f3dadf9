"""Inline SVG from mail, without any external reference (or not at all).

An SVG image can point outside itself: ``<image xlink:href="file:///...">`` draws a
local file's pixels (a renderer resolves it), ``<use href="other.svg#x">``, CSS
``url(...)``, ``@import``, ``<foreignObject>`` HTML, scripts, animations that set an
``href`` later. :func:`clean_svg` keeps the drawing and removes every one of those:
what is left refers only to itself (``#id`` fragments). Anything that is not plain,
well-formed SVG XML (a DOCTYPE or entity declarations, which also bring entity
expansion; another root; over 1 MB) is refused, and the caller shows nothing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

MAX_SVG_BYTES = 1024 * 1024
SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
# Renderers want SVG in the default namespace, not under ElementTree's "ns0:" prefix.
ET.register_namespace("", SVG_NS)
ET.register_namespace("xlink", XLINK_NS)

# Elements whose very purpose is to bring something in, run something or change
# attributes over time.
_DROP = frozenset({
    "script", "foreignobject", "image", "feimage", "style", "iframe", "object", "embed",
    "audio", "video", "animate", "animatemotion", "animatetransform", "animatecolor",
    "set", "discard", "handler", "listener", "link", "font-face-uri", "cursor", "mpath",
})
_URL_RE = re.compile(r"url\s*\(\s*(['\"]?)\s*(?!#)", re.IGNORECASE)
_SNIFF_RE = re.compile(rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<svg[\s>]",
                       re.IGNORECASE | re.DOTALL)


def looks_like_svg(data: bytes) -> bool:
    """Whether ``data`` is (meant to be) an SVG document, by its first bytes."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf")
    return bool(_SNIFF_RE.match(head)) or b"<svg" in head.lower()


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1].lower()


def clean_svg(data: bytes) -> bytes | None:
    """The SVG with every external reference removed; None when it is not safe SVG."""
    if len(data) > MAX_SVG_BYTES:
        return None
    lowered = data.lower()
    if b"<!doctype" in lowered or b"<!entity" in lowered:
        return None
    try:
        root = ET.fromstring(data)
    except (ET.ParseError, ValueError):
        return None
    if _local(root.tag) != "svg":
        return None
    _clean(root)
    cleaned: bytes = ET.tostring(root, encoding="utf-8")
    return cleaned


def _clean(element: ET.Element) -> None:
    for child in list(element):
        if not isinstance(child.tag, str) or _local(child.tag) in _DROP:
            element.remove(child)
            continue
        _clean(child)
    for name, value in list(element.attrib.items()):
        local = _local(name)
        if (local.startswith("on")
                or (local in ("href", "src") and not value.strip().startswith("#"))
                or _URL_RE.search(value)
                or "@import" in value.lower()
                or "expression(" in value.lower()):
            del element.attrib[name]
