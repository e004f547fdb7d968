"""``tthc``: the operators' command line (sandbox, demo, one source's night without Airflow, checks,
the privacy scan)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tthc", description="tthc-sync operator commands")
    sub = p.add_subparsers(dest="cmd", required=True)

    sb = sub.add_parser("sandbox", help="start/stop the simulators of the external systems")
    sb.add_argument("args", nargs=argparse.REMAINDER, help="start | stop | run ... (see tthc sandbox run -h)")

    dm = sub.add_parser("demo", help="sandbox + a full nightly run through Airflow on SQLite, then a summary")
    dm.add_argument("--size", type=int, default=None, help="dossiers in the sandbox world")
    dm.add_argument("--keep", action="store_true", help="leave the sandbox running afterwards")

    rs = sub.add_parser("run-source", help="run every stage of one source without Airflow")
    rs.add_argument("source_id")
    rs.add_argument("--window-end", help="ISO datetime (Vietnam time); default now")
    rs.add_argument("--run-id", default=None)

    rp = sub.add_parser("report", help="write the quarterly report (HTML + chart PNGs + XLSX) of a province")
    rp.add_argument("--quarter", required=True, help="e.g. 2026Q3")
    rp.add_argument(
        "--province", default=None, help="province code, e.g. H40; default: every registry province"
    )
    rp.add_argument("--out", default=None, help="output folder; default $TTHC_REPORT_DIR or var/reports")
    rp.add_argument("--no-recompute", action="store_true", help="use the stored indicators as they are")

    ps = sub.add_parser(
        "privacy-scan",
        help="search a run's logs, e-mails, XCom, warehouse, dashboard for personal data (exit 1 on a hit)",
        description="Search what a run left behind for planted marker values and citizen-ID / phone "
        "shapes; lookups must all be audited. Typical: `tthc privacy-scan --home var/demo` after "
        "`make demo` (values in the report are masked).",
    )
    from tthc.privacy_scan import add_arguments as _privacy_scan_arguments

    _privacy_scan_arguments(ps)

    sub.add_parser("migrate", help="upgrade the warehouse schema to the latest migration")
    rc = sub.add_parser("registry", help="check the source registry")
    rc.add_argument("action", choices=["check"])
    rc.add_argument("--file", default=None)

    a = p.parse_args(argv)
    if a.cmd == "sandbox":
        from sandbox.server import main as sandbox_main

        return sandbox_main(a.args) or 0
    if a.cmd == "demo":
        from tthc.demo import run_demo

        return run_demo(size=a.size, keep=a.keep)
    if a.cmd == "run-source":
        from tthc.pipeline import STAGES, run_stage
        from tthc.timeutil import vn_now

        end = datetime.fromisoformat(a.window_end) if a.window_end else vn_now()
        run_id = a.run_id or f"manual__{end.isoformat()}"
        for stage in STAGES:
            counts = run_stage(stage, a.source_id, run_id=run_id, window_end=end)
            print(f"{stage}: {json.dumps(counts, ensure_ascii=False)}")
        return 0
    if a.cmd == "report":
        return _report(a)
    if a.cmd == "privacy-scan":
        from tthc.privacy_scan import run_cli

        return run_cli(a)
    if a.cmd == "migrate":
        from tthc.warehouse.db import get_engine, migrate

        migrate(get_engine())
        print("warehouse schema is up to date")
        return 0
    if a.cmd == "registry":
        from tthc.registry import RegistryError, load_registry

        try:
            reg = load_registry(a.file)
        except RegistryError as e:
            print(f"registry error: {e}", file=sys.stderr)
            return 2
        print(f"{reg.path}: {len(reg.sources)} sources, {sum(s.active for s in reg.sources)} active")
        return 0
    return 2


def _report(a: argparse.Namespace) -> int:
    from tthc.kpi import Period
    from tthc.registry import cached_registry
    from tthc.report import build_quarterly_report
    from tthc.warehouse.db import get_engine, migrate

    try:
        period = Period.parse(a.quarter)
    except ValueError as e:
        print(f"report: {e}", file=sys.stderr)
        return 2
    if period.type != "quarter":
        print("report: --quarter takes a quarter such as 2026Q3", file=sys.stderr)
        return 2
    registry = cached_registry()
    provinces = (
        [a.province] if a.province else sorted({s.province_code for s in registry.sources if s.province_code})
    )
    if not provinces:
        print("report: no --province given and no source in the registry names one", file=sys.stderr)
        return 2
    engine = migrate(get_engine())
    for prov in provinces:
        files = build_quarterly_report(
            engine, period, prov, a.out, registry=registry, recompute=not a.no_recompute
        )
        print(files.summary)
        print(f"  HTML: {files.html}")
        print(f"  XLSX: {files.xlsx}")
        print(f"  biểu đồ (PNG): {files.folder / 'bieu-do'}")
        if files.agencies:
            print(f"  theo cơ quan: {len(files.agencies)} tệp trong {files.folder / 'co-quan'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
