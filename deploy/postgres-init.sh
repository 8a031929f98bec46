#!/bin/sh
# First start of the PostgreSQL container (docker-entrypoint-initdb.d): one role and database for
# the records (iop), one role owning Temporal's two databases (temporal, temporal_visibility).
# Neither role is a superuser or may create databases. Passwords go through psql variables, so
# any character is safe in them.
set -eu
: "${IOP_DB_PASSWORD:?}" "${TEMPORAL_DB_PASSWORD:?}"
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v iop_pw="$IOP_DB_PASSWORD" -v temporal_pw="$TEMPORAL_DB_PASSWORD" <<'SQL'
CREATE ROLE iop LOGIN PASSWORD :'iop_pw';
CREATE DATABASE iop OWNER iop;
CREATE ROLE temporal LOGIN PASSWORD :'temporal_pw';
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;
\connect temporal_visibility
-- Temporal's visibility schema indexes with GIN over btree types.
CREATE EXTENSION IF NOT EXISTS btree_gin;
SQL
