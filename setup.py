"""setuptools hook: with VALEUR_MYPYC=1 the modules listed in pyproject.toml are compiled by mypyc.

Without it (the default, and always for editable installs) the package is pure Python. Why the
choice: docs/architecture.md, "Compiled engine (mypyc)".
"""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def compiled_modules() -> list[str]:
    """The source files to compile: `[tool.valeur-monitor.mypyc] modules` (one home)."""
    conf = tomllib.loads((HERE / "pyproject.toml").read_text(encoding="utf-8"))
    return list(conf["tool"]["valeur-monitor"]["mypyc"]["modules"])


def compiling() -> bool:
    return os.environ.get("VALEUR_MYPYC", "0") not in ("", "0")


def ext_modules() -> list[Any]:
    if not compiling():
        return []
    # Asked for explicitly: a missing compiler or a type error fails the build (no silent
    # fallback to a pure wheel that would be slower than the user was told).
    from mypyc.build import mypycify

    # A build directory of its own, emptied first: setuptools packs whatever build/lib holds,
    # so a module dropped from the list (or a later pure build) would ship a stale .so.
    shutil.rmtree(HERE / BUILD_BASE, ignore_errors=True)
    return list(mypycify(compiled_modules(), opt_level="3", group_name="valeur_monitor_mypyc",
                         target_dir=f"{BUILD_BASE}/c"))


class BuildWithShipped(build_py):
    """Packs rules/ and streams/ into the wheel (valeur_monitor/_shipped, read by
    valeur_monitor.shipped) so an installed package runs without a source checkout beside it."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):   # an editable install reads the checkout
            return
        target = Path(self.build_lib) / "valeur_monitor" / "_shipped"
        shutil.rmtree(target, ignore_errors=True)
        for name in SHIPPED:
            shutil.copytree(HERE / name, target / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


SHIPPED = ("rules", "streams")
BUILD_BASE = "build/mypyc"
setup(cmdclass={"build_py": BuildWithShipped},
      ext_modules=ext_modules(),
      options={"build": {"build_base": BUILD_BASE}} if compiling() else {})
