"""The floor plan holds: the import contracts name every core module, no module imports itself in a circle, and
every module stays short enough to read in one sitting."""

import tomllib
from pathlib import Path

import grimp
import pytest

from bench.processes import ROOT

PROGRAMS = {"service.api", "service.supervise"}
# A module is read in one sitting: past this many lines it holds a second concern that wants a module of its own.
MAX_LINES = 250


def contracts() -> list[dict]:
    return list(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"])


def test_the_core_contract_names_every_module_of_the_core() -> None:
    core = {
        f"service.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "service").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    } - PROGRAMS
    (contract,) = [c for c in contracts() if c["name"] == "The core imports none of the three programs"]
    assert set(contract["source_modules"]) == core


def test_no_module_imports_itself_in_a_circle() -> None:
    graph = grimp.build_graph("service", "worker", "bench")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                cycles.append(f"{module} <-> {imported}")
    assert cycles == []


@pytest.mark.parametrize("folder", ["service", "worker", "bench", "tests", "alembic"])
def test_every_module_is_short_enough_to_read_in_one_sitting(folder: str) -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_modules_listed_in_the_readme_map_exist() -> None:
    """The README's map of the tree names files that are there (a moved module leaves no stale entry)."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## How it works")
    block = readme[start:].split("```")[1]
    missing = [
        token
        for line in block.splitlines()
        for token in line.split()
        if token.endswith((".py", "/")) and "/" not in token.rstrip("/") and not _exists(token)
    ]
    assert missing == []


def _exists(name: str) -> bool:
    return any(p.name == name.rstrip("/") for p in Path(ROOT).rglob(name.rstrip("/")) if ".venv" not in p.parts)
