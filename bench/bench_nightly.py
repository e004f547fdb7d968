"""The nightly run at national volume: N dossiers across S sources of the four dialects, every stage.

What it does, in one process tree on this machine:

1. writes a registry of ``--sources`` sources (igate, onegate, sqldb, filedrop in turn) and starts
   the sandbox (a separate process) with a world of ``--dossiers`` dossiers built from it;
2. **floor**: a fresh warehouse and an empty portal; every source's records are extracted with the
   product's readers, loaded into the warehouse (raw + canonical, the product's bulk path) and
   posted to the portal: the dossiers (``DongBoHoSoMC``) and each one's status as a progress entry
   (``CapNhatTienDoHoSoMC``), in batches of 100 — no validation, no population lookups, no
   outbox, no read-back, no indicators (stages ``extract+load``, ``post`` and ``progress``);
3. **full**: the portal emptied again and another fresh warehouse; every stage of the product
   (extract, validate, reconcile, publish with read-back verification, indicators) per source;
4. **1 % night**: the world's clock moves on until about ``--changed-share`` of the dossiers
   changed, and the nightly run goes again on the full run's warehouse.

Sources run on ``--workers`` worker processes (a Celery worker's concurrency; default: the
machine's cores), largest first. Each phase's workers are started and preloaded (``tthc.preload``,
as ``tthc.celery_config`` preloads a Celery worker) before its clock starts. Printed: wall time
per phase, per-stage seconds and throughput (records / stage seconds, summed over sources), the
peak resident memory of the worker processes and of the sandbox, the full/floor ratio and the
1 %-night share of the full run. Only counts and
timings are printed: no dossier content, no personal data.

    python bench/bench_nightly.py                      # 1,000,000 dossiers, 20 sources, PostgreSQL
    python bench/bench_nightly.py --dossiers 50000 --warehouse sqlite
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STAGES = ("extract", "validate", "reconcile", "publish", "indicators")
DIALECTS = ("igate", "onegate", "sqldb", "filedrop")
PG_ADMIN = os.environ.get("TTHC_BENCH_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


# ---- setup ----------------------------------------------------------------------------------------
def registry(n_sources: int, agencies_per_source: int = 4) -> dict[str, Any]:
    sources = []
    for i in range(n_sources):
        dialect = DIALECTS[i % len(DIALECTS)]
        nums = [i * agencies_per_source + k for k in range(agencies_per_source)]
        agencies = [
            {
                "code": f"000.{n % 90 + 1:02d}.{n // 90 + 20:02d}.H40",
                "name": f"UBND xã Thử Nghiệm {i}-{k}",
                "level": "commune",
            }
            for k, n in enumerate(nums)
        ]
        sources.append(
            {
                "source_id": f"bench_{dialect}_{i:02d}",
                "agency_code": agencies[0]["code"],
                "agency_name": agencies[0]["name"],
                "level": "commune",
                "dialect": dialect,
                "conn_id": f"tthc_bench_{i:02d}",
                "stewards": [f"steward{i}@example.gov.vn"],
                "agencies": agencies,
            }
        )
    return {
        "defaults": {
            "schedule": "0 1 * * *",
            "lookback_hours": 72,
            "initial_days": 120,
            "province_code": "H40",
        },
        "sources": sources,
    }


def new_warehouse(kind: str, tmp: Path, tag: str) -> tuple[str, Any]:
    """A fresh warehouse URL and a function that drops it."""
    if kind == "sqlite":
        path = tmp / f"warehouse-{tag}.db"
        return f"sqlite:///{path}", lambda: path.unlink(missing_ok=True)
    import sqlalchemy as sa

    name = f"tthc_bench_{tag}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


def start_sandbox(tmp: Path, env: dict[str, str], size: int, anchor: datetime) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "sandbox.server", "start", "--state-dir", str(tmp / "sandbox")]
    cmd += ["--size", str(size), "--anchor", anchor.isoformat(), "--wait", "3600"]
    cmd += ["--smtp-folder", str(tmp / "mail"), "--filedrop-folder", str(tmp / "drop")]
    for name in ("igate", "population", "portal", "onegate", "smtp"):
        cmd += [f"--{name}-port", "0"]
    cmd += [
        "--rate-limit",
        "0",
        "--bulk-delay",
        "0.2",
        "--token-seconds",
        "3600",
        "--session-seconds",
        "3600",
    ]
    subprocess.run(cmd, env=env, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return json.loads((tmp / "sandbox" / "state.json").read_text(encoding="utf-8"))


def stop_sandbox(tmp: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "sandbox.server", "stop", "--state-dir", str(tmp / "sandbox")],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        check=False,
    )


def _proc_stat(pid: int | str) -> tuple[str, list[str]] | None:
    """(command name, the fields after it) of /proc/<pid>/stat; None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 1 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    stat = _proc_stat(pid)
    if stat is None:
        raise ProcessLookupError(pid)
    fields = stat[1]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float | None:
    """CPU seconds used so far by the local PostgreSQL server: every live ``postgres`` process,
    plus what the postmaster has collected from backends that exited (cutime + cstime). The
    difference of two readings is the server's CPU in between. None when no server runs here."""
    total, found = 0.0, False
    tck = os.sysconf("SC_CLK_TCK")
    for d in Path("/proc").iterdir():
        stat = _proc_stat(d.name) if d.name.isdigit() else None
        if stat is None or stat[0] != "postgres":
            continue
        fields = stat[1]
        found = True
        total += (int(fields[11]) + int(fields[12])) / tck
        parent = _proc_stat(fields[1])
        if parent is None or parent[0] != "postgres":  # the postmaster: CPU of its reaped children
            total += (int(fields[13]) + int(fields[14])) / tck
    return total if found else None


