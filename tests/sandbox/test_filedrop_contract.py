"""Contract of the file-drop simulator, world.md §4: header, encodings, XLSX and real-life faults."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import requests
from openpyxl import load_workbook

from sandbox.common import WorldHolder
from sandbox.filedrop import (
    HEADER,
    FiledropConfig,
    FiledropSimulator,
    cp1258_view,
    encode_csv,
    encode_xlsx,
    read_export,
    render_row,
    to_cp1258,
)
from sandbox.world import World, WorldConfig
from tthc.model import Attachment, Dossier, Supplement

T0 = datetime(2026, 11, 2, 8, 0)
WORLD_MD_HEADER = (
    "Mã hồ sơ, Mã thủ tục, Tên thủ tục, Mã đơn vị, Kênh nộp, Họ tên người nộp, Số CCCD, Ngày sinh, "
    "Giới tính, Ngày tiếp nhận, Ngày hẹn trả, Ngày kết thúc, Ngày trả kết quả, Trạng thái, Thanh toán "
    "trực tuyến, Lệ phí, Ngày yêu cầu bổ sung, Ngày bổ sung, Số hóa, Kết quả điện tử"
).split(", ")
QUIET = dict(
    partial_rate=0.0,
    reexport_rate=0.0,
    overlap_rate=0.0,
    slow_tmp_rate=0.0,
    abandoned_tmp_rate=0.0,
    empty_rate=0.0,
    malformed_rate=0.0,
)


def dossier(name="Nguyễn Thị Thuý", **kw) -> Dossier:
    base = dict(
        source_id="filedrop_a",
        dossier_code="000.26.46.H40-261102-0001",
        agency_code="000.26.46.H40",
        procedure_code="1.001193",
        received_at=T0,
        updated_at=T0 + timedelta(days=2),
        status=10,
        procedure_name='Đăng ký khai sinh, kết hôn "kết hợp"',
        channel=2,
        applicant_name=name,
        applicant_id_number="040185000123",
        applicant_birth_date="1985-03-04",
        applicant_sex=2,
        due_at=T0 + timedelta(days=3, hours=9),
        finished_at=T0 + timedelta(days=1, minutes=5, seconds=30),
        returned_at=T0 + timedelta(days=2),
        paid_online=1,
        fee=8000,
        supplements=[Supplement(T0, T0 + timedelta(hours=4)), Supplement(T0 + timedelta(hours=5), None)],
        attachments=[Attachment("Tờ khai", digitized=True)],
        result_file="ket-qua/x.pdf",
    )
    base.update(kw)
    return Dossier(**base)


NAMES = [
    "Nguyễn Thị Thuý",
    "Đặng Văn Hoà",
    unicodedata.normalize("NFD", "Phạm Quỳnh Anh"),
    "Ðỗ Minh Khải",  # Ð look-alike (U+00D0)
    "Lê\u00a0Thị  Mỹ",
    "TRẦN ĐỨC THẮNG",
]


# ---- the format ----------------------------------------------------------------------------------
def test_header_is_world_md():
    assert list(HEADER) == WORLD_MD_HEADER
    assert all(unicodedata.is_normalized("NFC", h) for h in HEADER)


def test_render_row_values():
    row = dict(zip(HEADER, render_row(dossier()), strict=True))
    assert row["Mã hồ sơ"] == "000.26.46.H40-261102-0001" and row["Mã đơn vị"] == "000.26.46.H40"
    assert (row["Kênh nộp"], row["Giới tính"], row["Trạng thái"]) == ("2", "Nữ", "10")
    assert (row["Thanh toán trực tuyến"], row["Lệ phí"], row["Số hóa"], row["Kết quả điện tử"]) == (
        "1",
        "8000",
        "1",
        "1",
    )
    assert row["Ngày sinh"] == "04/03/1985"
    assert row["Ngày tiếp nhận"] == "02/11/2026 08:00" and row["Ngày hẹn trả"] == "05/11/2026 17:00"
    assert row["Ngày kết thúc"] == "03/11/2026 08:05" and row["Ngày trả kết quả"] == "04/11/2026 08:00"
    assert row["Ngày yêu cầu bổ sung"] == "02/11/2026 08:00; 02/11/2026 13:00"
    assert row["Ngày bổ sung"] == "02/11/2026 12:00; "  # aligned: the second round is pending
    year_only = dict(
        zip(HEADER, render_row(dossier(applicant_birth_date="1957", applicant_sex=1)), strict=True)
    )
    assert (year_only["Ngày sinh"], year_only["Giới tính"]) == ("1957", "Nam")
    unknown = dict(zip(HEADER, render_row(dossier(status=None, status_raw="cho_duyet")), strict=True))
    assert unknown["Trạng thái"] == "cho_duyet"
    empty = dict(zip(HEADER, render_row(dossier(due_at=None, fee=None, supplements=[])), strict=True))
    assert (empty["Ngày hẹn trả"], empty["Lệ phí"], empty["Ngày yêu cầu bổ sung"]) == ("", "", "")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-le", "cp1258"])
def test_each_encoding_decodes_back_to_the_truth(encoding):
    rows = [
        render_row(dossier(name=n, dossier_code=f"000.26.46.H40-261102-000{i}")) for i, n in enumerate(NAMES)
    ]
    data = encode_csv(rows, encoding)
    bom = {"utf-8-sig": b"\xef\xbb\xbf", "utf-16-le": b"\xff\xfe"}.get(encoding, b"")
    assert data.startswith(bom) and (bom or not data.startswith((b"\xef\xbb\xbf", b"\xff\xfe")))
    if encoding == "utf-16-le":
        text = data[2:].decode("utf-16-le")
        delimiter = "\t"  # Excel "Unicode text"
    elif encoding == "cp1258":
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        text = unicodedata.normalize("NFC", data.decode("cp1258"))
        delimiter = ","
    else:
        text = data.decode("utf-8-sig")
        delimiter = ","
    assert "\r\n" in text
    parsed = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    assert parsed[0] == WORLD_MD_HEADER
    if encoding == "cp1258":  # what Windows-1258 can carry, in NFC
        truth = [[cp1258_view(v) for v in r] for r in rows]
        assert truth[3][5] == "Đỗ Minh Khải"  # best fit for the look-alike
        assert truth[2][5] == "Phạm Quỳnh Anh"  # NFD input comes back composed
    else:
        truth = rows
    assert parsed[1:] == truth
    # the sandbox's own reader sniffs the same
    assert read_export_bytes(data, ".csv")[2] == encoding


def read_export_bytes(data: bytes, suffix: str) -> tuple:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as fh:
        fh.write(data)
    try:
        return read_export(fh.name)
    finally:
        Path(fh.name).unlink()


def test_cp1258_uses_combining_tone_marks_where_windows_does():
    assert to_cp1258("ễ") == b"\xea\xde"  # ê + combining tilde (0xDE)
    assert to_cp1258("ạ") == b"a\xf2"  # a + combining dot below (0xF2)
    assert to_cp1258("Đà") == b"\xd0\xe0"  # precomposed where the code page has it
    assert to_cp1258("ư\u200b") == b"\xfd"  # zero-width space dropped
    assert to_cp1258("€ 中") == b"\x80 ?"
    for name in NAMES[:3]:
        assert unicodedata.normalize("NFC", to_cp1258(name).decode("cp1258")) == unicodedata.normalize(
            "NFC", name
        )


def test_xlsx_export():
    rows = [render_row(dossier(name=n)) for n in NAMES[:2]]
    for date_cells in (False, True):
        data = encode_xlsx(rows, date_cells=date_cells, when=T0)
        assert data == encode_xlsx(rows, date_cells=date_cells, when=T0)  # deterministic bytes
        wb = load_workbook(io.BytesIO(data))
        ws = wb["HoSo"]
        got = [list(r) for r in ws.iter_rows(values_only=True)]
        assert got[0] == WORLD_MD_HEADER
        row = dict(zip(HEADER, got[1], strict=True))
        assert row["Số CCCD"] == "040185000123"  # text: the leading zero survives
        assert row["Kênh nộp"] == 2 and row["Trạng thái"] == 10 and row["Lệ phí"] == 8000
        assert row["Họ tên người nộp"] == "Nguyễn Thị Thuý"
        if date_cells:
            assert row["Ngày tiếp nhận"] == datetime(2026, 11, 2, 8, 0)
            assert (
                ws.cell(row=2, column=HEADER.index("Ngày tiếp nhận") + 1).number_format == "dd/mm/yyyy hh:mm"
            )
            assert row["Ngày sinh"] == datetime(1985, 3, 4)
        else:
            assert row["Ngày tiếp nhận"] == "02/11/2026 08:00" and row["Ngày sinh"] == "04/03/1985"


# ---- the simulated drop --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_config():
    return WorldConfig.demo(size=900)


def make_drop(tmp_path, demo_config, **rates):
    world = World(demo_config)
    holder = WorldHolder(lambda: world)
    sim = FiledropSimulator(
        holder, FiledropConfig(root=tmp_path / "drop", seed=demo_config.seed, **rates)
    ).start()
    return world, sim


def as_of(world: World, source_id: str, t: datetime) -> list[Dossier]:
    latest: dict[tuple, object] = {}
    for r in world.versions(source_id):
        if r.visible_at <= t:
            latest[(r.dossier_index, r.dossier.source_record_id or r.dossier.dossier_code)] = r
    return [r.dossier for r in latest.values()]


def text_rows(path: Path) -> tuple[list[str], list[list[str]], str]:
    header, rows, enc = read_export(path)
    out = []
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            if v is None:
                cells.append("")
            elif isinstance(v, datetime):
                cells.append(v.strftime("%d/%m/%Y" if HEADER[i] == "Ngày sinh" else "%d/%m/%Y %H:%M"))
            else:
                cells.append(str(v))
        out.append(cells)
    return header, out, enc


def month_of(name: str) -> tuple[date, date] | None:
    m = re.match(r"hoso_(\d{4})_(\d{2})\.", name)
    if m:
        start = date(int(m.group(1)), int(m.group(2)), 1)
        return start, (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    m = re.match(r"hoso_(\d{8})_(\d{8})\.", name)
    if m:
        a = datetime.strptime(m.group(1), "%Y%m%d").date()
        b = datetime.strptime(m.group(2), "%Y%m%d").date() + timedelta(days=1)
        return a, b
    return None


def check_good_file(world: World, root: Path, f: dict) -> None:
    """A well-formed export holds exactly the agency's dossiers of its window as of its export."""
    path = root / f["path"]
    source_id, agency, name = f["path"].split("/")
    header, rows, enc = text_rows(path)
    assert header == WORLD_MD_HEADER, f["path"]
    assert enc == f["encoding"]
    t = datetime.fromisoformat(f["exported_at"])
    start, end = month_of(name)
    state = as_of(world, source_id, t)
    fix = cp1258_view if enc == "cp1258" else (lambda v: v)
    candidates = [[fix(v) for v in render_row(d)] for d in state if d.agency_code in (agency, None)]
    for row in rows:
        assert row in candidates, (f["path"], row[0])
    expected = {
        d.dossier_code
        for d in state
        if d.agency_code == agency and d.received_at is not None and start <= d.received_at.date() < end
    }
    assert expected <= {r[0] for r in rows}, f["path"]
    assert all(r[0] in {d.dossier_code for d in state} for r in rows)


