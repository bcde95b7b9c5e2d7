"""Analysts' access is read-only for real: `lifecycle sql` reads the projections and
nothing else, and changes nothing, on the database and on a live engine's snapshot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from consumers.settings import Settings
from projections.stores.projection_store import DuckDBProjectionStore
from tests.cli import lifecycle

MIXED = Path(__file__).parent / "fixtures" / "mixed_valid_invalid.jsonl"


def _refused(home: Path, where: Path) -> dict[str, str]:
    """Each form analysts must not run: the statement, with `where` for its files."""
    log = home / "customer-events.sqlite"
    return {
        "copy a table to a file": f"COPY customers TO '{where / 'leak.csv'}'",
        "copy a query over the event log": f"COPY (SELECT 'x') TO '{log}'",
        "copy to parquet": f"COPY customers TO '{where / 'leak.parquet'}' (FORMAT parquet)",
        "export the database": f"EXPORT DATABASE '{where / 'export'}'",
        "attach another database": f"ATTACH '{where / 'other.duckdb'}' AS other",
        "attach the event log": f"ATTACH '{log}' AS events (TYPE sqlite)",
        "install an extension": "INSTALL httpfs",
        "load an extension": "LOAD httpfs",
        "read a local csv": f"SELECT * FROM read_csv('{where / 'secret.csv'}')",
        "read a local file's text": f"SELECT * FROM read_text('{where / 'secret.csv'}')",
        "read a system file": "SELECT * FROM read_text('/etc/passwd')",
        "list files": f"SELECT * FROM glob('{where}/*')",
        "turn external access back on": "SET enable_external_access = true",
        "unlock the configuration": "SET lock_configuration = false",
        "write a table": "DELETE FROM customer_rows",
        "create a table": "CREATE TABLE leak AS SELECT * FROM customers",
    }


@pytest.fixture
def analysed(tmp_path: Path) -> tuple[Settings, Path]:
    settings = Settings(home=tmp_path / "home")
    assert lifecycle(settings, "publish", str(MIXED)) == 1
    assert lifecycle(settings, "process", "--once", "--no-clock") == 0
    where = tmp_path / "elsewhere"
    where.mkdir()
    (where / "secret.csv").write_text("user,password\nada,s3cret\n")
    return settings, where


def _files(*roots: Path) -> dict[str, int]:
    """Every file under the roots, and those at the top of the working directory (where
    a relative path in a statement would write)."""
    tops = [path for path in Path.cwd().iterdir() if path.is_file()]
    return {str(path): path.stat().st_size for path in [*tops, *(p for root in roots for p in root.rglob("*"))]}


@pytest.mark.parametrize("form", list(_refused(Path("h"), Path("w"))))
def test_every_form_that_reaches_beyond_the_projections_is_refused(analysed, capsys, form):
    settings, where = analysed
    statement = _refused(settings.home, where)[form]
    before = _files(settings.home, where)
    capsys.readouterr()
    assert lifecycle(settings, "sql", statement) == 2
    err = capsys.readouterr().err
    assert "refused: `lifecycle sql` only reads the projections" in err, err
    assert _files(settings.home, where) == before


def test_reading_the_projections_still_works(analysed, capsys):
    settings, _ = analysed
    capsys.readouterr()
    assert lifecycle(settings, "sql", "SELECT count(*) FROM customers", "--format", "csv") == 0
    assert capsys.readouterr().out.splitlines() == ["count_star()", "3"]


def test_the_snapshot_read_while_an_engine_runs_is_locked_down_too(analysed, capsys):
    settings, where = analysed
    store = DuckDBProjectionStore(settings.views_path)
    try:
        store.publish_snapshot()
        capsys.readouterr()
        assert lifecycle(settings, "sql", f"COPY customers TO '{where / 'leak.csv'}'") == 2
        read = capsys.readouterr()
        assert "answered from its snapshot" not in read.err and "refused" in read.err
        assert not (where / "leak.csv").exists()
    finally:
        store.close()


def test_sql_on_a_home_that_does_not_exist_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "no-such-home"
    assert lifecycle(Settings(home=missing), "sql", "SELECT 1") == 2
    assert "no lifecycle home at" in capsys.readouterr().err
    assert not missing.exists()
    assert os.listdir(tmp_path) == []
