"""The engine stays pure: no I/O libraries, no clock reads."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ENGINE = Path(__file__).resolve().parents[3] / "valeur_monitor" / "engine"
FORBIDDEN = {"faust", "redis", "kafka", "aiokafka", "prometheus_client", "socket", "requests",
             "aiohttp", "asyncio", "os", "subprocess", "random"}
SERVERS = {"faust", "redis", "kafka", "aiokafka", "prometheus_client"}
CLOCK_CALLS = {"time", "time_ns", "monotonic", "perf_counter", "now", "utcnow", "today"}


def _modules() -> list[Path]:
    return sorted(ENGINE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ENGINE)))
def test_no_forbidden_import_and_no_clock_read(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            names = []
        assert not set(names) & FORBIDDEN, f"{path.name} imports {names}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in CLOCK_CALLS, f"{path.name}:{node.lineno} reads a clock"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "open", f"{path.name}:{node.lineno} opens a file"


def test_importing_the_engine_loads_no_server_client() -> None:
    code = ("import sys, valeur_monitor.engine.core, valeur_monitor.engine.rules; "
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            f"{sorted(SERVERS)!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
