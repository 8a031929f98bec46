#!/bin/sh
# Creates or upgrades Temporal's schemas with Temporal's own admin tool; safe to run again.
set -eu
for db in temporal temporal_visibility; do
  temporal-sql-tool --plugin "$SQL_PLUGIN" --ep "$SQL_HOST" -p "$SQL_PORT" -u "$SQL_USER" --pw "$SQL_PASSWORD" --db "$db" create-database || true
done
base=/etc/temporal/schema/postgresql/v12
temporal-sql-tool --plugin "$SQL_PLUGIN" --ep "$SQL_HOST" -p "$SQL_PORT" -u "$SQL_USER" --pw "$SQL_PASSWORD" --db temporal setup-schema -v 0.0 || true
temporal-sql-tool --plugin "$SQL_PLUGIN" --ep "$SQL_HOST" -p "$SQL_PORT" -u "$SQL_USER" --pw "$SQL_PASSWORD" --db temporal update-schema -d "$base/temporal/versioned"
temporal-sql-tool --plugin "$SQL_PLUGIN" --ep "$SQL_HOST" -p "$SQL_PORT" -u "$SQL_USER" --pw "$SQL_PASSWORD" --db temporal_visibility setup-schema -v 0.0 || true
temporal-sql-tool --plugin "$SQL_PLUGIN" --ep "$SQL_HOST" -p "$SQL_PORT" -u "$SQL_USER" --pw "$SQL_PASSWORD" --db temporal_visibility update-schema -d "$base/visibility/versioned"
