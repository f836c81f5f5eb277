"""A wheel runs on its own: the shipped rules, catalogue, topology and mappings travel inside it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest

from valeur_monitor.simulate import SimulationConfig, write_jsonl

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # With build isolation, as a user's `pip install` builds it (the pinned build backend).
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, env={**os.environ, "VALEUR_MYPYC": "0"})
    (built,) = out.glob("valeur_monitor-*.whl")
    return built


def test_the_wheel_carries_the_shipped_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("rules/requests.yml", "streams/catalogue.yaml", "streams/topics.yaml",
                    "streams/sources/zendesk.yaml"):
        assert f"valeur_monitor/_shipped/{shipped}" in names, shipped
    assert not any("__pycache__" in n for n in names)


def test_an_unpacked_wheel_runs_from_an_empty_folder(wheel: Path, tmp_path: Path) -> None:
    site, work = tmp_path / "site", tmp_path / "work"
    zipfile.ZipFile(wheel).extractall(site)
    work.mkdir()
    events = work / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=3, customers=40, days=2))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    env["PYTHONPATH"] = str(site)            # ahead of the editable checkout on sys.path
    code = ("import sys, valeur_monitor; print(valeur_monitor.__file__);"
            "from valeur_monitor.cli.main import main; sys.argv[0] = 'valeur-monitor'; main()")
    done = subprocess.run([sys.executable, "-c", code, "run", str(events), "--json"],
                          cwd=work, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    first, _, rest = done.stdout.partition("\n")
    assert first.startswith(str(site)), first   # the unpacked wheel ran, not the checkout
    summary = orjson.loads(rest)
    assert summary["events_applied"] > 100 and summary["ledger_entries"] > 0, summary
    assert summary["by_rule"], summary      # the shipped rules were found and used
