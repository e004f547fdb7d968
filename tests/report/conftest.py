"""The report tests reuse the kpi tests' warehouse fixtures (both backends)."""

from tests.kpi.conftest import engine, kpi_pg_url, sqlite_engine  # noqa: F401
