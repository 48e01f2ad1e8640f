"""What a deploy artifact must hold, checked by the deploy check and by the tests of it: the first-party modules
of the source and nothing else, and every third-party module production code imports."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement

from core.api.parts import PARTS

ROOT = Path(__file__).resolve().parents[2]
# The packages a function runs, and the entry modules of each platform.
SHIPPED_PACKAGES = ("core", "functions")
ENTRY_MODULES = ("api.index", "functions.api", "functions.outbox_relay")
# Never in an artifact: they do not run in a function.
NOT_SHIPPED = ("tests", "web", "bench", "docs", "standins", "infra", "build", "node_modules", ".venv")
# Modules that production code imports by a name built at run time, which reading its imports does not find: the
# whole API's parts (core/api/parts.py).
IMPORTED_BY_NAME = {"core.api.parts": tuple(f"core.api.routes.{part.module}" for part in PARTS)}
# Imported by production code but not installed from our dependencies: snapshot_restore_py comes with Lambda's
# python3.12+ runtime (SnapStart hooks).
PROVIDED_BY_RUNTIME = frozenset({"snapshot_restore_py"})


def source_modules(root: Path = ROOT) -> set[str]:
    """The first-party .py files (relative paths) of the shipped packages in a source tree."""
    return {
        path.relative_to(root).as_posix()
        for package in SHIPPED_PACKAGES
        for path in (root / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }


def first_party_differences(artifact_files: Iterable[str], root: Path = ROOT) -> tuple[set[str], set[str]]:
    """(modules in the artifact that the source does not have, source modules missing from the artifact)."""
    shipped = {name for name in artifact_files if name.split("/")[0] in SHIPPED_PACKAGES and name.endswith(".py")}
    source = source_modules(root)
    return shipped - source, source - shipped


def unwanted_files(artifact_files: Iterable[str]) -> set[str]:
    """What an artifact should not hold; of web/, the Lambda zip holds the browser client and the SDK builds the API
    serves (core/web.py), not the demo pages."""
    return {
        name
        for name in artifact_files
        if name.split("/")[0] in NOT_SHIPPED
        and not (name in ("web/", "web/realtime.js") or name.startswith("web/vendor/"))
    }


def _module_file(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def production_imports(root: Path = ROOT) -> set[str]:
    """Top-level names of the third-party modules that production code imports, lazily imported ones included:
    every first-party module reachable from the entry modules, imports inside functions followed too."""
    first_party = {"api", *SHIPPED_PACKAGES}
    seen: set[str] = set()
    pending = list(ENTRY_MODULES)
    third_party: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        pending.extend(IMPORTED_BY_NAME.get(module, ()))
        path = _module_file(module, root)
        if path is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                top = name.split(".")[0]
                if top in first_party:
                    pending.append(name)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    third_party.add(top)
    return third_party - PROVIDED_BY_RUNTIME


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _top_level_names(dist: importlib.metadata.Distribution) -> set[str]:
    listed = dist.read_text("top_level.txt")
    if listed:
        return {line.strip() for line in listed.splitlines() if line.strip()}
    names = set()
    for file in dist.files or ():
        top = file.parts[0]
        if top.endswith((".dist-info", ".data")) or top in ("..", "__pycache__"):
            continue
        names.add(top.removesuffix(".py").split(".")[0])
    return names


def installed_from_project_dependencies(root: Path = ROOT) -> set[str]:
    """Top-level module names that installing only ``[project].dependencies`` brings (what Vercel's installer does:
    `uv sync --no-dev`, no extras), resolved against this environment's installed distributions."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pending = [(Requirement(text), frozenset[str]()) for text in project["dependencies"]]
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    while pending:
        requirement, _ = pending.pop()
        key = (_normalized(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = importlib.metadata.distribution(requirement.name)
        names |= _top_level_names(dist)
        for text in dist.requires or ():
            dependency = Requirement(text)
            wanted = dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in (*requirement.extras, "")
            )
            if wanted:
                pending.append((dependency, frozenset(dependency.extras)))
    return names