def test_good_files_hold_the_world_in_every_encoding(tmp_path, demo_config):
    world, sim = make_drop(tmp_path, demo_config, habit=0.0, xlsx_share=0.3)
    world.advance(days=25)
    sim.sync()
    files = sim.files()
    good = [f for f in files if f["fault"] is None and not f["path"].endswith(".tmp")]
    assert {f["encoding"] for f in good} == {"utf-8", "utf-8-sig", "utf-16-le", "cp1258", "xlsx"}
    for f in good:
        check_good_file(world, sim.root, f)
        # the file's mtime is its (simulated) export time
        assert (sim.root / f["path"]).stat().st_mtime >= datetime.fromisoformat(
            f["exported_at"]
        ).timestamp() - 7 * 3600
    # a folder per agency under the source's folder
    for s in world.sources:
        if s.dialect == "filedrop":
            assert sorted(p.name for p in (sim.root / s.source_id).iterdir()) == sorted(s.agency_codes)


def test_reexport_same_name_new_content(tmp_path, demo_config):
    world, sim = make_drop(tmp_path, demo_config, **dict(QUIET, partial_rate=1.0, reexport_rate=1.0))
    # the November file: a mid-month export, then the final one in early December, then again later
    seen: dict[str, list[tuple[str, float]]] = {}
    for _ in range(50):
        world.advance(days=1)
        sim.sync()
        for f in sim.files("filedrop_xa_2"):
            if f["path"].endswith("hoso_2026_11.csv") or f["path"].endswith("hoso_2026_11.xlsx"):
                p = sim.root / f["path"]
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
                versions = seen.setdefault(f["path"], [])
                if not versions or versions[-1][0] != digest:
                    versions.append((digest, p.stat().st_mtime))
                    check_good_file(world, sim.root, f)
    ((path, versions),) = seen.items()
    assert len(versions) == 3  # partial, final, re-export: one name, three contents
    assert [m for _, m in versions] == sorted(m for _, m in versions)


