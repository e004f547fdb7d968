"""Data-quality e-mails through real SMTP (loopback) into the sandbox's SMTP sink.

Two runs of one source are stored; the second is the one reported. Every message the sink wrote is
parsed with the ``email`` package and its content checked: recipients, Vietnamese subject, text
and HTML parts, counts per rule with descriptions and the change since the previous run, capped
codes in the body and all of them in the CSV, escaping, no personal data, and idempotence.
"""

from __future__ import annotations

import json
import re
import socket
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from tthc.notify import ledger, quality_mail
from tthc.notify.quality_mail import NotificationError, run_notifications

from .helpers import (
    CLEAN,
    COMMUNE,
    ENGINEERS,
    EVIL_CODE,
    EVIL_NAME,
    JUSTICE,
    JUSTICE_STEWARD,
    MARKER_CCCD,
    MARKERS,
    OWNER,
    SOURCE_STEWARD,
    SRC,
    UI_BASE,
    code,
    everything_in,
    read_mails,
    seed_run,
    smtp_conn,
)

PREV = "scheduled__2026-11-19T18:00:00+00:00"
RUN = "scheduled__2026-11-20T18:00:00+00:00"
NOW = datetime(2026, 11, 21, 1, 30)
UNREGISTERED = "000.99.99.H40"


def _previous(engine) -> None:
    issues = [(code(JUSTICE, i), JUSTICE, "cccd_format", "critical") for i in range(3)]
    issues += [(code(JUSTICE, i), JUSTICE, "unknown_sex", "warning") for i in range(50, 52)]
    issues += [(code(COMMUNE, 1), COMMUNE, "missing_finished_date", "warning")]
    seed_run(engine, PREV, issues, at=datetime(2026, 11, 20, 1, 0))


def _current_issues() -> list[tuple[str, str | None, str, str]]:
    issues = [(code(JUSTICE, i), JUSTICE, "cccd_format", "critical") for i in range(55)]
    issues += [(code(JUSTICE, i), JUSTICE, "unknown_sex", "warning") for i in range(50, 60)]
    issues += [(EVIL_CODE, COMMUNE, "dossier_code_format", "critical")]
    # attributed to the agency owning the source system: no agency, unregistered agency, and a
    # dossier whose code field holds an ID number (it must be masked in every e-mail)
    issues += [(code(OWNER, 1), None, "required_agency_code", "critical")]
    issues += [(code(OWNER, 2), UNREGISTERED, "unknown_agency", "warning")]
    issues += [(MARKER_CCCD, OWNER, "dossier_code_format", "critical")]
    return issues


def _current(engine) -> None:
    seed_run(
        engine,
        RUN,
        _current_issues(),
        at=datetime(2026, 11, 21, 1, 0),
        extra_dossiers=[(code(CLEAN, 1), CLEAN), (code(COMMUNE, 1), COMMUNE)],
    )


@pytest.fixture
def night(engine, smtp_env, registry):
    _previous(engine)
    _current(engine)
    result = run_notifications(engine, RUN, [SRC], registry, now=NOW)
    return {"result": result, "mails": read_mails(smtp_env), "sink": smtp_env}


def _by_agency(mails, agency_code: str):
    found = [m for m in mails if f"mã đơn vị {agency_code}" in m.text]
    assert len(found) == 1, [m.subject for m in mails]
    return found[0]


def _digest(mails):
    (d,) = [m for m in mails if m.subject.startswith("[tthc-sync] Tổng hợp")]
    return d


def test_one_mail_per_agency_with_problems_plus_the_digest(night):
    mails = night["mails"]
    assert len(mails) == 4  # justice, commune, owner + the engineers' digest; the clean agency: none
    assert not [m for m in mails if CLEAN in m.text and "mã đơn vị" in m.text]
    statuses = {a["agency_code"]: a["status"] for a in night["result"]["agencies"]}
    assert statuses == {JUSTICE: "sent", COMMUNE: "sent", OWNER: "sent"}
    assert night["result"]["digest"]["status"] == "sent"

    justice = _by_agency(mails, JUSTICE)
    assert justice.to == [JUSTICE_STEWARD] and justice.cc == [SOURCE_STEWARD]
    assert sorted(justice.rcpt) == sorted([JUSTICE_STEWARD, SOURCE_STEWARD])
    assert _by_agency(mails, COMMUNE).to == [SOURCE_STEWARD]
    assert _by_agency(mails, OWNER).to == [SOURCE_STEWARD]
    assert sorted(_digest(mails).to) == sorted(ENGINEERS)


