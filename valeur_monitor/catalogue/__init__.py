"""The open event catalogue: the shipped types (streams/catalogue.yaml) plus the deployment's own.

The codec, the rule compiler, `rules check` and the published JSON Schemas read the catalogue
returned by `active()`: the shipped file plus the files named by the env variable
``VALEUR_CATALOGUE`` (os.pathsep-separated files or directories), unless a command configured
another one with `configure()` (e.g. from the `catalogue` setting).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from valeur_monitor.catalogue.loader import load_catalogue, load_catalogue_text
from valeur_monitor.catalogue.model import Catalogue, EventType, FieldSpec
from valeur_monitor.shipped import shipped

SHIPPED = shipped("streams", "catalogue.yaml")
ENV = "VALEUR_CATALOGUE"

__all__ = ["ENV", "SHIPPED", "Catalogue", "EventType", "FieldSpec", "active", "configure",
           "deployment_paths", "load_catalogue", "load_catalogue_text", "use"]

_active: Catalogue | None = None


def deployment_paths() -> list[str]:
    """The deployment's own catalogue files, from ``VALEUR_CATALOGUE``."""
    return [p for p in os.environ.get(ENV, "").split(os.pathsep) if p]


def configure(paths: Sequence[str | Path] | None = None) -> Catalogue:
    """Load the shipped catalogue plus `paths` (default: ``VALEUR_CATALOGUE``) and use it.

    Raises CatalogueError (every problem with file:line) and keeps the previous one then.
    """
    extra = deployment_paths() if paths is None else [str(p) for p in paths]
    extra = [p for p in extra if Path(p).resolve() != SHIPPED]
    catalogue = load_catalogue([SHIPPED, *extra])
    use(catalogue)
    return catalogue


def use(catalogue: Catalogue) -> None:
    """Make `catalogue` the one every component reads from now on."""
    global _active
    _active = catalogue
    # the codec keeps a decoder built for the active catalogue
    from valeur_monitor import codec

    codec.reset()


def active() -> Catalogue:
    """The catalogue in use (loaded on first use: shipped + ``VALEUR_CATALOGUE``)."""
    if _active is None:
        return configure()
    return _active
