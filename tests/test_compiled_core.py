"""The typed core: lifecycle's rules compiled by Cython from their one Python source
(setup.py, `lifecycle.COMPILED`). The compiled modules and their source must derive the
same, byte for byte; and the tests run on the compiled ones, as CI does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
