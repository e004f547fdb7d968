-- Run statistics: one line per run, source and stage, with what the stage read and wrote, how
-- long it took (started_at / finished_at; the caller computes the duration) and how it ended.
-- Used by the engineers' digest e-mail (tthc.notify) and the dashboard's runs page.
-- Aggregates only: counts, statuses and times, no personal data (error_text is scrubbed of digit
-- runs when written; the e-mails never show it).
--
-- Parameters: run_id (NULL for every run), source_id (NULL for every source).
-- Time windows and ordering are applied by the caller (tthc.notify.stats.run_statistics) on top of
-- this query: date comparisons are spelled differently on SQLite and PostgreSQL.
-- Portable: runs unchanged on SQLite and PostgreSQL.
SELECT
    r.run_id,
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
WHERE (CAST(:run_id AS VARCHAR(250)) IS NULL OR r.run_id = CAST(:run_id AS VARCHAR(250)))
  AND (CAST(:source_id AS VARCHAR(64)) IS NULL OR r.source_id = CAST(:source_id AS VARCHAR(64)))
