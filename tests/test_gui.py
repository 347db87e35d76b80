"""The Qt live monitor (gui/), offscreen, with real widgets, a real engine and real OSC on loopback."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import tomllib
from dataclasses import replace

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any Qt import

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, need_or_skip, triad

try:
    import pyqtgraph  # noqa: F401
    from PyQt6 import QtCore, QtGui, QtWidgets
except ImportError as exc:  # the gui extra; under CI it must be installed
    if os.environ.get("CI"):
        raise
    pytest.skip(f"the gui extra (PyQt6, pyqtgraph) is not installed: {exc}", allow_module_level=True)

if str(ROOT) not in sys.path:  # `gui` is a top-level package beside live_mer, not installed with it
    sys.path.insert(0, str(ROOT))

from gui import app as gui_app  # noqa: E402
from gui import theme  # noqa: E402
from gui.plots import History, Timeline, VAPlane  # noqa: E402
from gui.presets import PRESETS, Preset, from_config  # noqa: E402
from gui.session import DEMO, DEVICE, FILE, Session, SourceChoice  # noqa: E402
from gui.widgets import LevelMeter, MoodBars, chord_display, head_label, key_display  # noqa: E402
from live_mer.harmony import PITCH_CLASSES  # noqa: E402
from gui.window import PREPARING, MainWindow, osc_status_html  # noqa: E402
from live_mer import config as configmod  # noqa: E402
from live_mer.analyzer import Analyzer  # noqa: E402
from live_mer.estimate import Estimate  # noqa: E402
from live_mer.osc import DestinationConfig, OscSender  # noqa: E402
from live_mer.outputs import OutputSettings  # noqa: E402
from live_mer.sources import DemoSource, SourceError  # noqa: E402
from osc_receiver import Receiver  # noqa: E402
from pulse_rig import load_sink, play, pulse_available, unload_sink  # noqa: E402
from tiny_model import GEMS  # noqa: E402


def live_mer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("live_mer")]


def spin(app: QtWidgets.QApplication, condition, timeout: float = 10.0) -> bool:
    """Run the Qt event loop (so the display timer ticks) until ``condition()`` or the timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if condition():
            return True
        time.sleep(0.005)
    return bool(condition())


@pytest.fixture(scope="module")
def qapp():
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    theme.apply(app)
    return app


@pytest.fixture
def progression(tmp_path):
    """6 s: A minor then C major triads."""
    sr = 22050
    path = tmp_path / "progression.wav"
    sf.write(path, np.concatenate([triad(57, True, 3.0, sr), triad(60, False, 3.0, sr)]), sr)
    return path


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def make_window(qapp, tiny_model_path):
    """Build monitor windows on the tiny test model; every estimate is also recorded independently."""
    windows = []

    def make(source: SourceChoice | None = None, model: str | None = None, osc: str = "", hop_s: float = 0.0,
             **kwargs) -> MainWindow:
        recorded: list[Estimate] = []
        session = Session(model=str(model or tiny_model_path), provider="cpu", extra_sinks=[recorded.append],
                          hop_s=hop_s)
        window = MainWindow(session, source, osc=osc, **kwargs)
        window.recorded = recorded
        window.resize(1280, 800)
        window.show()
        qapp.processEvents()
        windows.append(window)
        return window

    yield make
    for w in windows:
        w.close()
    assert live_mer_threads() == []


def test_window_builds_with_all_views_and_controls(make_window):
    w = make_window(SourceChoice(DEMO))
    items = [w.source_combo.itemText(i) for i in range(w.source_combo.count())]
    assert items[:2] == ["Demo piece", "File\u2026"]
    assert w.source_choice() == SourceChoice(DEMO)
    assert [w.preset_combo.itemText(i) for i in range(w.preset_combo.count())] == ["Custom", *PRESETS]
    assert w.banner.isHidden() and w.start_button.text() == "Start"
    labels = {code: item.toPlainText() for code, item in w.va_plane.quadrant_labels.items()}
    assert "happy" in labels["Q1"] and "angry" in labels["Q2"] and "sad" in labels["Q3"] and "calm" in labels["Q4"]
    assert "valence" in w.va_plane.getPlotItem().getAxis("bottom").labelText
    assert "arousal" in w.va_plane.getPlotItem().getAxis("left").labelText
    assert w.chord_panel.chord_label.text() == "N.C." and w.timeline.points() == 0
    assert "stopped" in w.status_labels["input"].text()
    assert w.timer.isActive() and w.timer.interval() == 33  # 30 fps by default
    assert w.minimumSizeHint().width() <= 1024  # fits a 1024 x 768 screen or projector as a window


def tick_labels(axis) -> list[tuple[QtCore.QRectF, str]]:
    """Where a pyqtgraph axis draws its tick labels and what they say, top to bottom (as its paint does)."""
    image = QtGui.QImage(8, 8, QtGui.QImage.Format.Format_ARGB32)
    painter = QtGui.QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return sorted(((rect, text) for rect, _, text in texts), key=lambda label: label[0].center().y())


@pytest.mark.parametrize("size,kiosk", [((1280, 800), True), ((1024, 768), True), ((800, 800), True),
                                        ((800, 600), True), ((1280, 720), False), ((1011, 600), False)])
