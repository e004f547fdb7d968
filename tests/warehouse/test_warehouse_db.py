"""Engines, SQLite pragmas and the Alembic migrations on both backends."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url

from tthc.warehouse import db, repo
from tthc.warehouse.schema import TABLES, metadata

from .helpers import BACKENDS, make_dossier


def _diff(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        mc = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(mc, metadata)


def _table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}


# ---- engines ------------------------------------------------------------------------------------


def test_url_from_argument_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setattr(db, "DEFAULT_SQLITE_PATH", tmp_path / "var" / "warehouse.db")
    monkeypatch.delenv(db.ENV_URL, raising=False)
    default = db.get_engine()
    try:
        assert Path(default.url.database) == tmp_path / "var" / "warehouse.db"
        assert (tmp_path / "var").is_dir()  # created for the SQLite file

        monkeypatch.setenv(db.ENV_URL, f"sqlite:///{tmp_path / 'env' / 'wh.db'}")
        assert Path(db.get_engine().url.database) == tmp_path / "env" / "wh.db"
        assert Path(db.get_engine(f"sqlite:///{tmp_path / 'arg.db'}").url.database) == tmp_path / "arg.db"
    finally:
        db.dispose_engines()


def test_engines_are_cached_per_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    try:
        assert db.get_engine(url) is db.get_engine(url)
        assert db.get_engine(url) is not db.get_engine(f"sqlite:///{tmp_path / 'b.db'}")
    finally:
        db.dispose_engines()


def test_postgres_urls_use_psycopg3():
    assert db.resolve_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert db.resolve_url("postgresql://u@h/d").drivername == "postgresql+psycopg"
    assert db.resolve_url("postgresql+psycopg://u@h/d").drivername == "postgresql+psycopg"


def test_sqlite_pragmas(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    try:
        with db.get_engine(url).connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.SQLITE_BUSY_TIMEOUT_MS
    finally:
        db.dispose_engines()


def test_sqlite_enforces_foreign_keys(tmp_path):
    engine = db.migrate(f"sqlite:///{tmp_path / 'fk.db'}")
    try:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO dossier_history (source_id, dossier_code, version, content_hash, payload,"
                " run_id, loaded_at) VALUES ('S', 'nope', 1, 'h', '{}', 'r', '2026-01-01 00:00:00')"
            )
    finally:
        db.dispose_engines()


@pytest.mark.postgres
def test_postgres_sessions_plan_with_actual_parameters(pg_shared_url):
    with db.get_engine(pg_shared_url).connect() as conn:
        assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"


@pytest.mark.postgres
def test_postgres_sessions_do_not_jit_compile_unless_the_url_asks(pg_shared_url):
    """A night's per-source statements cost more to JIT-compile than they save; a deployment may
    still switch it back on in the warehouse URL."""
    with db.get_engine(pg_shared_url).connect() as conn:
        assert conn.exec_driver_sql("SHOW jit").scalar() == "off"
    url = make_url(pg_shared_url).update_query_dict({"options": "-c jit=on"})
    try:
        with db.get_engine(url).connect() as conn:
            assert conn.exec_driver_sql("SHOW jit").scalar() == "on"
            assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
    finally:
        db.dispose_engine(url)


# ---- migrations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fresh_url", BACKENDS, indirect=True)
def test_upgrade_on_empty_database_matches_metadata(fresh_url):
    engine = db.migrate(fresh_url)
    assert db.current_revision(engine) == db.head_revision()
    assert _table_names(engine) == {t.name for t in TABLES}
    assert _diff(engine) == []


@pytest.mark.parametrize("fresh_url", BACKENDS, indirect=True)
def test_upgrade_is_idempotent_and_keeps_data(fresh_url):
    engine = db.migrate(fresh_url)
    repo.upsert_dossiers(engine, [make_dossier("A"), make_dossier("B")], "run1")
    repo.set_watermark(engine, "SRC1", make_dossier().updated_at, "run1")

    db.dispose_engine(fresh_url)  # a new process: fresh engine, same database
    engine = db.migrate(fresh_url)
    engine = db.migrate(engine)  # an Engine works as well as a URL

    assert db.current_revision(engine) == db.head_revision()
    assert _diff(engine) == []
    assert [d.dossier_code for d in repo.load_dossiers(engine, "SRC1")] == ["A", "B"]
    assert repo.get_watermark(engine, "SRC1") == make_dossier().updated_at


@pytest.mark.parametrize("fresh_url", BACKENDS, indirect=True)
def test_upgrade_of_an_older_installation_keeps_its_data(fresh_url):
    engine = db.migrate(fresh_url, revision="0001")
    assert db.current_revision(engine) == "0001"
    repo.upsert_dossiers(engine, [make_dossier("A")], "run1")
    with engine.begin() as conn:  # an indicator row as revision 0001 stored it
        conn.exec_driver_sql(
            "INSERT INTO indicators (period_type, period_start, scope, scope_code, indicator_id, numerator,"
            " denominator, value, run_id, computed_at)"
            " VALUES ('month', '2026-10-01', 'source', 'SRC1', '2.1_on_time', 9, 10, 0.9, 'run1',"
            " '2026-10-31 23:00:00')"
        )

    engine = db.migrate(fresh_url)

    assert db.current_revision(engine) == db.head_revision()
    assert _diff(engine) == []
    assert repo.load_dossiers(engine, "SRC1") == [make_dossier("A")]
    (old,) = repo.load_indicators(engine)
    assert (old["indicator_id"], old["value"], old["period_start"]) == ("2.1_on_time", 0.9, date(2026, 10, 1))
    # what the new revision allows: count rows without a denominator, long ids
    count_row = {**old, "indicator_id": "4.2_digitised_components_count", "denominator": None, "value": None}
    del count_row["value"]
    repo.save_indicators(engine, [count_row])
    assert repo.load_indicators(engine, indicator_id="4.2_digitised_components_count")[0]["value"] == 9


@pytest.mark.parametrize("fresh_url", BACKENDS, indirect=True)
def test_0012_drops_the_outbox_copies_of_dossier_payloads_and_its_downgrade_deletes_those_messages(fresh_url):
    """Upgrade: dossier messages lose their payload copy (derived from dossier_history now),
    progress messages keep theirs. Downgrade: a NULL payload cannot be re-derived in SQL and a
    placeholder would be sent as is by the earlier release, so those messages are deleted (that
    release queues again what is still unpublished) and the column is NOT NULL again."""
    engine = db.migrate(fresh_url, revision="0011")
    insert = sa.text(
        "INSERT INTO publish_outbox (outbox_key, source_id, dossier_code, kind, content_hash, payload,"
        " status, attempts, created_at, updated_at, dossier_version)"
        " VALUES (:k, 'SRC1', 'A', :kind, 'h', :payload, :status, 0, '2026-11-01 00:00:00',"
        " '2026-11-01 00:00:00', 1)"
    )
    with engine.begin() as conn:
        for k, kind, status in (
            ("d1", "dossier", "pending"),
            ("d2", "dossier", "confirmed"),
            ("p1", "progress", "sent"),
        ):
            conn.execute(
                insert, {"k": k, "kind": kind, "payload": f'{{"MaHoSo": "A", "k": "{k}"}}', "status": status}
            )

    def stored() -> dict[str, str | None]:
        with engine.connect() as conn:
            return dict(conn.execute(sa.text("SELECT outbox_key, payload FROM publish_outbox")).all())

    engine = db.migrate(fresh_url)
    assert db.current_revision(engine) == db.head_revision() and _diff(engine) == []
    assert stored() == {"d1": None, "d2": None, "p1": '{"MaHoSo": "A", "k": "p1"}'}

    with engine.begin() as conn:
        command.downgrade(db.alembic_config(connection=conn), "0011")
    assert db.current_revision(engine) == "0011"
    assert stored() == {"p1": '{"MaHoSo": "A", "k": "p1"}'}
    (payload,) = [c for c in sa.inspect(engine).get_columns("publish_outbox") if c["name"] == "payload"]
    assert payload["nullable"] is False
    db.dispose_engine(fresh_url)


@pytest.mark.parametrize("fresh_url", BACKENDS, indirect=True)
def test_concurrent_migrations_are_serialised(fresh_url):
    errors: list[BaseException] = []

    def run() -> None:
        try:
            db.migrate(fresh_url)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _diff(db.get_engine(fresh_url)) == []


def test_upgrade_from_a_stamped_older_installation(tmp_path):
    """Downgrade to base and upgrade again: the migration chain runs both ways."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = db.migrate(url)
    with engine.begin() as conn:
        command.downgrade(db.alembic_config(connection=conn), "base")
    assert _table_names(engine) == set()
    assert db.current_revision(engine) is None
    db.migrate(url)
    assert _diff(engine) == []
    db.dispose_engine(url)


