"""The linter and the formatter (issue 14): `ruff check .` passes with the project's configuration (pyproject.toml
[tool.ruff]): pycodestyle, pyflakes, import order, bugbear and pyupgrade, lines within the configured length; and
`ruff format --check .` finds nothing to reformat (run `ruff format .` before committing)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"ruff check failed:\n{done.stdout}{done.stderr}"


def test_ruff_format_finds_nothing_to_reformat() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (
        f"ruff format would change these files (run `ruff format .`):\n{done.stdout}{done.stderr}"
    )


def test_the_rule_set_is_not_narrowed() -> None:
    ruff = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]
    assert ruff["line-length"] == 120
    assert set(ruff["lint"]["select"]) >= {"E", "F", "W", "I", "B", "UP"}
    assert not ruff["lint"].get("ignore"), "fix the code instead of ignoring a rule"
