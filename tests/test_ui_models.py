"""Item models: qtmodeltester on every model; the lazy ticket model's fetch behaviour."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytestqt.modeltest import ModelTester
from pytestqt.qtbot import QtBot
from test_ui_support import *  # noqa: F403 (fixtures: filled_dovecot)
from test_ui_support import synced_desk

from ui.models import COUNT_ROLE, ID_ROLE, ROW_ROLE, VIEWS, Col, TicketModel, ViewsModel
from ui.worker import DeskService


def test_ticket_model_on_a_real_desk_passes_the_model_tester(
        qtbot: QtBot, qtmodeltester: ModelTester, filled_dovecot: Any, tmp_path: Path) -> None:
    desk = synced_desk(filled_dovecot, tmp_path)
    service = DeskService(desk)
    try:
        def fetch(ids: list[str], done: Callable[[Any], None],
                  failed: Callable[[str], None]) -> None:
            service.run(lambda d: d.ticket_rows(ids), on_done=done, on_error=failed)

        model = TicketModel(fetch, desk.agent)
        qtmodeltester.check(model)  # empty
        ids = desk.ticket_ids("all")
        assert len(ids) > 5
        model.set_ids(ids)
        qtmodeltester.check(model)  # rows not fetched yet: placeholders
        qtbot.waitUntil(lambda: all(model.cached(t) for t in ids), timeout=10_000)
        qtmodeltester.check(model)  # with data
        rows = desk.ticket_rows(ids)
        for r, tid in enumerate(ids):
            assert model.data(model.index(r, Col.SUBJECT)) == rows[tid]["subject"]
            assert model.data(model.index(r, 0), ID_ROLE) == tid
        # A re-ordering keeps persistent indexes on the same tickets.
        keep = model.index(2, 0)
        from PySide6.QtCore import QPersistentModelIndex
        p = QPersistentModelIndex(keep)
        model.set_ids(list(reversed(ids)))
        assert model.data(model.index(p.row(), 0), ID_ROLE) == ids[2]
        qtmodeltester.check(model)
    finally:
        service.stop()
        desk.close()


class FakeRows:
    """Records fetches; answers when told (pure model logic, no core involved)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.pending: list[tuple[list[str], Callable[[Any], None]]] = []

    def __call__(self, ids: list[str], done: Callable[[Any], None],
                 failed: Callable[[str], None]) -> None:
        self.calls.append(list(ids))
        self.pending.append((list(ids), done))

    def answer(self, subject: str = "s") -> None:
        pending, self.pending = self.pending, []
        for ids, done in pending:
            done({t: {"id": t, "subject": f"{subject} {t}", "vip": 0} for t in ids})


def test_rows_are_fetched_in_chunks_once_and_refetched_when_stale(
        qtbot: QtBot, qtmodeltester: ModelTester) -> None:
    fake = FakeRows()
    model = TicketModel(fake, "me")
    ids = [f"t{i}" for i in range(10_000)]
    model.set_ids(ids)
    model.data(model.index(5, Col.SUBJECT))
    model.data(model.index(6, Col.CUSTOMER))
    qtbot.waitUntil(lambda: bool(fake.calls))
    assert fake.calls == [ids[:TicketModel.CHUNK]]  # one chunk, asked once
    assert model.data(model.index(5, Col.SUBJECT)) == "Loading…"
    with qtbot.waitSignal(model.dataChanged):
        fake.answer()
    assert model.data(model.index(5, Col.SUBJECT)) == "s t5"
    model.data(model.index(7, Col.SUBJECT))
    qtbot.wait(5)
    assert len(fake.calls) == 1  # cached
    model.data(model.index(9_500, Col.SUBJECT))
    qtbot.waitUntil(lambda: len(fake.calls) == 2)
    assert fake.calls[1][0] == "t9440" and len(fake.calls[1]) == TicketModel.CHUNK
    fake.answer()
    # A change marks rows stale: the old row stays visible while a fresh one is fetched.
    model.invalidate({"t5"})
    assert model.data(model.index(5, Col.SUBJECT)) == "s t5"
    qtbot.waitUntil(lambda: len(fake.calls) == 3)
    assert fake.calls[2] == ["t5"]
    fake.answer("new")
    assert model.data(model.index(5, Col.SUBJECT)) == "new t5"
    assert model.data(model.index(5, 0), ROW_ROLE)["id"] == "t5"
    # The cache stays bounded.
    assert len(model._cache) <= TicketModel.CACHE_LIMIT


def test_views_model_passes_the_model_tester(qtmodeltester: ModelTester) -> None:
    model = ViewsModel()
    qtmodeltester.check(model)
    model.set_counts({key: i * 3 for i, (key, _l, _i) in enumerate(VIEWS)})
    qtmodeltester.check(model)
    assert model.rowCount() == len(VIEWS)
    assert model.data(model.index(model.row_of("vip")), COUNT_ROLE) == 6
    assert "VIP" in model.data(model.index(model.row_of("vip")))
