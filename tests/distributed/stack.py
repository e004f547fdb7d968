"""A whole CeleryExecutor deployment on this machine, as separate processes: the harness of
``tests/distributed`` (and of ``scripts/celery_stack.py``).

It is the topology of ``docker/compose.yaml`` without containers: PostgreSQL (a fresh Airflow
metadata database and a fresh warehouse), Redis as the Celery broker, the sandbox, and
``airflow api-server``, ``scheduler``, ``dag-processor``, ``celery worker`` (and optionally
``triggerer``), each its own process with its own log file::

    from stack import StackOptions, airflow_stack

    with airflow_stack(tmp_path, StackOptions(size=120)) as stack:
        stack.unpause("tthc_source_igate_tinh")
        run_id = stack.trigger("tthc_source_igate_tinh")
        state = stack.wait_for_run("tthc_source_igate_tinh", run_id)
        stack.world.expected("igate_tinh")          # ground truth of the sandbox's world
        stack.portal_state(), stack.warehouse_engine()
    stack.leftovers                                 # [] : every process it started is gone

A crash test kills a component and starts it again: ``stack.kill_service("celery-worker")``
(SIGKILL to its process group and to the groups of everything it started, e.g. the task runner)
then ``stack.restart_service("celery-worker")`` (same command, environment and log; waits until
the new worker is ready).

What it guarantees:
* Nothing shared is touched: databases have unique names and are dropped on exit; Celery tasks go
  through a queue of their own on the broker database ``broker_db`` (not 0); the worker has its
  own Celery node name; every port is a free one on 127.0.0.1 (the worker's, scheduler's and
  triggerer's log servers, which would listen on every interface, are not started: all
  processes share one ``AIRFLOW_HOME``, so the API server reads task logs from the files).
* Everything started is stopped, even on failure: SIGTERM to each process (the API server last),
  SIGKILL to it and its descendants after a grace period; then psutil checks that no process of
  the stack is left (``stack.leftovers``). A process counts as the stack's only if it carries the
  stack's id in its environment (:data:`MARKER`), so nothing else is ever signalled.
* The environment is the one a deployment has: connections are ``AIRFLOW_CONN_*`` variables built
  from the sandbox's state file by ``tthc.demo.connection_env``, exactly as the demo does; every
  component gets the same JWT secret and the execution API URL.
* Scheduling by cron is off by default (``use_job_schedule=False``): unpausing a DAG whose cron
  tick has passed would otherwise start a scheduled run next to the one the test triggers.
  Pass ``use_job_schedule=True`` to test schedules (e.g. the lateness watchdog).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class StackError(RuntimeError):
    """The stack could not be brought up, or a wait ran out; the message carries the log tails."""


# ---- options ---------------------------------------------------------------------------------------
@dataclass
class StackOptions:
    #: world of the sandbox; None → config/sandbox.yaml's seed and size
    seed: int | None = None
    size: int | None = None
    #: the world's "now" (naive Vietnam time); None → a few minutes before now, seconds zeroed
    anchor: datetime | None = None
    pg_host: str = HOST
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_password: str | None = None
    redis_host: str = HOST
    redis_port: int = 6379
    #: Redis database of the Celery broker: not 0, which other tools on this machine use
    broker_db: int = 5
    worker_concurrency: int = 2
    triggerer: bool = False
    use_job_schedule: bool = False
    task_retries: int = 0
    #: more variables for every process (override the stack's own)
    extra_env: dict[str, str] = field(default_factory=dict)
    #: seconds each process gets between SIGTERM and SIGKILL
    grace_seconds: float = 30.0
    startup_timeout: float = 120.0
    quiet: bool = False

    def pg_url(self, db: str, driver: str = "postgresql+psycopg") -> str:
        auth = self.pg_user + (f":{self.pg_password}" if self.pg_password else "")
        return f"{driver}://{auth}@{self.pg_host}:{self.pg_port}/{db}"


def prerequisites_missing(opts: StackOptions | None = None) -> str | None:
    """Why the stack cannot run here (PostgreSQL or Redis unreachable), or None."""
    opts = opts or StackOptions()
    import psycopg
    import redis

    try:
        with psycopg.connect(opts.pg_url("postgres", "postgresql"), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as e:  # noqa: BLE001 - any failure means "not usable here"
        return f"PostgreSQL at {opts.pg_host}:{opts.pg_port} unusable: {type(e).__name__}: {e}"
    try:
        redis.Redis(host=opts.redis_host, port=opts.redis_port, db=opts.broker_db, socket_timeout=3).ping()
    except Exception as e:  # noqa: BLE001
        return f"Redis at {opts.redis_host}:{opts.redis_port} unusable: {type(e).__name__}: {e}"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---- processes -------------------------------------------------------------------------------------
#: Every process of a stack carries this variable (inherited by all descendants), valued with the
#: stack's id: only a process that carries it is ever signalled, so a pid that was reused by someone
#: else's process (pid_max is small on these machines) is never touched.
MARKER = "TTHC_AIRFLOW_STACK_ID"


def carries_marker(p: psutil.Process, uid: str) -> bool:
    try:
        return p.environ().get(MARKER) == uid
    except (psutil.Error, OSError):
        return False


def marked_processes(uid: str) -> list[psutil.Process]:
    """Every live process of the stack ``uid``, wherever it ended up."""
    out = []
    for p in psutil.process_iter():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and carries_marker(p, uid):
                out.append(p)
        except psutil.Error:
            continue
    return out


@dataclass
class Service:
    """One process of the stack, in its own session (so its children can be found and stopped)."""

    name: str
    argv: list[str]
    log_path: Path
    uid: str
    proc: subprocess.Popen | None = None
    known: set[int] = field(default_factory=set)  # pids of it and every descendant seen

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, env: dict[str, str], cwd: Path) -> None:
        assert env.get(MARKER) == self.uid
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.known.add(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def snapshot(self) -> None:
        """Remember every current descendant (they may leave the process group, never our notice)."""
        if not self.alive():
            return
        with contextlib.suppress(psutil.Error):
            self.known.update(c.pid for c in psutil.Process(self.pid).children(recursive=True))

    def members(self) -> list[psutil.Process]:
        """Live processes of this service: in its session or seen as its descendants, and marked."""
        if self.proc is None:
            return []
        out = []
        for p in psutil.process_iter():
            try:
                if (
                    p.pid in self.known or os.getsid(p.pid) == self.pid
                ) and p.status() != psutil.STATUS_ZOMBIE:
                    if carries_marker(p, self.uid):
                        out.append(p)
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        return out

    def terminate(self) -> None:
        self.snapshot()
        if self.alive():  # Popen has not reaped it: the pid is still this process
            self.proc.terminate()

    def wait(self, deadline: float) -> bool:
        """Wait for the main process and its descendants to go; True when everything is gone."""
        while time.monotonic() < deadline:
            if not self.alive() and not self.members():
                return True
            time.sleep(0.2)
        return not self.alive() and not self.members()

    def kill(self) -> None:
        for p in self.members():
            with contextlib.suppress(psutil.Error):
                p.kill()
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)


# ---- personal data in logs -------------------------------------------------------------------------
_DIGIT_RUN = re.compile(r"\d{9,}")


def scrub(text: str) -> str:
    """Mask long digit runs (citizen ID numbers) before a log line is printed anywhere."""
    return _DIGIT_RUN.sub(lambda m: "#" * len(m.group()), text)


def tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(cannot read {path}: {e})"
    return scrub("\n".join(data.splitlines()[-lines:]))


# ---- the stack -------------------------------------------------------------------------------------
@dataclass
class AirflowStack:
    """A running stack (see the module docstring). Built by :func:`airflow_stack`."""

    root: Path
    options: StackOptions
    uid: str
    env: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)  # role → database name
    queue: str = ""
    api_port: int = 0
    scheduler_health_port: int = 0
    sandbox_state: dict[str, Any] = field(default_factory=dict)
    sandbox_pid: int | None = None
    seed: int = 42
    size: int = 400
    anchor: datetime | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: processes that outlived SIGTERM + grace (then killed) or were still there at the end
    leftovers: list[str] = field(default_factory=list)
    #: databases or broker keys that could not be removed
    cleanup_errors: list[str] = field(default_factory=list)
    _world: Any = None
    _token: str | None = None
    _http: requests.Session = field(default_factory=requests.Session)

    # ---- paths and URLs ----------------------------------------------------------------------------
    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def sandbox_dir(self) -> Path:
        return self.root / "sandbox-state"

    @property
    def work_dir(self) -> Path:
        """The processes' working directory: empty, so no folder in it can shadow a package name
        for ``python -m`` (it comes first on sys.path)."""
        return self.root / "cwd"

    @property
    def celery_node_prefix(self) -> str:
        """The worker's Celery node is ``<this>@<hostname>`` (unique per stack)."""
        return f"tthc-{self.uid}"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    @property
    def warehouse_url(self) -> str:
        return self.options.pg_url(self.databases["warehouse"])

    @property
    def metadata_url(self) -> str:
        return self.options.pg_url(self.databases["metadata"])

    # ---- timing and output ------------------------------------------------------------------------
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(time.monotonic() - t0, 1)
            self.say(f"{name}: {self.timings[name]:.1f} s")

    def say(self, msg: str) -> None:
        if not self.options.quiet:
            print(f"[airflow-stack] {msg}", flush=True)

    def log_files(self) -> list[Path]:
        """Every log the stack produced: process logs, the sandbox's, Airflow's task logs."""
        files = sorted(self.log_dir.glob("*.log"))
        files += sorted(self.sandbox_dir.glob("*.log"))
        files += sorted(p for p in (self.airflow_home / "logs").rglob("*") if p.is_file())
        return files

    def log_tails(self, lines: int = 40) -> str:
        """The end of every process log and task log, digit runs masked (for failure reports)."""
        parts = []
        for path in self.log_files():
            rel = path.relative_to(self.root)
            parts.append(f"----- {rel} (last {lines} lines) -----\n{tail(path, lines)}")
        return "\n".join(parts)

    def fail(self, msg: str) -> StackError:
        # airflow_stack prints the log tails when the error leaves the block
        return StackError(f"{msg} (log tails printed above, logs under {self.root})")

    def check_alive(self) -> None:
        for s in self.services.values():
            if not s.alive():
                code = s.proc.returncode if s.proc else None
                raise self.fail(f"{s.name} exited early (code {code})")

    # ---- ground truth and external state -----------------------------------------------------------
    @property
    def world(self) -> Any:
        """The same World the sandbox serves (same seed, size, anchor), built in this process."""
        if self._world is None:
            from sandbox.world import World, WorldConfig

            self._world = World(WorldConfig(seed=self.seed, size=self.size, anchor=self.anchor))
        return self._world

    def portal_state(self) -> dict[str, Any]:
        r = requests.get(f"{self.sandbox_state['urls']['portal']}/_sandbox/state", timeout=10)
        r.raise_for_status()
        return r.json()

    def warehouse_engine(self):
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        return sa.create_engine(self.warehouse_url, poolclass=NullPool)

    def source_dag_ids(self) -> list[str]:
        """The DAGs of registry sources the sandbox serves (what ``connection_env`` has connections for)."""
        from tthc.registry import DEFAULT_REGISTRY, load_registry

        served = {s["source_id"] for s in self.sandbox_state.get("sources", [])}
        reg = load_registry(self.env.get("TTHC_REGISTRY") or DEFAULT_REGISTRY)
        from tthc.timeutil import vn_now

        today = vn_now().date()
        return [s.dag_id for s in reg.sources if s.source_id in served and s.is_current(today)]

    # ---- crashing a process and starting it again (tests of recovery) --------------------------------
    def kill_service(self, name: str) -> list[str]:
        """SIGKILL the service ``name`` and everything it started, all at once: its own process
        group and the groups of its descendants (Airflow's task runner, forked by the worker's
        supervisor, is put in a process group of its own).

        Which processes: the service's main process, its descendants, and anything else in its
        session, collected while the main process is alive (so its pid, the session id, cannot
        belong to anyone else). The stack's marker is not required here: Celery and Airflow retitle
        their processes (setproctitle), which overwrites what ``/proc/<pid>/environ`` shows.
        Returns ``"pid pgid title"`` of each process killed, for the test's report."""
        s = self.services[name]
        if not s.alive():
            raise self.fail(f"{name} is not running")
        main = psutil.Process(s.pid)
        procs = [main, *main.children(recursive=True)]
        seen = {p.pid for p in procs}
        for p in psutil.process_iter():
            with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
                if p.pid not in seen and os.getsid(p.pid) == s.pid:
                    procs.append(p)
                    seen.add(p.pid)
        found: list[str] = []
        groups: set[int] = set()
        for p in procs:
            with contextlib.suppress(ProcessLookupError, psutil.Error):
                pgid = os.getpgid(p.pid)
                groups.add(pgid)
                found.append(f"{p.pid} pgid={pgid} {' '.join(p.cmdline())[:90]}")
        for g in sorted(groups):  # groups of the service's session: nobody else's process is in one
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(g, signal.SIGKILL)
        for p in procs:  # anything that changed group in between
            with contextlib.suppress(psutil.Error):
                p.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            s.proc.wait(10)  # type: ignore[union-attr]
        deadline = time.monotonic() + 10
        alive = procs
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if _running(p)]
            time.sleep(0.1)
        if alive:
            raise self.fail(f"{name} survived SIGKILL: {[_describe(p) for p in alive]}")
        self.say(f"killed {name} (SIGKILL, {len(found)} processes): {'; '.join(found)}")
        return found

    def restart_service(self, name: str) -> Service:
        """Start a killed (or stopped) service again with the same command, environment and log
        file; for the Celery worker, wait until it is ready."""
        old = self.services[name]
        if old.alive() or old.members():
            raise self.fail(f"{name} still runs; kill it first")
        offset = old.log_path.stat().st_size if old.log_path.exists() else 0
        new = Service(name, old.argv, old.log_path, self.uid)
        new.start(self.env, self.work_dir)
        self.services[name] = new
        self.say(f"restarted {name}: pid {new.pid}")
        if name == "celery-worker":
            _wait_worker_ready(self, since=offset)
        return new

    # ---- REST API ----------------------------------------------------------------------------------
    def token(self, refresh: bool = False) -> str:
        if self._token and not refresh:
            return self._token
        pw_file = self.airflow_home / "simple_auth_manager_passwords.json.generated"
        passwords = json.loads(pw_file.read_text(encoding="utf-8"))
        r = self._http.post(
            f"{self.api_url}/auth/token",
            json={"username": "tthc", "password": passwords["tthc"]},
            timeout=30,
        )
        if r.status_code not in (200, 201):
            raise self.fail(f"POST /auth/token → {r.status_code}")
        self._token = r.json()["access_token"]
        return self._token

    def api(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> Any:
        """Call the REST API (``/api/v2/...``) with a bearer token; :class:`StackError` if not ``ok``."""
        for attempt in (1, 2):
            r = self._http.request(
                method,
                f"{self.api_url}{path}",
                json=json_body,
                params=params,
                headers={"Authorization": f"Bearer {self.token(refresh=attempt == 2)}"},
                timeout=30,
            )
            if r.status_code == 401 and attempt == 1:
                continue
            if r.status_code not in ok:
                raise StackError(f"{method} {path} → {r.status_code}: {scrub(r.text[:500])}")
            return r.json() if r.content else None
        raise AssertionError("unreachable")

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 90.0) -> None:
        """Until the DAG processor has stored every DAG (fails at once on an import error)."""
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while time.monotonic() < deadline:
            self.check_alive()
            errors = self.api("GET", "/api/v2/importErrors").get("import_errors") or []
            if errors:
                text = "; ".join(f"{e.get('filename')}: {e.get('stack_trace', '')[-600:]}" for e in errors)
                raise self.fail(f"DAG import errors: {scrub(text)}")
            missing = [d for d in missing if not self._dag_exists(d)]
            if not missing:
                return
            time.sleep(1)
        raise self.fail(f"DAGs not registered within {timeout:.0f} s: {missing}")

    def _dag_exists(self, dag_id: str) -> bool:
        try:
            self.api("GET", f"/api/v2/dags/{dag_id}")
            return True
        except StackError:
            return False

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json_body={"is_paused": False})

    def trigger(self, dag_id: str, *, run_after: datetime | None = None, conf: dict | None = None) -> str:
        """Trigger a manual run; returns its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_after is not None:
            body["run_after"] = run_after.isoformat()
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json_body=body)["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180.0, poll: float = 1.0) -> str:
        """Poll until the run is ``success`` or ``failed``; returns that state."""
        deadline = time.monotonic() + timeout
        state = "?"
        while time.monotonic() < deadline:
            self.check_alive()
            state = self.run_state(dag_id, run_id)
            if state in TERMINAL_RUN_STATES:
                return state
            time.sleep(poll)
        raise self.fail(
            f"run {run_id} of {dag_id} still {state} after {timeout:.0f} s; "
            f"tasks: {self.task_states(dag_id, run_id)}"
        )


# ---- bring-up ---------------------------------------------------------------------------------------
def _pg_admin(opts: StackOptions, sql: str) -> None:
    import psycopg

    with psycopg.connect(opts.pg_url("postgres", "postgresql"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def _create_databases(stack: AirflowStack) -> None:
    for role in ("metadata", "warehouse"):
        name = f"tthc_{stack.uid}_{'af' if role == 'metadata' else 'wh'}"
        _pg_admin(stack.options, f'CREATE DATABASE "{name}"')
        stack.databases[role] = name


def _drop_databases(stack: AirflowStack) -> None:
    for name in stack.databases.values():
        try:
            _pg_admin(stack.options, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception as e:  # noqa: BLE001 - report, keep cleaning up
            stack.cleanup_errors.append(f"database {name} not dropped: {e}")


def _clean_broker(stack: AirflowStack) -> None:
    """Remove this stack's queue from the broker database (shared keys are left alone)."""
    import redis

    try:
        r = redis.Redis(
            host=stack.options.redis_host, port=stack.options.redis_port, db=stack.options.broker_db
        )
        keys = [k for k in r.scan_iter(match=f"*{stack.queue}*")]
        if keys:
            r.delete(*keys)
    except Exception as e:  # noqa: BLE001
        stack.cleanup_errors.append(f"broker keys of {stack.queue} not removed: {e}")


