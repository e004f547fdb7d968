"""The onegate, sqldb and file-drop connectors against the sandbox simulators: each maps the
simulator's rendering of the World back to exactly the World's dossiers (the fields its dialect
carries), with the onegate faults on, the sqldb mojibake rows, and the file drop's half-written,
empty and malformed files."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from connectors.http import RetryPolicy, Timeouts
from connectors.onegate import OnegateAuthError, OnegateClient
from connectors.onegate import to_dossier as onegate_to_dossier
from connectors.sqldb import SqlDbClient
from connectors.sqldb import to_dossier as sqldb_to_dossier
from tthc.model import Dossier, Supplement

sandbox_server = pytest.importorskip("sandbox.server")
pytest.importorskip("sandbox.onegate")
pytest.importorskip("sandbox.sqldb")
sandbox_filedrop = pytest.importorskip("sandbox.filedrop")

from connectors.filedrop import scan  # noqa: E402
from connectors.filedrop import to_dossier as filedrop_to_dossier  # noqa: E402
from sandbox.faults import FaultProfile  # noqa: E402
from sandbox.server import SandboxConfig, running_sandbox  # noqa: E402

FAST_RETRY = RetryPolicy(
    max_attempts=12, backoff_initial=0.01, backoff_max=0.05, jitter=0.01, retry_after_cap=0.05
)
SHORT = Timeouts(connect=2.0, read=0.4)
EPOCH = datetime(2000, 1, 1)
SIZE = 1200

#: Fields every dialect carries, compared as they are.
COMMON = (
    "dossier_code",
    "agency_code",
    "procedure_code",
    "procedure_name",
    "channel",
    "applicant_name",
    "applicant_id_number",
    "applicant_id_type",
    "applicant_birth_date",
    "applicant_sex",
    "status",
    "paid_online",
    "fee",
)
DATES = ("received_at", "due_at", "finished_at", "returned_at")


def noop_sleep(_: float) -> None:
    pass


def visible(sb: Any, source_id: str) -> tuple[datetime, list[Any]]:
    with sb.holder.lock:
        w = sb.world
        return w.now, [r for r in w.records(source_id) if r.visible_at <= w.now]


def sources_of(sb: Any, dialect: str) -> list[str]:
    with sb.holder.lock:
        return [s.source_id for s in sb.world.sources if s.dialect == dialect]


def assert_carried(back: Dossier, d: Dossier, fields: tuple[str, ...], what: str) -> None:
    for f in fields:
        assert getattr(back, f) == getattr(d, f), (what, f)


def match_by_code(mapped: list[Dossier], truth: list[Any]) -> list[tuple[Dossier, Dossier]]:
    """Pairs (mapped, world dossier). Codes are unique except the ``duplicate_code`` pairs, which
    are told apart by receipt time (and applicant)."""
    by_code: dict[str | None, list[Dossier]] = {}
    for rec in truth:
        by_code.setdefault(rec.dossier.dossier_code, []).append(rec.dossier)
    pairs = []
    for m in mapped:
        candidates = by_code.get(m.dossier_code, [])
        assert candidates, ("unknown code", m.dossier_code)
        if len(candidates) > 1:
            candidates = [
                c
                for c in candidates
                if (c.received_at, c.applicant_id_number) == (m.received_at, m.applicant_id_number)
            ] or candidates
        pairs.append((m, candidates[0]))
    return pairs


# ---- onegate --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onegate_sandbox(tmp_path_factory) -> Iterator[Any]:
    faults = FaultProfile(seed=7, error_5xx=0.15, rate_429=0.1, reset=0.08, timeout=0.04, timeout_seconds=1.0)
    cfg = SandboxConfig.for_tests(
        tmp_path_factory.mktemp("onegate"),
        simulators=("onegate",),
        preset="demo",
        size=SIZE,
        faults={"onegate": faults},
    )
    with running_sandbox(cfg) as sb:
        yield sb


def onegate_client(sb: Any, src: dict[str, Any], **kw: Any) -> OnegateClient:
    return OnegateClient(
        sb.urls["onegate"], api_key=src["api_key"], timeouts=SHORT, retry=FAST_RETRY, sleep=noop_sleep, **kw
    )


ONEGATE_FIELDS = (*COMMON, "sector_code", "status_raw", "applicant_type", *DATES, "updated_at")
ONEGATE_FIELDS += ("result_file", "vneid_verified", "supplements", "attachments", "raw_issues")


def test_onegate_full_window_under_faults_maps_exactly(onegate_sandbox):
    sb = onegate_sandbox
    assert sb.onegate_sources, "the demo world has onegate sources"
    for src in sb.onegate_sources:
        now, truth = visible(sb, src["source_id"])
        client = onegate_client(sb, src, page_size=37)
        raw = client.fetch(EPOCH, now + timedelta(seconds=1))
        assert len(raw) == len(truth), src["source_id"]
        mapped = [onegate_to_dossier(r, src["source_id"]) for r in raw]
        assert sorted(str(d.dossier_code) for d in mapped) == sorted(
            str(r.dossier.dossier_code) for r in truth
        )
        for back, d in match_by_code(mapped, truth):
            assert_carried(back, d, ONEGATE_FIELDS, src["source_id"])
    injected = requests.get(f"{sb.urls['onegate']}/_sandbox/state", timeout=5).json()["faults"]["injected"]
    assert sum(injected.values()) > 0  # the faults really happened


def test_onegate_incremental_windows_add_up(onegate_sandbox):
    sb = onegate_sandbox
    src = sb.onegate_sources[0]
    now, truth = visible(sb, src["source_id"])
    cut = now - timedelta(days=7)
    client = onegate_client(sb, src, page_size=50)
    old = client.fetch(EPOCH, cut)
    new = client.fetch(cut, now + timedelta(seconds=1))
    assert len(old) + len(new) == len(truth)
    assert all(onegate_to_dossier(r, "s").updated_at < cut for r in old)
    assert all(onegate_to_dossier(r, "s").updated_at >= cut for r in new)


def test_onegate_records_changing_while_paging(onegate_sandbox):
    sb = onegate_sandbox
    requests.post(f"{sb.urls['onegate']}/_sandbox/reset", timeout=5)
    src = max(sb.onegate_sources, key=lambda s: len(visible(sb, s["source_id"])[1]))
    now, truth = visible(sb, src["source_id"])
    assert len(truth) > 30
    client = onegate_client(sb, src, page_size=10)
    pages = {"n": 0}

    def touch_after_second_page(response, *args, **kwargs):
        if "/api/HoSo/DongBo" in response.url and response.status_code == 200:
            pages["n"] += 1
            if pages["n"] == 2:
                r = requests.post(
                    f"{sb.urls['onegate']}/_sandbox/touch",
                    json={"source_id": src["source_id"], "count": 7},
                    timeout=5,
                )
                assert r.ok

    client.http.session.hooks["response"].append(touch_after_second_page)
    raw = client.fetch(EPOCH, now + timedelta(seconds=1))
    assert pages["n"] >= 3
    assert sorted(str(r["MaHoSo"]) for r in raw) == sorted(str(r.dossier.dossier_code) for r in truth)


def test_onegate_wrong_key_is_an_auth_error(onegate_sandbox):
    sb = onegate_sandbox
    requests.post(f"{sb.urls['onegate']}/_sandbox/faults", json={}, timeout=5)  # no faults for this one
    try:
        with pytest.raises(OnegateAuthError) as ei:
            onegate_client(sb, {"api_key": "not-a-key"}).fetch(EPOCH, datetime(2030, 1, 1))
        assert ei.value.error_code == "1"
    finally:
        faults = {"seed": 7, "error_5xx": 0.15, "rate_429": 0.1, "reset": 0.08, "timeout": 0.04}
        requests.post(f"{sb.urls['onegate']}/_sandbox/faults", json=faults, timeout=5)


# ---- sqldb ----------------------------------------------------------------------------------------------


def _sqldb_sandbox(tmp: Path, **kw: Any) -> Iterator[Any]:
    cfg = SandboxConfig.for_tests(tmp, simulators=("sqldb",), preset="demo", size=SIZE, **kw)
    with running_sandbox(cfg) as sb:
        yield sb


@pytest.fixture(scope="module")
def sqldb_sqlite_sandbox(tmp_path_factory) -> Iterator[Any]:
    yield from _sqldb_sandbox(tmp_path_factory.mktemp("sqldb"))


@pytest.fixture(scope="module")
def sqldb_mariadb_sandbox(tmp_path_factory) -> Iterator[Any]:
    import sqlalchemy as sa

    probe = sa.create_engine("mysql+pymysql://root@127.0.0.1:3306", connect_args={"connect_timeout": 3})
    try:
        with probe.connect():
            pass
    except sa.exc.OperationalError:
        pytest.skip("MariaDB on 127.0.0.1:3306 is not reachable")
    finally:
        probe.dispose()
    yield from _sqldb_sandbox(
        tmp_path_factory.mktemp("sqldb_maria"),
        sqldb_backend="mariadb",
        sqldb_database_prefix=f"tthc_t{uuid.uuid4().hex[:6]}_",
        sqldb_drop_on_stop=True,
    )


SQLDB_FIELDS = (*COMMON, *DATES, "updated_at")


def _check_sqldb(sb: Any) -> None:
    infos = sb.sqldb.sources_info()
    assert infos and {i["source_id"] for i in infos} == set(sources_of(sb, "sqldb"))
    repaired = 0
    for info in infos:
        sid = info["source_id"]
        now, truth = visible(sb, sid)
        with SqlDbClient(info["url"], view=info["view"], chunk_size=3) as client:
            rows = client.fetch(EPOCH, now + timedelta(seconds=1))
            repaired += client.last_stats.repaired["ho_ten_chu_ho_so"]
            assert client.last_stats.chunks == -(-len(rows) // 3)  # streamed in chunks
        assert len(rows) == len(truth), sid
        mapped = [sqldb_to_dossier(r, sid) for r in rows]
        for back, d in match_by_code(mapped, truth):
            assert_carried(back, d, SQLDB_FIELDS, sid)
            assert back.raw_issues == {}
            assert back.status_raw == (None if d.status is not None else back.status_raw)
            # what the view can say about supplements: their number and the latest round
            assert len(back.supplements) == len(d.supplements)
            if d.supplements:
                assert back.supplements[-1] == d.supplements[-1]
            assert [a.digitized for a in back.attachments] == [any(a.digitized for a in d.attachments)]
            assert bool(back.result_file) == bool(d.result_file)
        legacy = {c for c in sb.sqldb.legacy_codes(sid)}
        assert legacy, "the simulator wrote some names as mojibake"
    assert repaired > 0


def test_sqldb_sqlite_views_map_exactly_and_mojibake_is_repaired(sqldb_sqlite_sandbox):
    _check_sqldb(sqldb_sqlite_sandbox)


@pytest.mark.mariadb
def test_sqldb_mariadb_views_map_exactly_and_mojibake_is_repaired(sqldb_mariadb_sandbox):
    _check_sqldb(sqldb_mariadb_sandbox)


def test_sqldb_follows_the_clock_incrementally(sqldb_sqlite_sandbox):
    sb = sqldb_sqlite_sandbox
    info = sb.sqldb.sources_info()[0]
    sid = info["source_id"]
    before, _ = visible(sb, sid)
    sb.advance(days=2)
    after, truth = visible(sb, sid)
    with SqlDbClient(info["url"]) as client:
        rows = client.fetch(before, after + timedelta(seconds=1))
    changed = {r.dossier.dossier_code for r in truth if r.dossier.updated_at >= before}
    assert rows and {r["ma_ho_so"] for r in rows} == changed


# ---- file drop ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def filedrop_sandbox(tmp_path_factory) -> Iterator[Any]:
    cfg = SandboxConfig.for_tests(
        tmp_path_factory.mktemp("filedrop"),
        simulators=("filedrop",),
        preset="demo",
        size=SIZE,
        # more faults than by default, so that every kind shows up in a small world
        filedrop_options={
            "malformed_rate": 0.4,
            "empty_rate": 0.15,
            "slow_tmp_rate": 0.3,
            "abandoned_tmp_rate": 0.2,
        },
    )
    with running_sandbox(cfg) as sb:
        yield sb


def _minute(v: datetime | None) -> datetime | None:
    return v.replace(second=0, microsecond=0) if v is not None else None


def _expected_status(entry: dict[str, Any]) -> str:
    if entry["path"].endswith(".tmp"):
        return "skipped"
    if entry.get("fault") in ("wrong_header", "truncated_row", "garbage", "empty"):
        return "rejected"
    return "loaded"


def _truth_as_of(sb: Any, sid: str, when: datetime) -> dict[str | None, list[Dossier]]:
    """code -> the World's dossiers as their source held them at ``when`` (latest visible version)."""
    latest: dict[Any, Any] = {}
    with sb.holder.lock:
        for r in sb.world.versions(sid):
            if r.visible_at <= when:
                k = r.dossier_index
                if k not in latest or r.visible_at >= latest[k].visible_at:
                    latest[k] = r
    out: dict[str | None, list[Dossier]] = {}
    for r in latest.values():
        out.setdefault(r.dossier.dossier_code, []).append(r.dossier)
    return out