def test_half_written_tmp_files(tmp_path, demo_config):
    world, sim = make_drop(tmp_path, demo_config, **dict(QUIET, slow_tmp_rate=1.0, abandoned_tmp_rate=1.0))
    pending_seen = 0
    completed: set[tuple[str, float]] = set()
    for _ in range(24 * 12):
        world.advance(hours=2)
        sim.sync()
        for f in sim.files():
            p = sim.root / f["path"]
            if p.name.endswith(".tmp") and f["fault"] == "slow_tmp":
                final = p.with_name(p.name[: -len(".tmp")])
                pending_seen += 1
                assert 0 < p.stat().st_size
                if final.exists():  # a previous version of that name stays until the rename
                    assert final.stat().st_mtime < p.stat().st_mtime
            elif f.get("completed_from_tmp") and (f["path"], p.stat().st_mtime) not in completed:
                completed.add((f["path"], p.stat().st_mtime))
                assert not p.with_name(p.name + ".tmp").exists()
                check_good_file(world, sim.root, f)
    assert pending_seen and completed
    abandoned = [f for f in sim.files() if f["fault"] == "abandoned_tmp"]
    assert abandoned and all(re.search(r"_\d{4}\.(csv|xlsx)\.tmp$", f["path"]) for f in abandoned)
    for f in abandoned:  # truncated: less than the full export
        assert (sim.root / f["path"]).stat().st_size > 0


