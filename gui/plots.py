"""pyqtgraph views: the valence–arousal plane and the scrolling timeline, plus their history store.

Drawing cost is kept low by doing the expensive part (new curve data, new image) only when
estimates arrive, a few times per second. At display rate the timeline only *moves*: every
scrolling item is translated by ``-now`` (a QGraphicsItem position, no path rebuild), and the VA
point glides towards its newest value.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtGui, QtWidgets

from live_mer.estimate import Estimate

from . import theme
from .widgets import head_label


class History:
    """Growing arrays of the displayed estimates, trimmed to the last ``capacity`` rows.

    Storage is twice the capacity so the newest rows are always one contiguous slice (no copy per
    append; the tail is moved to the front once per ``capacity`` appends).
    """

    def __init__(self, capacity: int = 4096):
        self.capacity = capacity
        self.columns: dict[str, list[str]] = {}  # head name -> value names, fixed by the first estimate
        self._t = np.zeros(2 * capacity)
        self._va = np.zeros((2 * capacity, 2))
        self._heads: dict[str, np.ndarray] = {}
        self._start = self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def clear(self) -> None:
        self._start = self._end = 0
        self.columns, self._heads = {}, {}

    def reserve(self, capacity: int) -> None:
        """Keep at least ``capacity`` rows from now on (the rows held so far stay)."""
        if capacity <= self.capacity:
            return
        n, held = len(self), slice(self._start, self._end)

        def grown(arr: np.ndarray) -> np.ndarray:
            new = np.zeros((2 * capacity, *arr.shape[1:]))
            new[:n] = arr[held]
            return new

        self._t, self._va = grown(self._t), grown(self._va)
        self._heads = {name: grown(arr) for name, arr in self._heads.items()}
        self.capacity, self._start, self._end = capacity, 0, n

    def append(self, t: float, est: Estimate) -> None:
        if not self.columns and est.heads:
            self.columns = {name: list(values) for name, values in est.heads.items()}
            self._heads = {name: np.zeros((2 * self.capacity, len(v))) for name, v in self.columns.items()}
        if self._end == 2 * self.capacity:
            keep = slice(self._end - self.capacity + 1, self._end)
            n = keep.stop - keep.start
            for arr in (self._t, self._va, *self._heads.values()):
                arr[:n] = arr[keep]
            self._start, self._end = 0, n
        elif self._end - self._start == self.capacity:
            self._start += 1
        i = self._end
        self._t[i] = t
        self._va[i] = est.valence, est.arousal
        for name, arr in self._heads.items():
            values = est.heads.get(name, {})
            arr[i] = [values.get(k, np.nan) for k in self.columns[name]]
        self._end += 1

    def tail(self, n: int) -> np.ndarray:
        """The newest ``n`` (valence, arousal) rows, oldest first (a view)."""
        return self._va[max(self._start, self._end - n):self._end]

    def since(self, t_min: float) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Times, (valence, arousal) rows and head rows of every entry with time >= ``t_min`` (views)."""
        t = self._t[self._start:self._end]
        i = self._start + int(np.searchsorted(t, t_min))
        sl = slice(i, self._end)
        return self._t[sl], self._va[sl], {name: arr[sl] for name, arr in self._heads.items()}


def _style_plot(plot: pg.PlotItem, left_width: int = 86) -> None:
    plot.hideButtons()
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(theme.GRID))
        axis.setTextPen(pg.mkPen(theme.TEXT_DIM))
        # Edge labels ("now") may reach 24 px into the margin instead of being dropped.
        axis.setStyle(tickFont=theme.font(13), tickTextOffset=6, hideOverlappingLabels=24)
    plot.getAxis("left").setWidth(left_width)  # equal widths keep the three stacked plots aligned


SMALLEST_TEXT = 0.6  # plot titles shrink to fit a small window, down to this share of their size
MOOD_LABEL_MIN_PX = 9  # the heat map's mood names: smaller than this, fewer rows are named instead


def fit_scale(width: float, room: float) -> float:
    """How much to shrink a text ``width`` pixels wide at its normal size to fit in ``room`` pixels
    (1 when it fits, never below :data:`SMALLEST_TEXT`)."""
    return max(SMALLEST_TEXT, min(1.0, room / width)) if width > 0 else 1.0


