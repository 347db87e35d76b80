"""The monitor's dark, high-contrast look: colours, fonts, the Qt palette and style sheet.

Everything visual that more than one widget shares lives here, so the monitor can be re-skinned in
one place. The palette is chosen for a dark room: near-black background (no glare, keeps the
performer's night vision), text near white, and saturated signal colours that stay distinct for
the common colour-vision deficiencies (valence amber vs arousal magenta; the four quadrants differ
in lightness as well as hue).
"""

from __future__ import annotations

from PyQt6 import QtGui, QtWidgets

from live_mer.estimate import QUADRANT_NAMES

# Surfaces and text.
BACKGROUND = "#0a0c10"
PANEL = "#12151c"
PANEL_EDGE = "#262b36"
GRID = "#2a303c"
TEXT = "#eef1f6"
TEXT_DIM = "#8a93a6"
TEXT_FAINT = "#4d5566"
STALE_OPACITY = 0.3  # readouts of a stream that stopped or stalled are drawn this faint until estimates flow again

# Signals.
VALENCE = "#ffb000"  # amber
AROUSAL = "#ff3e9a"  # magenta
OK = "#3ddc84"
WARN = "#ffc53d"
ERROR = "#ff4d4f"
INFO = "#4ea8ff"

# Russell's circumplex quadrants: (code, short name, long name, colour, sign of valence, sign of arousal).
QUADRANTS = tuple((code, QUADRANT_NAMES[code].split(" / ")[0], QUADRANT_NAMES[code], color, sv, sa)
                  for code, color, sv, sa in (("Q1", "#ffd23f", +1, +1), ("Q2", "#ff5252", -1, +1),
                                              ("Q3", "#5b8cff", -1, -1), ("Q4", "#2ee6a6", +1, -1)))
QUADRANT_COLOR = {q[0]: q[3] for q in QUADRANTS}

FONT_FAMILY = "DejaVu Sans"  # shipped with nearly every Linux desktop; Qt falls back elsewhere
MONO_FAMILY = "DejaVu Sans Mono"


def camelot_color(code: str) -> str:
    """A colour for a Camelot key code (``"8A"``), or a neutral grey if unknown.

    One hue per wheel position, 30 degrees apart, like the coloured wheels DJ software prints:
    harmonically compatible neighbours (8A, 7A, 9A, 8B) get neighbouring hues, so a mix-safe key
    change reads as a small colour step. Minor (A) is a little more saturated than major (B).
    """
    try:
        number = int(code[:-1])
    except (ValueError, IndexError):
        return PANEL_EDGE
    hue = (160 - (number - 1) * 30) % 360  # 1 ≈ green-cyan, stepping around the wheel
    color = QtGui.QColor.fromHsv(hue, 200 if code.endswith("A") else 150, 235)
    return color.name()


def font(pixel_size: int, bold: bool = False, mono: bool = False) -> QtGui.QFont:
    """A font by pixel size (pixel sizes keep the big readouts the same size on every DPI setting)."""
    f = QtGui.QFont(MONO_FAMILY if mono else FONT_FAMILY)
    f.setPixelSize(max(1, int(pixel_size)))
    f.setBold(bold)
    return f


STYLE_SHEET = f"""
QMainWindow, QWidget#central {{ background: {BACKGROUND}; }}
QWidget {{ color: {TEXT}; }}
QFrame#panel {{ background: {PANEL}; border: 1px solid {PANEL_EDGE}; border-radius: 6px; }}
QLabel#caption {{ color: {TEXT_DIM}; font-weight: bold; letter-spacing: 1px; }}
QLabel#status {{ color: {TEXT_DIM}; }}
QComboBox, QLineEdit, QDoubleSpinBox {{
    background: #1a1e27; border: 1px solid {PANEL_EDGE}; border-radius: 4px; padding: 4px 6px;
    selection-background-color: {INFO};
}}
QComboBox:focus, QLineEdit:focus, QDoubleSpinBox:focus {{ border: 1px solid {INFO}; }}
QLineEdit[invalid="true"] {{ border: 2px solid {ERROR}; }}
QComboBox QAbstractItemView {{ background: #1a1e27; border: 1px solid {PANEL_EDGE}; }}
QPushButton {{
    background: #1f2430; border: 1px solid {PANEL_EDGE}; border-radius: 4px; padding: 5px 12px;
}}
QPushButton:hover {{ border: 1px solid {INFO}; }}
QPushButton#start {{ background: #14532d; border: 1px solid {OK}; font-weight: bold; min-width: 70px; }}
QPushButton#start[running="true"] {{ background: #5c1a1b; border: 1px solid {ERROR}; }}
QToolTip {{ background: #1a1e27; color: {TEXT}; border: 1px solid {PANEL_EDGE}; }}
"""


def apply(app: QtWidgets.QApplication) -> None:
    """Give ``app`` the Fusion style with a dark palette, the style sheet and pyqtgraph defaults."""
    import pyqtgraph as pg

    app.setStyle("Fusion")  # the only built-in style that honours a dark palette everywhere
    pal = QtGui.QPalette()
    roles = QtGui.QPalette.ColorRole
    for role, color in ((roles.Window, BACKGROUND), (roles.WindowText, TEXT), (roles.Base, "#1a1e27"),
                        (roles.AlternateBase, PANEL), (roles.Text, TEXT), (roles.Button, "#1f2430"),
                        (roles.ButtonText, TEXT), (roles.Highlight, INFO), (roles.HighlightedText, "#000000"),
                        (roles.ToolTipBase, "#1a1e27"), (roles.ToolTipText, TEXT),
                        (roles.PlaceholderText, TEXT_FAINT)):
        pal.setColor(role, QtGui.QColor(color))
    app.setPalette(pal)
    app.setFont(font(13))
    app.setStyleSheet(STYLE_SHEET)
    pg.setConfigOptions(background=PANEL, foreground=TEXT_DIM, antialias=True)
