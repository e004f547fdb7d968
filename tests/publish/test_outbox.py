"""The publish stage at warehouse level, against a scripted fake portal (no HTTP).

The fake behaves like the portal where it matters: create / "-3" / update of dossiers, progress
entries appended as received (duplicates kept), ``TraCuuHoSo``. Scripts make a call fail before it
is processed (``retryable``), or apply it and lose the answer (``ambiguous``), per dossier code.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.portal import PublishResult, progress_identity, to_portal_payload
from tthc.model import Dossier
from tthc.pipeline.context import StageContext
from tthc.pipeline.publish import payload_hash, publish, queue, send, verify
from tthc.registry import SourceConfig, cached_registry
from tthc.settings import Settings
from tthc.warehouse import db, repo
from tthc.warehouse import schema as s

SID = "igate_test"
AG1, AG2 = "000.00.12.H40", "000.05.21.H40"
T0 = datetime(2026, 10, 5, 8, 0)


# ---- fixtures ------------------------------------------------------------------------------------


def _pg_url() -> str | None:
    host = os.environ.get("TTHC_TEST_PG_HOST", "127.0.0.1")
    user = os.environ.get("TTHC_TEST_PG_USER", "postgres")
    admin = sa.create_engine(
        f"postgresql+psycopg://{user}@{host}:5432/postgres",
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": 3},
    )
    try:
        with admin.connect() as c:
            name = f"tthc_pub_{uuid.uuid4().hex[:10]}"
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError:
        return None
    finally:
        admin.dispose()
    return f"postgresql+psycopg://{user}@{host}:5432/{name}"


@pytest.fixture(scope="module")
def pg_url():
    """One migrated PostgreSQL database for this module (emptied before each test)."""
    url = _pg_url()
    if url is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("PostgreSQL not reachable (CI=true: PostgreSQL tests must run)")
        pytest.skip("PostgreSQL not reachable")
    db.migrate(url)
    yield url
    db.dispose_engine(url)
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'wh.db'}"
        yield db.migrate(url)
        db.dispose_engine(url)
        return
    eng = db.get_engine(request.getfixturevalue("pg_url"))
    with eng.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join(t.name for t in s.TABLES)} RESTART IDENTITY CASCADE")
    yield eng


class Night:
    """The warehouse side of successive runs: load versions, validate, publish."""

    def __init__(self, engine: sa.Engine, **settings: Any) -> None:
        self.engine = engine
        self.n = 0
        self.settings = Settings(**{"portal_failure_report_after": 3, **settings})
        self.source = SourceConfig(
            source_id=SID, agency_code=AG1, agency_name="Sở Tư pháp", level="department",
            dialect="igate", conn_id="tthc_unused",
        )  # fmt: skip

    def load(self, dossiers: list[Dossier], quarantined: set[str] = frozenset()) -> None:
        self.n += 1
        repo.upsert_dossiers(self.engine, dossiers, self.run_id, now=T0 + timedelta(days=self.n))
        statuses = {
            d.dossier_code: ("quarantined" if d.dossier_code in quarantined else "valid") for d in dossiers
        }
        repo.set_quality_status(self.engine, SID, statuses)

    @property
    def run_id(self) -> str:
        return f"run{self.n}"

    def ctx(self) -> StageContext:
        return StageContext(
            source=self.source,
            registry=cached_registry(),
            run_id=self.run_id,
            window_end=T0 + timedelta(days=self.n),
            engine=self.engine,
            settings=self.settings,
        )

    def publish(self, portal: FakePortal) -> dict[str, Any]:
        return publish(self.ctx(), client=portal)


def dossier(code: str, status: int = 2, hours: float = 0, agency: str = AG1, **kw: Any) -> Dossier:
    base = {
        "source_id": SID,
        "dossier_code": code,
        "agency_code": agency,
        "procedure_code": "1.001234",
        "received_at": T0,
        "updated_at": T0 + timedelta(hours=hours),
        "status": status,
        "agency_name": "Sở Tư pháp",
        "procedure_name": "Đăng ký khai sinh",
        "applicant_name": "Nguyễn Thị Thuý",
        "applicant_id_number": "036185000123",
        "applicant_id_type": 1,
        "due_at": T0 + timedelta(days=3),
    }
    base.update(kw)
    return Dossier(**base)


def advance(d: Dossier, status: int, hours: float) -> Dossier:
    return replace(d, status=status, updated_at=T0 + timedelta(hours=hours))


# ---- the fake portal -------------------------------------------------------------------------------


class FakePortal:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.progress: dict[str, list[dict[str, Any]]] = {}
        self.fail: dict[str, str] = {}  # code → "retryable" | "ambiguous" (dossier sends)
        self.fail_progress: dict[str, str] = {}  # code → same, for progress entries
        self.calls: Counter[str] = Counter()
        self.check_first_codes: list[str] = []

    def publish(self, payloads, *, madonvi=None):
        self.calls["publish"] += 1
        out = []
        for p in payloads:
            code = p["MaHoSo"]
            mode = self.fail.get(code)
            if mode == "retryable":
                out.append(PublishResult(code, False, error_code="TransientError", retryable=True))
                continue
            existed = code in self.records
            self.records[code] = dict(p)
            if mode == "ambiguous":
                out.append(PublishResult(code, False, error_code="ambiguous", ambiguous=True))
            else:
                out.append(PublishResult(code, True, "updated" if existed else "created"))
        return out

    def push_progress(self, entries, *, madonvi, check_first=False):
        self.calls["push_progress"] += 1
        out = []
        for e in entries:
            code = e["MaHoSo"]
            if check_first:
                self.check_first_codes.append(code)
                if any(progress_identity(x) == progress_identity(e) for x in self.progress.get(code, [])):
                    out.append(PublishResult(code, True, "verified"))
                    continue
            mode = self.fail_progress.get(code)
            if mode == "retryable":
                out.append(PublishResult(code, False, error_code="TransientError", retryable=True))
                continue
            if code not in self.records:
                out.append(PublishResult(code, False, error_code="-4", message="Hồ sơ không tồn tại"))
                continue
            self.progress.setdefault(code, []).append(dict(e))
            if mode == "ambiguous":
                out.append(PublishResult(code, False, error_code="ambiguous", ambiguous=True))
            else:
                out.append(PublishResult(code, True, "appended"))
        return out

    def lookup(self, code):
        self.calls["lookup"] += 1
        if code not in self.records:
            return None
        return {"HoSo": dict(self.records[code]), "TienDo": [dict(x) for x in self.progress.get(code, [])]}

    def counts(self, code: str) -> Counter[str]:
        return Counter(progress_identity(x) for x in self.progress.get(code, []))


def outbox(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(sa.select(s.publish_outbox)).mappings()]


def states(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    return repo.publish_states(engine, SID)


# ---- tests -----------------------------------------------------------------------------------------


def test_keys_are_deterministic_and_each_message_is_queued_once(engine):
    night = Night(engine)
    a = dossier("A-1")
    night.load([a, dossier("B-1", agency=AG2)])
    first = queue(night.ctx())
    assert first == {"candidates": 2, "dossiers_queued": 2, "progress_queued": 2, "unchanged_payload": 0}
    again = queue(night.ctx())  # a retried task, or the same run twice
    assert again["dossiers_queued"] == 0 and again["progress_queued"] == 0
    rows = outbox(engine)
    assert len(rows) == 4
    key = repo.outbox_key(SID, "A-1", "dossier", payload_hash(to_portal_payload(a)))
    row = next(r for r in rows if r["outbox_key"] == key)
    # the dossier message keeps no copy of the portal record (personal data): derived when needed
    assert row["payload"] is None and row["dossier_version"] == 1
    assert row["content_hash"] == payload_hash(to_portal_payload(a))
    prog = next(r for r in rows if r["kind"] == "progress" and r["dossier_code"] == "A-1")
    assert prog["outbox_key"] == repo.outbox_key(SID, "A-1", "progress", "A-1|v1|s2")
    assert prog["payload"]["NoiDungXuLy"] == "Tiếp nhận hồ sơ"


def test_publishes_once_then_only_changes(engine):
    night, portal = Night(engine), FakePortal()
    a, b = dossier("A-1"), dossier("B-1", agency=AG2)
    night.load([a, b])
    counts = night.publish(portal)
    assert counts["published"] == 2 and counts["progress_sent"] == 2 and counts["errors"] == 0
    assert set(portal.records) == {"A-1", "B-1"}
    assert {r["status"] for r in outbox(engine)} == {"confirmed"}
    st = states(engine)["A-1"]
    assert (st["status"], st["published_version"], st["attempts"]) == ("published", 1, 0)
    assert st["payload_hash"] == payload_hash(to_portal_payload(a))

    calls = portal.calls.copy()
    night.load([a, b])  # nothing changed
    counts = night.publish(portal)
    assert counts["published"] == 0 and counts["progress_sent"] == 0
    assert (
        portal.calls["publish"] == calls["publish"]
        and portal.calls["push_progress"] == calls["push_progress"]
    )

    night.load([advance(a, 4, 3), b])  # A moves on
    counts = night.publish(portal)
    assert counts["published"] == 1 and counts["progress_sent"] == 1
    assert portal.records["A-1"]["TrangThaiHoSo"] == 4
    assert [e["TrangThai"] for e in portal.progress["A-1"]] == [2, 4]
    assert states(engine)["A-1"]["published_version"] == 2


def test_a_change_outside_the_payload_is_not_sent(engine):
    night, portal = Night(engine), FakePortal()
    a = dossier("A-1")
    night.load([a])
    night.publish(portal)
    night.load([replace(a, applicant_phone="0912000111", updated_at=a.updated_at + timedelta(hours=1))])
    calls = portal.calls["publish"]
    counts = night.publish(portal)
    assert counts["unchanged_payload"] == 1 and counts["published"] == 1
    assert portal.calls["publish"] == calls
    st = states(engine)["A-1"]
    assert (
        st["published_version"] == 2
        and st["published_hash"] == repo.dossier_states(engine, SID)["A-1"].content_hash
    )


def test_quarantined_dossiers_are_never_sent(engine):
    night, portal = Night(engine), FakePortal()
    night.load([dossier("A-1"), dossier("Q-1")], quarantined={"Q-1"})
    night.publish(portal)
    assert set(portal.records) == {"A-1"}
    assert "Q-1" not in portal.progress


def test_failure_is_retried_next_run_and_repeated_failures_are_reported(engine):
    night, portal = Night(engine), FakePortal()
    a, b = dossier("A-1"), dossier("B-1")
    portal.fail["B-1"] = "retryable"
    for n in range(1, 4):
        night.load([a, b])
        counts = night.publish(portal)
        assert counts["errors"] == 1 and counts["dossiers_retryable"] == 1
        st = states(engine)["B-1"]
        assert (st["status"], st["attempts"]) == ("failed", n)
        assert "B-1" not in portal.progress  # its progress waits for the dossier
        assert counts["failing_codes"] == (["B-1"] if n >= 3 else [])
        assert counts["failing_repeatedly"] == (1 if n >= 3 else 0)
    msg = next(r for r in outbox(engine) if r["dossier_code"] == "B-1" and r["kind"] == "dossier")
    assert (msg["status"], msg["attempts"]) == ("failed", 3)

    del portal.fail["B-1"]
    night.load([a, b])
    counts = night.publish(portal)
    assert counts["published"] == 1 and counts["progress_sent"] == 1 and counts["failing_repeatedly"] == 0
    st = states(engine)["B-1"]
    assert (st["status"], st["attempts"], st["last_error"]) == ("published", 0, None)
    assert portal.records["B-1"]["MaHoSo"] == "B-1" and len(portal.progress["B-1"]) == 1


def test_an_ambiguous_progress_send_is_read_back_and_never_duplicated(engine):
    night, portal = Night(engine), FakePortal()
    a = dossier("A-1")
    portal.fail_progress["A-1"] = "ambiguous"  # applied, answer lost
    night.load([a])
    counts = night.publish(portal)
    assert counts["progress_unsure"] == 1
    msg = next(r for r in outbox(engine) if r["kind"] == "progress")
    assert msg["status"] == "sent"
    assert states(engine)["A-1"]["status"] == "failed"

    del portal.fail_progress["A-1"]
    counts = night.publish(portal)  # next run: read back first, found applied, not resent
    assert portal.check_first_codes == ["A-1"]
    assert counts["progress_found_applied"] == 1 and counts["progress_sent"] == 0
    assert set(portal.counts("A-1").values()) == {1}
    assert next(r for r in outbox(engine) if r["kind"] == "progress")["status"] == "confirmed"
    assert states(engine)["A-1"]["status"] == "published"


def test_an_unsure_entry_that_did_not_reach_the_portal_is_sent_after_the_read_back(engine):
    night, portal = Night(engine), FakePortal()
    night.load([dossier("A-1")])
    portal.fail_progress["A-1"] = "retryable"
    night.publish(portal)
    msg = next(r for r in outbox(engine) if r["kind"] == "progress")
    assert msg["status"] == "failed"  # certainly not applied: no read-back needed
    # a run that died between claiming and sending leaves the message "sent": read back first
    repo.outbox_mark(engine, [msg["outbox_key"]], "sent")
    del portal.fail_progress["A-1"]
    counts = night.publish(portal)
    assert portal.check_first_codes == ["A-1"] and counts["progress_sent"] == 1
    assert sum(portal.counts("A-1").values()) == 1


def test_an_ambiguous_dossier_send_converges(engine):
    night, portal = Night(engine), FakePortal()
    night.load([dossier("A-1")])
    portal.fail["A-1"] = "ambiguous"
    counts = night.publish(portal)
    assert counts["dossiers_unsure"] == 1 and counts["published"] == 0
    assert "A-1" not in portal.progress  # progress waits until the dossier is confirmed
    del portal.fail["A-1"]
    counts = night.publish(portal)
    assert counts["published"] == 1 and counts["progress_sent"] == 1
    assert states(engine)["A-1"]["status"] == "published"


def test_superseded_and_no_longer_publishable_messages_are_dropped(engine):
    night, portal = Night(engine), FakePortal()
    a = dossier("A-1")
    portal.fail["A-1"] = "retryable"
    night.load([a])
    night.publish(portal)
    night.load([advance(a, 4, 5)])  # a newer version while v1 is still queued
    del portal.fail["A-1"]
    counts = night.publish(portal)
    assert counts["dossiers_discarded"] == 1 and counts["published"] == 1
    assert portal.records["A-1"]["TrangThaiHoSo"] == 4
    assert [e["TrangThai"] for e in portal.progress["A-1"]] == [2, 4]  # both changes, in order

    b = dossier("B-1")
    portal.fail["B-1"] = "retryable"
    night.load([advance(a, 4, 5), b])
    night.publish(portal)
    night.load([advance(a, 4, 5), b], quarantined={"B-1"})  # held before it ever reached the portal
    del portal.fail["B-1"]
    counts = night.publish(portal)
    assert "B-1" not in portal.records and counts["dossiers_discarded"] == 1


@pytest.mark.parametrize("workers", [1, 4])  # look-ups one by one, or overlapping: same verdicts
def test_verify_writes_the_sync_rate_and_repairs_what_differs(engine, workers):
    night, portal = Night(engine, verify_workers=workers), FakePortal()
    ds = [dossier("A-1"), dossier("B-1"), dossier("C-1", agency=AG2), dossier("Q-1")]
    portal.fail["C-1"] = "retryable"
    night.load(ds, quarantined={"Q-1"})
    counts = night.publish(portal)
    assert (counts["verify_publishable"], counts["verify_in_sync"], counts["mismatches"]) == (3, 2, 0)
    assert counts["verify_not_published"] == 1 and counts["sync_rate"] == round(2 / 3, 4)
    rows = {
        (r["scope"], r["scope_code"]): r
        for r in repo.load_indicators(engine, period_type="run", indicator_id="1.4_sync_rate")
    }
    assert (rows[("source", SID)]["numerator"], rows[("source", SID)]["denominator"]) == (2, 3)
    assert (rows[("agency", AG1)]["numerator"], rows[("agency", AG1)]["denominator"]) == (2, 2)
    assert (rows[("agency", AG2)]["numerator"], rows[("agency", AG2)]["denominator"]) == (0, 1)

    # someone changes a record on the portal; a progress entry disappears; a record vanishes
    del portal.fail["C-1"]
    portal.records["A-1"]["TrangThaiHoSo"] = 9
    portal.progress["B-1"].clear()
    night.load(ds, quarantined={"Q-1"})
    counts = night.publish(portal)
    assert counts["published"] == 1  # C-1
    assert counts["mismatches"] == 1 and counts["progress_missing"] == 1 and counts["verify_in_sync"] == 2
    assert states(engine)["A-1"]["status"] == "pending"
    portal.records.pop("C-1")
    night.load(ds, quarantined={"Q-1"})
    counts = night.publish(portal)  # A-1 and B-1 repaired; C-1 found missing
    assert counts["verify_missing"] == 1 and counts["mismatches"] == 1
    assert portal.records["A-1"]["TrangThaiHoSo"] == 2 and len(portal.progress["B-1"]) == 1
    night.load(ds, quarantined={"Q-1"})
    counts = night.publish(portal)  # C-1 re-created, its progress restored once
    assert (counts["mismatches"], counts["verify_in_sync"], counts["sync_rate"]) == (0, 3, 1.0)
    assert all(set(portal.counts(c).values()) == {1} for c in ("A-1", "B-1", "C-1"))


def test_verify_sample(engine):
    night, portal = Night(engine, verify_sample=2), FakePortal()
    night.load([dossier(f"A-{i}") for i in range(6)])
    counts = night.publish(portal)
    assert counts["verify_checked"] == 2 and counts["verify_publishable"] == 6
    (row,) = repo.load_indicators(engine, scope="source", indicator_id="1.4_sync_rate")
    assert (row["numerator"], row["denominator"], row["value"]) == (6, 6, 1.0)
    night0 = Night(engine, verify_sample=0)
    night0.n = night.n
    lookups = portal.calls["lookup"]
    assert night0.publish(portal)["verify_checked"] == 0 and portal.calls["lookup"] == lookups


def test_legacy_published_dossiers_get_their_version_and_progress(engine):
    night, portal = Night(engine), FakePortal()
    a = dossier("A-1")
    night.load([a])
    portal.records["A-1"] = to_portal_payload(a)  # published by an earlier release, no version kept
    repo.mark_published(engine, [a])
    counts = night.publish(portal)
    assert counts["progress_sent"] == 1 and counts["verify_in_sync"] == 1
    assert states(engine)["A-1"]["published_version"] == 1


# ---- the real client against the sandbox portal ------------------------------------------------------


def test_real_client_reads_back_after_lost_answers_and_never_duplicates(tmp_path, monkeypatch):
    """The stage with ``PortalClient`` against the sandbox portal: about a third of the integration calls are
    applied and its answer lost (both modes); the portal must still show each entry once."""
    import json

    import requests

    from sandbox.server import SandboxConfig, running_sandbox

    url = f"sqlite:///{tmp_path / 'wh.db'}"
    engine = db.migrate(url)
    cfg = SandboxConfig.for_tests(tmp_path, simulators=("portal",), session_seconds=0.5)
    with running_sandbox(cfg) as sb:
        base = sb.urls["portal"]
        monkeypatch.setenv(
            "AIRFLOW_CONN_TTHC_UNUSED_PORTAL",
            json.dumps({"conn_type": "http", "extra": {"base_url": base}, **_login(sb.portal_credentials)}),
        )
        night = Night(
            engine,
            portal_conn_id="tthc_unused_portal",
            portal_timeout_seconds=0.3,
            portal_batch_size=3,
            portal_backoff_max_seconds=0.05,
            portal_retry_attempts=8,
        )
        ds = [dossier(f"A-{i}", agency=(AG1, AG2)[i % 2]) for i in range(7)]
        totals: Counter[str] = Counter()
        for mode in ("timeout", "reset", None):
            profile = {"seed": 8, "commit_lost": 0.3, "timeout_seconds": 0.4, "commit_lost_mode": mode}
            requests.post(f"{base}/_sandbox/faults", json=profile if mode else {}, timeout=5)
            ds = [advance(d, (2, 4, 5)[night.n], night.n * 24 + 1) for d in ds]
            night.load(ds)
            counts = night.publish(None)  # type: ignore[arg-type]  # None: the stage builds its client
            totals.update({k: v for k, v in counts.items() if isinstance(v, int)})
            state = requests.get(f"{base}/_sandbox/state", timeout=5).json()
            totals["commit_lost"] += state["faults"]["injected"].get("commit_lost", 0)
        assert totals["commit_lost"] >= 4, totals
        assert totals["progress_found_applied"] >= 1, totals  # the read-back found lost-but-applied sends
        assert counts["mismatches"] == 0 and counts["sync_rate"] == 1.0
        for code in (d.dossier_code for d in ds):
            held = state["dossiers"][code]
            assert held["record"]["TrangThaiHoSo"] == 5
            assert [p["count"] for p in held["progress"]] == [1, 1, 1]
            assert held["progress_received"] == 3
    db.dispose_engine(url)


def _login(creds: dict[str, str]) -> dict[str, str]:
    return {"login": creds["username"], "password": creds["password"]}


@pytest.mark.parametrize("workers", [1, 4])
def test_verify_stops_asking_a_portal_that_does_not_answer(engine, workers):
    """Five failed look-ups in a row: no new one starts (with threads, those already in flight
    end: at most workers - 1 more)."""
    import threading

    from connectors.http import TransientError

    class Down(FakePortal):
        lock = threading.Lock()

        def lookup(self, code):
            with self.lock:
                self.calls["lookup"] += 1
            raise TransientError("service unavailable")

    night, portal = Night(engine, verify_workers=workers), Down()
    night.load([dossier(f"A-{i}") for i in range(30)])
    counts = night.publish(portal)
    assert counts["published"] == 30  # publishing itself went through
    assert (counts["verify_checked"], counts["verify_unverified"], counts["mismatches"]) == (0, 30, 0)
    assert 5 <= portal.calls["lookup"] <= 5 + workers - 1
    assert counts["sync_rate"] is None  # unknown, not 0 %: no indicator row is written
    assert repo.load_indicators(engine, indicator_id="1.4_sync_rate") == []


def test_verify_sample_is_a_share_of_the_source_with_a_floor_and_a_cap(engine):
    # 300 publishable: 10 % → 30 checked; the floor of 40 wins; the cap of 35 wins over the floor
    for kw, expected in (
        ({"verify_share": 0.1, "verify_min": 0, "verify_sample": 2000}, 30),
        ({"verify_share": 0.1, "verify_min": 40, "verify_sample": 2000}, 40),
        ({"verify_share": 0.1, "verify_min": 40, "verify_sample": 35}, 35),
        ({"verify_share": 1.0, "verify_min": 0, "verify_sample": 2000}, 300),
    ):
        night, portal = Night(engine, **kw), FakePortal()
        night.load([dossier(f"A-{i}") for i in range(300)])
        counts = night.publish(portal)
        assert (counts["verify_checked"], counts["verify_publishable"]) == (expected, 300), kw


class DyingPortal(FakePortal):
    """The worker is killed while its ``die_at``-th progress request is in flight: the portal
    applied that batch, the answer is never read (``SystemExit`` stands for the SIGKILL)."""

    def __init__(self, die_at: int) -> None:
        super().__init__()
        self.die_at = die_at
        self.progress_calls = 0

    def push_progress(self, entries, *, madonvi, check_first=False):
        self.progress_calls += 1
        out = super().push_progress(entries, madonvi=madonvi, check_first=check_first)
        if self.progress_calls == self.die_at:
            raise SystemExit("worker killed")
        return out


@pytest.mark.parametrize(
    ("window", "unsure"),
    [
        (1, {"confirmed": 2, "sent": 2, "pending": 2}),  # a claim per batch: the batch in flight
        (2, {"sent": 4, "pending": 2}),  # the window in flight: the batch settled with it, too
        (3, {"sent": 6}),
    ],
)
def test_a_run_killed_mid_publish_leaves_only_the_window_in_flight_unsure(engine, window, unsure):
    """Progress entries are claimed a window of batches at a time: a worker killed while its
    second progress request is in flight leaves that window "maybe applied" (its settled batch's
    outcome is written with the next claim, which never came), nothing else; the resumed run
    reads back that window only and sends each entry once in all."""
    night = Night(engine, portal_batch_size=2, portal_claim_batches=window)
    ds = [dossier(f"A-{i}") for i in range(6)]  # 6 dossiers, 6 progress entries: 3 batches of 2 each
    night.load(ds)
    portal = DyingPortal(die_at=2)
    with pytest.raises(SystemExit):
        night.publish(portal)
    by_status = Counter((m["kind"], m["status"]) for m in outbox(engine))
    assert by_status == {("dossier", "confirmed"): 6, **{("progress", k): v for k, v in unsure.items()}}
    in_flight = sorted(m["dossier_code"] for m in outbox(engine) if m["status"] == "sent")

    portal.die_at = 0  # Airflow retries the task: the same run again
    counts = night.publish(portal)
    assert sorted(portal.check_first_codes) == in_flight  # read back: the window in flight only
    # the two batches sent before the kill were applied; the third never went out
    applied_unsettled = 2 if window == 1 else 4  # with window 1, the first batch was settled
    assert (counts["progress_found_applied"], counts["progress_sent"]) == (applied_unsettled, 2)
    assert all(set(portal.counts(d.dossier_code).values()) == {1} for d in ds)
    assert {m["status"] for m in outbox(engine)} == {"confirmed"}


class DyingDossierPortal(FakePortal):
    """The worker is killed while its ``die_at``-th dossier request is in flight (applied)."""

    def __init__(self, die_at: int) -> None:
        super().__init__()
        self.die_at = die_at
        self.publish_calls = 0

    def publish(self, payloads, *, madonvi=None):
        self.publish_calls += 1
        out = super().publish(payloads, madonvi=madonvi)
        if self.publish_calls == self.die_at:
            raise SystemExit("worker killed")
        return out


def test_dossier_messages_are_not_claimed_and_a_killed_run_sends_them_again(engine):
    """Dossier messages are settled a window at a time without a claim: a run killed in the middle
    leaves the unsettled ones pending (none "maybe applied"); the resumed run sends them again as
    updates, the portal converges, and every progress entry still shows once."""
    night = Night(engine, portal_batch_size=2, portal_claim_batches=2)
    ds = [dossier(f"A-{i}") for i in range(10)]  # 5 dossier batches: windows of 2, 2, 1
    night.load(ds)
    portal = DyingDossierPortal(die_at=3)  # the first window settled, the third batch in flight
    with pytest.raises(SystemExit):
        night.publish(portal)
    by_status = Counter((m["kind"], m["status"]) for m in outbox(engine))
    assert by_status == {("dossier", "confirmed"): 4, ("dossier", "pending"): 6, ("progress", "pending"): 10}

    portal.die_at = 0
    counts = night.publish(portal)
    assert counts["dossiers_sent"] == 6 and counts["progress_sent"] == 10
    assert portal.check_first_codes == []  # nothing was "maybe applied"
    assert all(set(portal.counts(d.dossier_code).values()) == {1} for d in ds)
    assert {m["status"] for m in outbox(engine)} == {"confirmed"}
    assert {m["attempts"] for m in outbox(engine) if m["kind"] == "dossier"} == {0}


class AgencyRecordingPortal(FakePortal):
    """Records the ``madonvi`` each progress entry was pushed under."""

    def __init__(self) -> None:
        super().__init__()
        self.progress_agency: list[tuple[str, int, str]] = []  # (code, TrangThai, madonvi)

    def push_progress(self, entries, *, madonvi, check_first=False):
        out = super().push_progress(entries, madonvi=madonvi, check_first=check_first)
        for e, r in zip(entries, out, strict=True):
            if r.ok:
                self.progress_agency.append((e["MaHoSo"], e["TrangThai"], madonvi))
        return out


def test_progress_goes_under_the_agency_the_portal_holds_the_dossier_under(engine):
    """madonvi of a progress call: the agency of the payload the portal accepted last, whether it
    was accepted by this run or an earlier one; a moved dossier's entries follow it once moved."""
    night, portal = Night(engine), AgencyRecordingPortal()
    a = dossier("A-1", status=2, agency=AG1)
    portal.fail_progress["A-1"] = "retryable"
    night.load([a])
    night.publish(portal)  # the dossier is on the portal under AG1; its entry is not
    assert portal.records["A-1"]["DonViXuLy"] == AG1 and portal.progress_agency == []

    # the dossier moves to AG2 but the portal refuses the new payload for now: the entry left
    # over from the first night goes under AG1 (confirmed by an earlier run, read from the outbox)
    del portal.fail_progress["A-1"]
    moved = advance(replace(a, agency_code=AG2), status=4, hours=5)
    portal.fail["A-1"] = "retryable"
    night.load([moved])
    night.publish(portal)
    assert portal.records["A-1"]["DonViXuLy"] == AG1
    assert portal.progress_agency == [("A-1", 2, AG1)]

    # the portal takes the moved dossier: its new entry goes under AG2 (confirmed in this run)
    del portal.fail["A-1"]
    night.load([moved])
    night.publish(portal)
    assert portal.records["A-1"]["DonViXuLy"] == AG2
    assert portal.progress_agency == [("A-1", 2, AG1), ("A-1", 4, AG2)]
    assert [e["TrangThai"] for e in portal.progress["A-1"]] == [2, 4]


