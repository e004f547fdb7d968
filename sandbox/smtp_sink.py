"""Local SMTP sink (world.md §8): an aiosmtpd server on 127.0.0.1 that stores every message it
receives as an ``.eml`` file in a folder.

File name: ``<YYYYmmddTHHMMSS.ffffff>-<seq>.eml`` (receive time, local clock; a sequence number
keeps names unique and ordered). The content is the message exactly as received, preceded by two
headers that record the SMTP envelope: ``X-Sandbox-Mail-From`` and ``X-Sandbox-Rcpt-To``
(comma-separated). Files are written to a ``.tmp`` name and renamed, so a reader never sees half a
message.

AUTH (PLAIN/LOGIN) is accepted with any credentials and is not required; no STARTTLS (clients must
be configured without TLS, e.g. Airflow's ``smtp_starttls = False``).

In process::

    with SmtpSink(folder, port=0) as sink:
        ... send to 127.0.0.1:sink.port ...
        sink.messages()  # list of email.message.EmailMessage, oldest first
"""

from __future__ import annotations

import email
import email.policy
import itertools
import logging
import threading
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

HOST = "127.0.0.1"

# aiosmtpd logs every connection and command at INFO (peers, envelope addresses; at DEBUG the
# data too): keep the sink quiet unless someone asks for its logs explicitly.
logging.getLogger("mail.log").setLevel(logging.WARNING)


class _EmlHandler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        content: bytes = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        prefix = (
            f"X-Sandbox-Mail-From: {envelope.mail_from}\r\n"
            f"X-Sandbox-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        with self._lock:
            seq = next(self._seq)
            self.received += 1
        name = f"{datetime.now().strftime('%Y%m%dT%H%M%S.%f')}-{seq:06d}.eml"
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / (name + ".tmp")
        tmp.write_bytes(prefix + content)
        tmp.rename(self.folder / name)
        return "250 Message accepted for delivery"


def _accept_any(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    return AuthResult(success=True)


class _Controller(Controller):
    """aiosmtpd's controller, able to listen on port 0 (it reads the port the OS gave)."""

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    def __init__(self, folder: str | Path, port: int = 8725, *, host: str = HOST) -> None:
        if host != HOST:
            raise ValueError("the sandbox only listens on 127.0.0.1")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.handler = _EmlHandler(self.folder)
        self._controller = _Controller(
            self.handler,
            hostname=host,
            port=port,
            authenticator=_accept_any,
            auth_require_tls=False,
            auth_required=False,
        )
        self.host = host

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.eml"))

    def messages(self) -> list[EmailMessage]:
        return [read_eml(p) for p in self.files()]

    def clear(self) -> None:
        for p in self.files():
            p.unlink()


def read_eml(path: str | Path) -> EmailMessage:
    with open(path, "rb") as fh:
        msg = email.message_from_binary_file(fh, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg
