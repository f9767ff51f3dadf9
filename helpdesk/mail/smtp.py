"""SMTP submission with verified TLS, and errors sorted into temporary and permanent."""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from helpdesk.config import SmtpSettings, get_password
from helpdesk.errors import HelpdeskError
from helpdesk.mail.imap import tls_context

TIMEOUT = 60.0


@dataclass
class SendError(Exception):
    """A failed submission. ``permanent`` errors will not go away by retrying."""

    message: str
    permanent: bool

    def __str__(self) -> str:
        return self.message


def _server_words(code: int, msg: bytes | str) -> str:
    text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
    return f"{code} {text}".strip()


def classify(exc: BaseException, settings: SmtpSettings) -> SendError:
    """Turn an smtplib/socket exception into a plain, classified :class:`SendError`."""
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        words = "; ".join(f"{rcpt}: {_server_words(c, m)}" for rcpt, (c, m) in
                          exc.recipients.items())
        permanent = all(c >= 500 for c, _m in exc.recipients.values())
        return SendError(f"The mail server refused the recipient ({words}).", permanent)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return SendError(f"The mail server rejected the SMTP login for '{settings.username}' "
                         f"({_server_words(exc.smtp_code, exc.smtp_error)}).", True)
    if isinstance(exc, smtplib.SMTPSenderRefused | smtplib.SMTPDataError):
        words = _server_words(exc.smtp_code, exc.smtp_error)
        return SendError(f"The mail server refused the message ({words}).",
                         exc.smtp_code >= 500)
    if isinstance(exc, smtplib.SMTPResponseException):
        words = _server_words(exc.smtp_code, exc.smtp_error)
        return SendError(f"The mail server answered {words}.", exc.smtp_code >= 500)
    if isinstance(exc, socket.gaierror):
        return SendError(f"Cannot find the SMTP server '{settings.host}' (DNS lookup failed).",
                         False)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SendError(f"The SMTP server {where} presented an untrusted certificate "
                         f"({exc.verify_message}).", True)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return SendError(f"The SMTP server {where} does not support {exc}.", True)
    if isinstance(exc, ConnectionRefusedError):
        return SendError(f"The SMTP server {where} refused the connection; it may be down.",
                         False)
    if isinstance(exc, TimeoutError | socket.timeout):
        return SendError(f"The SMTP server {where} did not answer in time.", False)
    if isinstance(exc, OSError | smtplib.SMTPException):
        return SendError(f"Cannot reach the SMTP server {where} ({exc}).", False)
    return SendError(f"Unexpected SMTP error: {type(exc).__name__}.", False)


@contextmanager
def _session(settings: SmtpSettings, password: str | None,
             timeout: float = TIMEOUT) -> Iterator[smtplib.SMTP]:
    """A connected, TLS-secured (as configured) and logged-in SMTP session."""
    if settings.security == "tls":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout,
                                              context=tls_context(settings))
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if settings.security == "starttls":
            smtp.starttls(context=tls_context(settings))
            smtp.ehlo()
        if settings.username:
            smtp.login(settings.username,
                       password if password is not None else get_password(settings, "smtp"))
        yield smtp


def send(settings: SmtpSettings, raw: bytes, sender: str, recipients: list[str],
         password: str | None = None) -> None:
    """Submit ``raw`` once; raise :class:`SendError` (classified) on any failure."""
    try:
        with _session(settings, password) as smtp:
            smtp.sendmail(sender, recipients, raw)
    except SendError:
        raise
    except Exception as exc:
        raise classify(exc, settings) from None


def check_connection(settings: SmtpSettings, password: str | None = None) -> str:
    """Connect, secure and log in without sending; a plain summary, or :class:`SendError`."""
    try:
        with _session(settings, password, timeout=15) as smtp:
            smtp.noop()
    except SendError:
        raise
    except HelpdeskError as exc:  # no password available: say so as it is
        raise SendError(str(exc), True) from None
    except Exception as exc:
        raise classify(exc, settings) from None
    who = f" as {settings.username}" if settings.username else " (no login)"
    return f"Connected to {settings.host}{who}."
