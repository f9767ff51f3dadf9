"""``python -m helpdesk.demo serve|start|status|stop``."""


from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from helpdesk.demo.servers import serve
from helpdesk.demo.state import demo_dir, log, read_state
from helpdesk.demo.supervisor import ensure_demo_servers, servers_answer, stop_demo_servers
from helpdesk.errors import HelpdeskError

# --- command line ------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpdesk.demo",
                                     description="Run or control the demo mail servers.")
    sub = parser.add_subparsers(dest="command", required=True)
    sv = sub.add_parser("serve", help="run the servers in the foreground (used internally)")
    sv.add_argument("--dir", type=Path, default=None, help="state dir (default: the usual)")
    sv.add_argument("--server-id", default=None)
    sub.add_parser("start", help="start the servers in the background unless running")
    sub.add_parser("status", help="show the running servers")
    sub.add_parser("stop", help="stop the running servers")
    args = parser.parse_args(argv)

    if args.command == "serve":
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        log.setLevel(logging.INFO)
        directory = args.dir or demo_dir()
        directory.mkdir(parents=True, exist_ok=True)
        asyncio.run(serve(directory, args.server_id or secrets.token_hex(8)))
        return 0
    try:
        if args.command == "start":
            info = ensure_demo_servers()
            print(f"{'started' if info.started else 'running'}: IMAP {info.host}:"
                  f"{info.imap_port}, SMTP {info.host}:{info.smtp_port}, login "
                  f"{info.username} / {info.password} (pid {info.pid}, log {info.log_file})")
        elif args.command == "status":
            state = read_state()
            if state is None or not servers_answer(state):
                print("not running")
                return 1
            print(json.dumps(state, indent=2))
        elif args.command == "stop":
            print("stopped" if stop_demo_servers() else "not running")
    except HelpdeskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
