"""docker/compose.yaml without a Docker engine: valid against the Compose specification, complete,
and coherent with the product (the topology itself runs natively in tests/distributed).

The schema is the Compose specification's JSON schema, vendored from the ``check-jsonschema``
PyPI package (docker/compose-spec.schema.json, licence beside it); its digest is pinned here so a
hand edit cannot slip in. The file is validated both as written and after interpolation with the
values of docker/.env.example plus generated secrets (what ``docker compose`` does).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from compose_file import (
    COMPOSE,
    DOCKER,
    ENV_EXAMPLE,
    REPO,
    InterpolationError,
    interpolate,
    interpolate_text,
    load,
    read_env_file,
    references,
    strings,
)

SCHEMA = DOCKER / "compose-spec.schema.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"  # check-jsonschema 0.39.0
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
ALL_SERVICES = {"postgres", "redis", "airflow-init", *AIRFLOW_SERVICES, "sandbox", "mailpit"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|JWT|HASH_KEY|TOKEN", re.I)


@pytest.fixture(scope="module")
def raw() -> dict:
    return load()


@pytest.fixture(scope="module")
def make_env():
    spec = importlib.util.spec_from_file_location("tthc_docker_make_env", DOCKER / "make_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def env(make_env) -> dict[str, str]:
    """docker/.env as make_env.py makes it from the example."""
    text = make_env.render(ENV_EXAMPLE.read_text(encoding="utf-8"))
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            out[k] = v
    return out


@pytest.fixture(scope="module")
def doc(raw, env) -> dict:
    return interpolate(raw, env)


def one_shot(svc: dict) -> bool:
    return svc.get("restart") == "no"


# ---- the specification ------------------------------------------------------------------------
def test_vendored_schema_is_the_published_one():
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    assert (DOCKER / "compose-spec.schema.LICENSE").read_text().lstrip().startswith("Apache License")


@pytest.mark.parametrize("which", ["as written", "interpolated"])
def test_valid_against_compose_specification(which, raw, doc):
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(raw if which == "as written" else doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:10])


def test_schema_catches_a_broken_file(raw):
    """The validation is not vacuous: a misspelt key and a bad condition are refused."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    bad = json.loads(json.dumps(raw))
    bad["services"]["redis"]["helthcheck"] = bad["services"]["redis"].pop("healthcheck")
    bad["services"]["airflow-init"]["depends_on"]["postgres"]["condition"] = "healthy"
    errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(bad))
    assert len(errors) >= 2


# ---- topology ---------------------------------------------------------------------------------
def test_every_service_is_there(raw):
    assert set(raw["services"]) == ALL_SERVICES
    for name, command in AIRFLOW_SERVICES.items():
        assert raw["services"][name]["command"] == command
    assert "sandbox.server run" in " ".join(raw["services"]["sandbox"]["command"])
    assert "axllent/mailpit" in raw["services"]["mailpit"]["image"]


def test_health_check_on_every_long_running_service(raw):
    for name, svc in raw["services"].items():
        if one_shot(svc):
            assert "healthcheck" not in svc, f"{name} runs once; a health check means nothing there"
            continue
        hc = svc.get("healthcheck")
        assert hc and not hc.get("disable"), f"{name} has no health check"
        assert hc["test"][0] in ("CMD", "CMD-SHELL") and all(hc["test"][1:]), name
        assert hc.get("interval") and hc.get("timeout") and hc.get("retries"), name