def test_nothing_is_cut_off_or_drawn_over_at_any_window_size(qapp, make_window, size, kiosk):
    """Small windows and kiosk screens: titles shrink instead of pushing the plots past their frame (which
    cut off the time axis' "now"), the status line takes a second row instead of cutting its parts
    off, the extended chord has its own row instead of being drawn over the confidence bar, the mood
    heat map's names fit their rows (or every other row is named) and the plane's quadrant names do not
    run into each other."""
    w = make_window(SourceChoice(DEMO))
    w.controls.setVisible(not kiosk)  # kiosk mode: the window is as small as the screen
    w.timer.stop()  # the texts below stay as set
    w.chord_panel.update_estimate("F", 0.9, "C major", "8B", "1d", 0.9, "F:maj7", 0.91)
    gems = {g: 0.3 for g in GEMS}
    quadrants = {"Q1": 0.0, "Q2": 0.01, "Q3": 0.18, "Q4": 0.81}
    for i in range(8):
        w.history.append(i * 0.5, Estimate(t=i * 0.5, valence=0.2, arousal=-0.3,
                                           heads={"quadrant": quadrants, "gems": gems}))
    w.timeline.set_data(w.history, 4.0)
    w.va_plane.set_quadrant("Q4", quadrants)
    w.mood.set_values(gems)
    w.tag_bars.set_values({"Calm": 0.5, "Angry": 0.2, "Dreamy": 0.1})
    w.tag_bars.show()  # a model with a tags head: the plane gets less height
    labels = w.status_labels
    labels["input"].setText("<b>Scarlett 2i2 USB: Analog (1+2)</b> · 48000 Hz · 2 ch")
    labels["osc"].setText("OSC " + "  ".join(osc_status_html({"destination": f"192.168.1.{20 + i}:9000", "sent": 1200,
                                                               "errors": 0, "last_error": ""}) for i in range(3)))
    spin(qapp, lambda: False, timeout=0.1)  # the layout takes the hidden controls out
    w.resize(*size)
    spin(qapp, lambda: False, timeout=0.3)
    assert w.width() == size[0]

    t = w.timeline
    left, _, right, _ = t.ci.layout.getContentsMargins()
    for plot in (t.va_plot, t.quad_plot, t.mood_plot):
        assert plot.geometry().width() <= t.width() - left - right + 3  # (at most the smallest titles' overhang)
    va = w.va_plane.getPlotItem()
    for name in ("bottom", "left"):
        assert va.getAxis(name).label.boundingRect().width() <= min(w.va_plane.width(), w.va_plane.height())

    w._arrange_status()
    spin(qapp, lambda: False, timeout=0.1)
    assert w.status_rows >= 2 or size[0] > 800
    assert {n: (l.width(), l.sizeHint().width()) for n, l in labels.items() if l.width() < l.sizeHint().width()} == {}
    assert (labels["osc"].y() > labels["input"].y()) == (w.status_rows > 1)

    panel = w.chord_panel
    assert panel.chord_detail.isVisible() and "Fmaj7" in panel.chord_detail.text()
    assert panel.chord_detail.geometry().bottom() < panel.chord_conf.geometry().top()
    assert panel.chord_detail.height() >= panel.chord_detail.fontMetrics().height()

    axis = t.mood_plot.getAxis("left")
    rows = [rect.center().y() for rect, _ in tick_labels(axis)]
    line = QtGui.QFontMetricsF(axis.style["tickFont"]).height()
    assert len(rows) >= 4 and all(b - a >= line - 0.5 for a, b in zip(rows, rows[1:]))
    va = w.va_plane.quadrant_labels
    drawn = {code: label.textItem.mapRectToScene(label.textItem.boundingRect()) for code, label in va.items()}
    assert not drawn["Q1"].intersects(drawn["Q2"]) and not drawn["Q3"].intersects(drawn["Q4"])

    # A part wider than the window (eight destinations, a long file name) wraps instead of running off its
    # right edge, where the destinations' health and the held labels were cut off.
    labels["input"].setText("<b>" + "Très long nom de fichier (Live at Bürgerhaus) " * 5 + ".wav</b> · 22050 Hz · 1 ch")
    labels["osc"].setText("OSC " + "  ".join(osc_status_html({"destination": f"192.168.1.{20 + i}:9000", "sent": 1200,
                                                               "errors": 0, "last_error": ""}) for i in range(8))
                          + " · labels held: quadrant 1.5 s · chord 0.15 s · key 2 s")
    w._arrange_status()
    spin(qapp, lambda: False, timeout=0.2)
    for name in ("input", "osc"):
        label = labels[name]
        assert label.wordWrap() and label.width() <= w.width(), name
        assert label.height() >= label.heightForWidth(label.width()) > label.fontMetrics().height(), name


def test_the_status_line_counts_input_samples_that_are_not_audio(qapp, make_window, tmp_path):
    """A driver sending NaN is heard as silence: the monitor showed a quiet room and a green status."""
    sr = 22050
    x = triad(57, True, 3.0, sr)
    x[sr:sr + 1000] = np.nan
    path = tmp_path / "broken.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    w = make_window(SourceChoice(FILE, str(path), realtime=False, loop=True))
    assert w.start(), w.banner.text
    assert spin(qapp, lambda: w.not_audio >= 1000)
    w._update_status()
    assert re.search(r"<b style='color:[^']+'>\d+</b> samples not audio", w.status_labels["overflows"].text())
    w.stop()
    assert w.start(), w.banner.text  # counted afresh for a new stream
    assert w.not_audio == 0  # (estimates reach the window only through its timer)


def test_file_estimates_update_plots_labels_and_osc(qapp, make_window, progression, receiver):
    w = make_window(SourceChoice(FILE, str(progression), realtime=False, loop=False), osc=f"127.0.0.1:{receiver.port}")
    assert w.start(), w.banner.text
    assert w.start_button.text() == "Stop"
    assert spin(qapp, lambda: not w.session.running and w.estimates_shown == len(w.recorded) > 0)
    recorded, last = w.recorded, w.recorded[-1]
    assert len(recorded) >= 20  # 6 s at the tiny model's 0.25 s hop

    # Timeline: one point per estimate, in display time; the categorical heads are in the history.
    assert w.timeline.points() == len(recorded)
    _, y = w.timeline.arousal_curve.getData()
    np.testing.assert_allclose(y, [e.arousal for e in recorded])
    assert w.history.columns["quadrant"] == ["Q1", "Q2", "Q3", "Q4"] and len(w.history.columns["gems"]) == 9

    # VA plane: the dot glides to the newest estimate, away from where it started.
    assert w.va_plane.target == pytest.approx((last.valence, last.arousal))
    assert spin(qapp, lambda: np.allclose(w.va_plane.current_point(), w.va_plane.target, atol=1e-3), 3.0)
    assert w.va_plane.current_point() != pytest.approx((0.0, 0.0), abs=0.05)
    assert w.va_plane.quadrant == last.quadrant

    # Chord and key readouts show the last estimate.
    assert last.chord != "N" and w.chord_panel.chord_label.text() == chord_display(last.chord)
    assert last.key_camelot and w.chord_panel.camelot_label.text() == last.key_camelot
    assert w.mood.values == pytest.approx(dict(last.heads["gems"]))
    tags = last.heads["tags"]  # the tiny model's three tags, most probable first
    assert w.tag_bars.isVisible() and list(w.tag_bars.values) == sorted(tags, key=tags.get, reverse=True)

    # Status: input, model, analysis time, and OSC that really arrived.
    status = {k: v.text() for k, v in w.status_labels.items()}
    assert "tiny" in status["model"] and "CPU" in status["model"]
    assert status["analysis"].startswith("analysis")  # the processing time, not called a latency
    assert receiver.wait_for(len(recorded))
    w._update_status()
    assert f"127.0.0.1:{receiver.port}" in w.status_labels["osc"].text()
    assert f"{len(recorded)} sent" in w.status_labels["osc"].text()
    assert receiver.wait_for(len(recorded) + 1)  # the file's end reached the visuals too
    assert [m.address for m in receiver.bundles()[-1]] == ["/mer/status/stopped"]

    # The file ended by itself: the window says so and is ready to start again; the readouts are out of date.
    assert spin(qapp, lambda: w.start_button.text() == "Start", 2.0)
    assert w.banner.level == "info" and "ended" in w.banner.text
    assert w.meter.target_db == w.meter.FLOOR_DB and not w.meter.clipping
    assert w.chord_panel.stale and w.mood.stale and w.va_plane.stale


