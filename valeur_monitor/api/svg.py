"""Server-side SVG charts for the pages: no JavaScript, no fetched library."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from markupsafe import Markup, escape

from valeur_monitor.read.timeline import Bar

COLORS = {"open": "#2563eb", "paused": "#94a3b8", "kept": "#16a34a", "late": "#d97706",
          "broken": "#dc2626"}
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%d %b %H:%M")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def _nice(lo: float, hi: float, n: int = 5) -> tuple[float, float, float]:
    """A round step (1, 2 or 5 x 10^k) and the bounds snapped to it, for value axes."""
    raw = (hi - lo) / max(1, n - 1) or 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step, step


class _Frame:
    """Maps times and values to pixels inside a plot area with margins for the axes."""

    def __init__(self, width: int, height: int, t0: int, t1: int, v0: float, v1: float,
                 left: int = 56, right: int = 12, top: int = 12, bottom: int = 28) -> None:
        self.w, self.h, self.left, self.top = width, height, left, top
        self.pw, self.ph = width - left - right, height - top - bottom
        self.t0, self.t1 = t0, max(t1, t0 + 1)
        self.v0, self.v1 = v0, (v1 if v1 > v0 else v0 + 1)

    def x(self, t: int) -> float:
        return self.left + (t - self.t0) / (self.t1 - self.t0) * self.pw

    def y(self, v: float) -> float:
        return self.top + (1 - (v - self.v0) / (self.v1 - self.v0)) * self.ph

    def time_axis(self) -> list[str]:
        out = []
        base = self.top + self.ph
        ticks = _ticks(self.t0, self.t1)
        for i, t in enumerate(ticks):
            x = self.x(int(t))
            anchor = "start" if i == 0 else "end" if i == len(ticks) - 1 else "middle"
            out.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 4}" '
                       'stroke="#64748b"/>')
            out.append(f'<text x="{x:.1f}" y="{base + 16}" text-anchor="{anchor}" {FONT} '
                       f'fill="#475569">{_day(int(t))}</text>')
        return out


def score_chart(points: Sequence[tuple[int, float]], *, width: int = 1040,
                height: int = 220) -> Markup:
    """The score over time as a line, with the zero line and value ticks."""
    if not points:
        return Markup("<p>No score history.</p>")
    values = [v for _, v in points] + [0.0]
    lo, hi, step = _nice(min(values), max(values))
    f = _Frame(width, height, points[0][0], points[-1][0], lo, hi)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="score over time" '
             'class="chart" data-chart="score">']
    for k in range(round((hi - lo) / step) + 1):
        v = lo + k * step
        y = f.y(v)
        parts.append(f'<line x1="{f.left}" y1="{y:.1f}" x2="{f.left + f.pw}" y2="{y:.1f}" '
                     'stroke="#e2e8f0"/>')
        parts.append(f'<text x="{f.left - 6}" y="{y + 4:.1f}" text-anchor="end" {FONT} '
                     f'fill="#475569">{v:+g}</text>')
    zero = f.y(0.0)
    parts.append(f'<line x1="{f.left}" y1="{zero:.1f}" x2="{f.left + f.pw}" y2="{zero:.1f}" '
                 'stroke="#0f172a" stroke-dasharray="4 3"/>')
    path = " ".join(f"{f.x(t):.1f},{f.y(v):.1f}" for t, v in points)
    parts.append(f'<polyline points="{path}" fill="none" stroke="#7c3aed" stroke-width="2" '
                 'class="score-line"/>')
    t_last, v_last = points[-1]
    parts.append(f'<circle cx="{f.x(t_last):.1f}" cy="{f.y(v_last):.1f}" r="4" '
                 'fill="#7c3aed"/>')
    parts += f.time_axis()
    parts.append("</svg>")
    return Markup("".join(parts))


def promise_chart(bars: Sequence[Bar], *, width: int = 1040, row: int = 18,
                  limit: int = 40) -> Markup:
    """Promises as bars from opening to deadline (or outcome), colored by outcome."""
    if not bars:
        return Markup("<p>No promises in the ledger window.</p>")
    shown = list(bars)[-limit:]
    t0 = min(b.start for b in shown)
    t1 = max(b.end for b in shown)
    height = 12 + row * len(shown) + 28
    f = _Frame(width, height, t0, t1, 0, 1, left=240)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="promises" '
             'class="chart" data-chart="promises">']
    for i, b in enumerate(shown):
        y = 12 + i * row
        x0, x1 = f.x(b.start), f.x(b.end)
        label = escape(f"{b.rule} {b.ref}"[:38])     # cut before escaping (no broken entity)
        parts.append(f'<text x="{f.left - 6}" y="{y + 12}" text-anchor="end" {FONT} '
                     f'fill="#334155">{label}</text>')
        parts.append(f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(3.0, x1 - x0):.1f}" '
                     f'height="{row - 6}" rx="3" fill="{COLORS[b.outcome]}" '
                     f'data-outcome="{b.outcome}"><title>{label}: {b.outcome}, '
                     f'{_day(b.start)} to {_day(b.end)}</title></rect>')
    parts += f.time_axis()
    parts.append("</svg>")
    return Markup("".join(parts))


def dimension_chart(dims: dict[str, float], *, width: int = 1040, row: int = 22) -> Markup:
    """Horizontal bars per dimension around a zero axis (benefits green, costs red)."""
    names = list(dims)
    if not names:
        return Markup("<p>No values yet.</p>")
    peak = max(1e-9, max(abs(v) for v in dims.values()))
    height = 8 + row * len(names)
    left, room = 110, 64                      # label column; room for a value beside a bar
    half = (width - left - 2 * room) / 2
    mid = left + room + half
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="score by dimension" '
             'class="chart" data-chart="dimensions">',
             f'<line x1="{mid:.1f}" y1="0" x2="{mid:.1f}" y2="{height}" stroke="#0f172a"/>']
    for i, name in enumerate(names):
        v = dims[name]
        y = 4 + i * row
        size = abs(v) / peak * half
        x = mid if v >= 0 else mid - size
        color = "#16a34a" if v >= 0 else "#dc2626"
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" {FONT} '
                     f'fill="#334155">{escape(name)}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y + 2}" width="{max(size, 1.0):.1f}" '
                     f'height="{row - 6}" fill="{color}"/>')
        tx = mid + size + 6 if v >= 0 else mid - size - 6
        anchor = "start" if v >= 0 else "end"
        parts.append(f'<text x="{tx:.1f}" y="{y + 14}" text-anchor="{anchor}" {FONT} '
                     f'fill="#334155">{v:+.2f}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
