"""Teamwork from the command line, two desktops as separate processes at once: tags,
assignment and snooze changed concurrently end identical on every replica."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import GO_SCRIPT
from test_sync import ROOT, fill, write_profile
from test_teamwork import teamwork_state


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def at_once(tmp: Path, name: str, runs: list[tuple[Path, list[str]]]) -> list[tuple[int, str]]:
    """Start every command, then let them all go at the same instant."""
    go = tmp / f"go-{name}"
    procs = [subprocess.Popen([sys.executable, "-c", GO_SCRIPT, str(go), "--config", str(cfg),
                               *args], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for cfg, args in runs]
    go.touch()
    out = []
    for p in procs:
        _o, err = p.communicate(timeout=120)
        out.append((p.returncode, err))
    return out


@pytest.mark.parametrize("kind", ["dovecot", "pymap"])
def test_concurrent_tag_assign_snooze_from_two_processes(kind: str, tmp_path: Path,
                                                         request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue("dovecot" if kind == "dovecot" else "pymap_server")
    fill(server, 12)
    ca, cb = (write_profile(server, tmp_path, agent) for agent in ("agent-a", "agent-b"))
    for cfg in (ca, cb):
        assert cli(cfg, "sync", "--once").returncode == 0
    tid = json.loads(cli(ca, "tickets", "--json").stdout)[0]["id"]
    assert cli(ca, "tag", tid, "--add", "billing").returncode == 0
    assert cli(cb, "sync", "--once").returncode == 0
    rounds = {
        "tags": [(ca, ["tag", tid, "--add", "urgent", "--remove", "billing"]),
                 (cb, ["tag", tid, "--add", "billing", "--remove", "urgent"])],
        "assign": [(ca, ["assign", tid, "agent-a"]), (cb, ["unassign", tid])],
        "snooze": [(ca, ["snooze", tid, "--for", "2h"]), (cb, ["unsnooze", tid])],
    }
    for name, runs in rounds.items():
        results = at_once(tmp_path, name, runs)
        assert all(code == 0 for code, _e in results), results
    shown = []
    for cfg in (ca, cb):
        assert cli(cfg, "sync", "--once").returncode == 0
        shown.append(json.loads(cli(cfg, "show", tid, "--json").stdout))
    keys = ("tags", "assignee", "snoozed_until")
    assert {k: shown[0][k] for k in keys} == {k: shown[1][k] for k in keys}
    # Whichever event the server took last won, per tag and per register.
    assert shown[0]["tags"] in (["urgent"], ["billing"])
    assert shown[0]["assignee"] in ("agent-a", None)
    assert teamwork_state(tmp_path / "agent-a.sqlite3") == \
        teamwork_state(tmp_path / "agent-b.sqlite3")


def test_cli_contract_notes_views_tags_spam(dovecot: Any, tmp_path: Path) -> None:
    with dovecot.session() as c:
        c.append("INBOX", b"From: zoe@customer.example\r\nSubject: Invoice wrong\r\n"
                          b"Message-ID: <i1@customer.example>\r\n\r\nPlease fix.\r\n")
        c.append("INBOX", b"From: bulk@spam.example\r\nSubject: Pills\r\n"
                          b"Message-ID: <p1@spam.example>\r\n\r\nBuy.\r\n")
    ca, cb = (write_profile(dovecot, tmp_path, agent) for agent in ("agent-a", "agent-b"))
    for cfg in (ca, cb):
        cli(cfg, "sync", "--once")
    rows = {t["customer"]: t for t in json.loads(cli(ca, "tickets", "--json").stdout)}
    tid, junk = rows["zoe@customer.example"]["id"], rows["bulk@spam.example"]["id"]
    assert {"assignee", "snoozed_until", "tags"} <= set(rows["zoe@customer.example"])
    out = cli(ca, "note", tid, "--text", "Check the \u202econtract @agent-b", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["mentions"] == ["agent-b"]
    assert cli(ca, "assign", tid, "agent-b").returncode == 0
    assert cli(ca, "tag", tid, "--add", "billing").returncode == 0
    cli(cb, "sync", "--once")
    shown = json.loads(cli(cb, "show", tid, "--json").stdout)
    assert [set(n) for n in shown["notes"]] == [{"id", "agent", "text", "at", "mentions"}]
    assert shown["assignee"] == "agent-b" and shown["tags"] == ["billing"]
    plain = cli(cb, "show", tid)
    assert "internal note by agent-a" in plain.stdout and "\u202e" not in plain.stdout
    for view in ("mine", "mentions"):
        listed = json.loads(cli(cb, "tickets", "--view", view, "--json").stdout)
        assert [t["id"] for t in listed] == [tid], view
    assert [t["id"] for t in json.loads(cli(cb, "mine", "--json").stdout)] == [tid]
    assert [t["id"] for t in json.loads(
        cli(cb, "tickets", "--view", "all", "--tag", "billing", "--json").stdout)] == [tid]
    assert [t["id"] for t in json.loads(
        cli(cb, "tickets", "--view", "all", "--search", "tag:billing", "--json").stdout)] == [tid]
    assert json.loads(cli(cb, "tags", "--json").stdout) == [{"tag": "billing", "count": 1}]
    assert cli(cb, "snooze", tid, "--for", "3d").returncode == 0
    snoozed = json.loads(cli(cb, "tickets", "--view", "snoozed", "--json").stdout)
    assert [t["id"] for t in snoozed] == [tid] and snoozed[0]["snoozed_until"]
    assert cli(cb, "unsnooze", tid).returncode == 0
    assert cli(cb, "spam", junk).returncode == 0
    spam = json.loads(cli(cb, "tickets", "--view", "spam", "--json").stdout)
    assert [t["id"] for t in spam] == [junk] and spam[0]["status"] == "closed"
    assert cli(cb, "unspam", "bulk@spam.example").returncode == 0
    # Bad input: one plain line, no traceback, nothing appended.
    for args, words in ((["snooze", tid, "--for", "soon"], "not a duration"),
                        (["snooze", tid, "--until", "24/12/2026"], "not a time"),
                        (["tag", tid, "--add", "a b"], "not a tag"),
                        (["note", tid, "--text", "  "], "needs some text"),
                        (["unspam", "nobody@x.example"], "not treated as spam"),
                        (["assign", "zzzzzzzz", "agent-a"], "No ticket")):
        bad = cli(ca, *args)
        assert bad.returncode == 1 and words in bad.stderr, (args, bad.stderr)
        assert "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1
