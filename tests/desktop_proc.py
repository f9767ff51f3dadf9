"""One desktop in its own process, for tests of several desktops at once.

``python tests/desktop_proc.py SPEC.json``: SPEC holds ``server`` (host, port, user,
password), ``smtp`` (host, port; optional), ``agent``, ``db``, ``ready`` (written after
a first sync), ``go`` (a file to wait for, so every process starts its sync at the same
instant) and ``passes``. It syncs that many
times and prints one JSON line: what this desktop folded (``handoffs``, ``digests``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import make_profile

from helpdesk.desk import Desk


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    server = SimpleNamespace(host=spec["server"]["host"], port=spec["server"]["port"],
                             users={spec["server"]["user"]: spec["server"]["password"]})
    smtp = SimpleNamespace(**spec["smtp"]) if spec.get("smtp") else None
    profile = make_profile(server, Path(spec["dir"]), spec["agent"], smtp=smtp,
                           db_name=spec["db"])
    desk = Desk(profile)
    try:
        desk.sync_once()  # the mail and the log so far, before the boundary
        Path(spec["ready"]).write_text("ready")
        go = Path(spec["go"])
        deadline = time.monotonic() + 60
        while not go.exists():  # a start line for every process (not a timed wait)
            if time.monotonic() > deadline:
                return 2
            time.sleep(0.005)
        for _ in range(int(spec.get("passes", 1))):
            desk.sync_once()
        with desk.store.read() as conn:
            handoffs = [list(r) for r in conn.exec_driver_sql(
                "SELECT ticket_id, agent, uid, day FROM rota_handoffs ORDER BY ticket_id")]
            digests = [list(r) for r in conn.exec_driver_sql(
                "SELECT period, message_id, agent FROM digests ORDER BY period")]
        print(json.dumps({"handoffs": handoffs, "digests": digests}))
    finally:
        desk.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
