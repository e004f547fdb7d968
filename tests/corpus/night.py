"""One night of the pipeline over the bad-input corpus, in process, with healthy control sources.

Sources of that night:

* four **control** sources (one per dialect), served by the sandbox's simulators from a small
  generated world: they must finish every stage with the ground truth's counts;
* four **group** sources (``g_igate``, ``g_onegate``, ``g_sqldb``, ``g_filedrop``): good records plus
  the bad records (or files) of every record-level case of that dialect;
* one source per **source-level** case (``c_<case id>``): a garbage HTTP answer, a broken department
  database, a missing folder, or a hostile population database for its reconciliation.

Stages run in the pipeline's order, each for every source whose previous stage succeeded (what
Airflow does with one DAG per source). A failing stage is recorded by ``run_stage`` and must not
stop anything else. Every log line of the night is kept for the personal-data check.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from tests.corpus.cases import (
    CASES,
    Case,
    Ctx,
    FolderSource,
    HttpSource,
    LgspSource,
    SqlSource,
    sqlite_view,
)
from tests.corpus.fake_http import FakeServer, igate_handler, lgsp_handler, onegate_handler
from tests.corpus.records import (
    EXPORTED,
    NIGHT,
    csv_text,
    dossier_code,
    filedrop_row,
    igate_record,
    onegate_record,
    sqldb_row,
)
from tthc.timeutil import VN_TZ

RUN_ID = "corpus-n1"
GOOD_PER_SOURCE = 3
CONTROLS: list[dict[str, Any]] = [
    {
        "source_id": "ctl_igate",
        "agency_code": "000.00.00.H40",
        "agency_name": "Văn phòng UBND tỉnh (kiểm soát)",
        "level": "province",
        "dialect": "igate",
        "agencies": [
            {"code": "000.00.12.H40", "name": "Sở Tư pháp tỉnh Nghệ An", "level": "department"},
            {"code": "000.30.58.H40", "name": "UBND xã Diễn Châu", "level": "commune"},
        ],
    },
    {
        "source_id": "ctl_onegate",
        "agency_code": "000.00.16.H40",
        "agency_name": "Sở Y tế tỉnh Nghệ An",
        "level": "department",
        "dialect": "onegate",
    },
    {
        "source_id": "ctl_sqldb",
        "agency_code": "000.00.17.H40",
        "agency_name": "Sở Giáo dục và Đào tạo tỉnh Nghệ An",
        "level": "department",
        "dialect": "sqldb",
    },
    {
        "source_id": "ctl_filedrop",
        "agency_code": "000.16.46.H40",
        "agency_name": "UBND xã Xuân Lâm",
        "level": "commune",
        "dialect": "filedrop",
    },
]
GROUP_DIALECTS = ("igate", "onegate", "sqldb", "filedrop")


@dataclass
class CorpusSource:
    source_id: str
    dialect: str  # the registry's dialect (lgsp cases ride on an igate source)
    agency: str
    good_codes: list[str]
    good_base: int  # number of the first good record (applicants differ between sources)
    cases: list[Case] = field(default_factory=list)
    conn: dict[str, Any] = field(default_factory=dict)
    lgsp_conn_id: str | None = None
    #: record-level: case id → (its code, the bad records / files it planted)
    planted: dict[str, tuple[str, Any]] = field(default_factory=dict)
    folder: Path | None = None
    sqlite_path: Path | None = None


@dataclass
class NightResult:
    engine: Any
    world: Any
    sandbox: Any
    fake: FakeServer
    sources: dict[str, CorpusSource]  # source id → source
    source_of: dict[str, str]  # case id → source id
    results: dict[str, dict[str, Any]]  # source id → stage → counts | exception
    logs: list[str]
    portal: dict[str, Any]  # the portal simulator's dossiers after the night
    seconds: float = 0.0


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # the formatter appends exc_info tracebacks too


def _agency(i: int) -> str:
    return f"000.{i // 100:02d}.{i % 100:02d}.H99"


def plan(
    tmp: Path, fake: FakeServer, cases: list[Case] = CASES
) -> tuple[dict[str, CorpusSource], dict[str, str]]:
    """The corpus sources of the night: inputs written, fake handlers registered, connections set."""
    sources: dict[str, CorpusSource] = {}
    source_of: dict[str, str] = {}
    n = 0

    def new_source(sid: str, dialect: str) -> CorpusSource:
        nonlocal n
        n += 1
        agency = _agency(n)
        codes = [dossier_code(agency, j + 1) for j in range(GOOD_PER_SOURCE)]
        src = CorpusSource(sid, dialect, agency, codes, good_base=n * 10)
        sources[sid] = src
        return src

    # record-level cases: one shared source per dialect
    for dialect in GROUP_DIALECTS:
        group = [c for c in cases if not c.own_source and c.dialect == dialect]
        src = new_source(f"g_{dialect}", dialect)
        for i, case in enumerate(group):
            code = dossier_code(src.agency, 101 + i)
            folder = tmp / "cases" / case.id
            folder.mkdir(parents=True, exist_ok=True)
            ctx = Ctx(case.id, src.agency, code, tuple(src.good_codes), "", folder, src.good_base)
            src.cases.append(case)
            src.planted[case.id] = (code, case.bad_records(ctx))  # type: ignore[misc]
            source_of[case.id] = src.source_id
        _materialise_group(src, tmp, fake)

    # source-level cases: one source each
    for case in (c for c in cases if c.own_source):
        dialect = "igate" if case.dialect == "lgsp" else case.dialect
        src = new_source(f"c_{case.id}"[:63], dialect)
        src.cases.append(case)
        source_of[case.id] = src.source_id
        folder = tmp / "cases" / case.id
        folder.mkdir(parents=True, exist_ok=True)
        ctx = Ctx(
            case.id,
            src.agency,
            dossier_code(src.agency, 99),
            tuple(src.good_codes),
            fake.base_url(case.id),
            folder,
            src.good_base,
        )
        made = case.source(ctx)  # type: ignore[misc]
        if isinstance(made, HttpSource):
            fake.handlers[case.id] = made.handler
            src.conn = _http_conn(fake.base_url(case.id), dialect, src.source_id)
        elif isinstance(made, SqlSource):
            src.conn = {"conn_type": "sqlite", "extra": {"url": made.url, "view": made.view}}
            src.sqlite_path = Path(made.url.removeprefix("sqlite:///"))
        elif isinstance(made, FolderSource):
            src.conn = {"conn_type": "fs", "extra": {"folder": str(made.folder), "settle_seconds": 60}}
        elif isinstance(made, LgspSource):
            fake.handlers[f"{case.id}-src"] = igate_handler(ctx.good_igate())
            src.conn = _http_conn(fake.base_url(f"{case.id}-src"), "igate", src.source_id)
            fake.handlers[case.id] = lgsp_handler(lambda req, m=made, c=ctx: m.message(c, req))
            src.lgsp_conn_id = f"corpus_lgsp_{len(sources)}"
        else:  # pragma: no cover - a case returning something else is a corpus bug
            raise TypeError(f"{case.id}: unknown source kind {type(made).__name__}")
    return sources, source_of


def _http_conn(base_url: str, dialect: str, sid: str) -> dict[str, Any]:
    conn: dict[str, Any] = {"conn_type": "http", "extra": {"base_url": base_url}}
    if dialect == "igate":
        conn.update(login=f"{sid}_client", password="corpus-secret")  # noqa: S106 - a fake
    else:
        conn["password"] = "corpus-api-key"
    return conn


def _materialise_group(src: CorpusSource, tmp: Path, fake: FakeServer) -> None:
    """Good records + every planted bad record of the group, as its dialect serves them."""
    good = [(src.good_base + i, c) for i, c in enumerate(src.good_codes)]
    planted = [] if src.dialect == "filedrop" else [r for _code, items in src.planted.values() for r in items]
    if src.dialect == "igate":
        fake.handlers[src.source_id] = igate_handler(
            [igate_record(c, src.agency, n=i) for i, c in good] + planted
        )
        src.conn = _http_conn(fake.base_url(src.source_id), "igate", src.source_id)
    elif src.dialect == "onegate":
        fake.handlers[src.source_id] = onegate_handler(
            [onegate_record(c, src.agency, n=i) for i, c in good] + planted
        )
        src.conn = _http_conn(fake.base_url(src.source_id), "onegate", src.source_id)
    elif src.dialect == "sqldb":
        path = tmp / "sqldb" / f"{src.source_id}.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite_view(path, [sqldb_row(c, src.agency, n=i) for i, c in good] + planted)
        src.sqlite_path = path
        src.conn = {"conn_type": "sqlite", "extra": {"url": f"sqlite:///{path}", "view": "ho_so_tthc"}}
    else:
        folder = tmp / "filedrop" / src.source_id
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "hoso_2026_10.csv": csv_text([filedrop_row(c, src.agency, n=i) for i, c in good]).encode("utf-8")
        }
        for _code, more in src.planted.values():
            files.update(more)
        stamp = EXPORTED.replace(tzinfo=VN_TZ).timestamp()  # exported before the night: settled
        for name, data in files.items():
            (folder / name).write_bytes(data)
            os.utime(folder / name, (stamp, stamp))
        src.folder = folder
        src.conn = {"conn_type": "fs", "extra": {"folder": str(folder), "settle_seconds": 60}}


def write_registry(path: Path, sources: dict[str, CorpusSource]) -> None:
    entries = [{**c, "conn_id": c["source_id"]} for c in CONTROLS]
    for s in sources.values():
        entries.append(
            {
                "source_id": s.source_id,
                "agency_code": s.agency,
                "agency_name": f"Nguồn kiểm thử {s.source_id}",
                "level": "department",
                "dialect": s.dialect,
                "conn_id": s.source_id,
                "stewards": ["kiem.thu@example.gov.vn"],
            }
        )
    doc = {
        "defaults": {"lookback_hours": 72, "initial_days": 120, "province_code": "H40"},
        "sources": entries,
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


@contextmanager
def corpus_night(
    tmp: Path, cases: list[Case] = CASES, *, warehouse_url: str | None = None
) -> Iterator[NightResult]:
    """Plan the corpus, start the sandbox (controls) and the fake server, run one night, yield.
    The warehouse is a SQLite file under ``tmp`` unless ``warehouse_url`` names another (empty) one."""
    import time

    import pytest
    import requests

    from sandbox.from_registry import world_config_from_registry
    from sandbox.server import SandboxConfig, running_sandbox
    from sandbox.world import World
    from tthc.demo import connection_env
    from tthc.pipeline import STAGES, run_stage
    from tthc.pipeline.context import StageContext
    from tthc.registry import Registry, load_registry
    from tthc.settings import Settings
    from tthc.warehouse.db import get_engine

    started = time.monotonic()
    fake = FakeServer().start()
    keep = _Keep()
    root = logging.getLogger()
    old_level = root.level
    try:
        sources, source_of = plan(tmp, fake, cases)
        reg_path = tmp / "sources.yaml"
        write_registry(reg_path, sources)
        registry = load_registry(reg_path)
        controls = Registry(reg_path, tuple(s for s in registry.sources if s.source_id.startswith("ctl_")))
        world = World(world_config_from_registry(controls, seed=11, size=60, anchor=NIGHT))
        cfg = SandboxConfig.for_tests(tmp, bulk_delay_seconds=0.0)
        with running_sandbox(cfg, world=world) as sb, pytest.MonkeyPatch.context() as mp:
            mp.setenv("TTHC_REGISTRY", str(reg_path))
            for k, v in connection_env(sb.state_document()).items():
                mp.setenv(k, v)
            for s in sources.values():
                mp.setenv(f"AIRFLOW_CONN_{s.source_id.upper()}", json.dumps(s.conn))
                if s.lgsp_conn_id:
                    case = s.cases[0]
                    lgsp = {"conn_type": "http", "extra": {"base_url": fake.base_url(case.id)}}
                    mp.setenv(f"AIRFLOW_CONN_{s.lgsp_conn_id.upper()}", json.dumps(lgsp))
            url = warehouse_url or f"sqlite:///{tmp / 'warehouse.db'}"
            mp.setenv("TTHC_WAREHOUSE_URL", url)
            mp.setenv("TTHC_HTTP_TIMEOUT", "10")
            engine = get_engine(url)
            root.addHandler(keep)
            root.setLevel(logging.INFO)
            all_ids = [c["source_id"] for c in CONTROLS] + list(sources)
            results: dict[str, dict[str, Any]] = {sid: {} for sid in all_ids}
            for stage in STAGES:
                for sid in all_ids:
                    done = results[sid]
                    if any(isinstance(v, BaseException) for v in done.values()):
                        continue  # Airflow: the downstream tasks of a failed task do not run
                    ctx = None
                    src = sources.get(sid)
                    if stage == "reconcile" and src is not None and src.lgsp_conn_id:
                        settings = replace(Settings.from_env(), lgsp_conn_id=src.lgsp_conn_id)
                        ctx = StageContext.create(sid, run_id=RUN_ID, window_end=NIGHT, settings=settings)
                    try:
                        done[stage] = run_stage(stage, sid, run_id=RUN_ID, window_end=NIGHT, ctx=ctx)
                    except Exception as exc:  # recorded by run_stage; the night goes on
                        done[stage] = exc
            root.removeHandler(keep)
            portal = requests.get(f"{sb.urls['portal']}/_sandbox/state", timeout=30).json()["dossiers"]
            yield NightResult(
                engine,
                world,
                sb,
                fake,
                sources,
                source_of,
                results,
                keep.lines,
                portal,
                time.monotonic() - started,
            )
    finally:
        root.removeHandler(keep)
        root.setLevel(old_level)
        fake.stop()


def sqlite_rows(path: Path) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute("SELECT count(*) FROM ho_so_tthc").fetchone()[0])
    finally:
        con.close()


__all__ = ["CONTROLS", "RUN_ID", "CorpusSource", "NightResult", "corpus_night", "plan", "sqlite_rows"]
