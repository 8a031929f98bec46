"""The server binaries (Temporal dev and test servers) are found by one public helper, not a private one of the CLI."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every `from module import name`, at any depth of the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return found


@pytest.mark.parametrize("path", ["iop/simulate.py", "bench/capacity.py", "bench/harness.py"])
def test_no_module_reaches_into_the_cli(path):
    # The CLI imports the simulator; the simulator (and the benchmarks) must not import the CLI back.
    assert not [item for item in imports(ROOT / path) if item[0] == "iop.cli"], path


def test_no_private_name_is_imported_across_modules():
    for path in [*ROOT.glob("iop/*.py"), *ROOT.glob("bench/*.py")]:
        private = [
            (module, name)
            for module, name in imports(path)
            if module.startswith(("iop", "api", "store", "domain", "workflows", "activities", "ingest"))
            and name.startswith("_")
            and not name.startswith("__")
        ]
        assert not private, (path.name, private)


def test_finds_the_installed_servers():
    from iop.binaries import server_binary

    for name in ("temporal", "temporal-test-server"):
        found = Path(server_binary(name))
        assert found.name == name and found.exists()
    assert Path(server_binary("temporal")).parent == Path(sys.executable).parent


def test_a_missing_server_says_how_to_install_it():
    from iop.binaries import NotInstalled, server_binary

    with pytest.raises(NotInstalled, match="make install"):
        server_binary("no-such-server-binary")
