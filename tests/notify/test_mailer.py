"""SMTP settings from the Airflow connection, addresses, headers, rendering helpers, registry stewards."""

from __future__ import annotations

import json

import pytest

from tthc.connections import ConnInfo
from tthc.notify import render
from tthc.notify.mailer import (
    Mailer,
    SmtpSettings,
    build_message,
    header_text,
    message_id_for,
    parse_addresses,
    recipients_hash,
)
from tthc.registry import RegistryError, load_registry

from .helpers import REGISTRY_YAML, read_mails, smtp_conn


def conn(**extra) -> ConnInfo:
    return ConnInfo("tthc_smtp", "smtp", "mail.example.gov.vn", 587, None, "user", "secret", extra)


def test_settings_follow_the_smtp_provider_extras():
    s = SmtpSettings.from_connection(conn())
    assert (s.use_ssl, s.starttls, s.timeout, s.retry_limit, s.verify_tls) == (True, False, 30.0, 5, True)
    s = SmtpSettings.from_connection(conn(disable_ssl=True))
    assert (s.use_ssl, s.starttls) == (False, True)
    s = SmtpSettings.from_connection(
        conn(
            disable_ssl="true",
            disable_tls="true",
            timeout=5,
            retry_limit=1,
            from_email="a@b.vn",
            ssl_context="none",
        )
    )
    assert (s.use_ssl, s.starttls, s.timeout, s.retry_limit, s.from_email, s.verify_tls) == (
        False,
        False,
        5.0,
        1,
        "a@b.vn",
        False,
    )
    assert (s.host, s.port, s.login) == ("mail.example.gov.vn", 587, "user")
    assert "secret" not in repr(s)


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TTHC_SMTP", smtp_conn(2525))
    s = SmtpSettings.from_env()
    assert (s.host, s.port, s.use_ssl, s.starttls, s.from_email) == (
        "127.0.0.1",
        2525,
        False,
        False,
        "tthc-sync@example.gov.vn",
    )
    monkeypatch.setenv("TTHC_SMTP_CONN_ID", "other_smtp")
    monkeypatch.setenv("AIRFLOW_CONN_OTHER_SMTP", json.dumps({"conn_type": "smtp", "host": "10.0.0.1"}))
    assert SmtpSettings.from_env().host == "10.0.0.1"


def test_addresses_and_recipient_hash():
    assert parse_addresses("a@x.vn, b@y.vn;c@z.vn  a@x.vn") == ["a@x.vn", "b@y.vn", "c@z.vn"]
    assert parse_addresses(["ok@x.vn", "not an address", "evil@x.vn\r\nBcc: z@z.vn"]) == ["ok@x.vn"]
    assert parse_addresses(None) == []
    assert recipients_hash(["B@x.vn", "a@x.vn"]) == recipients_hash(["a@x.vn", "b@x.vn"])
    assert len(recipients_hash(["a@x.vn"])) == 64


def test_message_id_depends_on_the_key_only():
    a = message_id_for(("run", "src", "agency", "agency_quality"), "tthc@example.gov.vn")
    assert a == message_id_for(("run", "src", "agency", "agency_quality"), "other@example.gov.vn")
    assert a != message_id_for(("run", "src", "agency", "engineer_digest"), "tthc@example.gov.vn")
    assert a.startswith("<tthc.") and a.endswith("@example.gov.vn>")


def test_headers_cannot_be_injected():
    assert header_text("Tiêu đề\r\nBcc: x@y.vn") == "Tiêu đề Bcc: x@y.vn"
    msg = build_message(
        subject="Báo cáo\nBcc: spy@evil.vn", sender="a@x.vn", to=["b@x.vn"], text="t", html="<p>h</p>"
    )
    assert msg["Bcc"] is None and "\n" not in str(msg["Subject"])


def test_long_vietnamese_subject_survives_folding(smtp_env):
    subject = (
        "[tthc-sync] Chất lượng dữ liệu hồ sơ TTHC ngày 21/11/2026: UBND xã Diễn Châu có 1 hồ sơ cần rà soát"
    )
    msg = build_message(
        subject=subject, sender="tthc@example.gov.vn", to=["a@example.gov.vn"], text="t", html="h"
    )
    Mailer().send(msg)
    (m,) = read_mails(smtp_env)
    assert m.subject == subject


def test_formatting_helpers():
    assert render.num(1234567) == "1.234.567" and render.num(None) == "—" and render.num(2.5) == "2,5"
    assert (render.delta(3), render.delta(-2), render.delta(0), render.delta(None)) == (
        "+3",
        "−2",
        "0",
        "mới",
    )
    assert render.duration(3725) == "1 giờ 2 phút" and render.duration(65) == "1 phút 5 giây"
    assert render.duration(None) == "—"
    assert render.safe_code("H40-250101-0001") == "H40-250101-0001"
    assert render.safe_code("079188012345") == "079*******45"
    assert render.safe_code("a\x00b\nc") == "a b c"


def test_html_templates_escape_and_text_templates_do_not():
    env = render.environment()
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
    html = env.get_template("_layout.html").render()
    assert html.startswith("<!DOCTYPE html>")
    assert env.autoescape("agency_quality.html") is True and env.autoescape("agency_quality.txt") is False


def test_agency_stewards_in_the_registry(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(REGISTRY_YAML, encoding="utf-8")
    reg = load_registry(p)
    justice = [a for a in reg.get("igate_test").agencies if a.code == "000.00.12.H40"][0]
    assert justice.stewards == ("dulieu.tuphap@example.gov.vn",)
    assert all(a.stewards == () for a in reg.get("igate_test").agencies if a.code != "000.00.12.H40")
    p.write_text(REGISTRY_YAML.replace("stewards: [dulieu.tuphap@example.gov.vn]", "stewards: [not-mail]"))
    with pytest.raises(RegistryError, match="igate_test.*agencies.*stewards"):
        load_registry(p)


def test_the_project_registry_still_loads():
    reg = load_registry()
    assert reg.sources
