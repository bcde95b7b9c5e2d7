"""The typed core: lifecycle's rules compiled by Cython from their one Python source
(setup.py, `lifecycle.COMPILED`). The compiled modules and their source must derive the
same, byte for byte; and the tests run on the compiled ones, as CI does."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec

from lifecycle import COMPILED
from tests.cli import ROOT


def _outputs(work: Path, path: Path | None = None) -> dict:
    environment = dict(os.environ)
    if path is not None:
        environment["PYTHONPATH"] = str(path)
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "engine_outputs.py"), str(work)], capture_output=True,
                          text=True, cwd=work, env=environment, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_every_module_of_the_core_is_compiled_for_the_tests():
    import importlib

    for name in COMPILED:
        loaded = importlib.import_module(f"lifecycle.{name}").__file__ or ""
        assert loaded.endswith(".so"), f"lifecycle.{name} runs from {loaded}: build the core with `make test`"


def test_the_compiled_core_and_its_python_source_derive_the_same(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT / "lifecycle", source / "lifecycle", ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
    (tmp_path / "compiled").mkdir()
    (tmp_path / "interpreted").mkdir()
    compiled = _outputs(tmp_path / "compiled")
    interpreted = _outputs(tmp_path / "interpreted", source)
    assert all(path.endswith(".so") for path in compiled.pop("core"))
    assert all(path.endswith(".py") and path.startswith(str(source)) for path in interpreted.pop("core"))
    assert compiled == interpreted
    for run in compiled.values():
        assert run["process"]["lifecycle log"] == run["replay"]["lifecycle log"]


def test_the_typed_state_has_the_stored_fields_their_order_and_their_defaults():
    from lifecycle.state import STATE_FIELDS, CustomerState, StoredState, encode_state

    assert encode_state(CustomerState("c")) == msgspec.msgpack.encode(StoredState(customer_id="c"))
    declared = re.findall(r"^    cdef public [\w ]+? (\w+)$", (ROOT / "lifecycle" / "state.pxd").read_text(), re.M)
    assert tuple(declared) == STATE_FIELDS


def test_states_stored_by_the_msgspec_engine_decode_and_encode_to_the_same_bytes():
    from lifecycle.state import decode_state, encode_state

    # Three states written by the engine before its state was typed (code a4d24e3):
    # orders, ledger, complaints, programme, referrals, surveys and consents all set.
    for line in (ROOT / "tests" / "fixtures" / "states_v1.hex").read_text().split():
        stored = bytes.fromhex(line)
        state = decode_state(stored)
        assert state.orders and state.ledger and state.purchase_times
        assert encode_state(state) == stored


def test_a_state_from_an_engine_with_fewer_fields_takes_the_defaults_of_the_new_ones():
    from lifecycle.state import decode_state

    line = (ROOT / "tests" / "fixtures" / "states_v1.hex").read_text().split()[0]
    fields = msgspec.msgpack.decode(bytes.fromhex(line))
    older = decode_state(msgspec.msgpack.encode(fields[:-4]))  # before purchase occasions, sources, consents
    assert (older.historical_revenue_minor, older.purchase_occasions, older.sources, older.consents) == (0, 0, [], {})
    assert older.chain_head == fields[-5]
