"""The OpenAPI document is one a lab's or a court's integrator can work from: every operation, field and
request body is described, errors are application/problem+json, operations are grouped by resource."""

from __future__ import annotations

from typing import Any

import pytest

from api.app import create_app
from iop.settings import Settings

PROBLEM = "application/problem+json"
METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}
# Generic envelope fields whose meaning the envelope's own description gives: none needed so far.
UNDESCRIBED_ALLOWED: set[tuple[str, str]] = set()
# Fields of the workflows' internal state that no answer may carry: the engine's bookkeeping (a save's
# revision, raw event lists), and the rolls that would tell anyone when a random draw happens before it does.
ENGINE_FIELDS = {
    "revision",
    "events",
    "pending_time_roll",
    "verifiable_roll_for",
    "day_plan",
    "day_plan_for",
    "draws_recorded",
    "runs",
    "recent_selections",
    "event_count",
}
PAGE_FIELDS = {"items", "total", "limit", "offset", "next"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings()).openapi()


def operations(document: dict[str, Any]):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_operation_has_a_summary_a_description_and_a_described_tag(document):
    declared = {tag["name"]: tag.get("description", "") for tag in document.get("tags", [])}
    missing = []
    for name, operation in operations(document):
        if not operation.get("summary", "").strip():
            missing.append(f"{name}: no summary")
        if not operation.get("description", "").strip():
            missing.append(f"{name}: no description")
        tags = operation.get("tags", [])
        if not tags:
            missing.append(f"{name}: no tag")
        missing += [f"{name}: tag {tag!r} not declared with a description" for tag in tags if not declared.get(tag)]
    assert not missing, "\n".join(missing)


def test_every_request_body_has_an_example(document):
    missing = []
    for name, operation in operations(document):
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            if "json" not in media:
                continue
            schema = resolve(document, content.get("schema", {}))
            if not (
                content.get("example") or content.get("examples") or schema.get("examples") or schema.get("example")
            ):
                missing.append(f"{name} ({media})")
    assert not missing, "request bodies without an example:\n" + "\n".join(missing)


def test_every_error_answer_is_problem_json(document):
    wrong = []
    for name, operation in operations(document):
        for status, response in operation.get("responses", {}).items():
            if status[0] not in "45":
                continue
            content = response.get("content", {})
            if set(content) != {PROBLEM}:
                wrong.append(f"{name} {status}: {sorted(content)}")
            elif not {"type", "title", "status", "detail"} <= set(
                resolve(document, content[PROBLEM].get("schema", {})).get("properties", {})
            ):
                wrong.append(f"{name} {status}: not a Problem schema")
    assert not wrong, "error answers not (only) application/problem+json:\n" + "\n".join(wrong)


def test_every_operation_declares_its_bad_input_answer(document):
    # FastAPI's automatic 422 is application/json with HTTPValidationError; ours is a problem document.
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ValidationError" not in document["components"]["schemas"]


def test_every_field_of_every_schema_is_described(document):
    missing = []
    for model, schema in document["components"]["schemas"].items():
        if not schema.get("description", "").strip() and schema.get("type") == "object":
            missing.append(f"{model}: the model itself")
        for field, spec in schema.get("properties", {}).items():
            if (model, field) in UNDESCRIBED_ALLOWED:
                continue
            if not spec.get("description", "").strip():
                missing.append(f"{model}.{field}")
    assert not missing, f"{len(missing)} fields without a description:\n" + "\n".join(missing)


def test_every_request_body_example_fits_its_schema(document):
    # An example an integrator copies must be accepted as far as the schema can tell (types, enumerations,
    # lengths, required fields); a drifting example fails here.
    from jsonschema import Draft202012Validator

    checked, wrong = 0, []
    for name, operation in operations(document):
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            if "json" not in media:
                continue
            root = {"components": document["components"], **content["schema"]}
            examples = list(resolve(document, content["schema"]).get("examples", []))
            for example in examples:
                checked += 1
                errors = [error.message for error in Draft202012Validator(root).iter_errors(example)]
                if errors:
                    wrong.append(f"{name}: {errors}")
    assert checked >= 30 and not wrong, "\n".join(wrong)


