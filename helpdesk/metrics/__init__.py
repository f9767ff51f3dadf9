"""Service metrics: NPS, response and resolution times, first-contact resolution, cared rate.

Everything is computed from what the store already holds (mail, and team state
folded from the log), so every desktop with the same mail and log computes the
same numbers. The pure part (:func:`compute_metrics` and its helpers) takes
plain lists and is tested on hand-built data; :class:`ServiceMetrics` only
loads rows and writes survey scores.

Definitions (all times are the server's: INTERNALDATE for mail, the team log's
clock for events; naive UTC):

- **Customer message**: inbound, not an auto-reply, bounce or list mail, and not
  a recognised survey answer. **Reply**: outbound mail except survey mails.
- **Period** (``since``/``until``, inclusive UTC dates, either open): a ticket
  belongs to the period of its *first customer message*; tickets without any
  customer message (auto-only, bounces, outbound-only) are never counted. Every
  ticket figure describes that cohort *as the store knows it now* (e.g.
  ``tickets.closed`` = tickets opened in the period that are closed now).
  Scores and cared answers belong to the period of their own time.
- **First response**: first customer message → first reply sent at or after it.
  Tickets without a reply yet are not in ``count``.
- **Resolution**: first customer message → the *last* time the ticket went to
  closed, for tickets whose current status is closed. A reopened and re-closed
  ticket counts once, with the full time up to its final close; a reopened
  ticket that is open now has no resolution time. Repeated "closed" events on a
  closed ticket do not move the close time.
- **First-contact resolution (FCR)**: judged for tickets that were closed after at
  least one reply. FCR when exactly one reply was sent up to the first close and,
  after that reply and up to ``fcr_window_days`` after the first close, there was
  no customer message and no reopen. ``count`` = tickets judged; ``rate`` = share
  with FCR. Judged on what is known: a ticket closed less than the window ago
  counts as FCR until a customer message or reopen says otherwise.
- **Reopened**: the ticket went from closed back to open/pending at least once
  (status history from the team log, in log order). ``reopen_rate`` = reopened /
  tickets of the cohort ever closed.
- **NPS**: one answer per ticket, its latest (manual or by mail); % of 9-10 minus
  % of 0-6, rounded half away from zero to a whole number; None without answers.
- **Cared**: one answer per ticket, the latest self-check; ``rate`` = yes / (yes + no).
- **Median** of an even count: mean of the two middle values. **p90**: nearest
  rank, the ceil(0.9·n)-th smallest value. Seconds; rates are fractions 0..1
  rounded to 3 places; None when there is nothing to measure.
- **heard_from**: customers' "how did you hear about us?" field, trimmed,
  whitespace collapsed, lower-cased; counted per customer. With a period, only
  customers whose first customer message ever falls in it (new customers).
- **VIP**: tickets (and scores) of customers who are VIP now.
- **weekly**: per ISO week (key: its Monday), the period's figures of that week.
- **oldest_unclaimed_seconds**: now, not per period: age of the oldest first
  customer message among tickets that are not closed and held by nobody.

Surveys: ``send_survey`` queues one mail threaded to the ticket and publishes a
``survey-sent`` event; ``after_sync`` finds customer replies to surveys and
records their scores (see :mod:`helpdesk.metrics.surveys` for what counts as a score)
under the deterministic id ``mail:<Message-ID>``, so every desktop derives the
same rows from the same mail without any event.

Modules: ``calc`` (the pure calculations), ``fold`` (handlers for survey-sent, score
and cared, listed in :mod:`helpdesk.team.registry`), ``surveys`` (survey text, which
message answers which survey, recognising a score), ``service`` (``desk.metrics``:
loads rows, sends surveys, scores answers) and ``export`` (CSV).
"""

from helpdesk.metrics.calc import (
    CaredRow,
    HeardRow,
    MetricsData,
    Msg,
    ScoreRow,
    TicketFacts,
    compute_metrics,
    median,
    nps,
    p90,
    previous_period,
)
from helpdesk.metrics.export import metrics_csv

__all__ = ["CaredRow", "HeardRow", "MetricsData", "Msg", "ScoreRow",
           "TicketFacts", "compute_metrics", "median", "metrics_csv", "nps", "p90",
           "previous_period"]
