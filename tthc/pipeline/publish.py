"""Publish: the national portal (DVCQG) gets every validated dossier's current content and every
status change as a processing-progress entry, exactly once in effect; then a read-back verifies it.

Three steps per run (:func:`publish`), all through the warehouse's ``publish_outbox``:

1. **Queue** (:func:`queue`). Candidates are validated, not held dossiers whose current content was
   not published yet (``sql/publish_candidates.sql``). For each: its portal payload
   (``to_portal_payload``); when the portal already holds that very payload (same payload hash,
   only warehouse-side fields changed) nothing is sent and the new version is simply recorded as
   published. Otherwise a ``dossier`` message keyed ``outbox_key(source, code, "dossier",
   payload hash)``, stored *without* its payload (no copy of the portal record and its personal
   data in the outbox): the payload is the mapping of the message's ``dossier_version`` in
   ``dossier_history``, and the message's ``content_hash`` (the payload hash) checks a re-derived
   one. The run that queues a message hands the payload to the send step in memory. Its progress
   entries (:mod:`tthc.progress`, derived from the dossier's history) become ``progress``
   messages keyed by the *status change* they report (dossier, version, status), stored with their
   entry: deterministic, so a re-run, a retry or a later night queues nothing twice.
2. **Send** (:func:`send`). Messages go out batch by batch (one portal request each, per agency).
   Progress entries are *claimed* a window of ``portal_claim_batches`` batches at a time (status
   ``sent``, one attempt counted, committed), then sent, then settled (their outcomes are
   committed with the next window's claim), so a run that dies mid-request (a killed worker)
   leaves at most one window marked "maybe applied" and the next run reads back that window, not
   all it had to send. Dossier messages need no claim (create-or-update converges when sent
   again); their outcomes are committed once per window. After a whole batch failed transiently
   (the portal is unreachable) the rest waits for the next run.
   Dossiers go through ``PortalClient.publish`` (create; "-3" → update; after an ambiguous
   failure the client re-sends, which converges). Only the message of the dossier's
   current version is sent; older or no-longer-publishable ones are discarded. A dossier message
   queued by an earlier run (a failed, unsure or interrupted send, a re-queue) gets its payload
   re-derived from ``dossier_history`` at its version (:func:`_derive_payloads`); when that payload's
   hash is not the message's (the mapping changed between releases) the message is discarded,
   never sent with other content under its hash: the dossier's current content is still not
   published, so it stays a candidate (``sql/publish_candidates.sql``) and the queue step of the
   same or the next run queues the current payload under its own key. Progress entries go
   through ``PortalClient.push_progress`` once the portal holds the version they belong to, in
   version order. The portal appends whatever it receives, so:

   * an entry never sent before is sent as is; when that send is ambiguous (time-out, reset,
     5xx, committed-but-answer-lost) the client reads the dossier back with ``TraCuuHoSo`` and
     resends only the entries the portal does not show;
   * an entry whose earlier send is still unresolved (status ``sent``: ambiguous after the
     client's read-back rounds, or a run that died) is sent with ``check_first=True``: read back
     first, sent only when missing.

   Results: applied or found applied → ``confirmed``; certainly not applied (a transient failure
   before sending, a rejection) → ``failed`` (retried next run); anything else stays ``sent``.
   Per dossier ``publish_state`` keeps the published hash, version and payload hash, consecutive
   failures (``attempts``) and the last error; dossiers failing ``portal_failure_report_after``
   times are reported (codes only).
3. **Verify** (:func:`verify`). ``TraCuuHoSo`` for a rotating sample of the publishable dossiers:
   ``TTHC_VERIFY_SHARE`` of them (default 1 %), at least ``TTHC_VERIFY_MIN`` (100), at most
   ``TTHC_VERIFY_SAMPLE`` (2000); a small source is checked whole every night, a large one
   over about 100 nights. The portal's record must equal the last payload published (derived from
   ``dossier_history`` at ``publish_state.published_version`` and checked against
   ``publish_state.payload_hash``; when the mapping changed since, the portal's record is compared
   with that hash), and every confirmed progress entry must show exactly once. A differing or
   missing record is sent again next run; a missing entry is re-armed (read back, then sent). The result
   is indicator 1.4 (``1.4_sync_rate``, period ``run``, scope source and agency): dossiers whose
   current content is verified on the portal / publishable dossiers (a failed look-up does not
   count as verified; with a sample the numerator is scaled to the publishable count; no row
   when not one look-up succeeded: the rate is unknown, not 0 %). The look-ups run
   ``TTHC_VERIFY_WORKERS`` (4) at a time over one portal session; five failed in a row stop the
   verification of that run.

Counts returned (``pipeline_runs``): ``published`` (dossiers whose current content the portal now
holds, sent or unchanged), ``errors`` (dossiers with a failed or unsure send), the queue / send /
verify details (``progress_found_applied``: entries a read-back found already applied, i.e.
duplicates avoided; ``mismatches``; ``sync_rate``) and ``failing_codes``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tthc.pipeline.context import StageContext
from tthc.progress import identity, progress_entries

log = logging.getLogger(__name__)

PUBLISHABLE = ("valid", "warning")
INDICATOR_ID = "1.4_sync_rate"
#: Message statuses still to deliver: never tried / certainly not applied / maybe applied.
OPEN_STATUSES = ("pending", "failed", "sent")
MAX_LOOKUP_FAILURES_IN_A_ROW = 5


class Portal(Protocol):
    """What this stage needs of ``connectors.portal.PortalClient`` (tests pass a fake)."""

    def publish(self, payloads: Sequence[Mapping[str, Any]], *, madonvi: str | None = None) -> list: ...

    def push_progress(
        self, entries: Sequence[Mapping[str, Any]], *, madonvi: str, check_first: bool = False
    ) -> list: ...

    def lookup(self, ma_ho_so: str) -> dict[str, Any] | None: ...


def payload_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a portal payload (what "same content" means on the portal)."""
    return _canonical(payload)[1]


