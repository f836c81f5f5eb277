"""The mypyc build's isolated environment holds every third-party package mypy meets.

mypyc type-checks the listed modules and everything they import (mypy follows imports, those
inside functions and `TYPE_CHECKING` blocks too). In pip's isolated build environment only
`[tool.valeur-monitor.mypyc] build-requires` is installed: an import of any other third-party
package in that closure fails the build with `import-not-found` from a fresh venv (`make
compiled` on a fresh clone), unless mypy is told to ignore it (`[[tool.mypy.overrides]]`).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
MODULES = PYPROJECT["tool"]["valeur-monitor"]["mypyc"]["modules"]
# distribution -> the import names it provides, where they differ from its own name
PROVIDES = {"mypy": {"mypy", "mypyc", "mypy_extensions"}, "types-pyyaml": {"yaml"},
            "pyyaml": {"yaml"}, "types-redis": {"redis"}, "redis": {"redis"},
            "prometheus-client": {"prometheus_client"}}


def _source(module: str) -> Path | None:
    for path in (ROOT / f"{module.replace('.', '/')}.py",
                 ROOT / module.replace(".", "/") / "__init__.py"):
        if path.is_file():
            return path
    return None


def _third_party_imports() -> dict[str, str]:
    """Top-level third-party import name -> first file:line importing it, over the closure."""
    found: dict[str, str] = {}
    todo = [path.removesuffix(".py").replace("/", ".") for path in MODULES]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _source(module)
        if path is None:
            continue
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]   # parent packages
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target, *(f"{target}.{alias.name}" for alias in node.names)]
            for name in names:
                top = name.split(".")[0]
                if top == "valeur_monitor":
                    todo.append(name)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _provided() -> set[str]:
    names: set[str] = set()
    for spec in PYPROJECT["tool"]["valeur-monitor"]["mypyc"]["build-requires"]:
        match = re.match(r"[A-Za-z0-9._-]+", spec)
        dist = re.sub(r"[-_.]+", "-", match.group(0) if match else spec).lower()
        names |= PROVIDES.get(dist, {dist.replace("-", "_")})
    for override in PYPROJECT["tool"]["mypy"].get("overrides", []):
        if override.get("ignore_missing_imports"):
            modules = override["module"]
            for module in [modules] if isinstance(modules, str) else modules:
                names.add(module.split(".")[0])
    return names


def test_every_third_party_import_mypyc_meets_is_in_its_build_environment() -> None:
    provided = _provided()
    missing = {top: where for top, where in _third_party_imports().items()
               if top not in provided}
    assert not missing, (
        "imported by the modules listed for mypyc (or what they import), absent from "
        f"[tool.valeur-monitor.mypyc] build-requires: {missing}")
