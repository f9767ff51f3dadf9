"""Every module's fold handlers, listed explicitly.

Which handlers run never depends on which modules happen to be imported: the fold
(:mod:`helpdesk.team.fold`) looks event types up in :data:`REGISTRY`, built from
this one list. What this build understands (each type's newest version) is part of
the registry too: an event it does not understand is kept for a build that does.
"""

from __future__ import annotations

from helpdesk import outgoing, team_settings
from helpdesk.cards import fold as cards
from helpdesk.digest import fold as digest
from helpdesk.metrics import fold as metrics
from helpdesk.rota import fold as rota
from helpdesk.team import claims, merges, registers, ticket_marks, ticket_notes
from helpdesk.team.fold import Handler, Handlers, Registry

TABLES: tuple[Handlers, ...] = (claims.HANDLERS, registers.HANDLERS, cards.HANDLERS,
                                metrics.HANDLERS, team_settings.HANDLERS, outgoing.HANDLERS,
                                merges.HANDLERS, rota.HANDLERS, digest.HANDLERS,
                                ticket_notes.HANDLERS, ticket_marks.HANDLERS)
REGISTRY: Registry = Registry.of(TABLES)
HANDLERS: dict[str, Handler] = REGISTRY.handlers
