"""The feedback board as CSV (for spreadsheets) and Markdown (for wikis and chat)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

__all__ = ["FORMATS", "board_csv", "board_markdown"]

FORMATS = ("csv", "md")
CSV_FIELDS = ("id", "title", "description", "column", "column_name", "votes", "customers",
              "notified", "created_at", "updated_at")


def board_csv(columns: Sequence[dict[str, Any]], cards: Sequence[dict[str, Any]]) -> str:
    """One row per card, board order; customer lists joined with ``"; "``."""
    names = {c["id"]: c["name"] for c in columns}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for card in _board_order(columns, cards):
        writer.writerow({
            **{k: card.get(k) for k in CSV_FIELDS},
            "column_name": names.get(card["column"], card["column"]),
            "customers": "; ".join(card["customers"]),
            "notified": "; ".join(card["notified"]),
        })
    return out.getvalue()


def board_markdown(columns: Sequence[dict[str, Any]], cards: Sequence[dict[str, Any]],
                   title: str = "Feedback board") -> str:
    """A section per column with a table of its cards (most votes first)."""
    lines = [f"# {_md(title)}", ""]
    for column in columns:
        mine = [c for c in cards if c["column"] == column["id"]]
        lines += [f"## {_md(column['name'])} ({len(mine)})", ""]
        if not mine:
            lines += ["_No cards._", ""]
            continue
        lines += ["| Card | Customers | Description |", "| --- | ---: | --- |"]
        for card in mine:
            told = f", {len(card['notified'])} told" if card["notified"] else ""
            lines.append(f"| {_md(card['title'])} | {card['votes']}{told} | "
                         f"{_md(card['description'])} |")
        lines.append("")
    return "\n".join(lines)


def _board_order(columns: Sequence[dict[str, Any]],
                 cards: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    position = {c["id"]: i for i, c in enumerate(columns)}
    return sorted(cards, key=lambda c: position.get(c["column"], len(position)))


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell or heading: one line, pipes escaped."""
    return " ".join(str(text or "").split()).replace("\\", "\\\\").replace("|", "\\|")