def test_depends_on_waits_for_health(raw):
    services = raw["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must name a condition for each service"
        for target, spec in deps.items():
            assert target in services, f"{name} depends on unknown {target}"
            want = "service_completed_successfully" if one_shot(services[target]) else "service_healthy"
            assert spec["condition"] == want, f"{name} → {target}: {spec['condition']}, want {want}"
            assert "healthcheck" in services[target] or one_shot(services[target])
    # every Airflow component waits for the databases, the broker and the migrations
    for name in ["airflow-init", *AIRFLOW_SERVICES]:
        deps = set(services[name]["depends_on"])
        assert {"postgres", "redis"} <= deps, name
        if name != "airflow-init":
            assert "airflow-init" in deps, name
    # the components that talk to the execution API start once it answers
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker"):
        assert "airflow-apiserver" in services[name]["depends_on"], name


def test_no_dependency_cycle_and_profiles_consistent(raw):
    services = raw["services"]
    graph = {n: set(s.get("depends_on", {})) for n, s in services.items()}
    for n, s in services.items():
        mode = s.get("network_mode", "")
        if mode.startswith("service:"):
            assert mode.split(":", 1)[1] in graph[n], f"{n} shares a network; it must wait for it"
    seen: set[str] = set()
    order: list[str] = []

    def visit(n: str, path: tuple[str, ...]) -> None:
        assert n not in path, f"dependency cycle: {' → '.join((*path, n))}"
        if n in seen:
            return
        for d in graph[n]:
            visit(d, (*path, n))
        seen.add(n)
        order.append(n)

    for n in graph:
        visit(n, ())
    # a service without a profile must never need one that only runs with a profile
    for n, s in services.items():
        if not s.get("profiles"):
            for d in graph[n]:
                assert not services[d].get("profiles"), f"{n} (always) depends on {d} (profile only)"


def test_sandbox_shares_the_worker_loopback(raw):
    """The simulators listen on 127.0.0.1 only (sandbox/common.py), so they join the worker's network
    namespace and the connections say 127.0.0.1, as in a native run."""
    sb = raw["services"]["sandbox"]
    assert sb["network_mode"] == "service:airflow-worker"
    assert sb["profiles"] == ["sandbox"] and raw["services"]["mailpit"]["profiles"] == ["sandbox"]
    command = " ".join(sb["command"])
    assert "--config /opt/tthc-sync/config/sandbox.yaml" in command
    assert "--anchor" in command and "--state-dir /tmp/sandbox" in command
    assert "/tmp/sandbox" in " ".join(sb["healthcheck"]["test"])


# ---- Airflow configuration --------------------------------------------------------------------
def test_airflow_components_share_one_configuration(raw, doc):
    envs = {n: raw["services"][n]["environment"] for n in ["airflow-init", *AIRFLOW_SERVICES]}
    shared = (
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__CORE__EXECUTOR",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__API__SECRET_KEY",
        "TTHC_WAREHOUSE_URL",
        "TTHC_PII_HASH_KEY",
    )
    for key in shared:
        values = {n: e.get(key) for n, e in envs.items()}
        assert len(set(values.values())) == 1 and None not in values.values(), f"{key} differs: {values}"
    first = envs["airflow-apiserver"]
    assert [n for n, _ in references(first["AIRFLOW__API_AUTH__JWT_SECRET"])] == ["AIRFLOW_JWT_SECRET"]
    assert first["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # the execution API URL names the API server service and its container port
    url = first["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert url == "http://airflow-apiserver:8080/execution/"
    assert any(p.endswith(":8080") for p in raw["services"]["airflow-apiserver"]["ports"])
    ienv = doc["services"]["airflow-worker"]["environment"]
    assert (
        ienv["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:")
        and "@redis:6379/" in ienv["AIRFLOW__CELERY__BROKER_URL"]
    )
    assert ienv["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert ienv["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    assert ienv["TTHC_WAREHOUSE_URL"].startswith("postgresql+psycopg://")
    assert raw["services"]["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"


def test_databases_match_the_init_script(raw, doc):
    """The URLs name the databases and roles that postgres/init-databases.sh creates by default."""
    script = (DOCKER / "postgres" / "init-databases.sh").read_text(encoding="utf-8")
    defaults = dict(re.findall(r"^(\w+)=\$\{\1:-(\w+)\}$", script, re.M))
    e = doc["services"]["airflow-apiserver"]["environment"]
    af = f"{defaults['AIRFLOW_DB_USER']}:{{}}@postgres:5432/{defaults['AIRFLOW_DB_NAME']}"
    wh = f"{defaults['TTHC_WAREHOUSE_DB_USER']}:{{}}@postgres:5432/{defaults['TTHC_WAREHOUSE_DB_NAME']}"
    env_pw = doc["services"]["postgres"]["environment"]
    assert af.format(env_pw["AIRFLOW_DB_PASSWORD"]) in e["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert af.format(env_pw["AIRFLOW_DB_PASSWORD"]) in e["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert wh.format(env_pw["TTHC_WAREHOUSE_DB_PASSWORD"]) in e["TTHC_WAREHOUSE_URL"]
    mounts = raw["services"]["postgres"]["volumes"]
    assert "./postgres/init-databases.sh:/docker-entrypoint-initdb.d/10-init-databases.sh:ro" in mounts
    hc = " ".join(raw["services"]["postgres"]["healthcheck"]["test"])
    assert f"-d {defaults['TTHC_WAREHOUSE_DB_NAME']}" in hc and f"-d {defaults['AIRFLOW_DB_NAME']}" in hc


def test_connections_are_the_demo_ones(doc, tmp_path):
    """AIRFLOW_CONN_* cover what tthc.demo.connection_env exports for the sandbox compose.yaml runs
    (config/sandbox.yaml), in the same JSON shape."""
    import dataclasses

    from sandbox.server import load_config, running_sandbox
    from tthc.demo import connection_env

    cfg = load_config(REPO / "config" / "sandbox.yaml")
    cfg = dataclasses.replace(
        cfg,
        ports=dict.fromkeys(cfg.ports, 0),
        state_dir=tmp_path / "state",
        smtp_folder=tmp_path / "mail",
        size=20,
    )
    with running_sandbox(cfg) as sb:
        demo = {k: json.loads(v) for k, v in connection_env(sb.state_document()).items()}
    env = doc["services"]["airflow-worker"]["environment"]
    ours = {k: json.loads(v) for k, v in env.items() if k.startswith("AIRFLOW_CONN_")}
    missing = set(demo) - set(ours)
    assert not missing, f"compose.yaml lacks connections the demo exports: {sorted(missing)}"
    for k, want in demo.items():
        got = ours[k]
        assert set(got) == set(want), f"{k}: keys {sorted(got)} ≠ demo's {sorted(want)}"
        assert got["conn_type"] == want["conn_type"], k
        if isinstance(want.get("extra"), dict):
            assert set(got["extra"]) == set(want["extra"]), k
    for v in ours.values():
        if "port" in v:
            assert isinstance(v["port"], int)


# ---- secrets ----------------------------------------------------------------------------------
def _whole_reference(value: str) -> bool:
    return bool(re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:?[?-][^}]*)?\}", value))


def test_no_secret_is_written_in_the_file(raw):
    text = COMPOSE.read_text(encoding="utf-8")
    for name, svc in raw["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):  # a *_FILE names a file
                assert _whole_reference(str(value)), f"{name}: {key} must be a ${{VAR}} reference"
    for s in strings(raw):
        # user:password@ in URLs
        for pw in re.findall(r"://[^/@\s:]*:([^@/\s]+)@", s):
            assert _whole_reference(pw), f"password written in a URL: {s!r}"
        # "password": in connection JSON
        for pw in re.findall(r'"password"\s*:\s*"([^"]*)"', s):
            assert _whole_reference(pw), f"password written in a connection: {s!r}"
    # nor any secret of the example env file, literally
    for key, value in read_env_file().items():
        if SECRET_NAME.search(key) and value:
            assert value not in text, f"the value of {key} is written in compose.yaml"


def test_env_example_and_compose_agree(raw, make_env):
    example = read_env_file()
    used = {n for s in strings(raw) for n, _ in references(s)}
    required = {n for s in strings(raw) for n, op in references(s) if op in (":?", "?", None)}
    assert required <= set(example), f"not in .env.example: {sorted(required - set(example))}"
    unused = set(example) - used - {"COMPOSE_PROFILES"}
    assert not unused, f".env.example entries compose.yaml never reads: {sorted(unused)}"
    # a generated secret is left empty in the example, so it cannot be shipped by mistake
    for key in make_env.GENERATED:
        assert key in example and example[key] == "", key


def test_missing_secret_stops_compose(raw, env):
    """With a required secret empty, interpolation fails (compose refuses to start) and says which."""
    broken = dict(env, AIRFLOW_JWT_SECRET="")
    with pytest.raises(InterpolationError, match="AIRFLOW_JWT_SECRET"):
        interpolate(raw, broken)


def test_generated_env_is_usable(env, make_env):
    from cryptography.fernet import Fernet

    for key in make_env.GENERATED:
        assert env[key] and re.fullmatch(r"[A-Za-z0-9_=-]+", env[key]), key
    Fernet(env["AIRFLOW_FERNET_KEY"].encode())
    assert len(base64.urlsafe_b64decode(env["AIRFLOW_FERNET_KEY"])) == 32
    assert len(env["AIRFLOW_JWT_SECRET"]) == 64


def test_make_env_writes_private_file_and_never_overwrites(tmp_path):
    target = tmp_path / ".env"
    cmd = [sys.executable, str(DOCKER / "make_env.py"), "--output", str(target)]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert target.stat().st_mode & 0o777 == 0o600
    first = target.read_text()
    assert subprocess.run(cmd, capture_output=True).returncode == 1
    assert target.read_text() == first


def test_real_env_file_is_git_ignored():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    r = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=REPO)
    assert r.returncode == 0, "docker/.env (the real secrets) must be ignored by git"
    r = subprocess.run(["git", "check-ignore", "-q", "docker/.env.example"], cwd=REPO)
    assert r.returncode == 1, "docker/.env.example must be committed"


def test_sandbox_credentials_in_example_are_the_sandbox_ones():
    """With the example's values the sandbox accepts the pipeline's logins (seed of config/sandbox.yaml)."""
    from sandbox.server import load_config
    from sandbox.world import World, WorldConfig

    cfg = load_config(REPO / "config" / "sandbox.yaml")
    example = read_env_file()
    world = World(WorldConfig(seed=cfg.seed, size=1))
    igate = next(s for s in world.sources if s.source_id == "igate_tinh")
    assert example["TTHC_IGATE_TINH_CLIENT_ID"] == igate.credentials["client_id"]
    assert example["TTHC_IGATE_TINH_CLIENT_SECRET"] == igate.credentials["client_secret"]
    user, pw = next(iter(cfg.portal_users.items()))
    assert (example["TTHC_PORTAL_USERNAME"], example["TTHC_PORTAL_PASSWORD"]) == (user, pw)
    assert example["TTHC_IGATE_TINH_PORT"] == str(cfg.ports["igate"])
    assert example["TTHC_LGSP_URL"].endswith(f":{cfg.ports['population']}")
    assert example["TTHC_PORTAL_URL"].endswith(f":{cfg.ports['portal']}")


# ---- image and files --------------------------------------------------------------------------
def test_one_image_built_from_the_dockerfile(raw):
    services = raw["services"]
    ours = ["airflow-init", *AIRFLOW_SERVICES, "sandbox"]
    images = {services[n]["image"] for n in ours}
    assert len(images) == 1, images
    for n in ours:
        build = services[n]["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == REPO, n
        assert (context / build["dockerfile"]).is_file(), n
    for n in ("postgres", "redis", "mailpit"):
        assert "build" not in services[n] and re.search(r":[\w.-]+\}?$", services[n]["image"]), n


def test_files_the_compose_file_mounts_exist(raw):
    for svc in raw["services"].values():
        for v in svc.get("volumes", []):
            src = v.split(":", 1)[0]
            if src.startswith((".", "/")):
                assert (COMPOSE.parent / src).exists(), src
    script = DOCKER / "postgres" / "init-databases.sh"
    assert script.stat().st_mode & 0o111, "the init script must be executable"


def test_interpolation_semantics():
    env = {"A": "1", "E": ""}
    assert interpolate_text("${A}-${B:-x}-${E:-y}-${E-z}-$$A-${B:-${A}}", env) == "1-x-y--$A-1"
    with pytest.raises(InterpolationError):
        interpolate_text("${E:?need E}", env)
    assert interpolate_text("${E?ok}", env) == ""


def test_readme_documents_the_start(raw):
    text = (DOCKER / "README.md").read_text(encoding="utf-8")
    for needle in ("make_env.py", "docker compose", "--profile", "compose.yaml", "passwords.json"):
        assert needle in text, needle
    assert Path(DOCKER / "compose-spec.schema.LICENSE").exists()
