-- Dossiers of one source that should go to the national portal now.
--
-- A dossier is a candidate when
--   * validation let it through (quality_status 'valid' or 'warning'; 'pending' means not yet
--     validated, 'quarantined' means held), and
--   * it is not held in quarantine (belt and braces: quality_status should already say so), and
--   * its current content was never published, or differs from what was published last.
--
-- Every column of the dossier: the publish stage maps the row to its portal payload, so the
-- source is read once whether a few dossiers changed (a quiet night) or all of them (a first
-- night); the dashboard counts the rows.
--
-- Parameters: source_id
-- Portable: runs unchanged on SQLite and PostgreSQL.
SELECT
    d.*
FROM dossiers AS d
LEFT JOIN publish_state AS p
    ON p.source_id = d.source_id
   AND p.dossier_code = d.dossier_code
LEFT JOIN quarantine AS q
    ON q.source_id = d.source_id
   AND q.dossier_code = d.dossier_code
   AND q.status = 'held'
WHERE d.source_id = :source_id
  AND d.quality_status IN ('valid', 'warning')
  AND q.dossier_code IS NULL
  AND (p.published_hash IS NULL OR p.published_hash <> d.content_hash)
