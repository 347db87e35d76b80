"""Painted readouts of the monitor: chord/key panel, level meter, mood bars and the message banner.

These are plain QWidgets (QPainter or QLabel), cheaper than plot items for things that are read
rather than explored. Each has an ``update_*`` method taking plain values, so tests can drive them
without an engine.
"""

from __future__ import annotations

import math
from typing import ClassVar

from PyQt6 import QtCore, QtGui, QtWidgets

from live_mer.harmony import PITCH_CLASSES
from live_mer.outputs import LEVEL_FLOOR_DB

from . import theme

_ACCIDENTALS = str.maketrans({"#": "\u266f", "b": "\u266d"})
# The monitor spells a pitch class as a musician does in the key being played: the key's seven degrees take
# the seven letters with the key signature's accidentals (D♭ in A♭ major, G♯ in E major, C♭ in E♭ minor), the
# other five its kind of accidental; the keys themselves as musicians and DJ software name them (D♭ major,
# not C♯ major; G♯ minor, not A♭ minor). OSC, analyze and the terminal keep one spelling per pitch class
# (harmony.PITCH_CLASSES), so that receivers can match labels.
_SHARPS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLATS = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
_TONICS = {"major": ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"),
           "minor": ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")}
_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
_LETTERS, _NATURALS = "CDEFGAB", (0, 2, 4, 5, 7, 9, 11)
_FLAT_KEYS_WITHOUT_A_FLAT_TONIC = {("F", "major"), ("D", "minor"), ("G", "minor"), ("C", "minor"), ("F", "minor")}


def _spelling(key: str) -> tuple[str, ...]:
    """The names of the 12 pitch classes in ``key`` (``"Ab major"``; ``""``: no key, the labels' own)."""
    tonic, _, mode = key.partition(" ")
    if tonic not in PITCH_CLASSES or mode not in _SCALES:
        return PITCH_CLASSES
    pc = PITCH_CLASSES.index(tonic)
    name = _TONICS[mode][pc]
    if (name, mode) in (("C", "major"), ("A", "minor")):  # no key signature: the other five as the labels have them
        names = list(PITCH_CLASSES)
    elif "b" in name or (name, mode) in _FLAT_KEYS_WITHOUT_A_FLAT_TONIC:
        names = list(_FLATS)
    else:
        names = list(_SHARPS)
    first = _LETTERS.index(name[0])
    for degree, step in enumerate(_SCALES[mode]):
        letter = _LETTERS[(first + degree) % 7]
        shift = ((pc + step) - _NATURALS[_LETTERS.index(letter)] + 6) % 12 - 6  # -2..+2 semitones off the letter
        names[(pc + step) % 12] = letter + ("#" * shift if shift > 0 else "b" * -shift)
    return tuple(names)


def _written(name: str) -> str:
    return name[:1] + name[1:].translate(_ACCIDENTALS)


def chord_display(label: str, key: str = "") -> str:
    """A mir_eval chord label as a musician writes it in ``key``: ``"A:min"`` -> ``"Am"``, ``"Eb:maj"`` ->
    ``"E♭"``, ``"C#:maj"`` in A♭ major -> ``"D♭"``, ``"N"`` (no chord) -> ``"N.C."`` (lead-sheet notation)."""
    if not label or label == "N":
        return "N.C."
    root, _, quality = label.partition(":")
    if root in PITCH_CLASSES:
        root = _spelling(key)[PITCH_CLASSES.index(root)]
    suffix = {"maj": "", "min": "m", "7": "7", "maj7": "maj7", "min7": "m7", "dim": "dim", "aug": "+",
              "sus2": "sus2", "sus4": "sus4"}
    return _written(root) + suffix.get(quality, quality)


def key_display(key: str) -> str:
    """``"Eb major"`` -> ``"E♭ major"``, ``"C# major"`` -> ``"D♭ major"``; ``""`` (no key yet) -> ``"–"``."""
    if not key:
        return "\u2014"
    tonic, _, mode = key.partition(" ")
    if tonic in PITCH_CLASSES:
        tonic = _spelling(key)[PITCH_CLASSES.index(tonic)]
    return f"{_written(tonic)} {mode}".strip()


def _fixed_label(text: str = "", align=QtCore.Qt.AlignmentFlag.AlignLeft) -> QtWidgets.QLabel:
    """A label whose size does not follow its text, so a new chord never re-lays-out the window."""
    label = QtWidgets.QLabel(text)
    label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Ignored)
    label.setAlignment(align | QtCore.Qt.AlignmentFlag.AlignVCenter)
    return label