def test_agency_mail_is_vietnamese_html_with_text_alternative_and_csv(night):
    m = _by_agency(night["mails"], JUSTICE)
    assert m.subject == (
        "[tthc-sync] Chất lượng dữ liệu hồ sơ TTHC ngày 21/11/2026: Sở Tư pháp có 60 hồ sơ cần rà soát"
    )
    assert m.msg.get_content_type() == "multipart/mixed"
    (alt,) = [p for p in m.msg.iter_parts() if p.get_content_type() == "multipart/alternative"]
    assert [p.get_content_type() for p in alt.iter_parts()] == ["text/plain", "text/html"]
    assert list(m.attachments) == ["ho-so-can-ra-soat_000.00.12.H40_20261121.csv"]
    assert m.html.lstrip().startswith("<!DOCTYPE html>") and 'lang="vi"' in m.html
    assert "Kính gửi cán bộ phụ trách dữ liệu của Sở Tư pháp" in m.text
    (sent,) = [a for a in night["result"]["agencies"] if a["agency_code"] == JUSTICE]
    assert m.msg["Message-ID"] == sent["message_id"]


def test_counts_per_rule_with_description_severity_and_delta(night):
    from tthc.notify.quality_mail import describe_rule

    m = _by_agency(night["mails"], JUSTICE)
    cccd = describe_rule("cccd_format").description_vi
    sex = describe_rule("unknown_sex").description_vi
    assert cccd and sex
    # text part: one line per rule, then its description
    assert "* cccd_format [nghiêm trọng]: 55 hồ sơ (so với lượt trước: +52)" in m.text
    assert "* unknown_sex [cảnh báo]: 10 hồ sơ (so với lượt trước: +8)" in m.text
    assert cccd in m.text and sex in m.text
    assert "ghi nhận 60 hồ sơ có lỗi dữ liệu (thay đổi so với lượt trước: +55)" in m.text
    assert "- 55 hồ sơ có lỗi mức nghiêm trọng" in m.text
    assert "- 5 hồ sơ chỉ có cảnh báo" in m.text
    assert "Hiện có 55 hồ sơ của đơn vị đang bị giữ lại" in m.text
    # HTML part: the same figures in the rule table
    rows = re.findall(r"<tr>(.*?)</tr>", m.html, flags=re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r, flags=re.S) for r in rows]
    table = {re.sub(r"</?code>", "", c[0]): c[1:] for c in cells if len(c) == 5}
    assert table["cccd_format"] == [cccd, "nghiêm trọng", "55", "+52"]
    assert table["unknown_sex"] == [sex, "cảnh báo", "10", "+8"]


def test_resolved_rules_are_reported_with_their_drop(night):
    m = _by_agency(night["mails"], COMMUNE)
    assert "Không còn hồ sơ vi phạm so với lượt trước: missing_finished_date (−1)." in m.text
    assert "* dossier_code_format [nghiêm trọng]: 1 hồ sơ (so với lượt trước: +1)" in m.text


def test_codes_capped_in_body_and_complete_in_csv(night):
    m = _by_agency(night["mails"], JUSTICE)
    shown_html = re.findall(r"<code>(000\.00\.12\.H40-261120-\d{4})</code>", m.html)
    shown_text = re.findall(r"^(000\.00\.12\.H40-261120-\d{4})  ", m.text, flags=re.M)
    assert len(shown_html) == len(set(shown_html)) == 50
    assert shown_text == shown_html
    # critical dossiers first
    assert shown_html == [code(JUSTICE, i) for i in range(50)]
    assert "… và <b>10</b> hồ sơ khác." in m.html and "... và 10 hồ sơ khác." in m.text
    rows = m.csv_rows()
    assert list(rows[0]) == ["dossier_code", "rule_id", "severity"]
    want = {(c, r, s) for c, a, r, s in _current_issues() if a == JUSTICE}
    assert {(r["dossier_code"], r["rule_id"], r["severity"]) for r in rows} == want
    assert len(rows) == len(want) == 65


