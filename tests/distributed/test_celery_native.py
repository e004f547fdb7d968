"""The deployment's topology without containers: the nightly source DAG on a real CeleryExecutor.

PostgreSQL (fresh metadata and warehouse databases), Redis as broker, the sandbox, and Airflow's
API server, scheduler, DAG processor and a Celery worker as separate processes (``stack.py``).
The run is triggered through the REST API like an operator would; the results are checked against
the ground truth of the sandbox's world (same seed, size and anchor, built in this process):
every stage recorded ``success``, the pull saw every record the source holds, the critical
defects are held in quarantine, and the portal holds exactly the publishable dossiers. Finally
no log of any component contains personal data, and every process started is gone.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from stack import HOST, airflow_stack, scrub

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
STAGES = ("extract", "validate", "reconcile", "publish", "indicators")
BUDGET_SECONDS = 240


def _compose_healthchecks(stack) -> dict[str, str]:
    """Run docker/compose.yaml's health check of every Airflow service and of the sandbox against the
    native stack (same commands; container addresses and names swapped for the stack's); returns
    the failures, service → output. They run while the DAG runs: each is a CLI start-up."""
    from airflow.utils.net import getfqdn

    services = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text(encoding="utf-8"))["services"]
    swaps = {
        "localhost:8080": f"{HOST}:{stack.api_port}",
        "localhost:8974": f"{HOST}:{stack.scheduler_health_port}",
        "celery@$${HOSTNAME}": f"{stack.celery_node_prefix}@$${{HOSTNAME}}",
        "/tmp/sandbox": str(stack.sandbox_dir),
    }
    env = {**stack.env, "HOSTNAME": getfqdn()}
    checks: dict[str, list[str]] = {}
    for name, svc in services.items():
        if not (name.startswith("airflow-") or name == "sandbox") or "healthcheck" not in svc:
            continue
        kind, *args = svc["healthcheck"]["test"]
        for old, new in swaps.items():
            args = [a.replace(old, new) for a in args]
        args = [a.replace("$$", "$") for a in args]  # Compose's escape of a literal "$"
        checks[name] = ["sh", "-c", args[0]] if kind == "CMD-SHELL" else args

    def run(argv: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env=env, cwd=stack.work_dir, capture_output=True, text=True, timeout=90)

    with ThreadPoolExecutor(len(checks)) as pool:
        results = dict(zip(checks, pool.map(run, checks.values()), strict=True))
    return {n: scrub((r.stdout + r.stderr)[-800:]) for n, r in results.items() if r.returncode != 0}


def _personal_values(world, source_id: str) -> set[str]:
    """ID numbers, phone numbers and full names of the applicants the source holds."""
    out: set[str] = set()
    for rec in world.records(source_id):
        d = rec.dossier
        for v in (d.applicant_id_number, d.applicant_phone):
            if v and len(v) >= 9:
                out.add(v)
        if d.applicant_name and " " in d.applicant_name.strip():
            out.add(d.applicant_name.strip())
    return out


def test_source_dags_run_on_celery(tmp_path, stack_prerequisites):
    t0 = time.monotonic()
    # the triggerer too: the whole topology of docker/compose.yaml
    options = dataclasses.replace(stack_prerequisites, triggerer=True)
    with airflow_stack(tmp_path / "stack", options) as stack:
        dag_ids = stack.source_dag_ids()
        assert dag_ids, "the sandbox serves no source of the registry"
        with stack.phase("DAGs parsed"):
            stack.wait_for_dags(dag_ids)
        runs: dict[str, str] = {}
        with stack.phase("runs (and compose health checks)"), ThreadPoolExecutor(1) as pool:
            health = pool.submit(_compose_healthchecks, stack)
            for dag_id in dag_ids:
                stack.unpause(dag_id)
                runs[dag_id] = stack.trigger(dag_id)
            states = {d: stack.wait_for_run(d, r) for d, r in runs.items()}
            failing = health.result(timeout=180)
        assert not failing, f"compose.yaml health checks fail on the native stack: {failing}"
        failed = {d: stack.task_states(d, runs[d]) for d, s in states.items() if s != "success"}
        assert not failed, f"runs failed: {failed} (log tails above)"

        with stack.phase("assertions"):
            world = stack.world
            engine = stack.warehouse_engine()
            portal = stack.portal_state()
            publishable: set[str] = set()
            for dag_id, run_id in runs.items():
                source_id = dag_id.removeprefix("tthc_source_")
                truth = world.expected(source_id)
                assert truth["quarantined_codes"] and truth["publishable_codes"], "world too small"
                publishable |= truth["publishable_codes"]
                with engine.connect() as c:
                    rows = c.execute(
                        sa.text("SELECT * FROM pipeline_runs WHERE run_id = :r AND source_id = :s"),
                        {"r": run_id, "s": source_id},
                    ).mappings()
                    st = {r["stage"]: dict(r) for r in rows}
                    held = {
                        r[0]
                        for r in c.execute(
                            sa.text(
                                "SELECT dossier_code FROM quarantine WHERE status = 'held' AND source_id = :s"
                            ),
                            {"s": source_id},
                        )
                    }
                # the five stages, and any stage added since, all succeeded
                assert set(STAGES) <= set(st), f"stages recorded: {sorted(st)}"
                assert {s: r["status"] for s, r in st.items()} == dict.fromkeys(st, "success")
                assert st["extract"]["records_in"] == truth["pulled"]
                assert st["validate"]["quarantined"] == len(truth["quarantined_codes"])
                assert held == set(truth["quarantined_codes"])
                assert st["publish"]["published"] == len(truth["publishable_codes"])
            engine.dispose()
            assert set(portal["dossiers"]) == publishable

            personal = set().union(
                *(_personal_values(world, d.removeprefix("tthc_source_")) for d in dag_ids)
            )
            leaks = {}
            for path in stack.log_files():
                text = path.read_text(encoding="utf-8", errors="replace")
                found = sorted(v for v in personal if v in text)
                if found:
                    leaks[str(path.relative_to(stack.root))] = len(found)
            assert not leaks, f"personal data in logs (file → number of values): {json.dumps(leaks)}"
            # the worker imported GX and the pipeline before forking its task processes
            worker_log = (stack.log_dir / "celery-worker.log").read_text(encoding="utf-8", errors="replace")
            assert "tthc: worker preloaded Great Expectations" in worker_log

    assert stack.leftovers == [] and stack.cleanup_errors == []
    total = time.monotonic() - t0
    print(f"distributed run timings (s): {json.dumps(stack.timings)}; test total {total:.1f} s")
    assert total < BUDGET_SECONDS, f"took {total:.0f} s, budget {BUDGET_SECONDS} s"
