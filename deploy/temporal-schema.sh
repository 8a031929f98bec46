#!/bin/sh
# Applies Temporal's schemas with Temporal's own tool (temporalio/admin-tools), up to the versions
# the image ships. Safe to run on every start: setup-schema only adds the version tables if they
# are missing and update-schema only applies what is newer. The databases themselves are created
# by deploy/postgres-init.sh; temporal-sql-tool reads SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER
# and SQL_PASSWORD from the environment.
set -eu
: "${SQL_PLUGIN:?}" "${SQL_HOST:?}" "${SQL_PORT:?}" "${SQL_USER:?}" "${SQL_PASSWORD:?}"
schemas=/etc/temporal/schema/postgresql/v12

tries=0
until nc -z -w 5 "$SQL_HOST" "$SQL_PORT"; do
  tries=$((tries + 1))
  [ "$tries" -lt 30 ] || { echo "PostgreSQL at $SQL_HOST:$SQL_PORT never answered" >&2; exit 1; }
  sleep 2
done

temporal-sql-tool --db temporal setup-schema -v 0.0
temporal-sql-tool --db temporal update-schema -d "$schemas/temporal/versioned"
temporal-sql-tool --db temporal_visibility setup-schema -v 0.0
temporal-sql-tool --db temporal_visibility update-schema -d "$schemas/visibility/versioned"
echo "Temporal schemas are up to date"
