"""The chaos suite runs with `make chaos` (VALEUR_CHAOS=1), not in the normal suite: minutes of
replays with processes killed and a broker restarted (see docs/reliability.md, "Chaos")."""

import os

collect_ignore_glob = [] if os.environ.get("VALEUR_CHAOS") == "1" else ["test_*.py"]
