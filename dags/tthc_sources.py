"""Airflow DAG file: nightly DAGs, one per agency source in config/sources.yaml (see tthc.orchestration).

Kept thin on purpose: what runs when is decided here, how it runs lives in the tthc package.
"""

from tthc.orchestration import build_all
from tthc.registry import cached_registry

globals().update(build_all(cached_registry()))
