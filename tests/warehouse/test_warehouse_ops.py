"""Run bookkeeping, validation, quarantine, reconciliation, publishing and indicators."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa

from tthc.privacy import key_hash
from tthc.warehouse import repo
from tthc.warehouse import schema as s

from .helpers import BASE, make_dossier

ID = "036185000123"


def _rows(engine, table) -> list[dict]:
    with engine.connect() as conn:
        return [dict(m) for m in conn.execute(sa.select(table)).mappings()]


def _quality(engine) -> dict[str, str]:
    return {k: v.quality_status for k, v in repo.dossier_states(engine, "SRC1").items()}


# ---- watermarks and runs ------------------------------------------------------------------------


def test_watermarks(engine):
    assert repo.get_watermark(engine, "SRC1") is None
    repo.set_watermark(engine, "SRC1", BASE, "run1", now=BASE)
    repo.set_watermark(engine, "SRC1", BASE + timedelta(days=1), "run2", now=BASE)
    repo.set_watermark(engine, "SRC2", BASE, "run2")
    assert repo.get_watermark(engine, "SRC1") == BASE + timedelta(days=1)
    assert repo.get_watermark(engine, "SRC2") == BASE


def test_stages_and_run_summary(engine):
    repo.start_stage(engine, "run1", "SRC1", "extract", now=BASE)
    repo.finish_stage(
        engine,
        "run1",
        "SRC1",
        "extract",
        "success",
        records_in=10,
        records_out=9,
        details={"pages": 2},
        now=BASE + timedelta(seconds=30),
    )
    repo.start_stage(engine, "run1", "SRC1", "publish", now=BASE + timedelta(minutes=1))
    repo.finish_stage(
        engine,
        "run1",
        "SRC1",
        "publish",
        "failed",
        errors=1,
        error_text=f"portal refused dossier of citizen {ID}",
        now=BASE + timedelta(minutes=2),
    )
    summary = repo.run_summary(engine, "run1")
    assert [(r["stage"], r["status"], r["duration_s"]) for r in summary] == [
        ("extract", "success", 30.0),
        ("publish", "failed", 60.0),
    ]
    assert summary[0]["records_in"] == 10 and summary[0]["started_at"] == BASE
    assert ID not in summary[1]["error_text"] and "036*******23" in summary[1]["error_text"]
    # a retried stage starts afresh
    repo.start_stage(engine, "run1", "SRC1", "publish", now=BASE + timedelta(minutes=5))
    row = next(r for r in repo.run_summary(engine, "run1") if r["stage"] == "publish")
    assert (row["status"], row["errors"], row["error_text"], row["finished_at"]) == (
        "running",
        None,
        None,
        None,
    )
    # finishing a stage that never started still records it
    repo.finish_stage(engine, "run1", "*", "indicators", "success", records_out=3)
    assert any(r["source_id"] == "*" for r in repo.run_summary(engine, "run1"))
    with pytest.raises(ValueError):
        repo.finish_stage(engine, "run1", "SRC1", "extract", "done")
    assert [r["details"] for r in _rows(engine, s.pipeline_runs) if r["stage"] == "extract"] == [{"pages": 2}]


# ---- validation and quarantine ------------------------------------------------------------------


def test_save_validation_replaces_and_keeps_no_values(engine):
    rules = [
        {"rule_id": "cccd_format", "severity": "critical", "evaluated": 10, "failed": 2, "value": ID},
        {"rule_id": "due_before_receipt", "severity": "critical", "evaluated": 10, "failed": 0},
    ]
    issues = [
        {"dossier_code": "A", "rule_id": "cccd_format", "severity": "critical", "value": ID},
        {"dossier_code": "A", "rule_id": "cccd_format", "severity": "critical"},  # duplicate_code twin
        {"dossier_code": "B", "rule_id": "cccd_format", "severity": "critical"},
    ]
    assert repo.save_validation(engine, "run1", "SRC1", "dossier", rules, issues, now=BASE) == (2, 2)
    assert repo.save_validation(engine, "run1", "SRC1", "dossier", rules, issues, now=BASE) == (2, 2)  # retry
    repo.save_validation(engine, "run1", "SRC1", "other", rules[:1], [], now=BASE)
    vr, di = _rows(engine, s.validation_results), _rows(engine, s.dossier_issues)
    assert len(vr) == 3 and len(di) == 2
    assert ID not in repr(vr) + repr(di)
    by_rule = {(r["suite"], r["rule_id"]): r for r in repo.issues_by_rule(engine, "run1")}
    assert by_rule[("dossier", "cccd_format")]["success"] is False
    assert by_rule[("dossier", "due_before_receipt")]["success"] is True
    assert by_rule[("dossier", "cccd_format")]["failed"] == 2


def test_quality_status(engine):
    repo.upsert_dossiers(engine, [make_dossier("A"), make_dossier("B")], "run1")
    assert repo.set_quality_status(engine, "SRC1", {"A": "valid", "B": "warning", "nope": "valid"}) == 2
    assert _quality(engine) == {"A": "valid", "B": "warning"}
    with pytest.raises(ValueError):
        repo.set_quality_status(engine, "SRC1", {"A": "great"})


def test_hold_release_and_hold_again(engine):
    repo.upsert_dossiers(engine, [make_dossier("A"), make_dossier("B")], "run1")
    hashes = {"A": "h1", "B": "h2"}
    assert (
        repo.hold(
            engine,
            "SRC1",
            {"A": ["cccd_format"], "B": {"missing_field", "cccd_sex"}},
            hashes,
            "run1",
            now=BASE,
        )
        == 2
    )
    assert repo.held_codes(engine, "SRC1") == {"A", "B"}
    assert _quality(engine) == {"A": "quarantined", "B": "quarantined"}
    entry = repo.quarantine_entries(engine, "SRC1")[1]
    assert entry["reasons"] == ["cccd_sex", "missing_field"] and entry["content_hash"] == "h2"

    # held again next run: same hold, new reasons, first run kept
    repo.hold(
        engine, "SRC1", {"A": ["due_before_receipt"]}, {"A": "h3"}, "run2", now=BASE + timedelta(days=1)
    )
    a = repo.quarantine_entries(engine, "SRC1")[0]
    assert (a["first_run_id"], a["last_run_id"], a["held_at"], a["reasons"]) == (
        "run1",
        "run2",
        BASE,
        ["due_before_receipt"],
    )

    assert (
        repo.release(
            engine, "SRC1", ["A", "nope"], "run3", now=BASE + timedelta(days=2), quality_status="pending"
        )
        == 1
    )
    assert repo.release(engine, "SRC1", ["A"], "run3") == 0  # already released
    assert repo.held_codes(engine, "SRC1") == {"B"}
    a = repo.quarantine_entries(engine, "SRC1", status="released")[0]
    assert (a["released_run_id"], a["released_at"]) == ("run3", BASE + timedelta(days=2))
    assert _quality(engine)["A"] == "pending"

    # held after a release: a new hold starts
    repo.hold(engine, "SRC1", {"A": ["cccd_format"]}, None, "run4", now=BASE + timedelta(days=3))
    a = repo.quarantine_entries(engine, "SRC1")[0]
    assert (a["status"], a["first_run_id"], a["held_at"], a["released_at"], a["released_run_id"]) == (
        "held",
        "run4",
        BASE + timedelta(days=3),
        None,
        None,
    )


def test_quality_by_agency(engine):
    repo.upsert_dossiers(
        engine, [make_dossier("A"), make_dossier("B"), make_dossier("C", agency_code="X")], "run1"
    )
    repo.set_quality_status(engine, "SRC1", {"A": "valid", "B": "warning"})
    repo.hold(engine, "SRC1", {"C": ["missing_field"]}, None, "run1")
    repo.mark_published(engine, repo.load_dossiers(engine, "SRC1", ["A"]))
    rows = {r["agency_code"]: r for r in repo.quality_by_agency(engine)}
    assert rows["000.00.12.H12"]["dossiers"] == 2 and rows["000.00.12.H12"]["published_current"] == 1
    assert (rows["000.00.12.H12"]["valid"], rows["000.00.12.H12"]["warning"]) == (1, 1)
    assert rows["X"]["quarantined"] == 1 and rows["X"]["pending"] == 0
    assert repo.quality_by_agency(engine, "other") == []
    assert len(repo.quality_by_agency(engine, "SRC1")) == 2


# ---- citizen reconciliation ---------------------------------------------------------------------


def test_matches(engine):
    h = key_hash(ID)
    row = {
        "source_id": "SRC1",
        "dossier_code": "A",
        "id_hash": h,
        "match_class": "matched",
        "name_score": 1.0,
        "birth_date_ok": 1,
        "run_id": "run1",
        "request_id": "req1",
        "applicant_name": "Nguyễn Thị Thuý",
    }
    assert repo.save_matches(engine, [row], now=BASE) == 1
    repo.save_matches(engine, [{**row, "match_class": "name_mismatch", "name_score": 0.7}], now=BASE)
    got = repo.load_matches(engine, "SRC1")
    assert got["A"]["match_class"] == "name_mismatch" and got["A"]["birth_date_ok"] is True
    assert "applicant_name" not in got["A"]
    with pytest.raises(ValueError):
        repo.save_matches(engine, [{**row, "id_hash": ID}])


def test_lookup_cache(engine):
    h1, h2, h3 = key_hash("1"), key_hash("2"), key_hash("3")
    answer = {"found": True, "ho": "Nguyễn", "ten": "Thuý", "birth_date": "1985-03-02"}
    repo.cache_put(engine, [{"id_hash": h1, "result": answer}], timedelta(days=30), now=BASE)
    repo.cache_put(engine, {h2: None}, timedelta(days=1), now=BASE)  # a miss is cached too
    got = repo.cache_get(engine, [h1, h2, h3], now=BASE + timedelta(hours=1))
    assert got == {h1: answer, h2: repo.CACHE_NOT_FOUND}
    assert set(repo.cache_get(engine, [h1, h2], now=BASE + timedelta(days=2))) == {h1}  # h2 expired
    repo.cache_put(engine, {h2: answer}, timedelta(days=1), now=BASE + timedelta(days=2))  # refresh
    assert repo.cache_get(engine, [h2], now=BASE + timedelta(days=2, hours=1)) == {h2: answer}
    assert repo.cache_purge(engine, now=BASE + timedelta(days=31)) == 2
    with pytest.raises(ValueError):
        repo.cache_put(engine, {ID: answer}, timedelta(days=1))


def test_audit_lookup(engine):
    row = {
        "request_id": "req1",
        "kind": "bulk",
        "officer": "etl",
        "service_code": "LGSP_CD",
        "integration_code": "TTHC",
        "purpose": f"reconcile dossiers incl. {ID}",
        "run_id": "run1",
        "source_id": "SRC1",
        "count": 120,
        "status": "sent",
        "id_number": ID,
    }
    assert repo.audit_lookup(engine, row, now=BASE) == "req1"
    repo.audit_lookup(engine, {**row, "status": "ok", "count": 118, "requested_at": BASE + timedelta(days=9)})
    (rec,) = _rows(engine, s.lookup_audit)
    assert (rec["status"], rec["count"], rec["requested_at"]) == ("ok", 118, BASE)
    assert ID not in repr(rec)
    with pytest.raises(ValueError):
        repo.audit_lookup(engine, {**row, "kind": "all"})


# ---- publishing ---------------------------------------------------------------------------------


def test_publish_cycle(engine):
    repo.upsert_dossiers(engine, [make_dossier(c) for c in "ABCD"], "run1")
    assert repo.publish_candidates(engine, "SRC1") == []  # nothing validated yet
    repo.set_quality_status(engine, "SRC1", {"A": "valid", "B": "warning", "C": "valid", "D": "valid"})
    repo.hold(engine, "SRC1", {"D": ["cccd_format"]}, None, "run1")
    repo.set_quality_status(engine, "SRC1", {"D": "valid"})  # even then, a held record is not published
    cands = repo.publish_candidates(engine, "SRC1")
    assert [d.dossier_code for d in cands] == ["A", "B", "C"]
    assert cands[0] == make_dossier("A")

    repo.mark_published(engine, cands[:2], now=BASE)
    repo.mark_publish_failed(
        engine, [{"source_id": "SRC1", "dossier_code": "C", "error": f"HTTP 500 {ID}"}], now=BASE
    )
    repo.mark_publish_failed(
        engine,
        [{"source_id": "SRC1", "dossier_code": "C", "error": "timeout"}],
        now=BASE + timedelta(hours=1),
    )
    states = repo.publish_states(engine, "SRC1")
    assert (states["C"]["status"], states["C"]["attempts"], states["C"]["last_error"]) == (
        "failed",
        2,
        "timeout",
    )
    assert states["C"]["published_hash"] is None
    assert states["A"]["published_hash"] == make_dossier("A").content_hash()
    assert [d.dossier_code for d in repo.publish_candidates(engine, "SRC1")] == ["C"]

    # a failure after a success keeps what the portal holds; a success resets the counter
    repo.mark_publish_failed(engine, cands[:1], now=BASE)
    assert (
        repo.publish_states(engine, "SRC1", ["A"])["A"]["published_hash"] == make_dossier("A").content_hash()
    )
    repo.mark_published(
        engine,
        [{"source_id": "SRC1", "dossier_code": "C", "content_hash": make_dossier("C").content_hash()}],
        now=BASE,
    )
    assert repo.publish_states(engine, "SRC1", ["C"])["C"]["attempts"] == 0
    assert [d.dossier_code for d in repo.publish_candidates(engine, "SRC1")] == []

    # new content of a published dossier is a candidate again once validated
    repo.upsert_dossiers(engine, [make_dossier("A", status=9, updated_at=BASE + timedelta(days=1))], "run2")
    assert repo.publish_candidates(engine, "SRC1") == []
    repo.set_quality_status(engine, "SRC1", {"A": "valid"})
    assert [d.status for d in repo.publish_candidates(engine, "SRC1")] == [9]


def test_outbox(engine):
    msg = {"source_id": "SRC1", "dossier_code": "A", "kind": "dossier", "content_hash": "h1"}
    entry = {"MaHoSo": "A", "TrangThai": 2}
    assert repo.outbox_put(engine, [msg, msg], now=BASE) == 1
    assert repo.outbox_put(engine, [msg], now=BASE) == 0  # deterministic key: queued once
    progress = {**msg, "kind": "progress", "payload": entry}
    assert repo.outbox_put(engine, [progress], now=BASE + timedelta(seconds=1)) == 1
    # a dossier message keeps no copy of the portal record; a progress message needs its entry
    with pytest.raises(ValueError, match="without a payload"):
        repo.outbox_put(engine, [{**msg, "content_hash": "h2", "payload": {"MaHoSo": "A"}}])
    with pytest.raises(ValueError, match="needs its payload"):
        repo.outbox_put(engine, [{**progress, "content_hash": "h2", "payload": None}])
    key = repo.outbox_key("SRC1", "A", "dossier", "h1")
    pending = repo.outbox_pending(engine, "SRC1")
    assert [p["outbox_key"] for p in pending][0] == key and pending[0]["payload"] is None
    assert pending[1]["payload"] == entry
    assert repo.outbox_mark(engine, [key], "failed", error=f"boom {ID}") == 1
    assert repo.outbox_pending(engine, kinds=["dossier"])[0]["attempts"] == 1
    assert repo.outbox_pending(engine, kinds=["dossier"], max_attempts=1) == []
    repo.outbox_mark(engine, [key], "sent")
    repo.outbox_mark(engine, [key], "confirmed")
    assert [p["kind"] for p in repo.outbox_pending(engine)] == ["progress"]
    row = next(r for r in _rows(engine, s.publish_outbox) if r["outbox_key"] == key)
    assert (row["status"], row["attempts"]) == ("confirmed", 2) and ID not in row["last_error"]
    with pytest.raises(ValueError):
        repo.outbox_mark(engine, [key], "lost")
    assert len(repo.outbox_pending(engine, limit=1, statuses=["pending", "confirmed"])) == 1


def test_outbox_requeue_rearms_confirmed_messages_and_records_versions(engine):
    """Confirmed messages go back to 'pending' with their new version (counted); open ones only
    take the version; unknown keys change nothing. 260 keys: the chunked statements on both
    backends."""
    base = {"source_id": "SRC1", "kind": "dossier"}
    msgs = [
        {**base, "dossier_code": f"C{i:03d}", "content_hash": f"h{i}", "dossier_version": 1}
        for i in range(260)
    ]
    repo.outbox_put(engine, msgs, now=BASE)
    keys = [repo.outbox_key("SRC1", m["dossier_code"], "dossier", m["content_hash"]) for m in msgs]
    repo.outbox_mark(engine, keys[::2], "confirmed")
    repo.outbox_mark(engine, keys[1::4], "failed", error="x")
    versions = {k: 3 for k in keys} | {"no-such-key": 9}
    later = BASE + timedelta(hours=1)
    assert repo.outbox_requeue(engine, versions, now=later) == 130
    rows = {r["outbox_key"]: r for r in _rows(engine, s.publish_outbox)}
    assert len(rows) == 260 and {r["dossier_version"] for r in rows.values()} == {3}
    assert {rows[k]["status"] for k in keys[::2]} == {"pending"}
    assert {rows[k]["updated_at"] for k in keys[::2]} == {later}
    assert {rows[k]["status"] for k in keys[1::4]} == {"failed"}  # open ones keep their status
    assert {rows[k]["status"] for k in keys[3::4]} == {"pending"}
    assert repo.outbox_requeue(engine, {}) == 0


def test_outbox_items_take_known_payloads_and_read_the_others(engine):
    """What the publish stage has just queued is not read back: ``known_payloads`` stands in for
    those messages' payloads; the other progress entries are read; a dossier message has none
    stored (None, for the caller to derive); the rows are otherwise the same."""
    base = {"source_id": "SRC1", "kind": "progress", "content_hash": "h"}
    msgs = [{**base, "dossier_code": c, "payload": {"MaHoSo": c}} for c in ("A", "B", "C")]
    msgs += [{**base, "kind": "dossier", "dossier_code": c} for c in ("A", "B")]
    repo.outbox_put(engine, msgs, now=BASE)
    plain = repo.outbox_items(engine, "SRC1", statuses=["pending"])
    key_b = repo.outbox_key("SRC1", "B", "progress", "h")
    dossier_b = repo.outbox_key("SRC1", "B", "dossier", "h")
    marker = {"MaHoSo": "B", "from": "memory"}
    known = repo.outbox_items(
        engine, "SRC1", statuses=["pending"], known_payloads={key_b: marker, dossier_b: marker}
    )
    assert {(r["kind"], r["dossier_code"]): r["payload"] for r in known} == {
        ("progress", "A"): {"MaHoSo": "A"},
        ("progress", "B"): marker,
        ("progress", "C"): {"MaHoSo": "C"},
        ("dossier", "A"): None,
        ("dossier", "B"): marker,
    }
    assert [{**r, "payload": None} for r in known] == [{**r, "payload": None} for r in plain]
    everything = {r["outbox_key"]: r["payload"] for r in plain if r["payload"] is not None}
    assert repo.outbox_items(engine, "SRC1", known_payloads=everything) == plain


def test_outbox_items_take_known_rows_while_their_status_is_the_stored_one(engine):
    """The rows the publish stage has just queued are taken from memory, but only while the
    outbox still says what they say: a message settled since (another status, another
    ``updated_at``) is read back, as is every message not known."""
    base = {"source_id": "SRC1", "kind": "progress", "content_hash": "h"}
    msgs = [{**base, "dossier_code": c, "payload": {"MaHoSo": c}} for c in ("A", "B", "C")]
    repo.outbox_put(engine, msgs, now=BASE)
    plain = repo.outbox_items(engine, "SRC1", statuses=["pending", "sent"])
    known = {
        r["outbox_key"]: {**r, "payload": {"MaHoSo": r["dossier_code"], "from": "memory"}} for r in plain
    }
    key = {r["dossier_code"]: r["outbox_key"] for r in plain}
    repo.outbox_mark(engine, [key["B"]], "sent")  # B moved on after it was queued
    del known[key["C"]]  # C: not known
    rows = repo.outbox_items(engine, "SRC1", statuses=["pending", "sent"], known_rows=known)
    by = {r["dossier_code"]: r for r in rows}
    assert by["A"] == known[key["A"]]  # from memory
    assert by["B"]["status"] == "sent" and by["B"]["payload"] == {"MaHoSo": "B"}  # read back
    assert by["C"] == next(r for r in plain if r["dossier_code"] == "C")
    assert [r["outbox_key"] for r in rows] == [r["outbox_key"] for r in plain]  # same order
    # only the messages matching the filters come back, known or not
    assert repo.outbox_items(engine, "SRC1", statuses=["sent"], known_rows=known) == [by["B"]]


def test_applicants_are_the_dossiers_applicant_fields(engine):
    """Reconciliation reads five columns of what a run wrote (or of some codes), and they are the
    dossiers' own applicant fields: what ``tthc.matching`` reads of a whole dossier."""
    a = make_dossier("A", applicant_sex=2, applicant_birth_date="1990")
    b, c = make_dossier("B"), make_dossier("C")
    with engine.begin() as conn:
        repo.upsert_dossiers(conn, [a, b], "r1")
        repo.upsert_dossiers(conn, [c, dataclasses.replace(b, applicant_name="Lê Thị Hoa")], "r2")
    rows = repo.applicants(engine, "SRC1", run_id="r2")
    assert [r.dossier_code for r in rows] == ["B", "C"]
    fields = ("applicant_id_number", "applicant_name", "applicant_birth_date", "applicant_sex")
    for r, d in zip(rows, repo.changed_since(engine, "SRC1", "r2"), strict=True):
        assert [getattr(r, f) for f in fields] == [getattr(d, f) for f in fields]
        assert r.quality_status == "pending"
    (only_a,) = repo.applicants(engine, "SRC1", codes=["A"])
    assert (only_a.applicant_sex, only_a.applicant_birth_date) == (2, "1990")


