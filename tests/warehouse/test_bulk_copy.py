"""The PostgreSQL bulk path (COPY + one INSERT … SELECT … ON CONFLICT) writes exactly what the
row-at-a-time path writes, and the repository takes it for large batches."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tthc.warehouse import bulk, repo
from tthc.warehouse import schema as s

from .helpers import BASE, make_dossier

pytestmark = pytest.mark.postgres

N = bulk.COPY_MIN_ROWS * 3 + 7  # above the threshold, several hundred rows


@pytest.fixture
def pg(request):
    from tthc.warehouse import db

    url = request.getfixturevalue("pg_shared_url")
    eng = db.get_engine(url)
    names = ", ".join(t.name for t in s.TABLES)
    with eng.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    return eng


def _dump(conn, table, order):
    cols = [c for c in table.c if c.name not in ("id", "loaded_at", "pulled_at", "created_at")]
    return [tuple(r) for r in conn.execute(sa.select(*cols).order_by(*order)).all()]


def _dossiers(n, **kw):
    # names with quotes, tabs, backslashes and newlines: COPY's text format must escape them
    return [
        make_dossier(
            f"H40.{i:05d}",
            applicant_name=f'Nguyễn "Văn"\t{i}\\n\'O\nReilly',
            updated_at=BASE + timedelta(minutes=i),
            **kw,
        )
        for i in range(n)
    ]


def _write_and_dump(eng, dossiers, raw):
    with eng.begin() as conn:
        assert repo.record_raw(conn, "S", "r1", raw, code_of=lambda r: r["code"]) == N
        assert repo.upsert_dossiers(conn, dossiers, "r1").inserted == N
    out = {}
    with eng.connect() as conn:
        for table, order in (
            (s.raw_records, ["dossier_code", "record_hash"]),
            (s.dossiers, ["dossier_code"]),
            (s.dossier_history, ["dossier_code", "version"]),
        ):
            out[table.name] = _dump(conn, table, [table.c[c] for c in order])
    with eng.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(t.name for t in s.TABLES)} RESTART IDENTITY CASCADE")
    return out


def test_bulk_and_row_paths_write_identical_rows(pg, monkeypatch):
    dossiers = _dossiers(N, source_id="S")
    raw = [{"code": d.dossier_code, "note": "a\tb\\c\nd", "n": i} for i, d in enumerate(dossiers)]
    with pg.connect() as conn:
        assert bulk.usable(conn, N)
    via_copy = _write_and_dump(pg, dossiers, raw)
    monkeypatch.setattr(bulk, "COPY_MIN_ROWS", 10**9)  # the same writes, row at a time
    row_by_row = _write_and_dump(pg, dossiers, raw)
    for name, rows in via_copy.items():
        assert len(rows) == N, name
        assert rows == row_by_row[name], name
    # and the round trip through the model is exact
    monkeypatch.setattr(bulk, "COPY_MIN_ROWS", 200)
    with pg.begin() as conn:
        repo.upsert_dossiers(conn, dossiers, "r1")
    back = {d.dossier_code: d for d in repo.load_dossiers(pg, "S")}
    assert back[dossiers[5].dossier_code] == dossiers[5]


def test_bulk_upsert_semantics_on_conflict(pg):
    dossiers = _dossiers(N)
    with pg.begin() as conn:
        repo.upsert_dossiers(conn, dossiers, "r1")
    # a second batch: half changed (new version), half identical, and raw duplicates ignored
    changed = [
        dataclasses.replace(d, status=5, updated_at=d.updated_at + timedelta(days=1)) if i % 2 else d
        for i, d in enumerate(dossiers)
    ]
    # and as many new dossiers in the same batch (COPY'd straight in, beside the merged updates)
    fresh = [dataclasses.replace(d, dossier_code=d.dossier_code + "N") for d in dossiers]
    with pg.begin() as conn:
        res = repo.upsert_dossiers(conn, changed + fresh, "r2")
        raw = [{"code": d.dossier_code} for d in dossiers]
        first = repo.record_raw(conn, "S", "r2", raw, code_of=lambda r: r["code"])
        again = repo.record_raw(conn, "S", "r3", raw, code_of=lambda r: r["code"])
    assert (res.updated, res.unchanged, res.inserted) == (N // 2, N - N // 2, N)
    assert (first, again) == (N, 0)
    with pg.connect() as conn:
        versions = dict(conn.execute(sa.select(s.dossiers.c.dossier_code, s.dossiers.c.version)).all())
        n_hist = conn.execute(sa.select(sa.func.count()).select_from(s.dossier_history)).scalar()
    assert sorted(set(versions.values())) == [1, 2]
    assert sum(1 for v in versions.values() if v == 1) == N + N - N // 2
    assert n_hist == 2 * N + N // 2
    assert {d.dossier_code: d for d in repo.load_dossiers(pg, "SRC1", [fresh[3].dossier_code])} == {
        fresh[3].dossier_code: fresh[3]
    }


def test_copy_insert_refuses_a_key_that_exists(pg):
    dossiers = _dossiers(N)
    with pg.begin() as conn:
        repo.upsert_dossiers(conn, dossiers, "r1")
    import psycopg

    with pg.connect() as conn:
        stored = dict(conn.execute(sa.select(s.dossiers).limit(1)).mappings().one())
    with pytest.raises(psycopg.errors.UniqueViolation), pg.begin() as conn:  # not merged: refused
        bulk.copy_insert(conn, s.dossiers, [stored])


def test_copy_upsert_keeps_last_row_per_key_like_sequential_upserts(pg):
    rows = [
        {
            "outbox_key": f"k{i % 300}",
            "source_id": "S",
            "dossier_code": f"C{i % 300}",
            "kind": "dossier",
            "payload": {"i": i},
            "content_hash": "h",
            "status": "pending",
            "attempts": 0,
            "created_at": BASE,
            "updated_at": BASE,
        }
        for i in range(600)
    ]
    with pg.begin() as conn:
        assert bulk.copy_upsert(conn, s.publish_outbox, rows, ["outbox_key"], do_nothing=True) == 300
        kept = dict(conn.execute(sa.select(s.publish_outbox.c.outbox_key, s.publish_outbox.c.payload)).all())
    assert kept["k7"] == {"i": 7}  # DO NOTHING keeps the first


def _messages(keys):
    return [
        {
            "source_id": "S",
            "dossier_code": f"C{k}",
            "kind": "progress",
            "content_hash": f"h{k}",
            "payload": {"k": k},
            "outbox_key": f"k{k}",
        }
        for k in keys
    ]


def test_outbox_put_copies_new_messages_and_leaves_a_stored_one_alone(pg):
    """The publish stage queues keys it read as not stored (a plain COPY); should one be stored
    after all, the batch is merged instead: the stored message keeps its state, the others land."""
    with pg.begin() as conn:
        assert repo.outbox_put(conn, _messages(range(N))) == N  # all new: the straight COPY
        conn.execute(
            sa.update(s.publish_outbox).where(s.publish_outbox.c.outbox_key == "k5").values(status="sent")
        )
    with pg.begin() as conn:
        # k5 is stored (and "sent"); the rest of the batch is new
        assert repo.outbox_put(conn, _messages([5, *range(N, 2 * N)])) == N
        # the transaction is still usable after the refused COPY
        assert conn.execute(sa.select(sa.func.count()).select_from(s.publish_outbox)).scalar() == 2 * N
    with pg.connect() as conn:
        rows = dict(conn.execute(sa.select(s.publish_outbox.c.outbox_key, s.publish_outbox.c.status)).all())
    assert rows["k5"] == "sent"  # not reset to pending
    assert len(rows) == 2 * N and all(v == "pending" for k, v in rows.items() if k != "k5")


def _planner_rows(eng, table: str) -> float:
    with eng.connect() as conn:
        return conn.execute(
            sa.text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": table}
        ).scalar_one()


def test_a_bulk_loaded_table_is_analysed_once_it_took_enough_rows(pg, monkeypatch):
    """The planner's row count of a table follows a night's bulk load (no waiting for autovacuum);
    a table that took fewer rows than the threshold is left alone."""
    monkeypatch.setattr(bulk, "ANALYZE_MIN_ROWS", N)
    monkeypatch.setattr(bulk, "ANALYZE_BASE_ROWS", N)  # small tables: test_a_small_table_…
    monkeypatch.setattr(bulk, "_loaded", bulk.Counter())
    with pg.begin() as conn:  # a statistics baseline: what the planner knew before the load
        conn.exec_driver_sql("ANALYZE dossiers")
        conn.exec_driver_sql("ANALYZE dossier_issues")
    before = _planner_rows(pg, "dossiers")
    with pg.begin() as conn:
        assert repo.upsert_dossiers(conn, _dossiers(N), "r1").inserted == N
    assert _planner_rows(pg, "dossiers") == before  # not known yet
    assert "dossiers" in bulk.analyze_loaded(pg)
    assert _planner_rows(pg, "dossiers") == pytest.approx(N, rel=0.05)
    # counted afresh after an ANALYZE: nothing is due now
    assert bulk.analyze_loaded(pg) == []
    # a load below the threshold (still through COPY) is not analysed
    with pg.begin() as conn:
        assert repo.upsert_dossiers(conn, _dossiers(N - 1, source_id="S2"), "r1").inserted == N - 1
    assert bulk._loaded["dossiers"] == N - 1
    assert bulk.analyze_loaded(pg) == []
    assert _planner_rows(pg, "dossiers") == pytest.approx(N, rel=0.05)
    # and counts start again with each stage: small loads of many stages do not add up to an ANALYZE
    # of the whole table in the middle of a quiet night
    for source in ("S3", "S4"):
        with pg.begin() as conn:
            repo.upsert_dossiers(conn, _dossiers(N - 1, source_id=source), "r1")
        assert bulk.analyze_loaded(pg) == []
    assert _planner_rows(pg, "dossiers") == pytest.approx(N, rel=0.05)


def test_a_table_busy_at_analyze_time_stays_due(pg, monkeypatch):
    """A table another session locks past ``lock_timeout`` is not analysed now; the next stage's
    call analyses it even when that stage loaded nothing."""
    monkeypatch.setattr(bulk, "ANALYZE_MIN_ROWS", N)
    monkeypatch.setattr(bulk, "_loaded", bulk.Counter())
    with pg.begin() as conn:
        repo.upsert_dossiers(conn, _dossiers(N), "r1")
    with pg.connect() as other:
        other.exec_driver_sql("BEGIN")
        other.exec_driver_sql("LOCK TABLE dossiers IN ACCESS EXCLUSIVE MODE")
        assert "dossiers" not in bulk.analyze_loaded(pg, lock_timeout_ms=50)
        other.exec_driver_sql("ROLLBACK")
    assert bulk.analyze_loaded(pg) == ["dossiers"]
    assert bulk.analyze_loaded(pg) == []


def test_a_small_table_is_analysed_once_a_stage_changed_a_tenth_of_it(pg, monkeypatch):
    """``quarantine`` takes a few thousand rows a stage, never the 10,000 of the absolute rule:
    it is analysed after 50 rows plus a tenth of what it held (autovacuum's rule), so the publish
    candidates' "not held" is planned for the held rows there are, not for the one row a table
    never analysed is estimated at (every dossier was then compared with every held one)."""
    monkeypatch.setattr(bulk, "_loaded", bulk.Counter())
    held = "SELECT 1 FROM quarantine WHERE source_id = 'SRC1' AND status = 'held'"

    def hold(codes: range) -> None:
        repo.hold(pg, "SRC1", {f"Q{i:05d}": ["required_agency_code"] for i in codes}, None, "r1")

    hold(range(40))  # fewer than 50: not due, even on a table never analysed
    assert "quarantine" not in bulk.analyze_loaded(pg)
    assert _estimated_rows(pg, held) < 10
    hold(range(40, 100))
    assert "quarantine" in bulk.analyze_loaded(pg)
    assert _estimated_rows(pg, held) == pytest.approx(100, rel=0.05)
    hold(range(100, 155))  # 55 < 50 + 10 % of 100
    assert "quarantine" not in bulk.analyze_loaded(pg)
    hold(range(155, 215))  # 60 >= 60
    assert "quarantine" in bulk.analyze_loaded(pg)
    assert _estimated_rows(pg, held) == pytest.approx(215, rel=0.05)


def test_analyze_is_skipped_on_sqlite(tmp_path, monkeypatch):
    from tthc.warehouse import db

    monkeypatch.setattr(bulk, "_loaded", bulk.Counter({"dossiers": 10**6}))
    assert bulk.analyze_loaded(db.get_engine(f"sqlite:///{tmp_path / 'w.db'}")) == []


def _estimated_rows(eng, sql: str) -> float:
    with eng.connect() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}").scalar_one()
    return plan[0]["Plan"]["Plan Rows"]


def test_a_bulk_status_update_is_analysed_like_a_load(pg, monkeypatch):
    """Validation moves a night's dossiers from 'pending' to 'valid' with UPDATEs, not COPY: the
    table is analysed after it all the same, so the publish stage's "validated, not yet published"
    is planned for the rows there are, not for the handful the 'pending'-only statistics promised
    (the nested loops that followed made that read quadratic at 50,000 dossiers a source)."""
    monkeypatch.setattr(bulk, "ANALYZE_MIN_ROWS", N)
    monkeypatch.setattr(bulk, "_loaded", bulk.Counter())
    with pg.begin() as conn:
        repo.upsert_dossiers(conn, _dossiers(N), "r1")
    assert "dossiers" in bulk.analyze_loaded(pg)  # every row 'pending' in the statistics
    valid = "SELECT 1 FROM dossiers WHERE quality_status IN ('valid', 'warning')"
    assert _estimated_rows(pg, valid) < N / 10
    codes = [d.dossier_code for d in _dossiers(N)]
    assert repo.set_quality_status(pg, "SRC1", dict.fromkeys(codes, "valid")) == N
    assert bulk.analyze_loaded(pg) == ["dossiers"]
    assert _estimated_rows(pg, valid) == pytest.approx(N, rel=0.05)
