"""The SMTP sink stores every message it receives as an .eml file (world.md §8)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from sandbox.smtp_sink import SmtpSink, read_eml


def _message(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "tthc-sync@example.invalid"
    msg["To"] = "ops@example.invalid"
    msg["Subject"] = subject
    msg.set_content("Đồng bộ hồ sơ thất bại: 3 bản ghi bị cách ly.")
    return msg


def test_messages_land_as_eml_files(tmp_path):
    folder = tmp_path / "mail"
    with SmtpSink(folder, port=0) as sink:
        assert sink.port > 0
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as smtp:
            smtp.send_message(_message("Cảnh báo: chất lượng dữ liệu"))
            smtp.send_message(_message("second"), to_addrs=["a@example.invalid", "b@example.invalid"])
        files = sink.files()
        assert len(files) == 2 and all(p.suffix == ".eml" for p in files)
        assert not list(folder.glob("*.tmp"))
        first, second = sink.messages()
        assert first["Subject"] == "Cảnh báo: chất lượng dữ liệu"
        assert "cách ly" in first.get_content()
        assert first["X-Sandbox-Mail-From"] == "tthc-sync@example.invalid"
        assert second["X-Sandbox-Rcpt-To"] == "a@example.invalid, b@example.invalid"
        assert read_eml(files[1])["Subject"] == "second"
        sink.clear()
        assert sink.files() == []


def test_login_is_accepted_without_tls(tmp_path):
    with SmtpSink(tmp_path / "mail", port=0) as sink:
        with smtplib.SMTP("127.0.0.1", sink.port, timeout=5) as smtp:
            smtp.ehlo()
            smtp.login("airflow", "anything")
            smtp.send_message(_message("after login"))
        assert [m["Subject"] for m in sink.messages()] == ["after login"]


def test_stop_releases_the_port(tmp_path):
    sink = SmtpSink(tmp_path / "mail", port=0).start()
    port = sink.port
    sink.stop()
    again = SmtpSink(tmp_path / "mail2", port=port).start()  # the same port binds again
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
            assert smtp.noop()[0] == 250
    finally:
        again.stop()
