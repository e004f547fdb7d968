-- Dossiers whose indicators fall in a period: received in [start, end), or, for dossiers never
-- received (no receipt date), last updated in it. Quarantined dossiers are left out (their dates
-- and statuses are not trusted), as in the per-source indicators stage. Codes only: tthc/kpi.py
-- loads the dossiers and judges each with the working-day calendar.
--
-- Parameters: start, end (DATETIME, end exclusive)
-- Portable: runs unchanged on SQLite and PostgreSQL.
SELECT
    d.source_id,
    d.dossier_code
FROM dossiers AS d
WHERE d.quality_status <> 'quarantined'
  AND COALESCE(d.received_at, d.updated_at) >= :start
  AND COALESCE(d.received_at, d.updated_at) < :end
ORDER BY d.source_id, d.dossier_code
