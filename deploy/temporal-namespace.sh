#!/bin/sh
# The iop namespace and the project's search attributes (see workflows/search.py); idempotent.
set -eu
temporal operator namespace describe --namespace iop >/dev/null 2>&1 \
  || temporal operator namespace create --namespace iop --retention 3650d
for attr in IopParticipantId=Keyword IopStatus=Keyword IopPhase=Keyword IopSite=Keyword IopDay=Datetime; do
  temporal operator search-attribute create --namespace iop --name "${attr%%=*}" --type "${attr#*=}" || true
done
