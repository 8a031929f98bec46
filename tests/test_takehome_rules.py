"""Take-home rule sets as cited, versioned files (issue 18): loaded and validated at start."""

from pathlib import Path

import pytest
import yaml

from domain import takehome
from domain.takehome import TakeHomeFacts, eligibility
from iop import takehome_rules


def test_every_file_loads_with_citations_and_a_jurisdiction():
    loaded = takehome_rules.load_rule_files()
    assert set(loaded) >= {"federal-otp-2024", "wisconsin-dhs75", "california-9ccr10375"}
    assert {jurisdiction for jurisdiction, _ in loaded.values()} >= {"federal", "US-WI", "US-CA"}


def test_the_federal_file_is_the_rule_the_code_has_always_applied():
    _, federal = takehome_rules.load_rule_files()["federal-otp-2024"]
    assert takehome.rules_to_dict(federal) == takehome.rules_to_dict(takehome.FEDERAL_OTP_2024)


def test_the_setting_names_a_jurisdiction_or_a_set():
    takehome_rules.install()
    assert takehome_rules.default_rule_set("federal") == "federal-otp-2024"
    assert takehome_rules.default_rule_set("US-WI") == "wisconsin-dhs75"
    with pytest.raises(ValueError, match="names no rule set"):
        takehome_rules.default_rule_set("atlantis")


def facts(drug: str, day: int) -> TakeHomeFacts:
    return TakeHomeFacts(
        drug=drug, days_in_treatment=day, attendance_ratio_30d=1.0, safe_storage_attested=True, today="2026-03-02"
    )


@pytest.mark.parametrize(
    ("name", "drug", "day", "most"),
    [
        ("federal-otp-2024", "methadone", 2, 7),
        ("federal-otp-2024", "methadone", 31, 28),
        ("wisconsin-dhs75", "methadone", 20, 0),
        ("wisconsin-dhs75", "methadone", 95, 2),
        ("wisconsin-dhs75", "buprenorphine", 65, 2),
        ("wisconsin-dhs75", "methadone", 800, 13),
        ("california-9ccr10375", "methadone", 30, 1),
        ("california-9ccr10375", "methadone", 300, 6),
    ],
)
def test_each_jurisdiction_caps_by_its_own_bands_and_names_itself(name, drug, day, most):
    takehome_rules.install()
    decision = eligibility(facts(drug, day), takehome.get_rules(name))
    assert decision.max_take_home_days == most and decision.basis.startswith(name)
    assert name in decision.reasons[0]


def write(tmp_path: Path, data: dict) -> Path:
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(data))
    return tmp_path


def test_a_file_without_citations_or_with_a_gap_stops_the_start(tmp_path):
    federal = yaml.safe_load((takehome_rules.RULES_DIR / "federal-2024.yaml").read_text())
    with pytest.raises(ValueError, match="x.yaml: .*citations"):
        takehome_rules.load_rule_files(write(tmp_path, {**federal, "citations": []}))
    gap = {
        **federal,
        "bands": [{"from_day": 1, "to_day": 14, "max_days": 7}, {"from_day": 16, "to_day": None, "max_days": 14}],
    }
    with pytest.raises(ValueError, match="x.yaml: .*without gap"):
        takehome_rules.load_rule_files(write(tmp_path, gap))
    with pytest.raises(ValueError, match="unknown TakeHomeRules field"):
        takehome_rules.load_rule_files(write(tmp_path, {**federal, "max_dayz": 3}))
