"""The workflow sandbox re-imports, for every workflow run, only the workflow definitions; every
other module of the project (pure rules, contracts, activities, the store) is passed through and
loaded once per process (iop/worker.py PASSTHROUGH). Checked on the saved histories' replays."""

from __future__ import annotations

import json
from collections import Counter

from temporalio.client import WorkflowHistory
from temporalio.worker.workflow_sandbox import _importer

from iop.worker import WORKFLOWS
from tests.workflows.test_participant_workflow import HISTORIES, _replayer

PROJECT = ("domain", "workflows", "activities", "store", "iop", "api", "ingest")
# A workflow module is one that defines a workflow; the sandbox exists to re-import those.
WORKFLOW_MODULES = {workflow.__module__ for workflow in WORKFLOWS} | {"workflows"}


async def test_the_sandbox_reimports_only_workflow_definitions(monkeypatch):
    fresh: Counter = Counter()
    passthrough = _importer.Importer._maybe_passthrough_module

    def spying(self, name: str):
        module = passthrough(self, name)
        if module is None:
            fresh[name] += 1
        return module

    monkeypatch.setattr(_importer.Importer, "_maybe_passthrough_module", spying)
    for path in sorted(HISTORIES.glob("*.json")):
        await _replayer().replay_workflow(WorkflowHistory.from_json(path.stem, json.loads(path.read_text())))
    ours = {name for name in fresh if name.split(".")[0] in PROJECT}
    assert ours, "the spy saw no import: the test would pass vacuously"
    assert ours <= WORKFLOW_MODULES, f"re-imported for every workflow run, pass them through: {ours - WORKFLOW_MODULES}"


async def test_the_sandbox_compiles_its_code_strings_once(monkeypatch):
    """The SDK exec()s a code string to enter the sandbox on every activation and twice per payload;
    the worker's runner compiles each distinct string once per process (iop/worker.py)."""
    import builtins

    from temporalio.worker.workflow_sandbox import _runner

    from iop import worker

    assert isinstance(worker.workflow_runner(), worker.CompiledOnceSandboxRunner)
    compiled: Counter = Counter()
    real_compile = builtins.compile

    def counting(source, *args, **kwargs):
        if isinstance(source, str) and "__temporal_" in source:
            compiled[source] += 1
        return real_compile(source, *args, **kwargs)

    executed: Counter = Counter()
    real_exec = builtins.exec

    def spying(code, *args, **kwargs):
        if not isinstance(code, str) and "__temporal_" in " ".join(getattr(code, "co_names", ())):
            executed["code object"] += 1
        elif isinstance(code, str) and "__temporal_" in code:
            executed["string"] += 1
        return real_exec(code, *args, **kwargs)

    worker._compiled.cache_clear()
    monkeypatch.setattr(worker, "compile", counting, raising=False)
    monkeypatch.setattr(_runner, "exec", spying, raising=False)
    for path in sorted(HISTORIES.glob("*.json")):
        await _replayer().replay_workflow(WorkflowHistory.from_json(path.stem, json.loads(path.read_text())))
    assert executed["code object"] > 10 * len(compiled) and executed["string"] == 0, (executed, len(compiled))
    assert compiled and max(compiled.values()) == 1, compiled
