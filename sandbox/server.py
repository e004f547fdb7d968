"""Run the sandbox simulators, together or one at a time, in-process or as a process.

In-process (tests)::

    from sandbox.server import SandboxConfig, running_sandbox

    cfg = SandboxConfig.for_tests(tmp_path)          # every port 0, SMTP folder under tmp_path
    with running_sandbox(cfg) as sb:
        sb.urls["igate"], sb.urls["population"], sb.urls["portal"], sb.ports["smtp"]
        sb.urls["onegate"]                             # onegate dialect (world.md §2)
        sb.world                                       # the shared sandbox.world.World
        sb.igate_sources                               # [{"source_id", "client_id", "client_secret", ...}]
        sb.onegate_sources                             # [{"source_id", "api_key", "agency_codes"}]
        sb.sqldb.sources_info(), sb.filedrop.files()   # SQL views (world.md §3), file drop (§4)
        sb.advance(days=1)                             # move the World and re-sync sqldb + filedrop
        sb.portal_credentials                          # {"username", "password"}
        sb.state_document()                            # the same JSON as the state file

As a process::

    python -m sandbox.server start [--config config/sandbox.yaml] [--state-dir .sandbox] [options]
    python -m sandbox.server stop  [--state-dir .sandbox]
    python -m sandbox.server run   [options]           # foreground, Ctrl-C / SIGTERM to stop
    python -m sandbox.server status [--state-dir .sandbox]

``start`` runs ``run`` in a new session (stdout/stderr to ``<state-dir>/sandbox.log``) and returns
once every port answers; ``run`` writes ``<state-dir>/sandbox.pid`` and ``<state-dir>/state.json``
(mode 0600: it holds the sandbox credentials) and removes both when it stops. ``stop`` sends
SIGTERM to the pid of the pidfile (only if that process is a sandbox server) and waits.

State file (``state.json``)::

    {"pid": 1234, "started_at": "2026-11-23T19:40:00", "host": "127.0.0.1",
     "simulators": ["igate", "population", "portal", "smtp", "onegate", "sqldb", "filedrop"],
     "urls": {"igate": "http://127.0.0.1:8701", "population": "...", "portal": "...",
              "onegate": "http://127.0.0.1:8704"},
     "ports": {"igate": 8701, "population": 8702, "portal": 8703, "smtp": 8725, "onegate": 8704},
     "sources": [                                                      # one per served source
         {"source_id", "dialect": "igate", "host", "port", "base_url",
          "client_id", "client_secret", "agency_codes"},
         {"source_id", "dialect": "onegate", "host", "port", "base_url", "dossiers_url",
          "api_key", "agency_codes"},
         {"source_id", "dialect": "sqldb", "url" (SQLAlchemy URL, secrets included), "backend",
          "view": "ho_so_tthc", "incremental_column": "ngay_cap_nhat", "database",
          "path" (sqlite) | "username", "password" (mariadb), "host", "port",
          "extra": {"url", "view"}, "agency_codes"},
         {"source_id", "dialect": "filedrop", "folder" (scan recursively), "agency_folders",
          "recursive": true, "extra": {"folder"}, "agency_codes"}],
     "portal_credentials": {"username", "password"},
     "world": {"seed": 42, "size": 400, "anchor": "2026-11-01T00:00:00", "now": "..."},
     "igate": {"url", "token_url", "dossiers_url", "token_seconds",
               "sources": [{"source_id", "client_id", "client_secret", "agency_codes"}]},
     "population": {"url", "lookup_url", "bulk_url", "status_url", "result_url",
                    "rate_limit_per_second", "bulk_delay_seconds", "registry_size"},
     "portal": {"url", "auth_url", "integration_url", "username", "password", "session_seconds"},
     "smtp": {"host": "127.0.0.1", "port": 8725, "folder": "/abs/path"},
     "onegate": {"url", "dossiers_url", "api_key_header": "X-API-Key", "max_limit": 500,
                 "sources": [{"source_id", "api_key", "agency_codes"}]},
     "sqldb": {"backend", "sources": [as in "sources"], "inspection": {counts, last sync, rows}},
     "filedrop": {"root", "sources": [as in "sources"], "inspection": {files, by fault, ...}}}

Only the simulators that run have their section. The sqldb and filedrop simulators have no port:
they materialise SQL views (SQLite files under ``<state-dir>/sqldb``, or MariaDB databases) and
export folders (``<state-dir>/filedrop``) and follow the World's clock: ``POST /_sandbox/clock``
(or ``/_sandbox/reset``) on igate or onegate re-syncs them before it answers. The World: the
default preset is one igate source (``WorldConfig(seed, size)``); ``preset: demo`` serves the
12 sources of ``WorldConfig.demo()`` (igate, onegate, sqldb, filedrop).

Configuration: ``config/sandbox.yaml`` (see the comments there); command-line options override it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from sandbox.common import HOST, AfterWorldChange, HttpServerThread, WorldHolder
from sandbox.faults import FaultProfile
from sandbox.filedrop import FiledropConfig, FiledropSimulator
from sandbox.igate import IgateConfig, IgateSimulator, load_dossier_fixture
from sandbox.onegate import DATA_PATH as ONEGATE_DATA_PATH
from sandbox.onegate import MAX_LIMIT as ONEGATE_MAX_LIMIT
from sandbox.onegate import OnegateConfig, OnegateSimulator
from sandbox.population import (
    PopulationConfig,
    PopulationSimulator,
    load_citizens_csv,
    registry_from_citizens,
)
from sandbox.portal import PortalConfig, PortalSimulator, load_fixture
from sandbox.smtp_sink import SmtpSink
from sandbox.sqldb import BACKENDS as SQLDB_BACKENDS
from sandbox.sqldb import DEFAULT_MARIADB_URL, SqldbConfig, SqldbSimulator

log = logging.getLogger("sandbox.server")

SIMULATORS = ("igate", "population", "portal", "smtp", "onegate", "sqldb", "filedrop")
HTTP_SIMULATORS = ("igate", "population", "portal", "onegate")
DEFAULT_PORTS = {"igate": 8701, "population": 8702, "portal": 8703, "smtp": 8725, "onegate": 8704}
PRESETS = ("default", "demo")  # the generated World: one igate source, or WorldConfig.demo()
WORLD_SIMULATORS = ("igate", "onegate", "sqldb", "filedrop")  # render the World's dossiers
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = REPO_ROOT / "config" / "sandbox.yaml"
PIDFILE = "sandbox.pid"
STATEFILE = "state.json"
LOGFILE = "sandbox.log"


# ---- configuration -----------------------------------------------------------------------------
@dataclass
class SandboxConfig:
    seed: int = 42
    size: int = 400
    anchor: datetime | None = None
    simulators: tuple[str, ...] = SIMULATORS
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    state_dir: Path = Path(".sandbox")
    faults: dict[str, FaultProfile] = field(default_factory=dict)
    token_seconds: float = 300.0
    session_seconds: float = 1800.0
    portal_users: dict[str, str] = field(default_factory=lambda: {"tthc-sync": "sandbox-portal-secret"})
    portal_dossiers_json: Path | None = None
    igate_dossiers_json: Path | None = None
    citizens_csv: Path | None = None
    rate_limit_per_second: float = 50.0
    bulk_delay_seconds: float = 0.5
    upper_case_names: bool = False
    smtp_folder: Path = Path(".sandbox/mail")
    preset: str = "default"
    onegate_dossiers_json: Path | None = None
    sqldb_dossiers_json: Path | None = None
    sqldb_backend: str = "sqlite"
    sqldb_folder: Path | None = None  # sqlite files; None = <state_dir>/sqldb
    mariadb_url: str = DEFAULT_MARIADB_URL
    sqldb_database_prefix: str = "tthc_src_"
    sqldb_create_users: bool = False
    sqldb_mojibake_share: float = 0.2
    sqldb_drop_on_stop: bool = False
    filedrop_folder: Path | None = None  # None = <state_dir>/filedrop
    filedrop_fixtures: list[tuple[str, Path]] = field(default_factory=list)  # (source_id, CSV)
    filedrop_options: dict[str, Any] = field(default_factory=dict)  # rates, encodings (FiledropConfig)

    def __post_init__(self) -> None:
        unknown = [s for s in self.simulators if s not in SIMULATORS]
        if unknown:
            raise ValueError(f"unknown simulators: {', '.join(unknown)} (known: {', '.join(SIMULATORS)})")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r} (known: {', '.join(PRESETS)})")
        if self.sqldb_backend not in SQLDB_BACKENDS:
            raise ValueError(f"sqldb backend must be one of {', '.join(SQLDB_BACKENDS)}")
        allowed = set(FiledropConfig.RATES) | {"encodings"}
        bad = sorted(set(self.filedrop_options) - allowed)
        if bad:
            raise ValueError(
                f"filedrop: unknown options {', '.join(bad)} (known: {', '.join(sorted(allowed))})"
            )
        for name in self.faults:
            if name not in HTTP_SIMULATORS:
                raise ValueError(f"fault profile for {name!r}: only {', '.join(HTTP_SIMULATORS)} have faults")

    @classmethod
    def for_tests(cls, tmp_dir: str | Path, **overrides: Any) -> SandboxConfig:
        """Every port 0 (free ports), SMTP folder and state dir under ``tmp_dir``, small world."""
        tmp = Path(tmp_dir)
        kw: dict[str, Any] = {
            "ports": dict.fromkeys(DEFAULT_PORTS, 0),
            "state_dir": tmp / "state",
            "smtp_folder": tmp / "mail",
            "size": 120,
        }
        kw.update(overrides)
        return cls(**kw)

    def fault(self, name: str) -> FaultProfile:
        return self.faults.get(name) or FaultProfile()


def _anchor(v: Any) -> datetime | None:
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return v
    return datetime.fromisoformat(str(v))


def config_from_mapping(data: dict[str, Any]) -> SandboxConfig:
    """The YAML structure (config/sandbox.yaml) → SandboxConfig; unknown keys are an error."""
    data = dict(data or {})
    known = {
        "seed",
        "size",
        "anchor",
        "state_dir",
        "simulators",
        "ports",
        "igate",
        "population",
        "portal",
        "smtp",
        "preset",
        "onegate",
        "sqldb",
        "filedrop",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"sandbox config: unknown keys {', '.join(unknown)}")
    igate = dict(data.get("igate") or {})
    pop = dict(data.get("population") or {})
    portal = dict(data.get("portal") or {})
    smtp = dict(data.get("smtp") or {})
    onegate = dict(data.get("onegate") or {})
    sqldb = dict(data.get("sqldb") or {})
    filedrop = dict(data.get("filedrop") or {})
    for name, section, keys in (
        ("onegate", onegate, {"dossiers_json", "faults"}),
        (
            "sqldb",
            sqldb,
            {
                "backend",
                "folder",
                "mariadb_url",
                "database_prefix",
                "create_users",
                "mojibake_share",
                "drop_on_stop",
                "dossiers_json",
            },
        ),
        ("filedrop", filedrop, {"folder", "fixture_csv", *FiledropConfig.RATES, "encodings"}),
    ):
        extra = sorted(set(section) - keys)
        if extra:
            raise ValueError(f"sandbox config: unknown keys in {name}: {', '.join(extra)}")
    ports = dict(DEFAULT_PORTS)
    for k, v in (data.get("ports") or {}).items():
        if k not in DEFAULT_PORTS:
            raise ValueError(f"sandbox config: unknown port {k!r}")
        ports[k] = int(v)
    faults = {}
    for name, section in (("igate", igate), ("population", pop), ("portal", portal), ("onegate", onegate)):
        if section.get("faults"):
            faults[name] = FaultProfile.from_dict(section["faults"])
    cfg = SandboxConfig(
        seed=int(data.get("seed", 42)),
        size=int(data.get("size", 400)),
        anchor=_anchor(data.get("anchor")),
        simulators=tuple(data.get("simulators") or SIMULATORS),
        ports=ports,
        state_dir=Path(data.get("state_dir") or ".sandbox"),
        faults=faults,
        token_seconds=float(igate.get("token_seconds", 300)),
        igate_dossiers_json=Path(igate["dossiers_json"]) if igate.get("dossiers_json") else None,
        session_seconds=float(portal.get("session_seconds", 1800)),
        portal_users=dict(portal.get("users") or {"tthc-sync": "sandbox-portal-secret"}),
        portal_dossiers_json=Path(portal["dossiers_json"]) if portal.get("dossiers_json") else None,
        citizens_csv=Path(pop["citizens_csv"]) if pop.get("citizens_csv") else None,
        rate_limit_per_second=float(pop.get("rate_limit_per_second", 50)),
        bulk_delay_seconds=float(pop.get("bulk_delay_seconds", 0.5)),
        upper_case_names=bool(pop.get("upper_case_names", False)),
        smtp_folder=Path(smtp.get("folder") or ".sandbox/mail"),
        preset=str(data.get("preset") or "default"),
        onegate_dossiers_json=Path(onegate["dossiers_json"]) if onegate.get("dossiers_json") else None,
        sqldb_dossiers_json=Path(sqldb["dossiers_json"]) if sqldb.get("dossiers_json") else None,
        sqldb_backend=str(sqldb.get("backend") or "sqlite"),
        sqldb_folder=Path(sqldb["folder"]) if sqldb.get("folder") else None,
        mariadb_url=str(sqldb.get("mariadb_url") or DEFAULT_MARIADB_URL),
        sqldb_database_prefix=str(sqldb.get("database_prefix") or "tthc_src_"),
        sqldb_create_users=bool(sqldb.get("create_users", False)),
        sqldb_mojibake_share=float(sqldb.get("mojibake_share", 0.2)),
        sqldb_drop_on_stop=bool(sqldb.get("drop_on_stop", False)),
        filedrop_folder=Path(filedrop["folder"]) if filedrop.get("folder") else None,
        filedrop_fixtures=[_filedrop_fixture(x) for x in _as_list(filedrop.get("fixture_csv"))],
        filedrop_options={k: v for k, v in filedrop.items() if k not in ("folder", "fixture_csv")},
    )
    return cfg


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, list | tuple) else [v]


def _filedrop_fixture(spec: Any) -> tuple[str, Path]:
    """``"SOURCE_ID=path.csv"``, ``{"source_id", "path"}`` or a bare path (source ``filedrop_fixture``)."""
    if isinstance(spec, dict):
        return str(spec.get("source_id") or "filedrop_fixture"), Path(spec["path"])
    text = str(spec)
    sid, sep, path = text.partition("=")
    if sep and sid and "/" not in sid:
        return sid, Path(path)
    return "filedrop_fixture", Path(text)


def load_config(path: str | Path | None = None) -> SandboxConfig:
    """Read a YAML config; ``None`` → config/sandbox.yaml of the repository when it exists."""
    p = Path(path) if path is not None else DEFAULT_CONFIG_FILE
    if path is None and not p.exists():
        return SandboxConfig()
    with open(p, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping")
    return config_from_mapping(data)


# ---- the running sandbox -----------------------------------------------------------------------
def _make_world(cfg: SandboxConfig) -> Any:
    from sandbox.world import World, WorldConfig  # the generator is imported only when needed

    if cfg.onegate_dossiers_json is not None or cfg.sqldb_dossiers_json is not None:
        return _fixture_world(cfg)
    if cfg.igate_dossiers_json is not None:
        records = load_dossier_fixture(cfg.igate_dossiers_json)
        return World.from_records(records, now=cfg.anchor, seed=cfg.seed)
    kw: dict[str, Any] = {"seed": cfg.seed, "size": cfg.size}
    if cfg.anchor is not None:
        kw["anchor"] = cfg.anchor
    registry_file = os.environ.get("TTHC_SANDBOX_REGISTRY")
    if registry_file:  # serve exactly the sources and agencies of a project registry (the demo does)
        from sandbox.from_registry import world_config_from_registry
        from tthc.registry import load_registry

        return World(world_config_from_registry(load_registry(registry_file), **kw))
    if cfg.preset == "demo":
        return World(WorldConfig.demo(**kw))
    return World(WorldConfig(**kw))


def _fixture_world(cfg: SandboxConfig) -> Any:
    """A World of dossier fixtures given per dialect (igate, onegate, sqldb JSON lists)."""
    from sandbox.world import World, _credentials
    from sandbox.world_types import SourceTruth

    records: list[Any] = []
    dialect_of: dict[str, str] = {}
    agencies: dict[str, list[str]] = {}
    for dialect, path in (
        ("igate", cfg.igate_dossiers_json),
        ("onegate", cfg.onegate_dossiers_json),
        ("sqldb", cfg.sqldb_dossiers_json),
    ):
        if path is None:
            continue
        for r in load_dossier_fixture(path):
            sid = r.dossier.source_id
            if dialect_of.setdefault(sid, dialect) != dialect:
                raise ValueError(
                    f"fixture source {sid!r} appears in the {dialect_of[sid]} and {dialect} fixtures"
                )
            codes = agencies.setdefault(sid, [])
            if r.dossier.agency_code and r.dossier.agency_code not in codes:
                codes.append(r.dossier.agency_code)
            records.append(r)
    sources = [
        SourceTruth(sid, dialect, sid, tuple(agencies[sid]), _credentials(cfg.seed, sid, dialect))
        for sid, dialect in sorted(dialect_of.items())
    ]
    return World.from_records(records, now=cfg.anchor, sources=sources, seed=cfg.seed)


class Sandbox:
    """All configured simulators; :func:`running_sandbox` is the usual way to use it."""

    def __init__(self, config: SandboxConfig | None = None, *, world: Any = None) -> None:
        self.config = config or SandboxConfig()
        self._given_world = world  # a ready World (e.g. World.from_records fixtures) instead of seed/size
        self.holder: WorldHolder | None = None
        self.igate: IgateSimulator | None = None
        self.population: PopulationSimulator | None = None
        self.portal: PortalSimulator | None = None
        self.smtp: SmtpSink | None = None
        self.onegate: OnegateSimulator | None = None
        self.sqldb: SqldbSimulator | None = None
        self.filedrop: FiledropSimulator | None = None
        self._servers: dict[str, HttpServerThread] = {}
        self.started_at: datetime | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> Sandbox:
        cfg = self.config
        sims = set(cfg.simulators)
        try:
            needs_world = (
                any(s in sims for s in ("igate", "onegate", "sqldb"))
                or ("filedrop" in sims and not cfg.filedrop_fixtures)
                or ("population" in sims and cfg.citizens_csv is None)
            )
            if self._given_world is not None:
                given = self._given_world
                self.holder = WorldHolder(lambda: given)
            elif needs_world:
                self.holder = WorldHolder(lambda: _make_world(cfg))
            if "igate" in sims:
                assert self.holder is not None
                self.igate = IgateSimulator(
                    self.holder, IgateConfig(token_seconds=cfg.token_seconds, faults=cfg.fault("igate"))
                )
                self._serve("igate", AfterWorldChange(self.igate.app(), self.sync), self.igate.injector)
            if "onegate" in sims:
                assert self.holder is not None
                self.onegate = OnegateSimulator(
                    self.holder, OnegateConfig(faults=cfg.fault("onegate")), on_world_change=self.sync
                )
                self._serve("onegate", self.onegate.app(), self.onegate.injector)
            if "sqldb" in sims:
                assert self.holder is not None
                self.sqldb = SqldbSimulator(
                    self.holder,
                    SqldbConfig(
                        backend=cfg.sqldb_backend,
                        folder=cfg.sqldb_folder or cfg.state_dir / "sqldb",
                        mariadb_url=cfg.mariadb_url,
                        database_prefix=cfg.sqldb_database_prefix,
                        create_users=cfg.sqldb_create_users,
                        mojibake_share=cfg.sqldb_mojibake_share,
                        drop_on_stop=cfg.sqldb_drop_on_stop,
                        seed=cfg.seed,
                    ),
                ).start()
            if "filedrop" in sims:
                self.filedrop = FiledropSimulator(
                    self.holder,
                    FiledropConfig(
                        root=cfg.filedrop_folder or cfg.state_dir / "filedrop",
                        seed=cfg.seed,
                        fixtures=list(cfg.filedrop_fixtures),
                        **cfg.filedrop_options,
                    ),
                ).start()
            if "population" in sims:
                if cfg.citizens_csv is not None:
                    registry = load_citizens_csv(cfg.citizens_csv)
                else:
                    assert self.holder is not None
                    with self.holder.lock:
                        registry = registry_from_citizens(self.holder.world.citizens)
                self.population = PopulationSimulator(
                    PopulationConfig(
                        registry=registry,
                        rate_limit_per_second=cfg.rate_limit_per_second,
                        bulk_delay_seconds=cfg.bulk_delay_seconds,
                        upper_case_names=cfg.upper_case_names,
                        faults=cfg.fault("population"),
                    )
                )
                self._serve("population", self.population.app(), self.population.injector)
            if "portal" in sims:
                fixture = load_fixture(cfg.portal_dossiers_json) if cfg.portal_dossiers_json else []
                self.portal = PortalSimulator(
                    PortalConfig(
                        users=dict(cfg.portal_users),
                        session_seconds=cfg.session_seconds,
                        fixture=fixture,
                        faults=cfg.fault("portal"),
                    )
                )
                self._serve("portal", self.portal.app(), self.portal.injector)
            if "smtp" in sims:
                self.smtp = SmtpSink(cfg.smtp_folder, port=cfg.ports.get("smtp", 0)).start()
        except BaseException:
            self.stop()
            raise
        self.started_at = datetime.now().replace(microsecond=0)
        return self

    def _serve(self, name: str, app: Any, injector: Any) -> None:
        srv = HttpServerThread(name, app, self.config.ports.get(name, 0), injector=injector)
        self._servers[name] = srv.start()

    def stop(self) -> None:
        for srv in self._servers.values():
            srv.stop()
        self._servers.clear()
        if self.sqldb is not None:
            with contextlib.suppress(Exception):
                self.sqldb.stop()
            self.sqldb = None
        if self.filedrop is not None:
            self.filedrop.stop()
        if self.smtp is not None:
            with contextlib.suppress(Exception):
                self.smtp.stop()
            self.smtp = None

    def sync(self) -> None:
        """Bring the sqldb views and the file drop in step with the World's clock (the HTTP
        simulators read the World on every request and need nothing)."""
        if self.sqldb is not None:
            self.sqldb.sync()
        if self.filedrop is not None:
            self.filedrop.sync()

    def advance(self, days: float = 0, hours: float = 0) -> datetime:
        """Move the World's clock forward (what ``POST /_sandbox/clock`` does) and re-sync."""
        assert self.holder is not None, "no World in this sandbox"
        with self.holder.lock:
            now = self.holder.world.advance(days=days, hours=hours)
        self.sync()
        return now

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- what clients need -----------------------------------------------------------------
    @property
    def world(self) -> Any:
        return self.holder.world if self.holder is not None else None

    @property
    def urls(self) -> dict[str, str]:
        return {name: srv.url for name, srv in self._servers.items()}

    @property
    def ports(self) -> dict[str, int]:
        out = {name: srv.port for name, srv in self._servers.items()}
        if self.smtp is not None:
            out["smtp"] = self.smtp.port
        return out

    @property
    def igate_sources(self) -> list[dict[str, Any]]:
        if self.igate is None:
            return []
        return [
            {
                "source_id": s.source_id,
                "client_id": s.client_id,
                "client_secret": s.client_secret,
                "agency_codes": list(s.agency_codes),
            }
            for s in self.igate.igate_sources()
        ]

    @property
    def onegate_sources(self) -> list[dict[str, Any]]:
        if self.onegate is None:
            return []
        return [
            {"source_id": s.source_id, "api_key": s.api_key, "agency_codes": list(s.agency_codes)}
            for s in self.onegate.onegate_sources()
        ]

    @property
    def portal_credentials(self) -> dict[str, str]:
        user, pw = next(iter(self.config.portal_users.items()))
        return {"username": user, "password": pw}

    def state_document(self) -> dict[str, Any]:
        cfg = self.config
        doc: dict[str, Any] = {
            "pid": os.getpid(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "host": HOST,
            "simulators": [s for s in SIMULATORS if s in cfg.simulators],
            "urls": self.urls,
            "ports": self.ports,
            "sources": [
                {
                    "dialect": "igate",
                    "host": HOST,
                    "port": self.ports["igate"],
                    "base_url": self.urls["igate"],
                    **s,
                }
                for s in self.igate_sources
            ],
        }
        if self.onegate is not None:
            u = self.urls["onegate"]
            doc["sources"] += [
                {
                    "dialect": "onegate",
                    "host": HOST,
                    "port": self.ports["onegate"],
                    "base_url": u,
                    "dossiers_url": f"{u}{ONEGATE_DATA_PATH}",
                    **s,
                }
                for s in self.onegate_sources
            ]
        sqldb_sources = self.sqldb.sources_info() if self.sqldb is not None else []
        filedrop_sources = self.filedrop.sources_info() if self.filedrop is not None else []
        doc["sources"] += sqldb_sources + filedrop_sources
        if self.portal is not None:
            doc["portal_credentials"] = self.portal_credentials
        if self.holder is not None:
            with self.holder.lock:
                w = self.holder.world
                anchor = getattr(getattr(w, "config", None), "anchor", cfg.anchor)
                doc["world"] = {
                    "seed": cfg.seed,
                    "size": cfg.size,
                    "anchor": anchor.isoformat() if isinstance(anchor, datetime) else None,
                    "now": w.now.isoformat(timespec="seconds"),
                }
        if self.igate is not None:
            u = self.urls["igate"]
            doc["igate"] = {
                "url": u,
                "token_url": f"{u}/oauth/token",
                "dossiers_url": f"{u}/api/v1/dossiers",
                "token_seconds": cfg.token_seconds,
                "sources": self.igate_sources,
            }
        if self.population is not None:
            u = self.urls["population"]
            doc["population"] = {
                "url": u,
                "lookup_url": f"{u}/lgsp/dancu/TraCuuThongTinCongDan",
                "bulk_url": f"{u}/lgsp/dancu/YeuCauDanhSach",
                "status_url": f"{u}/lgsp/dancu/TrangThai/{{MaYeuCau}}",
                "result_url": f"{u}/lgsp/dancu/KetQua/{{MaYeuCau}}",
                "rate_limit_per_second": cfg.rate_limit_per_second,
                "bulk_delay_seconds": cfg.bulk_delay_seconds,
                "registry_size": len(self.population.registry),
            }
        if self.portal is not None:
            u = self.urls["portal"]
            doc["portal"] = {
                "url": u,
                "auth_url": f"{u}/api/auth",
                "integration_url": f"{u}/api/integration",
                **self.portal_credentials,
                "session_seconds": cfg.session_seconds,
            }
        if self.smtp is not None:
            doc["smtp"] = {"host": HOST, "port": self.smtp.port, "folder": str(self.smtp.folder.resolve())}
        if self.onegate is not None:
            u = self.urls["onegate"]
            doc["onegate"] = {
                "url": u,
                "dossiers_url": f"{u}{ONEGATE_DATA_PATH}",
                "api_key_header": "X-API-Key",
                "max_limit": ONEGATE_MAX_LIMIT,
                "sources": self.onegate_sources,
            }
        if self.sqldb is not None:
            doc["sqldb"] = {
                "backend": cfg.sqldb_backend,
                "sources": sqldb_sources,
                "inspection": self.sqldb.state(),
            }
        if self.filedrop is not None:
            doc["filedrop"] = {
                "root": str(self.filedrop.root),
                "sources": filedrop_sources,
                "inspection": self.filedrop.state(),
            }
        return doc


@contextlib.contextmanager
def running_sandbox(
    config: SandboxConfig | dict[str, Any] | None = None, *, world: Any = None
) -> Iterator[Sandbox]:
    """Start the configured simulators in this process; stop them on exit.

    ``config``: a :class:`SandboxConfig`, a mapping in the YAML structure, or None (the
    repository's config/sandbox.yaml, i.e. the fixed default ports). ``world``: a ready
    ``sandbox.world.World`` (e.g. ``World.from_records(...)``) to serve instead of generating one
    from seed and size.
    """
    if config is None:
        cfg = load_config()
    elif isinstance(config, dict):
        cfg = config_from_mapping(config)
    else:
        cfg = config
    sb = Sandbox(cfg, world=world)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


# ---- command line ------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sandbox.server", description="tthc-sync sandbox simulators")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", help="YAML config (default: config/sandbox.yaml of the repository)")
        sp.add_argument("--state-dir", help="pidfile, state file and log directory")

    def run_options(sp: argparse.ArgumentParser) -> None:
        common(sp)
        sp.add_argument("--seed", type=int)
        sp.add_argument("--size", type=int)
        sp.add_argument("--anchor", help="ISO date-time: the world's clock at start")
        sp.add_argument("--only", help=f"comma-separated simulators to run ({','.join(SIMULATORS)})")
        sp.add_argument(
            "--preset", choices=PRESETS, help="generated World: default (one igate source) or demo"
        )
        for name in DEFAULT_PORTS:
            sp.add_argument(f"--{name}-port", type=int, dest=f"{name}_port")
        sp.add_argument("--citizens-csv", help="population registry fixture (world.md §7)")
        sp.add_argument("--portal-dossiers", help="portal fixture: JSON list of dossier payloads")
        sp.add_argument(
            "--igate-dossiers", help="igate fixture: JSON list of Dossier.to_dict() (+ visible_at)"
        )
        sp.add_argument("--onegate-dossiers", help="onegate fixture: JSON list as for --igate-dossiers")
        sp.add_argument("--sqldb-dossiers", help="sqldb fixture: JSON list as for --igate-dossiers")
        sp.add_argument("--sqldb-backend", choices=SQLDB_BACKENDS, help="where the ho_so_tthc views live")
        sp.add_argument("--mariadb-url", help="MariaDB server URL for --sqldb-backend mariadb")
        sp.add_argument(
            "--filedrop-csv",
            action="append",
            default=[],
            metavar="[SOURCE_ID=]CSV",
            help="canonical CSV (world.md §4, UTF-8) copied into the source's drop folder",
        )
        sp.add_argument("--filedrop-folder", help="root of the file drop folders")
        sp.add_argument("--smtp-folder", help="where the SMTP sink writes .eml files")
        sp.add_argument("--token-seconds", type=float, help="igate token lifetime")
        sp.add_argument("--session-seconds", type=float, help="portal session lifetime")
        sp.add_argument("--rate-limit", type=float, help="population requests/second per MaTichHop")
        sp.add_argument("--bulk-delay", type=float, help="population bulk processing delay (s)")
        sp.add_argument(
            "--fault",
            action="append",
            default=[],
            metavar="SIM=JSON",
            help="fault profile, e.g. portal='{\"commit_lost\": 0.2}' or igate=@faults.json",
        )

    sp = sub.add_parser("start", help="start in the background; return when every port answers")
    run_options(sp)
    sp.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the ports")
    sp = sub.add_parser("run", help="run in the foreground")
    run_options(sp)
    sp = sub.add_parser("stop", help="stop the sandbox of the pidfile and wait")
    common(sp)
    sp.add_argument("--wait", type=float, default=20.0)
    sp = sub.add_parser("status", help="print the state file of a running sandbox")
    common(sp)
    return p


def _config_from_args(args: argparse.Namespace) -> SandboxConfig:
    cfg = load_config(args.config)
    cfg = copy.deepcopy(cfg)
    if getattr(args, "state_dir", None):
        cfg.state_dir = Path(args.state_dir)
    for attr in ("seed", "size"):
        v = getattr(args, attr, None)
        if v is not None:
            setattr(cfg, attr, v)
    if getattr(args, "anchor", None):
        cfg.anchor = _anchor(args.anchor)
    if getattr(args, "only", None):
        cfg.simulators = tuple(s.strip() for s in args.only.split(",") if s.strip())
    for name in DEFAULT_PORTS:
        v = getattr(args, f"{name}_port", None)
        if v is not None:
            cfg.ports[name] = v
    simple = {
        "citizens_csv": ("citizens_csv", Path),
        "portal_dossiers": ("portal_dossiers_json", Path),
        "igate_dossiers": ("igate_dossiers_json", Path),
        "onegate_dossiers": ("onegate_dossiers_json", Path),
        "sqldb_dossiers": ("sqldb_dossiers_json", Path),
        "sqldb_backend": ("sqldb_backend", str),
        "mariadb_url": ("mariadb_url", str),
        "filedrop_folder": ("filedrop_folder", Path),
        "preset": ("preset", str),
        "smtp_folder": ("smtp_folder", Path),
        "token_seconds": ("token_seconds", float),
        "session_seconds": ("session_seconds", float),
        "rate_limit": ("rate_limit_per_second", float),
        "bulk_delay": ("bulk_delay_seconds", float),
    }
    for arg, (attr, conv) in simple.items():
        v = getattr(args, arg, None)
        if v is not None:
            setattr(cfg, attr, conv(v))
    for spec in getattr(args, "filedrop_csv", None) or []:
        cfg.filedrop_fixtures.append(_filedrop_fixture(spec))
    for spec in getattr(args, "fault", None) or []:
        name, _, text = spec.partition("=")
        if name not in HTTP_SIMULATORS or not text:
            raise ValueError(f"--fault {spec!r}: expected SIM=JSON with SIM in {', '.join(HTTP_SIMULATORS)}")
        if text.startswith("@"):
            text = Path(text[1:]).read_text(encoding="utf-8")
        cfg.faults[name] = FaultProfile.from_dict(json.loads(text))
    cfg.__post_init__()
    return cfg


def _state_dir(args: argparse.Namespace) -> Path:
    if getattr(args, "state_dir", None):
        return Path(args.state_dir)
    return load_config(args.config).state_dir


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _read_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / PIDFILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_sandbox_process(pid: int) -> bool:
    """Alive and running this module (guards against a stale pidfile naming someone else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"sandbox.server" in cmdline and b" run" in cmdline


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _config_from_args(args)
    state_dir = cfg.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sb = Sandbox(cfg)
    sb.start()
    # The World (millions of small long-lived objects at national volume: 1.5 million for
    # 200,000 dossiers) never becomes garbage while the process serves: move it out of the cyclic
    # collector's view, or every full collection that request churn triggers walks all of it
    # again (0.75 s per pass at 200,000 dossiers, measured; a pass grows with the World).
    gc.freeze()
    try:
        (state_dir / PIDFILE).write_text(f"{os.getpid()}\n")
        _write_private(state_dir / STATEFILE, json.dumps(sb.state_document(), ensure_ascii=False, indent=2))
        print(f"sandbox running: {json.dumps(sb.urls)} smtp={sb.ports.get('smtp')}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sb.stop()
        for name in (STATEFILE, PIDFILE):
            with contextlib.suppress(FileNotFoundError):
                (state_dir / name).unlink()
        print("sandbox stopped", flush=True)
    return 0


def cmd_start(args: argparse.Namespace, argv: list[str]) -> int:
    cfg = _config_from_args(args)  # validate before forking
    state_dir = cfg.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    old = _read_pid(state_dir)
    if old is not None and _is_sandbox_process(old):
        print(f"sandbox already running (pid {old}); stop it first", file=sys.stderr)
        return 1
    for name in (STATEFILE, PIDFILE):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()
    run_argv = [a for a in argv if a != "start"]
    # drop --wait (start only) and pin the state dir to an absolute path
    cleaned: list[str] = []
    skip = False
    for a in run_argv:
        if skip:
            skip = False
            continue
        if a == "--wait":
            skip = True
            continue
        if a.startswith("--wait="):
            continue
        cleaned.append(a)
    cmd = [sys.executable, "-m", "sandbox.server", "run", *cleaned, "--state-dir", str(state_dir)]
    logf = open(state_dir / LOGFILE, "ab")  # noqa: SIM115 - handed to the child
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    logf.close()
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(f"sandbox exited with {proc.returncode}; see {state_dir / LOGFILE}", file=sys.stderr)
            return 1
        state_file = state_dir / STATEFILE
        if state_file.exists():
            try:
                doc = json.loads(state_file.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                doc = None
            if doc and doc.get("pid") == proc.pid and all(_port_answers(p) for p in doc["ports"].values()):
                print(
                    json.dumps(
                        {
                            "pid": proc.pid,
                            "urls": doc["urls"],
                            "ports": doc["ports"],
                            "state_file": str(state_file),
                        }
                    )
                )
                return 0
        time.sleep(0.1)
    print(f"sandbox did not answer within {args.wait:.0f} s; stopping it", file=sys.stderr)
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    return 1


def cmd_stop(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    pid = _read_pid(state_dir)
    if pid is None:
        print("no sandbox pidfile; nothing to stop")
        return 0
    if not _is_sandbox_process(pid):
        print(f"pid {pid} is not a running sandbox; removing stale files")
        for name in (STATEFILE, PIDFILE):
            with contextlib.suppress(FileNotFoundError):
                (state_dir / name).unlink()
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if not _is_sandbox_process(pid):
            print(f"sandbox (pid {pid}) stopped")
            return 0
        time.sleep(0.1)
    print(f"sandbox (pid {pid}) did not stop within {args.wait:.0f} s", file=sys.stderr)
    return 1


def cmd_status(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    pid = _read_pid(state_dir)
    if pid is None or not _is_sandbox_process(pid):
        print("sandbox not running")
        return 3
    doc = json.loads((state_dir / STATEFILE).read_text(encoding="utf-8"))
    print(json.dumps({"pid": pid, "urls": doc.get("urls"), "ports": doc.get("ports")}))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "start":
            return cmd_start(args, argv)
        if args.command == "stop":
            return cmd_stop(args)
        return cmd_status(args)
    except (ValueError, OSError) as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