def test_published_versions_are_written_with_the_publication_or_refused_when_mixed(engine):
    night = Night(engine)
    night.load([dossier("A-1"), dossier("B-1")])
    row = {"source_id": SID, "dossier_code": "A-1", "content_hash": "c1"}
    repo.mark_published(engine, [{**row, "published_version": 1, "payload_hash": "p1"}])
    st = states(engine)["A-1"]
    assert (st["status"], st["published_hash"], st["published_version"], st["payload_hash"]) == (
        "published", "c1", 1, "p1",
    )  # fmt: skip
    with pytest.raises(ValueError, match="all rows or none"):
        repo.mark_published(
            engine,
            [{**row, "published_version": 2, "payload_hash": "p2"}, {**row, "dossier_code": "B-1"}],
        )
    assert states(engine)["A-1"]["published_version"] == 1 and "B-1" not in states(engine)


# ---- dossier payloads derived from dossier_history (migration 0010) ---------------------------------


class RecordingPortal(FakePortal):
    """Keeps every dossier payload it was sent, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []

    def publish(self, payloads, *, madonvi=None):
        self.sent.extend(dict(p) for p in payloads)
        return super().publish(payloads, madonvi=madonvi)


def _old_mapping(d: Dossier, **kw: Any) -> dict[str, Any]:
    """What an earlier release's ``to_portal_payload`` gave: another sector code."""
    return {**to_portal_payload(d, **kw), "MaLinhVuc": "G01"}


