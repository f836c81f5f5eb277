"""Pages and charts escape what they show; pure timeline helpers behave at their edges."""

from __future__ import annotations

from valeur_monitor.api.svg import dimension_chart, promise_chart, score_chart
from valeur_monitor.read.timeline import Bar, score_points
from valeur_monitor.read.views import LedgerQuery, ledger_page

DAY = 86_400_000


def test_charts_escape_labels_and_handle_empty_input() -> None:
    bars = [Bar("rule<x>", "ref&\"<script>alert(1)</script>", 0, DAY, "broken")]
    svg = str(promise_chart(bars))
    assert "<script>" not in svg and "&lt;" in svg and 'data-outcome="broken"' in svg
    assert "&lt" not in svg.replace("&lt;", "")          # no entity cut in half
    assert "No promises" in str(promise_chart([]))
    assert "No score history" in str(score_chart([]))
    dims = str(dimension_chart({"time": -3.0, "<b>": 1.0}))
    assert "&lt;b&gt;" in dims and dims.count("<rect") == 2


def test_score_points_draw_decay_between_updates() -> None:
    points = score_points([(0, -10.0), (10 * DAY, -4.0)], 20 * DAY, -4.0 * 0.5 ** (1 / 3),
                          30 * DAY, samples=2)
    assert points[0] == (0, -10.0)
    assert points[2] == (10 * DAY, -10.0 * 0.5 ** (1 / 3))   # just before the next update
    assert points[-1][0] == 20 * DAY
    assert abs(points[-1][1] - (-4.0 * 0.5 ** (1 / 3))) < 1e-9


def test_ledger_page_of_nothing() -> None:
    assert ledger_page([], LedgerQuery(limit=5)) == ([], None)
