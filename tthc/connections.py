"""Credentials and endpoints of external systems, from Airflow connections or the environment.

Inside an Airflow task the connection comes from Airflow (metadata DB, secrets backend or an
``AIRFLOW_CONN_<ID>`` variable). Outside Airflow (the CLI, tests, a data engineer reproducing one
source's pull from a shell) the same ``AIRFLOW_CONN_<ID>`` variable is read directly, in either of
Airflow's two formats (JSON or URI). Secrets never live in code or in the registry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


class ConnectionNotFound(LookupError):
    pass


@dataclass(frozen=True)
class ConnInfo:
    conn_id: str
    conn_type: str | None
    host: str | None
    port: int | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def base_url(self) -> str:
        """``http://host:port[/schema]``; an explicit ``extra.base_url`` wins."""
        if self.extra.get("base_url"):
            return str(self.extra["base_url"]).rstrip("/")
        scheme = "https" if self.conn_type == "https" else "http"
        host = self.host or "127.0.0.1"
        if "://" in host:  # some UIs store a full URL in host
            base = host.rstrip("/")
        else:
            base = f"{scheme}://{host}" + (f":{self.port}" if self.port else "")
        return base + (f"/{self.schema.strip('/')}" if self.schema else "")


def _from_env(conn_id: str) -> ConnInfo | None:
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not raw:
        return None
    raw = raw.strip()
    if raw.startswith("{"):
        d = json.loads(raw)
        extra = d.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra) if extra else {}
        return ConnInfo(
            conn_id,
            d.get("conn_type"),
            d.get("host"),
            d.get("port"),
            d.get("schema"),
            d.get("login"),
            d.get("password"),
            extra,
        )
    u = urlsplit(raw)
    extra = dict(parse_qsl(u.query))
    if "__extra__" in extra:
        extra = json.loads(extra["__extra__"])
    return ConnInfo(
        conn_id,
        u.scheme.replace("-", "_") or None,
        u.hostname,
        u.port,
        unquote(u.path.lstrip("/")) or None,
        unquote(u.username) if u.username else None,
        unquote(u.password) if u.password else None,
        extra,
    )


def get_connection(conn_id: str) -> ConnInfo:
    """Resolve a connection: environment first (cheap, works everywhere), then Airflow."""
    info = _from_env(conn_id)
    if info is not None:
        return info
    try:
        from airflow.sdk import BaseHook  # only inside Airflow; never at import time

        c = BaseHook.get_connection(conn_id)
    except Exception as e:  # noqa: BLE001 - Airflow raises several types for "not found"
        raise ConnectionNotFound(
            f"connection {conn_id!r} not found (set AIRFLOW_CONN_{conn_id.upper()} or add it in Airflow)"
        ) from e
    return ConnInfo(conn_id, c.conn_type, c.host, c.port, c.schema, c.login, c.password, c.extra_dejson or {})
