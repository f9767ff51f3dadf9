"""The service-metrics dashboard: a period's numbers with trends, small charts, CSV export.

Everything comes from ``desk.metrics.compare(since, until)`` run on the service's
worker (never on the main thread); the window only formats it. Trends compare
with the period of the same length just before. Definitions live in
:mod:`helpdesk.metrics` and are repeated briefly in each card's tooltip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDate, QMargins, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from helpdesk.metrics import metrics_csv
from ui import style
from ui.format import duration
from ui.style import C
from ui.worker import DeskService

try:
    from PySide6.QtCharts import (
        QBarCategoryAxis,
        QBarSeries,
        QBarSet,
        QChart,
        QChartView,
        QLineSeries,
        QValueAxis,
    )
    HAVE_CHARTS = True
except ImportError:  # PySide6-Addons missing: numbers only
    HAVE_CHARTS = False

__all__ = ["DashboardWindow", "trend"]

PRESETS: list[tuple[str, int]] = [("Last 7 days", 7), ("Last 4 weeks", 28),
                                  ("Last 13 weeks", 91), ("Last 12 months", 365),
                                  ("Custom", 0)]
REFRESH_DELAY_MS = 2000  # team changes arrive in bursts: recompute once they settle


# --- formatting (pure) ------------------------------------------------------------------

def fmt_duration(seconds: float | None) -> str:
    return "–" if seconds is None else duration(timedelta(seconds=seconds))


def fmt_rate(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def fmt_nps(value: int | None) -> str:
    return "–" if value is None else f"{value:+d}"


def fmt_count(value: int | None) -> str:
    return "–" if value is None else str(value)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def trend(current: float | None, previous: float | None, kind: str,
          better: str | None) -> tuple[str, str]:
    """(text, tone) for a change: tone is good | bad | neutral.

    ``kind``: "points" (NPS), "rate" (fractions, shown in percentage points),
    "relative" (durations and counts, shown in percent). ``better``: "higher",
    "lower" or None (a count where neither direction is good).
    """
    if current is None or previous is None:
        return "no comparison", "neutral"
    delta = current - previous
    if kind == "relative":
        if previous == 0:
            return ("no change" if delta == 0 else "new"), "neutral"
        shown = f"{abs(delta) / previous * 100:.0f}%"
    elif kind == "rate":
        shown = f"{abs(delta) * 100:.0f} pts"
    else:
        shown = f"{abs(delta):.0f} pts"
    if shown.startswith("0"):
        return "no change", "neutral"
    arrow = "▲" if delta > 0 else "▼"
    tone = "neutral" if better is None else \
        ("good" if (delta > 0) == (better == "higher") else "bad")
    return f"{arrow} {shown}", tone


@dataclass(frozen=True)
class CardSpec:
    key: str
    title: str
    value: Callable[[dict[str, Any]], Any]
    fmt: Callable[[Any], str]
    detail: Callable[[dict[str, Any]], str]
    kind: str | None  # trend kind; None: no trend (a snapshot)
    better: str | None
    tip: str


def _dur_detail(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda r: f"p90 {fmt_duration(r[key]['p90'])} · {plural(r[key]['count'], 'ticket')}"


CARDS: list[CardSpec] = [
    CardSpec("nps", "NPS", lambda r: r["nps"]["score"], fmt_nps,
             lambda r: f"{plural(r['nps']['responses'], 'response')} · "
                       f"{r['nps']['promoters']} promoters · {r['nps']['detractors']} detractors",
             "points", "higher",
             "% of scores 9-10 minus % of scores 0-6; one answer per ticket (the latest)."),
    CardSpec("first_response", "First response", lambda r: r["first_response_seconds"]["median"],
             fmt_duration, _dur_detail("first_response_seconds"), "relative", "lower",
             "Median time from the customer's first message (server time) to our first "
             "reply. Auto-replies and bounces are not customer messages."),
    CardSpec("resolution", "Resolution", lambda r: r["resolution_seconds"]["median"],
             fmt_duration, _dur_detail("resolution_seconds"), "relative", "lower",
             "Median time from the first customer message to the final close, for tickets "
             "closed now (a reopened ticket counts up to its last close)."),
    CardSpec("fcr", "First-contact resolution", lambda r: r["first_contact_resolution"]["rate"],
             fmt_rate,
             lambda r: f"of {plural(r['first_contact_resolution']['count'], 'closed ticket')}",
             "rate", "higher",
             "Closed after exactly one reply, with no further customer message (or reopen) "
             "within the configured window after closing."),
    CardSpec("cared", "Felt we cared", lambda r: r["cared"]["rate"], fmt_rate,
             lambda r: f"{r['cared']['yes']} yes · {r['cared']['no']} no", "rate", "higher",
             "The agents' self-check when closing: did this customer feel we genuinely "
             "cared? The latest answer per ticket."),
    CardSpec("opened", "Tickets", lambda r: r["tickets"]["opened"], fmt_count,
             lambda r: f"{r['tickets']['closed']} closed · {r['tickets']['reopened']} reopened",
             "relative", None,
             "Tickets whose first customer message falls in the period; closed and "
             "reopened describe those tickets as they are now."),
    CardSpec("reopen", "Reopen rate", lambda r: r["reopen_rate"], fmt_rate,
             lambda r: "of tickets closed at least once", "rate", "lower",
             "Share of the period's closed tickets that were reopened at least once."),
    CardSpec("unclaimed", "Oldest unclaimed", lambda r: r["oldest_unclaimed_seconds"],
             fmt_duration, lambda r: "waiting right now", None, "lower",
             "Age of the oldest open ticket nobody holds (now, whatever the period)."),
]
VIP_CARDS = ("nps", "first_response", "resolution", "fcr", "opened")


class MetricCard(QFrame):
    """Title, big number, trend against the previous period, one line of detail."""

    def __init__(self, spec: CardSpec, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.setObjectName("metricCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet(f"#metricCard {{ background: {C.surface}; border: 1px solid "
                           f"{C.line}; border-radius: 8px; }}")
        self.setToolTip(spec.tip)
        self.title = QLabel(spec.title)
        self.title.setStyleSheet(f"color: {C.muted};")
        self.value = QLabel("–")
        self.value.setFont(style.font(self.font(), delta=8, bold=True))
        self.trend = QLabel("")
        self.detail = QLabel("")
        self.detail.setStyleSheet(f"color: {C.muted};")
        self.detail.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 10, 12, 10)
        lay.setSpacing(2)
        for w in (self.title, self.value, self.trend, self.detail):
            lay.addWidget(w)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def show_report(self, current: dict[str, Any], previous: dict[str, Any] | None) -> None:
        cur = self.spec.value(current)
        self.value.setText(self.spec.fmt(cur))
        self.detail.setText(self.spec.detail(current))
        if self.spec.kind is None or previous is None:
            self.trend.setText("")
            return
        text, tone = trend(cur, self.spec.value(previous), self.spec.kind, self.spec.better)
        colour = {"good": C.ok, "bad": C.error}.get(tone, C.muted)
        self.trend.setText("nothing to compare with" if text == "no comparison"
                           else f"{text} vs previous period")
        self.trend.setStyleSheet(f"color: {colour};")
        self.trend.setProperty("tone", tone)


def _week_label(iso: str) -> str:
    return date.fromisoformat(iso).strftime("%d %b")


class DashboardWindow(QWidget):
    """Service metrics for a chosen period (see the module docstring)."""

    loaded = Signal()  # a report is on screen

    def __init__(self, service: DeskService, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.service = service
        self.setWindowTitle("Service metrics")
        self.setWindowIcon(style.icon("chart"))
        self.resize(1100, 820)
        self.report: dict[str, Any] | None = None
        self._generation = 0
        self._loading = False

        self.preset = QComboBox()
        for label, days in PRESETS:
            self.preset.addItem(label, days)
        self.since = QDateEdit()
        self.until = QDateEdit()
        for edit in (self.since, self.until):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.dateChanged.connect(self._dates_edited)
        self.refresh_button = QPushButton(style.icon("refresh"), "Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.export_button = QPushButton(style.icon("download"), "Export CSV…")
        self.export_button.clicked.connect(self._ask_export)
        self.export_button.setEnabled(False)
        self.status = QLabel("")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setStyleSheet(f"color: {C.muted};")

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Period"))
        bar.addWidget(self.preset)
        bar.addWidget(self.since)
        bar.addWidget(QLabel("to"))
        bar.addWidget(self.until)
        bar.addWidget(self.refresh_button)
        bar.addStretch(1)
        bar.addWidget(self.status)
        bar.addWidget(self.export_button)

        self.cards = {spec.key: MetricCard(spec) for spec in CARDS}
        grid = QGridLayout()
        grid.setSpacing(10)
        for i, spec in enumerate(CARDS):
            grid.addWidget(self.cards[spec.key], i // 4, i % 4)
        self.vip_cards = {key: MetricCard(next(s for s in CARDS if s.key == key))
                          for key in VIP_CARDS}
        vip_row = QHBoxLayout()
        for card in self.vip_cards.values():
            vip_row.addWidget(card, 1)
        vip_title = QLabel("VIP customers")
        vip_title.setFont(style.font(self.font(), delta=2, bold=True))
        self.heard = QLabel("")
        self.heard.setWordWrap(True)
        self.heard.setTextFormat(Qt.TextFormat.PlainText)

        self.charts = QHBoxLayout()
        self.volume_chart = self._chart_view("Weekly volume")
        self.nps_chart = self._chart_view("NPS per week")
        self.response_chart = self._chart_view("First response per week (median)")

        root = QVBoxLayout(self)
        root.addLayout(bar)
        root.addLayout(grid)
        root.addWidget(vip_title)
        root.addLayout(vip_row)
        root.addWidget(self.heard)
        root.addLayout(self.charts, 1)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        service.changed.connect(lambda _c: self._refresh_timer.start())
        self.preset.currentIndexChanged.connect(self._preset_chosen)
        self._preset_chosen()

    # --- period ----------------------------------------------------------------------

    def period(self) -> tuple[date, date]:
        def day(edit: QDateEdit) -> date:
            d = edit.date()
            return date(d.year(), d.month(), d.day())

        return day(self.since), day(self.until)

    def set_period(self, since: date, until: date) -> None:
        """Show ``since``..``until`` (inclusive) and load it."""
        self._set_dates(since, until)
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(self.preset.findData(0))
        self.preset.blockSignals(False)
        self.refresh()

    def _set_dates(self, since: date, until: date) -> None:
        for edit, d in ((self.since, since), (self.until, until)):
            edit.blockSignals(True)
            edit.setDate(QDate(d.year, d.month, d.day))
            edit.blockSignals(False)

    def _preset_chosen(self) -> None:
        days = int(self.preset.currentData() or 0)
        if days:
            today = datetime.now(UTC).date()
            self._set_dates(today - timedelta(days=days - 1), today)
            self.refresh()

    def _dates_edited(self) -> None:
        self.preset.blockSignals(True)
        self.preset.setCurrentIndex(self.preset.findData(0))
        self.preset.blockSignals(False)
        self.refresh()

    # --- loading ---------------------------------------------------------------------

    def refresh(self) -> None:
        since, until = self.period()
        if since > until:
            self.status.setText("The period starts after it ends.")
            return
        self._generation += 1
        generation = self._generation
        self._loading = True
        self.status.setText("Computing…")
        self.service.read(lambda desk: desk.metrics.compare(since, until),
                         on_done=lambda r: self._show(generation, r),
                         on_error=lambda msg: self._failed(generation, msg))

    def _failed(self, generation: int, message: str) -> None:
        if generation != self._generation:
            return
        self._loading = False
        self.status.setText(f"Could not compute the metrics: {message}")
        self.status.setStyleSheet(f"color: {C.error};")

    def _show(self, generation: int, report: dict[str, Any]) -> None:
        if generation != self._generation:
            return  # an older request finished after a newer one was made
        self._loading = False
        self.report = report
        self.status.setStyleSheet(f"color: {C.muted};")
        self.status.setText(f"Compared with {report['previous_since']} to "
                            f"{report['previous_until']}" + (
                                ". The team history is still coming in: these figures are "
                                "incomplete until it is." if report.get("history_loading")
                                else ""))
        current, previous = report["current"], report["previous"]
        for card in self.cards.values():
            card.show_report(current, previous)
        for card in self.vip_cards.values():
            card.show_report(current["vip"], previous["vip"])
        heard = current["heard_from"]
        self.heard.setText("How new customers heard about us: " + (
            ", ".join(f"{k} ({v})" for k, v in heard.items()) if heard else "nothing recorded"))
        self.export_button.setEnabled(True)
        self._draw_charts(current["weekly"])
        self.loaded.emit()

    # --- charts ----------------------------------------------------------------------

    def _chart_view(self, title: str) -> QWidget:
        if not HAVE_CHARTS:
            label = QLabel(f"{title}: charts need PySide6-Addons (QtCharts).")
            label.setStyleSheet(f"color: {C.muted};")
            self.charts.addWidget(label)
            return label
        chart = QChart()
        chart.setTitle(title)
        chart.legend().setVisible(False)
        chart.setMargins(QMargins(4, 4, 4, 4))
        chart.setBackgroundRoundness(8)
        view = QChartView(chart)
        view.setRenderHint(QPainter.RenderHint.Antialiasing)
        view.setMinimumHeight(220)
        self.charts.addWidget(view, 1)
        return view

    def _draw_charts(self, weekly: dict[str, dict[str, Any]]) -> None:
        if not HAVE_CHARTS:
            return
        weeks = list(weekly)
        labels = [_week_label(w) for w in weeks]
        opened = QBarSet("Opened")
        closed = QBarSet("Closed")
        opened.setColor(QColor(C.accent))
        closed.setColor(QColor(C.ok))
        for w in weeks:
            opened.append(weekly[w]["opened"])
            closed.append(weekly[w]["closed"])
        bars = QBarSeries()
        bars.append(opened)
        bars.append(closed)
        top = max([weekly[w]["opened"] for w in weeks] + [1])
        self._fill(self.volume_chart, bars, labels, 0, top, legend=True)
        nps_line = QLineSeries()
        nps_line.setName("NPS")
        for i, w in enumerate(weeks):
            if weekly[w]["nps"] is not None:
                nps_line.append(i, weekly[w]["nps"])
        self._fill(self.nps_chart, nps_line, labels, -100, 100)
        medians = [(i, weekly[w]["first_response_median"]) for i, w in enumerate(weeks)
                   if weekly[w]["first_response_median"] is not None]
        longest = max([m for _i, m in medians] + [60])
        unit, per = (("minutes", 60) if longest <= 2 * 3600 else
                     ("hours", 3600) if longest <= 2 * 86400 else ("days", 86400))
        resp = QLineSeries()
        resp.setName(f"First response ({unit})")
        for i, m in medians:
            resp.append(i, m / per)
        self._fill(self.response_chart, resp, labels, 0, longest / per * 1.1)
        assert isinstance(self.response_chart, QChartView)
        self.response_chart.chart().setTitle(f"First response per week (median, {unit})")

    def _fill(self, view: QWidget, series: Any, labels: list[str], low: float, high: float,
              legend: bool = False) -> None:
        assert isinstance(view, QChartView)
        chart = view.chart()
        chart.removeAllSeries()
        for axis in chart.axes():
            chart.removeAxis(axis)
        chart.addSeries(series)
        x = QBarCategoryAxis()
        x.append(labels or [""])
        if len(labels) > 12:
            x.setLabelsAngle(-90)
        y = QValueAxis()
        y.setRange(low, high)
        y.applyNiceNumbers()
        y.setLabelFormat("%.0f" if high - low >= 4 else "%.1f")
        chart.addAxis(x, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(y, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(x)
        series.attachAxis(y)
        chart.legend().setVisible(legend)
        if isinstance(series, QLineSeries):
            series.setPointsVisible(True)

    # --- export ----------------------------------------------------------------------

    def csv_text(self) -> str:
        if self.report is None:
            return ""
        r = self.report
        return metrics_csv(r["current"], r["previous"],
                           labels=(f"{r['since']}..{r['until']}",
                                   f"{r['previous_since']}..{r['previous_until']}"))

    def export_csv(self, path: str | Path) -> None:
        """Write the shown report (and the previous period's) as CSV to ``path``."""
        Path(path).write_text(self.csv_text(), encoding="utf-8")

    def _ask_export(self) -> None:
        if self.report is None:
            return
        name = f"helpdesk-metrics-{self.report['since']}-{self.report['until']}.csv"
        path, _filter = QFileDialog.getSaveFileName(self, "Export metrics", name,
                                                    "CSV files (*.csv)")
        if not path:
            return
        try:
            self.export_csv(path)
        except OSError as exc:
            QMessageBox.warning(self, "Export metrics",
                                f"Could not write {path}: {exc.strerror or exc}.")
            return
        self.status.setText(f"Exported to {path}")