def test_filedrop_folders_map_exactly_and_bad_files_are_rejected(filedrop_sandbox):
    sb = filedrop_sandbox
    with sb.holder.lock:
        now = sb.world.now
    seen_faults: set[str] = set()
    statuses: set[str] = set()
    for sid in sources_of(sb, "filedrop"):
        folder = sb.filedrop.folder(sid)
        batch = scan(folder, set(), now, settle_seconds=0, dedupe=False)
        outcomes = {f.name: f for f in batch.files}
        manifest = {e["path"].split("/", 1)[1]: e for e in sb.filedrop.files(sid)}
        assert set(outcomes) == set(manifest), sid
        by_file: dict[str, list[dict[str, Any]]] = {}
        for r in batch.records:
            by_file.setdefault(r["_file"], []).append(r)
        for name, entry in manifest.items():
            f = outcomes[name]
            expected = _expected_status(entry)
            assert f.status == expected, (name, entry.get("fault"), f.reason)
            statuses.add(f.status)
            seen_faults.add(entry.get("fault") or "ok")
            if expected != "loaded":
                assert name not in by_file
                continue
            records = by_file.get(name, [])
            assert [r["ma_ho_so"] for r in records] == [c or "" for c in entry["codes"]] or (
                [r["ma_ho_so"] for r in records] == [c for c in entry["codes"] if c]
            )
            truth = _truth_as_of(sb, sid, datetime.fromisoformat(entry["exported_at"]))
            cp1258 = entry.get("encoding") == "cp1258"
            for r in records:
                back = filedrop_to_dossier(r, sid)
                assert back.raw_issues == {}, (name, r["_row"], sorted(back.raw_issues))
                assert _matches_some(back, truth.get(back.dossier_code, []), cp1258), (name, r["_row"])
        # every dossier of a bad or pending file is also in a good one (the simulator's promise)
        loaded_codes = {r["ma_ho_so"] for r in batch.records}
        for name, entry in manifest.items():
            if _expected_status(entry) == "rejected":
                assert {c for c in entry["codes"] if c} <= loaded_codes | _pending_codes(manifest), name
    assert statuses == {"loaded", "rejected", "skipped"}  # every kind of file was met
    assert "ok" in seen_faults and seen_faults & {"wrong_header", "truncated_row", "garbage"}


