"""docker-compose.yml cannot run here (no Docker engine), so its invariants are checked as data."""

import re
from pathlib import Path

import yaml

from workflows import search

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_stack_has_every_part():
    assert {"postgres", "temporal", "temporal-ui", "api", "worker"} <= set(COMPOSE["services"])


def test_images_are_pinned():
    for name, service in COMPOSE["services"].items():
        image = service.get("image")
        if image:
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image) and not image.endswith(":latest"), name


def test_secrets_are_required_from_the_environment():
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("POSTGRES_PASSWORD", "IOP_DB_PASSWORD", "TEMPORAL_DB_PASSWORD", "IOP_CODEC_KEYS"):
        assert re.search(r"\$\{" + secret + r":\?", text), secret
    assert "password:" not in text.lower().replace("_password:", "")


def test_dependencies_wait_for_health():
    for name in ("api", "worker"):
        conditions = COMPOSE["services"][name]["depends_on"]
        assert all("condition" in c for c in conditions.values()), name


def test_search_attributes_registered_in_production_match_the_code():
    script = (ROOT / "deploy" / "temporal-namespace.sh").read_text()
    registered = set(re.findall(r"(Iop\w+)=(\w+)", script))
    kinds = {"KEYWORD": "Keyword", "DATETIME": "Datetime"}
    assert registered == {(k.name, kinds[k.indexed_value_type.name]) for k in search.ALL}
