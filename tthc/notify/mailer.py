"""Building and sending e-mails through the ``tthc_smtp`` Airflow connection, with plain smtplib.

Why smtplib and not the SMTP provider's hook: the hook resolves its connection through Airflow
only (so the CLI and tests outside a task cannot use it), builds HTML-only messages (no plain-text
alternative) and attaches files from paths on disk. Here the connection is read with
:func:`tthc.connections.get_connection` (``AIRFLOW_CONN_TTHC_SMTP`` first, then Airflow), and the
same connection extras as the provider are honoured, so one connection serves both this module and
the provider's ``SmtpNotifier`` used for task-failure alerts:

``disable_ssl`` (default false: implicit TLS, ``SMTP_SSL``), ``disable_tls`` (default false:
``STARTTLS`` on a plain connection), ``timeout`` (s, default 30), ``retry_limit`` (connection
attempts, default 5), ``from_email``, ``ssl_context`` (``default`` | ``none``).

A message's ``Message-ID`` is derived from its notification key (:func:`message_id_for`): should a
send be repeated after a crash, mail clients see the same message twice and may fold them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import smtplib
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email import encoders
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate

from tthc.connections import ConnInfo, get_connection

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "tthc_smtp"
DEFAULT_FROM = "tthc-sync@localhost"
_ADDRESS_RE = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")


class MailError(RuntimeError):
    """The SMTP server could not be reached or refused a message."""


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int | None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    use_ssl: bool = True
    starttls: bool = True
    timeout: float = 30.0
    retry_limit: int = 5
    from_email: str = DEFAULT_FROM
    verify_tls: bool = True

    @classmethod
    def from_connection(cls, conn: ConnInfo) -> SmtpSettings:
        extra = conn.extra or {}
        use_ssl = not _flag(extra.get("disable_ssl", False))
        return cls(
            host=conn.host or "localhost",
            port=conn.port,
            login=conn.login or None,
            password=conn.password or None,
            use_ssl=use_ssl,
            # STARTTLS only makes sense on a plain connection; the provider would try it on SMTP_SSL too
            starttls=not use_ssl and not _flag(extra.get("disable_tls", False)),
            timeout=float(extra.get("timeout", 30)),
            retry_limit=int(extra.get("retry_limit", 5)),
            from_email=str(extra.get("from_email") or os.environ.get("TTHC_MAIL_FROM") or DEFAULT_FROM),
            verify_tls=str(extra.get("ssl_context", "default")).lower() != "none",
        )

    @classmethod
    def from_env(cls, conn_id: str | None = None) -> SmtpSettings:
        """Settings of ``conn_id`` (default ``$TTHC_SMTP_CONN_ID`` or ``tthc_smtp``)."""
        return cls.from_connection(get_connection(conn_id or smtp_conn_id()))


def smtp_conn_id() -> str:
    return os.environ.get("TTHC_SMTP_CONN_ID", DEFAULT_CONN_ID)


def parse_addresses(value: str | Iterable[str] | None) -> list[str]:
    """Addresses from ``"a@x, b@y; c@z"`` or a list; invalid ones are dropped (and logged), order kept."""
    if value is None:
        return []
    items = re.split(r"[,;\s]+", value) if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        a = str(item).strip()
        if not a:
            continue
        if not _ADDRESS_RE.match(a):
            log.warning("ignoring a recipient that is not an e-mail address")
            continue
        if a.lower() not in (x.lower() for x in out):
            out.append(a)
    return out


def engineer_emails() -> list[str]:
    """The data engineers (``$TTHC_ENGINEER_EMAILS``, comma-separated)."""
    return parse_addresses(os.environ.get("TTHC_ENGINEER_EMAILS", "data-engineering@example.gov.vn"))


def recipients_hash(recipients: Iterable[str]) -> str:
    """SHA-256 of the sorted, lower-cased recipients: which list got a mail, without the addresses."""
    norm = "\n".join(sorted({r.strip().lower() for r in recipients}))
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


def message_id_for(key: Sequence[str], from_email: str) -> str:
    """A Message-ID that depends only on the notification key (and the sender's domain)."""
    digest = hashlib.sha256("\x1f".join(key).encode("utf-8")).hexdigest()[:40]
    domain = from_email.rsplit("@", 1)[-1] if "@" in from_email else "tthc-sync.local"
    return f"<tthc.{digest}@{domain}>"


def header_text(text: str, limit: int = 900) -> str:
    """A value safe for a header: no control characters (no header injection), bounded length."""
    clean = _CONTROL_RE.sub(" ", text).strip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def build_message(
    *,
    subject: str,
    sender: str,
    to: Sequence[str],
    text: str,
    html: str,
    cc: Sequence[str] = (),
    message_id: str | None = None,
    attachments: Sequence[tuple[str, bytes, str]] = (),
) -> Message:
    """multipart/mixed [ multipart/alternative [text/plain, text/html], attachments... ].

    ``attachments``: ``(filename, content, mime type)``. Built with the ``email.mime`` classes
    (policy compat32) on purpose: on Python 3.11 the default policy folds a long non-ASCII
    subject into encoded words and drops the space at a fold ("Châucó").
    """
    body = MIMEMultipart("alternative")
    body.attach(MIMEText(text, "plain", "utf-8"))
    body.attach(MIMEText(html, "html", "utf-8"))
    if attachments:
        msg: Message = MIMEMultipart("mixed")
        msg.attach(body)
        for filename, content, mime in attachments:
            maintype, subtype = mime.split("/", 1)
            part = MIMEBase(maintype, subtype)
            part.set_payload(content)
            encoders.encode_base64(part)
            part.add_header("Content-Disposition", "attachment", filename=header_text(filename, 200))
            msg.attach(part)
    else:
        msg = body
    msg["Subject"] = Header(header_text(subject), "utf-8")
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id or message_id_for((subject, formatdate()), sender)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    return msg


class Mailer:
    """Sends messages through one SMTP server (a connection per call)."""

    def __init__(self, settings: SmtpSettings | None = None) -> None:
        self._settings = settings

    @property
    def settings(self) -> SmtpSettings:
        if self._settings is None:
            self._settings = SmtpSettings.from_env()
        return self._settings

    @property
    def sender(self) -> str:
        return self.settings.from_email

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        ctx = ssl.create_default_context()
        if not s.verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        last: Exception | None = None
        for attempt in range(s.retry_limit + 1):
            try:
                if s.use_ssl:
                    client: smtplib.SMTP = smtplib.SMTP_SSL(
                        s.host, s.port or 465, timeout=s.timeout, context=ctx
                    )
                else:
                    client = smtplib.SMTP(s.host, s.port or 25, timeout=s.timeout)
                    if s.starttls:
                        client.starttls(context=ctx)
                        client.ehlo()
                if s.login and s.password:
                    client.login(s.login, s.password)
                return client
            except (OSError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError) as e:
                last = e
                if attempt < s.retry_limit:
                    time.sleep(min(2**attempt, 10) * 0.1)
        raise MailError(f"cannot reach the SMTP server {s.host}:{s.port}: {type(last).__name__}")

    def send(self, msg: Message) -> None:
        """Deliver one message; raises :class:`MailError` when the server refuses it.

        Only connecting is retried: once the server may have accepted the data, a retry could
        deliver twice; the caller's notification ledger decides instead.
        """
        client = self._connect()
        try:
            refused = client.send_message(msg)
        except smtplib.SMTPException as e:
            raise MailError(f"the SMTP server refused the message: {type(e).__name__}") from e
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
        if refused:
            log.warning("SMTP server refused %d of the recipients", len(refused))
