#!/usr/bin/env bash
# PostgreSQL first-start script (mounted into /docker-entrypoint-initdb.d, so it runs once, when
# the data volume is empty): Airflow's metadata database and the warehouse, each owned by its own
# login role. Names and passwords come from the environment (docker/.env); passwords are passed
# to psql as variables, never spliced into the SQL text.
# Runs anywhere psql reaches a server as a superuser (tests/deploy runs it against a local one).
set -euo pipefail

: "${AIRFLOW_DB_PASSWORD:?set AIRFLOW_DB_PASSWORD}"
: "${TTHC_WAREHOUSE_DB_PASSWORD:?set TTHC_WAREHOUSE_DB_PASSWORD}"
AIRFLOW_DB_NAME=${AIRFLOW_DB_NAME:-airflow}
AIRFLOW_DB_USER=${AIRFLOW_DB_USER:-airflow}
TTHC_WAREHOUSE_DB_NAME=${TTHC_WAREHOUSE_DB_NAME:-tthc_warehouse}
TTHC_WAREHOUSE_DB_USER=${TTHC_WAREHOUSE_DB_USER:-tthc}

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v af_db="$AIRFLOW_DB_NAME" -v af_user="$AIRFLOW_DB_USER" -v af_pw="$AIRFLOW_DB_PASSWORD" \
  -v wh_db="$TTHC_WAREHOUSE_DB_NAME" -v wh_user="$TTHC_WAREHOUSE_DB_USER" -v wh_pw="$TTHC_WAREHOUSE_DB_PASSWORD" \
  <<'SQL'
CREATE ROLE :"af_user" LOGIN PASSWORD :'af_pw';
CREATE DATABASE :"af_db" OWNER :"af_user";
CREATE ROLE :"wh_user" LOGIN PASSWORD :'wh_pw';
CREATE DATABASE :"wh_db" OWNER :"wh_user";
-- nobody but the owner connects to the warehouse (it holds personal data)
REVOKE CONNECT ON DATABASE :"wh_db" FROM PUBLIC;
SQL
echo "init-databases: created $AIRFLOW_DB_NAME (owner $AIRFLOW_DB_USER) and $TTHC_WAREHOUSE_DB_NAME (owner $TTHC_WAREHOUSE_DB_USER)"
