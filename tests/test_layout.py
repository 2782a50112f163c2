"""The package layout holds: dependencies point one way, no cycles, small modules, and the
cheap commands stay cheap. Read from the source with `ast`, so nothing here imports Ray."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "tuner"
MAX_MODULE_LINES = 350

# What each part of tuner may import besides itself. The arrows point down:
# cli -> engine, cluster -> search, tracking, trainer -> spec -> defaults.
EVERYTHING = {"defaults", "spec", "trainer", "search", "tracking", "engine", "cluster", "cli"}
ALLOWED: dict[str, set[str]] = {
    "defaults": set(),
    "spec": {"defaults"},
    "trainer": {"defaults"},
    "search": {"defaults", "spec"},
    "tracking": {"defaults", "spec", "search", "trainer"},
    "engine": {"defaults", "spec", "search", "tracking", "trainer"},
    "cluster": {"defaults", "spec", "tracking", "engine", "trainer"},
    "cli": EVERYTHING | {""},  # the version lives in the public API
    # The public API (tuner/__init__.py), `python -m tuner` and the `tuner` script's entry.
    "": EVERYTHING,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def part_of(module: str) -> str:
    """`tuner.search.asha` -> "search"; `tuner`, `tuner.__main__` and the command's
    entry point `tuner.entry` -> ""."""
    parts = module.split(".")
    return "" if len(parts) == 1 or parts[1] in ("__main__", "entry") else parts[1]


def imported_modules(module: str) -> Iterator[str]:
    """Every tuner module `module` imports, at the top or inside a function."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from tuner.search import asha` imports the module tuner.search.asha.
            targets = [node.module]
            targets += [f"{node.module}.{a.name}" for a in node.names]
        for target in targets:
            if target in MODULES and target != module:
                yield target


GRAPH = {module: sorted(set(imported_modules(module))) for module in MODULES}


def test_every_module_belongs_to_a_declared_package() -> None:
    undeclared = {part_of(m) for m in MODULES} - ALLOWED.keys()
    assert not undeclared, f"declare what these may import in ALLOWED: {sorted(undeclared)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_one_way(module: str) -> None:
    part = part_of(module)
    wrong = [
        target
        for target in GRAPH[module]
        if part_of(target) != part and part_of(target) not in ALLOWED[part]
    ]
    assert not wrong, f"{module} ({part or 'tuner'}) may not import {wrong}"


def test_no_import_cycles() -> None:
    """A depth-first search over the module graph; reports the first cycle it finds."""
    done: set[str] = set()
    on_path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in on_path:
            return [*on_path[on_path.index(module) :], module]
        if module in done:
            return None
        on_path.append(module)
        for target in GRAPH[module]:
            # A package's __init__ runs before its modules; importing it from inside
            # is not a cycle of the code's own making.
            if module.startswith(f"{target}."):
                continue
            cycle = visit(target)
            if cycle:
                return cycle
        on_path.pop()
        done.add(module)
        return None

    for module in MODULES:
        cycle = visit(module)
        assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module: str) -> None:
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{module}: {lines} lines; split it by job"


@pytest.mark.parametrize(
    "package", sorted(m for m, p in MODULES.items() if p.name == "__init__.py")
)
def test_each_package_says_what_it_owns(package: str) -> None:
    docstring = ast.get_docstring(ast.parse(MODULES[package].read_text(encoding="utf-8")))
    assert docstring and len(docstring.split()) >= 20, f"{package}: say what it owns"


def test_public_api_is_what_the_docs_promise() -> None:
    import tuner

    assert set(tuner.__all__) >= {
        "load_spec",
        "parse_spec",
        "run_sweep",
        "resume_sweep",
        "RunOptions",
        "SweepResult",
        "SweepSpec",
        "SpecError",
    }
    for name in tuner.__all__:
        assert getattr(tuner, name) is not None


def run_python(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_the_cli_and_validate_import_neither_ray_nor_torch() -> None:
    """`tuner --help`, `--version` and `validate` must stay instant."""
    code = (
        "import sys; import tuner.cli; "
        "print(sorted(m for m in ('ray', 'torch', 'mlflow', 'optuna') if m in sys.modules))"
    )
    assert run_python(code) == "[]"


def test_version_and_module_entry_points() -> None:
    from tuner import __version__

    for command in (["-m", "tuner", "--version"], ["-m", "tuner.cli", "--version"]):
        out = subprocess.run(
            [sys.executable, *command], cwd=REPO, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == f"tuner {__version__}"
    assert __version__[0].isdigit()


def test_shell_completion_is_offered() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tuner", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert "--install-completion" in out.stdout
    assert "--show-completion" in out.stdout