def test_switching_source_restarts_the_engine_and_presets_and_smoothing_change_it_live(qapp, make_window,
                                                                                      progression, monkeypatch):
    w = make_window(SourceChoice(FILE, str(progression), realtime=False, loop=True), osc="127.0.0.1:9000")
    assert w.start(), w.banner.text
    assert spin(qapp, lambda: w.estimates_shown > 5)
    first_engine = w.session.engine

    w.set_source(SourceChoice(DEMO))  # as picking "Demo piece" does
    assert w.session.starts == 2 and w.session.engine is not first_engine and not first_engine.running
    assert w.session.source.name == "demo" and w.session.running
    shown = w.estimates_shown
    assert spin(qapp, lambda: w.estimates_shown > shown + 2)  # the demo piece, through the same window
    assert w.timeline.points() == w.estimates_shown  # one timeline, continued across the restart
    t = w.history.since(-1e9)[0]
    assert np.all(np.diff(t) > 0)

    # A preset changes the smoothing of the running stream: no restart (a file would start again, the
    # visuals would be told "stopped").
    engine = w.session.engine
    preset = PRESETS["Club (fast)"]
    w.apply_preset("Club (fast)")
    assert w.smoothing_spin.value() == pytest.approx(preset.smoothing_s)
    assert w.history_combo.currentData() == preset.history_s and w.timeline.history_s == preset.history_s
    assert w.session.starts == 2 and w.session.engine is engine and engine.running
    assert w.session.smoothing_s == pytest.approx(preset.smoothing_s)
    assert engine.analyzer._alpha == pytest.approx(1 - np.exp(-engine.analyzer.hop_seconds / preset.smoothing_s))
    # A preset never moves the OSC: the visuals keep receiving where they listen.
    assert w.osc_edit.text() == "127.0.0.1:9000"
    assert w.session.destinations == ("127.0.0.1:9000",) and w.session.running
    for name in PRESETS:
        w.apply_preset(name)
        assert w.osc_edit.text() == "127.0.0.1:9000"

    # Editing OSC alone swaps the sender without restarting the audio.
    old_osc = w.session.osc
    w.osc_edit.setText("127.0.0.1:9001, 127.0.0.1:9002")
    w.osc_edit.editingFinished.emit()
    assert w.session.starts == 2 and w.session.osc is not old_osc
    assert w.session.destinations == ("127.0.0.1:9001", "127.0.0.1:9002")
    assert w.preset_combo.currentText() == "Custom"
    assert old_osc.destinations[0].sock.fileno() == -1  # the old sockets are closed

    # A bad destination is refused in place: red field, banner, the old sender keeps going.
    w.osc_edit.setText("nohost")
    w.osc_edit.editingFinished.emit()
    assert w.osc_edit.property("invalid") is True and "HOST:PORT" in w.banner.text
    assert w.session.destinations == ("127.0.0.1:9001", "127.0.0.1:9002")

    before, carried = w.session.osc, []
    monkeypatch.setattr(OscSender, "continue_shaping", lambda new, old: carried.append((new, old)))
    w.osc_edit.setText("127.0.0.1:9001")
    w.osc_edit.editingFinished.emit()
    assert w.osc_edit.property("invalid") is False and w.session.starts == 2
    # the stream goes on: the destination kept is shaped on from where it was, not afresh
    assert carried == [(w.session.osc, before)]

    # So does a smoothing edit, at once.
    w.smoothing_spin.setValue(2.5)
    assert w.session.smoothing_s == pytest.approx(2.5) and w.session.engine is engine and w.session.starts == 2
    assert engine.analyzer._alpha == pytest.approx(1 - np.exp(-engine.analyzer.hop_seconds / 2.5))
    shown = w.estimates_shown
    assert spin(qapp, lambda: w.estimates_shown > shown + 2)  # and estimates keep coming

    w.stop()  # a start after a stop is a new stream: shaped afresh wherever it goes
    w.osc_edit.setText("127.0.0.1:9001, 127.0.0.1:9004")
    w.osc_edit.editingFinished.emit()
    assert w.start() and w.session.destinations == ("127.0.0.1:9001", "127.0.0.1:9004") and len(carried) == 1


def test_one_receiver_with_two_streams_from_the_configuration_keeps_both(make_window):
    """Two [[osc.destination]] tables for one receiver with different settings are two streams: the field
    lists the receiver twice and both are sent (the second table's settings used to be taken for both). The
    same destination twice with the same settings is refused, as listen refuses it."""
    va = DestinationConfig("127.0.0.1", 9001, rate_hz=60.0, outputs=("va",))
    labels = DestinationConfig("127.0.0.1", 9001, bundle=False, outputs=("chord", "key"))
    w = make_window(osc="127.0.0.1:9001, 127.0.0.1:9001", osc_configs=(va, labels))
    assert w._destinations() == (va, labels)
    w.osc_edit.setText("127.0.0.1:9001, 127.0.0.1:9001, 127.0.0.1:9001")  # a third: plain, a stream of its own
    assert w._destinations() == (va, labels, "127.0.0.1:9001")
    for text in ("127.0.0.1:9002, 127.0.0.1:9002", "127.0.0.1:9001, 127.0.0.1:9001, 127.0.0.1:9002, 127.0.0.1:9002"):
        w.osc_edit.setText(text)
        assert w._destinations() is None and w.osc_edit.property("invalid") is True
        assert "127.0.0.1:9002 is listed twice" in w.banner.text


def test_configuration_presets_reshape_osc_without_a_restart(qapp, make_window, progression):
    cfg = configmod.from_dict(tomllib.loads(configmod.EXAMPLE))  # defines [presets.club] and [presets.ambient]
    presets = {**PRESETS, **from_config(cfg.presets)}
    w = make_window(SourceChoice(FILE, str(progression), realtime=False, loop=True), osc="127.0.0.1:9000",
                    presets=presets)
    assert "club" in [w.preset_combo.itemText(i) for i in range(w.preset_combo.count())]
    assert w.start()
    base = w.session.output_settings  # what the session started with: the configuration's [outputs]
    w.apply_preset("club")
    assert w.session.starts == 1 and w.session.running  # shaping changes live
    assert w.session.osc.settings is cfg.presets["club"] and w.session.output_settings is cfg.presets["club"]
    assert w.session.osc.settings.shape("arousal").attack_ms == 50.0

    # A built-in preset and Custom bring back the shaping the session started with.
    w.apply_preset("Club (fast)")
    assert w.session.osc.settings is base and w.preset_combo.currentText() == "Club (fast)"
    w.apply_preset("ambient")
    assert w.session.osc.settings is cfg.presets["ambient"]
    w.apply_preset("Custom")
    assert w.session.osc.settings is base

    # Every change by hand makes the picker say Custom; a preset's own changes do not.
    w.apply_preset("Installation")
    assert w.history_combo.currentData() == 120 and w.preset_combo.currentText() == "Installation"
    i = w.history_combo.findData(30)
    w.history_combo.setCurrentIndex(i)
    w.history_combo.activated.emit(i)  # as picking it does
    assert w.timeline.history_s == 30 and w.preset_combo.currentText() == "Custom"