def test_runs_without_reconcile_and_their_unmatched_applicants(engine):
    """Reconcile takes over what runs that extracted but never reconciled wrote, and only the
    dossiers no match was checked for since their current version was stored."""
    for run, stages in {
        "r1": {"extract": "success", "reconcile": "success"},
        "r2": {"extract": "success", "validate": "failed"},  # died before reconciling
        "r3": {"extract": "success", "reconcile": "failed"},
        "r4": {"extract": "failed"},
        "r5": {"extract": "success"},  # tonight
    }.items():
        for stage, status in stages.items():
            repo.start_stage(engine, run, "SRC1", stage)
            repo.finish_stage(engine, run, "SRC1", stage, status=status)
    repo.start_stage(engine, "r2", "SRC2", "extract")
    repo.finish_stage(engine, "r2", "SRC2", "extract", status="success")
    got = repo.runs_without_stage(engine, "SRC1", after="extract", missing="reconcile", besides="r5")
    assert got == ["r2", "r3"]

    t0 = datetime(2026, 11, 1, 1, 0)
    with engine.begin() as conn:
        repo.upsert_dossiers(conn, [make_dossier("A"), make_dossier("B"), make_dossier("C")], "r2", now=t0)
    match = {"source_id": "SRC1", "match_class": "matched", "run_id": "r5"}
    repo.save_matches(
        engine,
        [
            {**match, "dossier_code": "A", "checked_at": t0 + timedelta(hours=1)},  # since stored
            {**match, "dossier_code": "B", "checked_at": t0 - timedelta(days=1)},  # an older version
        ],
    )
    unmatched = repo.applicants(engine, "SRC1", run_id="r2", unmatched=True)
    assert [a.dossier_code for a in unmatched] == ["B", "C"]
    assert len(repo.applicants(engine, "SRC1", run_id="r2")) == 3


