"""A stand-in for the person's web browser, for ``$BROWSER`` in the tests.

``python tests/browser.py URL`` returns at once (as a real browser hands the URL to a
running instance) and, in a detached child, opens URL the way a browser would: it
follows the identity provider's redirect to the app's loopback address. It trusts the
test CA named by ``REQUESTS_CA_BUNDLE``. ``HELPDESK_TEST_BROWSER_LOG``, when set, gets
one line per URL opened (what the test saw the app ask for).
"""

from __future__ import annotations

import html.parser
import os
import ssl
import sys
import urllib.parse
import urllib.request


class _Form(html.parser.HTMLParser):
    """The page's first form (an OAuth ``form_post`` answer): action and fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None and a.get("method", "").lower() == "post":
            self.action = a.get("action", "")
        elif tag == "input" and self.action is not None and "name" in a:
            self.fields[a["name"]] = a.get("value", "")


def follow(url: str) -> None:
    """Open ``url``, follow redirects, and submit an auto-posting form as a browser's
    script would."""
    ctx = ssl.create_default_context(cafile=os.environ.get("REQUESTS_CA_BUNDLE") or None)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx))
    try:
        with opener.open(url, timeout=30) as resp:
            page = resp.read().decode("utf-8", "replace")
        form = _Form()
        form.feed(page)
        if form.action:
            data = urllib.parse.urlencode(form.fields).encode()
            with opener.open(form.action, data=data, timeout=30) as resp:
                resp.read()
    except Exception as exc:  # what a browser shows; the app's own timeout reports it
        print(f"browser: {type(exc).__name__}: {exc}", file=sys.stderr)


def main() -> int:
    url = sys.argv[1]
    log = os.environ.get("HELPDESK_TEST_BROWSER_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(url + "\n")
    if os.fork() != 0:
        return 0
    os.setsid()
    follow(url)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
