"""Fault storm over 10 seeded runs (issue #7, Reliability): every valid dossier on the portal
exactly once, 0 lost, 0 duplicated progress entries, against the ground truth.

Each seed is its own world (``World(seed)``, its own anchor, its own warehouse) and its own fault
seeds. A seed runs ``STORM_NIGHTS`` nights of the source DAG (``dag.test()``, in-process sandbox)
in a storm, then one quiet night. The storm, on every system it applies to:

* national portal: 10 % 5xx, 5 % 429 (``Retry-After: 1``), 2 % time-outs (the answer never comes),
  10 % "committed but the answer was lost" (the batch is applied, then the answer is held past the
  client's time-out or the connection is reset: the mode alternates night by night), sessions that
  expire (wall clock: 1.5 s; and 10 % of requests on a session that served before are answered
  "-1" expired, ``token_expire``);
* agency system (igate): 10 % 5xx, 5 % 429, 2 % time-outs; short-lived tokens (10 s) and 10 % of
  requests with a token that served before answered 401 "Access token expired"; records changing
  while the client pages (``page_touch``: after 30 % of the pages two records of the window change
  at once, so the offsets behind them shift; the pipeline pages by 5 records);
* population database: 10 % 5xx, 5 % 429, 2 % time-outs, 10 % of bulk jobs ending in error.

Task retries are 0: every night must end green (what the portal did not take stays queued) and
the next night catches up. After the quiet night, against the world's ground truth
(``world.expected``): the warehouse holds every dossier code the source holds (nothing lost to
paging), the portal holds exactly the publishable dossiers with the world's current status, no
progress entry was received twice, every status change the warehouse saw is shown exactly once,
and the outbox has nothing open. The storm is asserted to have been real: faults on the portal
and the agency system in every seed (commit-lost, ambiguous writes, session refusals, records
moved while paging), and every fault kind on every system it applies to over the 10 seeds.

One known limitation is reported, not failed: a ``duplicate_code`` pair whose two records never
reach the warehouse in the same run (one moved to the next night's window while paging) passes
validation, which compares only the records of one run, and is published
(``duplicate_code_published_split_across_runs`` in the summary; an issue of the validate stage).

``pytest -s`` prints a summary per seed and an aggregate (``FAULT STORM AGGREGATE``): faults
injected per system and kind, ambiguous writes the client met, duplicates avoided by read-backs.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pendulum
import pytest
import requests
import sqlalchemy as sa

pytestmark = pytest.mark.e2e

STORM_SOURCE = "igate_tinh"
STORM_DAG_ID = f"tthc_source_{STORM_SOURCE}"
SEEDS = tuple(range(1, 11))
STORM_NIGHTS = 2  # then one quiet night
WORLD_SIZE = 50
BASE_ANCHOR = datetime(2027, 3, 1, 8, 0)  # a Monday, naive Vietnam time; each seed a week later
PAGE_SIZE = 5  # the pipeline pages the agency system by 5: a window takes several pages

#: shares of the issue's storm (portal and agency system alike)
STORM_5XX, STORM_429, STORM_TIMEOUT = 0.10, 0.05, 0.02
COMMIT_LOST = 0.10
TOKEN_EXPIRE = 0.10
PAGE_TOUCH, PAGE_TOUCH_COUNT = 0.30, 2

PORTAL_READ_TIMEOUT = 0.3  # the client's read time-out on the portal (s)
HTTP_READ_TIMEOUT = 0.5  # agency system and population database (s)
PORTAL_SESSION_SECONDS = 1.5
IGATE_TOKEN_SECONDS = 10.0

EXPECTED_KINDS = {
    "portal": ("error_5xx", "rate_429", "timeout", "commit_lost", "token_expire"),
    "igate": ("error_5xx", "rate_429", "timeout", "token_expire", "page_touch"),
    "population": ("error_5xx", "rate_429", "timeout"),
}


def portal_profile(seed: int, night: int) -> dict:
    return {
        "seed": seed * 1000 + night,
        "error_5xx": STORM_5XX,
        "rate_429": STORM_429,
        "retry_after": 1,
        "timeout": STORM_TIMEOUT,
        "timeout_seconds": PORTAL_READ_TIMEOUT + 0.2,  # held past the client's read time-out
        "commit_lost": COMMIT_LOST,
        "commit_lost_mode": "timeout" if (seed + night) % 2 else "reset",
        "token_expire": TOKEN_EXPIRE,
    }


def igate_profile(seed: int, night: int) -> dict:
    return {
        "seed": seed * 1000 + 100 + night,
        "error_5xx": STORM_5XX,
        "rate_429": STORM_429,
        "retry_after": 1,
        "timeout": STORM_TIMEOUT,
        "timeout_seconds": HTTP_READ_TIMEOUT + 0.5,
        "token_expire": TOKEN_EXPIRE,
        "page_touch": PAGE_TOUCH,
        "page_touch_count": PAGE_TOUCH_COUNT,
    }


def population_profile(seed: int, night: int) -> dict:
    return {
        "seed": seed * 1000 + 200 + night,
        "error_5xx": STORM_5XX,
        "rate_429": STORM_429,
        "retry_after": 1,
        "timeout": STORM_TIMEOUT,
        "timeout_seconds": HTTP_READ_TIMEOUT + 0.5,
        "job_error": 0.10,
    }


PROFILES = {"portal": portal_profile, "igate": igate_profile, "population": population_profile}


class AmbiguityCounter(logging.Handler):
    """Counts the ambiguous portal requests the HTTP layer reported (its WARNING lines)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.args and record.args[0] == "portal" and "AmbiguousError" in record.getMessage():
            self.count += 1


