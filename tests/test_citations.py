"""Code cites primary sources (CFR sections, standards) or docs/ in this repository, never outside documents."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".csv", ".html"}
SKIP_DIRS = {".venv", ".git", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
# Split so this file does not match itself.
FORBIDDEN = ("domain-" + "reference", "DESIGN" + ".md")


def _sources() -> list[Path]:
    found = []
    for directory, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        found += [Path(directory, name) for name in files if Path(name).suffix in SUFFIXES]
    return found


def test_no_citation_of_documents_outside_the_repository() -> None:
    sources = _sources()
    assert any(path.name == "cutoffs.py" for path in sources)  # the walk really reaches domain/
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if any(word in line for word in FORBIDDEN)
    ]
    assert not hits, "cite the primary source or a page under docs/ instead:\n" + "\n".join(hits)
