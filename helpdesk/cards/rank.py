"""Rank feedback cards against a ticket: fuzzy, typo- and word-order-tolerant.

Pure functions, no database: :func:`rank` takes the ticket's subject and first
customer message and the cards' titles and descriptions.

How a card scores (0-100):

- Text is normalised (case, accents, punctuation), stop words dropped, and each
  word lightly stemmed ("coloured"/"colours" -> "colour"), so word order never
  matters and inflections meet.
- Every card word is matched against the ticket's words with rapidfuzz's
  ``ratio`` (one typo in a word still matches: "calender", "nite" -> "night"
  only if close enough) or as a prefix ("auth" / "authenticator"). Words in the
  subject count fully, words in the message body a little less.
- Words are weighted by how rare they are among the cards (IDF): "notes" on
  every card says little, "black" on one card says a lot.
- The title is what the card is about, so title words weigh more; the
  description holds the other ways customers put it ("night theme", "black
  background"), normalised by the square root of its weight so a long
  description does not win by size alone.
- ``token_set_ratio`` of title against subject adds a little, rewarding a
  subject that *is* the card's title.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from helpdesk.mail.conversations import quoted_stripped, strip_subject

__all__ = ["CardText", "normalise", "rank", "stems", "ticket_query", "typed_match"]

BODY_CHARS = 3000
_BODY_WEIGHT = 0.8
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ies", "ed", "es", "s", "ly")

# Function words and mail pleasantries in the languages customers write most;
# they match everywhere and mean nothing for ranking.
_STOPWORDS_TEXT = """
a an and are as at be been but by can could did do does dont doesnt for from get got had
has have hello hi how i if im in into is isnt it its ive just me my no not of on or our
please so some than thank thanks that the their them then there these they this to too
us very was we were what when where which while who why will with would you your yours
also any all am anyone anything able again want wish like love really maybe still
regards best cheers dear team hey kind hope know let use using used one way der die das
und ist nicht ich ein eine mit fur bitte danke hallo le la les et est pas je un une
des pour avec merci bonjour el los las y es no yo por para con gracias hola
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


@dataclass(frozen=True)
class CardText:
    """What ranking needs of a card."""

    id: str
    title: str
    description: str = ""


def normalise(text: str) -> str:
    """Case-folded, accent-free words separated by single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_NON_WORD.sub(" ", bare.casefold()).split())


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[:-len(suffix)]
    return word


def stems(text: str) -> list[str]:
    """Content words of ``text``, stemmed, in order (repeats kept)."""
    return [_stem(w) for w in normalise(text).split()
            if len(w) > 1 and w not in STOPWORDS and not w.isdigit()]


def ticket_query(subject: str, first_message: str) -> tuple[str, str]:
    """The parts of a ticket that say what the customer asks for.

    Reply/forward prefixes and our ``[#id]`` token go from the subject; quoted
    earlier mail and anything past :data:`BODY_CHARS` go from the message.
    """
    body = quoted_stripped(first_message or "")
    body = re.split(r"(?m)^-- ?$", body, maxsplit=1)[0]  # signature
    return strip_subject(subject or ""), body[:BODY_CHARS]


def _similarity(word: str, choices: Sequence[str]) -> float:
    """Best match of ``word`` among ``choices``, 0..1 (0 below typo tolerance)."""
    from rapidfuzz import fuzz, process  # imported on first use: keeps start-up fast
    if word in choices:
        return 1.0
    best = 0.0
    if len(word) >= 5:
        # One typo in five letters scores 80. Shorter words must match exactly (or as a
        # prefix, below): one letter off turns "word" into "work", "back" into "black".
        longer = [c for c in choices if len(c) >= 5]
        found = process.extractOne(word, longer, scorer=fuzz.ratio, score_cutoff=80.0)
        if found is not None:
            best = float(found[1]) / 100.0
    for other in choices:
        short, long_ = (word, other) if len(word) <= len(other) else (other, word)
        if len(short) >= 4 and len(long_) - len(short) <= 5 and long_.startswith(short):
            return max(best, 0.9)
    return best


def rank(subject: str, body: str, cards: Iterable[CardText]) -> list[tuple[str, float]]:
    """``(card id, score 0-100)`` for every card, best first (ties keep input order)."""
    from rapidfuzz import fuzz
    cards = list(cards)
    if not cards:
        return []
    subject_words = sorted(set(stems(subject)))
    body_words = sorted(set(stems(body)) - set(subject_words))
    fields = [(set(stems(c.title)), set(stems(c.description))) for c in cards]
    df: dict[str, int] = {}
    for title, desc in fields:
        for word in title | desc:
            df[word] = df.get(word, 0) + 1
    n = len(cards)
    idf = {w: math.log(1.0 + n / k) for w, k in df.items()}
    sim = {w: max(_similarity(w, subject_words), _BODY_WEIGHT * _similarity(w, body_words))
           for w in df}
    subject_norm = normalise(subject)
    scored: list[tuple[str, float]] = []
    for card, (title, desc) in zip(cards, fields, strict=True):
        desc = desc - title
        title_total = sum(idf[w] for w in title)
        title_cov = sum(idf[w] * sim[w] for w in title) / title_total if title_total else 0.0
        desc_total = sum(idf[w] for w in desc)
        desc_hit = sum(idf[w] * sim[w] for w in desc)
        desc_cov = min(1.0, desc_hit / math.sqrt(desc_total * 4.0)) if desc_total else 0.0
        whole = fuzz.token_set_ratio(normalise(card.title), subject_norm,
                                     score_cutoff=60) / 100.0
        score = 100.0 * (0.5 * title_cov + 0.4 * desc_cov + 0.1 * whole)
        scored.append((card.id, round(score, 2)))
    order = sorted(range(len(scored)), key=lambda i: -scored[i][1])
    return [scored[i] for i in order]


def _word_match(typed: str, words: Sequence[str]) -> float:
    """How well one typed (maybe unfinished, maybe misspelt) word matches ``words``, 0-100."""
    from rapidfuzz import fuzz
    best = 0.0
    for w in words:
        if w.startswith(typed):
            return 100.0
        best = max(best, fuzz.ratio(typed, w))
        if len(typed) >= 4:
            best = max(best, fuzz.ratio(typed, w[:len(typed)]))
    return best


def typed_match(typed: str, title: str, description: str = "") -> float:
    """How well what an agent types in a picker matches a card, 0-100.

    Every typed word must match (as the start of a word, or with a typo) a word of the
    title, or, counting a little less, of the description; the score is that of the
    worst-matching typed word. Word order is free: "mode dark" finds "Dark mode".
    """
    query = normalise(typed).split()
    if not query:
        return 100.0
    title_words = normalise(title).split()
    desc_words = normalise(description).split()
    return min(max(_word_match(q, title_words), 0.85 * _word_match(q, desc_words))
               for q in query)
