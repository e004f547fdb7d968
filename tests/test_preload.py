"""A Celery worker of this project imports Great Expectations and the pipeline once, when it starts,
so the task processes it forks inherit them (``tthc.celery_config``, ``tthc.preload``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tthc.paths import REPO_ROOT

PROBE = textwrap.dedent(
    """
    import json, sys, threading
    import tthc.celery_config as cfg
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
    before = "great_expectations" in sys.modules
    from celery.signals import import_modules
    import_modules.send(sender=None)  # what a worker sends once at start-up, before forking its pool
    print(json.dumps({
        "before": before,
        "after": "great_expectations" in sys.modules and "tthc.pipeline.publish" in sys.modules,
        "threads": [t.name for t in threading.enumerate()],
        "same_settings": cfg.CELERY_CONFIG == DEFAULT_CELERY_CONFIG,
    }))
    """
)


def test_a_worker_start_preloads_gx_and_leaves_no_thread_behind():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    # importing the configuration (as the scheduler does) loads nothing heavy
    assert found["before"] is False
    assert found["after"] is True
    # a thread running at fork time would be missing (and its locks maybe held) in every task process
    assert found["threads"] == ["MainThread"]
    # Airflow's own Celery settings, unchanged
    assert found["same_settings"] is True
    assert "tthc: worker preloaded Great Expectations" in out.stdout
