"""Publish: send validated dossiers whose content changed to the national portal (DVCQG).

Only dossiers that passed validation (valid or warning) and whose content hash differs from what
was last published are sent (``sql/publish_candidates.sql``), so an unchanged dossier is never sent
twice. The portal client creates, and re-sends "-3 đã tồn tại" answers as updates; after an
ambiguous failure (time-out, reset, commit-then-lost-answer) create-or-update converges to the same
state. Per-dossier state (last published hash, attempts, last error) is kept; failures are retried
next run and dossiers failing repeatedly are reported.
"""

from __future__ import annotations

from typing import Any

from tthc.connections import get_connection
from tthc.pipeline.context import StageContext


def publish(ctx: StageContext) -> dict[str, Any]:
    from connectors.portal import PortalClient, to_portal_payload
    from tthc.warehouse import repo

    sid = ctx.source.source_id
    with ctx.engine.begin() as conn:
        candidates = repo.publish_candidates(conn, sid)
    sent_ok: list = []
    failed: list[dict[str, Any]] = []
    if candidates:
        conn_info = get_connection(ctx.settings.portal_conn_id)
        client = PortalClient(
            conn_info.base_url,
            username=conn_info.login or "",
            password=conn_info.password or "",
            batch_size=ctx.settings.portal_batch_size,
            timeout=ctx.settings.http_timeout_seconds,
        )
        results = client.publish([to_portal_payload(d) for d in candidates])
        for d, r in zip(candidates, results, strict=True):
            if r.ok:
                sent_ok.append(d)
            else:
                failed.append(
                    {
                        "source_id": sid,
                        "dossier_code": d.dossier_code,
                        "error": f"{r.error_code or ''} {r.message or ''}".strip() or "failed",
                    }
                )
    with ctx.engine.begin() as conn:
        if sent_ok:
            repo.mark_published(conn, sent_ok)
        if failed:
            repo.mark_publish_failed(conn, failed)
        states = repo.publish_states(conn, sid)
    limit = ctx.settings.portal_failure_report_after
    repeated = sorted(c for c, st in states.items() if st["status"] == "failed" and st["attempts"] >= limit)
    return {
        "records_in": len(candidates),
        "records_out": len(sent_ok),
        "published": len(sent_ok),
        "errors": len(failed),
        "failing_repeatedly": len(repeated),
        "failing_codes": repeated[:50],  # dossier codes are not personal data
    }
