"""Where the shipped rules, catalogue, topology and source mappings live: one home for it."""

from __future__ import annotations

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
