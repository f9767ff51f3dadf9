"""Untrusted mail HTML: the sanitiser (``sanitise``), quote folding (``quotes``) and
inline SVG images without external references (``svg``)."""

from helpdesk.mail.html.quotes import html_quote_cut, quote_fold
from helpdesk.mail.html.sanitise import SanitizedHtml, sanitize
from helpdesk.mail.html.svg import clean_svg, looks_like_svg

__all__ = ["SanitizedHtml", "clean_svg", "html_quote_cut", "looks_like_svg", "quote_fold",
           "sanitize"]
