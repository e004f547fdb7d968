"""Child process of ``test_privacy_scan.py``: one night of DAG runs with ``dag.test()``.

Airflow reads its configuration when first imported, so the night runs in a process started with
the test's Airflow home and logging settings; its stdout/stderr is the run's log. A plan (JSON)
lists the DAGs in order; for each: fault profiles to put on sandbox simulators during its run and
environment variables to set during its run (both undone afterwards), and the run's ``run_after``.

    python tests/e2e/privacy_child.py PLAN.json RESULT.json
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path


def main(plan_file: str, result_file: str) -> int:
    import pendulum
    import requests
    from airflow.dag_processing.dagbag import DagBag

    plan = json.loads(Path(plan_file).read_text(encoding="utf-8"))
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        print(json.dumps(bag.import_errors), file=sys.stderr)
        return 1
    run_after = pendulum.instance(datetime.fromisoformat(plan["run_after"]), tz="Asia/Ho_Chi_Minh")
    out: dict[str, dict[str, str]] = {}
    for step in plan["steps"]:
        faults = step.get("faults", {})
        saved = {k: os.environ.get(k) for k in step.get("env", {})}
        for url, profile in faults.items():
            requests.post(f"{url}/_sandbox/faults", json=profile, timeout=10).raise_for_status()
        os.environ.update(step.get("env", {}))
        try:
            dr = bag.dags[step["dag_id"]].test(run_after=run_after)
        finally:
            for url in faults:
                requests.post(f"{url}/_sandbox/faults", json={}, timeout=10).raise_for_status()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        out[step["dag_id"]] = {"state": str(dr.state), "run_id": dr.run_id}
        Path(result_file).write_text(json.dumps(out), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
