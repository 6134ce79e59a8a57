"""statistics views: 30-day bot-IP comparison, daily detections, top attackers/targets, detector mix

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

Every time window in these views is measured back from the **newest detection in the data**
(``max(verdicts.detected_at)``, event time), not from the wall clock: a replay of 2015 logs still
gives meaningful 30-day figures, and the numbers of a database do not change just because time
passed.  ``as_of`` in ``stats_bot_ips_30d*`` is that reference time.  The windows are half-open:
"last 30 days" is ``(as_of - 30 days, as_of]``, "previous 30 days" is
``(as_of - 60 days, as_of - 30 days]``.

The same view names and columns exist on Postgres and SQLite; only the date arithmetic, JSON
unnesting and string aggregation differ per dialect.  Column types follow the dialect: on SQLite
``day`` / ``as_of`` / ``first_detected`` / ``last_detected`` are ISO-8601 text (UTC).

* ``stats_bot_ips_30d`` (list, ips_last_30d, ips_prev_30d, pct_change, as_of): one row per list
  (``denylist``, ``graylist``): distinct IPs with a verdict of that action in the last 30 days and
  in the 30 days before; ``pct_change`` is rounded to 0.1 and NULL when the previous count is 0.
* ``stats_bot_ips_30d_by_type`` (list, bot_type, ips_last_30d, ips_prev_30d, pct_change, as_of):
  the same per bot type (only combinations seen in the last 60 days).
* ``stats_detections_daily`` (day, bot_type, verdicts, ips): per UTC day of ``detected_at``.
* ``stats_top_attackers`` (ip, verdicts, bot_types, first_detected, last_detected, requests):
  per IP over all stored verdicts; ``bot_types`` sorted and comma-separated, ``requests`` the sum
  of the verdicts' window requests.
* ``stats_top_targets`` (endpoint, verdicts, ips, requests): per templated endpoint
  ("METHOD /path/{id}") from ``verdict_endpoints`` joined to ``verdicts``.
* ``stats_detector_mix`` (detector, bot_type, fired, runs): per detector and bot type, the verdicts
  in which the detector fired and counted (``fired`` true and ``counted`` true or absent), and the
  verdicts in which it ran at all.

Note for later migrations: SQLite's ``ALTER TABLE .. RENAME`` (used by Alembic's batch mode to
rebuild a table) fails while a view refers to the table being rebuilt ("error in view ..: no such
table").  A migration that batch-alters ``verdicts`` or ``verdict_endpoints`` must drop these views
first and create them again afterwards (with a copy of their definitions: never import them from
this file, a revision must not change once released).
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

VIEWS = (
    "stats_bot_ips_30d",
    "stats_bot_ips_30d_by_type",
    "stats_detections_daily",
    "stats_top_attackers",
    "stats_top_targets",
    "stats_detector_mix",
)


def _sql(dialect: str) -> dict[str, str]:
    pg = dialect == "postgresql"

    def after(ts: str, ref: str, days: int) -> str:
        """SQL condition: ``ts`` is later than ``ref`` minus ``days`` days."""
        if pg:
            return f"{ts} > {ref} - INTERVAL '{days} days'"
        return f"julianday({ts}) > julianday({ref}) - {days}"

    def not_after(ts: str, ref: str, days: int) -> str:
        if pg:
            return f"{ts} <= {ref} - INTERVAL '{days} days'"
        return f"julianday({ts}) <= julianday({ref}) - {days}"

    # identical on both: ROUND(numeric, int) on Postgres, ROUND(real, int) on SQLite
    pct = (
        "CASE WHEN ips_prev_30d = 0 THEN NULL "
        "ELSE CAST(ROUND(100.0 * (ips_last_30d - ips_prev_30d) / ips_prev_30d, 1) AS DOUBLE PRECISION) "
        "END"
    )
    cur = after("v.detected_at", "r.as_of", 30)
    prev = f"{not_after('v.detected_at', 'r.as_of', 30)} AND {after('v.detected_at', 'r.as_of', 60)}"
    counts = f"""
        COUNT(DISTINCT CASE WHEN {cur} THEN v.ip END) AS ips_last_30d,
        COUNT(DISTINCT CASE WHEN {prev} THEN v.ip END) AS ips_prev_30d"""

    views = {
        "stats_bot_ips_30d": f"""
CREATE VIEW stats_bot_ips_30d AS
WITH ref AS (SELECT MAX(detected_at) AS as_of FROM verdicts),
lists AS (SELECT 'denylist' AS list UNION ALL SELECT 'graylist'),
counts AS (
    SELECT l.list AS list, r.as_of AS as_of,{counts}
    FROM lists l
    CROSS JOIN ref r
    LEFT JOIN verdicts v ON v.action = l.list AND {after("v.detected_at", "r.as_of", 60)}
    GROUP BY l.list, r.as_of
)
SELECT list, ips_last_30d, ips_prev_30d, {pct} AS pct_change, as_of
FROM counts
""",
        "stats_bot_ips_30d_by_type": f"""
