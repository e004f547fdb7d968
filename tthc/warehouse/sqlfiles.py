"""Named SQL files: queries worth reading as SQL live in ``<repo>/sql/*.sql``.

``load_sql("publish_candidates")`` returns a :func:`sqlalchemy.text` clause with ``:name``
parameters. The folder is ``$TTHC_SQL_DIR`` when set (deployments that do not ship the repository
layout), else ``sql/`` at the repository root. Every file is written to run unchanged on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa

from tthc.paths import REPO_ROOT

ENV_SQL_DIR = "TTHC_SQL_DIR"
REPO_SQL_DIR = REPO_ROOT / "sql"


def sql_dir() -> Path:
    override = os.environ.get(ENV_SQL_DIR)
    return Path(override) if override else REPO_SQL_DIR


def sql_path(name: str) -> Path:
    """Path of the named file (``name`` with or without ``.sql``); no path separators allowed."""
    if "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"SQL file name must be a plain name, got {name!r}")
    filename = name if name.endswith(".sql") else f"{name}.sql"
    return sql_dir() / filename


@lru_cache(maxsize=64)
def _read(path: Path, mtime_ns: int) -> str:
    return path.read_text(encoding="utf-8")


def load_sql_text(name: str) -> str:
    path = sql_path(name)
    try:
        return _read(path, path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise FileNotFoundError(f"SQL file {path} not found (set {ENV_SQL_DIR} to relocate)") from None


def load_sql(name: str) -> sa.TextClause:
    """The named SQL file as a ``sqlalchemy.text`` clause.

    Whole-line ``--`` comments are dropped first: ``text()`` would otherwise read a ``:word``
    written in a comment as a bind parameter.
    """
    body = "\n".join(line for line in load_sql_text(name).splitlines() if not line.lstrip().startswith("--"))
    return sa.text(body.strip())
