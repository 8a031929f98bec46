#!/bin/sh
# First start of the PostgreSQL container: one role and database for records, one for Temporal.
set -eu
psql -v ON_ERROR_STOP=1 --username postgres <<SQL
CREATE ROLE iop LOGIN PASSWORD '${IOP_DB_PASSWORD}';
CREATE DATABASE iop OWNER iop;
CREATE ROLE temporal LOGIN CREATEDB PASSWORD '${TEMPORAL_DB_PASSWORD}';
SQL
