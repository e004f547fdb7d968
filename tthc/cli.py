"""``tthc``: the operators' command line (sandbox, demo, one source's night without Airflow, checks)."""

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


if __name__ == "__main__":
    sys.exit(main())
