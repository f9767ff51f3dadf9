"""The built-in demo: a shared support mailbox on loopback, filled with sample mail.

``python main.py --demo`` calls :func:`demo_profile`, which makes sure a demo
server process is running (:func:`ensure_demo_servers`) and returns a profile
pointing at it. The server process (``python -m helpdesk.demo serve``) runs,
in one asyncio loop:

* pymap's in-memory ``dict`` backend as a plain-text IMAP server on
  127.0.0.1. It has exactly one login (``support@lumen.example`` /
  ``demopass``), the hierarchy delimiter is ``/``, and it starts with INBOX
  only: ``Sent`` is created here; ``CREATE HelpDesk/Log`` makes the parent
  ``HelpDesk`` as a ``\\Noselect`` folder by itself;
* an SMTP sink (aiosmtpd) that accepts every message, logs it and keeps a
  copy under ``<state dir>/outbox/``; nothing is delivered anywhere.

The mailbox is filled over IMAP APPEND from ``resources/demo/``: ``mail/*.eml``
go to INBOX, ``sent/*.eml`` to Sent, in file-name order. All dates are shifted
by one offset so that the newest message is about an hour old; the shifted
date is also the APPEND date, so INTERNALDATE matches the Date header.

The process is detached from the app (new session, output to a log file), so a
second ``--demo --agent NAME`` window joins the same server and both windows
see each other's claims. It records itself in ``<state dir>/state.json``
(ports, pid, a random ``server_id``) and exits on SIGTERM or as soon as that
file is removed or names another server. ``python -m helpdesk.demo stop``
stops it; ``status`` shows it.

The state dir is ``$HELPDESK_DEMO_DIR``, else ``<user runtime dir>/helpdesk-demo``.
Demo databases live in ``$HELPDESK_DEMO_DATA``, else the user data dir, as
``demo-<agent>.sqlite3``. Because the in-memory server comes back empty with
new UIDVALIDITYs after a restart, each database has a ``.server`` sidecar with
the id of the server it was synced from, and is deleted when that differs.

This package is Qt-free; pymap and aiosmtpd are imported only by the server
(``servers``). ``state`` holds the state file, ``supervisor`` starts and stops the
process, ``seed`` fills the mailbox.
"""

from helpdesk.demo.seed import load_demo_messages, shift_dates, team_seed
from helpdesk.demo.state import _CHILDREN, DemoError, DemoInfo, read_state
from helpdesk.demo.supervisor import demo_profile, ensure_demo_servers, stop_demo_servers

__all__ = ["_CHILDREN", "DemoError", "DemoInfo", "demo_profile", "ensure_demo_servers",
           "load_demo_messages", "read_state", "shift_dates", "stop_demo_servers", "team_seed"]
