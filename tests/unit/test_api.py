"""Guards on the public API and the package's layering.

``__all__`` lists are checked in the order ruff's RUF022 enforces (isort style:
SCREAMING_CASE constants, then CamelCase classes, then everything else, each in natural
order), so the test and the linter never disagree.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import heliosfl
import heliosfl.errors

PACKAGE_DIR = Path(heliosfl.__file__).resolve().parent

GUIDE_NAMES = [
    "AggregationStrategy",
    "ComplianceError",
    "Config",
    "ConfigError",
    "ConvergenceNotReached",
    "Coordinator",
    "DifferentialPrivacyConfig",
    "FederatedLearningEngine",
    "FederatedLearningError",
    "FederatedWorker",
    "InsufficientNodes",
    "ModelNotFound",
    "NodeNotFound",
    "NodeSelectionStrategy",
    "NodeTimeout",
    "NoiseMechanism",
    "PrivacyBudgetExhausted",
    "RoundConfig",
    "SecureAggregationError",
    "WorkerConfig",
]

REQUIRED_SUBPACKAGES = ["heliosfl.models", "heliosfl.data", "heliosfl.backends"]

# Layers that must stay below the orchestration.
LOWER_LAYERS = ["privacy", "secagg", "compliance", "models", "data"]
ORCHESTRATION = ["heliosfl.engine", "heliosfl.coordinator", "heliosfl.training", "heliosfl.ui"]

HEAVY_UI_MODULES = ["ipywidgets", "IPython", "matplotlib", "traitlets"]


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", name) if t)


def ruf022_key(name: str) -> tuple[int, tuple[tuple[int, int | str], ...]]:
    """Sort key of ruff's RUF022 isort-style ``__all__`` ordering."""
    if len(name) > 1 and name.isupper():
        group = 0  # CONSTANT
    elif name[:1].isupper():
        group = 1  # Class
    else:
        group = 2  # everything else
    return group, _natural(name)


