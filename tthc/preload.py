"""Import the heavy libraries once in a long-running worker, before it forks task processes.

A Celery worker of the CeleryExecutor runs every task in a process forked from the worker
(``airflow.sdk.execution_time.supervisor``), and Airflow preloads some of its own modules in the
worker for that reason (``celery_import_modules``). The stages of this project import Great
Expectations (4-8 s of CPU and ~230 MB on first use), pandas, SQLAlchemy and the connectors; a
task process forked from a worker that has them imported starts with them in memory (shared
copy-on-write) instead of importing them again: for a quiet night of small batches the import is
most of a validation task's time.

:func:`warm` imports them and runs one validation of a one-row, content-free frame, so GX's lazily
imported parts (its expectation registry, the pandas execution engine) are loaded too. No
database connection, engine, thread or file is left behind: a forked child inherits nothing it
must not share. ``tthc.celery_config`` calls it when a worker starts; the benchmark's worker pool
calls it the same way.
"""

from __future__ import annotations

import importlib
import logging
import time

log = logging.getLogger(__name__)

#: what a task process of this project imports (the stage modules import the rest lazily)
MODULES = (
    "pandas",
    "numpy",
    "sqlalchemy",
    "psycopg",
    "requests",
    "great_expectations",
    "tthc.pipeline",
    "tthc.pipeline.extract",
    "tthc.pipeline.validate",
    "tthc.pipeline.reconcile",
    "tthc.pipeline.publish",
    "tthc.pipeline.indicators",
    "tthc.quality.validate",
    "tthc.warehouse.repo",
    "tthc.warehouse.bulk",
    "connectors.portal",
    "connectors.lgsp",
    "connectors.igate",
    "connectors.onegate",
)

_warmed = False


def warm() -> float:
    """Import :data:`MODULES` and exercise GX once (idempotent); returns the seconds it took."""
    global _warmed
    if _warmed:
        return 0.0
    t0 = time.perf_counter()
    for name in MODULES:
        importlib.import_module(name)
    import pandas as pd
    from tqdm import tqdm

    # GX opens a (disabled) progress bar per validation; tqdm's monitor thread would be the one
    # thread left running in the worker before it forks
    tqdm.monitor_interval = 0

    from tthc.quality.validate import validate_dossiers

    # one row without content: every expectation runs (and fails), nothing is kept
    validate_dossiers(
        pd.DataFrame([{"source_id": "preload", "dossier_code": "PRELOAD"}]), keep_gx_result=False
    )
    _warmed = True
    took = time.perf_counter() - t0
    log.info("tthc: preloaded %d modules and Great Expectations in %.1f s", len(MODULES), took)
    return took
