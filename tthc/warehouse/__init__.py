"""The warehouse: SQLite by default, PostgreSQL by URL, schema managed by Alembic.

* :mod:`tthc.warehouse.db` — ``get_engine(url=None)`` and ``migrate(url_or_engine)``;
* :mod:`tthc.warehouse.schema` — the tables (the migrations in ``migrations/versions`` match them);
* :mod:`tthc.warehouse.repo` — the batch reads and writes the pipeline stages call;
* :mod:`tthc.warehouse.sqlfiles` — ``load_sql(name)`` for the readable queries in ``<repo>/sql``.
"""
