"""The duty rota in the window: "On duty today" in the sidebar, the Rota… dialog (set the
rotation, take a day in one click, newcomers), Approvals… and the weekly digest view.

Everything shown comes from the core through the desk (reads on the read worker, changes
as intents); names, subjects and mail text are plain text everywhere (labels are
PlainText, tables and editors hold text, never markup).
"""

from __future__ import annotations

from typing import Any

import shiboken6
from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import (
    QDateEdit,
    QDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.worker import DeskService

WEEKDAY = {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri",
           "sat": "Sat", "sun": "Sun"}


def plain(text: str = "", name: str | None = None, wrap: bool = True) -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)  # team-log text is never markup
    label.setWordWrap(wrap)
    if name:
        label.setObjectName(name)
    return label


def duty_text(shown: dict[str, Any]) -> str:
    """"On duty today: kim" and the days ahead, for the sidebar."""
    if shown.get("rota") is None:
        return ""
    today = shown["today"]
    lines = [f"On duty today: {today['agent'] or 'nobody (day off)'}"]
    for d in shown["week"][1:]:
        lines.append(f"{WEEKDAY.get(d['weekday'], d['weekday'])}  {d['agent'] or '–'}"
                     + ("  (swapped)" if d["swapped"] else ""))
    return "\n".join(lines)