def peak_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ---- work done in the worker processes ----------------------------------------------------------------
def _worker_init(env: dict[str, str]) -> None:
    """A worker process as a deployment's Celery worker is when a night starts: environment set,
    Great Expectations and the pipeline imported (``tthc.celery_config``'s preload)."""
    os.environ.update(env)
    import logging

    logging.basicConfig(level=logging.ERROR)
    from tthc.preload import warm

    warm()


def _worker_pid(_: int) -> int:
    time.sleep(0.2)  # long enough that every idle worker takes one
    return os.getpid()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_source_full(source_id: str, run_id: str, window_end: datetime) -> dict[str, Any]:
    from tthc.pipeline import run_stage

    out: dict[str, Any] = {"source_id": source_id, "stages": {}}
    cpu0 = time.process_time()
    profile_dir = os.environ.get("TTHC_BENCH_PROFILE")
    for stage in STAGES:
        t0, c0 = time.perf_counter(), time.process_time()
        if profile_dir:  # --profile: one cProfile file per (night, source, stage)
            import cProfile

            prof = cProfile.Profile()
            counts = prof.runcall(run_stage, stage, source_id, run_id=run_id, window_end=window_end)
            prof.dump_stats(str(Path(profile_dir) / f"{run_id}.{source_id}.{stage}.prof"))
        else:
            counts = run_stage(stage, source_id, run_id=run_id, window_end=window_end)
        out["stages"][stage] = {
            "seconds": time.perf_counter() - t0,
            "cpu": time.process_time() - c0,  # this worker's own CPU: less moved by a busy machine
            "rss_mb": _rss_mb(),  # the worker's peak so far: the stage that first reaches it holds it
            "records": int(counts.get("records_in", 0) or 0),
            "out": int(counts.get("records_out", 0) or 0),
            "changed": int(counts.get("inserted", 0) or 0) + int(counts.get("updated", 0) or 0),
        }
    out["rss_mb"] = _rss_mb()
    out["pid"] = os.getpid()
    out["cpu"] = time.process_time() - cpu0
    return out


