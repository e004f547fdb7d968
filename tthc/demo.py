"""The demo: the sandbox plus one full nightly run of every source DAG through Airflow on SQLite.

``tthc demo`` (``make demo``):
1. starts the sandbox (simulated agency systems, population database, national portal, SMTP sink);
2. points Airflow at a throw-away home under ``var/demo`` (SQLite metadata DB, the project's DAGs)
   and the warehouse at ``var/demo/warehouse.db``; connections come from the sandbox's state file
   as ``AIRFLOW_CONN_*`` variables, exactly as a deployment would provide them;
3. runs every source DAG with ``dag.test()`` in a child process (Airflow reads its configuration
   at import, so it must start with that environment);
4. prints what happened (pulled / valid / quarantined / matched / published per source, and what
   the portal now holds), stops the sandbox, and exits non-zero if any DAG run failed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

from tthc.registry import REPO_ROOT, cached_registry
from tthc.timeutil import vn_now

DEMO_HOME = REPO_ROOT / "var" / "demo"


def demo_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "TTHC_WAREHOUSE_URL": f"sqlite:///{home / 'warehouse.db'}",
            "TTHC_TASK_RETRIES": "0",
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


def connection_env(state: dict[str, Any]) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables for every registry source and shared system, from the sandbox state."""
    reg = cached_registry()
    out: dict[str, str] = {}
    creds = {s["source_id"]: s for s in state.get("sources", [])}
    for src in reg.sources:
        c = creds.get(src.source_id)
        if c is None:
            continue
        conn: dict[str, Any] = {"conn_type": "http", "host": c.get("host", "127.0.0.1"), "port": c["port"]}
        if c.get("client_id"):
            conn.update(login=c["client_id"], password=c.get("client_secret"))
        if c.get("api_key"):
            conn["password"] = c["api_key"]
        if c.get("extra"):
            conn["extra"] = dict(c["extra"])
        if src.dialect == "filedrop":
            # the sandbox writes files whole (then renames); a short settle time is enough
            conn.setdefault("extra", {})["settle_seconds"] = 60
        out[f"AIRFLOW_CONN_{src.conn_id.upper()}"] = json.dumps(conn)
    urls = state["urls"]
    portal = state.get("portal_credentials", {})
    out["AIRFLOW_CONN_TTHC_PORTAL"] = json.dumps(
        {
            "conn_type": "http",
            "extra": {"base_url": urls["portal"]},
            "login": portal.get("username"),
            "password": portal.get("password"),
        }
    )
    out["AIRFLOW_CONN_TTHC_LGSP"] = json.dumps(
        {"conn_type": "http", "extra": {"base_url": urls["population"]}}
    )
    smtp = state.get("smtp", {})
    out["AIRFLOW_CONN_TTHC_SMTP"] = json.dumps(
        {
            "conn_type": "smtp",
            "host": smtp.get("host", "127.0.0.1"),
            "port": smtp.get("port"),
            "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "tthc-sync@example.gov.vn"},
        }
    )
    return out


def _sandbox(cmd: str, home: Path, env: dict[str, str], extra: list[str] | None = None) -> None:
    subprocess.run(
        [sys.executable, "-m", "sandbox.server", cmd, "--state-dir", str(home / "sandbox"), *(extra or [])],
        env=env,
        check=True,
    )