def _base_env(stack: AirflowStack) -> dict[str, str]:
    """The process environment: ours, without any AIRFLOW*/TTHC_* inherited from the caller."""
    from cryptography.fernet import Fernet

    opts = stack.options
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TTHC_"))}
    env[MARKER] = stack.uid
    jwt_secret = secrets.token_hex(32)
    broker = f"redis://{opts.redis_host}:{opts.redis_port}/{opts.broker_db}"
    env.update(
        {
            "AIRFLOW_HOME": str(stack.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{stack.api_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "tthc:admin",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": stack.metadata_url,
            "AIRFLOW__API__BASE_URL": f"http://{HOST}:{stack.api_port}",
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(stack.api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            # one secret for every component, or tasks fail with "Invalid auth token"
            "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + opts.pg_url(stack.databases["metadata"], "postgresql"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(opts.worker_concurrency),
            # Airflow's Celery settings plus the project's preload (tthc.celery_config), as compose.yaml
            "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "tthc.celery_config.CELERY_CONFIG",
            # a queue of our own: two stacks on one broker database never take each other's tasks
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": stack.queue,
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(opts.use_job_schedule),
            # the health endpoint compose.yaml's scheduler health check calls, on loopback only
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": HOST,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(stack.scheduler_health_port),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PYTHONWARNINGS": "ignore",
            # `airflow`, `celery`, `python` of this interpreter first, however the tests were started
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "TTHC_WAREHOUSE_URL": stack.warehouse_url,
            "TTHC_TASK_RETRIES": str(opts.task_retries),
            "TTHC_PII_HASH_KEY": secrets.token_hex(16),
        }
    )
    return env


def _start_sandbox(stack: AirflowStack) -> None:
    from sandbox.server import load_config
    from tthc.timeutil import vn_now

    cfg = load_config()
    opts = stack.options
    stack.seed = opts.seed if opts.seed is not None else cfg.seed
    stack.size = opts.size if opts.size is not None else cfg.size
    # the world's "now" is this moment, so a run judges open dossiers at the right time (as the demo)
    stack.anchor = opts.anchor or (vn_now().replace(second=0) - timedelta(minutes=5))
    stack.sandbox_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "sandbox.server", "start", "--state-dir", str(stack.sandbox_dir)]
    argv += ["--seed", str(stack.seed), "--size", str(stack.size), "--anchor", stack.anchor.isoformat()]
    argv += ["--smtp-folder", str(stack.sandbox_dir / "mail")]
    for name in sorted(cfg.ports):  # every simulator with a port: a free one
        argv += [f"--{name}-port", "0"]
    if getattr(cfg, "preset", "default") != "default":
        argv += ["--preset", "default"]  # the world of `stack.world`: WorldConfig(seed, size, anchor)
    out = subprocess.run(
        argv, cwd=REPO, env=stack.env, capture_output=True, text=True, timeout=opts.startup_timeout
    )
    if out.returncode != 0:
        raise stack.fail(f"sandbox did not start (code {out.returncode}): {scrub(out.stderr[-2000:])}")
    stack.sandbox_pid = int(json.loads(out.stdout.strip().splitlines()[-1])["pid"])
    stack.sandbox_state = json.loads((stack.sandbox_dir / "state.json").read_text(encoding="utf-8"))
    world = stack.sandbox_state.get("world") or {}
    if (world.get("seed"), world.get("size"), world.get("anchor")) != (
        stack.seed,
        stack.size,
        stack.anchor.isoformat(),
    ):
        raise stack.fail(f"the sandbox serves another world than asked: {world}")


def _sandbox_process(stack: AirflowStack) -> psutil.Process | None:
    """The sandbox server, if it still runs (and is ours: it carries the stack's marker)."""
    if stack.sandbox_pid is None:
        return None
    try:
        p = psutil.Process(stack.sandbox_pid)
        if p.status() != psutil.STATUS_ZOMBIE and carries_marker(p, stack.uid):
            return p
    except psutil.Error:
        pass
    return None


def _stop_sandbox(stack: AirflowStack) -> None:
    if _sandbox_process(stack) is None:
        return
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "sandbox.server", "stop", "--state-dir", str(stack.sandbox_dir)],
        cwd=REPO,
        env=stack.env,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + stack.options.grace_seconds
    while time.monotonic() < deadline and _sandbox_process(stack) is not None:
        time.sleep(0.2)
    p = _sandbox_process(stack)
    if p is not None:
        stack.leftovers.append(f"sandbox (pid {p.pid}) ignored SIGTERM; killed")
        with contextlib.suppress(psutil.Error):
            p.kill()
    else:
        stack.timings["stop sandbox"] = round(time.monotonic() - t0, 1)


def _connections(stack: AirflowStack) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` from the sandbox state, by the demo's own function, for the stack's registry."""
    from tthc.demo import connection_env
    from tthc.registry import DEFAULT_REGISTRY

    saved = os.environ.get("TTHC_REGISTRY")
    os.environ["TTHC_REGISTRY"] = stack.env.get("TTHC_REGISTRY") or str(DEFAULT_REGISTRY)
    try:
        return connection_env(stack.sandbox_state)
    finally:
        if saved is None:
            os.environ.pop("TTHC_REGISTRY", None)
        else:
            os.environ["TTHC_REGISTRY"] = saved


def _airflow(stack: AirflowStack, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "airflow"), *args]


def _define_services(stack: AirflowStack) -> None:
    opts = stack.options
    node = f"{stack.celery_node_prefix}@%h"
    specs: list[tuple[str, list[str]]] = [
        (
            "api-server",
            _airflow(stack, "api-server", "--host", HOST, "--port", str(stack.api_port), "-w", "1"),
        ),
        ("scheduler", _airflow(stack, "scheduler", "--skip-serve-logs")),
        ("dag-processor", _airflow(stack, "dag-processor")),
        (
            "celery-worker",
            _airflow(
                stack,
                "celery",
                "worker",
                "--concurrency",
                str(opts.worker_concurrency),
                "--queues",
                stack.queue,
                "--celery-hostname",
                node,
                "--skip-serve-logs",
                "--without-mingle",
                "--without-gossip",
            ),
        ),
    ]
    if opts.triggerer:
        specs.append(("triggerer", _airflow(stack, "triggerer", "--skip-serve-logs")))
    for name, argv in specs:
        stack.services[name] = Service(name, argv, stack.log_dir / f"{name}.log", stack.uid)


def _wait_healthy(stack: AirflowStack) -> None:
    deadline = time.monotonic() + stack.options.startup_timeout
    want = ["metadatabase", "scheduler", "dag_processor"] + (["triggerer"] if stack.options.triggerer else [])
    last: Any = None
    while time.monotonic() < deadline:
        stack.check_alive()
        try:
            last = requests.get(f"{stack.api_url}/api/v2/monitor/health", timeout=5).json()
            if all((last.get(k) or {}).get("status") == "healthy" for k in want):
                return
        except (requests.RequestException, ValueError):
            pass
        for s in stack.services.values():
            s.snapshot()
        time.sleep(0.5)
    raise stack.fail(f"not healthy within {stack.options.startup_timeout:.0f} s: {last}")


def _wait_worker_ready(stack: AirflowStack, since: int = 0) -> None:
    """Until the worker's log (from byte ``since``) says its Celery node is ready."""
    worker = stack.services["celery-worker"]
    deadline = time.monotonic() + stack.options.startup_timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        with open(worker.log_path, "rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", errors="replace")
        if re.search(rf"{stack.celery_node_prefix}@\S+ ready", text):
            worker.snapshot()
            return
        time.sleep(0.5)
    raise stack.fail(f"celery worker not ready within {stack.options.startup_timeout:.0f} s")


def _stop_services(stack: AirflowStack) -> None:
    """Everything but the API server at once (the worker's warm shutdown still reports the state of
    a running task through the execution API), then the API server."""
    order = [["scheduler", "dag-processor", "triggerer", "celery-worker"], ["api-server"]]
    for group in order:
        services = [stack.services[n] for n in group if n in stack.services]
        for s in services:
            s.terminate()
        t0 = time.monotonic()
        deadline = t0 + stack.options.grace_seconds
        pending = {s.name: s for s in services}
        while pending and time.monotonic() < deadline:
            for name, s in list(pending.items()):
                if not s.alive() and not s.members():
                    stack.timings[f"stop {name}"] = round(time.monotonic() - t0, 1)
                    del pending[name]
            time.sleep(0.2)
        for s in pending.values():
            left = ", ".join(_describe(p) for p in s.members())
            stack.leftovers.append(
                f"{s.name} still running {stack.options.grace_seconds:.0f} s after SIGTERM ({left}); "
                f"killed. Its log ends:\n{tail(s.log_path, 15)}"
            )
            s.kill()


def _running(p: psutil.Process) -> bool:
    """Still there and not a zombie (``is_running`` also tells a reused pid apart)."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _describe(p: psutil.Process) -> str:
    try:
        return f"{p.pid} {p.status()} {' '.join(p.cmdline()[:4])}"
    except psutil.Error:
        return f"{p.pid} (gone)"


def _check_gone(stack: AirflowStack) -> None:
    """Nothing of the stack may survive: every process carrying its marker is reported and killed."""
    left = marked_processes(stack.uid)
    if left:
        stack.leftovers.append("processes left behind: " + ", ".join(_describe(p) for p in left))
        for p in left:
            with contextlib.suppress(psutil.Error):
                p.kill()


@contextlib.contextmanager
def airflow_stack(root: str | Path, options: StackOptions | None = None) -> Iterator[AirflowStack]:
    """Bring the whole stack up under ``root`` (a fresh directory); tear it down on exit.

    On any failure inside the block or during bring-up, the tails of every log are printed (digit
    runs masked). After exit ``stack.leftovers`` lists anything that had to be killed or could not
    be cleaned; a leftover process raises :class:`StackError` when the block itself succeeded.
    """
    opts = options or StackOptions()
    uid = uuid.uuid4().hex[:10]
    stack = AirflowStack(root=Path(root), options=opts, uid=uid, queue=f"tthc_q_{uid}")
    for d in (stack.airflow_home, stack.log_dir, stack.sandbox_dir, stack.work_dir):
        d.mkdir(parents=True, exist_ok=True)
    t_all = time.monotonic()
    failed = True
    try:
        with stack.phase("databases"):
            _create_databases(stack)
        stack.api_port = free_port()
        stack.scheduler_health_port = free_port()
        stack.env = _base_env(stack)
        stack.env.update(opts.extra_env)
        with stack.phase("sandbox"):
            _start_sandbox(stack)
        stack.env.update(_connections(stack))
        stack.env.update(opts.extra_env)
        with stack.phase("airflow db migrate"):
            with open(stack.log_dir / "db-migrate.log", "wb") as log:
                rc = subprocess.run(
                    _airflow(stack, "db", "migrate"),
                    env=stack.env,
                    cwd=stack.work_dir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=opts.startup_timeout,
                ).returncode
            if rc != 0:
                raise stack.fail(f"airflow db migrate failed ({rc})")
        with stack.phase("processes healthy"):
            _define_services(stack)
            for s in stack.services.values():
                s.start(stack.env, stack.work_dir)
            stack.say("pids: " + ", ".join(f"{s.name}={s.pid}" for s in stack.services.values()))
            _wait_healthy(stack)
            _wait_worker_ready(stack)
        stack.timings["bring-up"] = round(time.monotonic() - t_all, 1)
        yield stack
        failed = False
    except KeyboardInterrupt:  # asked to stop (Ctrl-C, or SIGTERM turned into it): no failure report
        raise
    except BaseException:
        if stack.log_dir.exists():
            print(f"[airflow-stack] FAILED; log tails under {stack.root}:\n{stack.log_tails()}", flush=True)
        raise
    finally:
        with stack.phase("teardown"):
            stack._http.close()  # an open keep-alive connection slows the API server's shutdown
            for s in stack.services.values():
                s.snapshot()
            _stop_services(stack)
            _stop_sandbox(stack)
            _check_gone(stack)
            _drop_databases(stack)
            if stack.queue:
                _clean_broker(stack)
        stack.timings["total"] = round(time.monotonic() - t_all, 1)
        stack.say(f"timings (s): {json.dumps(stack.timings)}")
        problems = stack.leftovers + stack.cleanup_errors
        if problems:
            stack.say("unclean teardown: " + "; ".join(problems))
    if not failed and (stack.leftovers or stack.cleanup_errors):
        raise StackError("unclean teardown: " + "; ".join(stack.leftovers + stack.cleanup_errors))