def _canonical(payload: Mapping[str, Any]) -> tuple[Any, str]:
    """The canonical JSON text of a payload, ready to be stored as is (``RawJSON``: not encoded a
    second time by the outbox's column type), and its SHA-256."""
    from tthc.warehouse.schema import RawJSON

    text = identity(payload)
    return RawJSON(text), hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_client(ctx: StageContext) -> Any:
    """The portal client of this run: connection from Airflow, time-outs and retries from settings."""
    from connectors.http import RetryPolicy
    from connectors.portal import PortalClient
    from tthc.connections import get_connection

    st = ctx.settings
    info = get_connection(st.portal_conn_id)
    return PortalClient(
        info.base_url,
        username=info.login or "",
        password=info.password or "",
        batch_size=st.portal_batch_size,
        timeout=st.portal_timeout_seconds or st.http_timeout_seconds,
        retry=RetryPolicy(
            max_attempts=st.portal_retry_attempts,
            backoff_max=st.portal_backoff_max_seconds,
            backoff_initial=min(0.5, st.portal_backoff_max_seconds),
            jitter=min(0.5, st.portal_backoff_max_seconds),
        ),
    )


class _LazyClient:
    """Builds the real client on first use, so a run with nothing to do needs no connection."""

    def __init__(self, ctx: StageContext) -> None:
        self._ctx = ctx
        self._client: Any = None
        self._lock = threading.Lock()  # the read-back's look-up threads share one client

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._client is None:
                self._client = make_client(self._ctx)
        return getattr(self._client, name)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


# ---- the stage -------------------------------------------------------------------------------------


def publish(ctx: StageContext, client: Portal | None = None) -> dict[str, Any]:
    """Queue, send and verify (module docstring); returns the stage's counts."""
    from tthc.warehouse import repo

    portal: Any = client if client is not None else _LazyClient(ctx)
    try:
        queued, fresh = _queue(ctx)
        sent = send(ctx, portal, queued=fresh)
        checked = verify(ctx, portal)
    finally:
        if client is None:
            portal.close()
    limit = ctx.settings.portal_failure_report_after
    with ctx.engine.begin() as conn:
        repeated = sorted(repo.publish_states(conn, ctx.source.source_id, failing_since=limit))
    published = queued["unchanged_payload"] + sent["dossiers_sent"]
    return {
        "records_in": queued["candidates"],
        "records_out": published,
        "published": published,
        "errors": sent["failed_dossiers"],
        **queued,
        **sent,
        **checked,
        "failing_repeatedly": len(repeated),
        "failing_codes": repeated[:50],  # dossier codes are not personal data
    }


# ---- 1. queue --------------------------------------------------------------------------------------


def queue(ctx: StageContext) -> dict[str, int]:
    """Put the changed dossiers and their progress entries into the outbox (idempotent)."""
    return _queue(ctx)[0]


