"""Tests of the mypyc-compiled build: collected only by `make compiled` (VALEUR_COMPILED=1).

The main suite runs on the editable, pure-Python install and has no compiled build to compare
with; `make compiled` installs the compiled wheel in `.venv-compiled` and runs these there.
"""

import os

collect_ignore_glob = [] if os.environ.get("VALEUR_COMPILED") == "1" else ["test_*.py"]
