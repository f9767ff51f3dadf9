"""A TCP proxy on loopback that can cut connections after N bytes (dropped-network tests)
and counts what the server sent (``down``)."""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class ChopProxy:
    """Forwards to (host, port); with ``cut_after(n)`` each connection dies after n bytes."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.limit: int | None = None
        self.down = 0  # bytes from the server to clients, all connections
        self.closed = threading.Event()
        self.conns: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self.threads.append(thread)
        thread.start()

    def cut_after(self, n: int | None) -> None:
        self.limit = n

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            limit = self.limit
            self._spawn(self._pump, upstream, client, limit, True)
            self._spawn(self._pump, client, upstream, None)

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None,
              downstream: bool = False) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[: max(0, limit - sent)])
                    break
                dst.sendall(data)
                sent += len(data)
                if downstream:
                    self.down += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        """Stop; every thread is gone when this returns, so none can touch a file
        descriptor number the process reuses afterwards (see tests/faults.py)."""
        self.closed.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress
        except OSError:
            pass
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self.threads):
            thread.join(timeout=5)
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass
        self.listener.close()

    def __enter__(self) -> ChopProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ChopProxy", "TracebackType"]