def _queue(ctx: StageContext) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """:func:`queue`, and the messages it added as stored, with their payloads as objects
    (``{outbox_key: row}``), so the send step need not read them back."""
    from connectors.portal import to_portal_payload
    from tthc.timeutil import vn_now
    from tthc.warehouse import repo

    sid = ctx.source.source_id
    with ctx.engine.begin() as conn:
        candidates = repo.publish_candidates(conn, sid)
        legacy = _legacy_published(conn, sid)  # published before versions were recorded
        codes = [d.dossier_code for d in candidates if d.dossier_code]
        wanted = sorted(set(codes) | set(legacy))
        dstates = repo.dossier_states(conn, sid, wanted)
        pstates = repo.publish_states(conn, sid, wanted)
        histories = repo.load_status_versions(conn, sid, wanted)  # status and dates of each version
        existing = repo.outbox_keys(conn, sid, wanted)

        rows: list[dict[str, Any]] = []  # new messages (progress payloads as canonical JSON text)
        fresh: dict[str, Any] = {}  # their payloads as objects, for the send step
        now = vn_now()
        requeue: dict[str, int] = {}
        unchanged: dict[str, tuple[int, str]] = {}
        for d in candidates:
            code = d.dossier_code
            assert code is not None
            version = dstates[code].version
            payload = to_portal_payload(d)
            ph = payload_hash(payload)
            st = pstates.get(code)
            if st is not None and st["published_hash"] is not None and st["payload_hash"] == ph:
                unchanged[code] = (version, ph)  # the portal holds this very payload already
                continue
            key = repo.outbox_key(sid, code, "dossier", ph)
            if key in existing:
                requeue[key] = version  # same payload as an earlier message: send that one again
            else:
                existing.add(key)
                # stored without its payload: derived from dossier_history when sent by a later run
                rows.append(_message(sid, code, "dossier", ph, None, version, key))
                fresh[key] = payload
        n_progress = 0
        for code in wanted:
            for e in progress_entries(code, [v.status for v in histories.get(code, [])]):
                key = repo.outbox_key(sid, code, "progress", e.event)
                if key not in existing:
                    existing.add(key)
                    text, h = _canonical(e.entry)  # = e.content_hash, one encoding for both
                    rows.append(_message(sid, code, "progress", h, text, e.version, key))
                    fresh[key] = e.entry
                    n_progress += 1
        repo.outbox_put(conn, rows, now=now)
        stored = repo.outbox_new_fields(now)
        fresh = {r["outbox_key"]: {**r, **stored, "payload": fresh[r["outbox_key"]]} for r in rows}
        rearmed = repo.outbox_requeue(conn, requeue)
        if unchanged:
            repo.mark_published(
                conn,
                [
                    {"source_id": sid, "dossier_code": c, "content_hash": dstates[c].content_hash}
                    for c in unchanged
                ],
            )
            repo.set_published_versions(conn, sid, unchanged)
        if legacy:
            repo.set_published_versions(
                conn,
                sid,
                {
                    c: (v, pstates[c]["payload_hash"])
                    for c, h in legacy.items()
                    if (v := _version_of(histories.get(c, []), h)) is not None
                },
            )
    counts = {
        "candidates": len(candidates),
        "dossiers_queued": sum(1 for r in rows if r["kind"] == "dossier") + rearmed,
        "progress_queued": n_progress,
        "unchanged_payload": len(unchanged),
    }
    return counts, fresh


def _message(
    sid: str, code: str, kind: str, content_hash: str, payload: Any, version: int, key: str
) -> dict[str, Any]:
    return {
        "outbox_key": key,
        "source_id": sid,
        "dossier_code": code,
        "kind": kind,
        "content_hash": content_hash,
        "payload": payload,
        "dossier_version": version,
    }


def _legacy_published(conn: Any, sid: str) -> dict[str, str]:
    """Dossiers published without a recorded version (by an earlier release): code → hash."""
    import sqlalchemy as sa

    from tthc.warehouse import schema

    p = schema.publish_state
    q = sa.select(p.c.dossier_code, p.c.published_hash).where(
        p.c.source_id == sid, p.c.published_hash.is_not(None), p.c.published_version.is_(None)
    )
    return {code: h for code, h in conn.execute(q).all()}


def _version_of(history: list[Any], content_hash: str) -> int | None:
    """The latest of ``history``'s versions (``repo.VersionStatus``) with that content hash."""
    found = [r.status.version for r in history if r.content_hash == content_hash]
    return max(found) if found else None


def _derive_payloads(conn: Any, sid: str, items: Sequence[dict[str, Any]]) -> list[str]:
    """Fill in the payload of dossier messages queued by an earlier run (the outbox stores none):
    ``to_portal_payload`` of the message's ``dossier_version`` in ``dossier_history``, read for
    just those versions. Returns the keys of the messages whose derived payload does not hash to
    their ``content_hash`` (the mapping changed since they were queued) or whose version is not
    stored: those are left without a payload and must not be sent. (The send step passes the
    messages of each dossier's current version: one version per dossier.)"""
    from connectors.portal import to_portal_payload
    from tthc.warehouse import repo

    if not items:
        return []
    wanted = {i["dossier_code"]: i["dossier_version"] for i in items if i["dossier_version"] is not None}
    versions = repo.load_versions(conn, sid, wanted)
    bad: list[str] = []
    for i in items:
        d = versions.get(i["dossier_code"])
        if d is None or i["dossier_version"] is None or wanted[i["dossier_code"]] != i["dossier_version"]:
            bad.append(i["outbox_key"])
            continue
        payload = to_portal_payload(d)
        if payload_hash(payload) == i["content_hash"]:
            i["payload"] = payload
        else:
            bad.append(i["outbox_key"])
    return bad


