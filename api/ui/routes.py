"""The dashboard's routes, mounted by api.app with `app.include_router(ui.router)`."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.staticfiles import StaticFiles

from api.ui import program_views, views
from api.ui.web import STATIC

router = APIRouter()

_ROUTES = [
    ("/ui", views.home, ["GET"]),
    ("/ui/", views.home, ["GET"]),
    ("/ui/login", views.login_form, ["GET"]),
    ("/ui/login", views.login, ["POST"]),
    ("/ui/logout", views.logout, ["POST"]),
    ("/ui/today", views.today, ["GET"]),
    ("/ui/participants", views.participants, ["GET"]),
    ("/ui/participants/new", views.enroll_form, ["GET"]),
    ("/ui/participants", views.enroll, ["POST"]),
    ("/ui/participants/{participant_id}", views.participant, ["GET"]),
    ("/ui/participants/{participant_id}/timeline", views.timeline, ["GET"]),
    ("/ui/participants/{participant_id}/history.csv", views.history_csv, ["GET"]),
    ("/ui/participants/{participant_id}/screenings", views.order_for_cause, ["POST"]),
    ("/ui/participants/{participant_id}/consents", views.add_consent, ["POST"]),
    ("/ui/participants/{participant_id}/check-in", views.check_in, ["POST"]),
    ("/ui/participants/{participant_id}/phase", views.change_phase, ["POST"]),
    ("/ui/participants/{participant_id}/pauses", views.pause, ["POST"]),
    ("/ui/participants/{participant_id}/discharge", views.discharge, ["POST"]),
    ("/ui/participants/{participant_id}/medications", views.order_medication, ["POST"]),
    ("/ui/consents/{consent_id}/revoke", views.revoke_consent, ["POST"]),
    ("/ui/participants/{participant_id}/case-events", views.record_case_event, ["POST"]),
    ("/ui/attendance-sessions/{session_id}/attendance", views.record_attendance, ["POST"]),
    ("/ui/screenings/{screening_id}", views.screening, ["GET"]),
    ("/ui/screenings/{screening_id}/collection", views.record_collection, ["POST"]),
    ("/ui/screenings/{screening_id}/review", views.review_result, ["POST"]),
    ("/ui/screenings/{screening_id}/excuse", views.excuse, ["POST"]),
    ("/ui/screenings/{screening_id}/refusal", views.refusal, ["POST"]),
    ("/ui/medications/{order_id}/dispenses", views.dispense, ["POST"]),
    ("/ui/medications/{order_id}/dose-change", views.change_dose, ["POST"]),
    ("/ui/medications/{order_id}/stop", views.stop_medication, ["POST"]),
    ("/ui/medications/{order_id}/reassessment", views.reassess, ["POST"]),
    ("/ui/worklist", views.worklist, ["GET"]),
    ("/ui/worklist/{worklist_item_id}/claim", views.claim_item, ["POST"]),
    ("/ui/worklist/{worklist_item_id}/comments", views.comment_item, ["POST"]),
    ("/ui/worklist/{worklist_item_id}/resolve", views.resolve_item, ["POST"]),
    ("/ui/call-list", views.call_list, ["GET"]),
    ("/ui/call-list/{entry_id}/resolve", views.resolve_call, ["POST"]),
    ("/ui/quarantine", views.quarantine, ["GET"]),
    ("/ui/quarantine/{item_id}/resolve", views.resolve_quarantine, ["POST"]),
    ("/ui/lab-turnaround", views.lab_turnaround, ["GET"]),
    ("/ui/reports/equity", views.equity, ["GET"]),
    ("/ui/reports/equity.pdf", views.equity_pdf, ["GET"]),
    ("/ui/programs", program_views.programs, ["GET"]),
    ("/ui/programs/{program_id}", program_views.program, ["GET"]),
    ("/ui/programs/{program_id}/hours", program_views.save_hours, ["POST"]),
    ("/ui/programs/{program_id}/closed-days", program_views.add_closed_day, ["POST"]),
    ("/ui/programs/{program_id}/closed-days/remove", program_views.remove_closed_day, ["POST"]),
    ("/ui/programs/{program_id}/phases", program_views.save_phases, ["POST"]),
    ("/ui/programs/{program_id}/windows", program_views.save_windows, ["POST"]),
]

for path, endpoint, methods in _ROUTES:
    router.add_route(path, endpoint, methods=methods, include_in_schema=False)
router.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
router.add_route("/ui/{rest:path}", views.not_found, methods=["GET", "POST"], include_in_schema=False)
