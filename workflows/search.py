"""Search attributes on every workflow: opaque ids, status, phase, site, dates. Never PHI."""

from temporalio.common import SearchAttributeKey

PARTICIPANT_ID = SearchAttributeKey.for_keyword("IopParticipantId")
STATUS = SearchAttributeKey.for_keyword("IopStatus")
PHASE = SearchAttributeKey.for_keyword("IopPhase")
SITE = SearchAttributeKey.for_keyword("IopSite")
# The program start for a participant; the selection day for a screening.
DAY = SearchAttributeKey.for_datetime("IopDay")

ALL = (PARTICIPANT_ID, STATUS, PHASE, SITE, DAY)
