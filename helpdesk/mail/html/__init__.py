"""Untrusted mail HTML: the sanitiser (``sanitise``) and quote folding (``quotes``)."""

from helpdesk.mail.html.quotes import html_quote_cut, quote_fold
from helpdesk.mail.html.sanitise import SanitizedHtml, sanitize

__all__ = ["SanitizedHtml", "html_quote_cut", "quote_fold", "sanitize"]
