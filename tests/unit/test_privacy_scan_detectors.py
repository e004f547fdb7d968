"""The privacy scanner's detectors and targets (tthc.privacy_scan), without a pipeline run.

False positives matter as much as hits: the scan runs over megabytes of logs full of dossier codes,
timestamps, hashes and UUIDs, and one false alarm a night would teach people to ignore it.
"""

from __future__ import annotations

import gzip
import json
import random
import sqlite3
import unicodedata
import uuid
from datetime import datetime
from email.message import EmailMessage

import pytest

from tthc.privacy import key_hash, mask_id
from tthc.privacy_scan import (
    Detector,
    Markers,
    Scanner,
    birth_date_variants,
    check_lookup_audit,
    email_parts,
    fold,
    is_cccd,
    main,
    redact,
    xlsx_text,
)

CCCD = "079188012345"  # Hồ Chí Minh City, male, 1988
NAME = "Trần Thị Thuý Zyxwvu"
MARKERS = Markers(
    id_numbers=(CCCD, "031245786"),
    names=(NAME, "Zyxwvu"),
    birth_dates=("1988-05-17",),
    phones=("0912345678",),
    strings=("Số 7 ngõ Zyxwvu",),
)


def detectors(text: str, markers: Markers | None = None) -> list[str]:
    return [h.detector for h in Detector(markers).hits(text, "t", "w")]


# ---- false positives -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "000.00.12.H40-250714-0001",  # dossier codes (domain.md §2), every variant
        "G09.20-20260609-0092637 H15.50.05.13-261008-0975 000.30.58.H40-261102-0042",
        "ts 20261123235959 and 20261123235959123",  # yyyyMMddHHmmss(fff)
        "NgayTiepNhan 202611230800 NgayHenTra 199912312359",  # yyyyMMddHHmm: no province code
        "epoch ms 1763912345678, µs 1763912345678901",
        "040188012345678",  # a 12-digit CCCD shape inside a longer digit run
        "9040188012345",
        "rate 0.040188012345 and 1.079188012345",  # decimal fractions
        "id_hash a3f0401880123456 b079188012345cd 0401880123456789abcdef",  # hex tokens
        "uuid 123e4567-e89b-12d3-a456-040188012345",  # the last group of a UUID
        "999188012345 100188012345 097188012345",  # no such province prefix
        "040599012345 040488012345",  # century digit 4/5 (2100s) or a birth year to come
        "count 123456789 rows, 0 errors",  # a bare 9-digit number is not a CMND
        "masked 079*******45 and 091*****78",  # what the product shows instead
        "manual__2026-11-02T08:00:00+07:00 scheduled__2026-11-01T18:00:00+00:00",
        "2026-11-23T22:06:44.152421Z [info] 127.0.0.1:8701 pid 30603 took 0.3 s",
        "phone-like 10-digit epoch 1763912345 and 0.0912345678",
        "MaYeuCau 65bba59ae7464579b32f1fa8f3655cda",
    ],
)
def test_no_false_positive(text):
    assert detectors(text) == []


def test_no_false_positive_on_many_hashes_and_uuids():
    rng = random.Random(7)
    text = "\n".join(
        [key_hash(str(i), length=n) or "" for i in range(3000) for n in (16, 32)]
        + [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(20000)]
        + [uuid.UUID(int=rng.getrandbits(128), version=4).hex for _ in range(20000)]
        + [f"{rng.getrandbits(256):064x}" for _ in range(5000)]
    )
    assert detectors(text) == []


def test_planted_dates_need_whole_digit_runs():
    m = Markers(birth_dates=("1988-05-17",), id_numbers=("031245786",))
    assert detectors("build 2019880517123 and 1031245786", m) == []
    assert detectors("sinh 19880517.", m) == ["marker:birth_date"]


