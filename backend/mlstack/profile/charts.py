"""The report's three kinds of chart as geometry for templates/charts.svg.j2, which draws them as inline SVG.

Inline SVG, not a charting library: the report must open offline, and its charts are bars and one heatmap.
Altair would need Vega's JavaScript inlined (vl-convert-python, a 33 MB wheel, about 0.9 MB of script per
chart) and matplotlib adds about 80 MB to the replica's image (which installs the backend's requirements)
for a command the replica never runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

LABEL_WIDTH = 170
BAR_WIDTH = 260
ROW_HEIGHT = 20
PLOT_WIDTH = 440
PLOT_HEIGHT = 140
CELL = 34
MAX_LABEL = 26


@dataclass(frozen=True)
class Bar:
    label: str
    width: float
    text: str
    y: float


@dataclass(frozen=True)
class HBars:
    """Horizontal bars, one per label, the longest BAR_WIDTH; `reference`: a vertical line (overall rate)."""

    kind: ClassVar[str] = "hbars"

    bars: list[Bar]
    width: int
    height: int
    reference: float | None
    reference_text: str


@dataclass(frozen=True)
class Column:
    x: float
    y: float
    width: float
    height: float
    tip: str


@dataclass(frozen=True)
class Columns:
    """Adjacent columns over a numeric axis (a histogram), labelled at both ends."""

    kind: ClassVar[str] = "columns"

    columns: list[Column]
    width: int
    height: int
    low: str
    high: str


@dataclass(frozen=True)
class Cell:
    x: int
    y: int
    colour: str
    ink: str
    text: str
    tip: str


@dataclass(frozen=True)
class Heatmap:
    kind: ClassVar[str] = "heatmap"
    names: list[str]
    cells: list[Cell]
    cell: int
    margin: int
    width: int
    height: int


def hbars(
    labels: Sequence[str],
    values: Sequence[float | None],
    fmt: str = "{:,.0f}",
    reference: float | None = None,
    reference_text: str = "",
) -> HBars:
    """Bars for the values that exist (None is shown as "n/a" without a bar)."""
    top = max((abs(v) for v in values if v is not None), default=0.0) or 1.0
    top = max(top, reference or 0.0)
    bars = [
        Bar(
            label=_short(label),
            width=0.0 if v is None else BAR_WIDTH * abs(v) / top,
            text="n/a" if v is None else fmt.format(v),
            y=i * ROW_HEIGHT,
        )
        for i, (label, v) in enumerate(zip(labels, values, strict=True))
    ]
    line = None if reference is None else LABEL_WIDTH + BAR_WIDTH * reference / top
    return HBars(bars, LABEL_WIDTH + BAR_WIDTH + 90, len(bars) * ROW_HEIGHT + 22, line, reference_text)


def histogram(edges: Sequence[float], counts: Sequence[int]) -> Columns:
    top = max(counts, default=0) or 1
    step = PLOT_WIDTH / max(1, len(counts))
    columns = [
        Column(
            x=i * step,
            y=PLOT_HEIGHT - PLOT_HEIGHT * n / top,
            width=max(step - 1, 1),
            height=PLOT_HEIGHT * n / top,
            tip=f"[{edges[i]:.4g}, {edges[i + 1]:.4g}): {n:,} rows",
        )
        for i, n in enumerate(counts)
    ]
    return Columns(columns, PLOT_WIDTH, PLOT_HEIGHT + 22, f"{edges[0]:.4g}", f"{edges[-1]:.4g}")


def heatmap(names: Sequence[str], matrix: Sequence[Sequence[float | None]]) -> Heatmap:
    """A correlation matrix: red positive, blue negative, white none; the value in each cell."""
    margin = 8 + 7 * max((len(_short(n)) for n in names), default=0)
    cells = [
        Cell(
            x=margin + j * CELL,
            y=margin + i * CELL,
            colour=_diverging(v),
            ink="#ffffff" if v is not None and abs(v) > 0.6 else "#222222",
            text="" if v is None else f"{v:.2f}",
            tip=f"{names[i]} × {names[j]}: " + ("n/a" if v is None else f"{v:.3f}"),
        )
        for i, row in enumerate(matrix)
        for j, v in enumerate(row)
    ]
    size = margin + CELL * len(names) + 4
    return Heatmap([_short(n) for n in names], cells, CELL, margin, size, size)


def _diverging(value: float | None) -> str:
    """White at 0, to #b2182b at +1 and #2166ac at -1 (ColorBrewer RdBu ends)."""
    if value is None:
        return "#eeeeee"
    end = (0xB2, 0x18, 0x2B) if value >= 0 else (0x21, 0x66, 0xAC)
    t = min(1.0, abs(value))
    r, g, b = (round(255 + (c - 255) * t) for c in end)
    return f"#{r:02x}{g:02x}{b:02x}"


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"
