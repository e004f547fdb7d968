"""Simulators of the external systems and the ground-truth world generator (never imports Airflow)."""
