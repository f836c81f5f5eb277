"""deploy/Containerfile, parsed (no container engine here): stages, user, paths, entrypoint,
command, settings, health check and port are all things the repository and the code have."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from fnmatch import fnmatch
from pathlib import PurePosixPath
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from tests.unit.deploy_support import (
    ROOT,
    ManifestError,
    check_settings,
    parse_command,
    served_paths,
)

pytestmark = pytest.mark.unit

CONTAINERFILE = ROOT / "deploy" / "Containerfile"
IGNORE = ROOT / ".dockerignore"


def instructions() -> list[dict[str, Any]]:
    with CONTAINERFILE.open("rb") as f:
        return [i for i in DockerfileParser(fileobj=f).structure if i["instruction"] != "COMMENT"]


def final_envs() -> dict[str, str]:
    with CONTAINERFILE.open("rb") as f:
        return dict(DockerfileParser(fileobj=f).envs)


def stages() -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    for ins in instructions():
        if ins["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def only(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [str(i["value"]) for i in stage if i["instruction"] == name]


def exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), value
    return parsed


def ignored(rel: str) -> bool:
    patterns = [line.strip() for line in IGNORE.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")]
    return any(fnmatch(rel, p) or fnmatch(rel, p.removeprefix("**/")) or rel.startswith(p + "/")
               for p in patterns)


def image_files() -> dict[str, str]:
    """Path in the final image -> path in the repository, for what COPY puts there."""
    per_stage: dict[str, dict[str, str]] = {}
    final: dict[str, str] = {}
    for stage in stages():
        head = stage[0]["value"].split()
        name = head[2] if len(head) >= 3 and head[1].upper() == "AS" else ""
        workdir = PurePosixPath("/")
        files: dict[str, str] = {}
        for ins in stage:
            if ins["instruction"] == "WORKDIR":
                workdir = workdir / ins["value"]
            if ins["instruction"] != "COPY":
                continue
            words = shlex.split(ins["value"])
            flags = [w for w in words if w.startswith("--")]
            *srcs, dest = [w for w in words if not w.startswith("--")]
            target = workdir / dest
            origin = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            for src in srcs:
                if origin is None:
                    to = target / src if dest.endswith("/") else target
                    files[str(to)] = src
                else:
                    for path, repo in per_stage[origin].items():
                        if path == src or path.startswith(src.rstrip("/") + "/"):
                            files[str(target) + path[len(src.rstrip("/")):]] = repo
        per_stage[name] = files
        final = files
    return final


def test_multi_stage_on_slim_python_311() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    with CONTAINERFILE.open("rb") as f:
        parser = DockerfileParser(fileobj=f)
        base = parser.baseimage
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base
    assert any("--from=" in v for v in only(all_stages[-1], "COPY")), "runtime copies a build"
    assert not any("pip install" in v for v in only(all_stages[-1], "RUN")), \
        "the runtime stage installs nothing: dependencies come built from the build stage"


def test_runs_as_a_non_root_user() -> None:
    users = only(stages()[-1], "USER")
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    assert user.isdigit() or re.search(rf"useradd\b.*\b{re.escape(user)}\b",
                                       " ".join(only(stages()[-1], "RUN")))


def test_copied_sources_exist_and_are_in_the_build_context() -> None:
    for stage in stages():
        for value in only(stage, "COPY"):
            if "--from=" in value:
                continue
            *srcs, _ = [w for w in shlex.split(value) if not w.startswith("--")]
            for src in srcs:
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
                assert not ignored(src), f"COPY {src}: excluded by .dockerignore"


def test_the_rules_and_streams_are_in_the_image() -> None:
    files = image_files()
    repo = set(files.values())
    assert {"rules", "streams"} <= repo, repo
    # Settings paths of the image point at what was copied there.
    envs = final_envs()
    for key in ("VALEUR_RULES", "VALEUR_TOPOLOGY"):
        where = envs[key]
        source = next((r + where[len(p):] for p, r in files.items()
                       if where == p or where.startswith(p + "/")), None)
        assert source is not None, f"{key}={where}: nothing is copied there"
        assert (ROOT / source).exists(), f"{key}={where}: {source} is not in the repository"


def test_the_package_is_a_wheel_installed_beside_its_data() -> None:
    """The build stage builds the wheel from the repository, compiled by mypyc unless the
    VALEUR_MYPYC build argument is 0 (default 1; a C compiler then, in that stage only),
    installs it next to the shipped rules/streams the runtime copies, and the runtime's
    interpreter and PATH find it there."""
    build, runtime = stages()[0], stages()[-1]
    copied = {src for value in only(build, "COPY")
              for src in [w for w in shlex.split(value) if not w.startswith("--")][:-1]}
    assert {"valeur_monitor", "pyproject.toml", "setup.py", "build_support"} <= copied, copied
    assert "VALEUR_MYPYC=1" in only(build, "ARG"), "compiled by default (compile or fail)"
    runs = " ".join(only(build, "RUN"))
    assert re.search(r'VALEUR_MYPYC="\$VALEUR_MYPYC" \S*pip wheel ', runs), runs
    assert re.search(r'if \[ "\$VALEUR_MYPYC" != 0 \]; then apt-get update.*build-essential',
                     runs)
    # The dependency layer installs an empty package: pure, nothing to compile there.
    assert re.search(r"VALEUR_MYPYC=0 \S*pip install \. ", runs), runs
    found = re.search(r"pip install --no-deps --target (\S+) ", runs)
    assert found, "the wheel is installed into a directory of its own"
    target = found.group(1)
    assert re.search(rf"echo {re.escape(target)} > .*\.pth", runs), "the venv finds it"
    assert any(shlex.split(v)[-1] == target for v in only(runtime, "COPY") if "--from=" in v)
    assert f"{target}/rules" == final_envs()["VALEUR_RULES"]
    assert f"{target}/bin" in final_envs()["PATH"].split(":"), "the console script is found"
    assert not re.search(r"apt-get|build-essential|gcc", " ".join(only(runtime, "RUN")))


def test_entrypoint_is_the_console_script_and_cmd_a_real_command() -> None:
    runtime = stages()[-1]
    entry = exec_form(only(runtime, "ENTRYPOINT")[-1])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"]["scripts"]
    assert entry == ["valeur-monitor"] and "valeur-monitor" in scripts
    name, _ = parse_command(exec_form(only(runtime, "CMD")[-1]))
    assert name == "worker"


def test_env_names_real_settings_with_valid_values() -> None:
    envs = {k: v for k, v in final_envs().items() if k.startswith("VALEUR_")}
    assert envs
    settings = check_settings(envs)
    assert str(settings.worker.datadir).startswith("/var/lib/valeur-monitor")


def test_health_check_probes_a_path_and_port_the_worker_serves() -> None:
    runtime = stages()[-1]
    check = only(runtime, "HEALTHCHECK")[-1]
    paths = set(re.findall(r"(/[a-z]+)'", check))
    assert paths == {"/healthz"} and paths <= served_paths("worker"), check
    port = int(final_envs()["VALEUR_WORKER__WEB_PORT"])
    assert f"'{port}'" in check, "the check falls back to the image's worker port"
    assert str(port) in " ".join(only(runtime, "EXPOSE")).split()
    assert "VALEUR_WORKER__WEB_PORT" in check, "the check follows a changed worker port"


def test_support_refuses_what_the_code_lacks() -> None:
    """The checks above can fail: unknown command, option, setting and path are refused."""
    with pytest.raises(ManifestError, match="not a command"):
        parse_command(["wroker"])
    with pytest.raises(ManifestError, match="no-such-option"):
        parse_command(["worker", "--no-such-option", "1"])
    with pytest.raises(ManifestError, match="not a setting"):
        check_settings({"VALEUR_WORKER__WEB_PROT": "1"})
    with pytest.raises(ManifestError, match="refused"):
        check_settings({"VALEUR_WORKER__WEB_PORT": "http"})
    assert "/livez" not in served_paths("worker")
    assert {"/healthz", "/readyz", "/metrics"} <= served_paths("worker")