def _raw_outbox(engine: sa.Engine) -> list[tuple[str, str, str | None]]:
    """(kind, status, payload text) as stored, not through the JSON column type."""
    with engine.connect() as c:
        return [tuple(r) for r in c.exec_driver_sql("SELECT kind, status, payload FROM publish_outbox").all()]


def test_dossier_messages_are_stored_without_their_payload(engine):
    """The outbox keeps no copy of the portal record: dossier messages have a NULL payload (their
    hash is the payload's), progress entries keep theirs, and no applicant value is in the table."""
    night, portal = Night(engine), FakePortal()
    a = dossier("A-1")
    portal.fail["A-1"] = "retryable"  # one message stays open, one is confirmed (same batch)
    night.load([a, dossier("B-1")])
    night.publish(portal)
    rows = _raw_outbox(engine)
    assert Counter((k, st) for k, st, _ in rows) == {
        ("dossier", "failed"): 1,
        ("dossier", "confirmed"): 1,
        ("progress", "pending"): 1,
        ("progress", "confirmed"): 1,
    }
    assert [p for k, _, p in rows if k == "dossier"] == [None, None]
    assert all(p and '"NoiDungXuLy"' in p for k, _, p in rows if k == "progress")
    with engine.connect() as c:
        everything = " ".join(
            str(v) for r in c.exec_driver_sql("SELECT * FROM publish_outbox").all() for v in r
        )
    assert a.applicant_id_number not in everything and "Thuý" not in everything
    msg = next(r for r in outbox(engine) if r["dossier_code"] == "A-1" and r["kind"] == "dossier")
    assert msg["content_hash"] == payload_hash(to_portal_payload(a))
    with pytest.raises(ValueError, match="without a payload"):
        repo.outbox_put(engine, [{**msg, "payload": to_portal_payload(a)}])