@pytest.fixture(scope="module")
def storm_module(airflow_home):
    """Airflow's metadata database, the source DAG (retries 0), and the per-seed summaries."""
    subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TTHC_TASK_RETRIES", "0")
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[STORM_DAG_ID]
        summaries: dict[int, dict] = {}
        yield {"dag": dag, "summaries": summaries}
    if summaries:
        print("\nFAULT STORM AGGREGATE " + json.dumps(aggregate(summaries), ensure_ascii=False, indent=1))


@pytest.fixture
def storm_env(storm_module, tmp_path, request):
    from sandbox.server import SandboxConfig, running_sandbox
    from sandbox.world import World, WorldConfig
    from tthc.demo import connection_env

    seed = request.param
    anchor = BASE_ANCHOR + timedelta(days=7 * (seed - 1))  # distinct run ids in Airflow's database
    world = World(WorldConfig(seed=seed, size=WORLD_SIZE, anchor=anchor))
    cfg = SandboxConfig.for_tests(
        tmp_path,
        seed=seed,
        size=WORLD_SIZE,
        session_seconds=PORTAL_SESSION_SECONDS,
        token_seconds=IGATE_TOKEN_SECONDS,
        simulators=("igate", "population", "portal", "smtp"),
    )
    counter = AmbiguityCounter()
    http_log = logging.getLogger("connectors.http")
    http_log.addHandler(counter)
    try:
        with running_sandbox(cfg, world=world) as sb, pytest.MonkeyPatch.context() as mp:
            for k, v in connection_env(sb.state_document()).items():
                mp.setenv(k, v)
            conn_var = f"AIRFLOW_CONN_TTHC_{STORM_SOURCE.upper()}"
            conn = json.loads(os.environ[conn_var])
            conn.setdefault("extra", {})["page_size"] = PAGE_SIZE
            mp.setenv(conn_var, json.dumps(conn))
            url = f"sqlite:///{tmp_path / 'warehouse.db'}"
            mp.setenv("TTHC_WAREHOUSE_URL", url)
            mp.setenv("TTHC_HTTP_TIMEOUT", str(HTTP_READ_TIMEOUT))  # agency system, population database
            mp.setenv("TTHC_PORTAL_TIMEOUT", str(PORTAL_READ_TIMEOUT))
            mp.setenv("TTHC_PORTAL_BATCH_SIZE", "10")
            mp.setenv("TTHC_PORTAL_RETRY_ATTEMPTS", "2")  # transient failures outlive the retries
            mp.setenv("TTHC_PORTAL_BACKOFF_MAX", "0.3")
            engine = sa.create_engine(url)
            yield {
                "seed": seed,
                "sb": sb,
                "world": world,
                "dag": storm_module["dag"],
                "engine": engine,
                "mp": mp,
                "ambiguous": counter,
                "summaries": storm_module["summaries"],
            }
            engine.dispose()
    finally:
        http_log.removeHandler(counter)


