"""The whole desk on servers as they are: Courier and Cyrus (personal namespace INBOX.,
separator "."), Dovecot with the same naming, and a server that must be refused.

The profile is the one the README shows (``team_folder = "HelpDesk/Log"``,
``sent_folder = "Sent"``): names land inside the namespace, Sent copies go where the
server keeps them, and nothing is ever APPENDed into a folder selected read-only
(Courier refuses that; replies then stayed ``accepted`` and every later sync failed).
"""

from __future__ import annotations

import email
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile
from test_replies import CUSTOMER_MAIL

from helpdesk.desk import Desk
from helpdesk.errors import MailError


@pytest.fixture(params=["courier", "cyrus", "dovecot_inbox_ns"])
def namespaced(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def folder_names(server: Any) -> set[str]:
    with server.session() as c:
        return {str(name) for _f, _d, name in c.list_folders()}


def test_sync_claim_reply_and_a_teammate_on_a_namespaced_server(
        namespaced: Any, smtp_sink: Any, tmp_path: Path) -> None:
    with namespaced.session() as c:
        c.append("INBOX", CUSTOMER_MAIL)
    a = Desk(make_profile(namespaced, tmp_path, "agent-a", smtp=smtp_sink))
    b = Desk(make_profile(namespaced, tmp_path, "agent-b", smtp=smtp_sink))
    a.sync_once()
    tid = a.tickets("all")[0]["id"]
    assert "INBOX.HelpDesk.Log" in folder_names(namespaced)  # inside the namespace
    result = a.reply(tid, "Bonjour Zoë, c'est réparé.", close=True)
    assert result["state"] == "sent", result
    assert len(smtp_sink.messages) == 1
    mid = str(email.message_from_bytes(smtp_sink.messages[0][2])["Message-ID"])
    sent = [raw for _u, raw, _f, _d in namespaced.messages("INBOX.Sent")]
    assert [str(email.message_from_bytes(r)["Message-ID"]) for r in sent] == [mid]
    assert a.outbox() == []
    a.sync_once()  # later syncs keep working (they failed on Courier before)
    assert a.status()["last_error"] is None
    # The teammate sees the reply in the ticket and the ticket closed.
    b.sync_once()
    shown = b.ticket(tid)
    assert [m["direction"] for m in shown["messages"]] == ["in", "out"]
    assert shown["status"] == "closed"
    # A claim by one is seen by the other, decided by the log on this server.
    b.reopen(tid)
    assert b.claim(tid).agent == "agent-b"
    a.sync_once()
    assert a.holder(tid).agent == "agent-b"
    a.close()
    b.close()


def test_a_server_with_broken_uid_search_is_refused_plainly(imap4d: Any,
                                                           tmp_path: Path) -> None:
    with imap4d.session() as c:
        c.append("INBOX", CUSTOMER_MAIL)
    desk = Desk(make_profile(imap4d, tmp_path))
    with pytest.raises(MailError, match="answers UID SEARCH wrongly"):
        desk.sync_once()
    assert desk.status()["messages"] == 0  # never half-used
    assert "UID SEARCH" in (desk.status()["last_error"] or "")
    desk.close()
