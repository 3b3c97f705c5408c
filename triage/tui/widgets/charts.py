"""Plotext charts that keep their data and redraw it downsampled to their own width.

A chart is given immutable data with `show()`; `render()` rebuilds the figure for the current
size, so a resize or a new snapshot costs one plot of at most `width` points per series.

plotext's figure is read back as ANSI, so a logged value drawn into it (a version in a legend, a
category under the x axis) could act on the terminal: an OSC 8 link, a colour, a newline through the
frame. Every such value goes through `label`; titles are plain text, never markup.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.app import RenderResult
from textual.content import Content
from textual_plotext import PlotextPlot

from triage.printable import printable
from triage.tui import format as fmt
from triage.tui.data import Histogram
from triage.tui.views import buckets, downsample

PALETTE = ("cyan", "magenta", "yellow", "green", "blue", "red")
Y_AXIS_COLUMNS = 10  # room plotext takes for the y tick labels and the frame (at most)
LABEL_GAP = 3
LABEL_WIDTH = 24  # characters of a logged value in a legend or under an axis, the last one `…` when cut


def label(value: str) -> str:
    """A logged value as a chart draws it: `printable`, at most LABEL_WIDTH characters."""
    return printable(value, LABEL_WIDTH)


@dataclass(frozen=True)
class Series:
    """One line: its values per x position, how buckets are reduced, and how it is drawn."""

    label: str
    values: tuple[float | None, ...]
    color: str
    reduce: str = "mean"  # "mean" | "min" | "max"
    marker: str = "hd"  # plotext marker; "braille" draws the thin interval bounds
    suffix: str = ""  # fixed words after the label in the legend ("p99"), kept when the label is cut

    @property
    def legend(self) -> str:
        """The legend entry ("" for none): the label as `label` draws it, then the suffix."""
        return " ".join(part for part in (label(self.label), self.suffix) if part)


@dataclass(frozen=True)
class TimeSeries:
    """Series over consecutive windows, with reference lines (value, colour)."""

    x: tuple[datetime, ...]
    series: tuple[Series, ...]
    hlines: tuple[tuple[float, str], ...] = ()
    hourly: bool = False
    ylim: tuple[float, float] | None = None
    from_zero: bool = True  # the y axis starts at 0, so a small wiggle does not look like an incident
    vlines: tuple[tuple[datetime, str], ...] = ()  # (time, colour): event markers

    @property
    def empty(self) -> bool:
        """Whether there is no value to draw."""
        return not self.x or all(v is None for s in self.series for v in s.values)


def thin_ticks(
    positions: Sequence[float], labels: Sequence[str], lo: float, hi: float, canvas: int
) -> tuple[list[float], list[str]]:
    """The tick labels that fit side by side, left to right, with room between them.

    plotext drops labels that collide, in an order that depends on string hashing, so a crowded
    axis renders differently from one process to the next; labels that never collide render the
    same every time.
    """
    kept: tuple[list[float], list[str]] = ([], [])
    last_end = float("-inf")
    for position, label in zip(positions, labels, strict=True):
        start = (position - lo) / (hi - lo) * (canvas - 1) - len(label) / 2
        if start >= max(0.0, last_end + LABEL_GAP) and start + len(label) <= canvas:
            kept[0].append(position)
            kept[1].append(label)
            last_end = start + len(label)
    return kept


def _runs(values: Sequence[float | None]) -> list[tuple[list[int], list[float]]]:
    """Contiguous stretches of present values as (x positions, values); gaps split the line."""
    runs: list[tuple[list[int], list[float]]] = []
    current: tuple[list[int], list[float]] | None = None
    for i, value in enumerate(values):
        if value is None:
            current = None
            continue
        if current is None:
            current = ([], [])
            runs.append(current)
        current[0].append(i)
        current[1].append(value)
    return runs


class Chart(PlotextPlot):
    """Base: an empty chart says so instead of drawing empty axes; a drawn figure is reused until
    the data or the size changes (Textual re-renders on every repaint)."""

    DEFAULT_CSS = "Chart { height: 1fr; min-height: 6; }"

    def __init__(self, title: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.set_title(title)
        self.empty_text = "no data yet"
        self.version = 0  # bumped by every show()
        self._drawn: tuple[tuple[int, int, int, str], RenderResult] | None = None

    def set_title(self, title: str) -> None:
        """The border title, `printable` and plain (Textual reads a `str` title as markup)."""
        self.border_title = Content(printable(title, width=None))

    def draw(self) -> bool:
        """Build the figure for the current size; False when there is nothing to draw (the empty
        text shows). Each kind of chart overrides it; the base has nothing to draw."""
        return False

    def changed(self) -> None:
        """New data: drop the drawn figure and repaint."""
        self.version += 1
        self.refresh()

    def render(self) -> RenderResult:
        key = (self.size.width, self.size.height, self.version, self.app.theme)
        if self._drawn is not None and self._drawn[0] == key:
            return self._drawn[1]
        self.plt.clear_figure()
        if self.size.width < 12 or self.size.height < 4 or not self.draw():
            result: RenderResult = Text(self.empty_text, style="dim", justify="center")
        else:
            result = super().render()
        self._drawn = (key, result)
        return result


class TimeChart(Chart):
    """Values over windows, one line per series, downsampled to the chart's width."""

    def __init__(self, title: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(title, id=id, classes=classes)
        self.data: TimeSeries | None = None

    def show(self, data: TimeSeries | None, title: str | None = None) -> None:
        """Replace the data (and optionally the title) and redraw."""
        self.data = data
        if title is not None:
            self.set_title(title)
        self.changed()

    def draw(self) -> bool:
        data = self.data
        if data is None or data.empty:
            return False
        plt = self.plt
        width = max(4, self.size.width - Y_AXIS_COLUMNS)
        spans = buckets(len(data.x), width)
        labelled: set[str] = set()
        for series in data.series:
            reduced = downsample(series.values, width, series.reduce)
            for xs, ys in _runs(reduced):
                legend = series.legend if series.legend not in labelled else ""
                labelled.add(series.legend)
                if len(xs) == 1:
                    plt.scatter(xs, ys, color=series.color, label=legend or None, marker=series.marker)
                else:
                    plt.plot(xs, ys, color=series.color, label=legend or None, marker=series.marker)
        for value, color in data.hlines:
            plt.hline(value, color)
        for at, color in data.vlines:
            if data.x[0] <= at:
                window = bisect.bisect_right(data.x, at) - 1
                plt.vline(next(i for i, (a, b) in enumerate(spans) if a <= window < b), color)
        hi = max(len(spans) - 0.5, 0.5)
        labels = [fmt.tick(data.x[start], data.hourly) for start, _ in spans]
        plt.xticks(*thin_ticks([float(i) for i in range(len(spans))], labels, -0.5, hi, width))
        plt.xlim(-0.5, hi)
        if data.ylim:
            plt.ylim(*data.ylim)
        elif data.from_zero:
            values = [v for s in data.series for v in s.values if v is not None] + [v for v, _ in data.hlines]
            plt.ylim(0.0, max(max(values) * 1.08, 1e-9))
        return True


class HistogramChart(Chart):
    """One drift cell's bins: the window's shares as bars, the reference's as a line across them
    (two bars per bin do not fit an 80-column terminal legibly; a bar and a line do)."""

    def __init__(self, title: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(title, id=id, classes=classes)
        self.histogram: Histogram | None = None

    def show(self, histogram: Histogram | None, empty_text: str = "no data yet") -> None:
        """Replace the histogram (None: say `empty_text`) and redraw."""
        self.histogram = histogram
        self.empty_text = empty_text
        self.changed()

    def draw(self) -> bool:
        histogram = self.histogram
        if histogram is None or not histogram.labels:
            return False
        plt = self.plt
        xs = list(range(len(histogram.labels)))
        plt.bar(xs, list(histogram.window), color="red", width=0.6, label="window", reset_ticks=False)
        if len(xs) > 1:
            plt.plot(xs, list(histogram.reference), color="white", label="reference")
        else:
            plt.scatter(xs, list(histogram.reference), color="white", label="reference")
        hi = len(xs) - 0.5
        canvas = max(4, self.size.width - Y_AXIS_COLUMNS)
        labels = [label(category) for category in histogram.labels]
        plt.xticks(*thin_ticks([float(x) for x in xs], labels, -0.5, hi, canvas))
        plt.xlim(-0.5, hi)
        plt.ylim(0.0, max(*histogram.window, *histogram.reference, 1e-9) * 1.1)
        return True


@dataclass(frozen=True)
class Curve:
    """Points of an x–y curve (e.g. a reliability diagram: mean score → observed rate)."""

    label: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    color: str


class XYChart(Chart):
    """Curves on a unit square with the diagonal y = x, as a reliability diagram is read."""

    def __init__(self, title: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(title, id=id, classes=classes)
        self.curves: tuple[Curve, ...] = ()

    def show(self, curves: Sequence[Curve], empty_text: str = "no data yet") -> None:
        """Replace the curves and redraw."""
        self.curves = tuple(c for c in curves if c.x)
        self.empty_text = empty_text
        self.changed()

    def draw(self) -> bool:
        if not self.curves:
            return False
        plt = self.plt
        plt.plot([0.0, 1.0], [0.0, 1.0], color="gray", marker="braille")
        for curve in self.curves:
            plt.plot(list(curve.x), list(curve.y), color=curve.color, label=label(curve.label))
        plt.xlim(0.0, 1.0)
        plt.ylim(0.0, 1.0)
        plt.xticks([0.0, 0.5, 1.0], ["0", "0.5", "1"])
        return True
