"""Close the loop: the personal note a customer gets when their card ships."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from helpdesk.mail.compose import first_name

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


# --- drafts ------------------------------------------------------------------------

def _greeting_name(customer: Mapping[str, Any]) -> str:
    """Preferred name, else the given name from the display name or address, else "there"."""
    preferred = (customer.get("preferred_name") or "").strip()
    return preferred or first_name(customer.get("name"), customer.get("email")) or "there"


def _draft(card: Mapping[str, Any], customer: Mapping[str, Any], agent: str,
           team: str) -> dict[str, str]:
    title = card["title"]
    quote = (customer.get("quote") or "").strip()
    if quote:
        quoted = "\n".join("> " + line for line in quote.splitlines())
        asked = (f"When you wrote to us, you asked for this:\n\n{quoted}\n\n"
                 f"We listened: \"{title}\" is now available.")
    else:
        asked = f"You asked us for \"{title}\". We listened: it is now available."
    body = (f"Hi {_greeting_name(customer)},\n\n{asked}\n\n"
            "Thank you for taking the time to tell us: requests like yours decide what we "
            "build next. If it does not work the way you hoped, just reply to this email.\n\n"
            f"Best wishes,\n{agent}\n{team}\n")
    return {"subject": f"You asked, we built it: {title}", "body": body}
