"""Write or check generated files: the one `--check` loop every deploy generator uses."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def sync(files: Mapping[Path, str], *, check: bool, module: str, what: str) -> int:
    """Write the files that differ (or, with `check`, print their diff); 1 if any were stale."""
    stale = 0
    for path, text in files.items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            continue
        if check:
            stale += 1
            sys.stdout.writelines(difflib.unified_diff(
                current.splitlines(keepends=True), text.splitlines(keepends=True),
                f"{shown(path)} (committed)", f"{shown(path)} (generated)"))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {shown(path)}")
    if stale:
        print(f"{stale} {what} out of date: run `python -m {module}`", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None, *, module: str, doc: str | None, what: str,
         render: Callable[[], Mapping[Path, str]]) -> int:
    """The generator command line: no option writes, `--check` diffs and fails when stale."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}",
                                     description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--check", action="store_true",
                        help="regenerate in memory; exit 1 with a diff if committed files differ")
    args = parser.parse_args(argv)
    return sync(render(), check=args.check, module=module, what=what)
