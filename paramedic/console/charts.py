"""Charts as inline SVG, drawn on the server: no JavaScript library, nothing to download.

Colours come from CSS classes in the console's stylesheet (the Content-Security-Policy
allows no inline styles); every label is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 220, 56, 28, 12


def _axis_max(value: float) -> float:
    """A round number at or above `value` for the y axis (1, 2, 5 × 10^n)."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    while step > value * 10:
        step /= 10
    for mult in (1, 2, 5, 10):
        if step * mult >= value:
            return step * mult
    return step * 10


def _tick(value: float, yfmt: str) -> str:
    """An axis label: three significant digits (small axes keep their decimals), the unit of `yfmt`."""
    return f"{value:.3g}" + ("%" if yfmt.endswith("%") else "")


def _frame(title: str, body: list[str], ymax: float, yfmt: str) -> Markup:
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    grid = []
    for frac in (0, 0.5, 1):
        y = PAD_TOP + plot_h * (1 - frac)
        grid.append(f'<line class="grid" x1="{PAD_LEFT}" y1="{y:.1f}" x2="{WIDTH}" y2="{y:.1f}"/>'
                    f'<text class="axis" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                    f'{escape(_tick(ymax * frac, yfmt))}</text>')
    return Markup(f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
                  f'<title>{escape(title)}</title>{"".join(grid)}{"".join(body)}</svg>')


def stacked_bars(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
                 yfmt: str = "{:.0f}") -> Markup:
    """One bar per label, stacked by series (name → values, one per label); CSS class `s-<name>`."""
    n = max(1, len(labels))
    totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
    ymax = _axis_max(max(totals, default=0))
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / n
    body = []
    for i, label in enumerate(labels):
        x = PAD_LEFT + i * slot + slot * 0.15
        base = 0.0
        for name, values in series:
            v = values[i]
            if v <= 0:
                continue
            h = plot_h * v / ymax
            y = PAD_TOP + plot_h * (1 - (base + v) / ymax)
            body.append(f'<rect class="s-{escape(name)}" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
                        f'height="{h:.1f}"><title>{escape(label)} {escape(name)}: {escape(yfmt.format(v))}'
                        f'</title></rect>')
            base += v
        if n <= 14 or i % max(1, n // 10) == 0:
            body.append(f'<text class="axis" x="{x + slot * 0.35:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                        f'{escape(label)}</text>')
    return _frame(title, body, ymax, yfmt)


def lines(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
          yfmt: str = "{:.0f}") -> Markup:
    """One polyline per series (gaps where a value is None); CSS class `l-<name>`."""
    n = max(1, len(labels))
    values = [v for _, vs in series for v in vs if v is not None]
    ymax = _axis_max(max(values, default=0))
    plot_w, plot_h = WIDTH - PAD_LEFT, HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / n
    body = []
    for name, vs in series:
        points = []
        for i, v in enumerate(vs):
            if v is None:
                continue
            x = PAD_LEFT + i * slot + slot / 2
            y = PAD_TOP + plot_h * (1 - v / ymax)
            points.append(f"{x:.1f},{y:.1f}")
            body.append(f'<circle class="l-{escape(name)}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                        f'<title>{escape(labels[i])} {escape(name)}: {escape(yfmt.format(v))}</title></circle>')
        if len(points) > 1:
            body.append(f'<polyline class="l-{escape(name)}" points="{" ".join(points)}"/>')
    for i, label in enumerate(labels):
        if n <= 14 or i % max(1, n // 10) == 0:
            body.append(f'<text class="axis" x="{PAD_LEFT + i * slot + slot / 2:.1f}" y="{HEIGHT - 8}" '
                        f'text-anchor="middle">{escape(label)}</text>')
    return _frame(title, body, ymax, yfmt)


def hbars(title: str, items: Sequence[tuple[str, float]], yfmt: str = "{:.0f}") -> Markup:
    """Horizontal bars, one per (label, value), largest scale first."""
    row_h = 24
    height = max(1, len(items)) * row_h + 8
    vmax = max((v for _, v in items), default=0) or 1
    label_w = 180
    body = []
    for i, (label, value) in enumerate(items):
        y = 4 + i * row_h
        w = (WIDTH - label_w - 60) * value / vmax
        body.append(f'<text class="axis" x="{label_w - 6}" y="{y + 16}" text-anchor="end">{escape(label or "(none)")}'
                    f'</text><rect class="s-bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}"/>'
                    f'<text class="axis" x="{label_w + w + 6:.1f}" y="{y + 16}">{escape(yfmt.format(value))}</text>')
    return Markup(f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">'
                  f'<title>{escape(title)}</title>{"".join(body)}</svg>')
