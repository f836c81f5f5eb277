"""Where the shipped rules, catalogue, topology and source mappings live: one home for it."""

from __future__ import annotations

import json
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# A wheel carries them inside the package (setup.py packs rules/ and streams/ there), so an
# installed package runs on its own; a source checkout reads the folders beside the package.
BUNDLED = _PACKAGE / "_shipped"
CHECKOUT = _PACKAGE.parent


def shipped(*parts: str) -> Path:
    """The shipped file or folder `parts` (e.g. "streams", "catalogue.yaml")."""
    bundled = BUNDLED.joinpath(*parts)
    return bundled if bundled.exists() else CHECKOUT.joinpath(*parts)


def build_info() -> dict[str, str]:
    """How this copy was built: `mypyc` is `compiled` or `pure`, `asked` the VALEUR_MYPYC mode
    of the wheel build (`auto`, `compiled`, `pure`; `editable` for a checkout), `fallback` why an
    `auto` build ended pure Python (empty otherwise). Written into a wheel by setup.py."""
    written = BUNDLED / "build.json"
    if not written.is_file():
        return {"mypyc": "pure", "asked": "editable", "fallback": ""}
    info = json.loads(written.read_text(encoding="utf-8"))
    return {key: str(info.get(key, "")) for key in ("mypyc", "asked", "fallback")}


def build_warning() -> str | None:
    """What the command line says on stderr when this copy fell back to pure Python at build
    time (pip hides the build's own warning unless run with -v); None otherwise."""
    info = build_info()
    if info["mypyc"] == "compiled" or not info["fallback"]:
        return None
    return (f"this valeur-monitor was built as pure Python, not compiled by mypyc "
            f"({info['fallback']}): about 1.3x more CPU per event. Reinstall it where a C "
            "compiler and the Python headers work, or build it with VALEUR_MYPYC=0 to choose "
            "pure Python (no warning).")