def test_unknown_and_missing_agencies_go_to_the_source_owner(night):
    m = _by_agency(night["mails"], OWNER)
    assert "* required_agency_code [nghiêm trọng]: 1 hồ sơ" in m.text
    assert "* unknown_agency [cảnh báo]: 1 hồ sơ" in m.text
    assert {r["rule_id"] for r in m.csv_rows()} == {
        "required_agency_code",
        "unknown_agency",
        "dossier_code_format",
    }


def test_code_shaped_like_an_id_number_is_masked(night):
    m = _by_agency(night["mails"], OWNER)
    masked = "079*******45"
    assert masked in m.text and masked in m.html
    assert masked in {r["dossier_code"] for r in m.csv_rows()}


def test_link_to_the_data_quality_page(night):
    m = _by_agency(night["mails"], JUSTICE)
    (href,) = re.findall(r'<a href="([^"]+)"', m.html)
    url = urlsplit(href.replace("&amp;", "&"))
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{UI_BASE}/dq/"
    assert parse_qs(url.query) == {"source": [SRC], "run": [RUN]}
    assert f"{UI_BASE}/dq/?" in m.text


def test_strings_from_source_systems_are_escaped(night):
    m = _by_agency(night["mails"], COMMUNE)
    assert "<script" not in m.html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in m.html
    assert "UBND xã &lt;script&gt;alert(&#39;tên&#39;)&lt;/script&gt; Đông" in m.html
    # the plain-text part and the subject carry them as the text they are
    assert EVIL_CODE in m.text and EVIL_NAME in m.text and EVIL_NAME in m.subject
    assert [r["dossier_code"] for r in m.csv_rows()] == [EVIL_CODE]
    digest = _digest(night["mails"])
    assert "<script" not in digest.html.lower() and "&lt;script&gt;" in digest.html


def test_no_personal_data_in_any_mail(night):
    files = night["sink"].files()
    assert len(files) == 4
    for path in files:
        content = everything_in(path)
        for marker in MARKERS:
            assert marker not in content, (path.name, marker)


def test_digest_covers_every_agency_and_the_run(night):
    d = _digest(night["mails"])
    assert (
        d.subject == "[tthc-sync] Tổng hợp đồng bộ hồ sơ TTHC ngày 21/11/2026: 3 đơn vị có hồ sơ cần rà soát"
    )
    assert [p.get_content_type() for p in d.msg.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]
    for agency in (JUSTICE, COMMUNE, OWNER):
        assert f"{agency} " in d.text
    assert CLEAN not in d.text
    assert (
        "[igate_test] 000.00.12.H40 Sở Tư pháp: 60 hồ sơ (55 nghiêm trọng, 5 cảnh báo; so với lượt trước +55)"
        in d.text
    )
    assert "thư cho đơn vị: đã gửi" in d.text
    assert "* cccd_format [nghiêm trọng]: 55 hồ sơ ở 1 đơn vị (so với lượt trước +52)" in d.text
    assert "* dossier_code_format [nghiêm trọng]: 2 hồ sơ ở 2 đơn vị" in d.text
    # run statistics: 5 stages of 3 minutes, counts from pipeline_runs
    assert f"* {SRC} (lượt {RUN}): hoàn tất" in d.text
    assert (
        "thời gian 15 phút 0 giây; kéo về 66, hợp lệ 8, cách ly 58, đối chiếu khớp 8, đã gửi Cổng 8" in d.text
    )
    assert "  - Kiểm tra chất lượng: hoàn tất, vào 66, ra 8, 3 phút 0 giây" in d.text
    assert f"{UI_BASE}/dq/" in d.text and f'href="{UI_BASE}/runs/"' in d.html