@pytest.mark.parametrize("mode", ["retryable", "ambiguous"])
def test_a_message_queued_by_an_earlier_run_is_sent_with_the_payload_it_was_queued_with(engine, mode):
    """Version 2 of A-1 is queued and its send fails (not applied, or applied with the answer
    lost): the next run has no payload in memory and none in the outbox; it derives the payload
    from dossier_history at the message's version (not version 1, not the latest run's reading)
    and sends exactly what the release before 0010 stored."""
    night, portal = Night(engine), RecordingPortal()
    a1 = dossier("A-1")
    night.load([a1])
    night.publish(portal)
    a2 = advance(replace(a1, fee=50_000), 4, 5)
    portal.fail["A-1"] = mode
    night.load([a2])
    counts = night.publish(portal)
    assert counts["dossiers_rederived"] == 0  # sent from memory by the run that queued it
    msg = next(r for r in outbox(engine) if r["kind"] == "dossier" and r["status"] != "confirmed")
    assert (msg["dossier_version"], msg["payload"]) == (2, None)
    would_have_been_stored = to_portal_payload(a2)
    assert msg["content_hash"] == payload_hash(would_have_been_stored)

    del portal.fail["A-1"]
    portal.sent.clear()
    counts = night.publish(portal)  # queue finds the message queued already: nothing in memory
    assert (counts["dossiers_rederived"], counts["dossiers_remapped"], counts["dossiers_sent"]) == (1, 0, 1)
    assert portal.sent == [would_have_been_stored]
    assert progress_identity(portal.records["A-1"]) == progress_identity(would_have_been_stored)
    st = states(engine)["A-1"]
    assert (st["published_version"], st["payload_hash"]) == (2, msg["content_hash"])
    assert [e["TrangThai"] for e in portal.progress["A-1"]] == [2, 4]
    assert counts["mismatches"] == 0 and counts["verify_in_sync"] == 1