def test_the_hl7_example_is_a_well_formed_oru(document):
    # The lab intake's documented example parses as the one ORU^R01 it claims to be.
    from domain.hl7 import parse_oru

    example = document["paths"]["/lab/hl7"]["post"]["requestBody"]["content"]["text/plain"]["example"]
    message = parse_oru(example)
    assert message.message_type.startswith("ORU^R01") and message.version == "2.5.1"
    assert (message.sending_application, message.sending_facility) == ("ACMELAB", "ACME REFERENCE LAB")
    [order] = message.orders
    assert order.result_status == "F" and order.specimen_id == "S-7Q2M9K"
    assert [o.code for o in order.observations] == ["3393-6", "11235-9"]


def _schemas_reached(document: dict[str, Any], schema: dict[str, Any], seen: set[str]) -> None:
    """The names of every component schema `schema` refers to, however deep."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if ref:
            name = ref.rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                _schemas_reached(document, document["components"]["schemas"][name], seen)
        for value in schema.values():
            _schemas_reached(document, value, seen)
    elif isinstance(schema, list):
        for value in schema:
            _schemas_reached(document, value, seen)


def test_no_answer_is_a_workflow_dataclass_or_shows_the_engine(document):
    # Every answer is a public model of its own (api/public.py and the routers), never a dataclass of
    # workflows/contracts/ or domain/: an internal field added there must not become public API.
    import dataclasses
    import importlib
    import pkgutil

    from domain import equity
    from workflows import contracts

    modules = [
        equity,
        *(
            importlib.import_module(f"{contracts.__name__}.{info.name}")
            for info in pkgutil.iter_modules(contracts.__path__)
        ),
    ]
    internal = {
        name
        for module in modules
        for name, value in vars(module).items()
        if isinstance(value, type) and dataclasses.is_dataclass(value)
    }
    assert {"ParticipantState", "ScreeningState", "MedicationState"} <= internal, "the contracts were not all found"
    answered: set[str] = set()
    for _, operation in operations(document):
        for status, response in operation.get("responses", {}).items():
            if status.startswith("2"):
                _schemas_reached(document, response, answered)
    assert answered, "no answer schema found"
    assert not answered & internal, f"answers that are internal dataclasses: {sorted(answered & internal)}"
    shown = sorted(
        f"{model}.{field}"
        for model in answered
        for field in document["components"]["schemas"][model].get("properties", {})
        if field in ENGINE_FIELDS
    )
    assert not shown, f"answers that show the engine's state: {shown}"


def test_every_list_is_one_page_envelope(document):
    # Every GET that answers a list answers one page: items, total, limit, offset and the next page's link,
    # and takes limit and offset. No bare arrays.
    lists, wrong = 0, []
    for name, operation in operations(document):
        if not name.startswith("GET "):
            continue
        content = operation.get("responses", {}).get("200", {}).get("content", {}).get("application/json")
        if content is None:
            continue
        schema = resolve(document, content.get("schema", {}))
        if schema.get("type") == "array":
            wrong.append(f"{name}: a bare array")
            continue
        properties = schema.get("properties", {})
        if not any(
            resolve(document, spec).get("type") == "array" and field == "items" for field, spec in properties.items()
        ):
            continue  # one thing, not a list
        lists += 1
        if set(properties) != PAGE_FIELDS:
            wrong.append(f"{name}: fields {sorted(properties)}, not {sorted(PAGE_FIELDS)}")
        if not resolve(document, content["schema"]).get("title", "").startswith("Page["):
            wrong.append(f"{name}: not the one Page model")
        parameters = {p["name"] for p in operation.get("parameters", [])}
        if not {"limit", "offset"} <= parameters:
            wrong.append(f"{name}: no limit and offset parameters")
        next_link = properties.get("next", {})
        if {t.get("type") for t in next_link.get("anyOf", [next_link])} != {"string", "null"}:
            wrong.append(f"{name}: next is not a link or null")
    assert lists >= 20 and not wrong, "\n".join(wrong)
