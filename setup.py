"""setuptools hook: a wheel compiles the modules listed in pyproject.toml with mypyc.

`VALEUR_MYPYC` chooses (read here and by `build_support/backend.py`):

* unset or `auto` (the default): compiled; without mypyc or a working C compiler (with the
  Python headers) the wheel is pure Python and a loud warning on stderr says so and why;
* `1`: compiled, or the build fails (what `make compiled` and the container image ask for);
* `0`: pure Python, no warning.

Editable installs are always pure Python (compiled modules beside the sources would shadow
them). Why: docs/architecture.md, "Compiled engine (mypyc)".
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
FLAG = "VALEUR_MYPYC"
MODES = {"0": "pure", "1": "compiled", "auto": "auto"}


def compiled_modules() -> list[str]:
    """The source files to compile: `[tool.valeur-monitor.mypyc] modules` (one home)."""
    conf = tomllib.loads((HERE / "pyproject.toml").read_text(encoding="utf-8"))
    return list(conf["tool"]["valeur-monitor"]["mypyc"]["modules"])


def mode() -> str:
    """`pure`, `compiled` (or fail) or `auto`, from VALEUR_MYPYC; anything else is refused."""
    value = os.environ.get(FLAG, "").strip().lower() or "auto"
    if value not in MODES:
        raise SystemExit(f"{FLAG}={value!r}: use 1 (compile or fail), 0 (pure Python) or "
                         "auto (the default: compile, pure Python with a warning if it cannot)")
    return MODES[value]


def compiling() -> bool:
    return mode() != "pure"


def compiler_problem() -> str | None:
    """Why no extension module can be built here (None: a C compiler and Python.h work).

    The same compiler setuptools would use (CC, LDSHARED, sysconfig), tried on a file that
    includes Python.h, compiled and linked as a shared object: a missing compiler or missing
    headers are found here, in a second, rather than after minutes of mypyc."""
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    with tempfile.TemporaryDirectory(prefix="valeur-cc-probe-") as tmp:
        source = Path(tmp, "probe.c")
        source.write_text("#include <Python.h>\nint valeur_probe(void) { return 0; }\n",
                          encoding="ascii")
        compiler: Any = new_compiler()
        customize_compiler(compiler)
        try:
            objects = compiler.compile([str(source)], output_dir=tmp,
                                       include_dirs=[sysconfig.get_paths()["include"]])
            compiler.link_shared_object(objects, str(Path(tmp, "probe.so")))
        # Any failure counts: the error classes differ between the distutils copies (stdlib,
        # setuptools' own, the one mypyc patches), and whatever it is, no extension builds.
        except Exception as exc:
            cc = " ".join(getattr(compiler, "compiler_so", None) or ["cc"])
            return f"no working C compiler with the Python headers ({cc}: {exc})"
    return None


def fall_back(reason: str) -> list[Any]:
    """auto mode without what compiling needs: say it loudly, build pure Python."""
    FALLBACK.append(reason)
    rule = "=" * 78
    print(f"\n{rule}\nWARNING: valeur-monitor is built as PURE PYTHON, not compiled by mypyc:\n"
          f"  {reason}\n"
          "The shipped build compiles the hot path with mypyc (about 1.3x less CPU per\n"
          "event; docs/architecture.md, \"Compiled engine (mypyc)\"). Install a C compiler\n"
          "and the Python headers (Debian: build-essential python3-dev, or scripts/build-deps)\n"
          f"and build again. {FLAG}=0 builds pure Python on purpose (no warning);\n"
          f"{FLAG}=1 fails instead of falling back.\n{rule}\n", file=sys.stderr, flush=True)
    return []


def ext_modules() -> list[Any]:
    wanted = mode()
    if wanted == "pure":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        if wanted == "compiled":
            raise
        return fall_back(f"mypyc cannot be imported ({exc})")
    problem = compiler_problem()
    if problem:
        if wanted == "compiled":   # asked for explicitly: no silent fallback to a slower wheel
            raise SystemExit(f"{FLAG}=1: {problem}")
        return fall_back(problem)
    # From here a type error or a compiler failure fails the build in either mode: the tools
    # are there, so it is a bug to fix, not a machine without a compiler.
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
        # What this wheel is, for whoever installs it (valeur_monitor.shipped.build_info):
        # pip shows a build's stderr only with -v, so a fallback is also written down here.
        info = {"mypyc": "compiled" if EXTENSIONS else "pure", "asked": mode(),
                "fallback": "; ".join(FALLBACK)}
        (target / "build.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")


SHIPPED = ("rules", "streams")
BUILD_BASE = "build/mypyc"
FALLBACK: list[str] = []   # why an `auto` build is pure Python (empty: it is not, or on purpose)
EXTENSIONS = ext_modules()
setup(cmdclass={"build_py": BuildWithShipped},
      ext_modules=EXTENSIONS,
      options={"build": {"build_base": BUILD_BASE}} if EXTENSIONS else {})
