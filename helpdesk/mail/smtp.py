"""SMTP submission with verified TLS, and errors sorted into temporary and permanent."""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from helpdesk.config import SmtpSettings, get_password
from helpdesk.errors import HelpdeskError
from helpdesk.mail.imap import tls_context

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

TIMEOUT = 60.0


@dataclass
class SendError(Exception):
    """A failed submission. ``permanent`` errors will not go away by retrying;
    ``maybe_delivered``: the connection broke after the whole message was sent and
    before the server's answer, so it may have been delivered (never retried)."""

    message: str
    permanent: bool
    maybe_delivered: bool = False

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


class _Tracking:
    """Knows whether the message's final ``CRLF.CRLF`` went out (smtplib sends it last)."""

    payload_sent = False

    def send(self, s: ReadableBuffer | str) -> None:
        super().send(s)  # type: ignore[misc]
        if isinstance(s, bytes) and s.endswith(b"\r\n.\r\n"):
            self.payload_sent = True


class _SMTP(_Tracking, smtplib.SMTP):
    pass


class _SMTPS(_Tracking, smtplib.SMTP_SSL):
    pass


def _open(settings: SmtpSettings, password: str | None,
          timeout: float = TIMEOUT) -> _SMTP | _SMTPS:
    """A connected, TLS-secured (as configured) and logged-in session."""
    if settings.security == "tls":
        smtp: _SMTP | _SMTPS = _SMTPS(settings.host, settings.port, timeout=timeout,
                                      context=tls_context(settings))
    else:
        smtp = _SMTP(settings.host, settings.port, timeout=timeout)
    try:
        smtp.ehlo()
        if settings.security == "starttls":
            smtp.starttls(context=tls_context(settings))
            smtp.ehlo()
        if settings.oauth:
            _oauth_login(smtp, settings)
        elif settings.username:
            smtp.login(settings.username,
                       password if password is not None else get_password(settings, "smtp"))
    except BaseException:
        smtp.close()
        raise
    return smtp


def _oauth_login(smtp: smtplib.SMTP, settings: SmtpSettings) -> None:
    """AUTH OAUTHBEARER or XOAUTH2 with a bearer token (helpdesk/auth/sasl.py picks and
    retries once). A refused or missing sign-in is a SignInError, which :func:`_opened`
    makes a temporary SendError: the outbox keeps the mail queued until a new sign-in."""
    from helpdesk.auth import sasl

    offered = smtp.esmtp_features.get("auth", "").upper().split()
    mech = sasl.choose(offered)
    if mech is None:
        raise smtplib.SMTPNotSupportedError(
            "OAuth2 sign-in (SASL OAUTHBEARER or XOAUTH2); check the host, or use "
            "auth = \"password\" in [smtp]")

    def attempt(mech: str, token: Any) -> None:
        payload = sasl.initial(mech, settings.username, token.value, settings.host,
                               settings.port)
        detail: dict[str, Any] = {}

        def answer(challenge: bytes | None = None) -> str:
            if challenge is None:  # the initial response, sent with AUTH
                return payload.decode()
            detail.update(sasl.parse_error(challenge) or {})
            return sasl.error_reply(mech).decode()

        try:
            smtp.auth(mech, answer, initial_response_ok=True)
        except smtplib.SMTPAuthenticationError as exc:
            said = exc.smtp_error.decode("utf-8", "replace") \
                if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            raise sasl.Refused(f"{exc.smtp_code} {said}", detail or None) from None

    try:
        sasl.login(settings, "smtp", mech, attempt)
    except sasl.Refused as exc:
        raise sasl.refused_sentence(exc, settings, "smtp") from None


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except Exception:
        smtp.close()


def _opened(settings: SmtpSettings, password: str | None, timeout: float = TIMEOUT
            ) -> _SMTP | _SMTPS:
    try:
        return _open(settings, password, timeout)
    except HelpdeskError as exc:  # no password (keyring, password_command): as it is
        raise SendError(f"Cannot log in to the SMTP server: {exc}", False) from None
    except Exception as exc:
        raise classify(exc, settings) from None


def send(settings: SmtpSettings, raw: bytes, sender: str, recipients: list[str],
         password: str | None = None) -> None:
    """Submit ``raw`` once; raise :class:`SendError` (classified) on any failure.

    Once the server has accepted the message, nothing after it (QUIT failing, the
    connection dropping) counts as a failure.
    """
    smtp = _opened(settings, password)
    try:
        smtp.sendmail(sender, recipients, raw)
    except Exception as exc:
        if smtp.payload_sent and not isinstance(exc, smtplib.SMTPResponseException):
            raise SendError(
                f"The connection to the SMTP server {settings.host}:{settings.port} broke "
                f"after the whole message was sent and before the server confirmed it, so "
                f"it may or may not have been delivered.", True, maybe_delivered=True
            ) from None
        raise classify(exc, settings) from None
    finally:
        _quit_quietly(smtp)


def check_connection(settings: SmtpSettings, password: str | None = None) -> str:
    """Connect, secure and log in without sending; a plain summary, or :class:`SendError`."""
    smtp = _opened(settings, password, timeout=15)
    try:
        smtp.noop()
    except Exception as exc:
        raise classify(exc, settings) from None
    finally:
        _quit_quietly(smtp)
    who = f" as {settings.username}" if settings.username else " (no login)"
    return f"Connected to {settings.host}{who}."
