"""Which engine the suite tests: pure Python in the main suite, mypyc-compiled in `make compiled`,
and the build hook asks for what mypyc needs with the project's own version ranges."""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import os
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
MODULES = PYPROJECT["tool"]["valeur-monitor"]["mypyc"]["modules"]


def backend() -> ModuleType:
    spec = importlib.util.spec_from_file_location("valeur_build_backend",
                                                  ROOT / "build_support" / "backend.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_listed_modules_exist() -> None:
    assert MODULES
    for path in MODULES:
        assert (ROOT / path).is_file(), path


def test_engine_modules_are_the_build_this_run_claims_to_test() -> None:
    compiled = os.environ.get("VALEUR_COMPILED") == "1"
    for path in MODULES:
        name = path.removesuffix(".py").replace("/", ".")
        origin = str(importlib.import_module(name).__file__)
        is_extension = origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
        assert is_extension == compiled, f"{name} loaded from {origin}"
        if not compiled:  # the editable install: edits to the sources take effect
            assert Path(origin).resolve() == (ROOT / path).resolve(), origin


def test_compile_requirements_come_with_the_project_version_ranges(
        monkeypatch: pytest.MonkeyPatch) -> None:
    build = backend()
    requires = build.compile_requires()
    declared = [*PYPROJECT["project"]["dependencies"],
                *PYPROJECT["project"]["optional-dependencies"]["dev"]]
    assert set(requires) <= set(declared)
    assert any(r.startswith("mypy") for r in requires)
    monkeypatch.setenv("VALEUR_MYPYC", "0")
    assert not build.compiling()
    monkeypatch.setenv("VALEUR_MYPYC", "1")
    assert build.compiling()


def test_an_unknown_compile_requirement_is_refused(tmp_path: Path) -> None:
    build = backend()
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8").replace(
        'build-requires = ["mypy"', 'build-requires = ["no-such-package", "mypy"')
    (tmp_path / "pyproject.toml").write_text(text, encoding="utf-8")
    build.ROOT = tmp_path
    with pytest.raises(RuntimeError, match="no-such-package"):
        build.compile_requires()


def test_listed_modules_hold_nothing_mypyc_cannot_compile() -> None:
    """Caught here, in the pure suite, before `make compiled` would: a msgspec Struct subclass
    (fails at import when compiled) or a module-level `__getattr__` (crashes the import) in a
    module listed for mypyc. Such things belong in the interpreted `*_types.py` modules."""
    for path in MODULES:
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"), path)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                assert node.name != "__getattr__", f"{path}:{node.lineno}: module __getattr__"
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(base) for base in node.bases}
                assert not bases & {"Struct", "msgspec.Struct"}, (
                    f"{path}:{node.lineno}: {node.name} is a msgspec Struct")