# ---- 2. send ---------------------------------------------------------------------------------------


def _certainly_not_applied(r: Any) -> bool:
    """A result that proves the request did not change the portal: a transient failure before it
    was processed (or a batch not sent), or a rejection with one of the portal's codes."""
    return bool(r.retryable) or str(r.error_code or "").startswith("-")


def _error_text(r: Any) -> str:
    return f"{r.error_code or ''} {r.message or ''}".strip() or "failed"


def _batches(items: Sequence[dict[str, Any]], size: int, key: Any) -> Iterable[list[dict[str, Any]]]:
    """``items`` grouped by ``key`` (the agency a portal request is made for; order kept), then cut
    into batches of ``size``: one portal request each (see :class:`_Ledger` for how batches are
    claimed and settled)."""
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for i in items:
        groups[key(i)].append(i)
    for group in groups.values():
        for k in range(0, len(group), size):
            yield group[k : k + size]


def _stop_reason(results: Sequence[Any]) -> str | None:
    """A whole batch met a transient failure that outlived the client's retries: the portal is
    unreachable, so the rest of this run's batches are not sent (next run); else None."""
    if results and all(not r.ok and r.retryable for r in results):
        return _error_text(results[0])
    return None


class _Ledger:
    """Claims and settlements of the send step: one transaction per *window* of batches.

    Progress entries (the portal appends what it receives) are claimed before they are sent: a
    window of at most ``portal_claim_batches`` batches is marked ``sent`` ("maybe applied", one
    attempt counted) and committed, then its batches go out one by one. Their outcomes are written
    by the transaction that claims the *next* window, or by :meth:`flush` after the last one, so a
    run that dies (a killed worker) leaves at most one window "maybe applied": the next run reads
    back that window only, not every message the dead run had taken. A larger window means fewer
    commits and a larger read-back after a crash; 1 is a claim per batch.

    Dossier messages are not claimed: ``DongBoHoSoMC`` creates or updates, so sending the same
    payload again converges. Their outcomes are written (attempts counted then) every window of
    batches; a run that dies leaves the unsettled ones ``pending`` and the next run sends them again.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        # outcomes not written yet: (confirmed keys, [(key, status, error)], published-state rows,
        # whether a claim already counted the attempt)
        self.pending: list[tuple[list[str], list[tuple[str, str, str]], list[dict[str, Any]], bool]] = []

    def settle_later(
        self,
        confirmed: list[str],
        others: list[tuple[str, str, str]],
        published: list[dict[str, Any]] | None = None,
        *,
        claimed: bool = True,
    ) -> None:
        """A batch's outcome: its confirmed keys, the others' (key, status, error), and for
        dossiers the ``publish_state`` rows of those the portal took; ``claimed=False`` for
        messages sent without a claim (their attempt is counted now)."""
        self.pending.append((confirmed, others, published or [], claimed))

    def write(self, conn: Any) -> None:
        from tthc.warehouse import repo

        confirmed = [k for batch in self.pending for k in batch[0]]
        published = [row for batch in self.pending for row in batch[2]]
        repo.outbox_settle(conn, confirmed, "confirmed")
        for _, others, _, claimed in self.pending:
            for key, status, error in others:
                repo.outbox_settle(conn, [key], status, error=error, count_attempt=not claimed)
        if published:
            repo.mark_published(conn, published)
        self.pending.clear()

    def claim(self, keys: Sequence[str]) -> None:
        from tthc.warehouse import repo

        with self.engine.begin() as conn:
            self.write(conn)
            repo.outbox_mark(conn, keys, "sent")

    def flush(self) -> None:
        if self.pending:
            with self.engine.begin() as conn:
                self.write(conn)


def send(
    ctx: StageContext, client: Portal, *, queued: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Deliver the open outbox messages of this source (module docstring, step 2); ``queued``:
    the messages :func:`_queue` has just added (rows with their payloads), not read back unless
    changed since (dossier messages queued by an earlier run have their payloads derived from
    ``dossier_history``)."""
    from connectors.portal import to_portal_payload
    from tthc.warehouse import repo

    sid = ctx.source.source_id
    with ctx.engine.begin() as conn:
        items = repo.outbox_items(conn, sid, statuses=OPEN_STATUSES, known_rows=queued)
        codes = sorted({i["dossier_code"] for i in items})
        dstates = repo.dossier_states(conn, sid, codes)
        held = repo.held_codes(conn, sid)

    def publishable(code: str) -> bool:
        st = dstates.get(code)
        return st is not None and st.quality_status in PUBLISHABLE and code not in held

    failures: dict[str, str] = {}
    succeeded: set[str] = set()
    confirmed_now: set[str] = set()  # dossiers whose current version the portal took in this run
    counts: Counter[str] = Counter()

    # -- dossiers: only the message of the current, publishable version ----------------------------
    to_send: list[dict[str, Any]] = []
    discard: list[str] = []
    for i in items:
        if i["kind"] != "dossier":
            continue
        st = dstates.get(i["dossier_code"])
        if publishable(i["dossier_code"]) and st is not None and i["dossier_version"] == st.version:
            to_send.append(i)
        else:
            discard.append(i["outbox_key"])
    with ctx.engine.begin() as conn:
        # queued by an earlier run: the payload comes from dossier_history (the outbox has none)
        earlier = [i for i in to_send if i["payload"] is None]
        remapped = set(_derive_payloads(conn, sid, earlier))
        if remapped:  # not sent under a hash it does not have: the dossier is queued again
            to_send = [i for i in to_send if i["outbox_key"] not in remapped]
        repo.outbox_discard(conn, [*discard, *sorted(remapped)])
    counts["dossiers_discarded"] = len(discard)
    counts["dossiers_rederived"] = len(earlier) - len(remapped)
    counts["dossiers_remapped"] = len(remapped)
    if remapped:
        log.warning(
            "publish %s: %d queued dossier messages no longer match their version's payload (the mapping"
            " changed); discarded, their dossiers are queued again",
            sid,
            len(remapped),
        )
    batch = max(1, int(ctx.settings.portal_batch_size))
    window = max(1, int(ctx.settings.portal_claim_batches))  # batches per claim / settlement
    stopped: str | None = None  # why the portal is not asked any more this run (it is unreachable)
    ledger = _Ledger(ctx.engine)
    for chunk in _batches(to_send, batch, lambda i: i["payload"].get("DonViXuLy")):
        if stopped is not None:  # not sent, not claimed: certainly not applied
            for i in chunk:
                failures.setdefault(i["dossier_code"], stopped)
            counts["dossiers_retryable"] += len(chunk)
            continue
        results = client.publish([i["payload"] for i in chunk])  # not claimed: see _Ledger
        stopped = _stop_reason(results)
        confirmed, not_applied, unsure = [], [], []
        for i, r in zip(chunk, results, strict=True):
            code = i["dossier_code"]
            if r.ok:
                confirmed.append(i)
                succeeded.add(code)
            else:
                failures.setdefault(code, _error_text(r))
                (not_applied if _certainly_not_applied(r) else unsure).append(i)
        settled = [(i["outbox_key"], "failed", failures[i["dossier_code"]]) for i in not_applied]
        settled += [(i["outbox_key"], "sent", failures[i["dossier_code"]]) for i in unsure]
        published = [
            {
                "source_id": sid,
                "dossier_code": i["dossier_code"],
                "content_hash": dstates[i["dossier_code"]].content_hash,
                "published_version": i["dossier_version"],
                "payload_hash": i["content_hash"],
            }
            for i in confirmed
        ]

        ledger.settle_later([i["outbox_key"] for i in confirmed], settled, published, claimed=False)
        if len(ledger.pending) >= window:
            ledger.flush()
        confirmed_now.update(i["dossier_code"] for i in confirmed)
        counts["dossiers_sent"] += len(confirmed)
        counts["dossiers_retryable"] += len(not_applied)
        counts["dossiers_unsure"] += len(unsure)

    ledger.flush()  # the last dossier batches: settled before the portal's state is read below

    # -- progress: once the portal holds the version, in version order ----------------------------
    progress = [i for i in items if i["kind"] == "progress"]
    with ctx.engine.begin() as conn:
        pstates = repo.publish_states(conn, sid, sorted({i["dossier_code"] for i in progress}))

        def held(i: dict[str, Any]) -> bool:  # the portal holds the version the entry belongs to
            on_portal = (pstates.get(i["dossier_code"]) or {}).get("published_version")
            return on_portal is not None and (i["dossier_version"] or 0) <= on_portal

        ready = [i for i in progress if held(i)]
        rcodes = sorted({i["dossier_code"] for i in ready})  # the others wait: no agency needed
        # madonvi of a progress call: the agency the portal holds the dossier under (the last
        # payload it accepted), else the dossier's current agency
        agencies = repo.agencies_where(conn, sid, codes=rcodes)
        # Confirmed by this run: the current version, so the dossier's current agency. Confirmed
        # by an earlier run: the agency of the payload of the version the portal holds (derived
        # from dossier_history; the dossier may have moved since).
        held_versions = {c: pstates[c]["published_version"] for c in rcodes if c not in confirmed_now}
        for c, d in repo.load_versions(conn, sid, held_versions).items():
            if agency := to_portal_payload(d).get("DonViXuLy"):
                agencies[c] = agency
    eligible = [i for i in ready if agencies.get(i["dossier_code"])]
    eligible.sort(key=lambda i: (i["dossier_code"], i["dossier_version"] or 0, i["created_at"]))
    counts["progress_waiting"] = len(progress) - len(eligible)
    unknown = {i["outbox_key"] for i in eligible if i["status"] == "sent"}
    check_all = ctx.settings.portal_progress_check_first
    by_agency: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i in eligible:
        by_agency[str(agencies[i["dossier_code"]])].append(i)
    plan: list[tuple[str, bool, list[dict[str, Any]]]] = []  # (madonvi, check_first, batch)
    for agency, group in by_agency.items():
        for check_first in (True, False):
            part = [i for i in group if ((i["outbox_key"] in unknown) or check_all) == check_first]
            plan.extend((agency, check_first, chunk) for chunk in _batches(part, batch, lambda i: None))
    # as the client's own bookkeeping, a portal found unreachable stops one agency and read-back mode
    stopped_for: dict[tuple[str, bool], str] = {}
    for w in range(0, len(plan), window):
        batches = plan[w : w + window]
        live = [chunk for agency, cf, chunk in batches if (agency, cf) not in stopped_for]
        if live:  # claimed (and the last window settled) before any of it is sent
            ledger.claim([i["outbox_key"] for chunk in live for i in chunk])
        claimed = {id(chunk) for chunk in live}
        for agency, check_first, chunk in batches:
            stop = stopped_for.get((agency, check_first))
            if stop is not None:  # not sent: certainly not applied, but a status "sent" stays unsure
                for i in chunk:
                    failures.setdefault(i["dossier_code"], stop)
                    counts["progress_unsure" if i["outbox_key"] in unknown else "progress_retryable"] += 1
                if id(chunk) in claimed:  # claimed with its window: take the claim back
                    back = [(i["outbox_key"], "failed", stop) for i in chunk]
                    ledger.settle_later([], [b for b in back if b[0] not in unknown])
                continue
            results = client.push_progress(
                [i["payload"] for i in chunk], madonvi=agency, check_first=check_first
            )
            if (reason := _stop_reason(results)) is not None:
                stopped_for[(agency, check_first)] = reason
            confirmed_keys: list[str] = []
            failed_keys: dict[str, str] = {}
            for i, r in zip(chunk, results, strict=True):
                code = i["dossier_code"]
                if r.ok:
                    confirmed_keys.append(i["outbox_key"])
                    succeeded.add(code)
                    counts["progress_found_applied" if r.action == "verified" else "progress_sent"] += 1
                    continue
                failures.setdefault(code, _error_text(r))
                if _certainly_not_applied(r) and i["outbox_key"] not in unknown:
                    failed_keys[i["outbox_key"]] = _error_text(r)
                    counts["progress_retryable"] += 1
                else:
                    counts["progress_unsure"] += 1  # maybe applied: read back before resending
            ledger.settle_later(  # written with the next window's claim: see _Ledger
                confirmed_keys, [(key, "failed", err) for key, err in failed_keys.items()]
            )
    with ctx.engine.begin() as conn:
        ledger.write(conn)  # the last progress window's outcome
        if failures:
            repo.mark_publish_failed(
                conn, [{"source_id": sid, "dossier_code": c, "error": e} for c, e in sorted(failures.items())]
            )
        repo.clear_publish_failures(conn, sid, sorted(succeeded - set(failures)))
    if failures:
        log.warning(
            "publish %s: %d dossiers with failed or unsure sends (retried next run)", sid, len(failures)
        )
    for k in (
        "dossiers_sent",
        "dossiers_retryable",
        "dossiers_unsure",
        "progress_sent",
        "progress_found_applied",
        "progress_retryable",
        "progress_unsure",
    ):
        counts.setdefault(k, 0)
    return {**counts, "failed_dossiers": len(failures)}


