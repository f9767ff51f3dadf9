"""Every module's fold handlers, listed explicitly.

Which handlers run never depends on which modules happen to be imported: the fold
(:mod:`helpdesk.team.fold`) looks event types up in :data:`HANDLERS`, built from
this one list.
"""

from __future__ import annotations

from helpdesk.cards import fold as cards
from helpdesk.metrics import fold as metrics
from helpdesk.team import claims, registers
from helpdesk.team.fold import Handler, Handlers, handler_table

TABLES: tuple[Handlers, ...] = (claims.HANDLERS, registers.HANDLERS, cards.HANDLERS,
                                metrics.HANDLERS)
HANDLERS: dict[str, Handler] = handler_table(TABLES)
