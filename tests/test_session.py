"""The serial worker that owns every change (helpdesk/session.py), on a real Dovecot."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile, wait_until
from test_sync import fill

from helpdesk.changes import Changes
from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError
from helpdesk.mail.sync import SyncResult


def test_an_intent_runs_between_two_batches_of_a_long_sync(dovecot: Any,
                                                           tmp_path: Path) -> None:
    fill(dovecot, 3)
    desk = Desk(make_profile(dovecot, tmp_path, batch_size=10))
    desk.sync_once()
    tid = desk.tickets("all")[0]["id"]
    fill(dovecot, 200, seed=3)
    batches: list[int] = []
    submitted = threading.Event()

    def hook(batch: SyncResult) -> Changes:
        batches.append(batch.new_messages)
        if len(batches) == 2:
            assert submitted.wait(10)  # the claim is queued while the sync is under way
        return Changes(set(), set())

    desk.session.batch_hooks.append(hook)
    sync = threading.Thread(target=desk.sync_once)
    sync.start()
    wait_until(lambda: len(batches) >= 1, what="the first batch")
    seen = desk.session.submit(lambda: len(batches))
    claim = desk.session.submit(lambda: desk.claim(tid))
    submitted.set()
    assert seen.result(timeout=30) == 2  # between the second batch and the third
    assert claim.result(timeout=30).agent == "agent-a"
    sync.join(timeout=60)
    assert len(batches) >= 20 and desk.status()["messages"] == 203
    desk.close()


def test_a_sync_asked_for_by_an_intent_during_a_pass_waits_for_the_pass(
        dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 30)
    desk = Desk(make_profile(dovecot, tmp_path, batch_size=5))
    answers: list[Changes] = []

    def hook(batch: SyncResult) -> Changes:
        if not answers:
            answers.append(desk.sync_once())  # as a GUI intent between batches would
        return Changes(set(), set())

    desk.session.batch_hooks.append(hook)
    after: list[BaseException | None] = []
    desk.session.on_pass = lambda _changes, error: after.append(error)
    desk.sync_once()
    assert answers == [Changes(set(), set())]  # no second pass inside the first
    wait_until(lambda: after == [None], what="the pass that follows it")
    assert desk.status()["messages"] == 30
    desk.close()


@pytest.mark.allow_log_errors  # the traceback goes to the log, by design
def test_a_failure_on_the_worker_reaches_the_caller_as_a_plain_sentence(
        dovecot: Any, tmp_path: Path) -> None:
    desk = Desk(make_profile(dovecot, tmp_path))

    def broken() -> None:
        raise KeyError("internal detail")

    with pytest.raises(HelpdeskError, match="Unexpected problem") as caught:
        desk.session.call(broken)
    assert isinstance(caught.value.__cause__, KeyError)  # kept for the log
    assert desk.session.call(lambda: 42) == 42  # the worker lives on
    desk.close()


def test_closing_during_a_long_sync_stops_it_soon_and_keeps_what_was_stored(
        dovecot: Any, tmp_path: Path) -> None:
    fill(dovecot, 300)
    desk = Desk(make_profile(dovecot, tmp_path, batch_size=10))
    batches: list[int] = []
    desk.session.batch_hooks.append(lambda b: batches.append(1) or Changes(set(), set()))
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            desk.sync_once()
        except HelpdeskError as exc:
            errors.append(exc)

    thread = threading.Thread(target=sync)
    thread.start()
    wait_until(lambda: len(batches) >= 2, what="two batches")
    desk.close()
    thread.join(timeout=30)
    assert errors and "closing" in str(errors[0])
    stored = len(batches)
    assert stored < 30  # stopped well before the end
    again = Desk(make_profile(dovecot, tmp_path, batch_size=10))
    again.sync_once()  # the rest, each message once
    assert again.status()["messages"] == 300
    again.close()