def test_the_status_line_says_which_osc_labels_are_held(qapp, make_window, progression):
    """The window shows every estimate; OSC holds its labels (quadrant, key, chord) for a while: the status
    line says which and how long, from the shaping in use."""
    w = make_window(SourceChoice(FILE, str(progression), realtime=False, loop=True), osc="127.0.0.1:9000",
                    presets={**PRESETS, "slow keys": Preset(outputs=OutputSettings().with_shape(
                        "key", hold_ms=4000).with_mute("chord", True))})
    assert w.start()
    w._update_status()
    osc = w.status_labels["osc"]
    assert "held: quadrant 1.5 s \u00b7 chord 0.15 s \u00b7 key 2 s" in osc.text()
    assert "previous label" in osc.toolTip()
    w.apply_preset("slow keys")
    w._update_status()
    assert "held: quadrant 1.5 s \u00b7 key 4 s" in osc.text()  # a muted chord is not sent at all


def test_command_line_flags_win_over_the_preset(qapp, tiny_model_path, monkeypatch):
    seen = {}

    def inspect_and_close():
        window = next(x for x in qapp.topLevelWidgets() if isinstance(x, MainWindow) and x.isVisible())
        seen[len(seen)] = (window.smoothing_spin.value(), window.timeline.history_s, window.preset_combo.currentText())
        window.close()

    monkeypatch.setattr(sys, "argv", ["gui"])
    base = ["--model", str(tiny_model_path), "--demo", "--no-start", "--preset", "Club (fast)"]
    for flags in ([], ["--smoothing", "2.5", "--history", "600"], ["--smoothing", "45"]):
        QtCore.QTimer.singleShot(300, inspect_and_close)
        assert gui_app.main([*base, *flags]) == 0
    assert seen == {0: (0.3, 30, "Club (fast)"), 1: (2.5, 600, "Custom"), 2: (45.0, 30, "Custom")}


def lit(bars: MoodBars) -> bool:
    """Whether the strongest of the bars is drawn in its full colour (not faded as out of date)."""
    highlight = QtGui.QColor(theme.INFO).rgb()
    image = bars.grab().toImage()
    return any(image.pixel(x, y) == highlight for x in range(0, image.width(), 2) for y in range(0, image.height(), 2))


def test_stopped_and_ended_streams_look_out_of_date_and_a_start_clears_the_note(qapp, make_window, progression):
    """After Stop or a file's end the meter falls to its floor and the readouts dim; a new start clears the
    "... ended." note and the readouts light up again with the first estimates."""
    w = make_window(SourceChoice(DEMO))
    assert w.start() and spin(qapp, lambda: w.estimates_shown > 2)
    assert w.meter.target_db == pytest.approx(np.clip(w.last_estimate.loudness_db, w.meter.FLOOR_DB, 0.0))
    assert lit(w.mood) and w.va_plane.dot.opacity() == 1.0
    w.stop()
    spin(qapp, lambda: False, timeout=0.3)  # estimates drained after the stop do not light anything up again
    assert w.meter.target_db == w.meter.FLOOR_DB and not lit(w.mood) and not lit(w.tag_bars)
    assert w.chord_panel.key_label.property("dim") and w.chord_panel.chord_label.property("dim")
    assert w.va_plane.dot.opacity() == theme.STALE_OPACITY
    for _ in range(5):
        w.meter.advance(1.0)
    assert w.meter.rms_db == w.meter.hold_db == w.meter.FLOOR_DB
    clipped = w.meter.clipped_total
    w._take([replace(w.last_estimate, loudness_db=-3.0, peak=1.0, clipped=5)])  # a loud one drained after the stop
    assert w.meter.rms_db == w.meter.hold_db == w.meter.target_db == w.meter.FLOOR_DB
    assert w.meter.clipped_total == clipped and not w.meter.clipping

    w.set_source(SourceChoice(FILE, str(progression), realtime=False, loop=False))
    assert w.start() and spin(qapp, lambda: w.start_button.text() == "Start", 10.0)
    assert w.banner.level == "info" and "progression.wav ended" in w.banner.text and not lit(w.mood)
    w.set_source(SourceChoice(DEMO))
    assert w.start() and w.banner.isHidden()  # the note was about the stream that ended
    assert spin(qapp, lambda: lit(w.mood) and w.va_plane.dot.opacity() == 1.0)


class FlakyDevice(DemoSource):
    """The demo as a sound card that is lost from 0.5 s after its first check until the test sets ``back``
    (the engine then feeds silence, as for a real device)."""

    def __init__(self):
        super().__init__()
        self.name = "USB mic"
        self.first = None
        self.back = threading.Event()

    def check(self, now: float) -> str:
        self.first = self.first or now
        if self.back.is_set():
            return "recovered"
        return "lost" if now - self.first >= 0.5 else "ok"


class StallingDevice(DemoSource):
    """The demo as a sound card whose audio stops after a second, without an error."""

    name = "USB mic"

    def _blocks(self):
        for i, block in enumerate(super()._blocks()):
            if i * self.block_frames >= self.samplerate:
                self._stop.wait()
                return
            yield block


def test_a_lost_device_dims_the_readouts_and_its_return_is_noted_briefly(qapp, make_window, monkeypatch):
    device = FlakyDevice()
    monkeypatch.setattr(SourceChoice, "open", lambda self, **kw: device)
    w = make_window(SourceChoice(DEVICE, "USB mic"))
    w.BACK_NOTE_S = 0.5
    assert w.start()
    assert spin(qapp, lambda: w.banner.level == "error" and "lost" in w.banner.text)
    assert spin(qapp, lambda: not lit(w.mood), 2.0) and w.chord_panel.stale  # the silence fed meanwhile is no news
    device.back.set()  # the device returns only once the loss has been seen
    assert spin(qapp, lambda: w.banner.level == "info" and "is back" in w.banner.text, 5.0)
    assert spin(qapp, lambda: lit(w.mood), 2.0) and not w.chord_panel.stale
    assert spin(qapp, lambda: w.banner.isHidden(), 2.0) and w.running  # a kiosk has no pointer to dismiss it


