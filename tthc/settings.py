"""Run-time settings that are not per source: where the warehouse is, who the pipeline is when it
asks the population database, batch sizes. Read from the environment (``TTHC_*``) with defaults
suitable for the sandbox; a deployment sets them in its env file or Airflow's environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    #: Airflow connection of the national portal (DVCQG).
    portal_conn_id: str = "tthc_portal"
    #: Airflow connection of the population database via the provincial LGSP.
    lgsp_conn_id: str = "tthc_lgsp"
    #: Identity sent with every population-database request (world.md §5): service, integration, officer.
    lgsp_service_code: str = "DVC-TTHC-DONGBO"
    lgsp_integration_code: str = "TTHC-SYNC"
    lgsp_officer: str = "he-thong-dong-bo"
    lgsp_purpose: str = "Đối soát thông tin người nộp hồ sơ TTHC với CSDLQG về dân cư"
    lookup_cache_ttl_days: int = 30
    portal_batch_size: int = 100
    #: Portal batches per outbox transaction: progress entries are claimed ("maybe applied") a
    #: window of batches at a time and outcomes are committed once per window. A worker killed
    #: mid-send leaves at most one window for the next run to read back; 1 = a claim per batch.
    portal_claim_batches: int = 10
    portal_failure_report_after: int = 3
    http_timeout_seconds: float = 30.0
    #: Portal read time-out (seconds); None → ``http_timeout_seconds``.
    portal_timeout_seconds: float | None = None
    #: Attempts of one portal request on a transient failure, and the longest wait between them.
    portal_retry_attempts: int = 5
    portal_backoff_max_seconds: float = 30.0
    #: Read the portal's progress back before *every* progress send (not only after an ambiguous
    #: one): for a warehouse restored from a backup that may not know what it already sent.
    portal_progress_check_first: bool = False
    #: Read-back verification after publishing (the sync rate, 1.4): a rotating sample of
    #: ``verify_share`` of the publishable dossiers, at least ``verify_min``, at most
    #: ``verify_sample`` (0: none). The portal has no bulk read, so every checked dossier is one
    #: request: the sample keeps a quiet night's cost proportional to the source, not fixed at 2,000.
    verify_sample: int = 2000
    verify_share: float = 0.01
    verify_min: int = 100
    #: Look-ups of the read-back in flight at once (threads over one portal session).
    verify_workers: int = 4

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            portal_conn_id=_env("TTHC_PORTAL_CONN_ID", cls.portal_conn_id),
            lgsp_conn_id=_env("TTHC_LGSP_CONN_ID", cls.lgsp_conn_id),
            lgsp_service_code=_env("TTHC_LGSP_SERVICE_CODE", cls.lgsp_service_code),
            lgsp_integration_code=_env("TTHC_LGSP_INTEGRATION_CODE", cls.lgsp_integration_code),
            lgsp_officer=_env("TTHC_LGSP_OFFICER", cls.lgsp_officer),
            lookup_cache_ttl_days=int(_env("TTHC_LOOKUP_CACHE_TTL_DAYS", str(cls.lookup_cache_ttl_days))),
            portal_batch_size=min(100, int(_env("TTHC_PORTAL_BATCH_SIZE", str(cls.portal_batch_size)))),
            portal_claim_batches=max(
                1, int(_env("TTHC_PORTAL_CLAIM_BATCHES", str(cls.portal_claim_batches)))
            ),
            http_timeout_seconds=float(_env("TTHC_HTTP_TIMEOUT", str(cls.http_timeout_seconds))),
            portal_failure_report_after=int(
                _env("TTHC_PORTAL_FAILURE_REPORT_AFTER", str(cls.portal_failure_report_after))
            ),
            portal_timeout_seconds=(
                float(os.environ["TTHC_PORTAL_TIMEOUT"]) if os.environ.get("TTHC_PORTAL_TIMEOUT") else None
            ),
            portal_retry_attempts=max(
                1, int(_env("TTHC_PORTAL_RETRY_ATTEMPTS", str(cls.portal_retry_attempts)))
            ),
            portal_backoff_max_seconds=float(
                _env("TTHC_PORTAL_BACKOFF_MAX", str(cls.portal_backoff_max_seconds))
            ),
            portal_progress_check_first=_env("TTHC_PORTAL_PROGRESS_CHECK_FIRST", "").strip().lower()
            in ("1", "true", "yes"),
            verify_sample=max(0, int(_env("TTHC_VERIFY_SAMPLE", str(cls.verify_sample)))),
            verify_share=min(1.0, max(0.0, float(_env("TTHC_VERIFY_SHARE", str(cls.verify_share))))),
            verify_min=max(0, int(_env("TTHC_VERIFY_MIN", str(cls.verify_min)))),
            verify_workers=max(1, int(_env("TTHC_VERIFY_WORKERS", str(cls.verify_workers)))),
        )
