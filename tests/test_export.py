"""Exports all or nothing: written beside, renamed when complete, with a manifest; a
killed export leaves the previous one whole; a directory that is not an export is
never replaced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import duckdb
import pytest

from consumers.settings import Settings
from lifecycle.population import PopulationSpec, generate
from projections.reading.export import MANIFEST, TABLES
from tests.cli import ROOT, lifecycle, lifecycle_command


@pytest.fixture(scope="module")
def derived(tmp_path_factory) -> Settings:
    settings = Settings(home=tmp_path_factory.mktemp("export") / "home")
    source = settings.home.parent / "population.jsonl"
    source.write_bytes(b"".join(line + b"\n" for line in generate(PopulationSpec(customers=3_000, seed=9, days=300))))
    assert lifecycle(settings, "publish", str(source)) == 0
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    return settings


def _manifest(directory):  # type: ignore[no-untyped-def]
    return json.loads((directory / MANIFEST).read_text())


def _whole(directory) -> None:  # type: ignore[no-untyped-def]
    manifest = _manifest(directory)
    assert set(manifest["tables"]) == set(TABLES) and manifest["positions"]
    for table, rows in manifest["tables"].items():
        assert duckdb.sql(f"SELECT count(*) FROM '{directory / (table + '.parquet')}'").fetchall()[0][0] == rows
    assert sorted(p.name for p in directory.iterdir()) == sorted([MANIFEST, *(f"{t}.parquet" for t in TABLES)])


def test_an_export_has_a_manifest_and_replaces_the_one_before_whole(derived, tmp_path):
    target = tmp_path / "warehouse"
    assert lifecycle(derived, "export", "--parquet", str(target)) == 0
    first = _manifest(target)
    assert lifecycle(derived, "export", "--parquet", str(target)) == 0
    _whole(target)
    assert _manifest(target)["tables"] == first["tables"]
    assert not list(tmp_path.glob(".warehouse.export-*"))


def test_a_directory_that_is_not_an_export_is_left_alone(derived, tmp_path, capsys):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    assert lifecycle(derived, "export", "--parquet", str(target)) == 2
    assert "is not an export of `lifecycle export`" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_a_killed_export_leaves_the_previous_one_whole(derived, tmp_path):
    target = tmp_path / "warehouse"
    assert lifecycle(derived, "export", "--parquet", str(target)) == 0
    before = _manifest(target)
    exporting = subprocess.Popen(lifecycle_command(derived, "export", "--parquet", str(target)), cwd=ROOT,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    staging = tmp_path / ".warehouse.export-partial"
    for _ in range(2_000):  # bounded wait until the new export is half written
        if len(list(staging.glob("*.parquet"))) >= 2:
            break
        time.sleep(0.005)
    os.killpg(exporting.pid, signal.SIGKILL)
    exporting.wait(timeout=60)
    assert len(list(staging.glob("*.parquet"))) >= 2, "the export ended before it could be killed"
    _whole(target)
    assert _manifest(target) == before
    assert lifecycle(derived, "export", "--parquet", str(target)) == 0
    _whole(target)
    assert not list(tmp_path.glob(".warehouse.export-*"))