def _caption(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setObjectName("caption")
    return label


class Fading:
    """A painted readout that fades (its ``paintEvent`` paints at :data:`theme.STALE_OPACITY`) while what it
    shows is out of date: the analysis stopped or the input stalled."""

    stale = False

    def set_stale(self, stale: bool) -> None:
        if stale != self.stale:
            self.stale = stale
            self.update()

    def _painter(self) -> QtGui.QPainter:
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        p.setOpacity(theme.STALE_OPACITY if self.stale else 1.0)
        return p


class ConfidenceBar(Fading, QtWidgets.QWidget):
    """A thin horizontal bar (0..1) with the percentage beside it."""

    def __init__(self, color: str = theme.TEXT, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.value = 0.0
        self.color = QtGui.QColor(color)
        self.setMinimumHeight(18)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)

    def set_value(self, value: float) -> None:
        value = min(max(float(value), 0.0), 1.0)
        if abs(value - self.value) >= 0.005:
            self.value = value
            self.update()

    def paintEvent(self, event) -> None:
        p = self._painter()
        text_w = 52
        bar = QtCore.QRectF(0, self.height() / 2 - 4, max(10, self.width() - text_w - 8), 8)
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        p.setBrush(QtGui.QColor(theme.GRID))
        p.drawRoundedRect(bar, 4, 4)
        p.setBrush(self.color)
        p.drawRoundedRect(QtCore.QRectF(bar.x(), bar.y(), bar.width() * self.value, bar.height()), 4, 4)
        p.setPen(QtGui.QColor(theme.TEXT_DIM))
        p.setFont(theme.font(14, mono=True))
        p.drawText(QtCore.QRectF(self.width() - text_w, 0, text_w, self.height()),
                   QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter,
                   f"{self.value * 100:3.0f}%")


class ChordKeyPanel(QtWidgets.QFrame):
    """The current chord and key, as large as the panel allows.

    The chord is shown as a musician writes it (``Am``, ``F♯``), the key with its Camelot code on a
    badge in the wheel's colour and its Open Key code; both dim when their confidence is low, so a
    guess never looks like a certainty from across the room, and everything dims while it is out of
    date (:meth:`set_stale`).
    """

    LOW_CONFIDENCE = 0.35

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("panel")
        self.chord = "N"
        self.key = ""
        self.camelot = ""
        self.chord_confidence = self.key_confidence = 0.0
        self.stale = False
        self._badge_px = 36
        self.chord_ext = ""
        self.chord_label = _fixed_label(chord_display("N"), QtCore.Qt.AlignmentFlag.AlignHCenter)
        self.chord_detail = _fixed_label("", QtCore.Qt.AlignmentFlag.AlignHCenter)
        self.chord_detail.setObjectName("status")
        self.chord_conf = ConfidenceBar(theme.TEXT)
        self.key_label = _fixed_label(key_display(""), QtCore.Qt.AlignmentFlag.AlignHCenter)
        self.camelot_label = _fixed_label("", QtCore.Qt.AlignmentFlag.AlignHCenter)
        self.key_detail = _fixed_label("", QtCore.Qt.AlignmentFlag.AlignHCenter)
        self.key_conf = ConfidenceBar(theme.TEXT)
        self.key_detail.setObjectName("status")

        self.grid = grid = QtWidgets.QGridLayout(self)
        grid.setContentsMargins(16, 10, 16, 12)
        grid.setHorizontalSpacing(28)
        grid.setVerticalSpacing(2)
        grid.addWidget(_caption("CHORD"), 0, 0)
        grid.addWidget(_caption("KEY"), 0, 1, 1, 2)
        grid.addWidget(self.chord_label, 1, 0, 2, 1)
        grid.addWidget(self.key_label, 1, 1, 1, 2)
        grid.addWidget(self.camelot_label, 2, 1)
        grid.addWidget(self.key_detail, 2, 2)
        grid.addWidget(self.chord_detail, 3, 0)
        grid.addWidget(self.chord_conf, 4, 0)
        grid.addWidget(self.key_conf, 4, 1, 1, 2)
        grid.setRowStretch(1, 5)
        grid.setRowStretch(2, 4)
        grid.setColumnStretch(0, 5)
        grid.setColumnStretch(1, 3)
        grid.setColumnStretch(2, 3)
        self._restyle()
        self._dim_guesses()

    def update_estimate(self, chord: str, chord_confidence: float, key: str, camelot: str, open_key: str,
                        key_confidence: float, chord_ext: str = "N", chord_ext_confidence: float = 0.0) -> None:
        """Show a new chord/key (labels change only when the text does).

        The large chord is the major/minor one (steadier, readable from afar); the extended chord
        (``G7``, ``Bdim``, ``Dsus4``) is shown small beneath it when it says more.
        """
        if (chord, key) != (self.chord, self.key):
            self.chord = chord
            self.chord_label.setText(chord_display(chord, key))
        ext = chord_ext if chord_ext != "N" and chord_display(chord_ext) != chord_display(chord) else ""
        text = f"extended: <b>{chord_display(ext, key)}</b> {chord_ext_confidence * 100:.0f}%" if ext else ""
        if text != self.chord_detail.text():
            self.chord_ext = ext
            self.chord_detail.setText(text)
        if (key, camelot) != (self.key, self.camelot):
            self.key, self.camelot = key, camelot
            self.key_label.setText(key_display(key))
            self.camelot_label.setText(camelot)
            self.key_detail.setText(f"Open Key<br><b>{open_key}</b>" if open_key else "")
            self._restyle()
        self.chord_confidence, self.key_confidence = chord_confidence, key_confidence
        self.chord_conf.set_value(chord_confidence)
        self.key_conf.set_value(key_confidence)
        self._dim_guesses()

    def set_stale(self, stale: bool) -> None:
        """Dim the chord, the key and its badge while they are out of date (stopped, stalled)."""
        if stale != self.stale:
            self.stale = stale
            self.chord_conf.set_stale(stale)
            self.key_conf.set_stale(stale)
            self._restyle()
            self._dim_guesses()

    def _dim_guesses(self) -> None:
        self._dim(self.chord_label, self.stale or self.chord_confidence < self.LOW_CONFIDENCE or self.chord == "N")
        self._dim(self.key_label, self.stale or self.key_confidence < self.LOW_CONFIDENCE or not self.key)

    @staticmethod
    def _dim(label: QtWidgets.QLabel, dim: bool) -> None:
        # A style sheet, not the palette: the application style sheet's colour would win over a palette.
        if label.property("dim") != dim:
            label.setProperty("dim", dim)
            label.setStyleSheet(f"color: {theme.TEXT_FAINT if dim else theme.TEXT};")

    def _restyle(self) -> None:
        # A style sheet sets the badge's font too (a widget style sheet overrides setFont).
        bg = theme.camelot_color(self.camelot) if self.camelot else theme.PANEL_EDGE
        fg = "#0a0c10" if self.camelot else theme.TEXT_DIM
        if self.stale:  # the wheel's colour, faded: still there, but no longer shouting
            bg, fg = QtGui.QColor(bg).darker(300).name(), theme.TEXT_DIM
        self.camelot_label.setStyleSheet(f"background: {bg}; color: {fg}; border-radius: 10px; padding: 0 10px; "
                                         f"font-family: '{theme.FONT_FAMILY}'; font-weight: bold; "
                                         f"font-size: {self._badge_px}px;")

    def resizeEvent(self, event) -> None:
        # Scale the readouts with the panel: the same layout works on a laptop and a projector.
        h, w = self.height(), self.width()
        self.chord_label.setFont(theme.font(min(h * 0.52, w * 0.17), bold=True))
        self.key_label.setFont(theme.font(min(h * 0.2, w * 0.055), bold=True))
        self._badge_px = int(min(h * 0.19, w * 0.05))
        self._restyle()
        self.key_detail.setFont(theme.font(max(13, h * 0.08)))
        self.chord_detail.setFont(theme.font(max(13, h * 0.07)))
        # Its own row's height (a label that ignores its size hint would get none: drawn over the bar).
        self.grid.setRowMinimumHeight(3, self.chord_detail.fontMetrics().height() + 2)
        super().resizeEvent(event)


class LevelMeter(QtWidgets.QWidget):
    """Vertical input meter: RMS bar, peak line with hold, and a latching CLIP indicator.

    Estimates arrive a few times a second; :meth:`advance` runs at display rate and lets the bar
    fall with meter ballistics (``fall_db_per_s``) so it moves smoothly between estimates.
    """

    FLOOR_DB = LEVEL_FLOOR_DB  # the floor of OSC's unipolar level and of analyze's plot too
    CLIP_HOLD_S = 2.0
    PEAK_HOLD_S = 1.5

    def __init__(self, parent: QtWidgets.QWidget | None = None, fall_db_per_s: float = 24.0):
        super().__init__(parent)
        self.fall = fall_db_per_s
        self.rms_db = self.FLOOR_DB  # what is drawn
        self.peak_db = self.FLOOR_DB
        self.hold_db = self.FLOOR_DB
        self.clip_age = math.inf  # seconds since the last clipped estimate
        self.clipped_total = 0
        self.target_db = self.FLOOR_DB
        self._hold_age = 0.0
        self.setFixedWidth(78)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed, QtWidgets.QSizePolicy.Policy.Expanding)
        self.setToolTip("Input level (RMS bar, peak line) in dBFS; CLIP lights when samples reach full scale")

    @property
    def clipping(self) -> bool:
        return self.clip_age < self.CLIP_HOLD_S

    def set_level(self, loudness_db: float, peak_db: float, clipped: int) -> None:
        """Take one estimate's level (RMS dBFS), peak (dBFS, :attr:`Estimate.peak_db`) and clipped-sample
        count."""
        rms = max(self.FLOOR_DB, min(0.0, loudness_db))
        self.target_db = rms
        self.rms_db = max(self.rms_db, rms)  # rise instantly, fall with ballistics
        self.peak_db = max(self.FLOOR_DB, min(0.0, peak_db))
        if self.peak_db >= self.hold_db:
            self.hold_db, self._hold_age = self.peak_db, 0.0
        if clipped > 0:
            self.clip_age = 0.0
            self.clipped_total += int(clipped)
        self.update()

    def fall_to_floor(self) -> None:
        """No more input (stopped, ended, stalled): the bar and then the peak hold fall to the floor with
        the meter's ballistics, instead of showing the last level for ever."""
        if self.target_db != self.FLOOR_DB or self.peak_db != self.FLOOR_DB:  # (called every health check)
            self.target_db = self.peak_db = self.FLOOR_DB
            self.update()

    def advance(self, dt: float) -> None:
        """Move the ballistics on by ``dt`` seconds; repaints only if something moved."""
        before = (self.rms_db, self.hold_db, self.clipping)
        self.rms_db = max(self.target_db, self.rms_db - self.fall * dt)
        self._hold_age += dt
        if self._hold_age > self.PEAK_HOLD_S:
            self.hold_db = max(self.peak_db, self.hold_db - self.fall * dt)
        self.clip_age += dt
        if (self.rms_db, self.hold_db, self.clipping) != before:
            self.update()

    def _y(self, db: float, top: float, height: float) -> float:
        return top + height * (min(0.0, db) / self.FLOOR_DB)

    def paintEvent(self, event) -> None:
        p = QtGui.QPainter(self)
        w, h = self.width(), self.height()
        led_h, label_h = 30, 26
        top, bottom = led_h + 8, h - label_h - 4
        height = bottom - top
        bar_x, bar_w = 6, w - 40
        # Clip LED.
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        p.setBrush(QtGui.QColor(theme.ERROR if self.clipping else "#2a1416"))
        p.drawRoundedRect(QtCore.QRectF(4, 2, w - 8, led_h), 4, 4)
        p.setPen(QtGui.QColor("#ffffff" if self.clipping else "#5a3034"))
        p.setFont(theme.font(14, bold=True))
        p.drawText(QtCore.QRectF(4, 2, w - 8, led_h), QtCore.Qt.AlignmentFlag.AlignCenter, "CLIP")
        # Trough, then the bar in three zones (green to -12 dB, amber to -3 dB, red above).
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        p.setBrush(QtGui.QColor("#1a1e27"))
        p.drawRect(QtCore.QRectF(bar_x, top, bar_w, height))
        y_level = self._y(self.rms_db, top, height)
        for lo, hi, color in ((self.FLOOR_DB, -12.0, theme.OK), (-12.0, -3.0, theme.WARN), (-3.0, 0.0, theme.ERROR)):
            if self.rms_db <= lo:
                break
            y0, y1 = self._y(min(self.rms_db, hi), top, height), self._y(lo, top, height)
            p.setBrush(QtGui.QColor(color))
            p.drawRect(QtCore.QRectF(bar_x, max(y0, y_level), bar_w, y1 - max(y0, y_level)))
        # Peak and peak hold lines.
        for db, color, width in ((self.peak_db, theme.TEXT, 2.0), (self.hold_db, theme.WARN, 3.0)):
            if db > self.FLOOR_DB:
                y = self._y(db, top, height)
                p.setPen(QtGui.QPen(QtGui.QColor(color), width))
                p.drawLine(QtCore.QPointF(bar_x, y), QtCore.QPointF(bar_x + bar_w, y))
        # Scale.
        p.setFont(theme.font(11))
        for db in (0, -6, -12, -24, -36, -48, -60):
            y = self._y(db, top, height)
            p.setPen(QtGui.QColor(theme.TEXT_FAINT))
            p.drawLine(QtCore.QPointF(bar_x + bar_w, y), QtCore.QPointF(bar_x + bar_w + 4, y))
            p.setPen(QtGui.QColor(theme.TEXT_DIM))
            p.drawText(QtCore.QRectF(bar_x + bar_w + 4, y - 8, w - bar_x - bar_w - 6, 16),
                       QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter, str(-db))
        # Numeric RMS.
        p.setPen(QtGui.QColor(theme.TEXT))
        p.setFont(theme.font(13, bold=True, mono=True))
        text = "-inf" if self.rms_db <= self.FLOOR_DB else f"{self.rms_db:.0f}"
        p.drawText(QtCore.QRectF(0, h - label_h, w, label_h), QtCore.Qt.AlignmentFlag.AlignCenter, f"{text} dB")