def run_source_floor(source_id: str, run_id: str, window_end: datetime) -> dict[str, Any]:
    """Extract, load and post with no checks: the product's reader, bulk load and portal client."""
    from connectors.portal import to_portal_payload
    from tthc.pipeline.context import StageContext
    from tthc.pipeline.extract import _latest_per_key
    from tthc.pipeline.publish import make_client
    from tthc.pipeline.sources import open_source
    from tthc.progress import StatusVersion, progress_entries
    from tthc.warehouse import repo

    cpu0 = time.process_time()
    ctx = StageContext.create(source_id, run_id=run_id, window_end=window_end)
    src = ctx.source
    t0 = time.perf_counter()
    reader = open_source(src, timeout=ctx.settings.http_timeout_seconds, engine=ctx.engine, run_id=run_id)
    raw = reader.fetch(ctx.window_end - timedelta(days=src.initial_days), ctx.window_end)
    mapped = [reader.to_dossier(r) for r in raw]
    dossiers = [mapped[i] for i in _latest_per_key(mapped)]
    with ctx.engine.begin() as conn:
        repo.record_raw(conn, src.source_id, run_id, raw, code_of=reader.code_of)
        repo.upsert_dossiers(conn, dossiers, run_id)
        if reader.on_commit is not None:
            reader.on_commit(conn, run_id)
    t1 = time.perf_counter()
    client = make_client(ctx)
    posted = [d for d in dossiers if d.agency_code]
    try:
        results = client.publish([to_portal_payload(d) for d in posted])
        t_posted = time.perf_counter()
        # and each dossier's status as a progress entry (a first night: one per dossier with a
        # status), what the product posts for it too; by agency, as the portal wants them
        by_agency: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for d, r in zip(posted, results, strict=True):
            if r.ok and d.dossier_code:
                first = StatusVersion(1, d.status, d.updated_at, None, d.received_at, d.due_at)
                for e in progress_entries(d.dossier_code, [first]):
                    by_agency[str(d.agency_code)].append(e.entry)
        entries = [r for a, group in by_agency.items() for r in client.push_progress(group, madonvi=a)]
    finally:
        client.close()
    t2 = time.perf_counter()
    ok = sum(1 for r in results if r.ok)
    return {
        "source_id": source_id,
        "stages": {
            "extract+load": {"seconds": t1 - t0, "records": len(raw), "out": len(dossiers), "changed": 0},
            "post": {"seconds": t_posted - t1, "records": len(results), "out": ok, "changed": 0},
            "progress": {"seconds": t2 - t_posted, "records": len(entries), "out": 0, "changed": 0},
        },
        "rss_mb": _rss_mb(),
        "pid": os.getpid(),
        "cpu": time.process_time() - cpu0,
        "progress_posted": sum(1 for r in entries if r.ok),
    }


# ---- phases -----------------------------------------------------------------------------------------
def run_phase(
    kind: str,
    sources: list[str],
    workers: int,
    env: dict[str, str],
    run_id: str,
    window_end: datetime,
    sandbox_pid: int,
) -> dict[str, Any]:
    fn = run_source_full if kind != "floor" else run_source_floor
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_worker_init, initargs=(env,)) as pool:
        # the workers are started (and preloaded) before the clock starts: a deployment's Celery
        # workers run all the time, a night does not start them
        while len(set(pool.map(_worker_pid, range(workers * 2), chunksize=1))) < workers:
            pass
        t0 = time.perf_counter()
        sb0 = cpu_seconds(sandbox_pid)
        pg0 = postgres_cpu_seconds()
        results = pool.starmap(fn, [(s, run_id, window_end) for s in sources], chunksize=1)
        wall = time.perf_counter() - t0
        # read while the workers' database sessions are alive: once the pool is gone their backends
        # exit, and one that has exited but is not yet reaped counts in neither reading
        sandbox_cpu = cpu_seconds(sandbox_pid) - sb0
        pg1 = postgres_cpu_seconds()
    database_cpu = pg1 - pg0 if pg0 is not None and pg1 is not None else None
    stages: dict[str, dict[str, float]] = defaultdict(
        lambda: {"seconds": 0.0, "cpu": 0.0, "records": 0, "changed": 0}
    )
    for r in results:
        for st, v in r["stages"].items():
            stages[st]["seconds"] += v["seconds"]
            stages[st]["cpu"] += v.get("cpu", 0.0)
            stages[st]["records"] += v["records"]
            stages[st]["changed"] += v["changed"]
    rss: dict[int, float] = {}
    peak_at = ("", 0.0)  # (stage, MB): the stage in which the highest worker peak was reached
    for r in results:  # a worker's sources come in the order it ran them (chunks of one, in order)
        for st, v in r["stages"].items():
            mb = v.get("rss_mb", 0.0)
            if mb > rss.get(r["pid"], 0.0):  # ru_maxrss only grows: this stage raised it
                rss[r["pid"]] = mb
                if mb > peak_at[1]:
                    peak_at = (f"{st} of {r['source_id']}", mb)
        rss[r["pid"]] = max(rss.get(r["pid"], 0.0), r["rss_mb"])
    return {
        "wall": wall,
        "stages": dict(stages),
        "worker_peak_mb": max(rss.values()),
        "worker_peak_stage": peak_at[0],
        "worker_cpu": sum(r["cpu"] for r in results),
        "sandbox_cpu": sandbox_cpu,
        "database_cpu": database_cpu,
        "per_source": results,
    }


def portal_reset(state: dict[str, Any]) -> None:
    requests.post(f"{state['urls']['portal']}/_sandbox/reset", timeout=600).raise_for_status()


def portal_count(state: dict[str, Any]) -> int:
    st = requests.get(f"{state['urls']['portal']}/_sandbox/state", params={"summary": 1}, timeout=600).json()
    return int(st.get("dossier_count", len(st.get("dossiers") or {})))