# ---- 3. verify -------------------------------------------------------------------------------------


def _sample(codes: Sequence[str], n: int, salt: str) -> list[str]:
    """All codes when they fit, else ``n`` of them chosen by a hash salted with the run id (a
    different sample each run, reproducible for a given run)."""
    if len(codes) <= n:
        return list(codes)

    def rank(c: str) -> str:
        return hashlib.sha256(f"{salt}\x1f{c}".encode()).hexdigest()

    return sorted(sorted(codes, key=rank)[:n])


@dataclass
class _Answers:
    """What the read-back's look-ups found: ``{code: TraCuuHoSo data or None (not held)}`` for
    those answered; ``stopped_after``: failures in a row that made it stop asking (0: it did not)."""

    found: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    stopped_after: int = 0


def _look_up(portal: Any, codes: Sequence[str], workers: int) -> _Answers:
    """``TraCuuHoSo`` for each of ``codes``, ``workers`` at a time (the portal has no bulk read:
    each is a round trip, so they overlap). A failed look-up leaves its code out; after
    :data:`MAX_LOOKUP_FAILURES_IN_A_ROW` failures in a row (as they complete) the portal is taken
    for down and no new look-up starts."""
    from concurrent.futures import ThreadPoolExecutor

    from connectors.http import ConnectorError

    out = _Answers()
    lock = threading.Lock()
    in_a_row = 0

    def one(code: str) -> None:
        nonlocal in_a_row
        if out.stopped_after:
            return
        try:
            found = portal.lookup(code)
        except ConnectorError as exc:
            log.info("verify: look-up failed (%s)", type(exc).__name__)
            with lock:
                in_a_row += 1
                if in_a_row >= MAX_LOOKUP_FAILURES_IN_A_ROW and not out.stopped_after:
                    out.stopped_after = in_a_row
            return
        with lock:
            in_a_row = 0
            out.found[code] = found

    if workers <= 1 or len(codes) <= 1:
        for code in codes:
            one(code)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
            for _ in pool.map(one, codes):
                pass
    return out