class DutyLabel(QLabel):
    """The sidebar's plain-text "On duty today" with the week ahead (hidden without a rota)."""

    def __init__(self, service: DeskService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.setObjectName("muted")
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(True)
        self.setContentsMargins(16, 6, 12, 4)
        self.hide()

    def refresh(self) -> None:
        def done(shown: dict[str, Any]) -> None:
            if not shiboken6.isValid(self):
                return
            text = duty_text(shown)
            self.setText(text)
            self.setVisible(bool(text))

        self.service.read(lambda d: d.rota.show(7), on_done=done, on_error=lambda _m: None)


class RotaDialog(QDialog):
    """Set the rotation for the team; the next two weeks with "Take this day"; newcomers."""

    changed = Signal()

    def __init__(self, service: DeskService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.me = service.desk.agent
        self.setWindowTitle("Duty rota")
        self.resize(620, 680)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(22, 18, 22, 18)
        self.today = plain("", "title")
        lay.addWidget(self.today)
        form = QFormLayout()
        self.people = QLineEdit()
        self.people.setPlaceholderText("kim, lee, ana")
        self.days = QSpinBox()
        self.days.setRange(1, 366)
        self.weekdays = QLineEdit("mon-fri")
        self.zone = QLineEdit("UTC")
        self.covers = QLineEdit()
        self.covers.setPlaceholderText("kim=lee, lee=ana (kim is covered by lee)")
        self.handoff = QSpinBox()
        self.handoff.setRange(0, 7 * 24 * 60)
        self.handoff.setSpecialValueText("never")
        self.handoff.setSuffix(" min")
        form.addRow("People, in order", self.people)
        form.addRow("Shift (working days)", self.days)
        form.addRow("Working days", self.weekdays)
        form.addRow("Team's time zone", self.zone)
        form.addRow("Who covers whom", self.covers)
        form.addRow("Hand new unclaimed tickets to the person on duty after", self.handoff)
        lay.addLayout(form)
        save_row = QHBoxLayout()
        save_row.addStretch(1)
        self.save_button = QPushButton("Save for the team")
        self.save_button.setObjectName("primary")
        self.save_button.clicked.connect(self._save)
        save_row.addWidget(self.save_button)
        lay.addLayout(save_row)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Day", "On duty", ""])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.table, 1)
        learn = QHBoxLayout()
        self.newcomer = QLineEdit()
        self.newcomer.setPlaceholderText("teammate")
        self.until = QDateEdit(QDate.currentDate().addDays(14))
        self.until.setCalendarPopup(True)
        self.until.setDisplayFormat("yyyy-MM-dd")
        mark = QPushButton("Hold their replies for approval until")
        mark.clicked.connect(self._mark_learning)
        learn.addWidget(self.newcomer, 1)
        learn.addWidget(mark)
        learn.addWidget(self.until)
        lay.addLayout(learn)
        self.learning = plain("", "muted")
        lay.addWidget(self.learning)
        self.status = plain("", "muted")
        lay.addWidget(self.status)
        self.take_buttons: dict[str, QPushButton] = {}
        self.reload()

    def reload(self) -> None:
        def done(shown: dict[str, Any]) -> None:
            if shiboken6.isValid(self):
                self._show(shown)

        self.service.read(lambda d: d.rota.show(14), on_done=done, on_error=self._failed)

    def _show(self, shown: dict[str, Any]) -> None:
        self.shown = shown
        rota = shown["rota"]
        self.today.setText(duty_text(shown).splitlines()[0] if rota else
                           "No rota yet: the team answers as a free-for-all.")
        if rota:
            self.people.setText(", ".join(rota["people"]))
            self.days.setValue(int(rota["days"]))
            self.weekdays.setText(",".join(rota["weekdays"]))
            self.zone.setText(rota["timezone"])
            self.covers.setText(", ".join(f"{a}={b}" for a, b in rota["covers"].items()))
            self.handoff.setValue(int(rota["handoff_minutes"] or 0))
        self.table.setRowCount(len(shown["week"]))
        self.take_buttons.clear()
        for row, d in enumerate(shown["week"]):
            day = f"{WEEKDAY.get(d['weekday'], d['weekday'])} {d['date']}"
            self.table.setItem(row, 0, QTableWidgetItem(day))  # items hold plain text
            who = (d["agent"] or "–") + ("  (swapped)" if d["swapped"] else "") + (
                f"  covered by {d['backup']}" if d["backup"] else "")
            self.table.setItem(row, 1, QTableWidgetItem(who))
            take = QPushButton("Take this day")
            take.setEnabled(rota is not None and d["agent"] != self.me)
            take.clicked.connect(lambda _=False, date=d["date"]: self.take(date))
            self.take_buttons[d["date"]] = take
            self.table.setCellWidget(row, 2, take)
        self.learning.setText("; ".join(f"{a} learning through {u}"
                                        for a, u in shown["learning"].items()))

    def take(self, date: str) -> None:
        """One click: put this agent on duty that day (a swap everyone sees)."""
        self._run(lambda d: d.rota.swap(date, self.me), f"You are on duty on {date}.")

    def _save(self) -> None:
        people = [p.strip() for p in self.people.text().split(",") if p.strip()]
        days, weekdays, zone = self.days.value(), self.weekdays.text(), self.zone.text().strip()
        minutes = self.handoff.value() or None
        covers = {a.strip(): b.strip() for a, _eq, b in
                  (pair.partition("=") for pair in self.covers.text().split(",")) if b.strip()}
        if not people:
            self._run(lambda d: d.rota.clear_rota(), "The rota is off.")
            return
        self._run(lambda d: d.rota.set_rota(people, days=days, weekdays=weekdays,
                                            timezone=zone, covers=covers,
                                            handoff_minutes=minutes),
                  "The rota is saved for the team.")

    def _mark_learning(self) -> None:
        who = self.newcomer.text().strip()
        until = self.until.date().toString("yyyy-MM-dd")
        if who:
            self._run(lambda d: d.rota.set_learning(who, until),
                      f"{who}'s replies wait for approval through {until}.")

    def _run(self, fn: Any, ok: str) -> None:
        def done(_r: Any) -> None:
            if shiboken6.isValid(self):
                self.status.setText(ok)
                self.changed.emit()
                self.reload()

        self.service.run(fn, on_done=done, on_error=self._failed)

    def _failed(self, message: str) -> None:
        if shiboken6.isValid(self):
            self.status.setText(message)


class ApprovalsDialog(QDialog):
    """Teammates' held replies, their text, and an Approve button each; and one's own."""

    def __init__(self, service: DeskService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.me = service.desk.agent
        self.setWindowTitle("Replies waiting for approval")
        self.resize(620, 560)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(22, 18, 22, 18)
        self.intro = plain("Newcomers' replies wait here for a second pair of eyes. "
                           "Approving sends one once.")
        lay.addWidget(self.intro)
        self.area = QScrollArea()
        self.area.setWidgetResizable(True)
        lay.addWidget(self.area, 1)
        self.status = plain("", "muted")
        lay.addWidget(self.status)
        self.approve_buttons: dict[str, QPushButton] = {}
        self.reload()

    def reload(self) -> None:
        def read(d: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            d.refresh_team()
            mine = [i for i in d.outbox() if i.get("waiting_for_approval")]
            return d.rota.approvals(), mine

        def done(found: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
            if shiboken6.isValid(self):
                self._show(*found)

        self.service.run(read, on_done=done, on_error=self._failed)

    def _show(self, asks: list[dict[str, Any]], mine: list[dict[str, Any]]) -> None:
        box = QWidget()
        lay = QVBoxLayout(box)
        self.approve_buttons.clear()
        for item in mine:
            lay.addWidget(plain(f"Your reply “{item['subject']}” is waiting for approval.",
                                "warn"))
        others = [a for a in asks if a["agent"] != self.me]
        if not others and not mine:
            lay.addWidget(plain("No reply is waiting for approval."))
        for a in others:
            card = QFrame()
            card.setFrameShape(QFrame.Shape.StyledPanel)
            cl = QVBoxLayout(card)
            cl.addWidget(plain(f"{a['agent']} to {', '.join(a['to'])}: {a['subject']}", "title"))
            text = QPlainTextEdit(a["text"])  # plain text, never rendered
            text.setReadOnly(True)
            text.setMaximumHeight(160)
            cl.addWidget(text)
            row = QHBoxLayout()
            row.addStretch(1)
            approve = QPushButton("Approve and send")
            approve.setObjectName("primary")
            approve.clicked.connect(lambda _=False, key=a["id"]: self.approve(key))
            self.approve_buttons[a["id"]] = approve
            row.addWidget(approve)
            cl.addLayout(row)
            lay.addWidget(card)
        lay.addStretch(1)
        self.area.setWidget(box)

    def approve(self, key: str) -> None:
        def done(r: dict[str, Any]) -> None:
            if shiboken6.isValid(self):
                self.status.setText(f"Approved {r['agent']}'s reply; it goes once.")
                self.reload()

        self.service.run(lambda d: d.rota.approve(key), on_done=done, on_error=self._failed)

    def _failed(self, message: str) -> None:
        if shiboken6.isValid(self):
            self.status.setText(message)


class DigestDialog(QDialog):
    """Last week's "What customers are telling us", the team's list, and Send."""

    def __init__(self, service: DeskService, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = service
        self.setWindowTitle("What customers are telling us")
        self.resize(720, 720)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(22, 18, 22, 18)
        self.text = QPlainTextEdit()  # the digest quotes customers: plain text only
        self.text.setReadOnly(True)
        lay.addWidget(self.text, 1)
        row = QHBoxLayout()
        self.recipients = QLineEdit()
        self.recipients.setPlaceholderText("everyone@company.example, …")
        save = QPushButton("Save list")
        save.clicked.connect(self._save_list)
        self.send_button = QPushButton("Send to the list")
        self.send_button.setObjectName("primary")
        self.send_button.clicked.connect(self.send)
        row.addWidget(plain("Sent weekly to", wrap=False))
        row.addWidget(self.recipients, 1)
        row.addWidget(save)
        row.addWidget(self.send_button)
        lay.addLayout(row)
        self.status = plain("", "muted")
        lay.addWidget(self.status)
        self.reload()

    def reload(self) -> None:
        def read(d: Any) -> tuple[str, list[str]]:
            return d.digest.text(), d.digest.recipients()

        def done(found: tuple[str, list[str]]) -> None:
            if shiboken6.isValid(self):
                self.text.setPlainText(found[0])
                self.recipients.setText(", ".join(found[1]))

        self.service.read(read, on_done=done, on_error=self._failed)

    def _save_list(self) -> None:
        wanted = self.recipients.text().split(",")
        self.service.run(lambda d: d.digest.set_recipients(wanted),
                         on_done=lambda _r: self._said("The list is saved for the team."),
                         on_error=self._failed)

    def send(self) -> None:
        def done(r: dict[str, Any]) -> None:
            self._said(f"The digest of {r['period']} was already sent by {r['by']}."
                       if r["state"] == "already sent" else
                       f"The digest of {r['period']} is on its way.")

        self.service.run(lambda d: d.digest.send(), on_done=done, on_error=self._failed)

    def _said(self, text: str) -> None:
        if shiboken6.isValid(self):
            self.status.setText(text)

    def _failed(self, message: str) -> None:
        self._said(message)