def test_a_stalled_input_dims_the_readouts_until_audio_flows_again(qapp, make_window, monkeypatch):
    monkeypatch.setattr(SourceChoice, "open", lambda self, **kw: StallingDevice())
    w = make_window(SourceChoice(DEVICE, "USB mic"))
    w.STALL_S = 0.5  # (the tiny model's 0.25-s hop: warned after 1 s without an estimate)
    assert w.start() and spin(qapp, lambda: w.estimates_shown > 0)
    assert lit(w.mood) and w.meter.target_db > w.meter.FLOOR_DB
    assert spin(qapp, lambda: w.banner.level == "warning" and w.banner.text.startswith("No audio"), 5.0)
    assert not lit(w.mood) and w.meter.target_db == w.meter.FLOOR_DB and w.chord_panel.stale and w.running


def test_the_plane_shows_no_dot_and_the_status_says_where_osc_will_go_before_a_start(qapp, make_window, progression):
    w = make_window(SourceChoice(FILE, str(progression), realtime=False, loop=False), osc="127.0.0.1:9000",
                    smoothing_s=45.0)
    assert not w.va_plane.dot.isVisible()  # no estimate yet: a dot at (0, 0) would read as "neutral"
    osc = w.status_labels["osc"].text()
    assert "OSC \u2192 127.0.0.1:9000" in osc and "when started" in osc
    assert w.smoothing_spin.value() == 45.0  # what the configuration allows (0..60 s), not clamped
    assert w.start() and spin(qapp, lambda: w.estimates_shown > 0)
    assert w.va_plane.dot.isVisible()


def test_the_first_estimate_puts_the_dot_in_place_and_later_ones_glide(qapp):
    # On the plane itself: in a running window a second estimate can arrive before the check.
    plane = VAPlane()
    try:
        plane.set_estimates(np.array([[-0.5, 0.4]]), "Q2", {})
        assert plane.dot.isVisible() and plane.current_point() == pytest.approx((-0.5, 0.4))
        plane.set_estimates(np.array([[-0.5, 0.4], [0.5, -0.4]]), "Q4", {})
        assert plane.current_point() == pytest.approx((-0.5, 0.4))  # no jump: it glides on the next frames
        plane.advance(0.05)
        x, y = plane.current_point()
        assert -0.5 < x < 0.5 and -0.4 < y < 0.4
    finally:
        plane.close()


@pytest.fixture
def timeline(qapp):
    """A timeline on its own, closed afterwards (a window left open would keep a later app.exec() running)."""
    t = Timeline(60)
    yield t
    t.close()


def test_the_mood_heat_map_is_on_an_absolute_scale_in_the_bars_order(qapp, timeline):
    """Silence (every mood weak) is dark, not as bright as music; the first mood is on top, as in the bars."""
    t = timeline
    t.resize(700, 700)
    t.show()
    h = History(64)
    for i in range(40):
        gems = {g: 0.05 for g in GEMS} if i < 20 else {g: 0.9 if g == GEMS[0] else 0.1 for g in GEMS}
        h.append(i * 0.5, Estimate(t=i * 0.5, valence=0.0, arousal=0.0, heads={"gems": gems}))
    t.set_data(h, 20.0)
    spin(qapp, lambda: False, timeout=0.3)
    assert [text for _, text in tick_labels(t.mood_plot.getAxis("left"))] == [head_label(g) for g in GEMS]
    image = t.grab().toImage()
    vb = t.mood_plot.getViewBox()

    def brightness(seconds: float, row: int) -> int:
        p = vb.mapViewToScene(QtCore.QPointF(seconds - 20.0, row + 0.5))
        return QtGui.QColor(image.pixel(int(p.x()), int(p.y()))).lightness()

    assert vb.mapViewToScene(QtCore.QPointF(0, 0.5)).y() < vb.mapViewToScene(QtCore.QPointF(0, 8.5)).y()
    assert brightness(15.0, 0) > 150 and brightness(15.0, 8) < 80  # music: the strong mood bright
    assert all(brightness(5.0, row) < 60 for row in range(len(GEMS)))  # silence: dark


def test_missing_model_is_shown_in_the_banner(make_window, tmp_path):
    w = make_window(SourceChoice(DEMO), model=str(tmp_path / "no_such_model.onnx"))
    assert w.start() is False
    assert w.banner.isVisible() and w.banner.level == "error"
    assert w.banner.text.startswith("Model not loaded") and "no_such_model" in w.banner.text
    assert "not loaded" in w.status_labels["model"].text()
    assert w.start_button.text() == "Start" and not w.session.running


def test_app_opens_the_window_even_without_a_model(qapp, tmp_path, monkeypatch):
    seen = {}

    def inspect_and_close():
        window = next(x for x in qapp.topLevelWidgets() if isinstance(x, MainWindow) and x.isVisible())
        seen["banner"], seen["source"] = window.banner.text, window.source_choice()
        window.close()

    monkeypatch.setattr(sys, "argv", ["gui"])
    QtCore.QTimer.singleShot(300, inspect_and_close)
    code = gui_app.main(["--model", str(tmp_path / "missing.onnx"), "--demo", "--fps", "20"])
    assert code == 0
    assert seen["banner"].startswith("Model not loaded") and "missing" in seen["banner"]
    assert seen["source"] == SourceChoice(DEMO)
    assert live_mer_threads() == []