def _same(held: Any, sent: Mapping[str, Any] | None) -> bool:
    return isinstance(held, Mapping) and sent is not None and identity(held) == identity(sent)


def _hashes_to(held: Any, recorded: str) -> bool:
    """The portal's record is the payload whose hash was recorded at publication (what
    :func:`_same` with that payload says, when the payload itself cannot be derived any more)."""
    return isinstance(held, Mapping) and payload_hash(held) == recorded


def verify(ctx: StageContext, client: Portal | None = None) -> dict[str, Any]:
    """Read back publishable dossiers from the portal and compare them with what was published;
    write indicator 1.4 and return the counts (module docstring, step 3)."""
    from connectors.portal import to_portal_payload
    from tthc.warehouse import repo

    sid = ctx.source.source_id
    cfg = ctx.settings
    with ctx.engine.begin() as conn:
        agency_of = repo.agencies_where(conn, sid, quality_statuses=PUBLISHABLE)
        held_back = repo.held_codes(conn, sid)
        publishable = sorted(c for c in agency_of if c not in held_back)
        n = min(cfg.verify_sample, max(cfg.verify_min, math.ceil(cfg.verify_share * len(publishable))))
        chosen = _sample(publishable, n, ctx.run_id) if n > 0 else []
        dstates = repo.dossier_states(conn, sid, chosen)
        pstates = repo.publish_states(conn, sid, chosen)
        on_portal = {c: st for c in chosen if (st := pstates.get(c)) and st["published_hash"] is not None}
        # what the portal should hold: the payload of the published version (dossier_history)
        published_versions = repo.load_versions(
            conn, sid, {c: v for c, st in on_portal.items() if (v := st["published_version"]) is not None}
        )
        # published before versions were recorded: compared with the current dossier
        unversioned = [c for c, st in on_portal.items() if st["published_version"] is None]
        dossiers: dict[str, Any] = {}
        if unversioned:
            dossiers = {d.dossier_code: d for d in repo.load_dossiers(conn, sid, unversioned)}
        messages = repo.outbox_items(conn, sid, codes=chosen, kinds=("progress",), statuses=("confirmed",))
    out: dict[str, Any] = {
        "verify_publishable": len(publishable),
        "verify_checked": 0,
        "verify_in_sync": 0,
        "mismatches": 0,
        "verify_missing": 0,
        "verify_not_published": 0,
        "verify_unverified": 0,
        "verify_remapped": 0,
        "progress_missing": 0,
        "progress_duplicates": 0,
        "sync_rate": None,
    }
    if not chosen:
        return out
    own = client is None
    portal: Any = client if client is not None else _LazyClient(ctx)

    last_payload: dict[str, dict[str, Any]] = {}
    by_hash_only: set[str] = set()  # the mapping changed since publication: the payload hash decides
    for code, d in published_versions.items():
        payload = to_portal_payload(d)
        recorded = pstates[code]["payload_hash"]
        if recorded is None or payload_hash(payload) == recorded:
            last_payload[code] = payload
        else:
            by_hash_only.add(code)
    entries: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in messages:
        entries[m["dossier_code"]].append(m)

    in_sync: set[str] = set()
    reset: dict[str, bool] = {}  # code → the portal does not hold it at all
    rearm: list[str] = []
    published = [c for c in chosen if (pstates.get(c) or {}).get("published_hash") is not None]
    try:
        answers = _look_up(portal, published, cfg.verify_workers)
    finally:
        if own:
            portal.close()
    if answers.stopped_after:
        log.warning(
            "verify %s: %d look-ups failed in a row; the rest is left unverified", sid, answers.stopped_after
        )
    for code in chosen:
        st = pstates.get(code)
        if st is None or st["published_hash"] is None:
            out["verify_not_published"] += 1
            continue
        current = st["published_hash"] == dstates[code].content_hash
        expected = last_payload.get(code)
        if expected is None and current and code in dossiers:
            expected = to_portal_payload(dossiers[code])  # published before versions were recorded
        if code not in answers.found:  # the look-up failed, or was not made (the portal is down)
            out["verify_unverified"] += 1
            continue
        found = answers.found[code]
        out["verify_checked"] += 1
        if found is None:
            out["mismatches"] += 1
            out["verify_missing"] += 1
            reset[code] = True
            rearm.extend(m["outbox_key"] for m in entries.get(code, []))
            continue
        if code in by_hash_only:
            out["verify_remapped"] += 1
            same = _hashes_to(found.get("HoSo"), st["payload_hash"])
        else:
            same = None if expected is None else _same(found.get("HoSo"), expected)
        if same is None:
            out["verify_unverified"] += 1
        elif not same:
            out["mismatches"] += 1
            reset[code] = False
        elif current:
            in_sync.add(code)
        shown = Counter(identity(e) for e in found.get("TienDo") or [] if isinstance(e, Mapping))
        for m in entries.get(code, []):
            k = shown[identity(m["payload"])]
            if k == 0:
                out["progress_missing"] += 1
                rearm.append(m["outbox_key"])
            elif k > 1:
                out["progress_duplicates"] += 1

    out["verify_in_sync"] = len(in_sync)
    with ctx.engine.begin() as conn:
        for missing in (True, False):
            codes = [c for c, m in reset.items() if m == missing]
            if codes:
                what = "not on the portal" if missing else "portal content differs from the last publication"
                repo.reset_published(conn, sid, codes, error=f"verify: {what}", missing=missing)
        # maybe lost on the portal: read back, then send what is missing
        repo.outbox_settle(conn, rearm, "sent", error="verify: not shown by the portal")
        if out["verify_checked"] or not out["verify_unverified"]:  # else the portal never answered: unknown
            repo.save_indicators(conn, _indicator_rows(ctx, publishable, agency_of, chosen, in_sync, out))
    if out["mismatches"] or out["progress_missing"] or out["progress_duplicates"]:
        log.warning(
            "verify %s: %d dossiers differ on the portal (%d missing); progress: %d missing, %d twice",
            sid,
            out["mismatches"],
            out["verify_missing"],
            out["progress_missing"],
            out["progress_duplicates"],
        )
    return out