def test_migrations_do_not_import_the_live_schema():
    versions = db.MIGRATIONS_DIR / "versions"
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "tthc.warehouse" not in text, f"{path.name} must stay frozen (no live-schema imports)"


@pytest.mark.parametrize("fresh_url", BACKENDS, indirect=True)
def test_0013_indexes_each_sources_reference_time_and_its_downgrade_drops_it(fresh_url):
    name = "ix_dossiers_reference_time_source_id"

    def indexes() -> set[str]:  # the inspector leaves expression indexes out on SQLite
        q = (
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'dossiers'"
            if engine.dialect.name == "sqlite"
            else "SELECT indexname FROM pg_indexes WHERE tablename = 'dossiers'"
        )
        with engine.connect() as conn:
            return set(conn.exec_driver_sql(q).scalars())

    engine = db.migrate(fresh_url)
    assert name in indexes()
    with engine.begin() as conn:
        command.downgrade(db.alembic_config(connection=conn), "0012")
    assert name not in indexes() and "ix_dossiers_received_at" in indexes()
    db.dispose_engine(fresh_url)


@pytest.mark.postgres
def test_indicator_counts_read_one_sources_period_through_the_reference_time_index(pg_database_factory):
    """The indicator stage's statement over a warehouse of many sources: PostgreSQL estimates the
    period's rows from the reference-time index's statistics (0013) and reads one source's rows
    through an index, rather than every source's dossiers."""
    from datetime import datetime, timedelta

    from sqlalchemy import event

    engine = db.migrate(pg_database_factory())
    start = datetime(2026, 9, 1)
    dossiers = [
        make_dossier(
            f"H{i:05d}",
            source_id=f"SRC{i % 40:02d}",
            received_at=start + timedelta(hours=i % 1400),  # until 28 October
            updated_at=start + timedelta(hours=i % 1400 + 1),
        )
        for i in range(8000)
    ]
    repo.upsert_dossiers(engine, dossiers, "r1")
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    statements: list = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append((a[2], a[3])))
    periods = {
        "month": (datetime(2026, 10, 1), datetime(2026, 10, 31)),
        "run": (start, datetime(2026, 10, 31)),
    }
    got = repo.indicator_aggregates(engine, "SRC07", periods, basis="b", same_person=("matched",))
    assert sum(r["received"] for r in got["run"].values()) == 200  # the source's dossiers of the period
    sql, params = statements[-1]
    with engine.connect() as conn:
        cur = conn.connection.driver_connection.cursor()
        cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cur.fetchone()[0][0]["Plan"]

    def nodes(n: dict) -> list[dict]:
        return [n, *(m for c in n.get("Plans", ()) for m in nodes(c))]

    (scan,) = [n for n in nodes(plan) if n.get("Relation Name") == "dossiers"]
    # without the index the planner guessed about 1 row here, and joined the rest row by row
    assert 100 <= scan["Plan Rows"] <= 400, scan
    assert scan["Node Type"] != "Seq Scan", scan  # one source's rows, not every source's
    db.dispose_engine(engine.url.render_as_string(hide_password=False))


@pytest.mark.parametrize("fresh_url", BACKENDS, indirect=True)
def test_only_the_primary_key_of_dossiers_leads_with_source_id(fresh_url):
    """The foreign-key check of each ``dossier_history`` row looks its dossier up by (source, code);
    another index led by ``source_id`` competes with the primary key for that lookup, and when the
    planner takes it a night's load reads the whole source once per row (migrations 0008, 0013)."""
    from tthc.warehouse.schema import dossiers

    for index in dossiers.indexes:
        first = next(iter(index.expressions))
        assert first is not dossiers.c.source_id, index.name
    engine = db.migrate(fresh_url)
    q = (
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'dossiers' AND sql IS NOT NULL"
        if engine.dialect.name == "sqlite"
        else "SELECT indexdef FROM pg_indexes WHERE tablename = 'dossiers' AND indexname <> 'pk_dossiers'"
    )
    with engine.connect() as conn:
        definitions = list(conn.exec_driver_sql(q).scalars())
    assert len(definitions) == len(dossiers.indexes)
    for d in definitions:
        columns = d[d.index("(") + 1 :].replace('"', "").lstrip()
        assert not columns.startswith("source_id"), d
    db.dispose_engine(fresh_url)