def assert_all_well_formed(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    names = list(module.__all__)
    assert names, f"{module_name}.__all__ is empty"
    assert all(isinstance(n, str) for n in names)
    assert len(names) == len(set(names)), f"duplicates in {module_name}.__all__"
    assert names == sorted(names, key=ruf022_key), f"{module_name}.__all__ is not sorted"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{module_name}.__all__ names that do not resolve: {missing}"
    return names


def module_name_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool) -> list[tuple[str, bool]]:
    """Absolute names a module imports, each with whether the import is inside a function.

    ``from heliosfl import engine`` yields both ``heliosfl`` and ``heliosfl.engine``;
    relative imports are resolved against ``module``.
    """
    tree = ast.parse(source)
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                found.extend((alias.name, nested) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package_parts[: len(package_parts) - (child.level - 1)]
                    target = ".".join([*base, child.module] if child.module else base)
                else:
                    target = child.module or ""
                found.append((target, nested))
                found.extend((f"{target}.{alias.name}", nested) for alias in child.names)
            visit(child, nested)

    visit(tree, False)
    return found


def is_within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def python_files(*dirs: Path) -> list[Path]:
    return sorted(p for d in dirs if d.is_dir() for p in d.rglob("*.py"))


def event_loop_misuse(source: str) -> list[str]:
    """Calls the library must never make: ``asyncio.run``, ``get_event_loop``, nest_asyncio."""
    tree = ast.parse(source)
    run_aliases = {"asyncio.run"}
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "asyncio":
            for alias in node.names:
                if alias.name == "run":
                    run_aliases.add(alias.asname or "run")
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if any(is_within(n, "nest_asyncio") for n in names):
                problems.append(f"line {node.lineno}: imports nest_asyncio")
    for node in ast.walk(tree):
        name = (
            node.attr
            if isinstance(node, ast.Attribute)
            else node.id
            if isinstance(node, ast.Name)
            else ""
        )
        if name == "get_event_loop":
            problems.append(f"line {node.lineno}: get_event_loop")
        elif isinstance(node, ast.Call):
            func = node.func
            dotted = (
                f"{func.value.id}.{func.attr}"
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if dotted in run_aliases:
                problems.append(f"line {node.lineno}: {dotted}(")
    return problems


# ---------------------------------------------------------------------------------------
# __all__
# ---------------------------------------------------------------------------------------


def test_top_level_all_is_sorted_unique_and_resolves() -> None:
    assert_all_well_formed("heliosfl")


def test_top_level_all_contains_the_guide_names() -> None:
    missing = sorted(set(GUIDE_NAMES) - set(heliosfl.__all__))
    assert not missing, f"guide names missing from heliosfl.__all__: {missing}"


def test_every_public_error_is_exported_at_top_level() -> None:
    missing = sorted(set(heliosfl.errors.__all__) - set(heliosfl.__all__))
    assert not missing
    for name in heliosfl.errors.__all__:
        assert getattr(heliosfl, name) is getattr(heliosfl.errors, name)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from heliosfl import *", namespace)  # noqa: S102
    namespace.pop("__builtins__", None)
    assert set(namespace) == set(heliosfl.__all__)


def _subpackages() -> list[str]:
    found = {
        f"heliosfl.{p.parent.name}"
        for p in PACKAGE_DIR.glob("*/__init__.py")
        if p.parent.name != "ui"  # needs the jupyter extra; checked by its own tests
    }
    return sorted(found | set(REQUIRED_SUBPACKAGES))


@pytest.mark.parametrize("module_name", _subpackages())
def test_subpackage_all_is_sorted_unique_and_resolves(module_name: str) -> None:
    assert_all_well_formed(module_name)


@pytest.mark.parametrize(
    ("names", "ok"),
    [
        (["MLP", "MODEL_TYPES", "FloatArray", "Model", "check_params"], True),
        (["Model", "MLP"], False),
        (["make_model", "Model"], False),
        (["item2", "item10"], True),
        (["FedYogi", "FederatedLearningEngine", "__version__", "data"], True),
    ],
)
def test_ruf022_key_self_check(names: list[str], ok: bool) -> None:
    assert (names == sorted(names, key=ruf022_key)) is ok


# ---------------------------------------------------------------------------------------
# import hygiene
# ---------------------------------------------------------------------------------------


def test_import_heliosfl_does_not_import_ui_libraries() -> None:
    code = (
        "import sys, heliosfl\n"
        f"heavy = {HEAVY_UI_MODULES!r}\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=PACKAGE_DIR.parent,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"import heliosfl loaded: {proc.stdout.strip()}"


LOWER_LAYER_FILES = python_files(*(PACKAGE_DIR / name for name in LOWER_LAYERS))


def test_lower_layers_exist() -> None:
    # models/ and data/ exist today; privacy/, secagg/, compliance/ are checked once added.
    assert any(p.parent.name == "models" for p in LOWER_LAYER_FILES)
    assert any(p.parent.name == "data" for p in LOWER_LAYER_FILES)


@pytest.mark.parametrize(
    "path", LOWER_LAYER_FILES, ids=[str(p.relative_to(PACKAGE_DIR)) for p in LOWER_LAYER_FILES]
)
def test_lower_layers_do_not_import_orchestration(path: Path) -> None:
    module = module_name_of(path)
    imports = imported_modules(
        path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py"
    )
    bad = sorted({name for name, _ in imports for o in ORCHESTRATION if is_within(name, o)})
    assert not bad, f"{module} imports {bad}"


ALL_FILES = python_files(PACKAGE_DIR)


def test_no_module_outside_ui_imports_ui() -> None:
    offenders = []
    for path in ALL_FILES:
        if "ui" in path.relative_to(PACKAGE_DIR).parts[:-1]:
            continue
        module = module_name_of(path)
        for name, in_function in imported_modules(
            path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py"
        ):
            # The package's lazy loader (a function-level import in heliosfl/__init__.py)
            # is the one sanctioned way in.
            if in_function and module == "heliosfl":
                continue
            if is_within(name, "heliosfl.ui"):
                offenders.append(f"{module} imports {name}")
    assert not offenders


def test_library_never_runs_its_own_event_loop() -> None:
    offenders = {}
    for path in ALL_FILES:
        rel = path.relative_to(PACKAGE_DIR)
        if rel == Path("cli.py"):
            continue
        problems = event_loop_misuse(path.read_text(encoding="utf-8"))
        if problems:
            offenders[str(rel)] = problems
    assert not offenders


# The checkers above must be able to fail.


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("import heliosfl.engine", "heliosfl.models.mlp", "heliosfl.engine"),
        ("from heliosfl import coordinator", "heliosfl.data.partition", "heliosfl.coordinator"),
        ("from heliosfl.training import X", "heliosfl.models.sgd", "heliosfl.training"),
        ("from ..engine import Engine", "heliosfl.models.sgd", "heliosfl.engine"),
        ("from .. import ui", "heliosfl.data.synthetic", "heliosfl.ui"),
        ("def f():\n    from heliosfl.ui import w", "heliosfl.models.base", "heliosfl.ui.w"),
    ],
)
def test_import_checker_self_check(source: str, module: str, expected: str) -> None:
    names = [name for name, _ in imported_modules(source, module, is_package=False)]
    assert expected in names


def test_import_checker_resolves_package_relative_imports() -> None:
    names = [
        n
        for n, _ in imported_modules("from .base import Model", "heliosfl.models", is_package=True)
    ]
    assert "heliosfl.models.base" in names


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("import asyncio\nasyncio.run(main())", True),
        ("from asyncio import run\nrun(main())", True),
        ("from asyncio import run as go\ngo(main())", True),
        ("import asyncio\nloop = asyncio.get_event_loop()", True),
        ("import nest_asyncio", True),
        ("import asyncio\nloop = asyncio.get_running_loop()", False),
        ('"""Never call asyncio.run( in the library."""', False),
        ("await asyncio.to_thread(fit)", False),
    ],
)
def test_event_loop_checker_self_check(source: str, bad: bool) -> None:
    assert bool(event_loop_misuse(source)) is bad