# ---- true positives ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "detector"),
    [
        (f"applicant {CCCD} failed", "cccd"),
        (f'{{"SoDinhDanh": "{CCCD}"}}', "cccd"),
        (f"000.00.12.H40-250714-0001,{CCCD},Tran", "cccd"),
        (f"GET /lookup?so={CCCD}&x=1", "cccd"),
        (f"<SoDinhDanh>{CCCD}</SoDinhDanh>", "cccd"),
        (f"cccd_{CCCD}.pdf", "cccd"),
        (f"CCCD{CCCD}", "labelled_id"),  # glued to a hex-looking label: the label finds it
        ("Số CMND: 031245786", "labelled_id"),
        ('"applicant_id_number": "031245786"', "labelled_id"),
        ("<SoCMND>031245786</SoCMND>", "labelled_id"),
        ("SoGiayToChuHoSo=999188012345", "labelled_id"),  # invalid prefix, but labelled
        ("gọi 0912345678 nhé", "phone"),
        ("tel +84912345678", "phone"),
        ("tel +84 912 345 678", "phone"),
        ("sđt 0912 345 678", "phone"),
        ("sđt 0912.345.678", "phone"),
        ("sđt 081 234 5678", "phone"),  # 08x numbers exist too
    ],
)
def test_generic_detectors(text, detector):
    assert detectors(text) == [detector]


@pytest.mark.parametrize(
    "spelling",
    [
        NAME,
        unicodedata.normalize("NFD", NAME),
        NAME.upper(),
        unicodedata.normalize("NFD", NAME.upper()),
        "Tran Thi Thuy Zyxwvu",  # without diacritics
        "TRAN THI THUY ZYXWVU",
        "Trần Thị Thúy Zyxwvu",  # old tone placement
        "Trần\u00a0Thị  Thuý\u200b Zyxwvu",  # NBSP, double and zero-width spaces
        "\u00d0ặng Zyxwvu".replace("\u00d0ặng", "Trần Thị Thuý"),
    ],
)
def test_name_markers_in_every_spelling(spelling):
    hits = Detector(Markers(names=(NAME,))).hits(f"x {spelling} y", "t", "w")
    assert [h.detector for h in hits] == ["marker:name"]
    assert NAME not in hits[0].excerpt and "Zyxwvu" not in hits[0].excerpt


def test_name_markers_json_html_and_url_escaped():
    d = Detector(Markers(names=(NAME,)))
    escaped = json.dumps({"ChuHoSo": NAME}, ensure_ascii=True)
    assert [h.where for h in d.hits(escaped, "t", "w")] == ["w:1 [json-decoded]"]
    entities = "".join(f"&#{ord(c)};" for c in NAME)
    assert [h.detector for h in d.hits(f"<td>{entities}</td>", "t", "w")] == ["marker:name"]
    from urllib.parse import quote

    assert [h.detector for h in d.hits(f"/search?q={quote(NAME)}", "t", "w")] == ["marker:name"]


def test_lookalike_d_folds():
    assert fold("\u00d0ặng Văn A") == fold("Đặng Văn A") == fold("DANG VAN A") == "dang van a"
    assert fold("Hoà") == fold("Hòa") == fold("hoa")


@pytest.mark.parametrize("text", ["17/05/1988", "1988-05-17", "19880517", "17-05-1988"])
def test_birth_date_markers_in_the_formats_the_product_writes(text):
    assert detectors(f"sinh {text}", Markers(birth_dates=("1988-05-17",))) == ["marker:birth_date"]


def test_birth_date_variants():
    assert birth_date_variants("1988-05-17") == ["1988-05-17", "17/05/1988", "19880517", "17-05-1988"]
    assert birth_date_variants("1988") == []  # a year alone is no marker


def test_digit_markers_inside_longer_runs_and_as_strings():
    m = Markers(id_numbers=(CCCD, "ZZ0010999999X"), phones=("0912345678",))
    assert detectors(f"bad id {CCCD}7", m) == ["marker:id_number"]  # 13 digits holding the marker
    assert detectors("id zz0010999999x", m) == ["marker:id_number"]
    assert detectors("tel 84912345678", m) == ["marker:phone"]
    assert detectors("tel 0912 345 678", m) == ["marker:phone"]


