"""A metrics report as CSV."""

from __future__ import annotations

import csv
import io
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)



# --- export ------------------------------------------------------------------------------------

def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def metrics_csv(current: dict[str, Any], previous: dict[str, Any] | None = None,
                labels: tuple[str, str] = ("current", "previous")) -> str:
    """A CSV of a report (and the previous period's): one metric per row, then the weeks."""
    cur: dict[str, Any] = {}
    prev: dict[str, Any] = {}
    _flatten("", {k: v for k, v in current.items() if k != "weekly"}, cur)
    if previous is not None:
        _flatten("", {k: v for k, v in previous.items() if k != "weekly"}, prev)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", labels[0], *([labels[1]] if previous is not None else [])])
    for key in [*cur, *(k for k in prev if k not in cur)]:
        row = [key, _cell(cur.get(key))]
        if previous is not None:
            row.append(_cell(prev.get(key)))
        w.writerow(row)
    w.writerow([])
    w.writerow(["week_start", "opened", "closed", "nps", "first_response_median"])
    for week, v in current.get("weekly", {}).items():
        w.writerow([week, v["opened"], v["closed"], _cell(v["nps"]),
                    _cell(v["first_response_median"])])
    return buf.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value


