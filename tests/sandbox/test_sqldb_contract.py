"""Contract of the department-database simulator, world.md §3: the view ``ho_so_tthc``.

SQLite always; the MariaDB tests are marked ``mariadb`` (skipped when the server on 127.0.0.1:3306 is
unreachable, which the root conftest turns into a failure under CI=true).
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from datetime import datetime, timedelta

import ftfy
import pytest
import requests
import sqlalchemy as sa

from sandbox.sqldb import COLUMNS, latin1_mojibake, render_row, repair_mojibake
from sandbox.world import World, WorldConfig
from tthc.model import Attachment, Dossier, Supplement

T0 = datetime(2026, 11, 2, 8, 0)
WORLD_MD_COLUMNS = (
    "ma_ho_so, ma_tthc, ten_tthc, ma_don_vi, kenh_nop, ho_ten_chu_ho_so, so_cccd, ngay_sinh, gioi_tinh, "
    "ngay_tiep_nhan, ngay_hen_tra, ngay_ket_thuc, ngay_tra_kq, trang_thai, thanh_toan_truc_tuyen, "
    "le_phi, so_lan_bo_sung, ngay_yc_bo_sung, ngay_bo_sung, co_so_hoa, co_kq_dien_tu, ngay_cap_nhat"
).split(", ")
MARIADB_SERVER = os.environ.get("TTHC_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")


@pytest.fixture(scope="module")
def demo_config():
    return WorldConfig.demo(size=900)


def _sb(sandbox_factory, demo_config, **kw):
    kw.setdefault("simulators", ("igate", "sqldb"))
    return sandbox_factory(world=World(demo_config), **kw)


def _sources(sb) -> list[dict]:
    return [s for s in sb.state_document()["sources"] if s["dialect"] == "sqldb"]


def _read(url: str, where: str = "", params: dict | None = None) -> list[dict]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            sql = f"SELECT * FROM ho_so_tthc {where} ORDER BY ngay_cap_nhat, ma_ho_so"
            # datetimes bound as SQLAlchemy DateTime: on SQLite that is the stored text format
            typed = [
                sa.bindparam(k, type_=sa.DateTime)
                for k, v in (params or {}).items()
                if isinstance(v, datetime)
            ]
            stmt = sa.text(sql).bindparams(*typed)
            return [dict(r) for r in c.execute(stmt, params or {}).mappings()]
    finally:
        engine.dispose()


def _dt(v):
    """A DATETIME as read back: datetime from MariaDB, text from a raw SQLite query."""
    if v is None or isinstance(v, datetime):
        return v
    return datetime.fromisoformat(v)


def _normal(row: dict) -> dict:
    return {k: (_dt(v) if k.startswith("ngay_") and k != "ngay_sinh" else v) for k, v in row.items()}


def _multiset(rows: list[dict]) -> Counter:
    return Counter(json.dumps(_normal(r), sort_keys=True, default=str, ensure_ascii=False) for r in rows)


def _repair(rows: list[dict]) -> list[dict]:
    return [dict(r, ho_ten_chu_ho_so=repair_mojibake(r["ho_ten_chu_ho_so"])) for r in rows]


# ---- pure parts ----------------------------------------------------------------------------------
def test_columns_are_exactly_world_md():
    assert list(COLUMNS) == WORLD_MD_COLUMNS


def test_render_row():
    d = Dossier(
        source_id="sqldb_a",
        dossier_code="000.00.17.H40-261102-0001",
        agency_code="000.00.17.H40",
        procedure_code="1.005092",
        received_at=T0,
        updated_at=T0 + timedelta(days=3),
        status=None,
        status_raw="cho_duyet",
        procedure_name="Cấp bản sao văn bằng",
        channel=2,
        applicant_name="Nguyễn Văn Đức",
        applicant_id_number="040090001234",
        applicant_birth_date="1990",
        applicant_sex=1,
        due_at=T0 + timedelta(days=5),
        paid_online=1,
        fee=20000,
        supplements=[Supplement(T0, T0 + timedelta(days=1)), Supplement(T0 + timedelta(days=2), None)],
        attachments=[Attachment("Đơn", digitized=False), Attachment("Bản sao", digitized=True)],
        result_file=None,
    )
    row = render_row(d)
    assert list(row) == WORLD_MD_COLUMNS
    assert row["trang_thai"] == 0  # unknown vendor status without a number
    assert (row["kenh_nop"], row["gioi_tinh"], row["thanh_toan_truc_tuyen"], row["le_phi"]) == (
        2,
        1,
        1,
        20000,
    )
    assert row["ngay_sinh"] == "1990" and row["ho_ten_chu_ho_so"] == "Nguyễn Văn Đức"
    assert row["so_lan_bo_sung"] == 2
    assert (row["ngay_yc_bo_sung"], row["ngay_bo_sung"]) == (T0 + timedelta(days=2), None)  # the latest
    assert (row["co_so_hoa"], row["co_kq_dien_tu"]) == (1, 0)
    assert row["ngay_cap_nhat"] == T0 + timedelta(days=3)
    d.status, d.status_raw = None, "99"
    assert render_row(d)["trang_thai"] == 99


def test_mojibake_is_what_a_latin1_column_returns():
    assert latin1_mojibake("Nguyễn Văn") == "Nguyá»…n VÄƒn"  # world.md's example
    for name in ("Nguyễn Văn Đức", "Đặng Thị Hoà", "Phạm Thuý", "Lê"):
        m = latin1_mojibake(name)
        assert repair_mojibake(m) == name
        assert ftfy.fix_text(m) == name or name == "Đặng Thị Hoà"  # ftfy also repairs; Đ+NBSP are hard
    assert latin1_mojibake("Le Van An") == "Le Van An"


# ---- SQLite --------------------------------------------------------------------------------------
def test_every_sqldb_source_has_a_sqlite_view_reported_in_the_state(sandbox_factory, demo_config):
    sb = _sb(sandbox_factory, demo_config)
    doc = sb.state_document()
    entries = _sources(sb)
    assert {s["source_id"] for s in entries} == {"sqldb_so_gddt", "sqldb_so_congthuong"}
    for s in entries:
        assert s["backend"] == "sqlite" and s["view"] == "ho_so_tthc"
        assert s["incremental_column"] == "ngay_cap_nhat"
        assert s["url"] == f"sqlite:///{s['path']}" and s["extra"]["url"] == s["url"]
        assert s["path"].startswith(str(sb.config.state_dir.resolve()))
        engine = sa.create_engine(s["url"])
        try:
            insp = sa.inspect(engine)
            assert "ho_so_tthc" in insp.get_view_names()
            assert [c["name"] for c in insp.get_columns("ho_so_tthc")] == WORLD_MD_COLUMNS
        finally:
            engine.dispose()
    assert doc["sqldb"]["backend"] == "sqlite" and doc["sqldb"]["sources"] == entries
    assert {x["source_id"] for x in doc["sqldb"]["inspection"]["sources"]} == {
        s["source_id"] for s in entries
    }


def test_view_holds_the_world_now_names_partly_mojibake(sandbox_factory, demo_config):
    sb = _sb(sandbox_factory, demo_config)
    total_legacy = 0
    for s in _sources(sb):
        rows = _read(s["url"])
        world = sb.world.records(s["source_id"])
        assert len(rows) == len(world)
        assert sorted(r["ma_ho_so"] for r in rows) == sorted(r.dossier.dossier_code for r in world)
        expected = [render_row(r.dossier) for r in world]
        assert _multiset(_repair(rows)) == _multiset(expected)
        legacy = [
            r
            for r in rows
            if r["ho_ten_chu_ho_so"] and repair_mojibake(r["ho_ten_chu_ho_so"]) != r["ho_ten_chu_ho_so"]
        ]
        total_legacy += len(legacy)
        assert all(
            "Ã" in r["ho_ten_chu_ho_so"] or "á»" in r["ho_ten_chu_ho_so"] or "Ä" in r["ho_ten_chu_ho_so"]
            for r in legacy
        )
        assert sb.sqldb.legacy_codes(s["source_id"]) >= {r["ma_ho_so"] for r in legacy}
    # about the configured share (0.2) of rows, never all of them
    n = sum(len(sb.world.records(s["source_id"])) for s in _sources(sb))
    assert 0.08 * n <= total_legacy <= 0.35 * n


def test_incremental_pull_by_ngay_cap_nhat_sees_changes(sandbox_factory, demo_config):
    sb = _sb(sandbox_factory, demo_config)
    s = _sources(sb)[0]
    before = _read(s["url"])
    mark = max(_dt(r["ngay_cap_nhat"]) for r in before)
    # the clock moves through the igate control endpoint: the view is in step before it answers
    r = requests.post(f"{sb.urls['igate']}/_sandbox/clock", json={"days": 4}, timeout=30)
    assert r.status_code == 200
    after = _read(s["url"])
    world = {x.dossier.dossier_code: x for x in sb.world.records(s["source_id"])}
    assert len(after) == len(world) > len(before)
    # what an incremental reader gets: every row changed since its mark, with the new state ...
    new = _read(s["url"], "WHERE ngay_cap_nhat > :mark", {"mark": mark})
    assert new and all(_dt(r["ngay_cap_nhat"]) > mark for r in new)
    for row in new:
        assert row["trang_thai"] == render_row(world[row["ma_ho_so"]].dossier)["trang_thai"]
    # ... and the rows it does not get did not change (apart from late updates: look back)
    old = {(r["ma_ho_so"], json.dumps(_normal(r), default=str)) for r in before}
    untouched = [r for r in after if _dt(r["ngay_cap_nhat"]) <= mark]
    changed = [r for r in untouched if (r["ma_ho_so"], json.dumps(_normal(r), default=str)) not in old]
    late = {x.dossier.dossier_code for x in sb.world.records(s["source_id"]) if "late_update" in x.defects}
    assert {r["ma_ho_so"] for r in changed} <= late
    state = sb.state_document()["sqldb"]["inspection"]
    assert state["counts"]["syncs"] >= 2 and state["last_sync"]["now"] == "2026-11-06T08:00:00"


def test_sync_and_reset_follow_the_clock(sandbox_factory, demo_config):
    sb = _sb(sandbox_factory, demo_config, simulators=("sqldb",))
    s = _sources(sb)[0]
    n0 = len(_read(s["url"]))
    sb.advance(days=10)
    assert len(_read(s["url"])) == len(sb.world.records(s["source_id"])) > n0
    sb.holder.reset()
    sb.sync()  # a clock moved back rebuilds the view
    assert len(_read(s["url"])) == n0
    assert sb.sqldb.state()["counts"]["rebuilds"] == 1


def test_sqlalchemy_datetime_binds_compare_on_sqlite(sandbox_factory, demo_config):
    """SQLite keeps DATETIME as text; a bound datetime and an ISO string both select correctly."""
    sb = _sb(sandbox_factory, demo_config, simulators=("sqldb",))
    s = _sources(sb)[0]
    rows = _read(s["url"])
    pivot = _dt(rows[len(rows) // 2]["ngay_cap_nhat"])
    engine = sa.create_engine(s["url"])
    try:
        md = sa.MetaData()
        view = sa.Table("ho_so_tthc", md, autoload_with=engine)
        with engine.connect() as c:
            by_dt = c.execute(sa.select(view.c.ma_ho_so).where(view.c.ngay_cap_nhat >= pivot)).all()
            by_text = c.execute(
                sa.text("SELECT ma_ho_so FROM ho_so_tthc WHERE ngay_cap_nhat >= :p"),
                {"p": pivot.isoformat(" ")},
            ).all()
    finally:
        engine.dispose()
    expected = sum(1 for r in rows if _dt(r["ngay_cap_nhat"]) >= pivot)
    assert len(by_dt) == len(by_text) == expected


def test_dossier_fixture_makes_sqldb_sources(sandbox_factory, tmp_path):
    def d(code, updated, name):
        return Dossier(
            source_id="sqldb_fx",
            dossier_code=code,
            agency_code="000.00.17.H40",
            procedure_code="1.005092",
            received_at=updated - timedelta(hours=1),
            updated_at=updated,
            status=4,
            applicant_name=name,
            source_record_id=str(uuid.uuid5(uuid.NAMESPACE_URL, code)),
        ).to_dict()

    late = d("F-261102-0002", T0 + timedelta(hours=1), "Trần Văn Hoà")
    late["visible_at"] = (T0 + timedelta(days=1)).isoformat()
    path = tmp_path / "sqldb.json"
    path.write_text(
        json.dumps([d("F-261102-0001", T0, "Nguyễn Thị Thuý"), late], ensure_ascii=False), "utf-8"
    )
    sb = sandbox_factory(
        simulators=("igate", "sqldb"),
        sqldb_dossiers_json=path,
        anchor=T0 + timedelta(hours=2),
        sqldb_mojibake_share=1.0,
    )
    (s,) = _sources(sb)
    assert s["source_id"] == "sqldb_fx" and s["agency_codes"] == ["000.00.17.H40"]
    rows = _read(s["url"])
    assert [r["ma_ho_so"] for r in rows] == ["F-261102-0001"]
    assert rows[0]["ho_ten_chu_ho_so"] == latin1_mojibake("Nguyễn Thị Thuý")  # share 1.0: every row
    requests.post(f"{sb.urls['igate']}/_sandbox/clock", json={"days": 1}, timeout=30)
    assert [r["ma_ho_so"] for r in _read(s["url"])] == ["F-261102-0001", "F-261102-0002"]
    assert sb.igate_sources == []  # a sqldb source is not an igate tenant


def test_config_checks(tmp_path):
    from sandbox.server import SandboxConfig, config_from_mapping

    with pytest.raises(ValueError, match="sqldb backend"):
        SandboxConfig.for_tests(tmp_path, sqldb_backend="oracle")
    with pytest.raises(ValueError, match="unknown keys in sqldb"):
        config_from_mapping({"sqldb": {"backnd": "sqlite"}})
    cfg = config_from_mapping({"sqldb": {"backend": "mariadb", "database_prefix": "x_"}})
    assert (cfg.sqldb_backend, cfg.sqldb_database_prefix) == ("mariadb", "x_")
    from sandbox.sqldb import SqldbConfig

    with pytest.raises(ValueError, match="127.0.0.1"):
        SqldbConfig(backend="mariadb", mariadb_url="mysql+pymysql://root@db.example.org:3306")


# ---- MariaDB -------------------------------------------------------------------------------------
def _mariadb_or_skip() -> None:
    engine = sa.create_engine(MARIADB_SERVER, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as c:
            c.exec_driver_sql("SELECT 1")
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"MariaDB not reachable on 127.0.0.1:3306: {type(e).__name__}")
    finally:
        engine.dispose()


@pytest.fixture
def maria_sb(sandbox_factory, demo_config):
    _mariadb_or_skip()
    prefix = f"tthc_t{os.getpid()}_{uuid.uuid4().hex[:6]}_"
    return _sb(
        sandbox_factory,
        demo_config,
        sqldb_backend="mariadb",
        mariadb_url=MARIADB_SERVER,
        sqldb_database_prefix=prefix,
        sqldb_create_users=True,
        sqldb_drop_on_stop=True,
    )


@pytest.mark.mariadb
def test_mariadb_view_latin1_column_and_read_only_account(maria_sb):
    sb = maria_sb
    entries = _sources(sb)
    assert len(entries) == 2
    admin = sa.create_engine(MARIADB_SERVER)
    try:
        for s in entries:
            assert s["backend"] == "mariadb" and s["url"].startswith("mysql+pymysql://")
            assert s["username"] == f"{s['source_id']}_ro" and s["port"] == 3306
            assert s["database"].endswith(s["source_id"]) and "charset=utf8mb4" in s["url"]
            rows = _read(s["url"])  # through the source's read-only account
            world = sb.world.records(s["source_id"])
            assert _multiset(_repair(rows)) == _multiset([render_row(r.dossier) for r in world])
            engine = sa.create_engine(s["url"])
            try:
                assert [c["name"] for c in sa.inspect(engine).get_columns("ho_so_tthc")] == WORLD_MD_COLUMNS
                with engine.connect() as c, pytest.raises(sa.exc.DBAPIError):
                    c.exec_driver_sql("DELETE FROM ho_so_tthc")  # read-only
            finally:
                engine.dispose()
            with admin.connect() as c:
                charset = c.exec_driver_sql(
                    "SELECT CHARACTER_SET_NAME FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA=%s AND TABLE_NAME='ho_so_tthc_data' AND COLUMN_NAME='ho_ten_cu'",
                    (s["database"],),
                ).scalar()
                assert charset == "latin1"
                legacy = c.exec_driver_sql(
                    f"SELECT ma_ho_so, HEX(ho_ten_cu) FROM `{s['database']}`.ho_so_tthc_data "
                    "WHERE ho_ten_cu IS NOT NULL"
                ).all()
            assert legacy
            by_code = {r["ma_ho_so"]: r for r in rows}
            for code, hexed in legacy:
                # the latin1 column holds the name's UTF-8 bytes; a utf8mb4 reader sees mojibake
                truth = bytes.fromhex(hexed).decode("utf-8")
                assert by_code[code]["ho_ten_chu_ho_so"] == latin1_mojibake(truth)
    finally:
        admin.dispose()


@pytest.mark.mariadb
def test_mariadb_incremental_and_drop_on_stop(tmp_path, demo_config):
    _mariadb_or_skip()
    prefix = f"tthc_t{os.getpid()}_{uuid.uuid4().hex[:6]}_"
    from sandbox.server import SandboxConfig, running_sandbox

    sb_cm = running_sandbox(
        SandboxConfig.for_tests(
            tmp_path,
            simulators=("sqldb",),
            sqldb_backend="mariadb",
            mariadb_url=MARIADB_SERVER,
            sqldb_database_prefix=prefix,
            sqldb_drop_on_stop=True,
        ),
        world=World(demo_config),
    )
    with sb_cm as sb:
        s = _sources(sb)[0]
        assert s["username"] == "root"  # without create_users the admin account of mariadb_url
        mark = max(r["ngay_cap_nhat"] for r in _read(s["url"]))
        sb.advance(days=3)
        new = _read(s["url"], "WHERE ngay_cap_nhat > :m", {"m": mark})
        assert new and all(r["ngay_cap_nhat"] > mark for r in new)
        assert len(_read(s["url"])) == len(sb.world.records(s["source_id"]))
        database = s["database"]
    admin = sa.create_engine(MARIADB_SERVER)
    try:
        with admin.connect() as c:
            assert c.exec_driver_sql("SHOW DATABASES LIKE %s", (database,)).all() == []
    finally:
        admin.dispose()
