"""The monitor window: controls, readouts, and the display timer that drains the analyzer's output.

Threading: the analyzer runs in the engine's thread and appends to a
:class:`~live_mer.engine.LatestEstimates`; this window only reads from it in a QTimer at display
rate. Nothing here can stall the analysis: a slow frame just means more estimates in the next drain.
"""

from __future__ import annotations

import time

from PyQt6 import QtCore, QtGui, QtWidgets

from live_mer import sources
from live_mer.analyzer import MAX_SMOOTHING_S
from live_mer.estimate import Estimate
from live_mer.fileanalysis import AudioFileError
from live_mer.model import ModelError
from live_mer.osc import DestinationConfig, DestinationError, repeated
from live_mer.outputs import LABEL_OUTPUTS, OutputSettings
from live_mer.sources import DeviceSource, SourceError, list_input_devices

from . import theme
from .plots import History, Timeline, VAPlane
from .presets import CUSTOM, PRESETS, Preset
from .session import DEMO, DEVICE, FILE, Destination, Session, SourceChoice, parse_destinations
from .widgets import Banner, ChordKeyPanel, LevelMeter, MoodBars

HISTORY_CHOICES = (30, 60, 120)
MAX_HISTORY_S = 600  # the longest timeline (--history, presets)
TOP_TAG_BARS = 5  # the most probable mood tags shown as bars
STATUS_PARTS = ("input", "model", "analysis", "overflows", "osc")  # the status line, in order
STATUS_SPACING = 12  # px between them
STATUS_MARGINS = 20  # px: the window's margins left and right
STATUS_SLACK = 40  # px of spare room before the status line goes back to fewer rows
PREPARING = ("Preparing the analysis: the first start after an install or update compiles it (10\u201320 s); "
             "it starts by itself when ready.")
_PICK_FILE = "pick-file"
# What a failed start can raise, and how the banner introduces it.
_START_ERRORS = ((ModelError, "Model not loaded"), (SourceError, "Input not available"),
                 (AudioFileError, "Cannot play file"), (DestinationError, "OSC destination"),
                 (OSError, "System error"), (ValueError, "Invalid setting"),
                 (Exception, "Cannot start the analysis"))  # anything else: said in the window, never a crash


def input_devices(rescan: bool = False) -> tuple[list[dict], str]:
    """Input devices, or an empty list and the reason (no PortAudio, no sound server).

    PortAudio enumerates devices once per initialisation, so ``rescan`` re-initialises it to see
    devices plugged in since; only do that while no input stream is open.
    """
    try:
        if rescan:
            sources.refresh_devices()  # a no-op while an input stream is open
        return list_input_devices(), ""
    except Exception as exc:  # noqa: BLE001 - PortAudio missing raises OSError, a broken server anything
        return [], f"cannot list input devices: {exc}"


class SourceCombo(QtWidgets.QComboBox):
    """The input picker; it calls ``before_popup`` first so the device list is fresh when opened."""

    def __init__(self, before_popup) -> None:
        super().__init__()
        self._before_popup = before_popup

    def showPopup(self) -> None:
        self._before_popup()
        super().showPopup()


def osc_status_html(stats: dict) -> str:
    """One OSC destination's health for the status line: a coloured dot and what is happening.

    UDP is connectionless, so "sent" only means the datagram left; a refused send (ICMP port
    unreachable on a connected socket) is the one sign that nothing listens on that port, and the
    sender's ``refused`` flag clears once a receiver has opened it.
    """
    sent, errors, why = stats["sent"], stats["errors"], stats["last_error"]
    dropped = stats.get("dropped", 0)  # bundles the sender's queue had to drop (the sender fell behind)
    if stats.get("refused"):
        color, note = theme.WARN, f"{sent} sent · nothing listening"
    elif errors and not sent:
        color, note = theme.ERROR, f"failing: {why}"
    elif errors and "refused" not in why.lower():
        color, note = theme.WARN, f"{sent} sent · {why}"
    elif dropped:
        color, note = theme.WARN, f"{sent} sent · {dropped} dropped"
    elif sent:
        color, note = theme.OK, f"{sent} sent"
    else:
        color, note = theme.TEXT_DIM, "idle"
    return (f"<b style='color:{color}'>\u25cf</b>&nbsp;{stats['destination']}&nbsp;"  # a wrapped line keeps them together
            f"<span style='color:{theme.TEXT_DIM}'>{note}</span>")