def test_send_alone_derives_payloads_without_known_payloads(engine):
    """``send`` without the queue's payloads (another task, a retried one): every dossier message
    is derived, and the portal gets the same records as from memory."""
    night, portal = Night(engine), RecordingPortal()
    ds = [dossier(f"A-{i}", agency=(AG1, AG2)[i % 2], fee=1000 * i) for i in range(5)]
    night.load(ds)
    queue(night.ctx())
    counts = send(night.ctx(), portal)
    assert (counts["dossiers_rederived"], counts["dossiers_sent"], counts["progress_sent"]) == (5, 5, 5)
    assert sorted(portal.sent, key=lambda p: p["MaHoSo"]) == [to_portal_payload(d) for d in ds]


@pytest.mark.parametrize("mode", ["retryable", "ambiguous"])
def test_a_message_whose_payload_the_mapping_no_longer_gives_is_not_sent_and_the_dossier_is_queued_again(
    engine, monkeypatch, mode
):
    """A message queued by a release whose mapping gave another payload: re-derived, its hash is not
    the message's. It is not sent under that hash (neither content would be right): it is dropped,
    the dossier stays a candidate, and the next queue step sends the current payload."""
    night, portal = Night(engine), RecordingPortal()
    a = dossier("A-1")
    monkeypatch.setattr("connectors.portal.to_portal_payload", _old_mapping)
    portal.fail["A-1"] = mode
    night.load([a])
    night.publish(portal)
    (old,) = [r for r in outbox(engine) if r["kind"] == "dossier"]
    assert old["content_hash"] == payload_hash(_old_mapping(a)) != payload_hash(to_portal_payload(a))
    monkeypatch.undo()  # the new release
    del portal.fail["A-1"]
    portal.sent.clear()

    counts = send(night.ctx(), portal)  # the send step alone: only the old message is open
    assert (counts["dossiers_remapped"], counts["dossiers_rederived"], counts["dossiers_sent"]) == (1, 0, 0)
    assert portal.sent == []
    assert [r["outbox_key"] for r in outbox(engine) if r["kind"] == "dossier"] == []
    assert states(engine)["A-1"]["status"] == "failed"  # not published: still a candidate
    assert [d.dossier_code for d in repo.publish_candidates(engine, SID)] == ["A-1"]

    counts = night.publish(portal)  # queued again with the current payload, sent from memory
    assert (counts["dossiers_queued"], counts["dossiers_sent"], counts["dossiers_remapped"]) == (1, 1, 0)
    assert portal.sent == [to_portal_payload(a)] and portal.records["A-1"] == to_portal_payload(a)
    (new,) = [r for r in outbox(engine) if r["kind"] == "dossier"]
    assert new["content_hash"] == payload_hash(to_portal_payload(a)) and new["status"] == "confirmed"
    st = states(engine)["A-1"]
    assert (st["status"], st["published_version"], st["payload_hash"]) == (
        "published",
        1,
        new["content_hash"],
    )
    assert set(portal.counts("A-1").values()) == {1} and counts["verify_in_sync"] == 1


