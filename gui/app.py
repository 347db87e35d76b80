"""Command line and QApplication for the monitor: ``python -m gui [options]`` (``live-mer gui``)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from live_mer import __version__
from live_mer import config as configmod
from live_mer.analyzer import hop_frames
from live_mer.cli import stop_signals
from live_mer.model import DEFAULT_MODEL, PROVIDER_CHOICES, ModelError
from live_mer.sources import exit_after_audio_hang

from .presets import PRESETS, from_config
from .session import DEMO, DEVICE, FILE, Session, SourceChoice


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="live-mer gui", description="Live monitor: valence/arousal, moods, chord and key, level, OSC status.",
        epilog="Keys: F11 full screen (kiosk), Esc leave full screen, Space start/stop, Ctrl+Q quit.")
    p.add_argument("--version", action="version", version=f"live_mer {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--device", help="input device: part of its name, or its index (see `live-mer devices`)")
    src.add_argument("--file", help="play an audio file in real time (looped)")
    src.add_argument("--demo", action="store_true", help="play the built-in demo piece")
    p.add_argument("--model", help=f"model name in models/ or path to an .onnx with its .json card "
                                   f"(default {DEFAULT_MODEL})")
    p.add_argument("--provider", choices=PROVIDER_CHOICES, help="onnxruntime execution provider")
    p.add_argument("--osc", action="append", metavar="HOST:PORT", help="OSC destination (repeatable)")
    p.add_argument("--prefix", help="OSC address prefix (default /mer)")
    p.add_argument("--hop", type=float, metavar="S", help="seconds between estimates (default: the model's, "
                                                         "0.51 s), rounded to whole 23-ms feature frames; 0.1: the "
                                                         "level follows about 4x, chords 2x sooner")
    p.add_argument("--smoothing", type=float, help="smoothing of the estimates, seconds (what the monitor shows "
                                                    "and OSC receives; OSC outputs are also shaped, see --config)")
    p.add_argument("--preset", help=f"start with a preset: {', '.join(PRESETS)}, or a [presets.<name>] "
                                    "of the configuration file")
    p.add_argument("--config", help="TOML configuration file (see `live-mer config --example`)")
    p.add_argument("--kiosk", action="store_true", help="start full screen without controls (F11 toggles)")
    p.add_argument("--fps", type=float, default=30.0, help="display rate, 1..60 frames per second (default 30)")
    p.add_argument("--history", type=int, metavar="S", help="timeline length in seconds (default 60)")
    p.add_argument("--no-start", action="store_true", help="open the window without starting the analysis")
    p.add_argument("--screenshot", metavar="PNG", help="save a picture of the window after --screenshot-after "
                                                      "seconds, then quit (for docs and bug reports)")
    p.add_argument("--screenshot-after", type=float, default=10.0, metavar="S", help="default 10")
    p.add_argument("--size", default="1280x800", metavar="WxH", help="window size (default 1280x800)")
    return p


def _source(args, cfg: configmod.Config) -> tuple[SourceChoice, str]:
    """The input to start with, and a note for the banner when we had to fall back to the demo."""
    device, file, demo = args.device, args.file, args.demo
    if device is None and file is None and not demo:  # nothing on the command line: the config file's choice
        device, file, demo = cfg.source.device or None, cfg.source.file or None, cfg.source.demo
    if demo:
        return SourceChoice(DEMO), ""
    if file:
        return SourceChoice(FILE, file), ""
    from .window import input_devices

    devices, problem = input_devices()
    if device is not None:
        if str(device).isdigit():  # the picker lists devices by name; map an index to its name
            device = next((d["name"] for d in devices if d["index"] == int(device)), device)
        return SourceChoice(DEVICE, str(device)), ""
    if devices:
        return SourceChoice(DEVICE, ""), ""
    return SourceChoice(DEMO), f"No input device found{': ' + problem if problem else ''}. Playing the demo piece."


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not 1 <= args.fps <= 60:
        print("error: --fps must be in 1..60", file=sys.stderr)
        return 2
    if args.history is not None and not 10 <= args.history <= 600:
        print("error: --history must be in 10..600 seconds", file=sys.stderr)
        return 2
    if args.hop is not None and not configmod.hop_plausible(args.hop):
        print(f"error: --hop {args.hop} is not allowed: {configmod.HOP_ALLOWED}", file=sys.stderr)
        return 2
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"error: --size {args.size!r} is not WIDTHxHEIGHT", file=sys.stderr)
        return 2
    try:
        cfg = configmod.load(args.config) if args.config else configmod.Config()
    except configmod.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:  # the flags' values, checked as listen checks them (the window would clamp or only say so at Start)
        for dest in args.osc or ():
            configmod.check_destination(dest, "--osc")
        configmod.override(cfg, "analysis", smoothing_s=args.smoothing)
        configmod.override(cfg, "osc", prefix=args.prefix)
    except configmod.ConfigError as exc:
        print(f"error: {configmod.named_as_flag(exc)}", file=sys.stderr)
        return 2
    presets = {**PRESETS, **from_config(cfg.presets)}
    preset = args.preset if args.preset is not None else cfg.preset
    if preset and preset not in presets:
        print(f"error: no preset {preset!r}; presets: {', '.join(presets)}", file=sys.stderr)
        return 2

    try:
        from PyQt6 import QtCore, QtWidgets

        from . import theme
        from .window import MainWindow
    except ImportError as exc:
        print(f"error: the monitor needs PyQt6 and pyqtgraph ({exc}); install them with "
              f"`{sys.executable} -m pip install PyQt6 pyqtgraph` (a missing lib*.so: the system libraries in "
              "the README's \"The live monitor\")", file=sys.stderr)
        return 2

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("live_mer monitor")
    theme.apply(app)

    session = Session(model=args.model or cfg.model.name, provider=args.provider or cfg.model.provider,
                      prefix=args.prefix or cfg.osc.prefix, output_settings=cfg.outputs,
                      hop_s=args.hop if args.hop is not None else cfg.analysis.hop_s, threads=cfg.model.threads,
                      max_backlog_s=cfg.analysis.max_backlog_s,
                      device_settings=dict(samplerate=cfg.source.samplerate or None,
                                           channels=cfg.source.channels or None, blocksize=cfg.source.blocksize))
    for key, unused in (("record.path", cfg.record.path), ("control.enabled", cfg.control.enabled)):
        if unused:  # what only listen does: said, not silently dropped
            print(f"note: {args.config}: {key} is for `live-mer listen`: the monitor neither records nor opens the "
                  "control port", file=sys.stderr)
    choice, note = _source(args, cfg)
    osc_configs = () if args.osc else cfg.osc.all_destinations()
    osc = ", ".join(args.osc) if args.osc else ", ".join(d.label for d in osc_configs)
    smoothing = args.smoothing if args.smoothing is not None else cfg.analysis.smoothing_s
    window = MainWindow(session, choice, smoothing_s=smoothing, osc=osc, preset=preset or None,
                        fps=args.fps, presets=presets, osc_configs=osc_configs)
    # Flags given on the command line win over the preset's values (the preset picker then says Custom).
    if args.smoothing is not None:
        window.choose_smoothing(args.smoothing)
    if args.history is not None:
        window.choose_history(args.history)
    window.resize(width, height)
    if args.screenshot:
        def shoot() -> None:
            window.grab().save(args.screenshot)
            window.close()

        QtCore.QTimer.singleShot(int(args.screenshot_after * 1000), shoot)
    if args.kiosk:
        window.enter_kiosk()
    else:
        window.show()
    if note:
        window.banner.show_message(note, "info")
    try:
        session.load()  # report a missing or broken model at once, in the window
    except ModelError as exc:
        window.banner.show_message(f"Model not loaded: {exc}", "error")
    else:
        try:  # a hop this model's window does not allow: said now, and no start that would fail
            hop_frames(session.model.card, session.hop_s)
            hop_ok = True
        except ValueError as exc:
            window.banner.show_message(f"--hop / analysis.hop_s: {exc}", "error")
            hop_ok = False
        session.prepare()  # compiles in the background: the window is drawn and answers meanwhile
        if hop_ok and not args.no_start:
            QtCore.QTimer.singleShot(0, window.start)  # after the window is on screen
    # Ctrl-C in the terminal, SIGTERM (systemd, a shutdown) and a closed terminal close the window cleanly, so the
    # visuals get /status/stopped (the display timer lets Python see the signal).
    previous = [(sig, signal.signal(sig, lambda *_: window.close())) for sig in stop_signals()]
    try:
        status = app.exec()
    finally:
        for sig, handler in previous:
            signal.signal(sig, handler)
        session.close()
    if session.audio_hung:
        exit_after_audio_hang(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
