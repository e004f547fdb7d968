"""Airflow DAG file: province-wide indicators (on every source's completion) and the quarterly report.

Kept thin on purpose: what runs when is decided in tthc.report_dags, how it runs lives in the
tthc package (tthc.kpi, tthc.report).
"""

from tthc.report_dags import build_report_dags

globals().update(build_report_dags())
