"""The metrics dashboard renders offscreen from a seeded store, compares periods, exports CSV."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot
from test_metrics import Seed, V, W, X, Y, Z, at, offline_desk, seed_store

from helpdesk.changes import Changes
from helpdesk.desk import Desk
from helpdesk.errors import HelpdeskError
from ui.dashboard import DashboardWindow, fmt_duration, trend
from ui.worker import DeskService


def test_trend_words_and_tones() -> None:
    assert trend(25, 10, "points", "higher") == ("▲ 15 pts", "good")
    assert trend(1800, 3600, "relative", "lower") == ("▼ 50%", "good")
    assert trend(0.5, 0.25, "rate", "lower") == ("▲ 25 pts", "bad")
    assert trend(12, 10, "relative", None) == ("▲ 20%", "neutral")
    assert trend(None, 3, "relative", "lower") == ("no comparison", "neutral")
    assert trend(4, 0, "relative", None) == ("new", "neutral")
    assert trend(0.501, 0.5, "rate", "higher") == ("no change", "neutral")


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    d = offline_desk(tmp_path)
    seed_store(d)
    Seed(d).event("profile", "ana@customer.example", at(5, 1), heard_from=" Newspaper  ad")
    d.metrics.after_sync({X, Y, Z, W, V})
    yield d
    d.close()


@pytest.fixture
def window(qtbot: QtBot, desk: Desk) -> Iterator[DashboardWindow]:
    service = DeskService(desk)
    win = DashboardWindow(service)
    qtbot.addWidget(win)
    win.show()
    yield win
    service.stop()


def test_dashboard_shows_the_period_with_trends_and_charts(qtbot: QtBot,
                                                           window: DashboardWindow,
                                                           tmp_path: Path) -> None:
    with qtbot.waitSignal(window.loaded, timeout=10000):
        window.set_period(date(2026, 1, 5), date(2026, 1, 11))
    cards = window.cards
    # The figures of tests/test_metrics.py::test_store_metrics_by_hand.
    assert cards["nps"].value.text() == "+100"
    assert "3 responses" in cards["nps"].detail.text()
    assert cards["first_response"].value.text() == fmt_duration(1800)
    assert cards["resolution"].value.text() == fmt_duration(5400)
    assert cards["fcr"].value.text() == "100%"
    assert cards["opened"].value.text() == "4"
    # Nothing happened in the week before: no comparison, or "new" for counts.
    assert cards["nps"].trend.text() == "nothing to compare with"
    assert cards["opened"].trend.text().startswith("new")
    assert cards["unclaimed"].trend.text() == ""  # a snapshot has no trend
    assert window.vip_cards["nps"].value.text() == "+100"
    assert window.vip_cards["opened"].value.text() == "1"
    assert "newspaper ad (1)" in window.heard.text()
    assert "2025-12-29" in window.status.text()

    volume = window.volume_chart.chart().series()  # type: ignore[attr-defined]
    assert len(volume) == 1
    opened, closed = volume[0].barSets()
    assert [opened.at(0), closed.at(0)] == [4, 1]
    nps_line = window.nps_chart.chart().series()[0]  # type: ignore[attr-defined]
    assert [(p.x(), p.y()) for p in nps_line.points()] == [(0, 100)]
    assert not window.grab().isNull()

    out = tmp_path / "metrics.csv"
    window.export_csv(out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "metric,2026-01-05..2026-01-11,2025-12-29..2026-01-04"
    assert "nps.score,100," in lines
    assert lines[-1] == "2026-01-05,4,1,100,1800"

    # Two weeks: the previous period is the two weeks before, trends compare with it.
    with qtbot.waitSignal(window.loaded, timeout=10000):
        window.set_period(date(2026, 1, 12), date(2026, 1, 25))
    assert cards["nps"].value.text() == "–"
    assert cards["opened"].trend.text().startswith("▼ 100%")


def test_presets_and_refresh_after_team_changes(qtbot: QtBot, window: DashboardWindow) -> None:
    qtbot.waitUntil(lambda: window.report is not None, timeout=10000)
    today = datetime.now(UTC).date()
    assert window.period() == (today - timedelta(days=6), today)  # "Last 7 days"
    window.preset.setCurrentIndex(1)
    assert window.period() == (today - timedelta(days=27), today)
    window.service.changed.emit(Changes({X}, set()))
    assert window._refresh_timer.isActive()


def test_errors_are_shown_not_raised(qtbot: QtBot, window: DashboardWindow, desk: Desk,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_a: Any) -> Any:
        raise HelpdeskError("The database is busy; try again.")

    monkeypatch.setattr(desk.metrics, "compare", broken)
    window.set_period(date(2026, 1, 5), date(2026, 1, 11))
    qtbot.waitUntil(lambda: "busy" in window.status.text(), timeout=10000)
    assert window.status.text().startswith("Could not compute the metrics")
