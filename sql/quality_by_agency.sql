-- Data quality and publishing progress per source and agency, over the latest dossier versions.
--
-- published_current counts dossiers whose current content is what the portal holds.
-- Parameters: source_id (NULL for every source)
-- Portable: runs unchanged on SQLite and PostgreSQL.
SELECT
    d.source_id,
    d.agency_code,
    COUNT(*) AS dossiers,
    SUM(CASE WHEN d.quality_status = 'valid' THEN 1 ELSE 0 END) AS valid,
    SUM(CASE WHEN d.quality_status = 'warning' THEN 1 ELSE 0 END) AS warning,
    SUM(CASE WHEN d.quality_status = 'quarantined' THEN 1 ELSE 0 END) AS quarantined,
    SUM(CASE WHEN d.quality_status = 'pending' THEN 1 ELSE 0 END) AS pending,
    SUM(CASE WHEN p.published_hash = d.content_hash THEN 1 ELSE 0 END) AS published_current,
    SUM(CASE WHEN p.status = 'failed' THEN 1 ELSE 0 END) AS publish_failed
FROM dossiers AS d
LEFT JOIN publish_state AS p
    ON p.source_id = d.source_id
   AND p.dossier_code = d.dossier_code
WHERE CAST(:source_id AS VARCHAR(64)) IS NULL
   OR d.source_id = CAST(:source_id AS VARCHAR(64))
GROUP BY d.source_id, d.agency_code
ORDER BY d.source_id, d.agency_code