def advance_clock(state: dict[str, Any], hours: float) -> datetime:
    r = requests.post(f"{state['urls']['igate']}/_sandbox/clock", json={"hours": hours}, timeout=600)
    r.raise_for_status()
    return datetime.fromisoformat(r.json()["now"])


def igate_changed(state: dict[str, Any], start: datetime, end: datetime) -> tuple[int, int]:
    """(records of the igate sources updated in [start, end), all their records), from their API."""
    base = state["urls"]["igate"]
    changed = total = 0
    for src in state.get("sources", []):
        if not src.get("client_id"):
            continue
        tok = requests.post(
            f"{base}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": src["client_id"],
                "client_secret": src["client_secret"],
            },
            timeout=60,
        ).json()["access_token"]
        for lo, hi, which in ((start, end, "changed"), (datetime(2000, 1, 1), end, "total")):
            page = requests.get(
                f"{base}/api/v1/dossiers",
                params={
                    "updatedFrom": lo.isoformat() + "+07:00",
                    "updatedTo": hi.isoformat() + "+07:00",
                    "page": 0,
                    "size": 1,
                },
                headers={"Authorization": f"Bearer {tok}"},
                timeout=600,
            ).json()
            if which == "changed":
                changed += int(page["totalElements"])
            else:
                total += int(page["totalElements"])
    return changed, total


def advance_until_changed(state: dict[str, Any], start: datetime, share: float) -> datetime:
    """Move the world's clock an hour at a time until ``share`` of the igate records changed since
    ``start`` (the other dialects follow the same world, so they change alike)."""
    now = start
    for _ in range(24 * 7):
        now = advance_clock(state, 1.0).replace(tzinfo=None)
        changed, total = igate_changed(state, start, now)
        if total and changed / total >= share:
            break
    return now


