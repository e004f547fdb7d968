"""Reconcile: match each applicant against the National Population Database (Đề án 06).

Which dossiers: the ones this run created or changed, the ones an earlier run wrote and never
reconciled (it died or failed before this stage finished: ``repo.runs_without_stage``), plus
those whose lookup failed before (retried every run until it succeeds); quarantined dossiers are
left out (they are not published).
How: numbers that are not a usable CCCD/CMND are ``invalid_id`` without a lookup; the rest are
answered from the cache (keyed hash of the number, with a time-to-live) or asked in bulk through
the LGSP (1,000 per request, polled), with single lookups for the numbers a bulk job could not
answer. Every request is audited (who, when, why, how many: never a number or a name). Names are
compared with Vietnamese normalisation by :mod:`tthc.matching`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tthc.codes import cccd_problems, id_type
from tthc.connections import get_connection
from tthc.model import Dossier
from tthc.pipeline.context import StageContext
from tthc.privacy import key_hash
from tthc.timeutil import vn_now

if TYPE_CHECKING:  # pragma: no cover
    from tthc.warehouse.repo import ApplicantRow

log = logging.getLogger(__name__)

#: Single lookups after a bulk job failed for some numbers (bounded: the rest wait for next run).
MAX_STRAGGLER_LOOKUPS = 200
SAME_PERSON_CLASSES = ("matched", "matched_normalised")


def usable_id(d: Dossier | ApplicantRow) -> bool:
    n = d.applicant_id_number
    t = id_type(n)
    if t == 2:
        return True
    if t != 1:
        return False
    problems = cccd_problems(n, None, None)
    return not problems


def reconcile(ctx: StageContext) -> dict[str, Any]:
    from tthc.warehouse import repo, schema

    sid = ctx.source.source_id
    with ctx.engine.begin() as conn:  # the applicant's fields, not whole dossiers
        changed = {a.dossier_code: a for a in repo.applicants(conn, sid, run_id=ctx.run_id)}
        # what runs that extracted but never reconciled wrote (they died, or failed here) and no
        # night has matched since: theirs is still the current version of some dossiers
        for run in repo.runs_without_stage(
            conn, sid, after="extract", missing="reconcile", besides=ctx.run_id
        ):
            for a in repo.applicants(conn, sid, run_id=run, unmatched=True):
                changed.setdefault(a.dossier_code, a)
        # earlier failed look-ups are asked again: their codes only, not every match of the source
        failed_before = repo.codes_where(conn, schema.citizen_matches, sid, "match_class", ["lookup_failed"])
        retry = sorted(c for c in failed_before if c not in changed)
        if retry:
            changed.update({a.dossier_code: a for a in repo.applicants(conn, sid, codes=retry)})
    todo = [a for a in changed.values() if a.quality_status != "quarantined"]
    if not todo:
        return {"records_in": 0, "records_out": 0, "matched": 0}

    numbers = {d.applicant_id_number for d in todo if usable_id(d)}
    hashes = {n: key_hash(n, length=32) for n in numbers}
    with ctx.engine.begin() as conn:
        cached = repo.cache_get(conn, list(hashes.values()))
    registry: dict[str, dict[str, Any] | None] = {}
    for n, h in hashes.items():
        if h in cached:
            r = cached[h]
            registry[n] = None if r == repo.CACHE_NOT_FOUND else r
    to_ask = sorted(numbers - registry.keys())
    audit_events: list[dict[str, Any]] = []
    try:
        failed, errors = _lookup(ctx, to_ask, registry, audit_events)
    finally:
        # every request that reached the population database is audited, even if this stage fails
        if audit_events:
            with ctx.engine.begin() as conn:
                for row in collapse_audit(audit_events):
                    repo.audit_lookup(conn, row, now=vn_now())

    now = vn_now()
    with ctx.engine.begin() as conn:
        fresh = [
            {"id_hash": hashes[n], "result": registry[n], "fetched_at": now} for n in to_ask if n in registry
        ]
        if fresh:
            repo.cache_put(conn, fresh, timedelta(days=ctx.settings.lookup_cache_ttl_days), now=now)

    from tthc.matching import classify, lookup_failed

    rows, classes = [], Counter()
    for d in todo:
        n = d.applicant_id_number
        if not usable_id(d):
            res = classify(d, None, id_valid=False)
        elif n in failed or n not in registry:
            res = lookup_failed()
        else:
            res = classify(d, registry[n], id_valid=True)
        cls = str(res.match_class)
        classes[cls] += 1
        rows.append(
            {
                "source_id": sid,
                "dossier_code": d.dossier_code,
                "id_hash": hashes.get(n) or (key_hash(n, length=32) if n else None),  # hashed once
                "match_class": cls,
                "name_score": res.name_score,
                "birth_date_ok": res.birth_date_ok,
                "run_id": ctx.run_id,
                "checked_at": now,
            }
        )
    with ctx.engine.begin() as conn:
        repo.save_matches(conn, rows, now=now)
    return {
        "records_in": len(todo),
        "records_out": len(rows),
        "matched": sum(classes[c] for c in SAME_PERSON_CLASSES),
        "errors": errors,
        "looked_up": len(to_ask),
        "from_cache": len(numbers) - len(to_ask),
        "classes": dict(sorted(classes.items())),
    }


def _lookup(
    ctx: StageContext,
    numbers: list[str],
    registry: dict[str, dict[str, Any] | None],
    audit: list[dict[str, Any]],
) -> tuple[set[str], int]:
    """Ask the registry for ``numbers``; fills ``registry`` and ``audit`` (one event per request,
    appended as it happens); returns (failed numbers, errors)."""
    if not numbers:
        return set(), 0
    from connectors.http import ConnectorError
    from connectors.lgsp import LgspClient, LgspIdentity

    s = ctx.settings

    def on_request(kind: str, request_id: str, count: int, status: str) -> None:
        audit.append(
            {
                "request_id": request_id,
                "kind": "single" if kind == "lookup" else "bulk",
                "requested_at": vn_now(),
                "officer": s.lgsp_officer,
                "service_code": s.lgsp_service_code,
                "integration_code": s.lgsp_integration_code,
                "purpose": f"{s.lgsp_purpose} ({kind})",
                "run_id": ctx.run_id,
                "source_id": ctx.source.source_id,
                "count": count,
                "status": status,
            }
        )

    conn = get_connection(s.lgsp_conn_id)
    client = LgspClient(
        conn.base_url,
        LgspIdentity(s.lgsp_service_code, s.lgsp_integration_code, s.lgsp_officer, s.lgsp_purpose),
        on_request=on_request,
    )
    failed: set[str] = set()
    errors = 0
    try:
        results = client.lookup_many(numbers)
    except ConnectorError as e:
        log.warning("bulk lookup failed for %d numbers: %s", len(numbers), type(e).__name__)
        results, errors = {}, errors + 1
    for n in numbers:
        r = results.get(n)
        if r is None or r.status == "failed":
            failed.add(n)
        elif r.found:
            registry[n] = _fields(r.person)
        else:
            registry[n] = None
    for n in sorted(failed)[:MAX_STRAGGLER_LOOKUPS]:
        try:
            person = client.lookup(n)
        except ConnectorError:
            errors += 1
            continue
        registry[n] = _fields(person) if person is not None else None
        failed.discard(n)
    return failed, errors


def _fields(person: Any) -> dict[str, Any]:
    """``dataclasses.asdict`` of a ``RegistryPerson`` (scalar fields only: no deep copy needed)."""
    return {f.name: getattr(person, f.name) for f in dataclasses.fields(person)}


def collapse_audit(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One audit row per request id: when it was first made, the most numbers it carried and its
    last status. A bulk job's status polls carry no numbers: a job that ended ``Loi`` must still
    say how many numbers were sent under its id, not the poll's 0."""
    by_id: dict[str, dict[str, Any]] = {}
    for ev in events:
        row = by_id.get(ev["request_id"])
        if row is None:
            by_id[ev["request_id"]] = dict(ev)
        else:
            row.update(status=ev["status"], count=max(row["count"], ev["count"]))
    return list(by_id.values())
