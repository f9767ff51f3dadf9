"""Network faults on loopback: a proxy that cuts a connection at a chosen protocol command.

:class:`CutProxy` forwards TCP to a real server and watches the client's command lines.
When a line matches the armed trigger (a regular expression), it cuts, once:

* ``when="before"``: the command never reaches the server; the connection dies.
* ``when="after"``: the server gets the command and carries it out, but its answer
  never reaches the client: for IMAP the proxy waits for the tagged response and
  withholds it; for SMTP it withholds the next (possibly multi-line) reply. So the
  server did it, and the client cannot know.

:meth:`CutProxy.blackhole` models a NAT or firewall that forgot the connections: the
open ones stop carrying bytes (both ways) without being closed; new ones work.
:meth:`CutProxy.kill_all` closes every open connection (a server restart).
:meth:`CutProxy.hold_new` makes new connections wait until released.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any


@dataclass
class _Conn:
    client: socket.socket
    upstream: socket.socket
    dead: threading.Event = field(default_factory=threading.Event)
    silent: threading.Event = field(default_factory=threading.Event)
    # "after" cut in progress: the server's answer to withhold (IMAP tag, or SMTP)
    withhold: str | None = None

    def close(self) -> None:
        self.dead.set()
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


class CutProxy:
    """Forward 127.0.0.1:<port> to (host, port); cut at a chosen command (see module doc)."""

    def __init__(self, host: str, port: int, protocol: str = "imap") -> None:
        if protocol not in ("imap", "smtp"):
            raise ValueError(protocol)
        self.protocol = protocol
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[_Conn] = []
        self._trigger: re.Pattern[bytes] | None = None
        self._when = "before"
        self._skip = 0
        self.cuts = 0  # how many cuts happened
        self.seen: list[bytes] = []  # every client command line, in order
        self._admit = threading.Event()
        self._admit.set()
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    # --- faults -------------------------------------------------------------------

    def arm(self, pattern: str, when: str = "before", skip: int = 0) -> None:
        """Cut at the next client line matching ``pattern`` (after ``skip`` matches)."""
        if when not in ("before", "after"):
            raise ValueError(when)
        with self._lock:
            self._trigger = re.compile(pattern.encode(), re.IGNORECASE)
            self._when = when
            self._skip = skip

    def disarm(self) -> None:
        with self._lock:
            self._trigger = None

    @property
    def armed(self) -> bool:
        return self._trigger is not None

    def blackhole(self) -> None:
        """Open connections go silent (a NAT forgot them); new ones are fine."""
        with self._lock:
            for c in self._conns:
                c.silent.set()

    def kill_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            c.close()

    def hold_new(self, hold: bool) -> None:
        """New connections wait (accepted, not forwarded) until ``hold_new(False)``."""
        if hold:
            self._admit.clear()
        else:
            self._admit.set()

    def open_connections(self) -> int:
        with self._lock:
            return sum(1 for c in self._conns if not c.dead.is_set())

    # --- plumbing -----------------------------------------------------------------

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.closed.is_set():
                client.close()
                return
            self._spawn(self._start, client)

    def _start(self, client: socket.socket) -> None:
        self._admit.wait()
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Conn(client, upstream)
        with self._lock:
            self._conns.append(conn)
        self._spawn(self._client_to_server, conn)
        self._spawn(self._server_to_client, conn)

    def _match(self, line: bytes) -> str | None:
        """The cut to make for this client line, if the armed trigger matches it."""
        with self._lock:
            if self._trigger is None or not self._trigger.search(line):
                return None
            if self._skip > 0:
                self._skip -= 1
                return None
            self._trigger = None
            self.cuts += 1
            return self._when

    def _client_to_server(self, conn: _Conn) -> None:
        buf = b""
        literal = 0  # IMAP literal bytes still to pass through unexamined
        data_mode = False  # SMTP: inside DATA, lines are the message until "."
        try:
            while not conn.dead.is_set():
                chunk = conn.client.recv(65536)
                if not chunk:
                    break
                if conn.silent.is_set():
                    continue  # swallowed: the NAT forgot this connection
                buf += chunk
                out = b""
                while buf:
                    if literal:
                        take = buf[:literal]
                        out += take
                        buf = buf[len(take):]
                        literal -= len(take)
                        continue
                    end = buf.find(b"\r\n")
                    if end < 0:
                        break
                    line, buf = buf[:end + 2], buf[end + 2:]
                    is_command = not data_mode
                    if self.protocol == "smtp":
                        if data_mode and line == b".\r\n":
                            data_mode = False
                            is_command = True  # the end of the message: a cut point
                        elif not data_mode and line.upper().startswith(b"DATA"):
                            data_mode = True
                    if is_command:
                        self.seen.append(line)
                        cut = self._match(line)
                        if cut == "before":
                            if out:
                                conn.upstream.sendall(out)
                            conn.close()
                            return
                        if cut == "after":
                            conn.withhold = (line.split(b" ", 1)[0].decode("ascii", "replace")
                                             if self.protocol == "imap" else "smtp")
                    m = re.search(rb"\{(\d+)\+?\}\r\n$", line) if self.protocol == "imap" \
                        else None
                    out += line
                    if m:
                        literal = int(m.group(1))
                if out:
                    conn.upstream.sendall(out)
        except OSError:
            pass
        conn.close()

    def _server_to_client(self, conn: _Conn) -> None:
        buf = b""
        try:
            while not conn.dead.is_set():
                chunk = conn.upstream.recv(65536)
                if not chunk:
                    break
                if conn.silent.is_set():
                    continue
                if conn.withhold is None:
                    conn.client.sendall(chunk)
                    continue
                buf += chunk
                out = b""
                while True:
                    end = buf.find(b"\r\n")
                    if end < 0:
                        break
                    line, buf = buf[:end + 2], buf[end + 2:]
                    if self._answer_done(conn.withhold, line):
                        if out:
                            conn.client.sendall(out)
                        conn.close()  # the server did it; the client never hears
                        return
                    if conn.withhold == "smtp":
                        continue  # part of the withheld multi-line reply
                    out += line
                if out:
                    conn.client.sendall(out)
        except OSError:
            pass
        conn.close()

    @staticmethod
    def _answer_done(withhold: str, line: bytes) -> bool:
        if withhold == "smtp":
            return re.match(rb"^\d{3} ", line) is not None  # the reply's last line
        return line.startswith(withhold.encode() + b" ")

    def close(self) -> None:
        """Stop accepting and forwarding; every thread is gone when this returns, so none
        can touch a file descriptor number the process reuses afterwards."""
        self.closed.set()
        self._admit.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress
        except OSError:
            pass
        self.kill_all()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)
        self.listener.close()

    def __enter__(self) -> CutProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