def test_retry_sends_nothing_twice(night, engine, registry):
    again = run_notifications(engine, RUN, [SRC], registry, now=NOW)
    assert len(night["sink"].files()) == 4
    assert again["sent"] == 0 and again["already_sent"] == 3
    assert again["digest"]["status"] == "already_sent"
    rows = ledger.sent(engine, RUN)
    assert len(rows) == 4 and all(r["sent_at"] == NOW for r in rows)
    assert {(r["source_id"], r["agency_code"], r["kind"]) for r in rows} == {
        (SRC, JUSTICE, "agency_quality"),
        (SRC, COMMUNE, "agency_quality"),
        (SRC, OWNER, "agency_quality"),
        (SRC, "*", "engineer_digest"),
    }
    assert all(len(r["recipients_hash"]) == 64 and "@" not in r["recipients_hash"] for r in rows)


def test_clean_run_sends_nothing(engine, smtp_env, registry):
    seed_run(
        engine,
        RUN,
        [],
        at=datetime(2026, 11, 21, 1, 0),
        extra_dossiers=[(code(CLEAN, i), CLEAN) for i in range(5)],
    )
    result = run_notifications(engine, RUN, [SRC], registry, now=NOW)
    assert result["agencies"] == [] and result["digest"] == {"status": "nothing_to_report"}
    assert smtp_env.files() == []
    assert ledger.sent(engine) == []


def test_failed_run_without_quality_problems_still_reaches_the_engineers(engine, smtp_env, registry):
    seed_run(
        engine,
        RUN,
        [],
        at=datetime(2026, 11, 21, 1, 0),
        extra_dossiers=[(code(CLEAN, 1), CLEAN)],
        stage_status={"publish": "failed"},
    )
    result = run_notifications(engine, RUN, [SRC], registry, now=NOW)
    assert result["agencies"] == [] and result["digest"]["status"] == "sent"
    (d,) = read_mails(smtp_env)
    assert d.subject.endswith("0 đơn vị có hồ sơ cần rà soát, 1 nguồn chạy lỗi")
    assert "lỗi ở bước Gửi Cổng DVCQG" in d.text
    assert "ConnectionError" not in d.text  # error texts stay in the warehouse and the logs


