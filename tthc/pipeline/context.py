"""What every stage needs: the source's configuration, the warehouse, settings, the run's window."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine

from tthc.privacy import scrub_digits
from tthc.registry import Registry, SourceConfig, cached_registry
from tthc.settings import Settings
from tthc.timeutil import to_vn_naive


@dataclass
class StageContext:
    source: SourceConfig
    registry: Registry
    run_id: str
    window_end: datetime  # naive Vietnam time; the frozen upper bound of this run's pull
    engine: Engine
    settings: Settings = field(default_factory=Settings.from_env)
    backfill: bool = False  # a backfill run reads its own day instead of "since the watermark"

    @classmethod
    def create(
        cls,
        source_id: str,
        *,
        run_id: str,
        window_end: datetime,
        registry: Registry | None = None,
        engine: Engine | None = None,
        settings: Settings | None = None,
        backfill: bool = False,
    ) -> StageContext:
        from tthc.warehouse.db import get_engine, migrate

        reg = registry or cached_registry()
        eng = engine or get_engine()
        migrate(eng)
        return cls(
            source=reg.get(source_id),
            registry=reg,
            run_id=run_id,
            window_end=to_vn_naive(window_end).replace(microsecond=0),
            engine=eng,
            settings=settings or Settings.from_env(),
            backfill=backfill,
        )

    @staticmethod
    def safe_error(e: BaseException) -> str:
        """An error text fit for logs and the warehouse: digit runs that could be IDs are masked."""
        return scrub_digits(str(e))
