"""NPS survey mail: the text we send, and recognising the score in a customer's reply.

Pure functions, no I/O: which inbound message answers a survey (:func:`answered_survey`),
and what a reply *says*.

Recognising a score (the rule, in full):

1. Take the reply's **new text**: :func:`new_text` drops quoted earlier mail in
   the common styles of any language: ``>``-quoted lines (top- or bottom-posted),
   attribution lines ("On ... wrote:", "Le ... a écrit :", "Am ... schrieb X:",
   "El ... escribió:", also when a mail client wrapped them over two lines),
   Outlook's "-----Original Message-----" / underscore separators and
   "From: ... Sent: ..." header blocks, and everything after a signature
   delimiter ("-- ") or a "Sent from my phone" footer.
2. The new text must **start** with a whole number from 0 to 10 (ASCII or
   full-width digits), optionally after leading markup (``*``, quotes,
   brackets) and an optional label ("Score:", "NPS", "Rating:", "Note :",
   "Bewertung:", "Puntuación:", "Voto:", "Cijfer:", ...). A first line that
   is only a short greeting ("Hi Ana,", "Hello!", "Bonjour,", "Hallo") is
   skipped first.
3. The number may be followed by "/10" or "out of 10" (also "von 10", "sur 10",
   "de 10", "su 10", "van 10"), then must end the text or be followed by a space
   or punctuation. It must not be part of something else: "9.5", "9,5", "8-9",
   "9:30", "10%", "10/12/2025", "3rd", "100" and "11" are **not** scores.
4. "I'd say 9", "nine", "Ten!" do not start with a digit: not scores. Such a
   reply stays an ordinary customer message; an agent can record the score by
   hand (``score TICKET --nps N``).

The **comment** is the rest of the new text after the number (and "/10"),
without leading separators (" - ", ":", "!", ...), trimmed; None when empty.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from helpdesk.mail.conversations import subject_token

QUESTION = ("How likely is it that you would recommend us to a friend or colleague? "
            "Reply with a number from 0 to 10.")

def survey_body(greet: str | None, signature: str = "") -> str:
    """The survey mail: polite, short, one question, a reply is all it takes.

    ``greet`` is the name to greet (preferred name, else first name; None: "Hello,").
    """
    hello = f"Hello {greet}," if greet else "Hello,"
    lines = [
        hello,
        "",
        "Thank you for getting in touch with us. We hope we could help.",
        "",
        QUESTION,
        "",
        "If you like, add a few words after the number: we read every reply.",
        "",
        "Kind regards,",
    ]
    if signature.strip():
        lines.append(signature.strip())
    return "\n".join(lines) + "\n"


# --- new text of a reply -------------------------------------------------------------

_ATTRIBUTION = re.compile(
    r"^(on|am|le|el|il|op|em|den|dne|w dniu|el día)\b.{0,300}\b"
    r"(wrote|schrieb|a\s+écrit|escribió|scrisse|schreef|escreveu|skrev|napsal|napisał)\b"
    r"[^:]{0,200}:\s*$", re.IGNORECASE)
_ORIGINAL = re.compile(
    r"^-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original|"
    r"messaggio originale|oorspronkelijk bericht|mensagem original|originalmeddelande|"
    r"forwarded message|weitergeleitete nachricht|message transféré)\s*-{2,}\s*$",
    re.IGNORECASE)
_RULE = re.compile(r"^_{10,}\s*$")
_HEADER_FROM = re.compile(r"^\*?(from|von|de|van|da|från|fra|od|от)\s*\*?\s*:", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\*?(sent|date|gesendet|datum|envoyé|date d'envoi|enviado|fecha|verzonden|inviato|"
    r"data|skickat|sendt|wysłano|to|an|à|para|aan|a|till|til|do|subject|betreff|objet|"
    r"asunto|onderwerp|oggetto|ämne|emne|temat)\s*\*?\s*:", re.IGNORECASE)
_FOOTER = re.compile(
    r"^(sent from my|sent from mail for|get outlook for|von meinem .* gesendet|"
    r"envoyé de mon|enviado desde mi|inviato da)\b", re.IGNORECASE)


def _is_header_block(lines: list[str], i: int) -> bool:
    """An Outlook-style "From: ... / Sent: ..." block starts at line ``i``."""
    if not _HEADER_FROM.match(lines[i].strip()):
        return False
    following = [ln.strip() for ln in lines[i + 1:i + 5] if ln.strip()]
    return bool(following) and _HEADER_NEXT.match(following[0]) is not None


def _attribution_at(lines: list[str], i: int) -> int:
    """How many lines (1 or 2) form an attribution line at ``i``, or 0."""
    line = lines[i].strip()
    if _ATTRIBUTION.match(line):
        return 1
    if i + 1 < len(lines) and re.match(r"^(on|am|le|el|il|op|em|den)\b", line, re.IGNORECASE):
        joined = line + " " + lines[i + 1].strip()
        if _ATTRIBUTION.match(joined):
            return 2
    return 0


def new_text(text: str) -> str:
    """The part of a reply its author wrote now, without quoted earlier mail.

    Attribution lines above nothing but ``>`` quotes are skipped, so a
    bottom-posted reply ("On ... wrote:" / "> ..." / "9") keeps its answer.
    Outlook separators and header blocks quote the original unprefixed, so
    everything below them is dropped.
    """
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if s.startswith(">"):
            i += 1
            continue
        has_text = any(o.strip() for o in out)
        consumed = _attribution_at(lines, i)
        if consumed:
            if has_text:
                break
            i += consumed
            continue
        if _ORIGINAL.match(s) or _RULE.match(s) or _is_header_block(lines, i):
            break
        if line.rstrip() in ("--", "-- ") and has_text:
            break
        if _FOOTER.match(s) and has_text:
            break
        out.append(line)
        i += 1
    return "\n".join(out).strip()


# --- the score -----------------------------------------------------------------------

_FULLWIDTH = str.maketrans("０１２３４５６７８９／：", "0123456789/:")
_LABEL = (r"(?:(?:score|nps|rating|note|grade|bewertung|punkte|puntuaci[oó]n|puntaje|nota|"
          r"punteggio|voto|cijfer|betyg|karakter|ocena|pontuação)\s*[:=\-–]?\s*)?")
_SCORE_RE = re.compile(
    r"^[\s*_\"'“”„«»(\[]*" + _LABEL +
    r"(?P<n>10|[0-9])(?![0-9])"
    r"(?P<outof>\s*(?:/|out\s+of|of|von|sur|de|su|van|av|z)\s*10(?![0-9]))?"
    r"(?P<rest>.*)\Z",
    re.IGNORECASE | re.DOTALL)
# What may not follow the number: a decimal, a range, a time, a percentage, a date
# ("10/12/2025"), or letters glued to it ("3rd", "9am").
_NOT_A_SCORE = re.compile(r"^(\s*[.,]\d|\s*[-–]\s*\d|\s*:\d|\s*%|\s*/|[^\W\d_])", re.UNICODE)
_GREETING = re.compile(
    r"\A\s*(hi|hello|hey|dear|hallo|moin|servus|guten\s+tag|bonjour|salut|hola|"
    r"buen[oa]s\s+d[ií]as|ciao|buongiorno|hej|hoi|goedendag|good\s+(morning|afternoon|evening))"
    r"\b[^\n\d]{0,40}[,!.]?[ \t]*\n", re.IGNORECASE)
_COMMENT_LEAD = " \t\n.,;:!?)]*_-–—\"'”»"


@dataclass(frozen=True)
class Score:
    value: int
    comment: str | None


def recognise_score(text: str) -> Score | None:
    """The score a survey reply gives, or None if its new text does not start with one.

    See the module docstring for the exact rule.
    """
    body = new_text(text)
    greeting = _GREETING.match(body)
    if greeting:
        body = body[greeting.end():].lstrip()
    if not body:
        return None
    m = _SCORE_RE.match(body.translate(_FULLWIDTH))
    if m is None:
        return None
    rest = m.group("rest")
    if _NOT_A_SCORE.match(rest):
        return None
    comment = body[len(body) - len(rest):] if rest else ""
    comment = comment.lstrip(_COMMENT_LEAD).strip()
    return Score(int(m.group("n")), comment or None)


@dataclass(frozen=True)
class SurveyRef:
    message_id: str
    ticket_id: str
    sent_at: datetime


def answered_survey(in_reply_to: str | None, references: Sequence[str], subject: str,
                    received_at: datetime, surveys_by_id: dict[str, SurveyRef],
                    surveys_by_ticket: dict[str, list[SurveyRef]]) -> str | None:
    """The ticket whose survey this inbound message answers, or None.

    A reply to a survey: its In-Reply-To is a survey's Message-ID; or it has no
    In-Reply-To and a References id is one. Mail with no threading headers at
    all (clients that drop them) answers a survey when its subject carries the
    ticket token of a ticket surveyed before the message arrived. Mail threaded
    to something *else* is not an answer, even after a survey: the customer was
    replying to another message.
    """
    if in_reply_to:
        hit = surveys_by_id.get(in_reply_to)
        return hit.ticket_id if hit else None
    for ref in references:
        hit = surveys_by_id.get(ref)
        if hit:
            return hit.ticket_id
    if references:
        return None
    token = subject_token(subject)
    if token and any(s.sent_at <= received_at for s in surveys_by_ticket.get(token, [])):
        return token
    return None


def score_id(message_id: str | None, dedup_key: str) -> str:
    """Deterministic id of a score recognised in a message (the same on every desktop)."""
    return "mail:" + (message_id or dedup_key)


def _bare_id(value: Any) -> str:
    return str(value or "").strip().strip("<>").strip()
