"""The demo server process: pymap and an SMTP sink in one asyncio loop."""


from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from helpdesk.demo.seed import fill_mailbox, load_demo_messages, seed_team_log, team_seed
from helpdesk.demo.starters import free_port, pymap_args, received
from helpdesk.demo.state import (
    DEMO_PASSWORD,
    DEMO_USER,
    HOST,
    OUTBOX_DIR,
    RESOURCES,
    WATCH_INTERVAL,
    DemoError,
    _remove_state_if,
    _write_state,
    log,
    read_state,
)
from helpdesk.demo.supervisor import _smtp_ident

# --- the server process ------------------------------------------------------------


async def _start_imap(stack: AsyncExitStack, username: str, password: str) -> int:
    """Run pymap's dict backend + IMAP service in this loop; returns the port."""
    from pymap.backend.dict import DictBackend
    from pymap.imap import IMAPService

    # The same arguments the tests' pymap process parses (see pymap.main).
    parser = argparse.ArgumentParser(prog="pymap")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--no-service", dest="skip_services", action="append", default=[])
    parser.set_defaults(passlib_cfg=None)
    backends = parser.add_subparsers(dest="backend", required=True)
    DictBackend.add_subparser("dict", backends)
    IMAPService.add_arguments(parser)
    last_error: OSError | None = None
    for _attempt in range(10):
        port = free_port()
        args = parser.parse_args(pymap_args(HOST, port, username, password))
        backend, config = await DictBackend.init(args)
        config.apply_context()
        service = IMAPService(backend, config)
        try:
            await backend.start(stack)
            await service.start(stack)
        except OSError as exc:  # lost the race for the free port
            last_error = exc
            continue
        return port
    raise DemoError(f"Could not start the demo IMAP server: {last_error}")


class _SinkHandler:
    """aiosmtpd handler: accept everything, log it, keep a copy in the outbox dir."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail_from, rcpts, raw = received(envelope)
        self.messages.append((mail_from, rcpts, raw))
        subject = ""
        m = re.search(rb"^Subject:[ \t]*([^\r\n]*)", raw, re.MULTILINE | re.IGNORECASE)
        if m:
            subject = m.group(1).decode("ascii", "replace")
        log.info("SMTP sink: message %d from %s to %s, %d bytes, subject %r",
                 len(self.messages), mail_from, ", ".join(rcpts), len(raw), subject)
        try:
            self.outbox.mkdir(parents=True, exist_ok=True)
            (self.outbox / f"{len(self.messages):04d}.eml").write_bytes(raw)
        except OSError as exc:
            log.warning("SMTP sink: could not save a copy: %s", exc)
        return "250 Message accepted for delivery"


async def _start_smtp(stack: AsyncExitStack, server_id: str, outbox: Path) -> int:
    from aiosmtpd.smtp import SMTP

    handler = _SinkHandler(outbox)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", ident=_smtp_ident(server_id),
                     enable_SMTPUTF8=True),
        host=HOST, port=0)

    async def close() -> None:
        server.close()
        await server.wait_closed()

    stack.push_async_callback(close)
    port: int = server.sockets[0].getsockname()[1]
    return port


async def _watch(directory: Path, server_id: str, stop: asyncio.Event) -> None:
    """Return when asked to stop, or when the state file no longer names this server."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_INTERVAL)
        if stop.is_set():
            break
        state = read_state(directory)
        if state is None or state.get("server_id") != server_id:
            log.info("state file removed or replaced: stopping")
            return
    log.info("asked to stop")


async def serve(directory: Path, server_id: str, resources: Path = RESOURCES) -> None:
    """Run the demo servers until SIGTERM/SIGINT or until the state file goes away."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            signal.signal(signum, lambda *_a: loop.call_soon_threadsafe(stop.set))
    async with AsyncExitStack() as stack:
        t0 = time.monotonic()
        imap_port = await _start_imap(stack, DEMO_USER, DEMO_PASSWORD)
        smtp_port = await _start_smtp(stack, server_id, directory / OUTBOX_DIR)
        messages = load_demo_messages(resources)
        count = await asyncio.to_thread(fill_mailbox, HOST, imap_port, DEMO_USER,
                                        DEMO_PASSWORD, messages)
        await asyncio.to_thread(seed_team_log, HOST, imap_port, DEMO_USER, DEMO_PASSWORD,
                                messages, team_seed(resources))
        state = {
            "server_id": server_id, "pid": os.getpid(), "host": HOST,
            "imap_port": imap_port, "smtp_port": smtp_port,
            "username": DEMO_USER, "password": DEMO_PASSWORD,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "messages": count,
        }
        _write_state(directory, state)
        log.info("demo server %s ready in %.2f s: IMAP %s:%d (login %s / %s), SMTP %s:%d, "
                 "%d messages", server_id, time.monotonic() - t0, HOST, imap_port, DEMO_USER,
                 DEMO_PASSWORD, HOST, smtp_port, count)
        try:
            await _watch(directory, server_id, stop)
        finally:
            _remove_state_if(directory, server_id)
    log.info("demo server %s stopped", server_id)
