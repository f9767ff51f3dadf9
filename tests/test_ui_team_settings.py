"""Team state the desktop app needed: the VIP tier order, shipped notes per language,
the cards a ticket's customer is on, and a picker whose quote can be edited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import make_profile
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from test_feedback import put_requests, ticket_of
from test_ui_support import App

from helpdesk import team_settings
from helpdesk.desk import Desk
from ui.card_dialogs import NotifyDialog
from ui.card_picker import CardPicker
from ui.worker import DeskService

LIAM = "liam@chenstudio.example"
AISHA = "aisha.rahman@example.com"
TOM = "tom.becker@example.org"


@pytest.fixture
def desks(dovecot: Any, smtp_sink: Any, tmp_path: Path) -> Iterator[tuple[Desk, Desk]]:
    put_requests(dovecot)
    a = Desk(make_profile(dovecot, tmp_path, "agent-a", smtp=smtp_sink))
    b = Desk(make_profile(dovecot, tmp_path, "agent-b", smtp=smtp_sink))
    a.sync_once()
    b.sync_once()
    yield a, b
    a.close()
    b.close()


def test_the_tier_order_is_team_state_and_ranks_vip_first_lists(
        desks: tuple[Desk, Desk]) -> None:
    a, b = desks
    assert team_settings.tier_order(a) == list(team_settings.DEFAULT_TIERS)
    a.update_customer(LIAM, vip=True, tier="Gold")
    a.update_customer(AISHA, vip=True, tier="Silver")
    a.update_customer(TOM, vip=True, tier="Platinum")
    team_settings.set_tier_order(a, ["Silver", "Gold", " Platinum ", "gold", ""])
    b.refresh_team()
    assert team_settings.tier_order(b) == ["Silver", "Gold", "Platinum"]  # same everywhere
    order = tuple(team_settings.tier_order(b))
    for limit in (None, 2):
        ids = b.ticket_ids("all", vip_first=True, tier_rank=order, limit=limit)
        first = [b.ticket_rows([t])[t]["customer_email"] for t in ids[:2]]
        assert first == [AISHA, LIAM]
    full = b.ticket_ids("all", vip_first=True, tier_rank=order)
    assert [b.ticket_rows([t])[t]["customer_email"] for t in full[:3]] == [AISHA, LIAM, TOM]
    # A later order wins (last writer); a rebuild from the log gives the same.
    team_settings.set_tier_order(b, ["Platinum", "Gold", "Silver"])
    a.refresh_team()
    assert team_settings.tier_order(a) == ["Platinum", "Gold", "Silver"]


@pytest.mark.parametrize("data", [{"tiers": "Gold"}, {"tiers": [1, 2]}, {"tiers": []},
                                  {"tiers": [f"t{i}" for i in range(30)]}, {}])
def test_hostile_tier_events_are_skipped(desks: tuple[Desk, Desk], data: dict[str, Any]
                                         ) -> None:
    a, b = desks
    team_settings.set_tier_order(a, ["Gold", "Silver"])
    a.publish(a.event("vip-tiers", "team", **data))
    b.refresh_team()
    assert team_settings.tier_order(b) == ["Gold", "Silver"]


def test_shipped_notes_per_language_are_team_state(desks: tuple[Desk, Desk]) -> None:
    a, b = desks
    card = a.cards.add(ticket_of(a, LIAM), title="Dark mode", quote="the page is blinding")
    a.cards.add(ticket_of(a, AISHA), card_id=card)
    team_settings.set_card_note(a, card, "DE", "Sie haben gefragt: {title}",
                                "Hallo {name},\n\n„{quote}“ – {title} ist da. {name.__class__}"
                                "\n{agent}, {team}")
    b.refresh_team()
    assert [n["lang"] for n in team_settings.card_notes(b, card)] == ["de"]
    drafts = {d["email"]: d for d in b.cards.notification_drafts(card, {LIAM: "de-AT"})}
    liam, aisha = drafts[LIAM], drafts[AISHA]
    assert liam["lang"] == "de" and liam["subject"] == "Sie haben gefragt: Dark mode"
    assert liam["body"].startswith("Hallo Liam,") and "„the page is blinding“" in liam["body"]
    assert "{name.__class__}" in liam["body"]  # no format mini-language on team text
    assert "agent-b" in liam["body"]
    assert aisha["lang"] is None and aisha["body"].startswith("Hi Aisha")  # the default
    assert liam["languages"] == ["de"]
    with pytest.raises(Exception, match="language"):
        team_settings.set_card_note(a, card, "Deutsch!", "x", "y")
    # Removing a language: an empty text.
    team_settings.set_card_note(b, card, "de", "", "")
    a.refresh_team()
    assert team_settings.card_notes(a, card) == []


def test_cards_of_a_customer(desks: tuple[Desk, Desk]) -> None:
    a, _b = desks
    dark = a.cards.add(ticket_of(a, LIAM), title="Dark mode", quote="blinding")
    cal = a.cards.create("Calendar integration")
    a.cards.add(ticket_of(a, LIAM), card_id=cal)
    merged = a.cards.create("Night theme")
    a.cards.add(ticket_of(a, LIAM), card_id=merged, quote="night")
    a.cards.merge(merged, dark)
    cards = a.cards.cards_of(LIAM.upper())
    assert sorted(c["title"] for c in cards) == ["Calendar integration", "Dark mode"]
    assert a.cards.cards_of(TOM) == []


# --- in the window ------------------------------------------------------------------

@pytest.fixture
def app(qtbot: QtBot, desks: tuple[Desk, Desk]) -> Iterator[App]:
    window = App(qtbot, desks[0])
    yield window
    window.window.close()
    window.service.stop()


def test_the_ticket_shows_the_customers_cards_and_the_picker_quote_is_editable(
        app: App, qtbot: QtBot) -> None:
    w = app.window
    tid = ticket_of(app.desk, LIAM)
    app.desk.cards.create("Calendar integration")
    app.select_view("all")
    app.open(tid)
    panel = w.pane.customer
    qtbot.waitUntil(lambda: panel.email == LIAM and panel.data is not None, timeout=10_000)
    assert panel.cards == []

    picker = CardPicker(app.service, tid, "Could you add a dark mode? I write at night and "
                        "the white page is blinding.", w.pane)
    qtbot.addWidget(picker)
    picker.show()
    qtbot.waitUntil(lambda: picker.loaded, timeout=10_000)
    assert "white page is blinding" in picker.quote_edit.toPlainText()
    picker.quote_edit.setPlainText("the white page is blinding")  # trimmed to what matters
    done: list[str] = []
    picker.added.connect(done.append)
    picker.added.connect(lambda _c: w.notify(f"{picker.added_label} added", "ok"))
    qtbot.keyClicks(picker.input, "Dark mode")
    qtbot.keyClick(picker.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    card = app.desk.cards.card(done[0])
    assert [c["quote"] for c in card["customers"]] == ["the white page is blinding"]
    qtbot.waitUntil(lambda: [c["title"] for c in panel.cards] == ["Dark mode"],
                    timeout=10_000)


def test_adding_from_the_ticket_confirms_in_the_window(app: App, qtbot: QtBot,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    w = app.window
    tid = ticket_of(app.desk, LIAM)
    app.select_view("all")
    app.open(tid)

    def run(picker: CardPicker) -> int:
        qtbot.waitUntil(lambda: picker.loaded, timeout=10_000)
        picker.create_card("Dark mode")
        qtbot.waitUntil(lambda: not picker.isVisible() and not picker.busy, timeout=10_000)
        return 1

    monkeypatch.setattr(CardPicker, "exec", run)
    w.pane.add_to_card()
    qtbot.waitUntil(lambda: any("is now on the card “Dark mode”" in t
                                for _k, t in w.message_bar.history), timeout=10_000)
    qtbot.waitUntil(lambda: [c["title"] for c in w.pane.customer.cards] == ["Dark mode"],
                    timeout=10_000)


def test_customer_panel_tiers_follow_the_team_order(app: App, qtbot: QtBot,
                                                    desks: tuple[Desk, Desk]) -> None:
    w = app.window
    _a, b = desks
    team_settings.set_tier_order(b, ["Diamond", "Silver", "Gold"])
    app.service.run(lambda d: d.refresh_team())
    tid = ticket_of(app.desk, LIAM)
    app.select_view("all")
    app.open(tid)
    tier = w.pane.customer.tier
    qtbot.waitUntil(lambda: [tier.itemText(i) for i in range(tier.count())]
                    == ["Diamond", "Silver", "Gold"], timeout=10_000)


def test_the_notify_preview_switches_a_customer_to_their_language(
        desks: tuple[Desk, Desk], qtbot: QtBot, qapp: Any) -> None:
    from ui.board import _drafts_by_language

    a, _b = desks
    card = a.cards.add(ticket_of(a, LIAM), title="Dark mode")
    a.cards.add(ticket_of(a, AISHA), card_id=card)
    team_settings.set_card_note(a, card, "fr", "Vous l'avez demandé : {title}",
                                "Bonjour {name}, {title} est là.")
    drafts, alternatives = _drafts_by_language(a, card)
    dialog = NotifyDialog("Dark mode", drafts, alternatives=alternatives)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.languages() == ["fr"]
    row = next(i for i, d in enumerate(drafts) if d["email"] == AISHA)
    dialog.list.setCurrentRow(row)
    dialog.language.setCurrentIndex(dialog.language.findData("fr"))
    dialog.language.activated.emit(dialog.language.currentIndex())
    assert dialog.body.toPlainText() == "Bonjour Aisha, Dark mode est là."
    chosen = {d["email"]: d for d in dialog.drafts()}
    assert chosen[AISHA]["subject"] == "Vous l'avez demandé : Dark mode"
    assert chosen[LIAM]["body"].startswith("Hi Liam")
    _ = DeskService  # the board runs these through the service; here directly