def fmt_phase(name: str, p: dict[str, Any]) -> list[str]:
    lines = [
        f"{name}: wall {p['wall']:.1f} s; worker peak RSS {p['worker_peak_mb']:.0f} MB"
        + (f" (reached in {p['worker_peak_stage']})" if p.get("worker_peak_stage") else "")
        + "; CPU: product "
        f"{p['worker_cpu']:.0f} s, simulators {p['sandbox_cpu']:.0f} s, PostgreSQL "
        + ("not measured" if p.get("database_cpu") is None else f"{p['database_cpu']:.0f} s")
        + " (stage times below include waiting)"
    ]
    for st, v in p["stages"].items():
        rate = v["records"] / v["seconds"] if v["seconds"] else 0.0
        cpu = f"  (worker CPU {v['cpu']:.1f} s)" if v.get("cpu") else ""
        head = f"  {st:<13} {v['seconds']:8.1f} s  {v['records']:>9,} records"
        lines.append(f"{head}  {rate:>9,.0f} rec/s{cpu}")
    # seconds per stage and dialect: where the time goes
    by: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in p.get("per_source", []):
        dialect = r["source_id"].split("_")[1]
        for st, v in r["stages"].items():
            by[dialect][st] += v["seconds"]
    for dialect, stages in sorted(by.items()):
        lines.append(f"    {dialect:<9} " + "  ".join(f"{st} {sec:.1f}s" for st, sec in stages.items()))
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dossiers", type=int, default=1_000_000)
    ap.add_argument("--sources", type=int, default=20)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--warehouse", choices=("postgres", "sqlite"), default="postgres")
    ap.add_argument("--changed-share", type=float, default=0.01)
    ap.add_argument("--skip-floor", action="store_true")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and databases")
    ap.add_argument(
        "--profile",
        metavar="DIR",
        help="write a cProfile file per night, source and stage of the nightly runs into DIR "
        "(slows the run; for finding where the time goes, not for the figures)",
    )
    a = ap.parse_args()

    from tthc.timeutil import vn_now

    tmp = Path(tempfile.mkdtemp(prefix="tthc-bench-"))
    reg_path = tmp / "sources.yaml"
    reg = registry(a.sources)
    reg_path.write_text(yaml.safe_dump(reg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    source_ids = [s["source_id"] for s in reg["sources"]]
    env = {
        **os.environ,
        "TTHC_REGISTRY": str(reg_path),
        "TTHC_SANDBOX_REGISTRY": str(reg_path),
        "PYTHONWARNINGS": "ignore",
    }
    if a.profile:
        Path(a.profile).mkdir(parents=True, exist_ok=True)
        env["TTHC_BENCH_PROFILE"] = str(Path(a.profile).resolve())
    anchor = vn_now().replace(second=0, microsecond=0) - timedelta(minutes=10)
    drops: list[Any] = []
    figures: dict[str, Any] = {"dossiers": a.dossiers, "sources": a.sources, "workers": a.workers}
    print(
        f"bench_nightly: {a.dossiers:,} dossiers, {a.sources} sources, {a.workers} workers, "
        f"warehouse {a.warehouse}",
        flush=True,
    )
    t0 = time.perf_counter()
    state = start_sandbox(tmp, env, a.dossiers, anchor)
    print(
        f"sandbox ready in {time.perf_counter() - t0:.0f} s (world generation; not measured below)",
        flush=True,
    )
    from tthc.demo import connection_env

    os.environ.update(env)  # connection_env reads the registry named by TTHC_REGISTRY
    env.update(connection_env(state))
    window_end = anchor + timedelta(minutes=5)
    sb_pid = int(state["pid"])
    try:
        # largest sources first, so the pool does not end on a long tail
        weight = {s["source_id"]: len(s["agencies"]) for s in reg["sources"]}
        order = sorted(source_ids, key=lambda s: -weight[s])
        if not a.skip_floor:
            url, drop = new_warehouse(a.warehouse, tmp, "floor")
            drops.append(drop)
            floor = run_phase(
                "floor", order, a.workers, {**env, "TTHC_WAREHOUSE_URL": url}, "floor", window_end, sb_pid
            )
            figures["floor"] = floor
            for line in fmt_phase("floor (extract + load + post, no checks)", floor):
                print(line, flush=True)
            progress = floor["progress_posted"] = sum(r["progress_posted"] for r in floor["per_source"])
            print(
                f"  portal holds {portal_count(state):,} dossiers; {progress:,} progress entries posted",
                flush=True,
            )
            portal_reset(state)
        url, drop = new_warehouse(a.warehouse, tmp, "full")
        drops.append(drop)
        fenv = {**env, "TTHC_WAREHOUSE_URL": url}
        full = run_phase("full", order, a.workers, fenv, "full-1", window_end, sb_pid)
        figures["full"] = full
        for line in fmt_phase("full nightly run (every stage)", full):
            print(line, flush=True)
        print(f"  portal holds {portal_count(state):,} dossiers", flush=True)
        if "floor" in figures:
            figures["ratio_to_floor"] = full["wall"] / figures["floor"]["wall"]
            print(f"full / floor: {figures['ratio_to_floor']:.2f}x (target <= 2x)", flush=True)

        # the next night: move the clock until about changed-share of the dossiers changed
        now = advance_until_changed(state, window_end, a.changed_share)
        hours = (now - window_end).total_seconds() / 3600
        night = run_phase("incremental", order, a.workers, fenv, "full-2", now.replace(tzinfo=None), sb_pid)
        changed = night["stages"]["extract"]["changed"]
        figures["incremental"] = night
        figures["incremental_changed"] = changed
        for line in fmt_phase(f"next night, clock +{hours:.1f} h", night):
            print(line, flush=True)
        share = changed / max(1, full["stages"]["extract"]["changed"])
        figures["incremental_share_of_full"] = night["wall"] / full["wall"]
        print(
            f"  dossiers changed: {changed:,} ({share:.2%} of the full run's); "
            f"time {night['wall'] / full['wall']:.1%} of the full run (target <= 5 %)",
            flush=True,
        )
        sb_peak = peak_mb(int(state["pid"]))
        figures["sandbox_peak_mb"] = sb_peak
        print(f"sandbox process peak RSS: {sb_peak or 0:.0f} MB (simulators, not the product)")
        print(
            f"SUMMARY full {full['wall']:.0f} s (target <= 300 s), "
            f"worker peak {full['worker_peak_mb']:.0f} MB (target <= 1536 MB)"
            + (
                f", {figures['ratio_to_floor']:.2f}x floor (target <= 2x)"
                if "ratio_to_floor" in figures
                else ""
            )
            + f", 1 % night {figures['incremental_share_of_full']:.1%} of full (target <= 5 %)",
            flush=True,
        )
        if a.json:
            for p in ("floor", "full", "incremental"):
                figures.get(p, {}).pop("per_source", None)
            Path(a.json).write_text(json.dumps(figures, indent=1, default=str), encoding="utf-8")
    finally:
        stop_sandbox(tmp, env)
        if not a.keep:
            for drop in drops:
                drop()
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