def _indicator_rows(
    ctx: StageContext,
    publishable: Sequence[str],
    agency_of: Mapping[str, str | None],
    chosen: Sequence[str],
    in_sync: set[str],
    out: dict[str, Any],
) -> list[dict[str, Any]]:
    """1.4 per source and agency. With a sample, the numerator is the sample's share scaled to the
    publishable dossiers (an estimate); the denominator is always the publishable count."""
    sid = ctx.source.source_id
    groups: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])  # publishable, checked, ok
    chosen_set = set(chosen)
    for c in publishable:
        for key in (("source", sid), ("agency", agency_of.get(c) or "")):
            if not key[1]:
                continue
            g = groups[key]
            g[0] += 1
            if c in chosen_set:
                g[1] += 1
                g[2] += c in in_sync
    rows = []
    for (scope, code), (total, checked, ok) in sorted(groups.items()):
        if not checked:
            continue
        num = ok if checked == total else ok * total / checked
        rows.append(
            {
                "period_type": "run",
                "period_start": ctx.window_end.date(),
                "scope": scope,
                "scope_code": code,
                "indicator_id": INDICATOR_ID,
                "numerator": num,
                "denominator": total,
                "run_id": ctx.run_id,
            }
        )
        if scope == "source":
            out["sync_rate"] = round(num / total, 4) if total else None
    return rows
