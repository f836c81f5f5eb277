"""PEP 517 backend: setuptools, plus what mypyc needs to compile a wheel (unless VALEUR_MYPYC=0).

mypyc type-checks the modules it compiles, so the isolated build environment needs mypy and the
packages (or stubs) those modules import: `[tool.valeur-monitor.mypyc] build-requires` names
them, and their version ranges are taken from the project's own dependency lists (one home).
A wheel is compiled by default (setup.py: `auto`, with a loud pure fallback when no C compiler
works; `1` compile or fail; `0` pure). Editable installs stay pure Python whatever the
environment says: compiled modules next to the sources would shadow them and edits would
silently stop taking effect.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (  # noqa: F401  (the rest of the PEP 517 interface)
    build_sdist,
    get_requires_for_build_sdist,
)

FLAG = "VALEUR_MYPYC"
ROOT = Path(__file__).resolve().parent.parent


def compiling() -> bool:
    """Whether a wheel build may compile (setup.py decides, and checks the value)."""
    return os.environ.get(FLAG, "").strip() != "0"


def compile_requires() -> list[str]:
    """mypy and the typed imports of the compiled modules, with the project's version ranges."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    project = conf["project"]
    declared = [*project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        declared += extra
    specs = {_name(spec): spec for spec in declared}
    wanted = conf["tool"]["valeur-monitor"]["mypyc"]["build-requires"]
    missing = [name for name in wanted if _name(name) not in specs]
    if missing:
        raise RuntimeError(f"pyproject.toml: mypyc build-requires {missing} are not dependencies")
    return [specs[_name(name)] for name in wanted]


def _name(spec: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", spec)
    return re.sub(r"[-_.]+", "-", match.group(0) if match else spec).lower()


@contextmanager
def _pure() -> Iterator[None]:
    """setup.py runs with compilation off: the hooks that only ask for requirements or metadata
    run it too (before mypy is even installed), and mypyc would otherwise compile each time."""
    saved = os.environ.get(FLAG)
    os.environ[FLAG] = "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ[FLAG]
        else:
            os.environ[FLAG] = saved


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    wanted = compiling()
    with _pure():
        base = list(_setuptools.get_requires_for_build_wheel(config_settings))
    return base + compile_requires() if wanted else base


def prepare_metadata_for_build_wheel(metadata_directory: str,
                                     config_settings: dict[str, Any] | None = None) -> str:
    with _pure():
        return str(_setuptools.prepare_metadata_for_build_wheel(metadata_directory,
                                                                config_settings))


def build_wheel(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                metadata_directory: str | None = None) -> str:
    return str(_setuptools.build_wheel(wheel_directory, config_settings, metadata_directory))


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    with _pure():
        return list(_setuptools.get_requires_for_build_editable(config_settings))


def prepare_metadata_for_build_editable(metadata_directory: str,
                                        config_settings: dict[str, Any] | None = None) -> str:
    with _pure():
        return str(_setuptools.prepare_metadata_for_build_editable(metadata_directory,
                                                                   config_settings))


def build_editable(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                   metadata_directory: str | None = None) -> str:
    if os.environ.get(FLAG, "").strip() == "1":
        print(f"{FLAG}=1 ignored: an editable install stays pure Python", file=sys.stderr)
    with _pure():
        return str(_setuptools.build_editable(wheel_directory, config_settings,
                                              metadata_directory))