# ---- helpers ---------------------------------------------------------------------------------------
def sandbox_call(env, system: str, path: str, body: dict | None = None) -> dict:
    url = f"{env['sb'].urls[system]}/_sandbox/{path}"
    if body is None:
        return requests.get(url, timeout=10).json()
    r = requests.post(url, json=body, timeout=10)
    r.raise_for_status()
    return r.json()


def storm_run(env) -> str:
    now = env["world"].now
    dr = env["dag"].test(run_after=pendulum.instance(now, tz="Asia/Ho_Chi_Minh"))
    assert str(dr.state) == "success", (env["seed"], dr.state)
    return dr.run_id


def stage_counts(env, run_id: str, stage: str) -> dict:
    with env["engine"].connect() as c:
        row = (
            c.execute(
                sa.text(
                    "SELECT status, records_in, published, errors, details FROM pipeline_runs"
                    " WHERE run_id = :r AND source_id = :s AND stage = :st"
                ),
                {"r": run_id, "s": STORM_SOURCE, "st": stage},
            )
            .mappings()
            .one()
        )
    assert row["status"] == "success", (stage, row)
    return {
        **json.loads(row["details"]),
        "records_in": row["records_in"],
        "published": row["published"],
        "errors": row["errors"],
    }


def stage_seconds(env, run_id: str) -> dict:
    with env["engine"].connect() as c:
        rows = c.execute(
            sa.text("SELECT stage, details FROM pipeline_runs WHERE run_id = :r AND source_id = :s"),
            {"r": run_id, "s": STORM_SOURCE},
        ).all()
    return {st: json.loads(d or "{}").get("duration_s") for st, d in rows}


NIGHT_KEYS = (
    "published",
    "errors",
    "dossiers_unsure",
    "dossiers_retryable",
    "progress_sent",
    "progress_found_applied",
    "progress_unsure",
    "progress_retryable",
    "progress_waiting",
    "verify_checked",
    "mismatches",
    "sync_rate",
)


def aggregate(summaries: dict[int, dict]) -> dict:
    injected: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter()
    for s in summaries.values():
        for system, kinds in s["injected"].items():
            injected.setdefault(system, Counter()).update(kinds)
        for k, v in s["totals"].items():
            totals[k] += v
        totals["duplicate_code_published_split_across_runs"] += len(
            s["duplicate_code_published_split_across_runs"]
        )
        for k, v in s["storm_requests"].items():
            totals[f"storm_requests_{k}"] += v
    return {
        "seeds": sorted(summaries),
        "seeds_exact": sum(1 for s in summaries.values() if s["exact"]),
        "nights": sum(s["nights"] for s in summaries.values()),
        "seconds": round(sum(s["seconds"] for s in summaries.values()), 1),
        "injected": {k: dict(sorted(v.items())) for k, v in sorted(injected.items())},
        "totals": dict(sorted(totals.items())),
    }