def test_one_hit_per_value_with_its_count():
    hits = Detector(MARKERS).hits(f"{CCCD}\n{CCCD} and {NAME}\n{NAME.upper()}", "t", "file.log")
    assert sorted((h.detector, h.count) for h in hits) == [("marker:id_number", 2), ("marker:name", 2)]
    assert {h.where for h in hits} == {"file.log:1", "file.log:2"}


def test_is_cccd():
    assert is_cccd(CCCD) and is_cccd("001099999999") and is_cccd("096325012345")
    assert not is_cccd("003188012345")  # 003 is not a legacy code
    assert not is_cccd("07918801234") and not is_cccd("0791880123456")


# ---- never the value in clear ---------------------------------------------------------------------


def test_excerpts_mask_the_value_and_redact_the_context():
    line = f"ERROR lookup for Nguyễn Văn Bình (phone 0987654321, {CCCD}) failed"
    hits = Detector(MARKERS).hits(line, "t", "w")
    by = {h.detector: h for h in hits}
    assert set(by) == {"marker:id_number", "phone"}
    for h in hits:
        assert CCCD not in h.excerpt and "0987654321" not in h.excerpt and "Bình" not in h.excerpt
    assert mask_id(CCCD) in by["marker:id_number"].excerpt
    assert redact("applicant_name=Nguyễn Văn Bình SoDinhDanh 0987654321") == (
        "applicant_name=N… V… B… SoDinhDanh 098*****21"
    )


def test_locations_are_masked(tmp_path):
    leak = tmp_path / f"cccd_{CCCD}.txt"
    leak.write_text("nothing here", encoding="utf-8")
    s = Scanner(MARKERS)
    s.files("files", [tmp_path])
    assert [h.detector for h in s.report.hits] == ["marker:id_number"]
    assert CCCD not in s.report.format() and CCCD not in json.dumps(s.report.to_dict())


# ---- targets -------------------------------------------------------------------------------------


def _mail(body: str, attachment: bytes, filename: str, subtype: str = "csv") -> bytes:
    msg = EmailMessage()
    msg["Subject"] = "Báo cáo chất lượng dữ liệu"
    msg["From"], msg["To"] = "a@example.gov.vn", "b@example.gov.vn"
    msg.set_content(body, cte="quoted-printable")
    msg.add_alternative(f"<p>{body}</p>", subtype="html", cte="base64")
    main_, sub = ("text", subtype) if subtype in ("csv", "html") else ("application", subtype)
    msg.add_attachment(attachment, maintype=main_, subtype=sub, filename=filename)
    return msg.as_bytes()


def test_email_parts_are_decoded():
    raw = _mail(f"Hồ sơ của {NAME}", f"ma,so\r\nX,{CCCD}\r\n".encode(), "ho-so.csv")
    assert CCCD.encode() not in raw and NAME.encode() not in raw  # encoded on the wire
    parts = email_parts(raw)
    texts = [p.content for p in parts if isinstance(p.content, str)]
    assert any(NAME in t for t in texts)
    assert any(p.filename == "ho-so.csv" and CCCD.encode() in p.content for p in parts)


def test_files_target_reads_mail_workbooks_and_gzip(tmp_path):
    import openpyxl

    (tmp_path / "a.eml").write_bytes(_mail("Kính gửi", f"ma,so\r\nX,{CCCD}\r\n".encode(), "x.csv"))
    wb = openpyxl.Workbook()
    wb.active.append(["Ngày sinh", datetime(1988, 5, 17)])
    buf = tmp_path / "b.xlsx"
    wb.save(buf)
    assert "1988-05-17" in xlsx_text(buf.read_bytes())[0][1]
    (tmp_path / "c.log.gz").write_bytes(gzip.compress(f"tel {MARKERS.phones[0]}\n".encode()))
    (tmp_path / "d.png").write_bytes(b"\x89PNG" + CCCD.encode())  # images are not read
    s = Scanner(MARKERS)
    t = s.files("files", [tmp_path])
    got = {(h.where.split(" › ")[0].split(":")[0].rsplit("/", 1)[-1], h.detector) for h in t.hits}
    assert got == {
        ("a.eml", "marker:id_number"),
        ("b.xlsx", "marker:birth_date"),
        ("c.log.gz", "marker:phone"),
    }
    assert t.details["binary_skipped"] == 1 and t.details["email_parts"] >= 4


