"""Raw records and the dossier upsert: latest update wins, versions, history, idempotent re-runs."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import sqlalchemy as sa

from tthc.model import Attachment, Dossier, Supplement
from tthc.warehouse import repo
from tthc.warehouse import schema as s

from .helpers import BASE, make_dossier


def _rows(engine, table) -> list[dict]:
    with engine.connect() as conn:
        return [
            dict(m) for m in conn.execute(sa.select(table).order_by(*table.primary_key.columns)).mappings()
        ]


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


# ---- raw records --------------------------------------------------------------------------------


def test_record_raw_ignores_duplicates(engine):
    recs = [{"code": "A", "n": 1}, {"n": 1, "code": "A"}, {"code": "B", "n": 2}, {"oops": True}]
    code_of = lambda r: r["code"]  # noqa: E731 - a KeyError on the last record is tolerated
    assert repo.record_raw(engine, "SRC1", "run1", recs, code_of) == 3  # key order is not content
    assert repo.record_raw(engine, "SRC1", "run2", recs, code_of) == 0  # same window again
    assert repo.record_raw(engine, "SRC2", "run2", recs[:1], code_of) == 1  # other source
    rows = _rows(engine, s.raw_records)
    assert {r["dossier_code"] for r in rows if r["source_id"] == "SRC1"} == {"A", "B", None}
    assert {r["run_id"] for r in rows if r["source_id"] == "SRC1"} == {"run1"}
    assert all(hashlib.sha256(r["payload"].encode()).hexdigest() == r["record_hash"] for r in rows)


def test_raw_of_run_keeps_pull_order_pins_and_reads_payloads_by_id(engine):
    # 300 records: the bulk (COPY) path on PostgreSQL, ids read back as integers
    recs = [{"code": f"C{i:04d}", "n": i} for i in range(300)]
    pins = [
        (f"{i:064x}", BASE + timedelta(seconds=i, microseconds=7)) if i % 3 else (None, None)
        for i in range(300)
    ]
    ids = [repo.raw_identity(r) for r in recs]
    assert repo.known_raw(engine, "SRC1", [h for _, h in ids]) == set()
    rows = [repo.RawRow(*ident, r["code"], *pin) for r, ident, pin in zip(recs, ids, pins, strict=True)]
    assert repo.store_raw(engine, "SRC1", "run1", rows + rows[:7]) == 300  # each record kept once
    repo.record_raw(engine, "SRC1", "run2", [{"code": "X"}], lambda r: r["code"])  # another run
    rows = repo.raw_of_run(engine, "SRC1", "run1")
    assert [r.dossier_code for r in rows] == [r["code"] for r in recs]
    assert [(r.mapped_hash, r.mapped_updated_at) for r in rows] == pins
    payloads = repo.raw_payloads(engine, [r.id for r in rows[::2]])
    assert payloads == {r.id: recs[2 * i] for i, r in enumerate(rows[::2])}
    assert repo.known_raw(engine, "SRC1", [h for _, h in ids[:5]] + ["0" * 64]) == {h for _, h in ids[:5]}
    assert repo.known_raw(engine, "SRC2", [h for _, h in ids]) == set()  # per source


# ---- upsert -------------------------------------------------------------------------------------


def test_new_dossiers_are_inserted_with_version_1_and_history(engine):
    res = repo.upsert_dossiers(engine, [make_dossier("A"), make_dossier("B")], "run1", now=BASE)
    assert (res.inserted, res.updated, res.unchanged, res.stale) == (2, 0, 0, 0)
    assert res.changed_keys == ["SRC1:A", "SRC1:B"]
    rows = _rows(engine, s.dossiers)
    assert [(r["dossier_code"], r["version"], r["quality_status"]) for r in rows] == [
        ("A", 1, "pending"),
        ("B", 1, "pending"),
    ]
    r = rows[0]
    assert r["first_seen_run"] == r["last_run_id"] == "run1"
    assert r["loaded_at"] == BASE
    assert r["content_hash"] == make_dossier("A").content_hash()
    assert (r["supplement_count"], r["attachment_count"], r["digitized_count"], r["reused_count"]) == (
        1,
        2,
        1,
        1,
    )
    assert r["dossier_key"] == "SRC1:A" and r["vneid_verified"] is False and r["supplement_pending"] is False
    assert _count(engine, s.dossier_history) == 2


def test_round_trip_is_exact(engine):
    d = make_dossier(
        "A",
        raw_issues={"status": "weird"},
        status=None,
        supplements=[Supplement(BASE, None), Supplement(BASE + timedelta(days=1), BASE + timedelta(days=2))],
        attachments=[Attachment("x")],
        vneid_verified=True,
        finished_at=BASE + timedelta(days=2, seconds=5),
        fee=12_000_000_000,
    )
    plain = make_dossier("B", supplements=[], attachments=[], due_at=None, updated_at=None)
    repo.upsert_dossiers(engine, [d, plain], "run1")
    loaded = repo.load_dossiers(engine, "SRC1")
    assert loaded == [d, plain]
    assert [x.content_hash() for x in loaded] == [d.content_hash(), plain.content_hash()]
    assert repo.load_dossiers(engine, "SRC1", codes=["B", "nope"]) == [plain]


def test_identical_rerun_changes_nothing(engine):
    batch = [make_dossier(f"C{i}") for i in range(5)]
    repo.upsert_dossiers(engine, batch, "run1", now=BASE)
    before = (_rows(engine, s.dossiers), _rows(engine, s.dossier_history))
    res = repo.upsert_dossiers(engine, batch, "run2", now=BASE + timedelta(days=1))
    assert (res.inserted, res.updated, res.unchanged, res.touched, res.changed_keys) == (0, 0, 5, 0, [])
    assert (_rows(engine, s.dossiers), _rows(engine, s.dossier_history)) == before


def test_newer_version_bumps_version_and_writes_history(engine):
    repo.upsert_dossiers(engine, [make_dossier("A")], "run1", now=BASE)
    repo.set_quality_status(engine, "SRC1", {"A": "valid"})
    newer = make_dossier("A", status=9, updated_at=BASE + timedelta(days=1))
    res = repo.upsert_dossiers(engine, [newer], "run2", now=BASE + timedelta(days=1))
    assert (res.inserted, res.updated, res.changed_keys) == (0, 1, ["SRC1:A"])
    (row,) = _rows(engine, s.dossiers)
    assert (row["version"], row["status"], row["first_seen_run"], row["last_run_id"]) == (
        2,
        9,
        "run1",
        "run2",
    )
    assert row["quality_status"] == "pending"  # new content must be validated again
    hist = repo.load_history(engine, "SRC1", "A")
    assert [(h["version"], h["run_id"]) for h in hist] == [(1, "run1"), (2, "run2")]
    assert hist[0]["dossier"] == make_dossier("A") and hist[1]["dossier"] == newer
    # the stored payload is exactly the text content_hash digests
    for h in _rows(engine, s.dossier_history):
        text = s.json_dumps(h["payload"])
        assert hashlib.sha256(text.encode()).hexdigest() == h["content_hash"]


def test_older_version_does_not_overwrite(engine):
    newer = make_dossier("A", status=9, updated_at=BASE + timedelta(days=2))
    repo.upsert_dossiers(engine, [newer], "run1")
    older = make_dossier("A", status=4, updated_at=BASE + timedelta(days=1))
    res = repo.upsert_dossiers(engine, [older], "run2")
    assert (res.inserted, res.updated, res.stale, res.changed_keys) == (0, 0, 1, [])
    assert repo.load_dossiers(engine, "SRC1") == [newer]
    assert _count(engine, s.dossier_history) == 1
    # an undated version never replaces a dated one
    res = repo.upsert_dossiers(engine, [make_dossier("A", status=5, updated_at=None)], "run3")
    assert res.stale == 1 and repo.load_dossiers(engine, "SRC1") == [newer]


def test_same_content_with_newer_timestamp_only_moves_updated_at(engine):
    repo.upsert_dossiers(engine, [make_dossier("A")], "run1", now=BASE)
    later = make_dossier("A", updated_at=BASE + timedelta(days=3))
    res = repo.upsert_dossiers(engine, [later], "run2", now=BASE + timedelta(days=3))
    assert (res.unchanged, res.touched, res.updated, res.changed_keys) == (1, 1, 0, [])
    (row,) = _rows(engine, s.dossiers)
    assert (row["version"], row["last_run_id"], row["updated_at"]) == (1, "run1", later.updated_at)
    # a straggler between the two timestamps is now recognised as stale
    mid = make_dossier("A", status=5, updated_at=BASE + timedelta(days=2))
    assert repo.upsert_dossiers(engine, [mid], "run3").stale == 1


def test_late_update_with_newer_timestamp_wins(engine):
    """A late update (visible after the fact) still carries a newer updated_at than stored."""
    repo.upsert_dossiers(engine, [make_dossier("A", updated_at=BASE)], "run1")
    late = make_dossier("A", status=10, updated_at=BASE + timedelta(hours=2))
    assert repo.upsert_dossiers(engine, [late], "run5").updated == 1
    assert repo.load_dossiers(engine, "SRC1")[0].status == 10


def test_duplicates_within_one_batch(engine):
    a1 = make_dossier("A", status=4, updated_at=BASE + timedelta(hours=1))
    a2 = make_dossier("A", status=9, updated_at=BASE + timedelta(hours=2))
    res = repo.upsert_dossiers(
        engine, [a2, a1, a2, make_dossier(None), make_dossier("B", source_id="")], "run1"
    )
    assert (res.inserted, res.unchanged, res.stale, res.skipped) == (1, 1, 1, 2)
    assert res.inserted + res.updated + res.unchanged + res.stale + res.skipped == 5  # each record once
    assert repo.load_dossiers(engine, "SRC1") == [a2]
    # same timestamp, different content (duplicate_code defect): the choice is deterministic
    b1 = make_dossier("B", applicant_name="Trần Văn A")
    b2 = make_dossier("B", applicant_name="Lê Văn B")
    repo.upsert_dossiers(engine, [b1, b2], "run1")
    first = repo.load_dossiers(engine, "SRC1", ["B"])
    res = repo.upsert_dossiers(engine, [b2, b1], "run2")
    assert res.changed == 0 and repo.load_dossiers(engine, "SRC1", ["B"]) == first


def test_sources_are_independent(engine):
    res = repo.upsert_dossiers(engine, [make_dossier("A", "S1"), make_dossier("A", "S2")], "run1")
    assert res.inserted == 2 and res.changed_keys == ["S1:A", "S2:A"]
    assert len(repo.load_dossiers(engine, "S1")) == len(repo.load_dossiers(engine, "S2")) == 1


def test_changed_since_and_states(engine):
    repo.upsert_dossiers(engine, [make_dossier("A"), make_dossier("B")], "run1", now=BASE)
    repo.upsert_dossiers(
        engine,
        [
            make_dossier("A"),
            make_dossier("B", status=9, updated_at=BASE + timedelta(days=1)),
            make_dossier("C"),
        ],
        "run2",
        now=BASE + timedelta(days=1),
    )
    assert [d.dossier_code for d in repo.changed_since(engine, "SRC1", "run2")] == ["B", "C"]
    assert [d.dossier_code for d in repo.changed_since(engine, "SRC1", "run1")] == ["A"]
    assert [d.dossier_code for d in repo.changed_since(engine, "SRC1", BASE + timedelta(hours=1))] == [
        "B",
        "C",
    ]
    states = repo.dossier_states(engine, "SRC1")
    assert {k: v.version for k, v in states.items()} == {"A": 1, "B": 2, "C": 1}
    assert states["B"].last_run_id == "run2" and states["B"].quality_status == "pending"
    assert set(repo.dossier_states(engine, "SRC1", ["C"])) == {"C"}


def test_batches_larger_than_the_chunks(engine, monkeypatch):
    monkeypatch.setattr(repo, "IN_CHUNK", 7)
    monkeypatch.setattr(repo, "WRITE_CHUNK", 5)
    batch = [make_dossier(f"K{i:03d}", received_at=BASE + timedelta(minutes=i)) for i in range(40)]
    assert repo.upsert_dossiers(engine, batch, "run1").inserted == 40
    changed = [
        make_dossier(d.dossier_code, received_at=d.received_at, status=9, updated_at=BASE + timedelta(days=1))
        for d in batch[::2]
    ]
    res = repo.upsert_dossiers(engine, batch[1::2] + changed, "run2")
    assert (res.updated, res.unchanged) == (20, 20)
    assert len(repo.load_dossiers(engine, "SRC1", [d.dossier_code for d in batch])) == 40
    assert _count(engine, s.dossier_history) == 60


def test_fast_serialisation_matches_the_model():
    samples = [
        make_dossier("A"),
        make_dossier("B", supplements=[], attachments=[], raw_issues={"due_at": "31/02"}, updated_at=None),
        Dossier(
            source_id="S",
            dossier_code="C",
            agency_code=None,
            procedure_code=None,
            received_at=None,
            updated_at=None,
            status=None,
        ),
    ]
    for d, (payload, blob, h) in zip(samples, repo.prepare_dossiers(samples), strict=True):
        assert payload == d.to_dict()
        assert h == d.content_hash()
        assert hashlib.sha256(blob.encode()).hexdigest() == h


def test_bulk_load_and_rerun(engine):
    batch = [make_dossier(f"B{i:05d}", received_at=BASE + timedelta(minutes=i)) for i in range(3000)]
    assert repo.upsert_dossiers(engine, batch, "run1").inserted == 3000
    for d in batch[::3]:
        d.status, d.updated_at = 9, BASE + timedelta(days=1)
    res = repo.upsert_dossiers(engine, batch, "run2")
    assert (res.updated, res.unchanged) == (1000, 2000)
    res = repo.upsert_dossiers(engine, batch, "run3")
    assert (res.changed, res.unchanged) == (0, 3000)
    assert len(repo.changed_since(engine, "SRC1", "run2")) == 1000


def test_status_versions_equal_what_the_full_history_gives(engine):
    from tthc.progress import StatusVersion

    # 250 dossiers (the bulk path on PostgreSQL), three versions for some: statuses and dates move
    base = [make_dossier(f"H12.{i:04d}", updated_at=BASE + timedelta(minutes=i)) for i in range(250)]
    repo.upsert_dossiers(engine, base, "r1")
    second = [
        make_dossier(
            d.dossier_code,
            status=9,
            finished_at=BASE + timedelta(days=3, microseconds=250),
            updated_at=d.updated_at + timedelta(days=3),
        )
        for d in base[::3]
    ]
    repo.upsert_dossiers(engine, second, "r2")
    third = [
        make_dossier(d.dossier_code, status=None, updated_at=d.updated_at + timedelta(days=4))
        for d in second[::2]
    ]
    repo.upsert_dossiers(engine, third, "r3")
    codes = [d.dossier_code for d in base[:40]]
    for wanted in (codes, None):
        full = repo.load_histories(engine, "SRC1", wanted)
        narrow = repo.load_status_versions(engine, "SRC1", wanted)
        assert set(narrow) == set(full)
        for code, rows in full.items():
            assert [v.status for v in narrow[code]] == [StatusVersion.from_history(r) for r in rows]
            assert [v.content_hash for v in narrow[code]] == [r["content_hash"] for r in rows]
    assert max(len(v) for v in narrow.values()) == 3