class Timeline(pg.GraphicsLayoutWidget):
    """Scrolling history: valence and arousal, the quadrant probabilities (stacked) and a heat map
    of the other categorical head (GEMS), sharing one time axis that ends at *now*.

    Parameters
    ----------
    history_s : float
        Visible span in seconds (changeable with :meth:`set_history`).
    """

    def __init__(self, history_s: float = 60.0, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setBackground(theme.PANEL)
        self.ci.layout.setSpacing(4)
        self.ci.setContentsMargins(6, 10, 26, 6)
        self.history_s = float(history_s)
        self.now = 0.0
        self._scrolling: list[QtWidgets.QGraphicsItem] = []
        self._grid: list[tuple[pg.PlotItem, pg.InfiniteLine]] = []

        # Valence / arousal.
        self.va_plot = self.addPlot(row=0, col=0)
        _style_plot(self.va_plot)
        amp = "&nbsp;&nbsp;&amp;&nbsp;&nbsp;"
        self._titles = [(self.va_plot, lambda k: (
            f"<span style='color:{theme.VALENCE};font-size:{15 * k:.1f}pt;font-weight:bold'>valence</span>"
            f"<span style='color:{theme.TEXT_DIM};font-size:{15 * k:.1f}pt'>{amp}</span>"
            f"<span style='color:{theme.AROUSAL};font-size:{15 * k:.1f}pt;font-weight:bold'>arousal</span>"))]
        self.va_plot.setYRange(-1.05, 1.05, padding=0)
        self.va_plot.getAxis("left").setTicks([[(-1, "-1"), (0, "0"), (1, "+1")]])
        self.va_plot.addItem(pg.InfiniteLine(pos=0, angle=0, pen=pg.mkPen(theme.TEXT_FAINT, width=1)))
        self.valence_curve = self._curve(self.va_plot, theme.VALENCE)
        self.arousal_curve = self._curve(self.va_plot, theme.AROUSAL)

        # Quadrant probabilities, stacked Q1 (bottom) .. Q4 (top), in the plane's quadrant colours.
        self.quad_plot = self.addPlot(row=1, col=0)
        _style_plot(self.quad_plot)
        self._titles.append((self.quad_plot, lambda k: "  ".join(
            f"<span style='color:{c};font-size:{13 * k:.1f}pt;font-weight:bold'>{q}</span>"
            f"<span style='color:{theme.TEXT_DIM};font-size:{13 * k:.1f}pt'> {short}</span>"
            for q, short, _, c, _, _ in theme.QUADRANTS)))
        self.quad_plot.setYRange(0, 1, padding=0)
        self.quad_plot.getAxis("left").setTicks([[(0, "0"), (0.5, "50%"), (1, "100%")]])
        self._stack = [self._curve(self.quad_plot, None) for _ in range(len(theme.QUADRANTS) + 1)]
        for (_, _, _, color, _, _), lo, hi in zip(theme.QUADRANTS, self._stack[:-1], self._stack[1:], strict=True):
            fill = pg.FillBetweenItem(lo, hi, brush=pg.mkBrush(QtGui.QColor(color).darker(115)))
            self.quad_plot.addItem(fill)
            self._scrolling.append(fill)

        # Heat map of the remaining head (GEMS moods), one row per mood.
        self.mood_plot = self.addPlot(row=2, col=0)
        _style_plot(self.mood_plot)
        self._titles.append((self.mood_plot, lambda k: (
            f"<span style='color:{theme.TEXT_DIM};font-size:{13 * k:.1f}pt'>moods (GEMS), brighter = stronger</span>")))
        self._title_scale = 1.0
        for plot, title in self._titles:
            plot.setTitle(title(1.0))
        self._title_width = max(plot.titleLabel.item.boundingRect().width() for plot, _ in self._titles)
        self.heat = pg.ImageItem(axisOrder="col-major")
        self.heat.setColorMap(pg.colormap.get("inferno"))
        self.mood_plot.addItem(self.heat)
        self._scrolling.append(self.heat)
        self.mood_head = ""

        for plot in (self.va_plot, self.quad_plot):
            plot.setXLink(self.mood_plot)
            plot.getAxis("bottom").setStyle(showValues=False)
        self.mood_plot.getAxis("bottom").setLabel("")
        self.mood_plot.getAxis("left").setTicks([[]])  # the mood names arrive with the first estimate
        self.mood_plot.setYRange(0, 1, padding=0)
        self.mood_plot.invertY(True)  # the first mood on top, as in the mood bars
        self.mood_names: list[str] = []
        self.mood_label_fit = (0, 0)  # (font px, every n-th row named) of the mood names
        self.mood_plot.getViewBox().sigResized.connect(self._fit_mood_labels)
        self.ci.layout.setRowStretchFactor(0, 5)
        self.ci.layout.setRowStretchFactor(1, 3)
        self.ci.layout.setRowStretchFactor(2, 5)
        self.set_history(history_s)

    def resizeEvent(self, event) -> None:
        # A title wider than its plot would widen the plots past the widget's edge (cutting off "now"):
        # on a narrow window the titles get a smaller font instead, before the plots are laid out.
        if "_titles" in self.__dict__:  # pyqtgraph resizes during its own __init__
            self._fit_titles()
        super().resizeEvent(event)

    def _fit_titles(self) -> None:
        left, _, right, _ = self.ci.layout.getContentsMargins()
        room = self.width() - left - right - self.va_plot.getAxis("left").width() - 8
        for _ in range(3):  # text width is not quite proportional to the font size: measure again
            scale = fit_scale(self._title_width, room)
            if abs(scale - self._title_scale) <= 0.02:
                return
            self._title_scale = scale
            for plot, title in self._titles:
                plot.setTitle(title(scale))
            self._title_width = max(plot.titleLabel.item.boundingRect().width() for plot, _ in self._titles) / scale
            for plot, _ in self._titles:  # the plots' new minimum widths now, not on the next layout pass
                plot.layout.activate()
            self.ci.layout.activate()

    def _fit_mood_labels(self, *_) -> None:
        """Name the heat map's rows as large as a row allows (12 px at most): on a plot too short for names
        of a readable size in every row, every other row (or every third, ...) is named."""
        n = len(self.mood_names)
        if not n:
            return
        row = self.mood_plot.getViewBox().height() / n
        fit = next(((px, step) for step in range(1, n + 1) for px in range(12, MOOD_LABEL_MIN_PX - 1, -1)
                    if QtGui.QFontMetrics(theme.font(px)).height() <= row * step), (MOOD_LABEL_MIN_PX, n))
        if fit != self.mood_label_fit:
            self.mood_label_fit = px, step = fit
            axis = self.mood_plot.getAxis("left")
            axis.setStyle(tickFont=theme.font(px))
            axis.setTicks([[(i + 0.5, head_label(n)) for i, n in enumerate(self.mood_names) if i % step == 0]])

    def _curve(self, plot: pg.PlotItem, color: str | None) -> pg.PlotCurveItem:
        pen = pg.mkPen(color, width=3) if color else pg.mkPen(None)
        curve = pg.PlotCurveItem(pen=pen, skipFiniteCheck=True)
        plot.addItem(curve)
        self._scrolling.append(curve)
        return curve

    def set_history(self, seconds: float) -> None:
        """Show the last ``seconds`` (x axis from ``-seconds`` to ``now``, labelled in seconds ago)."""
        self.history_s = float(seconds)
        self.mood_plot.setXRange(-self.history_s, 0, padding=0)
        step = 10 if seconds <= 60 else 20 if seconds <= 120 else 60
        ticks = [(-s, f"-{s} s") for s in range(step, int(seconds) + 1, step)]
        self.mood_plot.getAxis("bottom").setTicks([[(0, "now"), *ticks]])
        for plot in (self.va_plot, self.quad_plot):
            plot.getAxis("bottom").setTicks([[(0, ""), *[(x, "") for x, _ in ticks]]])
        # Grid lines at the labelled times, drawn as items: an axis grid would make pyqtgraph drop
        # the "now" label at the right edge.
        for plot, line in self._grid:
            plot.removeItem(line)
        self._grid = []
        pen = pg.mkPen(theme.GRID, width=1)
        for plot in (self.va_plot, self.quad_plot, self.mood_plot):
            for x, _ in ticks:
                line = pg.InfiniteLine(pos=x, angle=90, pen=pen)
                line.setZValue(5 if plot is self.mood_plot else -5)
                plot.addItem(line)
                self._grid.append((plot, line))

    def set_data(self, history: History, now: float) -> None:
        """Redraw from ``history`` (called when new estimates arrived)."""
        t, va, heads = history.since(now - self.history_s - 2.0)
        self.valence_curve.setData(t, va[:, 0])
        self.arousal_curve.setData(t, va[:, 1])
        quad = heads.get("quadrant")
        if quad is not None and len(t):
            cum = np.zeros(len(t))
            self._stack[0].setData(t, cum.copy())
            for k, curve in enumerate(self._stack[1:]):
                cum = cum + np.clip(quad[:, k], 0.0, 1.0)
                curve.setData(t, np.minimum(cum, 1.0))
        other = [name for name in history.columns if name != "quadrant"]
        if other and len(t) > 1:
            name = "gems" if "gems" in other else other[0]
            values = heads[name]
            if name != self.mood_head:
                self.mood_head = name
                self.mood_names = history.columns[name]
                self.mood_plot.setYRange(0, len(self.mood_names), padding=0)
                self.mood_label_fit = (0, 0)
                self._fit_mood_labels()
            # An absolute scale, as the mood bars': silence, every mood weak, is dark, not as bright as music.
            self.heat.setImage(values, levels=(0.0, 1.0), autoLevels=False)
            dt = float(np.median(np.diff(t))) if len(t) > 2 else 0.25
            self.heat.setRect(QtCore.QRectF(t[0] - dt, 0, t[-1] - t[0] + dt, values.shape[1]))
        self.scroll(now)

    def scroll(self, now: float) -> None:
        """Move every time-based item so that ``now`` sits at the right edge (cheap; per frame)."""
        if now != self.now:
            self.now = now
            for item in self._scrolling:
                item.setPos(-now, 0)

    def points(self) -> int:
        """How many estimates the valence curve currently shows."""
        x, _ = self.valence_curve.getData()
        return 0 if x is None else len(x)


class Marker(QtWidgets.QGraphicsItem):
    """The current-estimate dot: a filled disc with a white ring and a soft halo, fixed in pixels.

    Moving it is a plain ``setPos`` (ItemIgnoresTransformations keeps its size in pixels), which is
    far cheaper per frame than re-setting a ScatterPlotItem's data.
    """

    def __init__(self, radius: float = 14.0, halo: float = 30.0):
        super().__init__()
        self.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        # Render once into a pixmap and blit it as the dot moves (the gradient is the costly part).
        self.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.radius, self.halo = radius, halo
        self.color = QtGui.QColor(theme.TEXT)
        self.setZValue(10)

    def set_color(self, color: QtGui.QColor) -> None:
        if color != self.color:
            self.color = QtGui.QColor(color)
            self.update()

    def boundingRect(self) -> QtCore.QRectF:
        h = self.halo + 2
        return QtCore.QRectF(-h, -h, 2 * h, 2 * h)

    def paint(self, painter: QtGui.QPainter, option, widget=None) -> None:
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        glow = QtGui.QRadialGradient(0, 0, self.halo)
        inner, outer = QtGui.QColor(self.color), QtGui.QColor(self.color)
        inner.setAlpha(110)
        outer.setAlpha(0)
        glow.setColorAt(0.3, inner)
        glow.setColorAt(1.0, outer)
        painter.setPen(QtCore.Qt.PenStyle.NoPen)
        painter.setBrush(QtGui.QBrush(glow))
        painter.drawEllipse(QtCore.QPointF(0, 0), self.halo, self.halo)
        painter.setPen(QtGui.QPen(QtGui.QColor("#ffffff"), 3))
        painter.setBrush(self.color)
        painter.drawEllipse(QtCore.QPointF(0, 0), self.radius, self.radius)


class VAPlane(pg.PlotWidget):
    """Russell's circumplex: valence (x) against arousal (y) in [-1, 1], with the four quadrants
    named and tinted, the current estimate as a large dot and a fading trail of recent ones.

    The dot glides towards each new estimate (:meth:`advance`, per frame) instead of jumping a
    few times per second, which reads far better across a room.
    """

    TRAIL = 48  # points in the trail ...
    TRAIL_S = 24.0  # ... spread over about this many seconds (at the model's 0.51-s hop: every estimate)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent, background=theme.PANEL)
        plot = self.getPlotItem()
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        plot.setAspectLocked(True)
        plot.setRange(xRange=(-1.08, 1.08), yRange=(-1.08, 1.08), padding=0)
        self._axis_titles = {"bottom": "valence   negative  \u2190  \u2192  positive",
                             "left": "arousal   calm  \u2190  \u2192  energetic"}
        for name in self._axis_titles:
            axis = plot.getAxis(name)
            axis.setPen(pg.mkPen(theme.GRID))
            axis.setTextPen(pg.mkPen(theme.TEXT_DIM))
            axis.setStyle(tickFont=theme.font(12))
            axis.setTicks([[(-1, "-1"), (-0.5, ""), (0, "0"), (0.5, ""), (1, "+1")]])
        self._axis_scale = 0.0
        self._set_axis_titles(1.0)
        self._axis_title_width = plot.getAxis("bottom").label.boundingRect().width()
        plot.getAxis("left").setWidth(52)

        self.quadrant_labels: dict[str, pg.TextItem] = {}
        for code, _, _, color, sv, sa in theme.QUADRANTS:
            rect = QtWidgets.QGraphicsRectItem(0 if sv > 0 else -1, 0 if sa > 0 else -1, 1, 1)
            fill = QtGui.QColor(color)
            fill.setAlpha(22)
            rect.setBrush(fill)
            rect.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
            plot.addItem(rect)
            # Names sit in the outer corners, where the circle leaves room; the anchor keeps the
            # text inside the plot (Q1's name hangs left and down from the top-right corner, ...).
            label = pg.TextItem(anchor=(0 if sv < 0 else 1, 0 if sa > 0 else 1))
            label.setPos(0.98 * sv, 0.98 * sa)
            plot.addItem(label)
            self.quadrant_labels[code] = label
        circle = QtWidgets.QGraphicsEllipseItem(-1, -1, 2, 2)
        circle.setPen(pg.mkPen(theme.TEXT_FAINT, width=1.5, style=QtCore.Qt.PenStyle.DashLine))
        plot.addItem(circle)
        for angle in (0, 90):
            plot.addItem(pg.InfiniteLine(pos=0, angle=angle, pen=pg.mkPen(theme.TEXT_FAINT, width=1.5)))

        self.trail_line = pg.PlotCurveItem(pen=pg.mkPen(QtGui.QColor(255, 255, 255, 60), width=2))
        self.trail = pg.ScatterPlotItem(pxMode=True, pen=None)
        self.dot = Marker()
        for item in (self.trail_line, self.trail, self.dot):
            plot.addItem(item)
        n = self.TRAIL
        self._trail_sizes = np.linspace(4, 14, n)
        self._trail_alphas = np.linspace(25, 200, n).astype(int)
        self.target = (0.0, 0.0)
        self.position = (0.0, 0.0)
        self.dot.hide()  # until the first estimate: a dot at (0, 0) would read as a neutral estimate
        self.quadrant = ""
        self.stale = False
        self._probs: dict[str, float] = {}
        self._label_scale = 1.0
        self._two_lines = True
        self._shown_html: dict[str, str] = {}
        self.set_quadrant("", {})
        plot.getViewBox().sigResized.connect(self._fit_labels)

    @staticmethod
    def _label_html(quadrant: tuple, on: bool, prob: str, scale: float, two_lines: bool) -> str:
        """A quadrant's name (a ``theme.QUADRANTS`` row) at ``scale``, brighter when ``on``; its other name and
        probability on a second line if ``two_lines``."""
        code, short, long_name, color, sv, _ = quadrant
        html = (f"<div style='color:{color if on else theme.TEXT_DIM};text-align:{'left' if sv < 0 else 'right'}'>"
                f"<span style='font-size:{(17 if on else 14) * scale:.0f}pt;font-weight:bold'>{code} {short}</span>")
        if two_lines:
            html += f"<br><span style='font-size:{max(8, 11 * scale):.0f}pt'>{long_name.split(' / ')[-1]}{prob}</span>"
        return html + "</div>"

    def set_quadrant(self, quadrant: str, probs: dict[str, float]) -> None:
        """Brighten the current quadrant's name (not while out of date); show each quadrant's probability."""
        self.quadrant, self._probs = quadrant, dict(probs)
        for row in theme.QUADRANTS:
            code = row[0]
            html = self._label_html(row, code == quadrant and not self.stale,
                                    f" {probs[code] * 100:.0f}%" if code in probs else "", self._label_scale,
                                    self._two_lines)
            if self._shown_html.get(code) != html:  # re-laying-out rich text is the costly part
                self._shown_html[code] = html
                self.quadrant_labels[code].setHtml(html)

    def set_stale(self, stale: bool) -> None:
        """Fade the dot and its trail, and unlight the current quadrant, while they are out of date."""
        if stale != self.stale:
            self.stale = stale
            for item in (self.dot, self.trail, self.trail_line):
                item.setOpacity(theme.STALE_OPACITY if stale else 1.0)
            self.set_quadrant(self.quadrant, self._probs)

    def _fit_labels(self, *_) -> None:
        """Quadrant names scale with the plane, so they stay readable from afar on a big screen; where the
        names of two neighbouring quadrants would still run into each other, their second lines go."""
        scale = min(1.6, max(0.6, min(self.width(), self.height()) / 440.0))
        vb = self.getPlotItem().getViewBox()
        room = 1.96 / 2.16 * min(vb.width(), vb.height())  # px from the left names' anchors to the right ones'
        scratch = QtWidgets.QGraphicsTextItem()
        widths = {}
        for row in theme.QUADRANTS:  # at their widest: lit, and 100%
            scratch.setHtml(self._label_html(row, True, " 100%", scale, True))
            widths[row[0]] = scratch.boundingRect().width()
        two_lines = all(widths[left] + widths[right] <= room for left, right in (("Q2", "Q1"), ("Q3", "Q4")))
        if abs(scale - self._label_scale) > 0.02 or two_lines != self._two_lines:
            self._label_scale, self._two_lines = scale, two_lines
            self.set_quadrant(self.quadrant, self._probs)

    def resizeEvent(self, event) -> None:
        # The axis titles shrink rather than run past the plane's edges on a small window. The square
        # plane is as wide as the shorter side allows.
        super().resizeEvent(event)
        if "_axis_title_width" not in self.__dict__:  # pyqtgraph resizes during its own __init__
            return
        room = min(self.width() - 52, self.height() - 40) - 8
        scale = fit_scale(self._axis_title_width, room)
        if abs(scale - self._axis_scale) > 0.02:
            self._set_axis_titles(scale)

    def _set_axis_titles(self, scale: float) -> None:
        self._axis_scale = scale
        for name, text in self._axis_titles.items():
            self.getPlotItem().getAxis(name).setLabel(
                f"<span style='font-size:{13 * scale:.1f}pt;color:{theme.TEXT_DIM}'>{text}</span>")

    def set_estimates(self, recent: np.ndarray, quadrant: str, probs: dict[str, float]) -> None:
        """New data: ``recent`` is an (n, 2) array of the latest (valence, arousal), oldest first."""
        recent = recent[-self.TRAIL:]
        if len(recent):
            self.target = (float(recent[-1, 0]), float(recent[-1, 1]))
            if not self.dot.isVisible():  # the first estimate: the dot appears there, not gliding from (0, 0)
                self.position = self.target
                self._show_point()
                self.dot.show()
        n = len(recent)
        color = QtGui.QColor(theme.QUADRANT_COLOR.get(quadrant, theme.TEXT))
        brushes = []
        for a in self._trail_alphas[-n:] if n else []:
            c = QtGui.QColor(color)
            c.setAlpha(int(a))
            brushes.append(pg.mkBrush(c))
        self.trail.setData(recent[:, 0], recent[:, 1], size=self._trail_sizes[-n:], brush=brushes)
        self.trail_line.setData(recent[:, 0], recent[:, 1])
        if quadrant != self.quadrant or probs:
            self.set_quadrant(quadrant, probs)
        self.dot.set_color(color)

    def advance(self, dt: float, time_constant: float = 0.12) -> None:
        """Glide the dot towards the newest estimate (exponential approach); no-op once there."""
        (x, y), (tx, ty) = self.position, self.target
        if abs(tx - x) < 1e-4 and abs(ty - y) < 1e-4:
            return
        k = 1.0 - math.exp(-dt / time_constant) if dt > 0 else 1.0
        self.position = (x + k * (tx - x), y + k * (ty - y))
        self._show_point()

    def _show_point(self) -> None:
        self.dot.setPos(*self.position)

    def current_point(self) -> tuple[float, float]:
        """Where the dot is drawn now (data coordinates)."""
        pos = self.dot.pos()
        return pos.x(), pos.y()