def test_filedrop_each_dossier_once_from_its_newest_export(filedrop_sandbox):
    """Read together, overlapping exports give each dossier once: the newest export's version."""
    sb = filedrop_sandbox
    with sb.holder.lock:
        now = sb.world.now
    for sid in sources_of(sb, "filedrop"):
        batch = scan(sb.filedrop.folder(sid), set(), now, settle_seconds=0)
        everything = scan(sb.filedrop.folder(sid), set(), now, settle_seconds=0, dedupe=False).records
        assert batch.superseded == len(everything) - len(batch.records)
        newest: dict[tuple[Any, ...], str] = {}
        for r in everything:
            key = (r["ma_ho_so"], r["so_cccd"], r["ma_tthc"], r["ma_don_vi"])
            newest[key] = max(newest.get(key, ""), r["_exported_at"])
        dossiers = [filedrop_to_dossier(r, sid) for r in batch.records]
        keys = [(d.dossier_code, d.received_at, d.applicant_id_number) for d in dossiers]
        assert len(keys) == len(set(keys)), sid
        for r in batch.records:
            assert r["_exported_at"] == newest[(r["ma_ho_so"], r["so_cccd"], r["ma_tthc"], r["ma_don_vi"])]


def _pending_codes(manifest: dict[str, dict[str, Any]]) -> set[str]:
    return {c for n, e in manifest.items() if n.endswith(".tmp") for c in e["codes"] if c}


