"""Appends, checkpoints and one act of tampering by the database role, interleaved: after every step
verify's verdict and the event it names are what the chain and the checkpoints can prove."""

import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import text

from store.audit import append, append_checkpoint_file, make_checkpoint, read_checkpoints, verify
from store.db import make_engine
from store.migrate import upgrade
from tests.store.test_audit_tamper import KEYS, entry, rehash_with_the_old_algorithm

_DIR = Path(tempfile.mkdtemp(prefix="audit-sm-"))
_URL = f"sqlite:///{_DIR / 'records.db'}"
upgrade(_URL)
ENGINE = make_engine(_URL)


class TamperMachine(RuleBasedStateMachine):
    @initialize()
    def fresh(self):
        with ENGINE.begin() as conn:
            conn.execute(text("DELETE FROM audit_events"))
            conn.execute(text("DELETE FROM audit_head"))
        self.path = _DIR / "checkpoints.jsonl"
        self.path.unlink(missing_ok=True)
        self.n = 0
        self.checkpoints: list[int] = []  # sequences, oldest first
        self.tamper: tuple | None = None  # (kind, seq, checkpoints taken before it)

    @rule(count=st.integers(1, 4))
    def app_appends(self, count):
        for i in range(count):
            append(ENGINE, entry(self.n + i), keys=KEYS)
        self.n += count

    @rule()
    def checkpoint(self):
        append_checkpoint_file(self.path, make_checkpoint(ENGINE, keys=KEYS))
        self.checkpoints.append(self.n)

    @precondition(lambda self: self.tamper is None and self.n >= 1)
    @rule(data=st.data())
    def edit_a_row(self, data):
        seq = data.draw(st.integers(1, self.n))
        with ENGINE.begin() as conn:
            conn.execute(text("UPDATE audit_events SET outcome = '403' WHERE seq = :s"), dict(s=seq))
        self.tamper = ("edit", seq, list(self.checkpoints))

    @precondition(lambda self: self.tamper is None and self.n >= 3)
    @rule(data=st.data())
    def delete_a_middle_row(self, data):
        seq = data.draw(st.integers(1, self.n - 1))
        with ENGINE.begin() as conn:
            conn.execute(text("DELETE FROM audit_events WHERE seq = :s"), dict(s=seq))
        self.tamper = ("delete", seq, list(self.checkpoints))

    @precondition(lambda self: self.tamper is None and self.n >= 2)
    @rule(data=st.data())
    def truncate_and_fix_the_head(self, data):
        self.truncate_to(data.draw(st.integers(1, self.n - 1)))

    def truncate_to(self, keep):
        with ENGINE.begin() as conn:
            last = conn.execute(text("SELECT hash FROM audit_events WHERE seq = :s"), dict(s=keep)).scalar_one()
            conn.execute(text("DELETE FROM audit_events WHERE seq > :s"), dict(s=keep))
            conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), dict(s=keep, h=last))
        self.n = keep  # the app carries on from the shortened chain
        self.tamper = ("truncate", keep + 1, list(self.checkpoints))

    @precondition(lambda self: self.tamper is None and self.n >= 1)
    @rule(data=st.data())
    def rehash_everything_unkeyed(self, data):
        rehash_with_the_old_algorithm(ENGINE, edit_seq=data.draw(st.integers(1, self.n)))
        self.tamper = ("rehash", 1, list(self.checkpoints))

    @invariant()
    def verify_proves_what_it_can(self):
        if not hasattr(self, "n"):
            return
        points = read_checkpoints(self.path) if self.path.exists() else []
        result = verify(ENGINE, keys=KEYS, checkpoints=points)
        if self.tamper is None:
            assert result.ok and result.checked == self.n, result
            return
        kind, first, before = self.tamper
        if kind in ("edit", "delete"):  # the key alone finds these, exactly
            assert not result.ok and result.first_broken_seq == first, (self.tamper, result)
        elif kind == "rehash":  # the cut-over pinned by any earlier checkpoint finds it, at the first row
            assert result.ok == (not before), (self.tamper, result)
            if before:
                assert result.first_broken_seq == 1
        else:  # truncate: found iff an earlier checkpoint saw further, at the first event cut (or replaced since)
            beyond = [s for s in before if s >= first]
            assert result.ok == (not beyond), (self.tamper, result)
            if beyond:
                assert result.first_broken_seq == first and result.checked == first - 1, (self.tamper, result)


def run(*steps):
    """One interleaving, step by step, with the invariant after each (hypothesis found these)."""
    machine = TamperMachine()
    machine.fresh()
    for name, *args in steps:
        getattr(machine, name)(*args)
        machine.verify_proves_what_it_can()


def test_a_later_checkpoint_of_a_replaced_event_does_not_hide_the_earlier_one():
    run(("app_appends", 2), ("checkpoint",), ("truncate_to", 1), ("app_appends", 1), ("checkpoint",))


def test_a_cut_tail_that_grew_again_is_located_at_the_first_replaced_event():
    run(("app_appends", 3), ("checkpoint",), ("truncate_to", 1), ("app_appends", 1))


def test_a_checkpoint_after_the_cut_does_not_move_the_location_past_it():
    run(
        ("app_appends", 4), ("checkpoint",), ("truncate_to", 2), ("app_appends", 1), ("checkpoint",), ("app_appends", 2)
    )


TamperMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=12, deadline=None)
test_tampering_interleaved = TamperMachine.TestCase
