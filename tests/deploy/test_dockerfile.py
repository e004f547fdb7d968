"""docker/Dockerfile without a Docker engine: its base matches the project's pins, everything it
copies exists (and is not excluded from the build context), the code runs from the copied tree so
every file it reads relative to the source tree is there, the paths it hands the product through
``TTHC_*`` variables are ones the product reads, and a non-editable ``pip install .`` carries every
module and data file the pipeline needs.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / "docker" / "Dockerfile.dockerignore"
REQUIRED_COPIES = {"dags", "plugins", "config", "expectations", "sql"}


def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


@pytest.fixture(scope="module")
def steps() -> list[tuple[str, str]]:
    return instructions()


@pytest.fixture(scope="module")
def args(steps) -> dict[str, str]:
    return dict(a.split("=", 1) for word, a in steps if word == "ARG" and "=" in a)


@pytest.fixture(scope="module")
def env(steps) -> dict[str, str]:
    out: dict[str, str] = {}
    for word, a in steps:
        if word == "ENV":
            for k, v in re.findall(r"(\w+)=(\S+)", a):
                out[k] = re.sub(r"\$\{(\w+)\}", lambda m: out[m.group(1)], v)
    return out


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_base_image_matches_the_project_pins(steps, args):
    base = next(a for w, a in steps if w == "FROM")
    resolved = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
    assert resolved == f"apache/airflow:{args['AIRFLOW_VERSION']}-python{args['PYTHON_VERSION']}"
    deps = _pyproject()["project"]["dependencies"]
    assert f"apache-airflow=={args['AIRFLOW_VERSION']}" in deps
    requires = _pyproject()["project"]["requires-python"]
    assert f">={args['PYTHON_VERSION']}" in requires


def test_project_is_pip_installed_with_airflow_pinned(steps):
    runs = [a for w, a in steps if w == "RUN" and "pip install" in a]
    assert len(runs) == 1
    cmd = runs[0]
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in cmd
    assert re.search(r"pip install --no-cache-dir \S+ \.(\s|$)", cmd), (
        "installs the project with `pip install .`"
    )
    assert " -e " not in cmd and "--editable" not in cmd


def test_copies_exist_and_reach_the_build_context(steps):
    ignored = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied: set[str] = set()
    for word, a in steps:
        if word != "COPY":
            continue
        parts = [p for p in a.split() if not p.startswith("--")]
        for src in parts[:-1]:
            path = REPO / src
            assert path.exists(), f"COPY {src}: not in the repository"
            name = src.rstrip("/")
            assert not any(fnmatch.fnmatch(name, pat) for pat in ignored), (
                f"{src} is excluded by .dockerignore"
            )
            copied.add(name)
    assert REQUIRED_COPIES <= copied, f"not copied: {REQUIRED_COPIES - copied}"
    # what `pip install .` needs: the build file, its readme, every package directory
    packages = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    tops = {p.rstrip("*") for p in packages}
    assert {"pyproject.toml", "README.md", *tops} <= copied


def test_paths_handed_to_the_product_exist_and_are_read(env):
    home = env["TTHC_HOME"]
    product_text = "\n".join(
        p.read_text(encoding="utf-8") for p in (REPO / "tthc").rglob("*.py") if "__pycache__" not in p.parts
    )
    for var in ("TTHC_REGISTRY", "TTHC_EXPECTATIONS_DIR", "TTHC_SQL_DIR"):
        assert var in env, var
        assert f'"{var}"' in product_text, f"the product does not read {var} any more"
    for var in (
        "TTHC_REGISTRY",
        "TTHC_EXPECTATIONS_DIR",
        "TTHC_SQL_DIR",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__PLUGINS_FOLDER",
    ):
        assert env[var].startswith(home + "/"), var
        assert (REPO / env[var][len(home) + 1 :]).exists(), f"{var}={env[var]} has no counterpart in the repo"


def test_files_read_relative_to_the_source_tree_are_in_the_image(env, steps):
    """Modules read config/, expectations/, sql/ ... relative to the source tree (REPO_ROOT); the image
    runs the code from the copied tree (PYTHONPATH), so each such top-level folder must be copied
    (var/ is made at run time)."""
    assert env["PYTHONPATH"] == env["TTHC_HOME"]
    pattern = re.compile(r"(?:REPO_ROOT|parents\[2\]|parent\.parent)\s*/\s*\"([^\"/]+)")
    used: set[str] = set()
    for top in ("tthc", "connectors", "sandbox"):
        for f in (REPO / top).rglob("*.py"):
            used |= set(pattern.findall(f.read_text(encoding="utf-8")))
    copied = {
        p.rstrip("/")
        for w, a in steps
        if w == "COPY"
        for p in [x for x in a.split() if not x.startswith("--")][:-1]
    }
    made = {"var"} if any(w == "RUN" and "${TTHC_HOME}/var" in a for w, a in steps) else set()
    assert used, "the pattern no longer finds the source-tree reads"
    assert used <= copied | made, f"read from the source tree but not in the image: {used - copied - made}"


def test_compose_runs_the_sandbox_with_the_copied_config(env):
    compose = (REPO / "docker" / "compose.yaml").read_text(encoding="utf-8")
    assert f"--config {env['TTHC_HOME']}/config/sandbox.yaml" in compose


def _is_data(folder: Path, package: str, patterns: list[str]) -> bool:
    rel = "/".join(folder.relative_to(REPO / package.replace(".", "/")).parts)
    return any(fnmatch.fnmatch(f"{rel}/x.py", pat) for pat in patterns)


def test_non_editable_install_carries_every_module():
    """setuptools' ``find`` takes only directories with ``__init__.py``; a module folder without one
    works in the editable checkout but is missing from the image. Non-Python files the code reads
    must be package data."""
    from setuptools import find_packages

    conf = _pyproject()["tool"]["setuptools"]
    found = set(find_packages(where=str(REPO), include=conf["packages"]["find"]["include"]))
    data = conf.get("package-data", {})
    missing = []
    for top in {p.rstrip("*") for p in conf["packages"]["find"]["include"]}:
        for d in sorted((REPO / top).rglob("*")):
            if not d.is_dir() or "__pycache__" in d.parts or not any(d.glob("*.py")):
                continue
            pkg = ".".join(d.relative_to(REPO).parts)
            if pkg in found:
                continue
            # a folder of .py files shipped as data of an enclosing package (e.g. alembic versions)
            if any(_is_data(d, owner, data.get(owner, [])) for owner in found if pkg.startswith(owner + ".")):
                continue
            missing.append(pkg)
    assert not missing, f"left out of `pip install .` (add __init__.py or package-data): {missing}"
    migrations = REPO / "tthc" / "warehouse" / "migrations"
    assert "tthc.warehouse.migrations" in found, "alembic's env.py must ship with the package"
    for f in migrations.iterdir():
        if f.is_file() and f.suffix not in (".py", ".pyc"):
            assert any(fnmatch.fnmatch(f"warehouse/migrations/{f.name}", p) for p in data.get("tthc", [])), f
