"""The backtest report as one self-contained HTML page with server-side SVG charts (no JS)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from jinja2 import Environment, select_autoescape
from markupsafe import Markup, escape

from valeur_monitor.backtest.report import Report
from valeur_monitor.engine.event import format_time
from valeur_monitor.metrics import BANDS

BASE_COLOUR, CAND_COLOUR = "#9aa5b1", "#2f6fdf"
GAIN, LOSS = "#2e8540", "#c0392b"


def histogram(report: Report, bins: int = 24, width: int = 640, height: int = 260) -> Markup:
    """Score distributions before/after as paired bars over the same bins."""
    values = [s for pair in report.scores.values() for s in pair]
    if not values:
        return Markup("<p>No customers.</p>")
    low, high = math.floor(min(values)), math.ceil(max(values))
    if high <= low:
        high = low + 1
    step = (high - low) / bins
    counts = [[0] * bins, [0] * bins]
    for pair in report.scores.values():
        for side in (0, 1):
            i = min(bins - 1, int((pair[side] - low) / step))
            counts[side][i] += 1
    top = max(max(counts[0]), max(counts[1]), 1)
    left, plot_w, plot_h = 48, width - 60, height - 50
    bar = plot_w / bins
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="Score distribution, baseline and candidate">']
    for k in range(5):
        y = 10 + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#e5e5e5"/><text x="{left - 6}" y="{y + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{round(top * k / 4):,}</text>')
    for i in range(bins):
        for side, colour in ((0, BASE_COLOUR), (1, CAND_COLOUR)):
            h = plot_h * counts[side][i] / top
            x = left + i * bar + side * bar / 2 + 1
            parts.append(f'<rect x="{x:.1f}" y="{10 + plot_h - h:.1f}" width="{bar / 2 - 1:.1f}"'
                         f' height="{h:.1f}" fill="{colour}"><title>{low + i * step:.1f} to '
                         f'{low + (i + 1) * step:.1f}: {counts[side][i]:,} '
                         f'{"baseline" if side == 0 else "candidate"}</title></rect>')
    for i in range(0, bins + 1, max(1, bins // 6)):
        x = left + i * bar
        parts.append(f'<text x="{x:.1f}" y="{height - 18}" font-size="11" text-anchor="middle">'
                     f'{low + i * step:.0f}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 3}" font-size="11" '
                 f'text-anchor="middle">score (points)</text></svg>')
    return Markup("".join(parts))


def delta_bars(report: Report, width: int = 640) -> Markup:
    """Net value delta per rule (all dimensions), largest change first."""
    by_rule: dict[str, float] = defaultdict(float)
    for row in report.rows:
        by_rule[row.rule] += row.delta
    rules = sorted(((r, d) for r, d in by_rule.items() if abs(d) > 1e-9),
                   key=lambda rd: -abs(rd[1]))
    if not rules:
        return Markup("<p>No rule changes any value.</p>")
    row_h, label_w = 24, 190
    height = row_h * len(rules) + 10
    span = max(abs(d) for _, d in rules)
    gains = any(d > 0 for _, d in rules)
    losses = any(d < 0 for _, d in rules)
    room = width - label_w - 70
    # Only losses: the axis sits on the right of the plot; only gains: on the left.
    mid = label_w + (room if not gains else room / 2 if losses else 0)
    half = room if not (gains and losses) else room / 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="Net value delta by rule">',
             f'<line x1="{mid}" x2="{mid}" y1="0" y2="{height}" stroke="#999"/>']
    for i, (rule, delta) in enumerate(rules):
        y = 5 + i * row_h
        w = half * abs(delta) / span
        x = mid if delta >= 0 else mid - w
        colour = GAIN if delta >= 0 else LOSS
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" font-size="12" text-anchor="end">'
                     f'{escape(rule)}</text><rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" '
                     f'height="{row_h - 8}" fill="{colour}"/><text x="'
                     f'{(mid + w + 6) if delta >= 0 else (mid + 6):.1f}" y="{y + 16}" '
                     f'font-size="12">{delta:+,.1f}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Backtest {{ r.baseline_version }} → {{ r.candidate_version }}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:980px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee}
th{text-align:left;background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
.gain{color:#2e8540}.loss{color:#c0392b}.key span{display:inline-block;width:12px;height:12px;
margin:0 4px 0 12px;vertical-align:middle}.meta{color:#555}.charts{display:flex;gap:24px;
flex-wrap:wrap}.small{font-size:12px;color:#555}td.id{white-space:nowrap}
</style></head><body>
<h1>Backtest: {{ r.baseline_version }} → {{ r.candidate_version }}</h1>
<p class="meta">{{ "{:,}".format(r.events) }} events, {{ "{:,}".format(r.scores|length) }}
customers, stream time {{ until }}. Rules: {{ r.rules.shared|length }} shared (run once),
changed: {{ r.rules.changed|join(", ") or "none" }}; added: {{ r.rules.added|join(", ") or
"none" }}; removed: {{ r.rules.removed|join(", ") or "none" }}.</p>
<table><tr><th></th><th>baseline</th><th>candidate</th><th>delta</th></tr>
{% for name, sign in [("created", 1), ("destroyed", -1), ("net", 1)] %}
<tr><td>{{ name }}</td><td class="n">{{ fmt(sign * base[name]) }}</td>
<td class="n">{{ fmt(sign * cand[name]) }}</td>
{% set d = sign * (cand[name] - base[name]) %}<td class="n {{ cls(d) }}">{{ fmt(d) }}</td></tr>
{% endfor %}</table>
<div class="charts">
<div><h2>Score distribution</h2><p class="key"><span style="background:{{ bc }}"></span>baseline
<span style="background:{{ cc }}"></span>candidate</p>{{ hist }}</div>
<div><h2>Net value delta by rule</h2>{{ bars }}</div>
</div>
<h2>Value by rule and dimension (rows that change)</h2>
<table><tr><th>rule</th><th>dimension</th><th>baseline</th><th>candidate</th><th>delta</th></tr>
{% for row in rows %}<tr><td>{{ row.rule }}</td><td>{{ row.dimension }}</td>
<td class="n">{{ fmt(row.net[0]) }}</td><td class="n">{{ fmt(row.net[1]) }}</td>
<td class="n {{ cls(row.delta) }}">{{ fmt(row.delta) }}</td></tr>{% endfor %}</table>
<h2>Customers by band</h2>
<table><tr><th>band</th><th>baseline</th><th>candidate</th><th>delta</th></tr>
{% for band in bands %}<tr><td>{{ band }}</td><td class="n">{{ b0[band] }}</td>
<td class="n">{{ b1[band] }}</td><td class="n">{{ "{:+}".format(b1[band] - b0[band]) }}</td>
</tr>{% endfor %}</table>
<p>{{ changes|length }} customers change band.</p>
<h2>Top movers</h2>
<table><tr><th>customer</th><th>baseline</th><th>candidate</th><th>delta</th>
<th>what differs (undecayed) and why</th></tr>
{% for m in r.movers %}<tr><td class="id">{{ m.customer }}</td>
<td class="n">{{ fmt(m.baseline) }}</td><td class="n">{{ fmt(m.candidate) }}</td>
<td class="n {{ cls(m.delta) }}">{{ fmt(m.delta) }}</td><td class="small">
{% for d in m.differences %}<b>{{ d.rule }}</b> {{ d.dimension }} {{ "{:+g}".format(d.baseline) }}
→ {{ "{:+g}".format(d.candidate) }}{% for e in m.entries.candidate
if e.rule == d.rule and e.dimension == d.dimension %}{% if loop.first %}: {{ e.explain
}}{% if loop.length > 1 %} (and {{ loop.length - 1 }} more){% endif %}{% endif %}{% endfor
%}<br>{% endfor %}</td></tr>
{% endfor %}</table>
<h2>Alerts</h2>
<p>{{ r.alerts_appeared|length }} appear, {{ r.alerts_vanished|length }} vanish.</p>
{% if r.alerts_appeared or r.alerts_vanished %}
<table><tr><th></th><th>alert</th><th>customer</th><th>time</th></tr>
{% for n in r.alerts_appeared[:50] %}<tr><td class="loss">appears</td><td>{{ n.id }}</td>
<td>{{ n.customer }}</td><td>{{ t(n.time) }}</td></tr>{% endfor %}
{% for n in r.alerts_vanished[:50] %}<tr><td class="gain">vanishes</td><td>{{ n.id }}</td>
<td>{{ n.customer }}</td><td>{{ t(n.time) }}</td></tr>{% endfor %}</table>{% endif %}
</body></html>
"""


def render_html(report: Report) -> str:
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    template = env.from_string(_PAGE)
    return template.render(
        r=report, base=report.totals(0), cand=report.totals(1), bands=BANDS,
        b0=report.bands(0), b1=report.bands(1), changes=report.band_changes(),
        rows=sorted((x for x in report.rows if abs(x.delta) > 1e-9),
                    key=lambda x: (x.rule, x.dimension)),
        hist=histogram(report), bars=delta_bars(report), bc=BASE_COLOUR, cc=CAND_COLOUR,
        until=format_time(report.until) if report.until else "-", t=format_time,
        fmt=lambda x: f"{x:+,.1f}" if abs(x) >= 0.05 else "0",
        cls=lambda x: "gain" if x > 1e-9 else ("loss" if x < -1e-9 else ""))


def write_html(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
