"""The dashboards' data links lead to pages the API serves (with the filters they pass)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from valeur_monitor.api.pages import pages

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "monitoring" / "dashboards"


def _links(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["url"]] if isinstance(node.get("url"), str) else []
        return found + [u for v in node.values() for u in _links(v)]
    if isinstance(node, list):
        return [u for v in node for u in _links(v)]
    return []


def test_data_links_point_at_served_pages() -> None:
    paths = {getattr(r, "path", "") for r in pages.routes}
    urls = [u for f in DASHBOARDS.glob("*.json") for u in _links(json.loads(f.read_text()))
            if "/ui/" in u]
    assert len(urls) >= 4
    for url in urls:
        assert url.startswith("${pages}/ui/")
        parts = urlsplit(url.replace("${pages}", "http://x"))
        assert parts.path in paths, url
        for name in parse_qs(parts.query):
            assert name in ("team", "channel")
    assert any(re.search(r"team=\$\{__field\.labels\.team\}", u) for u in urls)
