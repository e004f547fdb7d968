"""E-mails to people: data-quality reports for agency stewards, digests and lateness alerts for the
data engineers, and the run statistics behind them.

Importing the package is cheap (no SQLAlchemy, Jinja or Airflow): names resolve lazily.

``run_notifications(engine, run_id, source_ids, registry, now=None, *, digest=True) -> dict``
    the data-quality e-mails of one run (:mod:`tthc.notify.quality_mail`);
``run_statistics(bind, *, run_id=None, source_id=None, since=None, until=None) -> list[dict]``
    per run, source and stage: counts, duration, status (:mod:`tthc.notify.stats`);
``run_watchdog(engine, registry, night, *, now=None) -> dict``
    the 06:00 lateness check and nightly digest (:mod:`tthc.notify.watchdog`).
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "run_notifications": "tthc.notify.quality_mail",
    "NotificationError": "tthc.notify.quality_mail",
    "run_statistics": "tthc.notify.stats",
    "summarise_runs": "tthc.notify.stats",
    "run_watchdog": "tthc.notify.watchdog",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
