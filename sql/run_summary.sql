-- What one pipeline run did: one line per source and stage, in the order the stages started.
--
-- Parameters: run_id
-- Portable: runs unchanged on SQLite and PostgreSQL (durations are computed by the caller:
-- date arithmetic differs between the two).
SELECT
    r.source_id,
    r.stage,
    r.status,
    r.started_at,
    r.finished_at,
    r.records_in,
    r.records_out,
    r.quarantined,
    r.matched,
    r.published,
    r.errors,
    r.error_text
FROM pipeline_runs AS r
WHERE r.run_id = :run_id
ORDER BY r.source_id, r.started_at, r.stage
