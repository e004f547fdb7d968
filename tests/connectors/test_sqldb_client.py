"""connectors.sqldb.SqlDbClient on SQLite and on the MariaDB server: the incremental window,
streaming in chunks, mojibake from a latin1 column repaired, parameterised queries, errors."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.http import AuthError, PermanentError, ProtocolError, RetryPolicy, TransientError
from connectors.sqldb import VIEW_COLUMNS, SqlDbClient, to_dossier, to_dossier_fetched

T0 = datetime(2026, 11, 1, 8, 0, 0)
MARIADB_ROOT = "mysql+pymysql://root@127.0.0.1:3306/test"
FAST = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.02, jitter=0.0)

NAMES = ["Nguyễn Văn Đặng", "Trần Thị Thuý", "Lê Hoàng Ễnh", "Phạm Minh Đức"]


def row(i: int, updated: datetime, **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "ma_ho_so": f"000.00.12.H40-261101-{i:04d}",
        "ma_tthc": "1.001234",
        "ten_tthc": "Đăng ký khai sinh",
        "ma_don_vi": "000.00.12.H40" if i % 2 == 0 else "000.00.13.H40",
        "kenh_nop": 1 + i % 3,
        "ho_ten_chu_ho_so": NAMES[i % len(NAMES)],
        "so_cccd": f"0361850{i:05d}",
        "ngay_sinh": "1985-03-04",
        "gioi_tinh": 1 + i % 2,
        "ngay_tiep_nhan": T0 - timedelta(days=3),
        "ngay_hen_tra": T0 + timedelta(days=4),
        "ngay_ket_thuc": None,
        "ngay_tra_kq": None,
        "trang_thai": 4,
        "thanh_toan_truc_tuyen": 0,
        "le_phi": 50000,
        "so_lan_bo_sung": 0,
        "ngay_yc_bo_sung": None,
        "ngay_bo_sung": None,
        "co_so_hoa": 1,
        "co_kq_dien_tu": 0,
        "ngay_cap_nhat": updated,
    }
    r.update(kw)
    return r


def mojibake(text: str) -> str:
    """UTF-8 bytes read as MariaDB's latin1 (cp1252, undefined bytes kept as C1 controls)."""
    out = []
    for b in text.encode("utf-8"):
        try:
            out.append(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            out.append(chr(b))
    return "".join(out)


# ---- databases ---------------------------------------------------------------------------------------


class Db:
    """A department database with table ``hs`` and the view ``ho_so_tthc`` over it."""

    def __init__(self, kind: str, url: str, engine: sa.Engine) -> None:
        self.kind = kind
        self.url = url
        self.engine = engine

    def insert(self, rows: list[dict[str, Any]], *, as_bytes: bool = True) -> None:
        cols = list(VIEW_COLUMNS)
        as_bytes = as_bytes and self.kind == "mariadb"
        if as_bytes:
            # names stored the way old systems did: UTF-8 bytes in a latin1 column
            values = ", ".join(
                f"CONVERT(:{c} USING latin1)" if c in ("ho_ten_chu_ho_so", "ten_tthc") else f":{c}"
                for c in cols
            )
        else:
            values = ", ".join(f":{c}" for c in cols)
        stmt = sa.text(f"INSERT INTO hs ({', '.join(cols)}) VALUES ({values})")
        prepared = []
        for r in rows:
            p = dict(r)
            for c in cols:
                v = p.get(c)
                if self.kind == "sqlite" and isinstance(v, datetime):
                    p[c] = v.strftime("%Y-%m-%d %H:%M:%S")
                if as_bytes and c in ("ho_ten_chu_ho_so", "ten_tthc") and isinstance(v, str):
                    p[c] = v.encode("utf-8")  # the bytes, not the text: the real defect
            prepared.append(p)
        with self.engine.begin() as conn:
            conn.execute(stmt, prepared)

    def client(self, **kw: Any) -> SqlDbClient:
        kw.setdefault("retry", FAST)
        kw.setdefault("sleep", lambda s: None)
        return SqlDbClient(self.url, **kw)


SQLITE_DDL = """
CREATE TABLE hs (
  ma_ho_so TEXT, ma_tthc TEXT, ten_tthc TEXT, ma_don_vi TEXT, kenh_nop INTEGER,
  ho_ten_chu_ho_so TEXT, so_cccd TEXT, ngay_sinh TEXT, gioi_tinh INTEGER, ngay_tiep_nhan TEXT,
  ngay_hen_tra TEXT, ngay_ket_thuc TEXT, ngay_tra_kq TEXT, trang_thai INTEGER,
  thanh_toan_truc_tuyen INTEGER, le_phi INTEGER, so_lan_bo_sung INTEGER, ngay_yc_bo_sung TEXT,
  ngay_bo_sung TEXT, co_so_hoa INTEGER, co_kq_dien_tu INTEGER, ngay_cap_nhat TEXT
)"""

MARIADB_DDL = """
CREATE TABLE hs (
  id INT AUTO_INCREMENT PRIMARY KEY,
  ma_ho_so VARCHAR(100), ma_tthc VARCHAR(32), ten_tthc VARCHAR(255) CHARACTER SET latin1,
  ma_don_vi VARCHAR(32), kenh_nop TINYINT, ho_ten_chu_ho_so VARCHAR(200) CHARACTER SET latin1,
  so_cccd VARCHAR(20), ngay_sinh DATE NULL, gioi_tinh TINYINT, ngay_tiep_nhan DATETIME NULL,
  ngay_hen_tra DATETIME NULL, ngay_ket_thuc DATETIME NULL, ngay_tra_kq DATETIME NULL, trang_thai INT,
  thanh_toan_truc_tuyen TINYINT, le_phi DECIMAL(12, 0), so_lan_bo_sung INT, ngay_yc_bo_sung DATETIME NULL,
  ngay_bo_sung DATETIME NULL, co_so_hoa TINYINT, co_kq_dien_tu TINYINT, ngay_cap_nhat DATETIME,
  KEY (ngay_cap_nhat)
) DEFAULT CHARSET = utf8mb4"""

VIEW_DDL = "CREATE VIEW ho_so_tthc AS SELECT " + ", ".join(VIEW_COLUMNS) + " FROM hs"


def _sqlite_db(tmp_path) -> Iterator[Db]:
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(SQLITE_DDL)
        conn.exec_driver_sql(VIEW_DDL)
    yield Db("sqlite", url, engine)
    engine.dispose()


def _mariadb_db() -> Iterator[Db]:
    admin = sa.create_engine(MARIADB_ROOT, connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError:
        admin.dispose()
        pytest.skip("MariaDB on 127.0.0.1:3306 is not reachable")
    name = f"tthc_sqldb_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    url = f"mysql+pymysql://root@127.0.0.1:3306/{name}"
    engine = sa.create_engine(url + "?charset=utf8mb4")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(MARIADB_DDL)
            conn.exec_driver_sql(VIEW_DDL)
        yield Db("mariadb", url, engine)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def db(request, tmp_path) -> Iterator[Db]:
    if request.param == "sqlite":
        yield from _sqlite_db(tmp_path)
    else:
        yield from _mariadb_db()


@pytest.fixture
def mariadb() -> Iterator[Db]:
    yield from _mariadb_db()


# ---- reading -------------------------------------------------------------------------------------------


def test_incremental_window_is_half_open_and_ordered(db):
    times = [
        T0 - timedelta(seconds=1),
        T0,
        T0 + timedelta(hours=5),
        T0 + timedelta(days=1) - timedelta(seconds=1),
    ]
    times += [T0 + timedelta(days=1), T0 + timedelta(days=2)]
    db.insert([row(i, t) for i, t in enumerate(reversed(times))])
    c = db.client()
    rows = c.fetch(T0, T0 + timedelta(days=1))
    got = [r["ngay_cap_nhat"] for r in rows]
    expected = [T0, T0 + timedelta(hours=5), T0 + timedelta(days=1) - timedelta(seconds=1)]
    if db.kind == "sqlite":
        expected = [t.strftime("%Y-%m-%d %H:%M:%S") for t in expected]  # text as stored
    assert got == expected
    assert c.last_stats.rows == 3 and c.last_stats.attempts == 1
    ds = [to_dossier(r, "sqldb_so_gddt") for r in rows]
    assert [d.updated_at for d in ds] == [
        T0,
        T0 + timedelta(hours=5),
        T0 + timedelta(days=1) - timedelta(seconds=1),
    ]
    assert all(d.raw_issues == {} for d in ds)


def test_sqlite_iso_t_separator_is_in_the_window(tmp_path):
    db = next(_sqlite_db(tmp_path))
    db.insert([row(1, T0)])
    with db.engine.begin() as conn:  # a writer that used isoformat()
        conn.exec_driver_sql("UPDATE hs SET ngay_cap_nhat = '2026-11-01T09:00:00'")
    rows = db.client().fetch(T0, T0 + timedelta(hours=2))
    assert len(rows) == 1 and to_dossier(rows[0], "s").updated_at == datetime(2026, 11, 1, 9)


def test_streams_in_chunks(db):
    db.insert([row(i, T0 + timedelta(minutes=i)) for i in range(10)])
    c = db.client(chunk_size=3)
    chunks = list(c.iter_chunks(T0, T0 + timedelta(days=1)))
    assert [len(ch) for ch in chunks] == [3, 3, 3, 1]
    assert [r["ma_ho_so"] for ch in chunks for r in ch] == [
        f"000.00.12.H40-261101-{i:04d}" for i in range(10)
    ]
    assert list(c.iter_rows(T0, T0 + timedelta(days=1)))[9]["ma_ho_so"].endswith("0009")


def test_names_and_text_repaired(db):
    db.insert([row(i, T0 + timedelta(minutes=i)) for i in range(4)])
    if db.kind == "sqlite":  # the mojibake as a latin1 read would produce it
        with db.engine.begin() as conn:
            for i, name in enumerate(NAMES):
                broken = mojibake(name)
                conn.execute(
                    sa.text("UPDATE hs SET ho_ten_chu_ho_so = :n WHERE ma_ho_so = :c"),
                    {"n": broken, "c": f"000.00.12.H40-261101-{i:04d}"},
                )
    else:
        with db.engine.connect() as conn:  # the defect is real: UTF-8 bytes in latin1, read as text
            hexed = conn.exec_driver_sql("SELECT HEX(ho_ten_chu_ho_so) FROM hs ORDER BY id").scalars().all()
            plain = (
                conn.exec_driver_sql("SELECT ho_ten_chu_ho_so FROM ho_so_tthc ORDER BY ngay_cap_nhat")
                .scalars()
                .all()
            )
        assert hexed == [n.encode("utf-8").hex().upper() for n in NAMES]
        assert plain[0].startswith("Nguyá»") and plain != NAMES
    c = db.client()
    rows = c.fetch(T0, T0 + timedelta(days=1))
    assert [r["ho_ten_chu_ho_so"] for r in rows] == NAMES
    assert [to_dossier(r, "s").applicant_name for r in rows] == NAMES
    # the pipeline's mapper of fetched rows does not check their text again: same dossiers
    assert [to_dossier_fetched(r, "s") for r in rows] == [to_dossier(r, "s") for r in rows]
    assert c.last_stats.repaired["ho_ten_chu_ho_so"] == 4
    if db.kind == "mariadb":
        assert c.last_stats.repaired["ten_tthc"] == 4
        assert all(r["ten_tthc"] == "Đăng ký khai sinh" for r in rows)


def test_correct_and_nfd_text_is_left_alone(db):
    import unicodedata

    if db.kind == "mariadb":  # a healthy database: Unicode columns
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "ALTER TABLE hs MODIFY ho_ten_chu_ho_so VARCHAR(200) CHARACTER SET utf8mb4, "
                "MODIFY ten_tthc VARCHAR(255) CHARACTER SET utf8mb4"
            )
    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Thuý")
    names_in = [nfd, "Hoàng Văn Thủy", "H'Hen Niê", "Nguyễn Phúc Vĩnh Lộc"]
    db.insert([row(i, T0, ho_ten_chu_ho_so=n) for i, n in enumerate(names_in)], as_bytes=False)
    c = db.client()
    rows = c.fetch(T0, T0 + timedelta(hours=1))
    assert sorted(r["ho_ten_chu_ho_so"] for r in rows) == sorted(names_in)  # NFD stays as the source spelt it
    assert all(r["ten_tthc"] == "Đăng ký khai sinh" for r in rows)
    assert c.last_stats.repaired_total == 0


def test_injection_looking_values_are_data(db):
    evil = "000.00.12.H40-261101-0001'; DROP TABLE hs; --"
    db.insert([row(1, T0, ma_ho_so=evil), row(2, T0 + timedelta(minutes=1))])
    c = db.client(agency_codes=["x' OR '1'='1", "000.00.13.H40"])
    rows = c.fetch(T0, T0 + timedelta(hours=1))
    assert [r["ma_ho_so"] for r in rows] == [evil]  # ma_don_vi of row 1 is 000.00.13.H40
    assert db.client(agency_codes=["x' OR '1'='1"]).fetch(T0, T0 + timedelta(hours=1)) == []
    with db.engine.connect() as conn:  # the table is still there
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM hs").scalar() == 2
    with pytest.raises(ValueError):
        db.client(view="ho_so_tthc; DROP TABLE hs")
    with pytest.raises(ValueError):
        db.client(view="ho_so_tthc`")


def test_statement_is_parameterised():
    c = SqlDbClient("mysql+pymysql://u:p@127.0.0.1:3306/motcua", agency_codes=["a' OR 1=1 --"])
    stmt, params = c._statement(T0, T0 + timedelta(days=1))
    sql = str(stmt.compile(dialect=c.engine.dialect))
    assert "OR 1=1" not in sql and "2026" not in sql
    assert params["agency_codes"] == ["a' OR 1=1 --"] and params["updated_from"] == T0


def test_missing_contract_column_is_named(db):
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP VIEW ho_so_tthc")
        cols = [c for c in VIEW_COLUMNS if c != "co_so_hoa"]
        conn.exec_driver_sql("CREATE VIEW ho_so_tthc AS SELECT " + ", ".join(cols) + " FROM hs")
    with pytest.raises(ProtocolError, match="co_so_hoa"):
        db.client().fetch(T0, T0 + timedelta(days=1))


def test_missing_view_is_permanent(db):
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP VIEW ho_so_tthc")
    with pytest.raises(PermanentError):
        db.client().fetch(T0, T0 + timedelta(days=1))


def test_sqlite_statement_timeout(tmp_path):
    db = next(_sqlite_db(tmp_path))
    with db.engine.begin() as conn:
        conn.exec_driver_sql("DROP VIEW ho_so_tthc")
        conn.exec_driver_sql(
            "CREATE VIEW ho_so_tthc AS WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
            "WHERE x < 100000000) SELECT " + ", ".join(f"hs.{c}" for c in VIEW_COLUMNS) + " FROM n, hs"
        )
    db.insert([row(1, T0)])
    sleeps: list[float] = []
    c = db.client(statement_timeout=0.2, sleep=sleeps.append)
    with pytest.raises(TransientError, match="time-out"):
        c.fetch(T0, T0 + timedelta(days=1))
    assert c.last_stats.attempts == FAST.max_attempts and len(sleeps) == FAST.max_attempts - 1


@pytest.mark.mariadb
def test_mariadb_statement_timeout(mariadb):
    with mariadb.engine.begin() as conn:
        conn.exec_driver_sql("DROP VIEW ho_so_tthc")
        conn.exec_driver_sql(
            "CREATE VIEW ho_so_tthc AS SELECT " + ", ".join(VIEW_COLUMNS) + " FROM hs WHERE SLEEP(2) = 0"
        )
    mariadb.insert([row(i, T0) for i in range(3)])
    c = mariadb.client(statement_timeout=0.3, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(TransientError) as ei:
        c.fetch(T0, T0 + timedelta(days=1))
    assert ei.value.error_code == "mysql:1969"


@pytest.mark.mariadb
def test_mariadb_session_is_read_only(mariadb):
    c = mariadb.client()
    with c.engine.connect() as conn:
        c._prepare_session(conn)
        with pytest.raises(sa.exc.DBAPIError):
            conn.exec_driver_sql("INSERT INTO hs (ma_ho_so) VALUES ('x')")


def test_sqlite_session_is_read_only(tmp_path):
    db = next(_sqlite_db(tmp_path))
    c = db.client()
    with c.engine.connect() as conn:
        c._prepare_session(conn)
        with pytest.raises(sa.exc.OperationalError):
            conn.exec_driver_sql("INSERT INTO hs (ma_ho_so) VALUES ('x')")


@pytest.mark.mariadb
def test_mariadb_wrong_credentials_are_auth_error(mariadb):
    c = SqlDbClient(
        mariadb.url, username="tthc_nobody", password="not-the-password", retry=FAST, sleep=lambda s: None
    )
    with pytest.raises(AuthError) as ei:
        c.fetch(T0, T0 + timedelta(days=1))
    assert "not-the-password" not in str(ei.value) and "not-the-password" not in repr(c)
    assert ei.value.error_code == "mysql:1045"


def test_unreachable_server_is_transient_after_retries():
    sleeps: list[float] = []
    c = SqlDbClient(
        "mysql+pymysql://u@127.0.0.1:1/motcua",
        password="s3cret-pw",
        retry=FAST,
        sleep=sleeps.append,
        connect_timeout=2,
    )
    with pytest.raises(TransientError) as ei:
        c.fetch(T0, T0 + timedelta(days=1))
    assert ei.value.error_code == "mysql:2003"
    assert len(sleeps) == FAST.max_attempts - 1
    assert "s3cret-pw" not in str(ei.value) and "s3cret-pw" not in repr(c)


def test_no_personal_data_in_logs(db, caplog):
    caplog.set_level(logging.DEBUG, logger="connectors")
    db.insert([row(i, T0 + timedelta(minutes=i)) for i in range(3)])
    db.client().fetch(T0, T0 + timedelta(days=1))
    assert "sqldb fetch" in caplog.text
    for name in NAMES:
        assert name not in caplog.text
    assert "036185" not in caplog.text


def test_constructor_checks():
    with pytest.raises(ValueError):
        SqlDbClient()
    with pytest.raises(ValueError):
        SqlDbClient("sqlite://", chunk_size=0)
    with pytest.raises(ValueError):
        SqlDbClient("sqlite://").fetch(T0 + timedelta(days=1), T0)
    assert SqlDbClient("sqlite://", view="motcua.ho_so_tthc").schema == "motcua"
