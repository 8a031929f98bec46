"""The role matrix, as documented (README "Roles") and enforced (each route's `require(...)`).

One line per route: the roles that may use it. Deny by default: a role not listed gets 403.
tests/api/test_roles.py checks every route against this text and against the live API, and the
README's table is rendered from it, so documentation and enforcement cannot drift apart.
"""

from __future__ import annotations

from domain.vocab import Role

ROLES = tuple(Role)

MATRIX_TEXT = """
GET /healthz: public
GET /readyz: public
GET /metrics: public
POST /participants: admin staff
GET /participants: admin staff clinician auditor
GET /participants/{participant_id}: admin staff clinician auditor
POST /participants/{participant_id}/phase: admin staff clinician
POST /participants/{participant_id}/discharge: admin staff clinician
GET /screenings: admin staff clinician auditor
GET /participants/{participant_id}/screenings: admin staff clinician auditor
GET /participants/{participant_id}/draws: admin staff clinician auditor
GET /screenings/{screening_id}: admin staff clinician auditor
POST /screenings/{screening_id}/collection: admin staff clinician
POST /screenings/{screening_id}/excuse: admin staff clinician
POST /screenings/{screening_id}/refusal: admin staff clinician
POST /screenings/{screening_id}/admission: admin staff clinician
POST /participants/{participant_id}/screenings: admin staff clinician
POST /participants/{participant_id}/pauses: admin staff clinician
POST /check-ins: admin staff
POST /lab/hl7: admin lab
POST /lab/results: admin lab
GET /lab/quarantine: admin staff clinician auditor
POST /lab/quarantine/{item_id}/resolve: admin staff clinician
GET /lab/analytes: admin staff clinician lab auditor
GET /lab/code-mappings: admin staff clinician auditor
POST /lab/code-mappings: admin
DELETE /lab/code-mappings/{mapping_id}: admin
POST /lab/analytes: admin
GET /lab/quarantine/{item_id}: admin staff clinician auditor
GET /reports/lab-turnaround: admin staff clinician auditor
POST /screenings/{screening_id}/review: admin clinician
POST /participants/{participant_id}/medications: admin clinician
GET /participants/{participant_id}/medications: admin staff clinician auditor
GET /medications/{order_id}: admin staff clinician auditor
POST /medications/{order_id}/dispenses: admin staff clinician
POST /medications/{order_id}/reassessment: clinician
POST /medications/{order_id}/dose-change: admin clinician
POST /medications/{order_id}/stop: admin clinician
POST /medications/{order_id}/pill-counts: admin staff clinician
POST /medications/{order_id}/storage-attestation: admin clinician
POST /medications/{order_id}/bottle-returns: admin staff clinician
POST /medications/{order_id}/callbacks: admin staff clinician
POST /medications/{order_id}/guest-dosing: admin clinician
POST /medications/{order_id}/closed-days: admin
GET /takehome-rule-sets: admin staff clinician auditor
GET /dispensing/today: admin staff clinician auditor
POST /recipients: admin
GET /recipients: admin staff clinician auditor
POST /recipients/{recipient_id}/enable: admin
PUT /recipients/{recipient_id}/notices: admin
POST /participants/{participant_id}/consents: admin staff clinician
GET /participants/{participant_id}/consents: admin staff clinician auditor
POST /consents/{consent_id}/revoke: admin staff clinician
POST /participants/{participant_id}/case-events: admin staff
GET /participants/{participant_id}/case-events: admin staff clinician auditor
POST /attendance-sessions: admin staff clinician
GET /attendance-sessions: admin staff clinician auditor
POST /attendance-sessions/{session_id}/attendance: admin staff clinician
GET /participants/{participant_id}/attendance: admin staff clinician auditor
GET /participants/{participant_id}/attendance/summary: admin staff clinician auditor
GET /disclosures: admin staff clinician auditor
GET /audit: admin auditor
GET /audit/verify: admin auditor
POST /audit/checkpoints: admin
GET /worklist: admin staff clinician auditor
GET /staff: admin staff clinician auditor
GET /worklist/{worklist_item_id}: admin staff clinician auditor
POST /worklist/{worklist_item_id}/claim: admin staff clinician
POST /worklist/{worklist_item_id}/release: admin staff clinician
POST /worklist/{worklist_item_id}/comments: admin staff clinician
POST /worklist/{worklist_item_id}/resolve: admin staff clinician
GET /participants/{participant_id}/history: admin staff clinician auditor
GET /participants/{participant_id}/fhir: admin clinician
PUT /participants/{participant_id}/demographics: admin staff
GET /participants/{participant_id}/demographics: admin staff
GET /reports/equity: admin clinician auditor
GET /reports/equity.pdf: admin clinician auditor
GET /workflows/{workflow_id}/history: admin auditor
POST /codec/decode: admin auditor
POST /codec/encode: admin
POST /tokens: admin
GET /tokens: admin
POST /tokens/{token_id}/revoke: admin
POST /programs: admin
PUT /programs/{program_id}: admin
GET /programs: admin staff clinician auditor
GET /programs/{program_id}: admin staff clinician auditor
GET /selection/commitments: admin staff clinician lab auditor
POST /selection/periods: admin
PUT /selection/periods/{program}/{period}/beacon: admin
GET /selection/notices: admin staff clinician auditor
POST /programs/{program_id}/sites/{site}/closed-days: admin
POST /channel/inbound: public
POST /channel/receipts: public
PUT /participants/{participant_id}/pin: admin staff
PUT /participants/{participant_id}/colour: admin staff
GET /programs/{program_id}/colours: admin staff clinician auditor
GET /call-list: admin staff
POST /call-list/{entry_id}/resolve: admin staff
POST /screenings/{screening_id}/make-up: admin staff clinician
PUT /screenings/{screening_id}/forensic: admin staff
"""


def matrix() -> dict[tuple[str, str], frozenset[str]]:
    """{(method, path): roles}; public routes map to an empty set."""
    table = {}
    for line in MATRIX_TEXT.strip().splitlines():
        route, _, roles = line.partition(": ")
        method, path = route.split(" ", 1)
        table[(method, path)] = frozenset() if roles.strip() == "public" else frozenset(roles.split())
    return table


def markdown() -> str:
    """The README table: one row per route, a column per role."""
    rows = ["| route | " + " | ".join(ROLES) + " |", "|---|" + "---|" * len(ROLES)]
    for (method, path), roles in matrix().items():
        marks = ["public" if not roles else ("yes" if role in roles else "") for role in ROLES]
        rows.append(f"| `{method} {path}` | " + " | ".join(marks) + " |")
    return "\n".join(rows)