def test_crash_between_send_and_confirm_resends_with_the_same_message_id(
    engine, smtp_env, registry, monkeypatch
):
    _current(engine)
    real_confirm = ledger.confirm
    calls = {"n": 0}

    def crash_once(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("worker killed")
        return real_confirm(*a, **kw)

    monkeypatch.setattr(ledger, "confirm", crash_once)
    with pytest.raises(RuntimeError):
        run_notifications(engine, RUN, [SRC], registry, now=NOW, digest=False)
    first = read_mails(smtp_env)
    assert len(first) == 1
    unconfirmed = [r for r in ledger.sent(engine, RUN) if r["sent_at"] is None]
    assert len(unconfirmed) == 1

    result = run_notifications(engine, RUN, [SRC], registry, now=NOW, digest=False)
    assert result["sent"] == 3
    mails = read_mails(smtp_env)
    assert len(mails) == 4  # the unconfirmed one once more, the two others once
    ids = [m.msg["Message-ID"] for m in mails]
    assert ids.count(first[0].msg["Message-ID"]) == 2 and len(set(ids)) == 3
    assert all(r["sent_at"] is not None for r in ledger.sent(engine, RUN))


def test_smtp_down_fails_the_task_and_the_retry_sends_each_mail_once(engine, smtp_env, registry, monkeypatch):
    _current(engine)
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    conn = json.loads(smtp_conn(dead))
    conn["extra"].update(retry_limit=0, timeout=2)
    monkeypatch.setenv("AIRFLOW_CONN_TTHC_SMTP", json.dumps(conn))
    with pytest.raises(NotificationError, match="cannot reach the SMTP server"):
        run_notifications(engine, RUN, [SRC], registry, now=NOW)
    assert smtp_env.files() == []

    monkeypatch.setenv("AIRFLOW_CONN_TTHC_SMTP", smtp_conn(smtp_env.port))
    result = run_notifications(engine, RUN, [SRC], registry, now=NOW)
    assert result["sent"] == 3 and result["digest"]["status"] == "sent"
    assert len(smtp_env.files()) == 4


def test_several_sources_share_one_digest(engine, smtp_env, registry):
    _current(engine)
    result = run_notifications(engine, RUN, [SRC, "igate_other"], registry, now=NOW)
    assert result["digest"]["status"] == "sent"
    d = _digest(read_mails(smtp_env))
    assert "* igate_other (lượt " in d.text and "không có lượt chạy" in d.text
    (row,) = [r for r in ledger.sent(engine, RUN) if r["kind"] == "engineer_digest"]
    assert (row["source_id"], row["agency_code"]) == ("*", "*")


def test_agency_without_stewards_is_not_mailed_but_named_in_the_digest(engine, smtp_env, tmp_path):
    from tthc.registry import load_registry

    from .helpers import REGISTRY_YAML

    p = tmp_path / "no-stewards.yaml"
    p.write_text(REGISTRY_YAML.replace(f"    stewards: [{SOURCE_STEWARD}]\n", ""), encoding="utf-8")
    reg = load_registry(p)
    _current(engine)
    result = run_notifications(engine, RUN, [SRC], reg, now=NOW)
    statuses = {a["agency_code"]: a["status"] for a in result["agencies"]}
    assert statuses == {JUSTICE: "sent", COMMUNE: "no_recipients", OWNER: "no_recipients"}
    mails = read_mails(smtp_env)
    assert len(mails) == 2
    assert "chưa khai báo người phụ trách" in _digest(mails).text


def test_ledger_has_one_row_per_key(engine):
    args = ("r1", SRC, JUSTICE, "agency_quality")
    assert ledger.claim(engine, *args, recipients_hash="a" * 64, message_id="<m1@x>") == "new"
    assert ledger.claim(engine, *args, recipients_hash="b" * 64, message_id="<m1@x>") == "unconfirmed"
    ledger.confirm(engine, *args, now=NOW)
    assert ledger.claim(engine, *args, recipients_hash="b" * 64, message_id="<m1@x>") == "sent"
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT COUNT(*) FROM notifications")).scalar() == 1
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO notifications (run_id, source_id, agency_code, kind, recipients_hash,"
                " message_id) VALUES ('r1', :s, :a, 'agency_quality', 'x', 'y')"
            ),
            {"s": SRC, "a": JUSTICE},
        )
    with pytest.raises(ValueError, match="kind"):
        ledger.claim(engine, "r1", SRC, JUSTICE, "sms", recipients_hash="a", message_id="b")


def test_rule_descriptions_come_from_the_suite_file():
    d = quality_mail.describe_rule("unparseable_received_at")
    assert (
        d.severity == "critical" and "received_at" in d.description_vi and "<field>" not in d.description_vi
    )
    assert quality_mail.describe_rule("no_such_rule").description_vi == ""


def test_source_level_findings_reach_the_owner_and_the_digest(engine, smtp_env, registry):
    """Rules that fail for the whole source (no dossier named) still make an e-mail."""
    seed_run(
        engine,
        RUN,
        [],
        at=datetime(2026, 11, 21, 1, 0),
        extra_dossiers=[(code(CLEAN, 1), CLEAN)],
        rule_rows=[{"rule_id": "freshness", "severity": "warning", "evaluated": 1, "failed": 1}],
    )
    result = run_notifications(engine, RUN, [SRC], registry, now=NOW)
    got = [(a["agency_code"], a["status"], a["dossiers"]) for a in result["agencies"]]
    assert got == [(OWNER, "sent", 0)]
    mails = read_mails(smtp_env)
    owner = _by_agency(mails, OWNER)
    assert owner.subject.endswith("cảnh báo về nguồn Văn phòng UBND tỉnh (hệ thống thử)")
    assert "CẢNH BÁO VỀ HỆ THỐNG NGUỒN" in owner.text and "* freshness [cảnh báo]:" in owner.text
    assert owner.attachments == {}
    assert f"* {SRC}: freshness (cảnh báo)" in _digest(mails).text
