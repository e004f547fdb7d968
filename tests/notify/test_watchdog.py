"""The watchdog's e-mails (plain Python, real SMTP into the sink): lateness alert and nightly digest."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from tthc.notify import ledger
from tthc.notify.watchdog import run_watchdog

from .helpers import (
    ENGINEERS,
    JUSTICE,
    MARKERS,
    SRC,
    UI_BASE,
    code,
    everything_in,
    read_mails,
    seed_run,
    seed_stages,
)

NIGHT = date(2026, 11, 21)  # a Saturday: the weekly source is not expected
AT_SIX = datetime(2026, 11, 21, 6, 0, 5)
AIRFLOW = "http://airflow.example.gov.vn:8080"


def test_late_and_failed_sources_alert_the_engineers_once(engine, smtp_env, registry):
    # igate_test: finished at 06:20 (late), with quality problems; igate_other: publish failed
    seed_run(
        engine,
        "sched",
        [(code(JUSTICE, i), JUSTICE, "cccd_format", "critical") for i in range(3)],
        at=datetime(2026, 11, 21, 6, 5),
    )
    seed_stages(engine, "sched", "igate_other", datetime(2026, 11, 21, 1, 0), {"publish": "failed"})

    result = run_watchdog(engine, registry, NIGHT, now=AT_SIX, airflow_url=AIRFLOW)
    assert result["late"] == [SRC, "igate_other"]
    assert result["alert"]["status"] == "sent" and result["digest"]["status"] == "sent"
    mails = read_mails(smtp_env)
    assert len(mails) == 2
    (alert,) = [m for m in mails if "CẢNH BÁO" in m.subject]
    assert alert.subject == (
        "[tthc-sync] CẢNH BÁO: chuỗi đồng bộ đêm 21/11/2026 chưa hoàn tất trước 06:00 (2/2 nguồn)"
    )
    assert sorted(alert.to) == sorted(ENGINEERS)
    assert f"* {SRC} (Văn phòng UBND tỉnh (hệ thống thử)): hoàn tất muộn" in alert.text
    assert "kết thúc 21/11/2026 06:20" in alert.text
    assert "* igate_other (UBND phường Hoàng Mai): lỗi, bước Gửi Cổng DVCQG, lượt sched" in alert.text
    assert f'href="{AIRFLOW}/dags/tthc_source_igate_other"' in alert.html
    assert f"{UI_BASE}/runs/" in alert.text
    assert "igate_weekly" not in alert.text and "igate_retired" not in alert.text

    (digest,) = [m for m in mails if "Tổng hợp" in m.subject]
    assert digest.subject.startswith("[tthc-sync] Tổng hợp đồng bộ hồ sơ TTHC ngày 21/11/2026: 1 đơn vị")
    assert "hoàn tất muộn" in digest.text and "nguồn chạy lỗi" in digest.subject
    for path in smtp_env.files():
        for marker in MARKERS:
            assert marker not in everything_in(path)

    again = run_watchdog(engine, registry, NIGHT, now=AT_SIX + timedelta(minutes=5), airflow_url=AIRFLOW)
    assert again["alert"]["status"] == "already_sent" and again["digest"]["status"] == "already_sent"
    assert len(smtp_env.files()) == 2
    keys = {(r["run_id"], r["kind"]) for r in ledger.sent(engine)}
    assert {("night:2026-11-21", "late_alert"), ("night:2026-11-21", "engineer_digest")} <= keys


def test_a_good_night_sends_nothing(engine, smtp_env, registry):
    seed_stages(engine, "sched", SRC, datetime(2026, 11, 21, 1, 0), {})
    seed_stages(engine, "sched", "igate_other", datetime(2026, 11, 21, 1, 0), {})
    result = run_watchdog(engine, registry, NIGHT, now=AT_SIX)
    assert result["late"] == []
    assert result["alert"] == {"status": "nothing_to_report"}
    assert result["digest"] == {"status": "nothing_to_report"}
    assert smtp_env.files() == []


def test_before_the_deadline_only_failures_alert(engine, smtp_env, registry):
    seed_stages(engine, "sched", SRC, datetime(2026, 11, 21, 1, 0), {"reconcile": "running"})
    result = run_watchdog(engine, registry, NIGHT, now=datetime(2026, 11, 21, 3, 0), digest=False)
    assert result["alert"] == {"status": "nothing_to_report"}
    assert [s["status"] for s in result["sources"]] == ["pending", "pending"]
    assert smtp_env.files() == []


def test_missing_sources_are_listed(engine, smtp_env, registry):
    result = run_watchdog(engine, registry, NIGHT, now=AT_SIX)
    assert result["late"] == [SRC, "igate_other"]
    mails = read_mails(smtp_env)
    (alert,) = [m for m in mails if "CẢNH BÁO" in m.subject]
    assert alert.text.count(": không chạy") == 2
    (digest,) = [m for m in mails if "Tổng hợp" in m.subject]
    assert f"* {SRC}: không có lượt chạy" in digest.text
    assert "* igate_other: không có lượt chạy" in digest.text
