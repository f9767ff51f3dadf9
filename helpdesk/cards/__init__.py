"""Feedback cards: who asked for what, the team's board, telling customers it shipped.

Team state, folded from the team log like everything else (DESIGN.md):

- ``card-create`` (subject: the new card id = the event id): title, description,
  column. Created "by title" (``by_title``), a card whose title a card created
  earlier in log order already has becomes a merge into that card, so two desktops
  typing the same new title at once still end with one card.
- ``card-update`` (subject: a card id): title/description, last-writer-wins by log
  UID (``title_stamp`` stamps both). Subject ``column:<id>``: rename a board column.
- ``card-move``: the column, last-writer-wins (``column_stamp``).
- ``card-add``: customer (email), ticket, quote. An add-wins set keyed
  ``(card, email)``: adds never conflict, the first add keeps its ticket and
  quote (later adds only fill in what is missing), the same customer twice
  counts once.
- ``card-merge`` (subject: the merged card, ``into``): the merged card leaves the
  board; its customers count for the card it went into. ``merged_into`` chains
  are resolved when reading, so an add that raced a merge still counts. A merge
  that would make a cycle, or of a card already merged, is ignored.
- ``card-notified`` (``email``, ``message_id``): the first per (card group,
  customer) in log order wins; the desktop whose event won sends the mail, so a
  customer is never told twice even when two agents click at once.

``fold`` holds the handlers (listed in :mod:`helpdesk.team.registry`), ``service``
the reads and intents (``desk.cards``), ``rank`` the picker's fuzzy ranking,
``export`` CSV and Markdown, ``notify`` the shipped-card note.
"""


from helpdesk.cards.fold import DEFAULT_COLUMNS, SHIPPED

__all__ = ["DEFAULT_COLUMNS", "SHIPPED"]