def test_absent_targets(tmp_path):
    s = Scanner(MARKERS)
    assert s.files("logs", [tmp_path / "nope"]).status == "absent"
    assert s.files("logs", [tmp_path / "nope"], missing_ok=False).status == "error"
    assert s.data_docs("docs", [tmp_path]).status == "absent"
    assert s.sql("db", f"sqlite:///{tmp_path / 'none.db'}").status == "absent"
    (tmp_path / "x" / "uncommitted" / "data_docs").mkdir(parents=True)
    (tmp_path / "x" / "uncommitted" / "data_docs" / "index.html").write_text(f"<td>{NAME}</td>")
    t = s.data_docs("docs", [tmp_path])
    assert t.status == "scanned" and [h.detector for h in t.hits] == ["marker:name"]
    assert not s.report.ok


def test_sql_target_with_exclusions(tmp_path):
    db = tmp_path / "w.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE dossiers (code TEXT PRIMARY KEY, applicant_id_number TEXT)")
        c.execute("CREATE TABLE publish_outbox (k TEXT PRIMARY KEY, payload TEXT, last_error TEXT)")
        c.execute("CREATE TABLE xcom (k TEXT PRIMARY KEY, value BLOB)")
        c.execute("INSERT INTO dossiers VALUES ('A-1', ?)", (CCCD,))
        c.execute("INSERT INTO publish_outbox VALUES ('k', ?, 'timeout')", (json.dumps({"SoGiayTo": CCCD}),))
        c.execute("INSERT INTO xcom VALUES ('x', ?)", (json.dumps({"n": NAME}, ensure_ascii=True).encode(),))
    s = Scanner(MARKERS)
    t = s.sql(
        "w", f"sqlite:///{db}", exclude_tables=["dossiers"], exclude_columns={"publish_outbox": ["payload"]}
    )
    assert t.details["rows_per_table"] == {"publish_outbox": 1, "xcom": 1}
    assert t.details["excluded_columns"] == {"publish_outbox": ["payload"]}
    assert [(h.where.split("[")[0], h.detector) for h in t.hits] == [("xcom", "marker:name")]
    # the warehouse scan leaves out the personal-data tables only: since migration 0010 the outbox
    # keeps no copy of dossier payloads, so an ID number in its payload column is a leak
    t = Scanner(MARKERS).warehouse(f"sqlite:///{db}")
    assert t.details["rows_per_table"] == {"publish_outbox": 1, "xcom": 1}
    assert {h.where.split("[")[0] for h in t.hits} == {"publish_outbox", "xcom"}
    assert "marker:id_number" in {h.detector for h in t.hits if h.where.startswith("publish_outbox")}


def test_http_target_follows_links_and_form_choices():
    pages = {
        "/tthc/": '<a href="/tthc/dq/">dq</a><a href="https://elsewhere/">x</a>',
        "/tthc/dq/": '<form method="get" action="/tthc/dq/"><select name="source">'
        '<option value="">all</option><option value="s1">s1</option><option value="s2">s2</option>'
        "</select></form>",
        "/tthc/dq/?source=s1": "<p>ok</p>",
        "/tthc/dq/?source=s2": f"<p>{CCCD}</p>",
    }
    s = Scanner(MARKERS)
    t = s.http("ui", lambda p: (200, "content-type: text/html", pages[p]), ["/tthc/"], prefix="/tthc/")
    assert t.details["pages"] == 4 and t.details["status_counts"] == {"200": 4}
    assert [h.where for h in t.hits] == ["/tthc/dq/?source=s2:3"]


