-- Validation outcome of one run: per source, suite and rule, how many records were checked and
-- how many failed (aggregates only: no values, no personal data).
--
-- Parameters: run_id
-- Portable: runs unchanged on SQLite and PostgreSQL.
SELECT
    v.source_id,
    v.suite,
    v.rule_id,
    v.severity,
    v.evaluated,
    v.failed,
    v.success
FROM validation_results AS v
WHERE v.run_id = :run_id
ORDER BY v.source_id, v.suite, v.failed DESC, v.rule_id