def test_dossier_rows_are_the_flat_rows_of_the_stored_dossiers(engine):
    """Validation reads unchanged mappings as rows built from the stored columns: the same as
    ``to_row()`` of the stored dossier (documents, supplements and unparseable fields included)."""
    from tthc.model import Attachment, Supplement

    a = make_dossier(
        "A",
        attachments=[Attachment("Đơn", digitized=True), Attachment("CCCD", reused=True), Attachment("Ảnh")],
        supplements=[Supplement(BASE, BASE + timedelta(days=1)), Supplement(BASE + timedelta(days=2))],
        raw_issues={"received_at": "31/02/2026", "fee": "x"},
    )
    b = make_dossier("B")
    repo.upsert_dossiers(engine, [a, b], "r1")
    rows = repo.dossier_rows(engine, "SRC1", ["A", "B", "missing"])
    stored = {d.dossier_code: d for d in repo.load_dossiers(engine, "SRC1")}
    assert rows == {c: stored[c].to_row() for c in ("A", "B")}
    assert (rows["A"]["digitized_count"], rows["A"]["supplement_pending"]) == (1, True)
    assert rows["A"]["raw_issue_fields"] == "fee,received_at" and rows["B"]["raw_issue_fields"] is None


def test_load_versions_reads_just_the_versions_asked_for(engine):
    """``{code: version}`` → that version of each dossier from dossier_history (not the latest);
    a version not stored is left out."""
    a1, b1 = make_dossier("A", status=2), make_dossier("B", status=2)
    repo.upsert_dossiers(engine, [a1, b1], "run1")
    a2 = make_dossier("A", status=4, updated_at=BASE + timedelta(days=1))
    a3 = make_dossier("A", status=5, updated_at=BASE + timedelta(days=2))
    repo.upsert_dossiers(engine, [a2], "run2")
    repo.upsert_dossiers(engine, [a3], "run3")
    got = repo.load_versions(engine, "SRC1", {"A": 2, "B": 1, "C": 1})
    assert got == {"A": a2, "B": b1}
    assert repo.load_versions(engine, "SRC1", {"A": 1, "B": 2}) == {"A": a1}
    assert repo.load_versions(engine, "SRC1", {}) == {}


# ---- indicators ---------------------------------------------------------------------------------


def test_indicators_upsert(engine):
    row = {
        "period_type": "month",
        "period_start": date(2026, 10, 1),
        "scope": "agency",
        "scope_code": "000.00.12.H12",
        "indicator_id": "2.1",
        "numerator": 9,
        "denominator": 10,
        "run_id": "run1",
    }
    assert (
        repo.save_indicators(
            engine, [row, {**row, "indicator_id": "3.3", "numerator": 0, "denominator": 0}], now=BASE
        )
        == 2
    )
    repo.save_indicators(engine, [{**row, "numerator": 10, "run_id": "run2"}], now=BASE)
    got = {r["indicator_id"]: r for r in repo.load_indicators(engine, period_type="month")}
    assert got["2.1"]["value"] == 1.0 and got["2.1"]["run_id"] == "run2"
    assert got["3.3"]["value"] is None  # denominator 0
    assert got["2.1"]["period_start"] == date(2026, 10, 1)
    assert repo.load_indicators(engine, scope="province") == []
    assert len(repo.load_indicators(engine, period_start=date(2026, 10, 1), indicator_id="2.1")) == 1
    with pytest.raises(ValueError):
        repo.save_indicators(engine, [{**row, "period_type": "week"}])
