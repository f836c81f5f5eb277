"""YAML to plain data plus the line of every key, so errors can say `file:line`."""

from __future__ import annotations

import pathlib
from collections.abc import Iterable
from typing import Any

import yaml

Path = tuple[str | int, ...]


class YamlDocument:
    """Plain Python data of one YAML file and a map from key paths to 1-based lines."""

    def __init__(self, data: Any, lines: dict[Path, int], duplicates: list[tuple[Path, int]]):
        self.data = data
        self.lines = lines
        self.duplicates = duplicates

    def line(self, path: Path) -> int:
        """Line of the longest known prefix of `path` (1 when nothing matches)."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(tuple(path[:end]))
            if found is not None:
                return found
        return 1


# libyaml's parser when PyYAML was built with it (about 10x faster on a thousand rules); a file
# it refuses is parsed again by the pure-Python one, whose messages the docs and tests show.
_FAST: Any = getattr(yaml, "CSafeLoader", None)


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document; raises yaml.YAMLError (with a mark) on syntax errors."""
    if _FAST is not None:
        try:
            return _parse(text, _FAST)
        except yaml.YAMLError:
            pass
    return _parse(text, yaml.SafeLoader)


def _parse(text: str, kind: Any) -> YamlDocument:
    loader = kind(text)
    try:
        node = loader.get_single_node()
        lines: dict[Path, int] = {}
        duplicates: list[tuple[Path, int]] = []
        data = _convert(loader, node, (), lines, duplicates) if node is not None else None
    finally:
        loader.dispose()
    return YamlDocument(data, lines, duplicates)


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path,
             lines: dict[Path, int], duplicates: list[tuple[Path, int]]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                # `<<: *anchor` gives defaults; keys written here override them without a
                # duplicate-key complaint.
                merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else [
                    value_node]
                for source in merged:
                    base = _convert(loader, source, path, lines, duplicates)
                    if isinstance(base, dict):
                        for k, v in base.items():
                            out.setdefault(k, v)
                continue
            # Keys stay the text the author wrote: YAML 1.1 would turn `on:` into True.
            key = str(key_node.value)
            child = (*path, key)
            if key in out and key in seen:
                duplicates.append((child, key_node.start_mark.line + 1))
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            out[key] = _convert(loader, value_node, child, lines, duplicates)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, (*path, i), lines, duplicates)
                for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def yaml_files(paths: Iterable[str | pathlib.Path]) -> list[pathlib.Path]:
    """Files named by `paths`: files as given, directories' *.yml/*.yaml (sorted, not recursive).

    The one rule for rule, catalogue and source-mapping paths alike."""
    out: list[pathlib.Path] = []
    for raw in paths:
        path = pathlib.Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml")))
        else:
            out.append(path)
    return out
