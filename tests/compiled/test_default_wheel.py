"""The wheel a plain `pip wheel .` builds (no VALEUR_MYPYC) is the mypyc-compiled one.

`scripts/build-compiled` builds it exactly so (the variable unset) and `make compiled` runs
this in the venv where that wheel is installed. The pure and fallback builds are checked by
tests/integration/test_wheel.py, in the main suite.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import tomllib
import zipfile
from pathlib import Path

import orjson
import pytest

from valeur_monitor.shipped import build_info

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
MODULES = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
    "tool"]["valeur-monitor"]["mypyc"]["modules"]


def test_the_default_wheel_compiles_every_listed_module() -> None:
    (wheel,) = (ROOT / "build" / "wheels").glob("valeur_monitor-*.whl")
    assert not wheel.name.endswith("-none-any.whl"), wheel.name   # a platform wheel
    names = zipfile.ZipFile(wheel).namelist()
    info = orjson.loads(zipfile.ZipFile(wheel).read("valeur_monitor/_shipped/build.json"))
    assert info == {"mypyc": "compiled", "asked": "auto", "fallback": ""}, info
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for path in MODULES:
        stem = path.removesuffix(".py")
        assert any(n.startswith(f"{stem}.") and n.endswith(suffixes) for n in names), path
    # The package this venv imports is that wheel: it reads its own build record.
    assert build_info() == info
    for path in MODULES:
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert str(module.__file__).endswith(suffixes), module.__file__