def run_demo(size: int | None = None, keep: bool = False) -> int:
    shutil.rmtree(DEMO_HOME, ignore_errors=True)
    (DEMO_HOME / "airflow").mkdir(parents=True)
    env = demo_env(DEMO_HOME)
    env["TTHC_SANDBOX_REGISTRY"] = str(cached_registry().path)  # the world serves the registry's sources
    print("tthc demo: starting the sandbox …", flush=True)
    # the simulated world's "now" is this moment, so the run judges open dossiers at the right time
    anchor = vn_now().replace(second=0) - timedelta(minutes=5)
    args = ["--anchor", anchor.isoformat(), "--smtp-folder", str(DEMO_HOME / "mail")]
    args += ["--size", str(size)] if size else []
    _sandbox("start", DEMO_HOME, env, args)
    try:
        state = json.loads((DEMO_HOME / "sandbox" / "state.json").read_text(encoding="utf-8"))
        env.update(connection_env(state))
        print("tthc demo: preparing Airflow (SQLite metadata database) …", flush=True)
        subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print("tthc demo: running the nightly DAGs …", flush=True)
        result_file = DEMO_HOME / "dag-runs.json"
        with open(DEMO_HOME / "airflow-run.log", "w") as log:
            proc = subprocess.run(
                [sys.executable, "-m", "tthc.demo", "_run-dags", str(result_file)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        runs = json.loads(result_file.read_text()) if result_file.exists() else {}
        summary = summarize(env["TTHC_WAREHOUSE_URL"], state["urls"]["portal"], runs)
        summary["mail_folder"] = (state.get("smtp") or {}).get("folder")
        summary["report"] = _write_report(env)
        print(format_summary(summary))
        failed = proc.returncode != 0 or not runs or any(r["state"] != "success" for r in runs.values())
        if failed:
            print(f"tthc demo: FAILED — see {DEMO_HOME / 'airflow-run.log'}", file=sys.stderr)
            return 1
        return 0
    finally:
        if not keep:
            _sandbox("stop", DEMO_HOME, env)


def _write_report(env: dict[str, str]) -> str | None:
    """The current quarter's report (HTML + XLSX) for the registry's province; its HTML path."""
    from tthc.kpi import Period
    from tthc.report import build_quarterly_report
    from tthc.warehouse.db import get_engine

    reg = cached_registry()
    province = next((s.province_code for s in reg.sources if s.province_code), None)
    if province is None:
        return None
    files = build_quarterly_report(
        get_engine(env["TTHC_WAREHOUSE_URL"]),
        Period.containing("quarter", vn_now()),
        province,
        DEMO_HOME / "reports",
        registry=reg,
    )
    return str(files.html)


def _run_dags(result_file: str) -> int:
    """Child process: load the DAG folder and run each source DAG once with ``dag.test()``."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        print(json.dumps(bag.import_errors), file=sys.stderr)
        return 1
    out: dict[str, Any] = {}
    # the night as the scheduler would run it: every source, then the province-wide figures
    # (the 06:00 watchdog and the quarterly report DAG have their own times; the report is
    # written by the parent process afterwards)
    order = sorted(d for d in bag.dag_ids if d.startswith("tthc_source_"))
    order += [d for d in ("tthc_province_indicators",) if d in bag.dag_ids]
    for dag_id in order:
        dr = bag.dags[dag_id].test()
        out[dag_id] = {"state": str(dr.state), "run_id": dr.run_id}
        Path(result_file).write_text(json.dumps(out))
    return 0 if all(v["state"] == "success" for v in out.values()) else 1


def summarize(warehouse_url: str, portal_url: str, runs: dict[str, Any]) -> dict[str, Any]:
    from sqlalchemy import text

    from tthc.warehouse.db import get_engine

    eng = get_engine(warehouse_url)
    per_source: dict[str, dict[str, Any]] = {}
    with eng.connect() as conn:
        for dag_id, r in runs.items():
            if not dag_id.startswith("tthc_source_"):
                continue
            sid = dag_id.removeprefix("tthc_source_")
            rows = (
                conn.execute(
                    text(
                        "SELECT stage, status, records_in, records_out, quarantined, matched, published "
                        "FROM pipeline_runs WHERE run_id = :r AND source_id = :s"
                    ),
                    {"r": r["run_id"], "s": sid},
                )
                .mappings()
                .all()
            )
            st = {row["stage"]: row for row in rows}
            per_source[sid] = {
                "state": r["state"],
                "pulled": (st.get("extract") or {}).get("records_in"),
                "valid": (st.get("validate") or {}).get("records_out"),
                "quarantined": (st.get("validate") or {}).get("quarantined"),
                "matched": (st.get("reconcile") or {}).get("matched"),
                "published": (st.get("publish") or {}).get("published"),
            }
        ontime = (
            conn.execute(
                text(
                    "SELECT scope_code, indicator_id, value FROM indicators "
                    "WHERE scope = 'source' AND period_type = 'run' AND indicator_id = '2.1_on_time'"
                )
            )
            .mappings()
            .all()
        )
    portal = requests.get(f"{portal_url}/_sandbox/state", timeout=10).json()
    return {"sources": per_source, "portal": portal, "on_time": {r["scope_code"]: r["value"] for r in ontime}}


def format_summary(s: dict[str, Any]) -> str:
    lines = ["", "Kết quả lượt đồng bộ (tthc demo)", "=" * 34]
    hdr = (
        f"{'nguồn':<22}{'trạng thái':<12}{'kéo về':>8}{'hợp lệ':>8}{'cách ly':>9}{'khớp':>7}"
        f"{'đã gửi':>8}{'đúng hạn':>10}"
    )
    lines.append(hdr)
    for sid, r in s["sources"].items():
        rate = s["on_time"].get(sid)
        pct = "-" if rate is None else f"{rate * 100:.1f}%".replace(".", ",")
        lines.append(
            f"{sid:<22}{r['state']:<12}{_n(r['pulled']):>8}{_n(r['valid']):>8}{_n(r['quarantined']):>9}"
            f"{_n(r['matched']):>7}{_n(r['published']):>8}{pct:>10}"
        )
    portal = s["portal"]
    held = portal.get("dossier_count", len(portal.get("dossiers", {})))
    lines.append(f"Cổng DVCQG (sandbox) đang lưu {held} hồ sơ.")
    folder = s.get("mail_folder")
    if folder:
        n = len(list(Path(folder).glob("*.eml"))) if Path(folder).is_dir() else 0
        lines.append(f"Thư cảnh báo chất lượng dữ liệu đã gửi: {n} thư, đọc tại {folder}")
    if s.get("report"):
        lines.append(f"Báo cáo quý (tạm tính): {s['report']}")
    lines.append(f"Kho dữ liệu: {DEMO_HOME / 'warehouse.db'}")
    return "\n".join(lines)


def _n(v: Any) -> str:
    return "-" if v is None else f"{v:,}".replace(",", ".")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_run-dags":
        sys.exit(_run_dags(sys.argv[2]))
    sys.exit(run_demo())
