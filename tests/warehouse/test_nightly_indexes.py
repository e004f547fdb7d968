"""The per-source queries of a night are served by indexes on PostgreSQL.

At national volume the warehouse holds millions of rows and every night each of dozens of sources
reads its own slice. A query that filters on a column without a usable index visits every source's
rows for every source. With sequential scans switched off the planner must find an index path for
each of these queries; a missing index shows as a ``Seq Scan`` (the planner's last resort).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from tthc.warehouse import schema as s
from tthc.warehouse.sqlfiles import load_sql_text

pytestmark = pytest.mark.postgres


def _sql(stmt) -> str:
    return str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


NIGHTLY = {
    # validate: the records this run pulled for the source (tthc/pipeline/validate.py)
    "raw records of the run": _sql(
        sa.select(s.raw_records.c.payload)
        .where(s.raw_records.c.source_id == "src", s.raw_records.c.run_id == "run-1")
        .order_by(s.raw_records.c.id)
    ),
    # extract/validate: stored states of the codes just pulled (repo.dossier_states)
    "dossier states": _sql(
        sa.select(s.dossiers.c.dossier_code, s.dossiers.c.content_hash).where(
            s.dossiers.c.source_id == "src", s.dossiers.c.dossier_code.in_(["a", "b"])
        )
    ),
    # reconcile: what changed in this run (repo.applicants, repo.changed_since)
    "changed in the run": _sql(
        sa.select(s.dossiers.c.dossier_code).where(
            s.dossiers.c.source_id == "src", s.dossiers.c.last_run_id == "run-1"
        )
    ),
    # publish: messages still to send (repo.outbox_pending)
    "outbox pending": _sql(
        sa.select(s.publish_outbox.c.outbox_key).where(
            s.publish_outbox.c.status.in_(["pending", "sent"]), s.publish_outbox.c.source_id == "src"
        )
    ),
    # validate: dossiers held in quarantine (repo.held_codes)
    "held codes": _sql(
        sa.select(s.quarantine.c.dossier_code).where(
            s.quarantine.c.source_id == "src", s.quarantine.c.status == "held"
        )
    ),
    # reconcile: cached population answers by keyed hash
    "lookup cache": _sql(sa.select(s.lookup_cache).where(s.lookup_cache.c.id_hash.in_(["h1", "h2"]))),
}


@pytest.fixture
def pg_conn(request):
    from tthc.warehouse import db

    eng = db.get_engine(request.getfixturevalue("pg_shared_url"))
    with eng.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        yield conn
        conn.rollback()


@pytest.mark.parametrize("name", sorted(NIGHTLY))
def test_nightly_query_has_an_index_path(pg_conn, name):
    plan = "\n".join(r[0] for r in pg_conn.exec_driver_sql("EXPLAIN " + NIGHTLY[name]))
    assert "Seq Scan" not in plan, f"{name}:\n{plan}"


#: (table, columns every row of the query is selected by): an index must start with them, so the
#: rows read are the rows wanted. The planner's pick on an empty test table says nothing about a
#: full one, so this is checked on the schema (as migrated) rather than on a plan.
EXACT = {
    "raw records of the run": ("raw_records", {"source_id", "run_id"}),
    "dossier states": ("dossiers", {"source_id", "dossier_code"}),
    "changed in the run": ("dossiers", {"source_id", "last_run_id"}),
    "held codes": ("quarantine", {"source_id", "status"}),
    "lookup cache": ("lookup_cache", {"id_hash"}),
    "dossier history of a dossier": ("dossier_history", {"source_id", "dossier_code"}),
    "matches of the source": ("citizen_matches", {"source_id"}),
    "publish state of the source": ("publish_state", {"source_id"}),
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_nightly_selection_is_an_index_prefix(pg_conn, name):
    table, cols = EXACT[name]
    insp = sa.inspect(pg_conn)
    indexes = [i["column_names"] for i in insp.get_indexes(table)]
    indexes += [u["column_names"] for u in insp.get_unique_constraints(table)]
    indexes.append(insp.get_pk_constraint(table)["constrained_columns"])
    assert any(set(ix[: len(cols)]) == cols for ix in indexes), (name, indexes)


def test_publish_candidates_reads_the_source_by_index(pg_conn):
    sql = load_sql_text("publish_candidates").replace(":source_id", "'src'")
    plan = "\n".join(r[0] for r in pg_conn.exec_driver_sql("EXPLAIN " + sql))
    assert "Seq Scan on dossiers" not in plan, plan


_FILL = """
INSERT INTO dossiers (source_id, dossier_code, dossier_key, vneid_verified, supplement_count,
    supplement_pending, attachment_count, digitized_count, reused_count, supplements_json,
    attachments_json, raw_issues_json, content_hash, version, first_seen_run, last_run_id,
    loaded_at, quality_status)
SELECT CAST(:src AS varchar), CAST(:src AS text) || '-' || g, CAST(:src AS text) || ':' || g,
    false, 0, false, 0, 0, 0, '[]', '[]', '[]', 'h', 1, 'r1', 'r1', now(), 'valid'
FROM generate_series(1, 3000) AS g
"""


def test_a_dossier_lookup_of_a_source_being_loaded_takes_the_primary_key(request):
    """The foreign-key check of each history row looks one dossier up by (source, code). While a
    new source loads, the statistics know only the sources loaded before it and estimate one row
    for it; an index led by source_id alone then looked as cheap as the primary key, and the
    check read the whole source for every row (a 25,000-dossier load took 43 s instead of 3 s)."""
    from tthc.warehouse import db

    eng = db.get_engine(request.getfixturevalue("pg_shared_url"))
    with eng.connect() as conn:
        try:
            conn.exec_driver_sql("TRUNCATE dossiers CASCADE")
            conn.execute(sa.text(_FILL), {"src": "loaded-before"})
            conn.exec_driver_sql("ANALYZE dossiers")
            conn.execute(sa.text(_FILL), {"src": "loading-now"})
            plan = "\n".join(
                r[0]
                for r in conn.exec_driver_sql(
                    "EXPLAIN SELECT 1 FROM ONLY dossiers x WHERE source_id = 'loading-now' "
                    "AND dossier_code = 'loading-now-17' FOR KEY SHARE OF x"
                )
            )
        finally:
            conn.rollback()
    assert "pk_dossiers" in plan, plan
