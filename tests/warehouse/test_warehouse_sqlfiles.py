"""The SQL files: loader, and every file runs on both backends."""

from __future__ import annotations

from datetime import date, datetime

import pytest
import sqlalchemy as sa

from tthc.warehouse import sqlfiles

PARAMS = {
    "publish_candidates": {"source_id": "SRC1"},
    "quality_by_agency": {"source_id": None},
    "run_summary": {"run_id": "r"},
    "issues_by_rule": {"run_id": "r"},
    # tthc.kpi (province-wide indicators)
    "indicators_aggregate": {
        "period_type": "quarter",
        "period_start": date(2026, 7, 1),
        "province_code": None,
    },
    "indicators_period_dossiers": {"start": datetime(2026, 7, 1), "end": datetime(2026, 10, 1)},
    # tthc.notify (run statistics for the digest and the UI)
    "run_statistics": {"run_id": None, "source_id": None},
}


def test_every_sql_file_is_covered():
    assert {p.stem for p in sqlfiles.sql_dir().glob("*.sql")} == set(PARAMS)


def test_load_sql_returns_text_and_drops_comment_lines():
    clause = sqlfiles.load_sql("run_summary")
    assert isinstance(clause, sa.TextClause)
    assert "--" not in clause.text
    assert set(clause._bindparams) == {"run_id"}  # no bind parameters picked up from comments
    assert sqlfiles.load_sql("run_summary.sql").text == clause.text


def test_env_override_and_bad_names(tmp_path, monkeypatch):
    (tmp_path / "x.sql").write_text("-- a :comment\nSELECT :a AS a\n", encoding="utf-8")
    monkeypatch.setenv(sqlfiles.ENV_SQL_DIR, str(tmp_path))
    assert set(sqlfiles.load_sql("x")._bindparams) == {"a"}
    with pytest.raises(FileNotFoundError):
        sqlfiles.load_sql("missing")
    with pytest.raises(ValueError):
        sqlfiles.load_sql("../etc/passwd")


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_sql_file_runs(engine, name):
    with engine.connect() as conn:
        conn.execute(sqlfiles.load_sql(name), PARAMS[name]).all()
