"""The duty rota (who is on duty, swaps, hand-offs), newcomers' held replies, the digest.

- :mod:`helpdesk.rota.schedule`: pure values (who is on duty on a date).
- :mod:`helpdesk.rota.fold`: fold handlers of ``rota``, ``rota-swap``, ``rota-handoff``,
  ``learning``, ``approval-request``, ``approval``.
- :mod:`helpdesk.rota.handoff`: which tickets are due a hand-off, and the one seam
  (:func:`~helpdesk.rota.handoff.apply_assignment`) that turns a hand-off into an assignment.
- :mod:`helpdesk.rota.notify`: who is told of what (pure; ui/notify.py uses it).
- :mod:`helpdesk.rota.service`: the reads and intents over the session.
"""
