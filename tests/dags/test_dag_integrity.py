"""DAG integrity: every DAG file imports, DAG policy holds, nothing heavy happens at parse time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG was loaded"


def test_one_dag_per_active_source(dagbag):
    from tthc.registry import load_registry

    reg = load_registry()
    expected = {s.dag_id for s in reg.sources if s.active}
    assert expected <= set(dagbag.dag_ids)


def test_dag_policy(dagbag):
    from tthc.orchestration import STAGES, Tag

    allowed = {t.value for t in Tag}
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert set(dag.tags) <= allowed, (dag_id, dag.tags)
        assert dag.doc_md and "When it fails" in dag.doc_md, dag_id
        assert dag.max_active_runs == 1
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", (dag_id, t.task_id)
            assert t.retries >= 1, (dag_id, t.task_id)
            assert t.on_failure_callback, (dag_id, t.task_id)
        if dag_id.startswith("tthc_source_"):
            assert [t.task_id for t in dag.topological_sort()] == [*STAGES, "notify"]


def test_parse_is_light():
    """Importing the DAG file must not import pandas or Great Expectations (slow, memory-hungry)."""
    code = textwrap.dedent(
        f"""
        import sys, runpy
        runpy.run_path({str(REPO / "dags" / "tthc_sources.py")!r})
        heavy = [m for m in ("great_expectations", "pandas", "tthc.pipeline") if m in sys.modules]
        print(",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), out.stdout
