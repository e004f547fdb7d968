"""The Celery configuration of this project's workers: Airflow's default, plus a preload.

Set ``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=tthc.celery_config.CELERY_CONFIG`` (the compose file
and the native Celery test do). The settings are Airflow's own (:data:`DEFAULT_CELERY_CONFIG`,
built from ``[celery]`` of the Airflow configuration); importing this module also connects
:func:`preload` to Celery's ``import_modules`` signal, which a worker sends once at start-up, before
it forks its pool: the task processes then inherit Great Expectations, pandas and the project's
modules already imported (:mod:`tthc.preload`). The scheduler and API server import this module
too (they build the same Celery app to send tasks) but never send that signal, so they load
nothing more.
"""

from __future__ import annotations

import logging

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import import_modules

log = logging.getLogger(__name__)

CELERY_CONFIG = dict(DEFAULT_CELERY_CONFIG)


@import_modules.connect
def preload(*_args, **_kwargs) -> None:
    """Celery ``import_modules`` handler: :func:`tthc.preload.warm`. A failure is logged, never
    raised: a worker without the preload is slower, not broken."""
    try:
        from tthc.preload import warm

        took = warm()
    except Exception:  # noqa: BLE001 - the worker must start regardless
        log.exception("tthc: preload failed; task processes will import on first use")
        return
    # printed as well: the worker's log shows it whatever the logging configuration
    print(f"tthc: worker preloaded Great Expectations and the pipeline modules in {took:.1f} s", flush=True)
