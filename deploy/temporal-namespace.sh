#!/bin/sh
# The iop namespace and the project's search attributes; idempotent, so it runs on every start.
# Keep ATTRIBUTES equal to workflows/search.py ALL (tests/test_compose.py checks it).
# Registering an attribute that already exists with the same type does nothing; with another
# type it fails, and so does this script.
set -eu
NAMESPACE="${IOP_TEMPORAL_NAMESPACE:-iop}"
RETENTION="${IOP_TEMPORAL_RETENTION:-3650d}"
ATTRIBUTES="IopParticipantId=Keyword IopStatus=Keyword IopPhase=Keyword IopSite=Keyword IopDay=Datetime"

retry() {  # the frontend answers before its namespace cache has caught up: try for ~2 minutes
  tries=0
  until "$@"; do
    tries=$((tries + 1))
    [ "$tries" -lt 40 ] || { echo "gave up: $*" >&2; return 1; }
    sleep 3
  done
}

retry temporal operator cluster health
if ! temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
  retry temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION"
fi
set --
for attr in $ATTRIBUTES; do
  set -- "$@" --name "${attr%%=*}" --type "${attr#*=}"
done
retry temporal operator search-attribute create --namespace "$NAMESPACE" "$@"
temporal operator search-attribute list --namespace "$NAMESPACE"
