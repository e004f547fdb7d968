"""Airflow DAG file: the 06:00 watchdog of the nightly chain (see tthc.notify.watchdog).

Kept thin on purpose: the check and the e-mails live in the tthc package.
"""

from tthc.notify.watchdog import build_watchdog_dag

dag = build_watchdog_dag()
