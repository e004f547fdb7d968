"""Start the distributed stack natively (the topology of docker/compose.yaml, as processes) by hand.

    python scripts/celery_stack.py up  [--size N] [--root DIR] [--triggerer] [--schedule]
    python scripts/celery_stack.py run [--size N] [--root DIR]

``up`` brings up PostgreSQL databases, the sandbox, ``airflow api-server``, ``scheduler``,
``dag-processor`` and a Celery worker (the harness of tests/distributed/stack.py), prints where
everything is, and keeps it running until Ctrl-C or SIGTERM; then it stops every process and drops
the databases. ``run`` triggers every source DAG the sandbox serves, waits, prints the stage
counts of each run and the timings, and tears down (exit 1 if a run failed).

Needs PostgreSQL and Redis on 127.0.0.1 (the machines of this project run both).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _harness() -> Any:
    path = REPO / "tests" / "distributed" / "stack.py"
    spec = importlib.util.spec_from_file_location("tthc_airflow_stack", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _summary(stack: Any, runs: dict[str, str]) -> dict[str, Any]:
    import sqlalchemy as sa

    out: dict[str, Any] = {}
    engine = stack.warehouse_engine()
    with engine.connect() as conn:
        for dag_id, run_id in runs.items():
            rows = conn.execute(
                sa.text(
                    "SELECT stage, status, records_in, records_out, quarantined, matched, published "
                    "FROM pipeline_runs WHERE run_id = :r ORDER BY started_at"
                ),
                {"r": run_id},
            ).mappings()
            out[dag_id] = {r["stage"]: {k: v for k, v in r.items() if k != "stage"} for r in rows}
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["up", "run"])
    p.add_argument("--size", type=int, help="dossiers in the sandbox world (default: config/sandbox.yaml)")
    p.add_argument("--seed", type=int)
    p.add_argument("--root", type=Path, help="where logs and AIRFLOW_HOME go (default: a new temp dir)")
    p.add_argument("--triggerer", action="store_true", help="also run `airflow triggerer`")
    p.add_argument("--schedule", action="store_true", help="let the scheduler follow the DAGs' crons")
    p.add_argument("--concurrency", type=int, default=2, help="Celery worker concurrency")
    args = p.parse_args(argv)

    h = _harness()
    opts = h.StackOptions(
        seed=args.seed,
        size=args.size,
        triggerer=args.triggerer,
        use_job_schedule=args.schedule,
        worker_concurrency=args.concurrency,
    )
    missing = h.prerequisites_missing(opts)
    if missing:
        print(f"celery_stack: {missing}", file=sys.stderr)
        return 2
    root = args.root or Path(tempfile.mkdtemp(prefix="tthc-celery-stack-"))
    _stop_on_sigterm()
    failed = False
    try:
        with h.airflow_stack(root, opts) as stack:
            dag_ids = stack.source_dag_ids()
            stack.wait_for_dags(dag_ids)
            if args.command == "up":
                pw_file = stack.airflow_home / "simple_auth_manager_passwords.json.generated"
                print(
                    json.dumps(
                        {
                            "api": stack.api_url,
                            "login": {"user": "tthc", "password_file": str(pw_file)},
                            "sandbox": stack.sandbox_state.get("urls"),
                            "warehouse": stack.warehouse_url,
                            "logs": str(stack.log_dir),
                            "source_dags": dag_ids,
                            "pids": {n: s.pid for n, s in stack.services.items()},
                        },
                        indent=2,
                    ),
                    flush=True,
                )
                print("celery_stack: running; Ctrl-C (or SIGTERM) stops everything", flush=True)
                while True:
                    stack.check_alive()
                    time.sleep(2)
            runs: dict[str, str] = {}
            for dag_id in dag_ids:
                stack.unpause(dag_id)
                runs[dag_id] = stack.trigger(dag_id)
            with stack.phase("runs"):
                states = {d: stack.wait_for_run(d, r) for d, r in runs.items()}
            print(json.dumps({"states": states, "stages": _summary(stack, runs)}, indent=2, default=str))
            failed = any(s != "success" for s in states.values())
    except KeyboardInterrupt:
        print("celery_stack: stopped", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
