"""Take-home rule sets from their versioned files, loaded and validated when a process starts.

Each file under domain/rules/takehome/ is one jurisdiction's rule set with its citations
(domain.takehome.rules_from_file). The worker and the API install them into the registry the
medication workflow reads by name (domain.takehome.RULE_SETS), so the name and version of the set
in force is recorded with every eligibility decision (`basis`). A malformed file stops the
process at start, never a decision later. IOP_TAKEHOME_RULES picks the default set for new orders:
a jurisdiction ("federal", "US-WI") or a rule-set name.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from domain import takehome

RULES_DIR = Path(__file__).resolve().parent.parent / "domain" / "rules" / "takehome"


def load_rule_files(directory: Path = RULES_DIR) -> dict[str, tuple[str, takehome.TakeHomeRules]]:
    """name -> (jurisdiction, rules) for every *.yaml/*.json file; ValueError names the bad file."""
    found: dict[str, tuple[str, takehome.TakeHomeRules]] = {}
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.json")]):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            rules = takehome.rules_from_file(data)
        except (ValueError, yaml.YAMLError) as exc:
            raise ValueError(f"take-home rule file {path.name}: {exc}") from None
        if rules.name in found:
            raise ValueError(f"take-home rule file {path.name}: the name {rules.name!r} is used twice")
        found[rules.name] = (str(data["jurisdiction"]), rules)
        _DOCUMENTATION[rules.name] = {"citations": data["citations"], "uncertain": data.get("uncertain", [])}
    if not found:
        raise ValueError(f"no take-home rule files under {directory}")
    return found


_JURISDICTIONS: dict[str, str] = {}
_DOCUMENTATION: dict[str, dict] = {}


def citations(name: str) -> list[dict]:
    return list(_DOCUMENTATION.get(name, {}).get("citations", []))


def uncertain(name: str) -> list[str]:
    return list(_DOCUMENTATION.get(name, {}).get("uncertain", []))


def install(directory: Path = RULES_DIR) -> dict[str, takehome.TakeHomeRules]:
    """Load the files and register them by name (a file replaces a built-in set of the same name)."""
    loaded = load_rule_files(directory)
    for name, (jurisdiction, rules) in loaded.items():
        if takehome.RULE_SETS.get(name) != rules:  # an equal built-in set stays the same object
            takehome.RULE_SETS[name] = rules
        _JURISDICTIONS[jurisdiction.lower()] = name
    return {name: rules for name, (_, rules) in loaded.items()}


def default_rule_set(setting: str) -> str:
    """The rule-set name IOP_TAKEHOME_RULES stands for: a jurisdiction or a name."""
    if setting in takehome.RULE_SETS:
        return setting
    name = _JURISDICTIONS.get(setting.lower())
    if name is None:
        known = sorted({*takehome.RULE_SETS, *_JURISDICTIONS})
        raise ValueError(f"IOP_TAKEHOME_RULES={setting!r} names no rule set or jurisdiction; known: {', '.join(known)}")
    return name
