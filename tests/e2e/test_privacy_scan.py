"""The privacy scan after a full night: planted citizens go everywhere, their data must not.

One source of every dialect (igate, onegate, department database, file drop) runs through Airflow
(``dag.test()`` in a child process with its own Airflow home, logs at INFO), then the province
indicators DAG; the quarter's report is written; the benchmarks run with tiny sizes. Planted
citizens (:data:`MARKERS`) are the applicants of planted dossiers that end every way a dossier can:

* published and matched (NFC name), published and ``matched_normalised`` (NFD, upper case);
* held in quarantine (receipt after due date; an 11-digit ID; a missing procedure code), so the
  agency's data-quality e-mail lists them;
* published but ``lookup_failed``: the population database refuses that source's requests
  (HTTP 400), bulk and single lookups alike;
* not published: one source's reconcile task fails (its LGSP service code is missing), so the
  failure alert e-mail goes to the engineers; for another source the portal is down (5xx, also on
  login), so the publish failures are recorded per dossier.

Then :mod:`tthc.privacy_scan` searches the task logs, the SMTP sink's e-mails (MIME decoded,
CSV attachments), Airflow's metadata DB (XCom …), the warehouse (less the tables documented as
holding personal data), Data Docs (none may exist), every dashboard page reachable from the
menu, the report (HTML, XLSX) and the benchmark output: 0 hits. Lookups: every request the
population database logged has its audit row. And the scanner is shown not to be blind: leaked
copies (a log line in NFD, an e-mail with a base64 CSV, an XCom row, a workbook, a page) are
found.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import unicodedata
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
import yaml

from tthc.privacy_scan import (
    PERSONAL_DATA_TABLES,
    UI_START_PAGES,
    Markers,
    Scanner,
    asgi_client_fetcher,
    check_lookup_audit,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
ANCHOR = datetime(2026, 11, 2, 8, 0)  # naive Vietnam time
SOURCES = {  # one source per dialect, and what happens to it
    "igate_tinh": "normal",
    "onegate_so_yte": "the population database refuses the lookups",
    "sqldb_so_gddt": "reconcile fails (no LGSP service code): failure alert",
    "filedrop_xa_1": "the portal is down: publish failures recorded",
}
FAILING_DAG = "tthc_source_sqldb_so_gddt"
BUDGET_SECONDS = 180  # about 1.5 min on a quiet 2-core machine; a margin for a busy one


@dataclasses.dataclass(frozen=True)
class Person:
    id_number: str
    ho: str
    chu_dem: str
    ten: str
    birth_date: str
    sex: int
    phone: str
    cmnd: str | None = None

    @property
    def name(self) -> str:
        return f"{self.ho} {self.chu_dem} {self.ten}"


# Planted citizens: valid CCCDs (prefix, century/sex digit and birth year agree), distinctive names.
A = Person("040188739215", "Phạm", "Thị Hoà", "Xuyếnzq", "1988-03-27", 2, "0398765013")
B = Person("079092468135", "Đặng", "Văn", "Quýzx", "1992-11-09", 1, "0778123409", cmnd="031245786")
C = Person("036197531864", "Lê", "Ngọc", "Ánhzw", "1997-06-14", 2, "0563219874")
BAD_ID = "04018873921"  # 11 digits: cccd_format
MARKERS = Markers(
    id_numbers=(A.id_number, B.id_number, C.id_number, B.cmnd, BAD_ID),
    names=(A.name, B.name, C.name, A.ten, B.ten, C.ten),
    birth_dates=(A.birth_date, B.birth_date, C.birth_date),
    phones=(A.phone, B.phone, C.phone),
)


# ---- the world with planted dossiers ---------------------------------------------------------------


def _registry_file(tmp: Path) -> Path:
    doc = yaml.safe_load((REPO / "config" / "sources.yaml").read_text(encoding="utf-8"))
    doc["sources"] = [s for s in doc["sources"] if s["source_id"] in SOURCES]
    assert len(doc["sources"]) == len(SOURCES)
    path = tmp / "sources.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _planted_world(registry):
    """The generated world of the registry's sources plus planted dossiers (codes ``…-98nn``)."""
    from sandbox.from_registry import source_spec
    from sandbox.world import CitizenTruth, SourceRecord, World, WorldConfig

    base = World(
        WorldConfig(
            seed=7,
            size=100,
            anchor=ANCHOR,
            sources=tuple(source_spec(s) for s in registry.sources),
            province_code="H40",
        )
    )
    citizens = list(base.citizens) + [
        CitizenTruth(p.id_number, p.ho, p.chu_dem, p.ten, p.birth_date, p.sex, p.id_number[:3], p.cmnd)
        for p in (A, B, C)
    ]
    records = [r for s in base.sources for r in base.versions(s.source_id)]
    planted: dict[str, dict] = {}

    def plant(sid: str, n: int, who: Person, *, name=None, id_number=None, defects=(), match="matched", **kw):
        """A copy of a clean dossier of ``sid`` whose applicant is ``who``."""
        tpl = next(
            r
            for r in base.records(sid)
            if not r.defects and r.expected_match == "matched" and r.dossier.status == 10
        )
        d = tpl.dossier
        if "due_before_receipt" in defects:
            kw["due_at"] = d.received_at - timedelta(days=2)
        code = f"{d.agency_code}-{d.dossier_code.split('-')[1]}-98{n:02d}"
        dossier = dataclasses.replace(
            d,
            dossier_code=code,
            source_record_id=f"plant-{n:02d}",
            applicant_name=name or who.name,
            applicant_id_number=id_number or who.id_number,
            applicant_id_type=None,
            applicant_birth_date=who.birth_date,
            applicant_sex=who.sex,
            applicant_phone=who.phone,
            **kw,
        )
        records.append(SourceRecord(dossier, tpl.visible_at, tuple(defects), None, match, version=0))
        planted[code] = {"source": sid, "n": n, "defects": tuple(defects), "match": match}

    nfd_upper = unicodedata.normalize("NFD", B.name.upper())
    # igate: published (matched, and matched after normalising NFD + upper case); one held
    plant("igate_tinh", 1, A)
    plant("igate_tinh", 2, B, name=nfd_upper, match="matched_normalised")
    plant("igate_tinh", 3, A, defects=("due_before_receipt",))
    # onegate: the population database refuses this source's lookups
    plant("onegate_so_yte", 4, C, match="lookup_failed")
    plant("onegate_so_yte", 5, B, id_number=B.cmnd, match="lookup_failed")
    # department database: reconcile fails this night; one malformed ID held
    plant("sqldb_so_gddt", 6, A)
    plant("sqldb_so_gddt", 7, A, name="Pham Thi Hoa Xuyenzq", id_number=BAD_ID, defects=("cccd_format",))
    # file drop: the portal is down (not published); one without procedure code (held)
    plant("filedrop_xa_1", 8, B)
    plant("filedrop_xa_1", 9, C, defects=("missing_field",), procedure_code=None)
    world = World.from_records(
        records,
        citizens=citizens,
        now=base.now,
        sources=base.sources,
        agencies=base.agencies,
        procedures=base.procedures,
    )
    return world, planted