# Short names for the GEMS-9 scale (Zentner et al. 2008) so the bars can use large type.
GEMS_SHORT = {"joyful_activation": "joy", "amazement": "wonder", "tenderness": "tender", "nostalgia": "nostalgia",
              "calmness": "calm", "solemnity": "solemn", "power": "power", "tension": "tension",
              "sadness": "sadness"}


def head_label(name: str) -> str:
    return GEMS_SHORT.get(name, name.replace("_", " "))


class MoodBars(Fading, QtWidgets.QFrame):
    """Horizontal bars of one categorical head (the nine GEMS moods, or mood tags), strongest highlighted.

    The values are shares or probabilities in 0..1 and a full bar is 1: bars drawn relative to the
    largest value would show silence with every tag at 0.1 as full bars, like music with one at 0.7.
    """

    def __init__(self, title: str = "MOOD (GEMS)", parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("panel")
        self.title = title
        self.values: dict[str, float] = {}
        self.setMinimumHeight(120)

    def set_values(self, values: dict[str, float]) -> None:
        values = {k: float(v) for k, v in values.items()}
        if values != self.values:
            self.values = values
            self.update()

    @property
    def top(self) -> str:
        return max(self.values, key=self.values.get) if self.values else ""

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        p = self._painter()
        w, h = self.width(), self.height()
        p.setPen(QtGui.QColor(theme.TEXT_DIM))
        p.setFont(theme.font(12, bold=True))
        p.drawText(QtCore.QRectF(16, 6, w - 32, 20), QtCore.Qt.AlignmentFlag.AlignLeft, self.title)
        if not self.values:
            p.drawText(QtCore.QRectF(0, 0, w, h), QtCore.Qt.AlignmentFlag.AlignCenter, "waiting for audio")
            return
        n = len(self.values)
        top_y, row = 30, (h - 36) / n
        name_w = min(150, w * 0.34)
        longest = max(len(head_label(n)) for n in self.values)
        # As large as the row height allows, but small enough that the longest (bold) name fits.
        px = int(max(9, min(22, row * 0.62, (name_w - 10) / (0.68 * longest))))
        num_w = max(44, int(2.6 * px))
        bar_x, bar_w = 16 + name_w, max(10, w - 40 - name_w - num_w)
        best = self.top
        for i, (name, v) in enumerate(self.values.items()):
            y = top_y + i * row
            strong = name == best
            p.setFont(theme.font(px, bold=strong))
            p.setPen(QtGui.QColor(theme.TEXT if strong else theme.TEXT_DIM))
            p.drawText(QtCore.QRectF(16, y, name_w - 8, row), QtCore.Qt.AlignmentFlag.AlignVCenter, head_label(name))
            p.setPen(QtCore.Qt.PenStyle.NoPen)
            bh = max(4.0, row * 0.5)
            p.setBrush(QtGui.QColor(theme.GRID))
            p.drawRoundedRect(QtCore.QRectF(bar_x, y + (row - bh) / 2, bar_w, bh), 3, 3)
            color = QtGui.QColor(theme.INFO if strong else "#3d6a99")
            p.setBrush(color)
            p.drawRoundedRect(QtCore.QRectF(bar_x, y + (row - bh) / 2, bar_w * min(1.0, max(0.0, v)), bh), 3, 3)
            p.setPen(QtGui.QColor(theme.TEXT if strong else theme.TEXT_DIM))
            p.setFont(theme.font(max(11, px - 3), mono=True))
            p.drawText(QtCore.QRectF(w - 16 - num_w, y, num_w, row),
                       QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter, f"{v:.2f}")


class Banner(QtWidgets.QFrame):
    """A full-width message strip for errors and warnings, hidden when there is nothing to say.

    Errors stay until they are dismissed or the cause is fixed (a successful start clears them), so
    a problem that happened while nobody looked is still on screen when someone does. A passing note
    ("the device is back") can go by itself after a few seconds: a kiosk has no pointer to dismiss it.
    """

    COLORS: ClassVar[dict[str, tuple[str, str]]] = {
        "error": (theme.ERROR, "#ffffff"), "warning": (theme.WARN, "#000000"), "info": (theme.INFO, "#000000")}

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.level = ""
        self.label = QtWidgets.QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setFont(theme.font(16, bold=True))
        close = QtWidgets.QPushButton("\u2715")
        close.setFlat(True)
        close.setFixedWidth(36)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.clear)
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(14, 8, 8, 8)
        row.addWidget(self.label, 1)
        row.addWidget(close)
        self._expiry = QtCore.QTimer(self, singleShot=True)
        self._expiry.timeout.connect(self.clear)
        self.hide()

    @property
    def text(self) -> str:
        return self.label.text() if not self.isHidden() else ""

    def show_message(self, text: str, level: str = "error", expire_s: float = 0.0) -> None:
        """Show ``text``; with ``expire_s`` > 0 it goes by itself after that many seconds."""
        self._expiry.stop()
        if expire_s > 0:
            self._expiry.start(round(expire_s * 1000))
        bg, fg = self.COLORS[level]
        self.level = level
        self.setStyleSheet(f"Banner {{ background: {bg}; border-radius: 6px; }} QLabel, QPushButton "
                           f"{{ color: {fg}; background: transparent; border: none; }}")
        self.label.setText(text)
        self.show()

    def clear(self) -> None:
        self._expiry.stop()
        self.level = ""
        self.label.setText("")
        self.hide()
