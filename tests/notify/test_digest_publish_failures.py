"""Dossiers the portal keeps refusing reach the engineers in the digest (codes only)."""

from __future__ import annotations

from datetime import datetime

from tthc.notify.quality_mail import digest_context
from tthc.notify.render import render_pair
from tthc.warehouse import repo
from tthc.warehouse.db import get_engine, migrate


def test_repeated_publish_failures_are_in_the_digest(tmp_path, monkeypatch):
    monkeypatch.setenv("TTHC_PORTAL_FAILURE_REPORT_AFTER", "3")
    engine = get_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    migrate(engine)
    failing = {
        "source_id": "igate_tinh",
        "dossier_code": "000.00.12.H40-261101-0007",
        "error": "-5 Hồ sơ không hợp lệ",
    }
    once = {"source_id": "igate_tinh", "dossier_code": "000.00.12.H40-261101-0008", "error": "-5"}
    for _ in range(3):
        repo.mark_publish_failed(engine, [failing])
    repo.mark_publish_failed(engine, [once])
    ctx = digest_context(engine, [], now=datetime(2026, 11, 24, 6, 0), base_url=None)
    assert [(f["dossier_code"], f["attempts"]) for f in ctx["publish_failures"]] == [
        (failing["dossier_code"], 3)
    ]
    ctx["day"] = ctx["now"].date()
    text, html = render_pair("engineer_digest", **ctx)
    for part in (text, html):
        assert failing["dossier_code"] in part and once["dossier_code"] not in part
        assert "thất bại nhiều lần" in part.lower()