# ---- the night -------------------------------------------------------------------------------------


def _start_benchmarks(out: Path) -> dict[str, tuple[subprocess.Popen, Path]]:
    cmds = {
        "bench_validate": [PY, "bench/bench_validate.py", "--rows", "3000", "--defect-rate", "0.05"],
        "match_accuracy": [PY, "bench/match_accuracy.py"],
    }
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = {}
    for name, cmd in cmds.items():
        path = out / f"{name}.out"
        fh = open(path, "wb")  # noqa: SIM115 - closed when the process is collected
        procs[name] = (subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, env=env), path)
        fh.close()
    return procs


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from sandbox.server import SandboxConfig, running_sandbox
    from tthc.demo import connection_env
    from tthc.registry import load_registry

    t0 = time.monotonic()
    tmp = tmp_path_factory.mktemp("privacy")
    timings: dict[str, float] = {}
    reg_file = _registry_file(tmp)
    registry = load_registry(reg_file)
    world, planted = _planted_world(registry)
    bench_out = tmp / "bench"
    bench_out.mkdir()
    benches = _start_benchmarks(bench_out)

    home = tmp / "airflow"
    home.mkdir()
    warehouse = f"sqlite:///{tmp / 'warehouse.db'}"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "TTHC_REGISTRY": str(reg_file),
        "TTHC_WAREHOUSE_URL": warehouse,
        "TTHC_TASK_RETRIES": "0",
        "TTHC_ENGINEER_EMAILS": "data-engineering@example.gov.vn",
        "PYTHONWARNINGS": "ignore",
        "TMPDIR": str(tmp / "tmpdir"),  # whatever the night writes to temporary files is scanned too
    }
    (tmp / "tmpdir").mkdir()
    migrate = subprocess.Popen(
        [str(Path(PY).parent / "airflow"), "db", "migrate"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # every file-drop export gets a malformed sibling (wrong header, truncated row, garbage bytes)
    # holding the same records: rejected whole, its reason kept in file_manifest (scanned too)
    cfg = SandboxConfig.for_tests(tmp, filedrop_options={"malformed_rate": 1.0})
    with running_sandbox(cfg, world=world) as sb, pytest.MonkeyPatch.context() as mp:
        env.update(connection_env(sb.state_document()))
        assert migrate.wait(timeout=180) == 0
        timings["setup"] = time.monotonic() - t0
        population, portal = sb.urls["population"], sb.urls["portal"]
        plan = {
            "run_after": world.now.isoformat(),
            "steps": [
                # every bulk job of this night ends "Loi" at the LGSP: resubmitted, then single lookups
                {"dag_id": "tthc_source_igate_tinh", "faults": {population: {"job_error": 1.0}}},
                # the LGSP refuses every request of a misconfigured officer code (HTTP 400)
                {"dag_id": "tthc_source_onegate_so_yte", "env": {"TTHC_LGSP_OFFICER": " "}},
                # a deployment without its LGSP service code: reconcile fails, the alert goes out
                {"dag_id": FAILING_DAG, "env": {"TTHC_LGSP_SERVICE_CODE": ""}},
                {
                    "dag_id": "tthc_source_filedrop_xa_1",
                    "faults": {portal: {"error_5xx": 1.0, "fault_auth": True}},
                    "env": {"TTHC_PORTAL_RETRY_ATTEMPTS": "1", "TTHC_PORTAL_BACKOFF_MAX": "0.1"},
                },
                {"dag_id": "tthc_province_indicators"},
            ],
        }
        (tmp / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
        log_file = tmp / "airflow-run.log"
        t1 = time.monotonic()
        with open(log_file, "wb") as log:
            child = subprocess.run(
                [
                    PY,
                    str(Path(__file__).with_name("privacy_child.py")),
                    str(tmp / "plan.json"),
                    str(tmp / "runs.json"),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=400,
            )
        timings["dag runs"] = time.monotonic() - t1
        runs = json.loads((tmp / "runs.json").read_text()) if (tmp / "runs.json").exists() else {}
        lgsp_audit = requests.get(f"{population}/_sandbox/state", timeout=10).json()["audit"]
        portal_state = requests.get(f"{portal}/_sandbox/state", timeout=10).json()

        # the quarter's report, as the demo writes it
        from tthc.kpi import Period
        from tthc.report import build_quarterly_report
        from tthc.warehouse.db import get_engine

        mp.setenv("TTHC_REGISTRY", str(reg_file))
        mp.setenv("TTHC_WAREHOUSE_URL", warehouse)
        t2 = time.monotonic()
        build_quarterly_report(
            get_engine(warehouse),
            Period.containing("quarter", ANCHOR),
            "H40",
            tmp / "reports",
            registry=registry,
        )
        timings["report"] = time.monotonic() - t2
        bench_text = {}
        for name, (proc, path) in benches.items():
            assert proc.wait(timeout=240) == 0, f"{name} failed: {path.read_text(errors='replace')[-2000:]}"
            bench_text[name] = path.read_text(encoding="utf-8", errors="replace")
        timings["until benchmarks done"] = time.monotonic() - t0
        yield {
            "tmp": tmp,
            "home": home,
            "warehouse": warehouse,
            "airflow_db": env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
            "log_file": log_file,
            "mail": Path(sb.state_document()["smtp"]["folder"]),
            "child_rc": child.returncode,
            "runs": runs,
            "world": world,
            "planted": planted,
            "lgsp_audit": lgsp_audit,
            "portal": portal_state,
            "bench": bench_text,
            "timings": timings,
            "t0": t0,
            "engine": sa.create_engine(warehouse),
            "population_url": population,
        }


@pytest.fixture(scope="module")
def ui_client(night, airflow_home):
    """Airflow's API app in this process (the plugin mounted as the API server does it) + a token."""
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.utils.db import initdb
    from fastapi.testclient import TestClient

    initdb()
    app = create_app()
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    with TestClient(app) as client, pytest.MonkeyPatch.context() as mp:
        mp.setenv("TTHC_WAREHOUSE_URL", night["warehouse"])
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        yield client, token


@pytest.fixture(scope="module")
def scan(night, ui_client):
    """The scan of everything the night left behind."""
    t = time.monotonic()
    scanner = Scanner(MARKERS)
    logs = [night["log_file"], night["home"] / "logs"]
    scanner.files("task logs", [p for p in logs if p.exists()], missing_ok=False)
    scanner.files("e-mails", [night["mail"]], kind="email", missing_ok=False)
    scanner.sql("airflow metadata", night["airflow_db"])
    scanner.warehouse(night["warehouse"])
    scanner.files("temporary files", [night["tmp"] / "tmpdir"])
    scanner.data_docs("data docs", [night["tmp"], night["home"], REPO, Path.cwd()])
    client, token = ui_client
    scanner.http(
        "dashboard", asgi_client_fetcher(client, token), UI_START_PAGES, prefix="/tthc/", max_pages=150
    )
    scanner.files("report", [night["tmp"] / "reports"], missing_ok=False)
    scanner.text("benchmark output", night["bench"])
    check_lookup_audit(scanner, night["warehouse"], night["lgsp_audit"])
    night["timings"]["scan"] = time.monotonic() - t
    print("\n" + scanner.report.format())
    print(f"privacy e2e timings (s): {json.dumps({k: round(v, 1) for k, v in night['timings'].items()})}")
    return scanner.report


# ---- what the night did (else the scan proves nothing) ---------------------------------------------


def test_the_night_ran_as_planned(night):
    runs = night["runs"]
    assert set(runs) == {*(f"tthc_source_{s}" for s in SOURCES), "tthc_province_indicators"}, night[
        "log_file"
    ].read_text(errors="replace")[-3000:]
    assert {d: r["state"] for d, r in runs.items() if r["state"] != "success"} == {FAILING_DAG: "failed"}

    eng, planted = night["engine"], night["planted"]
    by_n = {v["n"]: c for c, v in planted.items()}
    with eng.connect() as c:
        held = {r[0] for r in c.execute(sa.text("SELECT dossier_code FROM quarantine WHERE status = 'held'"))}
        classes = dict(c.execute(sa.text("SELECT dossier_code, match_class FROM citizen_matches")).all())
        errors = dict(
            c.execute(
                sa.text("SELECT source_id, error_text FROM pipeline_runs WHERE status = 'failed'")
            ).all()
        )
        failed_publish = {
            r[0]
            for r in c.execute(
                sa.text("SELECT dossier_code FROM publish_state WHERE status = 'failed' AND last_error > ''")
            )
        }
        rejected = c.execute(
            sa.text("SELECT count(*) FROM file_manifest WHERE status = 'rejected' AND reason > ''")
        ).scalar()
    assert rejected >= 1, "the malformed file-drop exports should have been rejected with a reason"
    assert {by_n[3], by_n[7], by_n[9]} <= held
    on_portal = set(night["portal"]["dossiers"])
    assert {by_n[n] for n in (1, 2, 4, 5)} <= on_portal
    assert not {by_n[6], by_n[8]} & on_portal
    assert by_n[8] in failed_publish
    assert set(errors) == {"sqldb_so_gddt"}
    assert classes[by_n[1]] == "matched" and classes[by_n[2]] == "matched_normalised"
    assert classes[by_n[4]] == classes[by_n[5]] == "lookup_failed"
    assert classes[by_n[8]] == "matched"


def test_the_night_sent_quality_mails_and_a_failure_alert(night):
    from tthc.privacy_scan import email_parts

    subjects = []
    for p in sorted(night["mail"].glob("*.eml")):
        headers = email_parts(p.read_bytes())[0].content
        subjects += [h for h in str(headers).splitlines() if h.startswith("Subject:")]
    assert any("Lỗi tác vụ" in s and "reconcile" in s for s in subjects), subjects
    quality = [s for s in subjects if "Lỗi tác vụ" not in s]
    assert len(quality) >= 2, subjects
    # the held planted dossiers of sources whose night finished are in their agency's mail, by code
    attachments = "".join(
        part.content.decode("utf-8-sig")
        for p in night["mail"].glob("*.eml")
        for part in email_parts(p.read_bytes())
        if part.filename.endswith(".csv")
    )
    held = [c for c, v in night["planted"].items() if v["defects"] and v["source"] != "sqldb_so_gddt"]
    assert held and all(code in attachments for code in held), held


# ---- the scan ----------------------------------------------------------------------------------


def test_no_personal_data_in_anything_the_night_left(scan):
    assert scan.hits == [], scan.format()
    totals = scan.totals()
    for name in (
        "task logs",
        "e-mails",
        "airflow metadata",
        "warehouse",
        "dashboard",
        "report",
        "benchmark output",
    ):
        assert totals[name]["status"] == "scanned" and totals[name]["items"] > 0, (name, totals[name])
    assert totals["data docs"]["status"] == "absent", "GX wrote Data Docs somewhere: see the report"


def test_the_scan_saw_what_matters(scan, night):
    airflow_rows = scan.target("airflow metadata").details["rows_per_table"]
    assert airflow_rows["xcom"] >= 5 * len(SOURCES), airflow_rows  # the stages' counts
    wh = scan.target("warehouse").details
    assert set(wh["excluded_tables"]) == set(PERSONAL_DATA_TABLES)
    for table in ("validation_results", "dossier_issues", "quarantine", "pipeline_runs", "citizen_matches"):
        assert wh["rows_per_table"][table] > 0, table
    for table in ("lookup_audit", "notifications", "indicators", "publish_state", "publish_outbox"):
        assert wh["rows_per_table"][table] > 0, table
    ui = scan.target("dashboard").details
    assert ui["status_counts"] == {"200": ui["pages"]}, ui
    assert ui["pages"] >= 20, ui
    mails = scan.target("e-mails").details
    assert mails["files"] >= 3 and mails["email_parts"] >= 10, mails
    assert any(p.suffix == ".xlsx" for p in (night["tmp"] / "reports").rglob("*"))


def test_every_lookup_is_audited(scan):
    audit = scan.target("lookup audit")
    assert audit.status == "scanned", audit.note
    d = audit.details
    assert d["lgsp_requests"] > 0 and d["unaudited"] == 0 and d["audit_problems"] == []
    assert d["audited"] == d["lgsp_requests"]


def test_the_report_itself_carries_no_values(scan):
    report = scan.format() + json.dumps(scan.to_dict(), ensure_ascii=False)
    assert Scanner(MARKERS, generic=True).detector.hits(report, "report", "report") == []


def test_the_whole_thing_fits_the_budget(scan, night):
    total = time.monotonic() - night["t0"]
    assert total < BUDGET_SECONDS, f"{total:.0f} s: {night['timings']}"


def test_the_command_line_scans_a_home(night, tmp_path):
    """``tthc privacy-scan --home`` over the night's folder (laid out like the demo's ``var/demo``)."""
    markers = tmp_path / "markers.json"
    markers.write_text(json.dumps(dataclasses.asdict(MARKERS), ensure_ascii=False), encoding="utf-8")
    bench = tmp_path / "bench.txt"
    bench.write_text("\n".join(night["bench"].values()), encoding="utf-8")
    out = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TTHC_WAREHOUSE"))}
    r = subprocess.run(
        [PY, "-m", "tthc.cli", "privacy-scan", "--home", str(night["tmp"]), "--markers", str(markers)]
        + ["--population-url", night["population_url"], "--text", str(bench), "--max-pages", "25"]
        + ["--json", str(out)],
        cwd=REPO,
        env={**env, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "RESULT: OK (0 hits)" in r.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    targets = {t["name"]: t for t in report["targets"]}
    assert targets["dashboard"]["items"] == 25 and targets["dashboard"]["status"] == "scanned"
    assert targets["lookup audit"]["details"]["unaudited"] == 0
    assert targets["lookup audit"]["details"]["lgsp_requests"] > 0
    assert targets["warehouse"]["items"] > 0 and targets["e-mails"]["items"] > 0
    assert targets["task logs"]["items"] >= 1 and targets["captured output"]["items"] == 1


def test_the_planted_values_did_reach_the_personal_data_tables(night):
    """Positive control on the same night: the tables that hold personal data on purpose are full
    of the planted values, in every kind, so 0 hits elsewhere means they were kept out."""
    s = Scanner(MARKERS)
    t = s.sql("personal tables", night["warehouse"], tables=list(PERSONAL_DATA_TABLES))
    kinds = {h.detector for h in t.hits}
    assert {"marker:id_number", "marker:name", "marker:birth_date", "marker:phone", "cccd", "phone"} <= kinds
    found = {h.excerpt for h in t.hits if h.detector == "marker:name"}
    assert len(found) >= 3, found


# ---- positive control: the same scanner finds leaked copies ---------------------------------------


def test_the_scanner_is_not_blind(night, tmp_path):
    world_citizen = night["world"].citizens[0]  # not a marker: only the generic detector can find it
    leak = tmp_path / "leak"
    leak.mkdir()
    (leak / "task.log").write_text(
        "INFO stage reconcile: applicant " + unicodedata.normalize("NFD", A.name) + " ok\n"
        f"ERROR lookup failed for {world_citizen.id_number}\n",
        encoding="utf-8",
    )
    msg = EmailMessage()
    msg["Subject"] = "Báo cáo chất lượng dữ liệu"
    msg["From"], msg["To"] = "tthc-sync@example.gov.vn", "steward@example.gov.vn"
    msg.set_content(f"Hồ sơ của {B.name.upper()} cần rà soát.", cte="quoted-printable")
    csv_bytes = f"ma_ho_so,so_giay_to\r\n000.00.12.H40-260901-0001,{C.id_number}\r\n".encode()
    msg.add_attachment(csv_bytes, maintype="text", subtype="csv", filename="ho-so.csv")
    raw = msg.as_bytes()
    assert C.id_number.encode() not in raw, "the CSV must travel base64-encoded for this control"
    (leak / "mail.eml").write_bytes(raw)

    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(["Số điện thoại", A.phone])
    wb.active.append(["Ngày sinh", datetime.fromisoformat(B.birth_date)])
    wb.save(leak / "bao-cao.xlsx")

    db = tmp_path / "airflow-leak.db"
    shutil.copy(night["home"] / "airflow.db", db)
    with sqlite3.connect(db) as c:
        n = c.execute(
            "UPDATE xcom SET value = ? WHERE rowid = (SELECT min(rowid) FROM xcom)",
            (json.dumps({"applicant": A.name, "so": "x"}, ensure_ascii=True),),
        ).rowcount
    assert n == 1

    pages = {
        "/tthc/": (200, "content-type: text/html", f"<td>{C.phone[:4]} {C.phone[4:7]} {C.phone[7:]}</td>")
    }

    s = Scanner(MARKERS)
    s.files("files", [leak])
    s.sql("xcom", f"sqlite:///{db}", tables=["xcom"])
    s.http("page", lambda p: pages[p], ["/tthc/"])
    found = {(h.target, h.detector, h.where.split(":")[0].split(" › ")[0]) for h in s.report.hits}
    assert ("files", "marker:name", "leak/task.log") in found
    assert ("files", "cccd", "leak/task.log") in found
    assert ("files", "marker:name", "leak/mail.eml") in found
    assert ("files", "marker:id_number", "leak/mail.eml") in found
    assert ("files", "marker:phone", "leak/bao-cao.xlsx") in found
    assert ("files", "marker:birth_date", "leak/bao-cao.xlsx") in found
    assert any(t == "xcom" and d == "marker:name" for t, d, _ in found)
    assert any(t == "page" and d == "marker:phone" for t, d, _ in found)
    # the report names where, never what
    report = s.report.format()
    for value in (A.name, world_citizen.id_number, C.id_number, A.phone, B.name.upper()):
        assert value not in report
    assert not s.report.ok