def test_the_monitor_program_exits_cleanly(tmp_path, tiny_model_path):
    """The real program, as a user runs it (a 44.1 kHz file, so the resampler is in use): a screenshot,
    exit status 0 and nothing on stderr about leaked objects (nanobind reported the resampler on every exit)."""
    import subprocess

    song = tmp_path / "song.wav"
    sf.write(song, triad(57, True, 4.0, 44100), 44100)
    shot = tmp_path / "shot.png"
    r = subprocess.run([sys.executable, "-m", "live_mer", "gui", "--file", str(song), "--model", str(tiny_model_path),
                        "--screenshot", str(shot), "--screenshot-after", "2"], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, r.stderr
    assert QtGui.QImage(str(shot)).width() > 500
    assert "leaked" not in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_the_monitor_stops_cleanly_on_sigterm_and_a_closed_terminal(tiny_model_path, sig):
    """SIGTERM (a kiosk's systemd unit stopped, a shutdown) and SIGHUP (its terminal closed) killed the monitor at
    once: the visuals never got /status/stopped and froze on the last frame. They close the window as Ctrl-C does."""
    import signal
    import subprocess

    rx = Receiver()
    try:
        p = subprocess.Popen([sys.executable, "-m", "gui", "--demo", "--model", str(tiny_model_path), "--osc",
                              f"127.0.0.1:{rx.port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        assert rx.wait_for(2, timeout=60)
        p.send_signal(getattr(signal, sig))
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0 and "Traceback" not in err, (p.returncode, err)
        assert any(b"/mer/status/stopped" in d for d in rx.datagrams)
    finally:
        rx.close()


def test_engine_error_during_playback_reaches_the_banner(qapp, make_window, progression):
    # The file disappears while it plays (like a device being unplugged): the looped source fails on
    # its next pass, the engine stops with that error, and the window shows it.
    w = make_window(SourceChoice(FILE, str(progression), realtime=False, loop=True))
    assert w.start()
    progression.unlink()
    assert spin(qapp, lambda: w.banner.level == "error", 10.0)
    assert w.banner.text.startswith("Analysis stopped") and "progression.wav" in w.banner.text
    assert w.start_button.text() == "Start" and w.session.error is not None


def test_unplayable_file_is_an_error_in_the_banner(make_window, tmp_path):
    bad = tmp_path / "not_audio.wav"
    bad.write_text("this is not audio")
    w = make_window(SourceChoice(FILE, str(bad)))
    assert w.start() is False
    assert w.banner.text.startswith("Cannot play file") and "not_audio.wav" in w.banner.text


def test_sound_card_input_and_device_loss(qapp, make_window):
    # Through the PulseAudio rig: pick the "pulse" capture device by name, hear a chord, then unplug it.
    need_or_skip(pulse_available(), "the PulseAudio test rig is not running (bash scripts/pulse_rig.sh start)")
    w = make_window(SourceChoice(DEMO))
    w.refresh_devices(rescan=True)  # as opening the picker does: PortAudio sees the rig's devices
    names = [w.source_combo.itemText(i) for i in range(w.source_combo.count())]
    assert "pulse" in names and "Default input" in names
    w.set_source(w.source_combo.itemData(names.index("pulse")))
    assert w.source_choice() == SourceChoice(DEVICE, "pulse")
    assert w.start(), w.banner.text
    assert w.session.source.name == "pulse"
    player = play(triad(57, True, 4.0, 48000, amp=0.3), 48000)
    try:
        assert spin(qapp, lambda: w.chord_panel.chord_label.text() == "Am", 10.0)
    finally:
        player.wait(timeout=20)
    assert f"{w.session.source.samplerate} Hz" in w.status_labels["input"].text()
    unload_sink()
    try:
        assert spin(qapp, lambda: w.banner.level == "error", 8.0)
        assert "pulse" in w.banner.text
        assert "lost: reopening it automatically" in w.banner.text and w.session.running
        assert "LOST" in w.status_labels["input"].text()
    finally:
        load_sink()
    assert spin(qapp, lambda: w.banner.level == "info", 15.0)  # the device came back, nobody pressed a key
    assert "is back" in w.banner.text and w.start_button.text() == "Stop"
    assert "LOST" not in w.status_labels["input"].text() and "1 loss" in w.status_labels["input"].text()


def test_the_status_line_does_not_jump_between_rows_as_numbers_change(qapp, make_window):
    w = make_window(SourceChoice(DEMO))
    w.controls.hide()
    w.timer.stop()
    labels = w.status_labels
    labels["analysis"].setText("analysis 1.2 ms")
    spin(qapp, lambda: False, timeout=0.1)
    one_row = sum(label.sizeHint().width() for label in labels.values()) + 12 * 5 + 20
    w.resize(one_row + 5, 700)  # just wide enough for one row
    spin(qapp, lambda: False, timeout=0.2)
    w._arrange_status()
    assert w.status_rows == 1
    labels["analysis"].setText("analysis 12.3 ms")  # a little wider: it no longer fits
    w._arrange_status()
    assert w.status_rows == 2
    labels["analysis"].setText("analysis 1.2 ms")  # fits again, but without room to spare: stays
    w._arrange_status()
    assert w.status_rows == 2
    w.resize(one_row + 60, 700)  # room to spare: one row again
    spin(qapp, lambda: False, timeout=0.2)
    w._arrange_status()
    assert w.status_rows == 1


def test_an_unexpected_start_error_is_shown_not_raised(qapp, make_window, monkeypatch):
    def broken(self):
        raise RuntimeError("the kernels could not be compiled")

    monkeypatch.setattr(Analyzer, "warm_up", broken)
    w = make_window(SourceChoice(DEMO))
    w.session.load()
    w.session.prepare()  # fails in the background: logged, and the start says why
    assert spin(qapp, lambda: w.session.ready)
    assert w.start() is False
    assert w.banner.text == "Cannot start the analysis: the kernels could not be compiled"
    assert not w.session.running and w.start_button.text() == "Start"


@pytest.fixture
def slow_compile(monkeypatch):
    """The analyzer's warm-up waits until the test sets the returned event: a cold Numba cache, whose
    compile takes 10-20 s, on demand."""
    gate = threading.Event()
    real = Analyzer.warm_up

    def warm_up(self):
        gate.wait(30)
        return real(self)

    monkeypatch.setattr(Analyzer, "warm_up", warm_up)
    yield gate
    gate.set()


def test_first_start_waits_for_the_compile_without_freezing_the_window(qapp, make_window, slow_compile):
    w = make_window(SourceChoice(DEMO))
    note = "No input device found. Playing the demo piece."
    w.banner.show_message(note, "info")
    w.session.load()
    w.session.prepare()  # as the program does at launch
    assert not w.session.ready
    t0 = time.monotonic()
    assert w.start() is True
    assert time.monotonic() - t0 < 5  # a start that waited for the compile would take the gate's 30 s
    assert w.start_button.text() == "Starting\u2026" and w.banner.text == PREPARING
    assert "preparing" in w.status_labels["input"].text()
    spin(qapp, lambda: False, timeout=0.5)  # the display keeps running; nothing starts yet
    assert not w.session.running and not w.running and w.estimates_shown == 0
    slow_compile.set()
    assert spin(qapp, lambda: w.estimates_shown > 0)
    assert w.running and w.start_button.text() == "Stop"
    assert w.banner.text == note  # what the banner said before comes back


def test_closing_during_the_first_compile_hides_the_window_at_once(qapp, make_window, slow_compile):
    w = make_window(SourceChoice(DEMO))
    w.session.load()
    w.session.prepare()
    assert w.start() is True
    seen = {}

    def later():  # while close() waits for the compile
        time.sleep(0.5)
        seen["visible"] = w.isVisible()
        slow_compile.set()

    helper = threading.Thread(target=later)
    helper.start()
    w.close()
    helper.join()
    assert seen["visible"] is False and w.session.ready and not w.session.running


def test_stop_while_preparing_cancels_the_start(qapp, make_window, slow_compile):
    w = make_window(SourceChoice(DEMO))
    w.session.load()
    w.session.prepare()
    assert w.start() is True and w.start() is True  # pressed twice: still one pending start
    w.toggle()  # Space / the button again: cancel
    assert w.start_button.text() == "Start" and not w.banner.isVisible()
    assert w.status_labels["input"].text().endswith("stopped</span>")
    slow_compile.set()
    assert spin(qapp, lambda: w.session.ready)
    spin(qapp, lambda: False, timeout=0.5)
    assert not w.session.running and w.estimates_shown == 0
    assert w.start() and spin(qapp, lambda: w.estimates_shown > 0)  # and a later Start works at once


def test_a_shorter_hop_reaches_the_window(qapp, make_window, progression):
    w = make_window(SourceChoice(FILE, str(progression), realtime=False, loop=False), hop_s=0.1)
    # every estimate drawn (not only some: the last display tick may come after the stream ended)
    assert w.start() and spin(qapp, lambda: not w.session.running and w.estimates_shown == len(w.recorded) > 0)
    times = [e.t for e in w.recorded]
    assert np.median(np.diff(times)) == pytest.approx(w.session.hop_seconds) and w.session.hop_seconds < 0.1
    assert len(times) >= 55  # 6 s of audio
    assert w.history.capacity * w.session.hop_seconds >= 600  # the longest timeline at this hop
    step = round(VAPlane.TRAIL_S / VAPlane.TRAIL / w.session.hop_seconds)  # the trail spans seconds, not estimates
    assert step > 1 and len(w.va_plane.trail.data) == len(range(len(times) - 1, -1, -step))
    rounded = make_window(SourceChoice(FILE, str(progression), realtime=False, loop=False), hop_s=0.0348)
    assert rounded.start() and rounded.session.hop_seconds < 0.025  # rounded down to one 23-ms frame
    assert rounded.history.capacity * rounded.session.hop_seconds >= 600
    bad = make_window(SourceChoice(DEMO), hop_s=25.0)  # longer than the model's window
    assert bad.start() is False and bad.banner.text.startswith("Invalid setting: hop 25.0 s is not allowed")
    assert not bad.session.running


def test_the_program_refuses_a_hop_the_model_does_not_allow(qapp, tiny_model_path, monkeypatch):
    seen = {}

    def inspect_and_close():
        window = next(x for x in qapp.topLevelWidgets() if isinstance(x, MainWindow) and x.isVisible())
        seen["banner"], seen["running"] = window.banner.text, window.running or window._pending_start
        window.close()

    monkeypatch.setattr(sys, "argv", ["gui"])
    QtCore.QTimer.singleShot(500, inspect_and_close)
    assert gui_app.main(["--model", str(tiny_model_path), "--demo", "--hop", "25"]) == 0
    assert seen["banner"].startswith("--hop / analysis.hop_s: hop 25.0 s is not allowed") and not seen["running"]
    assert gui_app.main(["--model", str(tiny_model_path), "--demo", "--hop", "-1"]) == 2


def test_kiosk_mode_hides_controls_and_goes_full_screen(qapp, make_window):
    w = make_window(SourceChoice(DEMO))
    w.toggle_kiosk()
    assert w.isFullScreen() and w.controls.isHidden()
    assert w.cursor().shape() == QtCore.Qt.CursorShape.BlankCursor
    w.leave_kiosk()
    assert not w.isFullScreen() and not w.controls.isHidden()
    assert w.cursor().shape() != QtCore.Qt.CursorShape.BlankCursor

    # The window manager ends the full screen (a display change, say): Esc still brings the controls back.
    w.enter_kiosk()
    w.showNormal()
    spin(qapp, lambda: False, timeout=0.2)
    assert not w.isFullScreen() and w.controls.isHidden()
    w.leave_kiosk()
    assert not w.controls.isHidden() and w.cursor().shape() != QtCore.Qt.CursorShape.BlankCursor
    w.enter_kiosk()
    w.showNormal()
    w.toggle_kiosk()  # F11 too
    assert not w.controls.isHidden() and not w.isFullScreen()


def test_close_stops_the_stream_and_leaves_no_thread(qapp, make_window):
    before = set(threading.enumerate())
    w = make_window(SourceChoice(DEMO), osc="127.0.0.1:9000")
    assert w.start()
    assert spin(qapp, lambda: w.estimates_shown > 0)
    assert live_mer_threads()
    osc = w.session.osc
    w.close()
    assert not w.session.running and not w.timer.isActive()
    assert osc.destinations and all(d.sock.fileno() == -1 for d in osc.destinations)
    assert live_mer_threads() == [] and set(threading.enumerate()) <= before


def test_history_keeps_the_newest_rows_in_order():
    h = History(capacity=8)
    heads = {"quadrant": {"Q1": 0.1, "Q2": 0.2, "Q3": 0.3, "Q4": 0.4}}
    for i in range(30):
        h.append(float(i), Estimate(t=i, valence=i / 100, arousal=-i / 100, heads=heads))
    t, va, cols = h.since(-1.0)
    assert list(t) == list(range(22, 30)) and len(h) == 8
    np.testing.assert_allclose(va[:, 0], np.arange(22, 30) / 100)
    np.testing.assert_allclose(cols["quadrant"][-1], [0.1, 0.2, 0.3, 0.4])
    assert list(h.since(27.5)[0]) == [28.0, 29.0]
    np.testing.assert_allclose(h.tail(3)[:, 1], [-0.27, -0.28, -0.29])


def test_readouts_speak_like_musicians_and_meters(qapp):
    labels = ("A:min", "C:maj", "Eb:maj", "F#:min", "G:7", "A:min7", "B:dim", "D:sus4", "N")
    assert [chord_display(c) for c in labels] == ["Am", "C", "E\u266d", "F\u266fm", "G7", "Am7", "Bdim", "Dsus4",
                                                  "N.C."]
    assert key_display("Bb minor") == "B\u266d minor" and key_display("") == "\u2014"
    # spelled in the key being played: the labels' one spelling per pitch class read "C#" as IV of A♭ major,
    # "Ab" as V of C♯ minor and as iii of E major, and named 3B "C# major" (musicians and DJ software: D♭)
    assert [chord_display(c, "Ab major") for c in ("Ab:maj", "C#:maj", "Eb:7", "F:min")] == \
        ["A\u266d", "D\u266d", "E\u266d7", "Fm"]
    assert [chord_display(c, "C# minor") for c in ("C#:min", "F#:min", "Ab:maj")] == ["C\u266fm", "F\u266fm", "G\u266f"]
    assert chord_display("Ab:min", "E major") == "G\u266fm" and chord_display("Bb:maj", "C major") == "B\u266d"
    # A minor has C major's signature: the five other pitch classes as the labels have them, not as sharps
    assert [chord_display(c, "A minor") for c in ("Bb:maj", "Eb:maj", "C#:min")] == ["B\u266d", "E\u266d", "C\u266fm"]
    assert key_display("C# major") == "D\u266d major" and key_display("Ab minor") == "G\u266f minor"
    assert key_display("F# major") == "F\u266f major" and key_display("Eb minor") == "E\u266d minor"
    for pc in range(12):  # every key's seven degrees take seven letters: one spelling of the key signature
        for mode, steps in (("major", (0, 2, 4, 5, 7, 9, 11)), ("minor", (0, 2, 3, 5, 7, 8, 10))):
            key = f"{PITCH_CLASSES[pc]} {mode}"
            names = [chord_display(f"{PITCH_CLASSES[(pc + s) % 12]}:maj", key) for s in steps]
            assert len({n[0] for n in names}) == 7 and not ({"\u266f", "\u266d"} <= set("".join(names))), (key, names)
    meter = LevelMeter()
    meter.set_level(-12.0, 0.0, clipped=5)
    assert meter.clipping and meter.rms_db == -12.0 and meter.peak_db == 0.0
    meter.set_level(-40.0, -40.0, clipped=0)
    meter.advance(0.5)  # the bar falls with ballistics, not at once
    assert -40.0 < meter.rms_db < -12.0 and meter.clipping
    meter.advance(LevelMeter.CLIP_HOLD_S)
    assert not meter.clipping and meter.clipped_total == 5


def test_mood_bars_are_drawn_on_an_absolute_scale(qapp):
    """A full bar is 1: five tags at 0.1 in silence must not look like one at 0.9 in music."""
    def bar_px(values):
        bars = MoodBars("TAGS")
        bars.resize(400, 80)
        bars.set_values(values)
        image = bars.grab().toImage()
        highlight = QtGui.QColor(theme.INFO).rgb()
        y = 30 + (80 - 36) // 2  # the middle of the only row
        return sum(image.pixel(x, y) == highlight for x in range(image.width()))

    full, quiet, strong = bar_px({"Calm": 1.0}), bar_px({"Calm": 0.1}), bar_px({"Calm": 0.9})
    assert full > 100
    assert quiet == pytest.approx(0.1 * full, abs=8) and strong == pytest.approx(0.9 * full, abs=8)


def test_osc_status_says_nothing_listening_only_while_refused():
    base = {"destination": "127.0.0.1:9000", "dropped": 0}
    refused = osc_status_html({**base, "sent": 10, "errors": 9, "last_error": "Connection refused", "refused": True})
    assert "nothing listening" in refused and theme.WARN in refused
    recovered = osc_status_html({**base, "sent": 50, "errors": 9, "last_error": "Connection refused", "refused": False})
    assert "nothing listening" not in recovered and "50 sent" in recovered and theme.OK in recovered
    full = osc_status_html({**base, "sent": 50, "errors": 2, "last_error": "No buffer space", "refused": False})
    assert "No buffer space" in full and theme.WARN in full


def test_a_hung_audio_device_is_remembered_for_the_exit(tiny_model_path):
    """A source whose PortAudio call never returned (DeviceSource.stuck) makes the session say so, so the
    app ends the process at once rather than in PortAudio's exit handler, which would wait for ever."""

    class HungSource:
        stuck = False

        def stop(self):
            self.stuck = True  # what DeviceSource.stop sets when its close does not return in time

    session = Session(model=str(tiny_model_path))
    session.source = HungSource()
    session.stop()
    assert session.audio_hung
    session.source = None
    session.stop()
    assert session.audio_hung  # it stays: the process's PortAudio is still unusable
    with pytest.raises(SourceError, match="stopped responding"):  # no new PortAudio call on a stuck PortAudio
        session.start(SourceChoice(DEVICE, ""), 0.0, ())


@pytest.mark.parametrize("args,needle", [
    (["--smoothing", "-1"], "error: --smoothing -1.0 is not allowed: 0..60 seconds"),  # the spin box clamped it
    (["--prefix", "bad prefix"], "error: --prefix: OSC prefix 'bad prefix' must start with '/'"),
    (["--osc", "osc://1.2.3.4:9000"], "error: --osc: OSC destination 'osc://1.2.3.4:9000': give HOST:PORT"),
])
def test_bad_flags_are_refused_before_the_window_opens(tiny_model_path, capsys, args, needle):
    assert gui_app.main(["--model", str(tiny_model_path), "--demo", *args]) == 2
    assert needle in capsys.readouterr().err


def test_the_monitor_takes_the_configuration_files_source_model_and_analysis_keys(qapp, tiny_model_path, tmp_path,
                                                                                   monkeypatch, capsys):
    """source.samplerate / channels / blocksize, model.threads and analysis.max_backlog_s reach the monitor's
    session; record.path and [control], which only listen does, are named instead of dropped silently."""
    import gui.session as session_module

    cfg = tmp_path / "room.toml"
    cfg.write_text(f"[source]\nsamplerate = 32000\nchannels = 1\nblocksize = 256\n[model]\nname = '{tiny_model_path}'\n"
                   "provider = 'cpu'\nthreads = 2\n[analysis]\nmax_backlog_s = 2.5\n[record]\npath = 'show.csv'\n"
                   "[control]\nenabled = true\n")
    seen = {}

    def inspect_and_close():
        window = next(x for x in qapp.topLevelWidgets() if isinstance(x, MainWindow) and x.isVisible())
        s = window.session
        seen.update(threads=s.threads, backlog=s.max_backlog_s, device=s.device_settings)
        window.close()

    monkeypatch.setattr(sys, "argv", ["gui"])
    QtCore.QTimer.singleShot(1500, inspect_and_close)
    assert gui_app.main(["--config", str(cfg), "--demo"]) == 0
    assert seen["threads"] == 2 and seen["backlog"] == 2.5
    assert seen["device"] == {"samplerate": 32000, "channels": 1, "blocksize": 256}
    err = capsys.readouterr().err
    assert "record.path is for `live-mer listen`" in err and "control.enabled is for `live-mer listen`" in err
    assert not (tmp_path / "show.csv").exists()

    opened = {}
    monkeypatch.setattr(session_module, "DeviceSource", lambda name, **kw: opened.update(name=name, **kw))
    SourceChoice(DEVICE, "pulse").open(**seen["device"])
    assert opened == {"name": "pulse", "samplerate": 32000, "channels": 1, "blocksize": 256}


def test_without_qt_the_message_names_a_command_that_works_in_any_install():
    """The hint was a checkout's (`.venv/bin/pip install -e '.[gui]'`, `bash scripts/setup.sh test`): from a wheel
    or pipx install it failed, or installed whatever project the working folder held."""
    import subprocess

    code = "import sys; sys.modules['PyQt6'] = None; sys.argv = ['gui']; from gui.app import main; sys.exit(main())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and f"`{sys.executable} -m pip install PyQt6 pyqtgraph`" in r.stderr, r.stderr
