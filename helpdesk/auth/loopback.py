"""The loopback redirect of the browser sign-in (RFC 8252 section 7.3).

A one-shot HTTP server on ``127.0.0.1`` and a port the system picks; the identity
provider redirects the browser to it with ``code`` and ``state`` (or ``error``). It
answers with a short page telling the person to go back to the app, and hands the query
to whoever waits. Only a request to the expected path with the expected ``state`` counts:
anything else (a favicon, a stray tab) gets a 404 and waiting goes on.
"""

from __future__ import annotations

import http.server
import threading
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

DONE_PAGE = (b"<!doctype html><meta charset=utf-8><title>Help desk</title>"
             b"<p style='font:16px sans-serif;margin:3em'>Signed in. You can close this tab "
             b"and go back to Help desk.</p>")
FAILED_PAGE = (b"<!doctype html><meta charset=utf-8><title>Help desk</title>"
               b"<p style='font:16px sans-serif;margin:3em'>The sign-in did not complete. "
               b"Go back to Help desk to see why.</p>")


class LoopbackReceiver:
    """``with LoopbackReceiver(state) as r: open(r.redirect_uri...); query = r.wait(t)``."""

    def __init__(self, state: str, path: str = "/") -> None:
        self.state = state
        self.path = path
        self.query: dict[str, str] | None = None
        self._got = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if parts.path != receiver.path or query.get("state") != receiver.state \
                        or receiver._got.is_set():
                    self.send_error(404)
                    return
                ok = "code" in query and "error" not in query
                body = DONE_PAGE if ok else FAILED_PAGE
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                receiver.query = query
                receiver._got.set()

            def log_message(self, format: str, *args: object) -> None:
                pass  # the query holds the code: never logged

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="oauth-loopback", daemon=True)
        self._thread.start()

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.path}"

    def wait(self, timeout: float, cancel: threading.Event | None = None) -> dict[str, str] | None:
        """The redirect's query, or None when ``timeout`` passed (or ``cancel`` was set)."""
        step = 0.25
        remaining = timeout
        while remaining > 0:
            if self._got.wait(min(step, remaining)):
                return self.query
            if cancel is not None and cancel.is_set():
                return None
            remaining -= step
        return self.query if self._got.is_set() else None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LoopbackReceiver:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
