"""Plotting helpers shared by every evaluation (matplotlib, imported lazily, Agg only).

Figures are built with the object-oriented API (`matplotlib.figure.Figure`,
no ``pyplot``): no global figure registry, no GUI backend, safe to call from
a worker thread, and a user's interactive ``pyplot`` session is left alone.
PNG output goes through the Agg canvas and is written atomically.

Typical use in an evaluation module::

    from oxidize_ml.evaluation import plots

    def plot(result, out_dir):
        fig, axes = plots.subplot_grid(3, ncols=3)
        for ax, scenario in zip(axes, ...):
            ...
            plots.pantheon_axes(ax, title=scenario)
        return [plots.save_figure(fig, Path(out_dir) / "congestion-pantheon.png")]

`matplotlib_available` lets a caller skip figures when the ``sim`` extra is
not installed (the report then says so instead of failing).
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oxidize_ml._atomic import atomic_write_with

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGURE_DPI = 110
"""resolution of saved PNGs: ~1 MB-free figures that stay sharp in a browser"""
PANEL_SIZE_IN = (4.2, 3.3)
"""default size of one subplot panel, inches"""
REPORT_FILE_MODE = 0o644
"""report artefacts are meant to be read (by a browser, a colleague): not private"""

# Colour-blind-safe palette (Okabe and Ito, 2008), one colour per series.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")

# Fixed styles for the names that appear in several evaluations, so one
# controller has the same colour in every figure of the report.
_KNOWN: dict[str, int] = {
    "reno": 0,
    "cubic": 1,
    "bbr": 2,
    "dqn": 3,
    "engine": 4,
}


class MatplotlibMissing(ImportError):
    """matplotlib is not installed (it comes with the ``sim`` extra)."""


def matplotlib_available() -> bool:
    """True when matplotlib can be imported (without importing it)."""
    return importlib.util.find_spec("matplotlib") is not None


def _require() -> None:
    if not matplotlib_available():
        raise MatplotlibMissing(
            "figures need matplotlib, which is not installed; install the simulator extra: "
            "pip install 'oxidize-ml[sim]'"
        )


def new_figure(width_in: float, height_in: float) -> Figure:
    """A new figure on the Agg canvas (no pyplot, nothing global)."""
    _require()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # No layout engine: constrained layout re-measures every tick label of every panel
    # on each draw (seconds for a 13-panel figure); callers use `tidy` instead.
    fig = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(fig)
    return fig


def subplot_grid(
    n: int,
    *,
    ncols: int = 3,
    panel_size: tuple[float, float] = PANEL_SIZE_IN,
    sharex: bool = False,
    sharey: bool = False,
) -> tuple[Figure, list[Axes]]:
    """A figure with ``n`` panels laid out ``ncols`` wide; unused panels are hidden.

    Returns the figure and the ``n`` axes in reading order.
    """
    if n < 1:
        raise ValueError(f"subplot_grid needs n >= 1 panels, got {n}")
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig = new_figure(panel_size[0] * ncols, panel_size[1] * nrows)
    grid = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    axes = [ax for row in grid for ax in row]
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def series_style(name: str, index: int = 0) -> dict[str, Any]:
    """``color`` and ``marker`` for a named series (stable for well-known names)."""
    i = _KNOWN.get(name.lower(), len(_KNOWN) + index)
    return {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)]}


def pantheon_axes(
    ax: Axes,
    *,
    title: str | None = None,
    delays_ms: Sequence[float] = (),
) -> None:
    """Pantheon's throughput-delay axes: throughput up, delay decreasing to the right.

    The x axis is the 95th-percentile one-way delay (ms), inverted, so
    "better" is up and to the right (Pantheon, USENIX ATC 2018; REFERENCES
    section 2). Pantheon draws delay on a log scale; within one scenario the
    delays rarely span a decade, so a linear axis with padded limits reads
    better here. ``delays_ms`` (the plotted delays) sets those limits, so
    points never sit on the frame. Call it after plotting.
    """
    from matplotlib.ticker import MaxNLocator

    finite = [d for d in delays_ms if math.isfinite(d) and d > 0.0]
    if finite:
        lo, hi = min(finite), max(finite)
        pad = max(0.12 * (hi - lo), 0.08 * hi, 1.0)
        ax.set_xlim(hi + pad, max(0.0, lo - pad))  # inverted: large delay on the left
    else:
        ax.invert_xaxis()
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.set_xlabel("95th percentile one-way delay (ms, better ->)")
    ax.set_ylabel("throughput (Mbit/s)")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)


def legend_below(fig: Figure, handles: Sequence[Any], labels: Sequence[str]) -> None:
    """One legend for the whole figure, centred at the bottom (leave room with `tidy`)."""
    if handles:
        fig.legend(handles, labels, loc="lower center", ncols=min(len(labels), 6), frameon=False)


def tidy(
    fig: Figure,
    *,
    top_in: float = 0.45,
    bottom_in: float = 0.55,
    left_in: float = 0.7,
    right_in: float = 0.2,
    hspace: float = 0.55,
    wspace: float = 0.3,
) -> None:
    """Fixed margins in inches (room for a suptitle and a bottom legend), cheap to draw."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(
        left=left_in / w,
        right=1.0 - right_in / w,
        bottom=bottom_in / h,
        top=1.0 - top_in / h,
        hspace=hspace,
        wspace=wspace,
    )


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = FIGURE_DPI) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (parent created); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png", dpi=dpi)

    return atomic_write_with(target, write, mode=REPORT_FILE_MODE)
