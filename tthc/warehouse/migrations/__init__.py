"""Alembic migrations of the warehouse (a package so that env.py ships in the wheel)."""
