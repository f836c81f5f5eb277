"""What the deployment manifests may name, read from the code itself (never a hand-kept list).

* commands and options: the typer app of valeur_monitor/cli/main.py, parsed with click;
* settings: the pydantic ``Settings`` model (``VALEUR_`` + field path joined by ``__``);
* HTTP paths: the routes each server registers, found in its source (faust pages, FastAPI
  routes), per role: worker (streaming/), api (api/), ingest (ingest/);
* ports: the option given on the command line, else the ``VALEUR_*`` variable, else the default.
"""

from __future__ import annotations

import ast
import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, get_origin

import typer.main
from pydantic import BaseModel

from valeur_monitor.cli.main import app
from valeur_monitor.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "valeur_monitor"
PREFIX = "VALEUR_"
ROUTE_METHODS = frozenset({"page", "get", "post", "put", "delete", "patch", "head", "route",
                           "api_route", "add_route", "add_api_route"})
# Which source tree serves which role's HTTP endpoints.
ROLE_SOURCES = {"worker": ("streaming",), "api": ("api",), "ingest": ("ingest",)}
# Which command runs which role, and where its port and bind address come from
# (option, setting path).
ROLE_COMMANDS = {"worker": ("worker", "--web-port", ("worker", "web_port")),
                 "api": ("serve", "--port", ("api", "port")),
                 "ingest": ("ingest", "--port", ("ingest", "port"))}
ROLE_HOSTS = {"worker": ("--web-host", ("worker", "web_host")),
              "api": ("--host", ("api", "host")),
              "ingest": ("--host", ("ingest", "host"))}
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class ManifestError(AssertionError):
    """A manifest names something the code does not have."""


def cli() -> Any:
    """The root command (a click-style group; typer may bundle its own click)."""
    return typer.main.get_command(app)


def is_group(cmd: Any) -> bool:
    return isinstance(getattr(cmd, "commands", None), dict)


def parse_command(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """('topics apply', params) for `valeur-monitor ARGV`; ManifestError if click refuses it."""
    cmd = root = cli()
    args = [str(a) for a in argv]
    names: list[str] = []
    while is_group(cmd):
        if not args or args[0] not in cmd.commands:
            raise ManifestError(f"`valeur-monitor {' '.join(argv)}`: "
                                f"{args[0] if args else 'no command'!r} is not a command of "
                                f"`valeur-monitor {' '.join(names)}`".replace("  ", " "))
        names.append(args[0])
        cmd = cmd.commands[args.pop(0)]
    try:
        ctx = root.make_context("valeur-monitor", list(argv), resilient_parsing=True)
        sub = cmd.make_context(" ".join(names), args, parent=ctx)
    except Exception as exc:  # click's UsageError / BadParameter (typer's bundled click)
        if not hasattr(exc, "format_message"):
            raise
        raise ManifestError(f"`valeur-monitor {' '.join(argv)}`: {exc.format_message()}") from None
    return " ".join(names), dict(sub.params)


def command_exists(name: str) -> bool:
    """Whether `valeur-monitor NAME` (possibly 'a b') is a command."""
    cmd = cli()
    for part in name.split():
        if not is_group(cmd) or part not in cmd.commands:
            return False
        cmd = cmd.commands[part]
    return True


def setting_field(env: str) -> tuple[str, ...]:
    """The Settings field path of a VALEUR_ variable; ManifestError if there is none."""
    if not env.startswith(PREFIX):
        raise ManifestError(f"{env}: not a {PREFIX}* variable")
    parts = tuple(env[len(PREFIX):].lower().split("__"))
    model: type[BaseModel] = Settings
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            known = ", ".join(sorted(model.model_fields))
            raise ManifestError(f"{env}: {'.'.join(parts[:i + 1])} is not a setting "
                                f"(known here: {known})")
        annotation = field.annotation
        if get_origin(annotation) is dict and i == len(parts) - 2:
            return parts    # a mapping setting (e.g. ingest.secrets): the last part is its key
        if i < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                raise ManifestError(f"{env}: {'.'.join(parts[:i + 1])} has no sub-settings")
            model = annotation
    return parts


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Exactly these VALEUR_ variables (others removed) for the duration."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(PREFIX)}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)


def check_settings(env: Mapping[str, str]) -> Settings:
    """Every VALEUR_ variable is a setting and the literal values validate together."""
    ours = {k: v for k, v in env.items() if k.startswith(PREFIX)}
    for key in ours:
        setting_field(key)
    literal = {k: v for k, v in ours.items() if "${" not in v and "$(" not in v}
    with environment(literal):
        try:
            return Settings()
        except Exception as exc:  # pydantic ValidationError: which value is wrong
            raise ManifestError(f"settings refused: {exc}") from None


def setting_value(settings: Settings, path: Sequence[str]) -> Any:
    value: Any = settings
    for part in path:
        value = getattr(value, part)
    return value


def served_paths(role: str) -> frozenset[str]:
    """HTTP paths registered in the role's source tree (decorators and add_route calls)."""
    paths: set[str] = set()
    for sub in ROLE_SOURCES[role]:
        for file in sorted((PACKAGE / sub).rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ROUTE_METHODS and node.args
                        and isinstance(node.args[0], ast.Constant)
                        and isinstance(node.args[0].value, str)
                        and node.args[0].value.startswith("/")):
                    paths.add(node.args[0].value)
    return frozenset(paths)


def role_of(argv: Sequence[str]) -> str | None:
    """The server role a command line runs (worker, api, ingest), or None."""
    first = argv[0] if argv else ""
    return next((role for role, (command, _, _) in ROLE_COMMANDS.items() if command == first),
                None)


def role_port(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """The port the server started by ARGV listens on: option, else VALEUR_*, else default."""
    role = role_of(argv)
    if role is None:
        raise ManifestError(f"`valeur-monitor {' '.join(argv)}` serves no HTTP")
    _, option, path = ROLE_COMMANDS[role]
    _, params = parse_command(argv)
    key = option.lstrip("-").replace("-", "_")
    if params.get(key) is not None:
        return int(params[key])
    return int(setting_value(check_settings(env), path))


def _option_or_setting(argv: Sequence[str], env: Mapping[str, str], option: str,
                       path: Sequence[str]) -> Any:
    _, params = parse_command(argv)
    key = option.lstrip("-").replace("-", "_")
    if params.get(key) is not None:
        return params[key]
    return setting_value(check_settings(env), path)


def role_host(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """The address the server started by ARGV binds: option, else VALEUR_*, else default."""
    role = role_of(argv)
    if role is None:
        raise ManifestError(f"`valeur-monitor {' '.join(argv)}` serves no HTTP")
    option, path = ROLE_HOSTS[role]
    return str(_option_or_setting(argv, env, option, path))