def test_empty_files_are_corrected_later(tmp_path, demo_config):
    world, sim = make_drop(tmp_path, demo_config, **dict(QUIET, empty_rate=1.0))
    empties_seen: set[str] = set()
    for _ in range(40):
        world.advance(days=1)
        sim.sync()
        for f in sim.files():
            if f["fault"] == "empty":
                assert (sim.root / f["path"]).stat().st_size == 0
                assert read_export(sim.root / f["path"])[:2] == ([], [])
                empties_seen.add(f["path"])
    assert empties_seen
    corrected = {f["path"] for f in sim.files() if f["kind"] == "corrective"}
    assert corrected & empties_seen


def test_malformed_files(tmp_path, demo_config):
    world, sim = make_drop(tmp_path, demo_config, **dict(QUIET, malformed_rate=1.0))
    world.advance(days=30)
    sim.sync()
    bad = [f for f in sim.files() if f["fault"] in ("wrong_header", "truncated_row", "garbage")]
    assert {f["fault"] for f in bad} == {"wrong_header", "truncated_row", "garbage"}
    good_codes: dict[str, set[str]] = {}
    for f in sim.files():
        if f["fault"] is None:
            good_codes.setdefault(f["path"].rsplit("/", 1)[0], set()).update(f["codes"])
    for f in bad:
        p = sim.root / f["path"]
        assert p.name.endswith(" (1).csv")
        data = p.read_bytes()
        if f["fault"] == "garbage":
            assert b"\x00\x00" in data
        elif f["fault"] == "wrong_header":
            header = read_export(p)[0]
            assert header != WORLD_MD_HEADER
        else:
            header, rows, _enc = read_export(p)
            assert header == WORLD_MD_HEADER and not data.endswith(b"\n")
            assert len(rows[-1]) < len(HEADER)  # the last row is cut
        # nothing is only in a broken file
        assert set(f["codes"]) <= good_codes[f["path"].rsplit("/", 1)[0]]


def test_overlapping_windows(tmp_path, demo_config):
    world, sim = make_drop(tmp_path, demo_config, **dict(QUIET, overlap_rate=1.0))
    world.advance(days=30)
    sim.sync()
    overlaps = [f for f in sim.files() if f["kind"] == "overlap"]
    assert overlaps
    for f in overlaps:
        check_good_file(world, sim.root, f)
        folder = f["path"].rsplit("/", 1)[0]
        monthly = [g for g in sim.files() if g["path"].rsplit("/", 1)[0] == folder and g["kind"] != "overlap"]
        hits = [g for g in monthly if set(g["codes"]) & set(f["codes"])]
        assert len(hits) >= 1  # the same dossiers in two files


