"""A wheel runs on its own: the shipped rules, catalogue, topology and mappings travel inside it;
VALEUR_MYPYC=0 builds it pure Python, and without a working C compiler the default (compiled)
build falls back to pure Python with a loud warning. The compiled default wheel itself is built
and checked by `make compiled` (tests/compiled/test_default_wheel.py): it takes minutes."""

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


def build(out: Path, **env: str) -> tuple[Path, str]:
    """A wheel built as a user's `pip wheel .` builds it (isolated build environment, the
    pinned backend), with `env` on top of ours; pip's -v output (the backend's stderr)."""
    base = {k: v for k, v in os.environ.items() if k not in ("VALEUR_MYPYC", "CC")}
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps",
                           "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, check=False, env={**base, **env})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (built,) = out.glob("valeur_monitor-*.whl")
    return built, done.stdout + done.stderr


def build_info(wheel: Path) -> dict[str, str]:
    return dict(orjson.loads(zipfile.ZipFile(wheel).read("valeur_monitor/_shipped/build.json")))


def extensions(wheel: Path) -> list[str]:
    return [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith((".so", ".pyd"))]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built, _ = build(tmp_path_factory.mktemp("wheel"), VALEUR_MYPYC="0")
    return built


def test_valeur_mypyc_0_builds_a_pure_wheel_without_warning(wheel: Path) -> None:
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    assert not extensions(wheel)
    assert build_info(wheel) == {"mypyc": "pure", "asked": "pure", "fallback": ""}


@pytest.fixture(scope="module")
def fallback(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    # The default asks for mypyc (its build requirements are installed), but the compiler is
    # a command that fails.
    return build(tmp_path_factory.mktemp("fallback"), CC="false")


def run_unpacked(wheel: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`valeur-monitor ARGS` from `wheel` unpacked, in an empty folder."""
    site, work = tmp_path / "site", tmp_path / "work"
    zipfile.ZipFile(wheel).extractall(site)
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALEUR_")}
    env["PYTHONPATH"] = str(site)            # ahead of the editable checkout on sys.path
    code = ("import sys, valeur_monitor; print(valeur_monitor.__file__);"
            "from valeur_monitor.cli.main import main; sys.argv[0] = 'valeur-monitor'; main()")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=work, env=env,
                          capture_output=True, text=True, check=False)


def test_without_a_c_compiler_the_default_build_is_pure_and_says_so(
        fallback: tuple[Path, str], tmp_path: Path) -> None:
    # The wheel is pure Python; the warning is on the backend's stderr, written into the
    # wheel, and said by the installed command line (pip hides a build's output without -v).
    built, output = fallback
    assert built.name.endswith("-py3-none-any.whl"), built.name
    assert not extensions(built)
    assert "WARNING: valeur-monitor is built as PURE PYTHON" in output, output[-3000:]
    assert "no working C compiler" in output
    info = build_info(built)
    assert info["mypyc"] == "pure" and info["asked"] == "auto", info
    assert info["fallback"].startswith("no working C compiler"), info
    done = run_unpacked(built, tmp_path, "rules", "check", "--help")
    assert done.returncode == 0, done.stderr
    assert "warning: this valeur-monitor was built as pure Python" in done.stderr, done.stderr
    assert "no working C compiler" in done.stderr


@pytest.mark.parametrize(("flag", "expected"), [
    ("1", "VALEUR_MYPYC=1: no working C compiler"),     # asked for: compile or fail
    ("yes", "VALEUR_MYPYC='yes': use 1"),               # unknown value: refused
])
def test_compile_or_fail_and_unknown_values_stop_the_build(flag: str, expected: str) -> None:
    # setup.py alone (no wheel): it decides before anything is built.
    env = {**os.environ, "VALEUR_MYPYC": flag, "CC": "false"}
    done = subprocess.run([sys.executable, "setup.py", "--name"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert expected in done.stderr, done.stderr[-2000:]
    assert "PURE PYTHON" not in done.stderr


def test_the_wheel_carries_the_shipped_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("rules/requests.yml", "streams/catalogue.yaml", "streams/topics.yaml",
                    "streams/sources/zendesk.yaml"):
        assert f"valeur_monitor/_shipped/{shipped}" in names, shipped
    assert not any("__pycache__" in n for n in names)


def test_an_unpacked_wheel_runs_from_an_empty_folder(wheel: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulationConfig(seed=3, customers=40, days=2))
    done = run_unpacked(wheel, tmp_path, "run", str(events), "--json")
    assert done.returncode == 0, done.stderr
    first, _, rest = done.stdout.partition("\n")
    assert first.startswith(str(tmp_path / "site")), first   # the unpacked wheel ran
    assert "warning:" not in done.stderr      # pure on purpose (VALEUR_MYPYC=0): no warning
    summary = orjson.loads(rest)
    assert summary["events_applied"] > 100 and summary["ledger_entries"] > 0, summary
    assert summary["by_rule"], summary      # the shipped rules were found and used
