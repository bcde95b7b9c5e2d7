"""The layers import one way: schemas <- lifecycle <- projections <- consumers.

Only `consumers/` touches Kafka or the environment; only `projections/` touches DuckDB.
Checked from the source's AST, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
LAYERS = ("schemas", "lifecycle", "projections", "consumers")
ONLY_IN = {"kafka": {"consumers"}, "duckdb": {"projections"}, "pyarrow": {"projections"}, "rocksdict": {"projections"}}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _reads_environment(path: Path) -> bool:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                return True
    return False


@pytest.mark.parametrize("package", LAYERS)
def test_layers_import_only_downwards(package):
    allowed_below = set(LAYERS[: LAYERS.index(package) + 1])
    for path in _modules(package):
        upward = (_imports(path) & set(LAYERS)) - allowed_below
        assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)} from a higher layer"


@pytest.mark.parametrize("library", sorted(ONLY_IN))
def test_technology_stays_in_its_layer(library):
    for package in LAYERS:
        if package in ONLY_IN[library]:
            continue
        for path in _modules(package):
            assert library not in _imports(path), f"{path.relative_to(ROOT)} imports {library}"


def test_only_consumers_read_the_environment():
    for package in ("schemas", "lifecycle", "projections"):
        for path in _modules(package):
            assert not _reads_environment(path), f"{path.relative_to(ROOT)} reads the environment"


def test_the_checks_see_imports():
    """Guard against a check that cannot fail: the parser finds what is there."""
    assert {"duckdb", "pyarrow", "lifecycle"} <= _imports(ROOT / "projections" / "catalog" / "customers.py")
    assert _reads_environment(ROOT / "consumers" / "settings.py")


SUBPACKAGES = ("logs", "privacy", "processing", "group", "replay", "commands")


def _consumers_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    return {node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("consumers")}


def test_the_logs_are_the_bottom_of_consumers_and_nothing_imports_the_command_line():
    """consumers/ by role: the logs, privacy, processing, group, replay, commands; the logs need
    none of the others, and only the entry point knows the command line."""
    for path in _modules("consumers/logs"):
        above = {m for m in _consumers_imports(path) if m.split(".")[1:2] and m.split(".")[1] in SUBPACKAGES[1:]}
        assert not above, f"{path.relative_to(ROOT)} imports {sorted(above)}"
    for path in _modules("consumers"):
        assert "consumers.cli" not in _consumers_imports(path), f"{path.relative_to(ROOT)} imports the command line"
    assert {p.name for p in (ROOT / "consumers").iterdir() if p.is_dir() and p.name != "__pycache__"} == set(SUBPACKAGES)


@pytest.mark.parametrize("package", ["consumers", "projections"])
def test_a_folder_past_fifteen_modules_is_split_by_role(package):
    for folder in [ROOT / package, *(p for p in (ROOT / package).iterdir() if p.is_dir() and p.name != "__pycache__")]:
        assert len(list(folder.glob("*.py"))) <= 15, f"{folder.relative_to(ROOT)}: split it into subpackages by role"
        assert (folder / "__init__.py").exists(), f"{folder.relative_to(ROOT)} is not a package"