def test_deterministic_whatever_the_steps(tmp_path, demo_config):
    rates = dict(slow_tmp_rate=0.3, empty_rate=0.2, malformed_rate=0.3, abandoned_tmp_rate=0.2)
    w1, a = make_drop(tmp_path / "a", demo_config, **rates)
    for _ in range(30):
        w1.advance(hours=12)
        a.sync()
    w2, b = make_drop(tmp_path / "b", demo_config, **rates)
    w2.advance(days=15)
    b.sync()

    def tree(root: Path) -> dict:
        return {
            str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    assert tree(a.root) == tree(b.root) and len(tree(a.root)) > 10


# ---- through the sandbox -------------------------------------------------------------------------
def test_sandbox_state_clock_fixture_and_reset(sandbox_factory, demo_config, tmp_path):
    fixture = tmp_path / "xa_moi.csv"
    rows = [
        render_row(dossier(name=n, dossier_code=f"000.99.99.H40-261102-000{i}", agency_code="000.99.99.H40"))
        for i, n in enumerate(NAMES[:3])
    ]
    fixture.write_bytes(encode_csv(rows, "utf-8"))
    sb = sandbox_factory(
        world=World(demo_config),
        simulators=("igate", "filedrop"),
        filedrop_fixtures=[("filedrop_moi", fixture), ("filedrop_xa_4", fixture)],
    )
    doc = sb.state_document()
    entries = {s["source_id"]: s for s in doc["sources"] if s["dialect"] == "filedrop"}
    assert set(entries) == {
        "filedrop_xa_1",
        "filedrop_xa_2",
        "filedrop_xa_3",
        "filedrop_xa_4",
        "filedrop_moi",
    }
    root = Path(doc["filedrop"]["root"])
    assert root == (sb.config.state_dir / "filedrop").resolve()
    for sid, s in entries.items():
        assert (
            s["folder"] == str(root / sid)
            and s["extra"] == {"folder": s["folder"]}
            and s["recursive"] is True
        )
    assert set(entries["filedrop_xa_1"]["agency_folders"]) == set(entries["filedrop_xa_1"]["agency_codes"])
    assert entries["filedrop_moi"]["agency_codes"] == ["000.99.99.H40"]
    # fixtures are copied verbatim to the top of the source folder
    assert (root / "filedrop_moi" / "xa_moi.csv").read_bytes() == fixture.read_bytes()
    assert (root / "filedrop_xa_4" / "xa_moi.csv").read_bytes() == fixture.read_bytes()
    n0 = doc["filedrop"]["inspection"]["files"]
    # the clock over HTTP: the drop is in step before the answer
    r = requests.post(f"{sb.urls['igate']}/_sandbox/clock", json={"days": 20}, timeout=30)
    assert r.status_code == 200
    later = sb.state_document()["filedrop"]["inspection"]
    assert later["files"] > n0 and later["synced_now"] == "2026-11-22T08:00:00"
    requests.post(f"{sb.urls['igate']}/_sandbox/reset", timeout=30)
    back = sb.state_document()["filedrop"]["inspection"]
    assert back["files"] == n0 and back["counts"]["rebuilds"] == 1
    assert (root / "filedrop_moi" / "xa_moi.csv").exists()


def test_fixture_only_needs_no_world(sandbox_factory, tmp_path):
    fixture = tmp_path / "one.csv"
    fixture.write_bytes(encode_csv([render_row(dossier())], "utf-8"))
    sb = sandbox_factory(simulators=("filedrop",), filedrop_fixtures=[("filedrop_x", fixture)])
    assert sb.world is None
    (entry,) = sb.state_document()["sources"]
    assert entry["source_id"] == "filedrop_x" and Path(entry["folder"], "one.csv").exists()
    header, rows, enc = read_export(Path(entry["folder"], "one.csv"))
    assert header == WORLD_MD_HEADER and rows == [render_row(dossier())] and enc == "utf-8"


def test_config_and_cli(tmp_path):
    from sandbox.server import _config_from_args, _parser, config_from_mapping

    cfg = config_from_mapping({"filedrop": {"empty_rate": 0.5, "fixture_csv": ["xa=/a/b.csv", "/c/d.csv"]}})
    assert cfg.filedrop_options == {"empty_rate": 0.5}
    assert cfg.filedrop_fixtures == [("xa", Path("/a/b.csv")), ("filedrop_fixture", Path("/c/d.csv"))]
    with pytest.raises(ValueError, match="unknown keys in filedrop"):
        config_from_mapping({"filedrop": {"empty": 0.5}})
    with pytest.raises(ValueError):
        FiledropConfig(encodings={"latin1": 1.0})
    args = _parser().parse_args(
        ["run", "--filedrop-csv", "xa=/x.csv", "--preset", "demo", "--onegate-port", "0"]
    )
    cfg = _config_from_args(args)
    assert (
        cfg.filedrop_fixtures[-1] == ("xa", Path("/x.csv"))
        and cfg.preset == "demo"
        and cfg.ports["onegate"] == 0
    )
