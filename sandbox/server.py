"""Run the sandbox simulators, together or one at a time, in-process or as a process.

In-process (tests)::

    from sandbox.server import SandboxConfig, running_sandbox

    cfg = SandboxConfig.for_tests(tmp_path)          # every port 0, SMTP folder under tmp_path
    with running_sandbox(cfg) as sb:
        sb.urls["igate"], sb.urls["population"], sb.urls["portal"], sb.ports["smtp"]
        sb.world                                       # the shared sandbox.world.World
        sb.igate_sources                               # [{"source_id", "client_id", "client_secret", ...}]
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
     "simulators": ["igate", "population", "portal", "smtp"],
     "urls": {"igate": "http://127.0.0.1:8701", "population": "...", "portal": "..."},
     "ports": {"igate": 8701, "population": 8702, "portal": 8703, "smtp": 8725},
     "sources": [{"source_id", "dialect": "igate", "host", "port", "base_url",
                  "client_id", "client_secret", "agency_codes"}],      # one per served source
     "portal_credentials": {"username", "password"},
     "world": {"seed": 42, "size": 400, "anchor": "2026-11-01T00:00:00", "now": "..."},
     "igate": {"url", "token_url", "dossiers_url", "token_seconds",
               "sources": [{"source_id", "client_id", "client_secret", "agency_codes"}]},
     "population": {"url", "lookup_url", "bulk_url", "status_url", "result_url",
                    "rate_limit_per_second", "bulk_delay_seconds", "registry_size"},
     "portal": {"url", "auth_url", "integration_url", "username", "password", "session_seconds"},
     "smtp": {"host": "127.0.0.1", "port": 8725, "folder": "/abs/path"}}

Only the simulators that run have their section. Configuration: ``config/sandbox.yaml`` (see the
comments there); command-line options override it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
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

from sandbox.common import HOST, HttpServerThread, WorldHolder
from sandbox.faults import FaultProfile
from sandbox.igate import IgateConfig, IgateSimulator, load_dossier_fixture
from sandbox.population import (
    PopulationConfig,
    PopulationSimulator,
    load_citizens_csv,
    registry_from_citizens,
)
from sandbox.portal import PortalConfig, PortalSimulator, load_fixture
from sandbox.smtp_sink import SmtpSink

log = logging.getLogger("sandbox.server")

SIMULATORS = ("igate", "population", "portal", "smtp")
HTTP_SIMULATORS = ("igate", "population", "portal")
DEFAULT_PORTS = {"igate": 8701, "population": 8702, "portal": 8703, "smtp": 8725}
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

    def __post_init__(self) -> None:
        unknown = [s for s in self.simulators if s not in SIMULATORS]
        if unknown:
            raise ValueError(f"unknown simulators: {', '.join(unknown)} (known: {', '.join(SIMULATORS)})")
        for name in self.faults:
            if name not in HTTP_SIMULATORS:
                raise ValueError(f"fault profile for {name!r}: only {', '.join(HTTP_SIMULATORS)} have faults")

    @classmethod
    def for_tests(cls, tmp_dir: str | Path, **overrides: Any) -> SandboxConfig:
        """Every port 0 (free ports), SMTP folder and state dir under ``tmp_dir``, small world."""
        tmp = Path(tmp_dir)
        kw: dict[str, Any] = {
            "ports": dict.fromkeys(SIMULATORS, 0),
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
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"sandbox config: unknown keys {', '.join(unknown)}")
    igate = dict(data.get("igate") or {})
    pop = dict(data.get("population") or {})
    portal = dict(data.get("portal") or {})
    smtp = dict(data.get("smtp") or {})
    ports = dict(DEFAULT_PORTS)
    for k, v in (data.get("ports") or {}).items():
        if k not in DEFAULT_PORTS:
            raise ValueError(f"sandbox config: unknown port {k!r}")
        ports[k] = int(v)
    faults = {}
    for name, section in (("igate", igate), ("population", pop), ("portal", portal)):
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
    )
    return cfg


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
    return World(WorldConfig(**kw))


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
        self._servers: dict[str, HttpServerThread] = {}
        self.started_at: datetime | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> Sandbox:
        cfg = self.config
        sims = set(cfg.simulators)
        try:
            needs_world = "igate" in sims or ("population" in sims and cfg.citizens_csv is None)
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
                self._serve("igate", self.igate.app(), self.igate.injector)
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
        if self.smtp is not None:
            with contextlib.suppress(Exception):
                self.smtp.stop()
            self.smtp = None

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
        sp.add_argument("--only", help="comma-separated simulators to run (igate,population,portal,smtp)")
        for name in SIMULATORS:
            sp.add_argument(f"--{name}-port", type=int, dest=f"{name}_port")
        sp.add_argument("--citizens-csv", help="population registry fixture (world.md §7)")
        sp.add_argument("--portal-dossiers", help="portal fixture: JSON list of dossier payloads")
        sp.add_argument(
            "--igate-dossiers", help="igate fixture: JSON list of Dossier.to_dict() (+ visible_at)"
        )
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
    for name in SIMULATORS:
        v = getattr(args, f"{name}_port", None)
        if v is not None:
            cfg.ports[name] = v
    simple = {
        "citizens_csv": ("citizens_csv", Path),
        "portal_dossiers": ("portal_dossiers_json", Path),
        "igate_dossiers": ("igate_dossiers_json", Path),
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