CREATE VIEW stats_bot_ips_30d_by_type AS
WITH ref AS (SELECT MAX(detected_at) AS as_of FROM verdicts),
counts AS (
    SELECT v.action AS list, v.bot_type AS bot_type, r.as_of AS as_of,{counts}
    FROM verdicts v
    CROSS JOIN ref r
    WHERE v.action IN ('denylist', 'graylist') AND {after("v.detected_at", "r.as_of", 60)}
    GROUP BY v.action, v.bot_type, r.as_of
)
SELECT list, bot_type, ips_last_30d, ips_prev_30d, {pct} AS pct_change, as_of
FROM counts
""",
        "stats_detections_daily": f"""
CREATE VIEW stats_detections_daily AS
SELECT {"CAST(detected_at AT TIME ZONE 'UTC' AS DATE)" if pg else "date(detected_at)"} AS day,
       bot_type,
       COUNT(*) AS verdicts,
       COUNT(DISTINCT ip) AS ips
FROM verdicts
GROUP BY 1, bot_type
""",
        "stats_top_attackers": (
            """
CREATE VIEW stats_top_attackers AS
SELECT ip,
       COUNT(*) AS verdicts,
       string_agg(DISTINCT bot_type, ',' ORDER BY bot_type) AS bot_types,
       MIN(detected_at) AS first_detected,
       MAX(detected_at) AS last_detected,
       SUM(window_requests) AS requests
FROM verdicts
GROUP BY ip
"""
            if pg
            # SQLite < 3.44 has no ORDER BY inside aggregates: concatenate the distinct types from a
            # subquery sorted by (ip, bot_type), which group_concat consumes in that order
            else """
CREATE VIEW stats_top_attackers AS
SELECT a.ip AS ip,
       a.verdicts AS verdicts,
       t.bot_types AS bot_types,
       a.first_detected AS first_detected,
       a.last_detected AS last_detected,
       a.requests AS requests
FROM (
    SELECT ip,
           COUNT(*) AS verdicts,
           MIN(detected_at) AS first_detected,
           MAX(detected_at) AS last_detected,
           SUM(window_requests) AS requests
    FROM verdicts
    GROUP BY ip
) a
JOIN (
    SELECT ip, group_concat(bot_type, ',') AS bot_types
    FROM (SELECT DISTINCT ip, bot_type FROM verdicts ORDER BY ip, bot_type)
    GROUP BY ip
) t ON t.ip = a.ip
"""
        ),
        "stats_top_targets": """
CREATE VIEW stats_top_targets AS
SELECT e.endpoint AS endpoint,
       COUNT(DISTINCT e.verdict_id) AS verdicts,
       COUNT(DISTINCT v.ip) AS ips,
       SUM(e.requests) AS requests
FROM verdict_endpoints e
JOIN verdicts v ON v.verdict_id = e.verdict_id
GROUP BY e.endpoint
""",
        "stats_detector_mix": (
            """
CREATE VIEW stats_detector_mix AS
SELECT d.elem ->> 'name' AS detector,
       v.bot_type AS bot_type,
       COUNT(*) FILTER (
           WHERE d.elem ->> 'fired' = 'true' AND COALESCE(d.elem ->> 'counted', 'true') = 'true'
       ) AS fired,
       COUNT(*) AS runs
FROM verdicts v
CROSS JOIN LATERAL json_array_elements(
    CASE WHEN json_typeof(v.detectors) = 'array' THEN v.detectors ELSE '[]'::json END
) AS d(elem)
WHERE json_typeof(d.elem) = 'object' AND d.elem ->> 'name' IS NOT NULL
GROUP BY 1, v.bot_type
"""
            if pg
            else """
CREATE VIEW stats_detector_mix AS
SELECT json_extract(d.value, '$.name') AS detector,
       v.bot_type AS bot_type,
       SUM(CASE WHEN json_extract(d.value, '$.fired') = 1
                 AND COALESCE(json_extract(d.value, '$.counted'), 1) = 1 THEN 1 ELSE 0 END) AS fired,
       COUNT(*) AS runs
FROM verdicts v, json_each(CASE WHEN json_type(v.detectors) = 'array' THEN v.detectors ELSE '[]' END) d
WHERE d.type = 'object' AND json_extract(d.value, '$.name') IS NOT NULL
GROUP BY 1, v.bot_type
"""
        ),
    }
    return views


def upgrade() -> None:
    views = _sql(op.get_bind().dialect.name)
    for name in VIEWS:
        op.execute(views[name])


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
