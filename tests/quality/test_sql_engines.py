"""The custom expectations give the same per-record answers on SQL engines as on pandas."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.quality.cases import BAD_CASES, GOOD_CCCD, crafted_batch

CUSTOM_TYPES = {
    "expect_column_values_to_be_valid_cccd",
    "expect_column_values_to_match_dossier_code",
    "expect_column_pair_values_to_be_consistent_with_cccd",
    "expect_column_pair_dossier_code_date_to_match_receipt",
    "expect_column_pair_values_days_apart_to_be_between",
}
PG_URL = os.environ.get("TTHC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
def custom_spec():
    from tthc.quality.validate import load_suite_spec

    spec = load_suite_spec()
    exps = [e for e in spec["expectations"] if e["type"] in CUSTOM_TYPES]
    assert {e["type"] for e in exps} == CUSTOM_TYPES
    return {"name": "custom_only", "expectations": exps}


@pytest.fixture(scope="module")
def frame_and_pandas(custom_spec):
    from tthc.quality.validate import prepare_frame, run_gx, suite_columns

    rows, bad_rows, _clean = crafted_batch()
    frame = prepare_frame(rows, suite_columns(custom_spec))
    frame = frame.drop(columns=["dossier_key", "raw_issue_fields"])
    return frame, bad_rows, _unexpected(run_gx(frame, custom_spec))


def _unexpected(result) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for r in result.results:
        assert not r.exception_info.get("raised_exception"), r.exception_info.get("exception_message")
        rows = out.setdefault(r.expectation_config.meta["rule_id"], set())
        for block in r.result.get("unexpected_index_list") or ():
            rows.update(int(i) for i in block["_row"])
    return out


def _run_sql(engine, table: str, spec) -> dict[str, set[int]]:
    import great_expectations as gx

    from tthc.quality.validate import SQL_RESULT_FORMAT, _gx_context, _gx_suite

    ctx = _gx_context()
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "sqlite":
        ds = ctx.data_sources.add_sqlite("db", connection_string=url)
    else:
        ds = ctx.data_sources.add_postgres("db", connection_string=url)
    bd = ds.add_table_asset("dossiers", table_name=table).add_batch_definition_whole_table("all")
    suite = ctx.suites.add(_gx_suite(spec))
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name="sql", data=bd, suite=suite))
    result = vd.run(result_format=SQL_RESULT_FORMAT)
    # identifiers only, on SQL too: no ID number or birth date of the crafted rows in the result
    text = json.dumps(result.to_json_dict(), default=str)
    assert not [v for v in (GOOD_CCCD, "999185000123", "1990-01-01", "04/03/1985") if v in text]
    return _unexpected(result)


def _check(sql: dict[str, set[int]], pandas: dict[str, set[int]], bad_rows: dict[str, int]) -> None:
    assert sql == pandas
    for case, rule, _ in BAD_CASES:
        if rule in pandas:
            assert bad_rows[case] in pandas[rule], case
    assert all(pandas.values())


def test_sqlite_agrees_with_pandas(tmp_path, custom_spec, frame_and_pandas):
    import sqlalchemy as sa

    frame, bad_rows, pandas_unexpected = frame_and_pandas
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'dossiers.db'}")
    frame.to_sql("dossiers", engine, index=False)
    _check(_run_sql(engine, "dossiers", custom_spec), pandas_unexpected, bad_rows)


@pytest.mark.postgres
def test_postgres_agrees_with_pandas(custom_spec, frame_and_pandas):
    import sqlalchemy as sa

    frame, bad_rows, pandas_unexpected = frame_and_pandas
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect():
            pass
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not reachable: {type(exc).__name__}")
    table = f"tthc_quality_test_{uuid.uuid4().hex[:8]}"
    try:
        frame.to_sql(table, engine, index=False)
        _check(_run_sql(engine, table, custom_spec), pandas_unexpected, bad_rows)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()