def test_lookup_audit_check(tmp_path):
    db = tmp_path / "w.db"
    with sqlite3.connect(db) as c:
        c.execute(
            "CREATE TABLE lookup_audit (request_id TEXT PRIMARY KEY, kind TEXT, requested_at TEXT, "
            "officer TEXT, service_code TEXT, integration_code TEXT, purpose TEXT, run_id TEXT, "
            "source_id TEXT, count INTEGER, status TEXT)"
        )
        c.execute("INSERT INTO lookup_audit VALUES ('r1','bulk','t','o','s','i','p','run','src',40,'ok')")
        c.execute("INSERT INTO lookup_audit VALUES ('r2','bulk','t','o','s','i','p','run','src',0,'Loi')")
    lgsp = [
        {"MaYeuCau": "r1", "endpoint": "YeuCauDanhSach", "asked": 40},
        {"MaYeuCau": "r1", "endpoint": "KetQua", "asked": 40},
        {"MaYeuCau": "r2", "endpoint": "YeuCauDanhSach", "asked": 40},
        {"MaYeuCau": "r3", "endpoint": "TraCuuThongTinCongDan", "asked": 1},
    ]
    t = check_lookup_audit(Scanner(), f"sqlite:///{db}", lgsp)
    assert t.status == "error" and t.details["unaudited"] == 1 and t.details["audited"] == 2
    problems = " ".join(t.details["audit_problems"])
    assert "r3" in problems and "r2: audit says 0 numbers, the LGSP saw 40" in problems
    ok = check_lookup_audit(Scanner(), f"sqlite:///{db}", lgsp[:2])
    assert ok.status == "scanned" and ok.details["audit_problems"] == []


def test_collapsed_audit_keeps_the_numbers_of_a_failed_bulk_job():
    from tthc.pipeline.reconcile import collapse_audit

    ev = [
        {"request_id": "j1", "requested_at": 1, "count": 40, "status": "accepted"},
        {"request_id": "j1", "requested_at": 2, "count": 0, "status": "DangXuLy"},
        {"request_id": "j1", "requested_at": 3, "count": 0, "status": "Loi"},
        {"request_id": "j2", "requested_at": 4, "count": 40, "status": "accepted"},
    ]
    rows = {r["request_id"]: r for r in collapse_audit(ev)}
    assert rows["j1"] == {"request_id": "j1", "requested_at": 1, "count": 40, "status": "Loi"}
    assert rows["j2"]["count"] == 40


# ---- command line --------------------------------------------------------------------------------


def test_command_line_exit_codes(tmp_path, capsys):
    markers = tmp_path / "m.json"
    markers.write_text(json.dumps({"names": [NAME], "id_numbers": [CCCD]}), encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "task.log").write_text("INFO stage extract: {'records_in': 3}\n", encoding="utf-8")
    args = ["--markers", str(markers), "--logs", str(logs), "--no-ui", "--warehouse", "sqlite://"]
    out = tmp_path / "r.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        assert main(["--logs", str(logs), "--no-ui", "--json", str(out)]) == 0
        assert "RESULT: OK (0 hits)" in capsys.readouterr().out
        assert json.loads(out.read_text())["ok"] is True
        (logs / "task.log").write_text(unicodedata.normalize("NFD", NAME.upper()), encoding="utf-8")
        assert main(args[:5] + ["--no-ui"]) == 1
        printed = capsys.readouterr().out
    assert "marker:name" in printed and "RESULT: FAIL" in printed and NAME.upper() not in printed
    with pytest.raises(ValueError, match="unknown marker kinds"):
        Markers.from_mapping({"nmes": []})


def test_cli_subcommand_is_wired(capsys):
    from tthc.cli import main as tthc_main

    with pytest.raises(SystemExit) as e:
        tthc_main(["privacy-scan", "--help"])
    assert e.value.code == 0
    assert "--home" in capsys.readouterr().out
