-- Decision 766 figures of one period, per agency and per province, from the stored per-dossier
-- outcomes (tthc/kpi.py writes dossier_outcomes: one row per dossier received in the period, its
-- on-time outcome judged at the period end with the working-day calendar, which SQL cannot do).
--
-- Everything else is counted here from the current dossier versions:
--   received              outcome <> 'excluded' (never-received dossiers: status 1 / 3 / unknown)
--   channel_*             KenhThucHien 2 online, 3 postal, anything else (NULL too) direct
--   fee_bearing / paid    fee > 0 / and DuocThanhToanTrucTuyen 1 or 2
--   paper_results         resolved (early / on time / overdue) with status 9 or 10 and a paper
--                         result; digitised_results: of those, with an electronic result file
--   digitised / reused    at least one digitised / reused component
--   population_db         VNeID-verified, or reconciled as the same person (matched classes)
--   synced                published to the national portal with the dossier's current content
-- All flags count received dossiers only.
--
-- Parameters: period_type, period_start (DATE), province_code (NULL for every province)
-- Portable: runs unchanged on SQLite and PostgreSQL.
WITH base AS (
    SELECT
        COALESCE(o.agency_code, 'unknown') AS agency_code,
        o.province_code,
        o.outcome,
        CASE WHEN o.outcome <> 'excluded' THEN 1 ELSE 0 END AS received,
        CASE WHEN o.outcome <> 'excluded' AND d.channel = 2 THEN 1 ELSE 0 END AS channel_online,
        CASE WHEN o.outcome <> 'excluded' AND d.channel = 3 THEN 1 ELSE 0 END AS channel_postal,
        CASE WHEN o.outcome <> 'excluded' AND d.fee > 0 THEN 1 ELSE 0 END AS fee_bearing,
        CASE
            WHEN o.outcome <> 'excluded' AND d.fee > 0 AND d.paid_online IN (1, 2) THEN 1 ELSE 0
        END AS paid_online,
        CASE
            WHEN o.outcome IN ('early', 'on_time', 'overdue')
             AND d.status IN (9, 10)
             AND d.result_type = 'paper' THEN 1 ELSE 0
        END AS paper_results,
        CASE
            WHEN o.outcome IN ('early', 'on_time', 'overdue')
             AND d.status IN (9, 10)
             AND d.result_type = 'paper'
             AND d.result_file IS NOT NULL
             AND d.result_file <> '' THEN 1 ELSE 0
        END AS digitised_results,
        CASE WHEN o.outcome <> 'excluded' AND d.digitized_count > 0 THEN 1 ELSE 0 END AS digitised,
        CASE WHEN o.outcome <> 'excluded' AND d.reused_count > 0 THEN 1 ELSE 0 END AS reused,
        CASE
            WHEN o.outcome <> 'excluded'
             AND (d.vneid_verified OR m.match_class IN ('matched', 'matched_normalised')) THEN 1 ELSE 0
        END AS population_db,
        CASE
            WHEN o.outcome <> 'excluded'
             AND p.status = 'published'
             AND p.published_hash = d.content_hash THEN 1 ELSE 0
        END AS synced
    FROM dossier_outcomes AS o
    JOIN dossiers AS d
        ON d.source_id = o.source_id
       AND d.dossier_code = o.dossier_code
    LEFT JOIN publish_state AS p
        ON p.source_id = o.source_id
       AND p.dossier_code = o.dossier_code
    LEFT JOIN citizen_matches AS m
        ON m.source_id = o.source_id
       AND m.dossier_code = o.dossier_code
    WHERE o.period_type = :period_type
      AND o.period_start = :period_start
      AND (CAST(:province_code AS VARCHAR(128)) IS NULL
           OR o.province_code = CAST(:province_code AS VARCHAR(128)))
),
scoped AS (
    SELECT 'agency' AS scope, agency_code AS scope_code, b.* FROM base AS b
    UNION ALL
    SELECT 'province' AS scope, province_code AS scope_code, b.* FROM base AS b
)
SELECT
    scope,
    scope_code,
    SUM(received) AS received,
    SUM(CASE WHEN outcome = 'early' THEN 1 ELSE 0 END) AS resolved_early,
    SUM(CASE WHEN outcome = 'on_time' THEN 1 ELSE 0 END) AS resolved_on_time,
    SUM(CASE WHEN outcome = 'overdue' THEN 1 ELSE 0 END) AS resolved_overdue,
    SUM(CASE WHEN outcome = 'open_in_time' THEN 1 ELSE 0 END) AS open_in_time,
    SUM(CASE WHEN outcome = 'open_overdue' THEN 1 ELSE 0 END) AS open_overdue,
    SUM(CASE WHEN outcome = 'withdrawn' THEN 1 ELSE 0 END) AS withdrawn,
    SUM(CASE WHEN outcome = 'unjudged' THEN 1 ELSE 0 END) AS unjudged,
    SUM(CASE WHEN outcome = 'excluded' THEN 1 ELSE 0 END) AS excluded,
    SUM(channel_online) AS channel_online,
    SUM(channel_postal) AS channel_postal,
    SUM(fee_bearing) AS fee_bearing,
    SUM(paid_online) AS paid_online,
    SUM(paper_results) AS paper_results,
    SUM(digitised_results) AS digitised_results,
    SUM(digitised) AS digitised,
    SUM(reused) AS reused,
    SUM(population_db) AS population_db,
    SUM(synced) AS synced
FROM scoped
GROUP BY scope, scope_code
ORDER BY scope, scope_code
