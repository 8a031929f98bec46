"""Bounds on what a request may carry: doses, control characters, dates, list lengths, recipient
URLs and token lifetimes. Each refusal is a 422 problem document that names the field."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlmodel import Session, select
from typer.testing import CliRunner

from api.app import create_app
from iop.settings import Settings
from store.audit import AuditEvent
from store.models import ApiToken, MedicationOrderRecord
from tests.api.test_medications import METHADONE, TODAY, start
from tests.helpers import enrollment


def _inputs():
    from api import inputs  # imported late so that each test fails on its own

    return inputs


def fields_named(response) -> set[str]:
    return {error["field"] for error in response.json().get("errors", [])}


def refused_naming(response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert field in body["detail"] or any(name.endswith(field) for name in fields_named(response)), body


# --- doses -----------------------------------------------------------------------------------


async def test_implausible_doses_are_refused_and_an_override_is_recorded(stack):
    pid = (await stack.enroll())["id"]
    refused_naming(await start(stack, pid, {**METHADONE, "dose": 1e308}), "dose")
    infinite = await stack.http.post(
        f"/participants/{pid}/medications",
        headers={**stack.auth("clinician"), "content-type": "application/json"},
        content=json.dumps({**METHADONE, "dose": float("inf")}),
    )
    refused_naming(infinite, "dose")
    refused_naming(await start(stack, pid, {**METHADONE, "dose": 0}), "dose")
    above = await start(stack, pid, {**METHADONE, "dose": 150})
    refused_naming(above, "override_reason")
    assert "120" in above.json()["detail"]
    by_admin = await start(
        stack, pid, {**METHADONE, "dose": 150, "override_reason": "trough level documented"}, role="admin"
    )
    assert by_admin.status_code == 403, by_admin.text
    created = await start(stack, pid, {**METHADONE, "dose": 150, "override_reason": "trough level documented"})
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    assert created.json()["order"]["dose_override_reason"] == "trough level documented"

    # Dose changes: the same bounds, the override recorded with the change.
    change = f"/medications/{order_id}/dose-change"
    refused_naming(
        await stack.http.post(
            change, json={"dose": 1e308, "unit": "mg", "reason": "x"}, headers=stack.auth("clinician")
        ),
        "dose",
    )
    refused_naming(
        await stack.http.post(
            change, json={"dose": 200, "unit": "mg", "reason": "cravings"}, headers=stack.auth("clinician")
        ),
        "override_reason",
    )
    changed = await stack.http.post(
        change,
        json={"dose": 200, "unit": "mg", "reason": "cravings", "override_reason": "split-dose study, level 420 ng/mL"},
        headers=stack.auth("clinician"),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["order"]["dose_override_reason"] == "split-dose study, level 420 ng/mL"
    assert "split-dose study" in changed.json()["timeline"][-1]["detail"]

    # Dispenses: non-finite and non-positive doses never reach the workflow.
    dispenses = f"/medications/{order_id}/dispenses"
    for bad in ("Infinity", "NaN", "-1", "0"):
        response = await stack.http.post(
            dispenses,
            headers={**stack.auth("staff"), "content-type": "application/json"},
            content=f'{{"kind": "observed-dose", "unit": "mg", "dose": {bad}}}',
        )
        refused_naming(response, "dose")
    given = await stack.http.post(
        dispenses, json={"kind": "observed-dose", "dose": 200, "unit": "mg"}, headers=stack.auth("staff")
    )
    assert given.status_code == 200, given.text

    with Session(stack.engine) as session:
        row = session.get(MedicationOrderRecord, order_id)
        assert row.order["dose_override_reason"] == "split-dose study, level 420 ng/mL"
        details = [
            event.detail or ""
            for event in session.exec(
                select(AuditEvent).where(AuditEvent.participant_id == pid, AuditEvent.outcome.in_(["200", "201"]))
            ).all()
        ]
    assert any("dose override" in detail and "150" in detail for detail in details), details
    assert any("dose override" in detail and "200" in detail for detail in details), details


# --- control characters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["Ann\x00", "An\x07n", "\x1b[31mAnn", "Ann\u202e", "Ann\u2066x", "Ann\x85", "Ann\nB", "Ann\tB"]
)
async def test_control_characters_in_names_are_refused(stack, bad):
    response = await stack.http.post("/participants", json=enrollment(given_name=bad), headers=stack.auth("staff"))
    refused_naming(response, "given_name")
    assert "body.given_name" in fields_named(response)


async def test_control_characters_in_free_text_and_nested_fields(stack):
    pid = (await stack.enroll())["id"]
    nested = await stack.http.post(
        "/participants",
        headers=stack.auth("staff"),
        json=enrollment(case_numbers=[{"system": "county-drug-court", "value": "DC-1\x00"}]),
    )
    refused_naming(nested, "value")
    assert any("case_numbers" in name for name in fields_named(nested))
    phase = f"/participants/{pid}/phase"
    refused_naming(
        await stack.http.post(
            phase, json={"phase": "phase-2", "reason": "ok \u202e evil"}, headers=stack.auth("clinician")
        ),
        "reason",
    )
    refused_naming(
        await stack.http.post(phase, json={"phase": "phase-2", "reason": "bell\x07"}, headers=stack.auth("clinician")),
        "reason",
    )
    fine = await stack.http.post(
        phase, json={"phase": "phase-2", "reason": "line one\n\tline two"}, headers=stack.auth("clinician")
    )
    assert fine.status_code == 200, fine.text


def _models(annotation) -> list[type[BaseModel]]:
    found = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
        for field in annotation.model_fields.values():
            found += _models(field.annotation)
    for argument in getattr(annotation, "__args__", ()) or ():
        found += _models(argument)
    return found


def _routes(routes):
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI >= 0.16x wraps included routers
        if included is not None:
            yield from _routes(included.routes)


def _request_models(app) -> set[type[BaseModel]]:
    return {
        model
        for route in _routes(app.routes)
        if route.body_field is not None
        for model in _models(route.body_field.field_info.annotation)
    }


def test_every_request_body_refuses_control_characters(tmp_path):
    bodies = _request_models(create_app(Settings(data_dir=tmp_path)))
    assert len(bodies) >= 20
    uncovered = sorted(model.__name__ for model in bodies if not issubclass(model, _inputs().CleanText))
    assert not uncovered, f"request models without the control-character check: {uncovered}"


def test_the_text_rule_itself():
    for text in ("plain", "Zoë Ñúñez-O'Brien", "línea\nsiguiente\tcon tabulador", "日本語"):
        assert _inputs().text_problem(text, free_text=True) is None
    assert _inputs().text_problem("a\nb", free_text=False)
    for code in [
        *range(0x00, 0x09),
        0x0B,
        0x0C,
        *range(0x0E, 0x20),
        0x7F,
        *range(0x80, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]:
        assert _inputs().text_problem(f"x{chr(code)}y", free_text=True), hex(code)


# --- dates -------------------------------------------------------------------------------------


async def test_dates_are_bounded(stack):
    today = date.today()
    for name, value in [
        ("start_date", "9999-01-01"),
        ("start_date", "0001-01-01"),
        ("start_date", (today + timedelta(days=800)).isoformat()),
        ("date_of_birth", (today - timedelta(days=5 * 365)).isoformat()),
        ("date_of_birth", "1890-01-01"),
        ("date_of_birth", (today + timedelta(days=1)).isoformat()),
    ]:
        response = await stack.http.post("/participants", json=enrollment(**{name: value}), headers=stack.auth("staff"))
        refused_naming(response, name)
    pid = (await stack.enroll())["id"]
    refused_naming(await start(stack, pid, {**METHADONE, "start_date": "9999-12-31"}), "start_date")
    refused_naming(await start(stack, pid, {**METHADONE, "stop_date": "9999-12-31"}), "stop_date")
    pause = await stack.http.post(
        f"/participants/{pid}/pauses",
        headers=stack.auth("staff"),
        json={"start": "0001-01-01", "end": TODAY, "reason": "travel"},
    )
    refused_naming(pause, "start")


# --- lists -------------------------------------------------------------------------------------


async def test_lists_are_bounded(stack):
    many = [{"system": "county-drug-court", "value": f"DC-{n}"} for n in range(21)]
    refused_naming(
        await stack.http.post("/participants", json=enrollment(case_numbers=many), headers=stack.auth("staff")),
        "case_numbers",
    )
    assert (
        await stack.http.post("/participants", json=enrollment(case_numbers=many[:20]), headers=stack.auth("staff"))
    ).status_code == 201
    pid = (await stack.enroll())["id"]
    weekdays = {**METHADONE, "schedule": {"kind": "daily-observed", "observed_weekdays": list(range(7)) * 2}}
    refused_naming(await start(stack, pid, weekdays), "observed_weekdays")


def test_every_list_field_of_a_request_body_has_a_cap(tmp_path):
    bodies = _request_models(create_app(Settings(data_dir=tmp_path)))
    uncapped = []
    for model in bodies:
        for name, field in model.model_fields.items():
            if "list[" in str(field.annotation) and not any(getattr(m, "max_length", None) for m in field.metadata):
                uncapped.append(f"{model.__name__}.{name}")
    assert not uncapped, uncapped


# --- recipient URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "production", "allow_private", "problem"),
    [
        ("https://court.example.org/hook", True, False, None),
        ("https://court.example.org/hook", False, False, None),
        ("http://127.0.0.1:8001/hook", False, False, None),  # development: the test receivers
        ("http://localhost:8001/hook", False, False, None),
        ("http://court.example.org/hook", True, False, "https"),
        ("http://127.0.0.1:8001/hook", True, False, "https"),
        ("https://127.0.0.1/hook", True, False, "loopback"),
        ("https://localhost/hook", True, False, "loopback"),
        ("https://[::1]/hook", True, False, "loopback"),
        ("https://10.1.2.3/hook", False, False, "private"),
        ("https://192.168.0.7/hook", True, False, "private"),
        ("https://169.254.169.254/latest", False, False, "link-local"),
        ("https://[fe80::1]/hook", False, False, "link-local"),
        ("https://0.0.0.0/hook", False, False, "unspecified"),
        ("https://10.1.2.3/hook", True, True, None),  # an on-premise court system, allowed by the admin
        ("https://127.0.0.1/hook", True, True, None),
        ("https://clerk:hunter2@court.example.org/hook", False, False, "credentials"),
        ("https://token@court.example.org/hook", True, True, "credentials"),
        ("ftp://court.example.org/hook", False, False, "https"),
        ("https:///hook", False, False, "host"),
    ],
)
def test_recipient_url_rules(url, production, allow_private, problem):
    found = _inputs().recipient_url_problem(url, production=production, allow_private=allow_private)
    if problem is None:
        assert found is None
    else:
        assert found and problem in found, found


async def test_recipient_url_refusals_reach_the_api(stack):
    for url in (
        "https://169.254.169.254/latest/meta-data",
        "https://user:pw@court.example.org/hook",
        "https://10.0.0.8/hook",
    ):
        response = await stack.http.post(
            "/recipients",
            headers=stack.auth("admin"),
            json={"name": "court", "kind": "court", "delivery": "webhook", "url": url, "categories": ["phase-changes"]},
        )
        refused_naming(response, "url")


# --- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("days", [0, -3, 3651])
def test_token_create_refuses_days_that_would_mean_forever_or_nonsense(tmp_path, monkeypatch, days):
    from iop import cli
    from iop.settings import get_settings
    from store.db import make_engine
    from store.migrate import upgrade

    monkeypatch.setenv("IOP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("IOP_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        upgrade(get_settings().resolved_database_url)
        result = CliRunner().invoke(cli.app, ["token", "create", "--role", "staff", "--name", "t", "--days", str(days)])
        engine = make_engine(get_settings().resolved_database_url)
        with Session(engine) as session:
            created = session.exec(select(ApiToken)).all()
        engine.dispose()
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0 and "days" in result.output, result.output
    assert created == []


def test_token_lifetime_rule_is_one_function():
    from api.tokens import expiry_after

    now = date(2026, 1, 1)
    assert expiry_after(None, now) is None
    assert expiry_after(30, now) == now + timedelta(days=30)
    for days in (0, -1, 3651, True):
        with pytest.raises(ValueError, match="days"):
            expiry_after(days, now)


async def test_api_token_days_zero_is_refused(stack):
    for days in (0, -1, 3651):
        response = await stack.http.post(
            "/tokens", headers=stack.auth("admin"), json={"name": "t", "role": "lab", "days": days}
        )
        refused_naming(response, "days")
    with Session(stack.engine) as session:
        assert all(token.expires_at is not None or token.name != "t" for token in session.exec(select(ApiToken)))