def test_after_a_mapping_change_the_same_run_queues_and_sends_the_current_payload(engine, monkeypatch):
    """The whole stage in one run: the queue step queues the current payload under its own key
    (the dossier is a candidate), the send step drops the old message and sends the new one."""
    night, portal = Night(engine), RecordingPortal()
    a = dossier("A-1")
    monkeypatch.setattr("connectors.portal.to_portal_payload", _old_mapping)
    portal.fail["A-1"] = "retryable"
    night.load([a])
    night.publish(portal)
    monkeypatch.undo()
    del portal.fail["A-1"]
    portal.sent.clear()
    counts = night.publish(portal)
    assert (counts["dossiers_queued"], counts["dossiers_remapped"], counts["dossiers_sent"]) == (1, 1, 1)
    assert portal.sent == [to_portal_payload(a)]
    assert [r["content_hash"] for r in outbox(engine) if r["kind"] == "dossier"] == [
        payload_hash(to_portal_payload(a))
    ]


def test_verify_compares_the_portal_with_the_published_version_from_history(engine):
    """The read-back's expected record is the payload of ``published_version`` in dossier_history
    (no outbox copy): a dossier whose newer version did not reach the portal is compared with the
    version the portal holds, not with its current content, and a changed record is found."""
    night, portal = Night(engine), FakePortal()
    a1, b = dossier("A-1"), dossier("B-1")
    night.load([a1, b])
    night.publish(portal)
    assert all(r["payload"] is None for r in outbox(engine) if r["kind"] == "dossier")
    portal.fail["A-1"] = "retryable"
    night.load([advance(a1, 4, 5), b])  # version 2 is refused: the portal still holds version 1
    counts = night.publish(portal)
    assert states(engine)["A-1"]["published_version"] == 1
    assert portal.records["A-1"] == to_portal_payload(a1)
    assert (counts["verify_checked"], counts["verify_in_sync"], counts["mismatches"]) == (2, 1, 0)
    assert counts["verify_unverified"] == 0  # A-1 checked against version 1: equal, not current
    assert counts["verify_remapped"] == 0  # the derived payloads gave the recorded hashes

    portal.records["A-1"]["NgayHenTra"] = "20261231170000"  # someone edits the record on the portal
    counts = verify(night.ctx(), portal)
    assert (counts["mismatches"], counts["verify_in_sync"], counts["verify_unverified"]) == (1, 1, 0)
    assert states(engine)["A-1"]["published_hash"] is None  # sent again next run


def test_verify_after_a_mapping_change_checks_the_recorded_payload_hash(engine, monkeypatch):
    """Published by a release with another mapping: the derived payload does not give the recorded
    ``payload_hash``, so the portal's record is checked against that hash."""
    night, portal = Night(engine), FakePortal()
    monkeypatch.setattr("connectors.portal.to_portal_payload", _old_mapping)
    night.load([dossier("A-1"), dossier("B-1")])
    night.publish(portal)
    monkeypatch.undo()
    counts = verify(night.ctx(), portal)
    assert (counts["verify_remapped"], counts["verify_in_sync"], counts["mismatches"]) == (2, 2, 0)
    portal.records["B-1"]["TrangThaiHoSo"] = 9
    counts = verify(night.ctx(), portal)
    assert (counts["verify_remapped"], counts["verify_in_sync"], counts["mismatches"]) == (2, 1, 1)
    assert states(engine)["B-1"]["published_hash"] is None and states(engine)["A-1"]["published_hash"]