def _matches_some(back: Dossier, candidates: list[Dossier], cp1258: bool) -> bool:
    return any(_same(back, d, cp1258) for d in candidates)


def _same(back: Dossier, d: Dossier, cp1258: bool) -> bool:
    view = sandbox_filedrop.cp1258_view if cp1258 else (lambda s: s)
    text = {"applicant_name", "procedure_name"}
    for f in COMMON:
        want = getattr(d, f)
        if f in text and want is not None:
            want = view(want)
        if getattr(back, f) != want:
            return False
    if back.status is None and back.status_raw != (d.status_raw or "").strip():
        return False
    if any(getattr(back, f) != _minute(getattr(d, f)) for f in DATES):
        return False
    supplements = [Supplement(_minute(s.requested_at), _minute(s.completed_at)) for s in d.supplements]
    if back.supplements != supplements:
        return False
    if [a.digitized for a in back.attachments] != [any(a.digitized for a in d.attachments)]:
        return False
    return bool(back.result_file) == bool(d.result_file)


def test_filedrop_rescan_with_the_manifest_reads_only_what_changed(filedrop_sandbox):
    sb = filedrop_sandbox
    sid = sources_of(sb, "filedrop")[0]
    folder = sb.filedrop.folder(sid)
    with sb.holder.lock:
        now = sb.world.now
    first = scan(folder, set(), now, settle_seconds=0)
    manifest = set(first.to_record)
    again = scan(folder, manifest, now, settle_seconds=0)
    assert again.records == [] and again.to_record == set()
    assert {f.status for f in again.files} <= {"unchanged", "skipped"}
    later = sb.advance(days=20)  # new exports, re-exports and completed .tmp files appear
    third = scan(folder, manifest, later, settle_seconds=0)
    changed = {f.name for f in third.files if f.status in ("loaded", "rejected")}
    assert changed and third.to_record
    assert {r["_file"] for r in third.records} <= changed


def test_unicode_names_survive_every_encoding(filedrop_sandbox):
    """Sanity of the comparison helper: NFD names come back as written (UTF-8/16, XLSX)."""
    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Thuý")
    assert sandbox_filedrop.cp1258_view(nfd) == unicodedata.normalize("NFC", nfd)
