"""The type checker (issue 14): domain/ and workflows/ pass `mypy --strict` and the other packages mypy's
default (basic) checks, with the project's own configuration (pyproject.toml [tool.mypy]), and nothing is
silenced wholesale: no override relaxes domain/ or workflows/, and each `# type: ignore` names its error
code and says why."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRICT = ("domain", "workflows")
BASIC = ("activities", "api", "bench", "ingest", "iop", "store")
MAX_IGNORES = 10  # in domain/ and workflows/
MAX_IGNORES_ELSEWHERE = 20
IGNORE = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[a-z0-9-]+(?:,\s*[a-z0-9-]+)*\])?(?P<rest>.*)")


def test_every_package_passes_mypy() -> None:
    """One run over [tool.mypy] files: strict for domain/ and workflows/, basic for the rest."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert sorted(config["files"]) == sorted(STRICT + BASIC), "every package is type-checked"
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"mypy failed:\n{done.stdout}{done.stderr}"


def test_the_strict_run_is_not_relaxed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config.get("strict") is True, "[tool.mypy] strict = true is the run the first test relies on"
    for override in config.get("overrides", []):
        modules = [override["module"]] if isinstance(override["module"], str) else override["module"]
        ours = [module for module in modules if module.split(".")[0] in STRICT]
        assert not ours, f"an override relaxes {ours}: annotate the code instead"


def test_no_blanket_type_ignores() -> None:
    ignores, elsewhere, bare = [], [], []
    for path in sorted(p for package in STRICT + BASIC for p in (ROOT / package).rglob("*.py")):
        strict = path.relative_to(ROOT).parts[0] in STRICT
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            assert not re.search(r"#\s*mypy:", line), f"a file-level mypy setting: {where}"
            found = IGNORE.search(line)
            if found is None:
                continue
            (ignores if strict else elsewhere).append(where)
            # Each one names the error code(s) it silences and, in a comment after it, why.
            if not found["codes"] or not found["rest"].strip().startswith("#"):
                bare.append(where)
    assert not bare, "type: ignore without an error code and a reason:\n" + "\n".join(bare)
    assert len(ignores) < MAX_IGNORES, "\n".join(ignores)
    assert len(elsewhere) < MAX_IGNORES_ELSEWHERE, "\n".join(elsewhere)
