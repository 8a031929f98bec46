"""Each closed vocabulary is written out once, as a StrEnum in domain/ (issue 14).

The test lists every StrEnum defined in domain/ and scans the code (Python through its syntax tree,
the dashboard's Jinja templates through Jinja's parser) for collections written with string
literals: tuples, lists, sets, dict keys and `Literal[...]`. A collection that holds two or more
values of one enum is a copy of that vocabulary and fails the test with file:line; derive it from
the enum instead (`tuple(Enum)`, `Literal[Enum.A, Enum.B]`, `{Enum.A: ...}`).
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import jinja2
import pytest
from jinja2 import nodes

import domain

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("domain", "workflows", "activities", "api", "iop", "store", "ingest", "bench")
TEMPLATES = ROOT / "api" / "ui" / "templates"

# Whole directories left out, each with its reason.
SKIPPED = {
    "store/migrations": "Alembic migrations are frozen history: they must keep the values of their day, "
    "and must not import today's code.",
}

# (file, enum) pairs allowed to write two of the enum's values together, each with its reason.
ALLOWED: dict[tuple[str, str], str] = {
    (
        "domain/analytes.py",
        "domain.medication.Drug",
    ): "substances a panel can show (analyte and prescription keys, open to a program's own), whose names "
    "coincide with some drug products an order is for",
    (
        "domain/cutoffs.py",
        "domain.medication.Drug",
    ): "cutoff tables keyed by the analyte a lab measures, whose names coincide with some drug products",
    (
        "api/ui/views.py",
        "domain.loinc_tox.Verified",
    ): "the dashboard's yes/no answer to 'temperature in range' is a form answer, not LOINC's 'verified' column",
    (
        "api/ui/templates/screening.html",
        "domain.loinc_tox.Verified",
    ): "the same yes/no form answer, offered as the select's choices",
}

# Every vocabulary at the time of writing, so that none is dropped back to bare strings unnoticed.
EXPECTED = {
    "domain.calendar.Weekday",
    "domain.consent.ConsentEvent",
    "domain.consent.DisclosureCategory",
    "domain.consent.RecipientKind",
    "domain.consent.SignatureMethod",
    "domain.cutoffs.AnalysisMethod",
    "domain.demographics.AgeBand",
    "domain.demographics.Ethnicity",
    "domain.demographics.Payer",
    "domain.demographics.Race",
    "domain.demographics.Sex",
    "domain.delivery_retry.DeliveryDecision",
    "domain.equity.EquitySection",
    "domain.report_content.ReportOutcome",
    "domain.report_content.ReportedProgramStatus",
    "domain.report_content.RetractionReason",
    "domain.result_basis.Basis",
    "domain.hl7.AckCode",
    "domain.interpretation.AnalyteOutcome",
    "domain.interpretation.FlagCode",
    "domain.interpretation.OverallOutcome",
    "domain.ledger.LedgerStatus",
    "domain.loinc_tox.CodeMethod",
    "domain.loinc_tox.LoincSpecimen",
    "domain.loinc_tox.Verified",
    "domain.medication.CallbackStatus",
    "domain.medication.DispenseKind",
    "domain.medication.DoseUnit",
    "domain.medication.Drug",
    "domain.medication.ExpectedKind",
    "domain.medication.MissedDoseAction",
    "domain.medication.OrderStatus",
    "domain.medication.RefusalCode",
    "domain.medication.Route",
    "domain.medication.ScheduleKind",
    "domain.program.ProgramMode",
    "domain.program.SpecimenType",
    "domain.selection.SelectionReason",
    "domain.takehome.Criterion",
    "domain.takehome.ScreenResult",
    "domain.validity.RefusalGround",
    "domain.validity.ValidityStatus",
    "domain.verifiable.RollPurpose",
    "domain.vocab.CheckInMethod",
    "domain.vocab.DayKind",
    "domain.vocab.DeliveryMethod",
    "domain.vocab.DischargeKind",
    "domain.vocab.DisclosureStatus",
    "domain.vocab.FinalOutcome",
    "domain.vocab.GatewayStatus",
    "domain.vocab.NoticeStatus",
    "domain.vocab.ParticipantStatus",
    "domain.vocab.PointOfCareResult",
    "domain.vocab.QuarantineAction",
    "domain.vocab.ReassessmentDecision",
    "domain.vocab.RefusalKind",
    "domain.vocab.ResultStatus",
    "domain.vocab.ReviewDecision",
    "domain.vocab.Role",
    "domain.vocab.ScreeningStatus",
    "domain.worklist.Outcome",
    "domain.worklist.Severity",
    "domain.worklist.Source",
    "domain.worklist.Status",
    "domain.worklist.WorklistKind",
}


def vocabularies() -> dict[str, type[StrEnum]]:
    """Every StrEnum defined in a domain module, by its dotted name."""
    found: dict[str, type[StrEnum]] = {}
    for info in pkgutil.walk_packages(domain.__path__, "domain."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, StrEnum)
                and value.__module__ == module.__name__
                and len(value)
            ):  # domain.vocab.Vocabulary, the base with no members, is no vocabulary
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def _python_collections(tree: ast.AST) -> Iterator[tuple[int, list[str]]]:
    """(line, string literals) of each tuple, list, set, dict (its keys) and Literal[...] in a module.
    A (value, label) pair inside a collection counts by its value."""

    def strings(items: list[ast.expr | None]) -> list[str]:
        out = []
        for item in items:
            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                out.append(item.value)
            elif (
                isinstance(item, ast.Tuple)
                and item.elts
                and isinstance(item.elts[0], ast.Constant)
                and isinstance(item.elts[0].value, str)
            ):
                out.append(item.elts[0].value)
        return out

    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            yield node.lineno, strings(list(node.elts))
        elif isinstance(node, ast.Dict):
            yield node.lineno, strings(list(node.keys))
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Literal":
            items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            yield node.lineno, strings(list(items))


def _template_collections(source: str) -> Iterator[tuple[int, list[str]]]:
    def strings(items: list[nodes.Node]) -> list[str]:
        out = []
        for item in items:
            if isinstance(item, nodes.Const) and isinstance(item.value, str):
                out.append(item.value)
            elif (
                isinstance(item, nodes.Tuple)
                and item.items
                and isinstance(item.items[0], nodes.Const)
                and isinstance(item.items[0].value, str)
            ):
                out.append(item.items[0].value)
        return out

    tree = jinja2.Environment().parse(source)
    for node in tree.find_all((nodes.Tuple, nodes.List)):
        yield node.lineno, strings(list(node.items))
    for node in tree.find_all(nodes.Dict):
        yield node.lineno, strings([pair.key for pair in node.items])


def _files() -> Iterator[tuple[str, Iterator[tuple[int, list[str]]]]]:
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if any(name.startswith(skipped + "/") for skipped in SKIPPED):
                continue
            yield name, _python_collections(ast.parse(path.read_text(), name))
    for path in sorted(TEMPLATES.rglob("*.html")):
        yield path.relative_to(ROOT).as_posix(), _template_collections(path.read_text())


def literal_copies() -> list[str]:
    enums = vocabularies()
    values = {name: {member.value for member in enum} for name, enum in enums.items()}
    copies: dict[str, None] = {}  # ordered, and a Literal[...] is not reported twice (it is a tuple too)
    for name, collections in _files():
        for line, strings in collections:
            written = set(strings)
            for enum_name, enum_values in values.items():
                shared = written & enum_values
                if len(shared) >= 2 and (name, enum_name) not in ALLOWED:
                    copies[f"{name}:{line}: {sorted(shared)} are values of {enum_name}"] = None
    return list(copies)


def test_every_vocabulary_is_a_domain_enum():
    found = set(vocabularies())
    assert not EXPECTED - found, f"vocabularies with no StrEnum in domain/: {sorted(EXPECTED - found)}"


def test_each_vocabulary_enum_is_documented_and_its_values_distinct():
    for name, enum in vocabularies().items():
        assert enum.__doc__ and enum.__doc__ != StrEnum.__doc__, f"{name} needs a docstring (OpenAPI shows it)"
        assert len({m.value for m in enum}) == len(enum.__members__), f"{name} has aliased members"


def test_no_vocabulary_is_written_out_twice():
    copies = literal_copies()
    assert not copies, "closed vocabularies written out again instead of derived from their enum:\n" + "\n".join(copies)


@pytest.mark.parametrize(
    "source, expected",
    [
        ('KINDS = ("observed-dose", "take-home")\n', 1),
        ('from typing import Literal\nX = Literal["kiosk", "ivr"]\n', 1),
        ('X = {"urine": 8.0, "breath": 4.0}\n', 1),
        ('X = [("confirm", "Confirm it"), ("excuse", "Excuse it")]\n', 1),
        ('X = ("observed-dose",)\nY = {"urine": 1}\n', 0),
        ("X = (DispenseKind.OBSERVED_DOSE, DispenseKind.TAKE_HOME)\n", 0),
    ],
)
def test_the_scan_finds_a_copy_and_only_a_copy(source, expected):
    enums = vocabularies()
    values = [{m.value for m in enum} for enum in enums.values()]
    hits = {
        line
        for line, strings in _python_collections(ast.parse(source))
        if any(len(set(strings) & v) >= 2 for v in values)
    }
    assert len(hits) == expected


def test_the_template_scan_finds_a_copy():
    source = (
        '{{ select("d", "D", [("confirm", "Confirm"), ("excuse", "Excuse")]) }}\n'
        '{% for s in ("active", "enrolling") %}{{ s }}{% endfor %}'
    )
    enums = vocabularies()
    values = [{m.value for m in enum} for enum in enums.values()]
    hits = [line for line, strings in _template_collections(source) if any(len(set(strings) & v) >= 2 for v in values)]
    assert hits == [1, 2]
