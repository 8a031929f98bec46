"""The ApplicationError types a workflow raises and the API maps to HTTP statuses (api/workflow_calls.py)."""

CONFLICT = "Conflict"  # the request does not fit the current state (409)
INVALID = "Invalid"  # the request itself is wrong (422)