def held_labels(settings: OutputSettings) -> str:
    """Which labels OSC holds, and how long (``"quadrant 1.5 s · key 2 s"``); ``""`` if none.

    The window shows every estimate as it comes; OSC sends shaped values, and a held label changes only
    once a challenger has led for its hold time, so visuals may show the previous one meanwhile.
    """
    held = ((name, settings.shape(name).hold_ms) for name in LABEL_OUTPUTS if name not in settings.muted)
    return " · ".join(f"{name} {ms / 1000:g} s" for name, ms in held if ms > 0)


class MainWindow(QtWidgets.QMainWindow):
    """The live monitor.

    Parameters
    ----------
    session : Session
        The analysis pipeline (model, engine, OSC) this window controls.
    source : SourceChoice
        Input selected at start.
    smoothing_s : float
        Initial output smoothing.
    osc : str
        Initial OSC destinations, comma-separated ``HOST:PORT`` (empty: no OSC).
    preset : str or None
        A name in ``presets``, applied over ``smoothing_s`` and ``history_s`` (flags given on the command
        line are applied after it: :meth:`choose_smoothing`, :meth:`choose_history`).
    history_s : int
        Visible timeline span, seconds.
    fps : float
        Display rate (1..60).
    presets : mapping of str to Preset
        The preset picker's entries (default: :data:`~gui.presets.PRESETS`).
    osc_configs : sequence of DestinationConfig
        Detailed OSC destinations from a configuration file; the OSC field lists them as
        ``HOST:PORT``, and while it does, their rate, layout and mapping are kept.
    """

    STALL_S = 3.0  # no estimate for this long while running: warn that the input went quiet
    BACK_NOTE_S = 5.0  # "the input device is back" goes by itself after this long
    WARMUP_S = 3.0  # audio the engine skips this soon after a start is warm-up, not a problem to report

    def __init__(self, session: Session, source: SourceChoice | None = None, smoothing_s: float = 1.0,
                 osc: str = "127.0.0.1:9000", preset: str | None = None, history_s: int = 60, fps: float = 30.0,
                 presets: dict[str, Preset] | None = None, osc_configs=()):
        super().__init__()
        self.session = session
        self.presets = dict(PRESETS if presets is None else presets)
        self._osc_configs = tuple(osc_configs)
        self._base_outputs = session.output_settings  # the configuration's [outputs], for presets without their own
        self.history = History(self._history_rows())
        self.last_estimate: Estimate | None = None
        self.estimates_shown = 0
        self.not_audio = 0  # input samples that were NaN, Inf or absurd since the start (heard as silence)
        self.now = 0.0  # display clock, in stream seconds (continues across restarts)
        self._t_offset = 0.0  # stream time of the current engine -> display time
        self._latest_t = 0.0
        self._wall = time.perf_counter()
        self._last_data_wall = self._wall
        self._started_wall = self._wall
        self._next_status = 0.0
        self._running_ui = False
        self._pending_start = False  # Start pressed while the session is still compiling
        self._banner_before = ("", "")  # what the banner said before "preparing" replaced it
        self._osc_applied: tuple[Destination, ...] = ()
        self._dropped_base = 0.0
        self._input_lost = False
        self._stream_note = ""  # the banner's note on the stream ("... ended."): a start makes it obsolete
        self._kiosk = False
        self._previous_source = source or SourceChoice(DEMO)
        self.setWindowTitle("live_mer monitor")
        self.resize(1280, 800)

        self.banner = Banner()
        self.chord_panel = ChordKeyPanel()
        self.timeline = Timeline(history_s)
        self.va_plane = VAPlane()
        self.mood = MoodBars()
        self.tag_bars = MoodBars(f"MOOD TAGS (AllMusic, top {TOP_TAG_BARS})")
        self.tag_bars.hide()  # shown once the model's estimates carry a tags head
        self.meter = LevelMeter()
        self._build_controls(source or SourceChoice(DEMO), smoothing_s, osc, history_s)
        self._build_layout()
        self._build_status()
        self._build_shortcuts()
        if preset:
            self.apply_preset(preset)

        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.tick)
        self.set_fps(fps)
        self.timer.start()
        self._update_status()
        self.timeline.setFocus()  # no control starts focused (its highlight would draw the eye)

    # ------------------------------------------------------------------------------------ building
    def _build_controls(self, source: SourceChoice, smoothing_s: float, osc: str, history_s: int) -> None:
        narrow = QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        self.source_combo = SourceCombo(lambda: self.refresh_devices(rescan=self._may_rescan()))
        self.source_combo.setSizeAdjustPolicy(narrow)
        self.source_combo.setMinimumContentsLength(6)
        self.source_combo.setToolTip("Audio input: a sound card, the built-in demo piece, or a file")
        self.refresh_devices(select=source)
        self.source_combo.activated.connect(self._source_activated)

        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.setObjectName("start")
        self.start_button.setToolTip("Start or stop the analysis (Space)")
        self.start_button.clicked.connect(self.toggle)

        self.preset_combo = QtWidgets.QComboBox()
        self.preset_combo.addItem(CUSTOM)
        for name, p in self.presets.items():
            self.preset_combo.addItem(name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, p.description,
                                          QtCore.Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.setToolTip("Presets set smoothing and timeline length (a configuration file's presets: "
                                     "OSC output shaping); they never change where the OSC goes. A change by hand "
                                     "shows Custom; picking Custom or a built-in preset goes back to the "
                                     "configuration's output shaping")
        # Narrow enough for a 1024-pixel screen: long names are shown in full in the open list.
        self.preset_combo.setSizeAdjustPolicy(narrow)
        self.preset_combo.setMinimumContentsLength(5)
        self.preset_combo.activated.connect(lambda i: self.apply_preset(self.preset_combo.itemText(i)))

        self.smoothing_spin = QtWidgets.QDoubleSpinBox()
        self.smoothing_spin.setRange(0.0, MAX_SMOOTHING_S)
        self.smoothing_spin.setDecimals(2)
        self.smoothing_spin.setSingleStep(0.25)
        self.smoothing_spin.setSuffix(" s")
        self.smoothing_spin.setValue(smoothing_s)
        self.smoothing_spin.setToolTip("Output smoothing time constant (0 = raw model output); "
                                       "changing it restarts the analysis")
        self.smoothing_spin.valueChanged.connect(self._smoothing_edited)

        self.osc_edit = QtWidgets.QLineEdit(osc)
        self.osc_edit.setCursorPosition(0)
        self.osc_edit.setPlaceholderText("no OSC output (HOST:PORT, HOST:PORT ...)")
        self.osc_edit.setMinimumWidth(110)
        self.osc_edit.setToolTip("OSC destinations, comma-separated HOST:PORT; broadcast and multicast "
                                 "addresses work. Applied without interrupting the audio.")
        self.osc_edit.editingFinished.connect(self._osc_edited)

        self.history_combo = QtWidgets.QComboBox()
        for s in HISTORY_CHOICES:
            self.history_combo.addItem(f"{s} s", s)
        self.history_combo.setToolTip("Timeline length")
        self._select_history(history_s)
        self.history_combo.activated.connect(lambda i: self.choose_history(self.history_combo.itemData(i)))

        self.fullscreen_button = QtWidgets.QPushButton("Full screen")
        self.fullscreen_button.setToolTip("Full-screen kiosk view without controls (F11; Esc leaves)")
        self.fullscreen_button.clicked.connect(self.toggle_kiosk)

        self.controls = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(self.controls)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)

        def labelled(text: str, widget: QtWidgets.QWidget, stretch: int = 0) -> None:
            label = QtWidgets.QLabel(text)
            label.setObjectName("status")
            label.setBuddy(widget)
            row.addWidget(label)
            row.addWidget(widget, stretch)

        labelled("&Input", self.source_combo, 2)
        row.addWidget(self.start_button)
        row.addSpacing(4)
        labelled("&Preset", self.preset_combo)
        labelled("S&moothing", self.smoothing_spin)
        labelled("&OSC", self.osc_edit, 2)
        labelled("&History", self.history_combo)
        row.addWidget(self.fullscreen_button)

    def _build_layout(self) -> None:
        central = QtWidgets.QWidget()
        central.setObjectName("central")
        outer = QtWidgets.QVBoxLayout(central)
        outer.setContentsMargins(10, 8, 10, 6)
        outer.setSpacing(8)
        outer.addWidget(self.banner)
        outer.addWidget(self.controls)

        left = QtWidgets.QVBoxLayout()
        left.setSpacing(8)
        left.addWidget(self.chord_panel, 3)
        left.addWidget(self._framed(self.timeline), 7)
        right = QtWidgets.QVBoxLayout()
        right.setSpacing(8)
        right.addWidget(self._framed(self.va_plane), 6)
        right.addWidget(self.mood, 4)
        right.addWidget(self.tag_bars, 3)
        main = QtWidgets.QHBoxLayout()
        main.setSpacing(8)
        main.addLayout(left, 13)
        main.addLayout(right, 8)
        main.addWidget(self._framed(self.meter))
        outer.addLayout(main, 1)
        self.status_box = QtWidgets.QVBoxLayout()
        self.status_box.setSpacing(2)
        outer.addLayout(self.status_box)
        self.setCentralWidget(central)

    @staticmethod
    def _framed(widget: QtWidgets.QWidget) -> QtWidgets.QFrame:
        frame = QtWidgets.QFrame()
        frame.setObjectName("panel")
        lay = QtWidgets.QVBoxLayout(frame)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(widget)
        return frame

    def _build_status(self) -> None:
        self.status_labels: dict[str, QtWidgets.QLabel] = {}
        for name in STATUS_PARTS:
            label = QtWidgets.QLabel()
            label.setObjectName("status")
            label.setTextFormat(QtCore.Qt.TextFormat.RichText)
            label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
            self.status_labels[name] = label
        # measures a wrapping part's one-line width (a wrapping label's size hint is not; toggling its wrap to
        # measure would re-lay the window out twice a second); hidden, so setting its text costs no layout
        self._status_ruler = QtWidgets.QLabel(self)
        self._status_ruler.setObjectName("status")
        self._status_ruler.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self._status_ruler.hide()
        self.status_labels["analysis"].setToolTip(
            "How long the analyzer call that produced the latest estimate took (the model run and the audio\n"
            "block that completed its hop, not all of the hop's analysis); not how far the outputs lag behind the\n"
            "music (the level follows within a hop, arousal and the quadrant within about 3-5 s: README,\n"
            "\u201cHow quickly it reacts\u201d).")
        self._status_arrangement: list[list[str]] = []
        self._arrange_status()

    def _arrange_status(self) -> None:
        """Lay the status line's parts out in rows as wide as the window (as many as they need, in
        order), each part's share of its row in proportion to its text, so that nothing is cut off; a part
        wider than the window (many OSC destinations, a long file name) wraps onto lines of its own."""
        labels = self.status_labels
        need = {}
        for name, label in labels.items():  # the width of its text on one line, wrapped or not
            if label.wordWrap():
                self._status_ruler.setText(label.text())
                self._status_ruler.ensurePolished()  # (the style sheet's padding, as the shown labels have it)
                label = self._status_ruler
            need[name] = label.sizeHint().width() + STATUS_SPACING

        def flow(room: int) -> list[list[str]]:
            rows: list[list[str]] = [[]]
            used = 0
            for name in labels:
                if rows[-1] and used + need[name] > room:
                    rows.append([])
                    used = 0
                rows[-1].append(name)
                used += need[name]
            return rows

        rows = flow(self.width() - STATUS_MARGINS)
        if len(rows) < len(self._status_arrangement):
            # Fewer rows only with room to spare: numbers that change width ("9.8 ms", "12.3 ms") must
            # not make the line (and every plot above it) jump between one and two rows.
            rows = flow(self.width() - STATUS_MARGINS - STATUS_SLACK)
        if rows != self._status_arrangement:
            self._status_arrangement = rows
            while self.status_box.count():
                old = self.status_box.takeAt(0).layout()
                while old.count():
                    old.takeAt(0)
                old.deleteLater()
            for names in rows:
                row = QtWidgets.QHBoxLayout()
                row.setSpacing(STATUS_SPACING)
                for name in names:
                    row.addWidget(labels[name])
                self.status_box.addLayout(row)
        for r, names in enumerate(rows):
            row = self.status_box.itemAt(r).layout()
            for i, name in enumerate(names):
                row.setStretch(i, need[name])
        for name, label in labels.items():
            wrap = need[name] > self.width() - STATUS_MARGINS
            if label.wordWrap() != wrap:  # (setting it re-lays the label out, even unchanged)
                label.setWordWrap(wrap)

    @property
    def status_rows(self) -> int:
        return len(self._status_arrangement)

    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._arrange_status()

    def _build_shortcuts(self) -> None:
        for keys, slot in (("F11", self.toggle_kiosk), ("Esc", self.leave_kiosk), ("Ctrl+Q", self.close),
                           ("Space", self.toggle)):
            sc = QtGui.QShortcut(QtGui.QKeySequence(keys), self)
            sc.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(slot)

    # ------------------------------------------------------------------------------------- sources
    def _may_rescan(self) -> bool:
        # Re-initialising PortAudio would kill an open input stream.
        return not (self.session.running and isinstance(self.session.source, DeviceSource))

    def refresh_devices(self, select: SourceChoice | None = None, rescan: bool = False) -> None:
        """Fill the input picker: demo, file, the default input and every input device by name."""
        combo = self.source_combo
        current = select or self.source_choice()
        devices, problem = input_devices(rescan)
        combo.blockSignals(True)  # rebuilding the list is not a user's choice
        combo.clear()
        # The given choice itself is stored (not an equal-looking default) so its pacing flags survive.
        combo.addItem("Demo piece", current if current is not None and current.kind == DEMO else SourceChoice(DEMO))
        if current is not None and current.kind == FILE:
            combo.addItem(current.label, current)
        combo.addItem("File\u2026", _PICK_FILE)
        combo.insertSeparator(combo.count())
        if devices:
            combo.addItem("Default input", SourceChoice(DEVICE, ""))
            for d in devices:
                combo.addItem(d["name"], SourceChoice(DEVICE, d["name"]))
        else:
            combo.addItem("(no input devices)")
            combo.model().item(combo.count() - 1).setEnabled(False)
            if problem:
                combo.setItemData(combo.count() - 1, problem, QtCore.Qt.ItemDataRole.ToolTipRole)
        self._select_source(current)  # adds a device named on the command line that is not listed
        combo.blockSignals(False)

    def _find_source(self, choice: SourceChoice) -> int:
        # QComboBox.findData compares wrapped Python objects by identity; we want dataclass equality.
        combo = self.source_combo
        return next((i for i in range(combo.count()) if combo.itemData(i) == choice), -1)

    def _select_source(self, choice: SourceChoice | None) -> None:
        if choice is None:
            return
        combo = self.source_combo
        i = self._find_source(choice)
        if i < 0 and choice.kind == DEMO:
            combo.setItemData(0, choice)  # the demo entry, with this choice's pacing flags
            i = 0
        elif i < 0 and choice.kind == FILE:
            combo.insertItem(1, choice.label, choice)
            i = 1
        elif i < 0:
            combo.addItem(choice.label, choice)
            i = combo.count() - 1
        combo.setCurrentIndex(i)

    def source_choice(self) -> SourceChoice | None:
        if not hasattr(self, "source_combo"):
            return None
        data = self.source_combo.currentData()
        return data if isinstance(data, SourceChoice) else None

    def _source_activated(self, index: int) -> None:
        if self.source_combo.itemData(index) == _PICK_FILE:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Play an audio file", "", "Audio (*.wav *.flac *.ogg *.mp3 *.aiff *.aif);;All files (*)")
            if not path:
                self._select_source(self._previous_source)
                return
            self.set_source(SourceChoice(FILE, path))
            return
        self.set_source(self.source_choice())

    def set_source(self, choice: SourceChoice) -> None:
        """Switch input; restarts the analysis if it is running."""
        self._select_source(choice)
        if self._running_ui:
            self.start()

    # ------------------------------------------------------------------------------ start and stop
    def toggle(self) -> None:
        if self._running_ui or self._pending_start:
            self.stop()
        else:
            self.start()

    def start(self) -> bool:
        """(Re)start the analysis with the current controls; errors go to the banner. While the session is
        still compiling (:meth:`Session.prepare`), the start waits for it without freezing the window:
        the display timer starts the analysis once it is ready, with the controls as they are then."""
        if not self.session.ready:
            if not self._pending_start:
                self._pending_start = True
                self._banner_before = (self.banner.text, self.banner.level)
                self.start_button.setText("Starting\u2026")
                self.banner.show_message(PREPARING, "info")
                self._update_status()
            return True
        self._end_pending_start()
        choice = self.source_choice() or SourceChoice(DEMO)
        destinations = self._destinations()
        if destinations is None:
            return False
        try:
            self.session.start(choice, self.smoothing_spin.value(), destinations)
        except tuple(kind for kind, _ in _START_ERRORS) as exc:
            intro = next(text for kind, text in _START_ERRORS if isinstance(exc, kind))
            self._set_running(False)
            self.banner.show_message(f"{intro}: {exc}", "error")
            self._update_status()
            return False
        self._previous_source = choice
        self._osc_applied = destinations
        self.history.reserve(self._history_rows())  # the hop as rounded to whole frames is known now
        self._t_offset = self.now  # the new stream continues the timeline where the old one stopped
        self._latest_t = self.now
        self._started_wall = self._last_data_wall = time.perf_counter()
        self._dropped_base = 0.0
        self._input_lost = False
        self.not_audio = 0
        self._set_running(True)
        if self.banner.level in ("error", "warning") or self.banner.text == self._stream_note:
            self.banner.clear()
        self._update_status()
        return True

    def _end_pending_start(self) -> None:
        """Leave the "preparing" state: the banner shows again what it showed before (a note, say)."""
        if self._pending_start:
            self._pending_start = False
            if self.banner.text == PREPARING:
                text, level = self._banner_before
                if text:
                    self.banner.show_message(text, level)
                else:
                    self.banner.clear()

    def stop(self) -> None:
        self._end_pending_start()
        self.session.stop()
        self._set_running(False)
        self._update_status()

    def _set_running(self, running: bool) -> None:
        self._running_ui = running
        if not running:
            self._show_stale(True)
        self.start_button.setText("Stop" if running else "Start")
        self.start_button.setProperty("running", running)
        self.start_button.style().unpolish(self.start_button)
        self.start_button.style().polish(self.start_button)

    @property
    def running(self) -> bool:
        return self._running_ui

    def _show_stale(self, stale: bool) -> None:
        """Mark the readouts as out of date (the analysis stopped, the input stalled or was lost: the meter
        falls to its floor, the rest dims) or as current again."""
        if stale:
            self.meter.fall_to_floor()
        for view in (self.chord_panel, self.va_plane, self.mood, self.tag_bars):
            view.set_stale(stale)

    def _note_stream(self, text: str, expire_s: float = 0.0) -> None:
        """Say something about the stream in the banner (the next start clears it)."""
        self._stream_note = text
        self.banner.show_message(text, "info", expire_s)

    # ----------------------------------------------------------------------------------- settings
    def apply_preset(self, name: str) -> None:
        """Apply a preset's settings, live while running: the smoothing, the output shaping and the history
        change without a restart (the stream goes on: a file does not start again, the visuals are not
        told "stopped"). A preset without output shaping of its own (a
        built-in one, or "Custom", which keeps the current smoothing and history) restores the output
        shaping the session started with (the configuration's [outputs])."""
        i = self.preset_combo.findText(name)
        if i < 0:
            raise KeyError(f"no preset {name!r}; presets: {', '.join(self.presets)}")
        self.preset_combo.setCurrentIndex(i)
        preset = self.presets.get(name, Preset())
        self.session.set_output_settings(preset.outputs or self._base_outputs)
        if preset.smoothing_s is not None:
            self.smoothing_spin.blockSignals(True)
            self.smoothing_spin.setValue(preset.smoothing_s)
            self.smoothing_spin.blockSignals(False)
            self.session.set_smoothing(preset.smoothing_s)
        if preset.history_s is not None:
            self.set_history(preset.history_s)

    def choose_smoothing(self, seconds: float) -> None:
        """Change the smoothing as the spin box does (the preset picker then says Custom)."""
        self.smoothing_spin.setValue(seconds)

    def _smoothing_edited(self) -> None:
        self.preset_combo.setCurrentText(CUSTOM)
        self.session.set_smoothing(self.smoothing_spin.value())

    def _destinations(self) -> tuple[Destination, ...] | None:
        """The OSC field parsed, or None (field marked red, banner explains) if it is not valid.

        A destination that came from the configuration file with more settings (rate, layout,
        mapping) is passed on as that configuration while its HOST:PORT stays in the field; one receiver
        with two such entries (two streams) is listed twice and keeps both, in the file's order. The same
        destination twice with the same settings is refused, as ``listen`` refuses it.
        """
        try:
            labels = parse_destinations(self.osc_edit.text())
            detailed: dict[str, list[DestinationConfig]] = {}
            for config in self._osc_configs:
                detailed.setdefault(config.label, []).append(config)
            chosen = tuple(detailed[label].pop(0) if detailed.get(label) else label for label in labels)
            configs = [d if isinstance(d, DestinationConfig) else DestinationConfig.parse(d) for d in chosen]
            if twice := repeated(configs):
                raise DestinationError(f"{labels[twice[1]]} is listed twice (with the same settings, it would get "
                                       "every bundle twice)")
        except DestinationError as exc:
            self._mark_osc(False)
            self.banner.show_message(f"OSC destination: {exc}", "error")
            return None
        self._mark_osc(True)
        return chosen

    def _planned_destinations(self) -> str:
        """The OSC field's destinations, where a start will send ("" if none, or not valid)."""
        try:
            return ", ".join(parse_destinations(self.osc_edit.text()))
        except DestinationError:
            return ""

    def _mark_osc(self, valid: bool) -> None:
        if self.osc_edit.property("invalid") != (not valid):
            self.osc_edit.setProperty("invalid", not valid)
            self.osc_edit.style().unpolish(self.osc_edit)
            self.osc_edit.style().polish(self.osc_edit)

    def _osc_edited(self) -> None:
        if self._apply_osc():
            self.preset_combo.setCurrentText(CUSTOM)

    def _apply_osc(self) -> bool:
        """Send OSC where the field says, without restarting the audio; True if that changed anything."""
        dests = self._destinations()
        if dests is None or dests == self._osc_applied:
            return False
        if self._running_ui:
            try:
                self.session.set_destinations(dests)
            except (DestinationError, OSError) as exc:
                self.banner.show_message(f"OSC destination: {exc}", "error")
                return False
            self._osc_applied = dests
            if self.banner.level == "error" and self.banner.text.startswith("OSC"):
                self.banner.clear()
        self._update_status()
        return True

    def _select_history(self, seconds: int) -> None:
        i = self.history_combo.findData(int(seconds))
        if i < 0:
            self.history_combo.addItem(f"{int(seconds)} s", int(seconds))
            i = self.history_combo.count() - 1
        self.history_combo.setCurrentIndex(i)

    def choose_history(self, seconds: int) -> None:
        """Change the timeline length as the picker does: a change the preset did not make (it says Custom)."""
        if seconds != self.timeline.history_s:
            self.preset_combo.setCurrentText(CUSTOM)
        self.set_history(seconds)

    def set_history(self, seconds: int) -> None:
        self._select_history(seconds)
        self.timeline.set_history(seconds)
        self.timeline.set_data(self.history, self.now)

    def set_fps(self, fps: float) -> None:
        self.fps = min(60.0, max(1.0, float(fps)))
        self.timer.setInterval(round(1000.0 / self.fps))

    # ------------------------------------------------------------------------------- kiosk mode
    def toggle_kiosk(self) -> None:
        if self._kiosk:
            self.leave_kiosk()
        else:
            self.enter_kiosk()

    def enter_kiosk(self) -> None:
        """Full screen, controls hidden: what an installation or a stage monitor shows."""
        self._kiosk = True
        self.controls.hide()
        self.setCursor(QtCore.Qt.CursorShape.BlankCursor)  # no pointer parked on a projected image
        self.showFullScreen()

    def leave_kiosk(self) -> None:
        """Controls and pointer back, even if the window manager has already ended the full screen."""
        if self._kiosk:
            self._kiosk = False
            self.controls.show()
            self.unsetCursor()
            self.showNormal()

    # ------------------------------------------------------------------------------ display loop
    def tick(self) -> None:
        """One display frame: drain new estimates, redraw what changed, advance the animations."""
        wall = time.perf_counter()
        dt, self._wall = wall - self._wall, wall
        if self._pending_start and self.session.ready:
            self.start()
        estimates = self.session.drain()
        if estimates:
            self._take(estimates)
            self._last_data_wall = wall
        if self._running_ui:
            # The display clock runs at wall speed between estimates so the timeline scrolls smoothly,
            # but never runs more than ~1.5 hops ahead of the data (a stalled input stops the scroll).
            hop = self._hop()
            self.now = min(max(self.now + dt, self._latest_t), self._latest_t + 1.5 * hop)
            self.timeline.scroll(self.now)
        self.va_plane.advance(dt)
        self.meter.advance(dt)
        if wall >= self._next_status:
            self._next_status = wall + 0.5
            self._check_health(wall)
            self._update_status()

    def _hop(self) -> float:
        return self.session.hop_seconds

    def _history_rows(self) -> int:
        """Rows for the longest timeline (600 s) at the session's hop (a shorter hop keeps more estimates)."""
        return max(4096, int(1.25 * MAX_HISTORY_S / self._hop()))

    def _take(self, estimates: list[Estimate]) -> None:
        for est in estimates:
            self.history.append(est.t + self._t_offset, est)
        last = estimates[-1]
        self.last_estimate = last
        self.estimates_shown += len(estimates)
        self.not_audio += sum(e.nonfinite for e in estimates)
        self._latest_t = last.t + self._t_offset
        if not self._running_ui or self.now < self._latest_t - 2 * self._hop():
            self.now = self._latest_t  # faster-than-real-time input (or a late drain): jump to the data
        self.timeline.set_data(self.history, self.now)
        quad = dict(last.heads.get("quadrant", {}))
        # The trail covers the same seconds at any hop: every step-th estimate, the newest included.
        step = max(1, round(VAPlane.TRAIL_S / VAPlane.TRAIL / self._hop()))
        trail = self.history.tail(VAPlane.TRAIL * step)[::-1][::step][::-1]
        self.va_plane.set_estimates(trail, last.quadrant, quad)
        self.mood.set_values(dict(last.heads.get("gems", {})))
        tags = last.heads.get("tags", {})
        self.tag_bars.set_values(dict(sorted(tags.items(), key=lambda kv: kv[1], reverse=True)[:TOP_TAG_BARS]))
        self.tag_bars.setVisible(bool(tags))
        self.chord_panel.update_estimate(last.chord, last.chord_confidence, last.key, last.key_camelot,
                                         last.key_open, last.key_confidence, last.chord_ext, last.chord_ext_confidence)
        # what is left of a stream after it stopped, and the silence fed while a device is lost, is no news:
        # the meter is not raised (nor its peak held, nor CLIP lit) by it
        stale = not self._running_ui or not last.input_ok
        if not stale:
            self.meter.set_level(last.loudness_db, max(e.peak_db for e in estimates), sum(e.clipped for e in estimates))
        self._show_stale(stale)

    def _check_health(self, wall: float) -> None:
        if not self._running_ui:
            return
        session = self.session
        if not session.running:
            # The engine ended by itself: an error (decoding, device) or the end of a finite file.
            self._set_running(False)
            error = session.error
            if error is not None:
                self.banner.show_message(f"Analysis stopped: {error}", "error")
            else:
                self._note_stream(f"{self.source_choice().label if self.source_choice() else 'Input'} ended.")
            return
        source = session.source
        if session.engine.input_lost:
            # The engine feeds silence and the source reopens the device by itself: say so, keep going.
            why = getattr(source, "reopen_error", "")
            self._input_lost = True
            self.banner.show_message(f"Input device {source.name!r} lost: reopening it automatically"
                                     f"{' (' + why + ')' if why else ''}\u2026", "error")
            return
        if self._input_lost:
            self._input_lost = False
            self._note_stream(f"Input device {source.name!r} is back.", self.BACK_NOTE_S)
        quiet = wall - max(self._last_data_wall, self._started_wall)
        if quiet > max(self.STALL_S, 4 * self._hop()):
            self._show_stale(True)
            self.banner.show_message(f"No audio from {source.name!r} for {quiet:.0f} s: is the input still "
                                     "connected?", "warning")
        elif self.banner.level == "warning" and self.banner.text.startswith("No audio"):
            self.banner.clear()

    def _update_status(self) -> None:
        s, dim = self.session, theme.TEXT_DIM
        labels = self.status_labels
        source = s.source if self._running_ui else None
        if source is not None:
            state = f" <b style='color:{theme.ERROR}'>LOST</b>" if self._input_lost else ""
            losses = getattr(source, "losses", 0)
            extra = f" · {losses} loss{'es' if losses > 1 else ''}" if losses else ""
            labels["input"].setText(f"<b style='color:{theme.TEXT}'>{source.name}</b>{state} · {source.samplerate} Hz"
                                    f" · {source.channels} ch{extra}")
        else:
            state = "preparing the analysis\u2026" if self._pending_start else "stopped"
            labels["input"].setText(f"<span style='color:{dim}'>{state}</span>")
        if s.model is not None:
            provider = s.model.provider.replace("ExecutionProvider", "")
            labels["model"].setText(f"model <b style='color:{theme.TEXT}'>{s.model.card.name}</b> · {provider}")
        else:
            labels["model"].setText(f"model <span style='color:{theme.ERROR}'>not loaded</span> ({s.model_name})")
        est = self.last_estimate
        if est is not None and self._running_ui:
            color = theme.OK if est.latency_ms < 50 else theme.WARN
            labels["analysis"].setText(f"analysis <b style='color:{color}'>{est.latency_ms:.1f} ms</b>"
                                       f" every {self._hop():.2f} s")
            dropped = s.engine.dropped_s if s.engine is not None else 0.0
            if time.perf_counter() - self._started_wall < self.WARMUP_S:
                self._dropped_base = dropped  # the first seconds include one-off warm-up (JIT, first inference)
            dropped -= self._dropped_base
            color = theme.OK if est.overflows == 0 and dropped == 0 and not self.not_audio else theme.WARN
            extra = f" · dropped {dropped:.1f} s" if dropped else ""
            if self.not_audio:  # a broken driver's NaN is heard as silence: without this, a quiet room
                extra += f" · <b style='color:{theme.WARN}'>{self.not_audio}</b> samples not audio"
            labels["overflows"].setText(f"overflows <b style='color:{color}'>{est.overflows}</b>{extra}")
        else:
            labels["analysis"].setText("analysis –")
            labels["overflows"].setText("overflows –")
        stats = s.osc_stats()
        held = held_labels(s.output_settings)
        if stats:
            note = f" <span style='color:{dim}'>· labels held: {held}</span>" if held else ""
            labels["osc"].setText("OSC " + "  ".join(osc_status_html(d) for d in stats) + note)
        elif planned := self._planned_destinations():
            labels["osc"].setText(f"OSC \u2192 {planned} <span style='color:{dim}'>when started</span>")
        else:
            labels["osc"].setText(f"OSC <span style='color:{dim}'>off</span>")
        labels["osc"].setToolTip(f"The window shows every estimate as it comes; OSC sends shaped values, and holds "
                                 f"the labels ({held}) until a new one has led that long: visuals may show the "
                                 "previous label meanwhile." if stats and held else "")
        self._arrange_status()

    # --------------------------------------------------------------------------------- closing
    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        # Stop the display first so no tick runs against a stopped session, then the engine and OSC. The
        # window goes at once: closing may wait for a first compile that is still running.
        self.hide()
        self.timer.stop()
        self.session.close()
        self._set_running(False)
        super().closeEvent(event)