# ---- the storm ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("storm_env", SEEDS, indirect=True, ids=[f"seed{s}" for s in SEEDS])
def test_fault_storm_seed(storm_env):
    env = storm_env
    seed, world = env["seed"], env["world"]
    t0 = time.monotonic()
    injected: dict[str, Counter[str]] = {name: Counter() for name in PROFILES}
    commit_lost_by_mode: Counter[str] = Counter()
    requests_faultable: Counter[str] = Counter()  # requests that drew from the storm's profile
    totals: Counter[str] = Counter()
    nights: list[dict] = []
    for night in range(1, STORM_NIGHTS + 2):
        storm = night <= STORM_NIGHTS
        if night > 1:
            world.advance(days=1)
        for name, profile in PROFILES.items():
            sandbox_call(env, name, "faults", profile(seed, night) if storm else {})
        # a rotating sample of read-backs while it storms; the quiet night verifies everything
        env["mp"].setenv("TTHC_VERIFY_SAMPLE", "10" if storm else "2000")
        t_night = time.monotonic()
        run_id = storm_run(env)
        night_seconds = round(time.monotonic() - t_night, 1)
        night_injected = {}
        for name in PROFILES:
            faults = sandbox_call(env, name, "state")["faults"]
            injected[name].update(faults["injected"])
            night_injected[name] = faults["injected"]
            if storm:
                requests_faultable[name] += faults["faultable_requests"]
        if storm:
            mode = portal_profile(seed, night)["commit_lost_mode"]
            commit_lost_by_mode[mode] += night_injected["portal"].get("commit_lost", 0)
        counts = stage_counts(env, run_id, "publish")
        for k in ("progress_found_applied", "progress_unsure", "dossiers_unsure", "progress_sent"):
            totals[k] += counts.get(k) or 0
        ext = stage_counts(env, run_id, "extract")
        nights.append(
            {
                "night": night,
                "storm": storm,
                "seconds": night_seconds,
                "stage_seconds": stage_seconds(env, run_id),
                "injected": night_injected,
                "extract_records": ext["records_in"],
                **{k: counts.get(k) for k in NIGHT_KEYS},
            }
        )
    elapsed = time.monotonic() - t0

    igate_state = sandbox_call(env, "igate", "state")
    portal = sandbox_call(env, "portal", "state")
    totals["ambiguous_portal_writes"] = env["ambiguous"].count
    totals["portal_session_refusals"] = portal["session_refusals"]
    totals["portal_sessions_issued"] = portal["sessions_issued"]
    totals["portal_create_conflicts"] = sum(h["create_conflicts"] for h in portal["dossiers"].values())
    totals["igate_tokens_issued"] = igate_state["counts"]["tokens_issued"]
    totals["igate_unauthorized"] = igate_state["counts"]["unauthorized"]
    totals["igate_records_touched_while_paging"] = igate_state["counts"]["records_touched_while_paging"]
    totals["igate_pages_served"] = igate_state["counts"]["pages_served"]

    # ---- against the ground truth -------------------------------------------------------------------
    truth = world.expected(STORM_SOURCE)
    assert truth["publishable_codes"] and truth["quarantined_codes"], "world too small"
    by_code = {r.dossier.dossier_code: r.dossier for r in world.records(STORM_SOURCE)}
    held = portal["dossiers"]
    problems: dict[str, object] = {}

    with env["engine"].connect() as c:
        in_warehouse = {
            r[0]
            for r in c.execute(
                sa.text("SELECT DISTINCT dossier_code FROM dossiers WHERE source_id = :s"),
                {"s": STORM_SOURCE},
            )
            if r[0] is not None
        }
        history = c.execute(
            sa.text(
                "SELECT dossier_code, version, updated_at, payload FROM dossier_history"
                " WHERE source_id = :s ORDER BY dossier_code, version"
            ),
            {"s": STORM_SOURCE},
        ).all()
        open_msgs = c.execute(
            sa.text(
                "SELECT dossier_code, kind, status FROM publish_outbox"
                " WHERE source_id = :s AND status <> 'confirmed'"
            ),
            {"s": STORM_SOURCE},
        ).all()
    # nothing lost to paging: every dossier the source holds reached the warehouse
    problems["not_pulled"] = sorted(truth["codes"] - in_warehouse)
    # every valid dossier on the portal, and nothing else
    problems["missing_on_portal"] = sorted(truth["publishable_codes"] - set(held))
    # A known limitation, not of publishing (reported, kept out of the verdict): validation finds a
    # duplicate code only among the records one run pulled. When the storm makes one record of a
    # duplicate pair change while the client pages, that record moves to the next night's window,
    # so no run sees both: the code passes validation and is published (issue for the validate
    # stage). Any other non-publishable dossier on the portal is a failure.
    duplicates = {
        r.dossier.dossier_code for r in world.records(STORM_SOURCE) if "duplicate_code" in r.defects
    }
    extra = set(held) - truth["publishable_codes"]
    split_duplicates = sorted(extra & duplicates)
    problems["not_publishable_on_portal"] = sorted(extra - duplicates)
    problems["wrong_status"] = sorted(
        code
        for code, h in held.items()
        if code not in duplicates and int(h["record"]["TrangThaiHoSo"]) != by_code[code].status
    )
    # no progress entry received twice
    problems["progress_received_twice"] = sorted(
        code for code, h in held.items() for p in h["progress"] if p["count"] != 1
    )
    # every status change the warehouse saw is shown exactly once (time and status of each)
    seen: dict[str, list[tuple[str, int]]] = {}
    last: dict[str, int | None] = {}
    for code, _version, updated_at, payload in history:
        status = json.loads(payload)["status"]
        if status is None or status == last.get(code):
            continue
        last[code] = status
        at = updated_at if isinstance(updated_at, datetime) else datetime.fromisoformat(str(updated_at))
        seen.setdefault(code, []).append((at.strftime("%Y%m%d%H%M%S"), status))
    changes = 0
    wrong_progress = []
    for code, h in held.items():
        shown = sorted((p["entry"]["ThoiDiemXuLy"], p["entry"]["TrangThai"]) for p in h["progress"])
        if shown != seen.get(code):
            wrong_progress.append(code)
        changes += len(shown)
    problems["progress_not_matching_history"] = wrong_progress
    problems["outbox_open"] = sorted({m[0] for m in open_msgs if m[0] in truth["publishable_codes"]})
    final = stage_counts(env, run_id, "publish")
    problems = {k: v for k, v in problems.items() if v}

    summary = {
        "seed": seed,
        "anchor": world.now.isoformat(timespec="minutes"),
        "exact": not problems,
        "nights": len(nights),
        "seconds": round(elapsed, 1),
        "source_codes": len(truth["codes"]),
        "publishable": len(truth["publishable_codes"]),
        "on_portal": len(held),
        "progress_entries_on_portal": changes,
        "injected": {k: dict(sorted(v.items())) for k, v in injected.items()},
        "commit_lost_by_mode": dict(commit_lost_by_mode),
        "storm_requests": dict(requests_faultable),
        "totals": dict(sorted(totals.items())),
        "final_sync_rate": final["sync_rate"],
        "problems": problems,
        "duplicate_code_published_split_across_runs": split_duplicates,
        "per_night": nights,
    }
    env["summaries"][seed] = summary
    print(f"\nFAULT STORM seed {seed} " + json.dumps(summary, ensure_ascii=False))

    assert not problems, summary

    # the storm was real, and the clients met it (every kind on every system over all seeds: below;
    # the population database gets a handful of requests per seed, the agency system and portal
    # tens to hundreds)
    quiet = [name for name in ("portal", "igate") if not sum(injected[name].values())]
    assert not quiet, f"no fault injected on {quiet}: {summary}"
    assert injected["portal"]["commit_lost"] >= 1 and totals["ambiguous_portal_writes"] >= 1, summary
    assert totals["portal_session_refusals"] >= 1, summary
    assert totals["igate_records_touched_while_paging"] >= 1, summary
    assert changes > len(held), "the nights moved dossiers on"

    # the warehouse agrees: its read-back found everything in sync
    assert final["mismatches"] == 0 and final["progress_missing"] == 0 and final["progress_duplicates"] == 0
    assert final["verify_in_sync"] == final["verify_publishable"] == len(truth["publishable_codes"])
    assert final["sync_rate"] == 1.0 and final["failing_repeatedly"] == 0


def test_fault_storm_every_kind_over_all_seeds(storm_module, request):
    """Over the 10 seeds every fault kind was injected on every system it applies to (a single
    seed's few hundred requests cannot promise a 2 % kind), and every seed ended exact."""
    summaries = storm_module["summaries"]
    selected = [i for i in request.session.items if getattr(i, "originalname", "") == "test_fault_storm_seed"]
    if len(selected) < len(SEEDS):
        pytest.skip(f"only {len(selected)} of the {len(SEEDS)} seeds were selected")
    assert set(summaries) == set(SEEDS), (
        f"seeds that did not finish their nights: {set(SEEDS) - set(summaries)}"
    )
    agg = aggregate(summaries)
    missing = {
        system: [k for k in kinds if not agg["injected"].get(system, {}).get(k)]
        for system, kinds in EXPECTED_KINDS.items()
    }
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"fault kinds never injected over {len(SEEDS)} seeds: {missing}; {agg}"
    assert agg["seeds_exact"] == len(SEEDS), agg
    t = agg["totals"]
    assert t["igate_unauthorized"] >= 1 and t["portal_session_refusals"] >= 1, agg
    assert t["progress_found_applied"] >= 1, "no read-back ever found a lost answer applied"
