"""The ``live-mer`` command: listen (live, to OSC), devices, analyze (files to JSON), config."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

from . import __version__
from . import config as configmod
from .analyzer import MAX_SAMPLE, MAX_SMOOTHING_S, MIX_LOSS_DB, Analyzer, hop_frames, mix_loss_db, mix_loss_text
from .batch import (AUDIO_EXTENSIONS, RESULT_ENDINGS, result_files, run_batch, scan, summary_csv, track_line,
                    write_whole)
from .control import ControlServer, Controller
from .engine import Engine, LatestEstimates
from .estimate import Estimate
from .fileanalysis import AudioFileError, is_device
from .model import DEFAULT_MODEL, PROVIDER_CHOICES, ModelError, load_model
from .osc import DestinationError, OscSender
from .recorder import Recorder
from .sources import (DemoSource, DeviceSource, FileSource, SourceError, describe_devices, exit_after_audio_hang,
                      list_input_devices)

log = logging.getLogger("live_mer")


def format_line(est: Estimate) -> str:
    """The compact live terminal line."""
    key = f"{est.key} {est.key_camelot}" if est.key else "key ?"
    if not est.input_ok:
        return f"{est.t:8.1f}s  INPUT LOST: waiting for the device to come back"
    return (f"{est.t:8.1f}s  V {est.valence:+.2f}  A {est.arousal:+.2f}  {est.quadrant or '--':2}  "
            f"{est.chord:>7} {est.chord_confidence:.2f}  {key:<14} {est.loudness_db:6.1f} dBFS  "
            f"ovf {est.overflows}  {est.latency_ms:4.1f} ms")


class _Forgiving:
    """A terminal stream (stdout, stderr) whose write errors do not stop the program: its lines are for
    people, and a closed pipe (``live-mer listen | head -1``) or a full disk under ``2>> show.log`` used to
    end a show with a traceback. At the first error the stream's file descriptor is pointed at /dev/null,
    so later writes, and the interpreter's flush at exit, succeed; a stream that is only full for a moment
    (a non-blocking terminal: EAGAIN) loses what did not fit and goes on."""

    def __init__(self, stream):
        self._stream = stream

    def _guard(self, call, *args) -> None:
        try:
            call(*args)
        except BlockingIOError:  # a non-blocking terminal full for a moment: that line is lost, not the rest
            pass
        except OSError:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, self._stream.fileno())
                os.close(null)

    def write(self, text: str) -> int:
        self._guard(self._stream.write, text)
        return len(text)

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def stop_signals() -> list[signal.Signals]:
    """The signals that stop listen and the monitor cleanly (the stream ended, /status/stopped sent): Ctrl-C,
    SIGTERM (systemd, a shutdown) and SIGHUP (the terminal closed: its window, an ssh session; none on
    Windows), unless SIGHUP is ignored (started under nohup: it must run on)."""
    hangup = getattr(signal, "SIGHUP", None)
    return [signal.SIGINT, signal.SIGTERM] + ([hangup] if hangup is not None and
                                              signal.getsignal(hangup) is not signal.SIG_IGN else [])


def _when(stream) -> str:
    """A wall-clock prefix for a line that goes to a log file rather than a terminal (a service's log: the
    logging module's warnings carry one too), so a line in the log says when it happened."""
    return "" if stream.isatty() else time.strftime("%Y-%m-%d %H:%M:%S ")


def _open_source(cfg: configmod.SourceConfig, demo_if_no_device: bool = True):
    """The source ``cfg`` names; with none named and no input device, the demo piece where
    ``demo_if_no_device`` (the quick start), else a SourceError (an installation's configuration: a service
    that starts before its sound card must fail, and be restarted, rather than play the demo for good)."""
    if cfg.demo:
        return DemoSource()
    if cfg.file:
        return FileSource(cfg.file, realtime=True, loop=cfg.loop)
    kwargs = dict(samplerate=cfg.samplerate or None, channels=cfg.channels or None, blocksize=cfg.blocksize)
    if cfg.device:
        return DeviceSource(cfg.device, **kwargs)
    try:
        return DeviceSource(None, **kwargs)
    except SourceError as exc:
        if list_input_devices():  # there is one, and it refuses these settings (channels, its rate): not "none"
            raise
        if not demo_if_no_device:
            raise SourceError(f"{exc} (the configuration names no source: set source.device, or source.demo = "
                              "true to play the demo piece)") from None
        print(f"{_when(sys.stderr)}No input device found: playing the built-in demo piece (use --device to pick a "
              "sound card).", file=sys.stderr)
        return DemoSource()


NOT_LISTENING = "connection refused: nothing is listening on that port yet; start the receiver"


def _why(stats: dict) -> str:
    """The last send error of an OSC destination, in words a performer can act on."""
    if stats["dropped"]:  # never sent: the host could not be resolved (or the queue overflowed)
        return f" dropped {stats['dropped']}" + (f" ({stats['last_error']})" if stats["last_error"] else "")
    if not stats["errors"]:
        return ""
    if stats["refused"]:
        return f" ({NOT_LISTENING})"
    if "refused" in stats["last_error"].lower():
        return " (refused until a receiver opened the port)"
    return f" (last: {stats['last_error']})"


MIX_CHECK_S = 5.0  # listen judges whether the input's channels cancel in the mix over this much audio at a time
INVALID_NOTICE_S = 60.0  # while the input keeps sending samples that are not audio, one line per this many seconds


class _InvalidInput:
    """Says on the terminal when the input sends samples that are not audio (NaN, Inf, beyond +-MAX_SAMPLE:
    a broken driver, a misconfigured interface): the analysis hears them as silence, which on the live line
    looked like a quiet room. One line when they start, then at most one per INVALID_NOTICE_S with the
    count since; ``total`` for the summary."""

    def __init__(self):
        self.total = 0
        self._unsaid = 0
        self._said_at = -math.inf

    def notice(self, estimates: list[Estimate], now: float) -> str:
        bad = sum(e.nonfinite for e in estimates)
        self.total += bad
        self._unsaid += bad
        if not self._unsaid or now - self._said_at < INVALID_NOTICE_S:
            return ""
        first = self._said_at == -math.inf
        count, self._unsaid, self._said_at = self._unsaid, 0, now
        if first:
            return (f"input: samples that are not audio (NaN, infinite or beyond +-{MAX_SAMPLE:g}) are arriving "
                    f"({count} so far); they are analysed as silence: check the sound card, its driver or the file")
        return f"input: {count} more samples that are not audio since the last notice ({self.total} in all)"


class _MixLoss:
    """Says on the terminal when the input's channels cancel each other in the mix to mono the analysis hears
    (one in opposite polarity: a miswired cable, a phase switch), judged over each MIX_CHECK_S of input: when
    it starts, and when it stops."""

    def __init__(self):
        self._at = (0.0, 0.0, 0)  # the analyzer's channel power, mix power and frames at the last judgement
        self.cancelling = False

    def notice(self, analyzer: Analyzer) -> str:
        now = (analyzer.channel_power, analyzer.mix_power, analyzer.frames_heard)
        frames = now[2] - self._at[2]
        if frames < 0:  # the stream started again
            self._at = now
        if frames < MIX_CHECK_S * analyzer.input_rate:
            return ""
        loss = mix_loss_db(now[0] - self._at[0], now[1] - self._at[1], frames)
        self._at = now
        if (loss >= MIX_LOSS_DB) == self.cancelling:
            return ""
        self.cancelling = not self.cancelling
        if self.cancelling:
            return f"input: {mix_loss_text(loss)}: check the cabling, or take one channel (a sound card: --channels 1)"
        return "input: the channels no longer cancel each other"


def _receiver_notices(refused: dict, stats: list[dict]) -> list[str]:
    """Say when an OSC destination starts or stops refusing datagrams (nobody listening on that port);
    ``refused`` (destination -> bool) carries between calls, so only changes are reported."""
    notes = []
    for s in stats:
        name, now = s["destination"], s["refused"]
        if now and not refused.get(name, False):
            notes.append(f"OSC {name}: {NOT_LISTENING} (live_mer keeps sending)")
        elif refused.get(name, False) and not now:
            notes.append(f"OSC {name}: a receiver is listening now")
        refused[name] = now
    return notes


def _check_source_settings(source: configmod.SourceConfig, where: str, flags=None) -> None:
    """Refuse source settings that listen would ignore: a sample rate for a file, a loop for a sound card;
    each named as the flag that set it (``flags``: listen's arguments) or else as the configuration key.
    (The monitor uses the sound card's settings for any sound card picked in its window, so it takes them
    beside a file.)"""
    def name(key: str, flag: str) -> str:
        value = getattr(source, key)
        written = "true" if value is True else repr(value)  # as the TOML file writes it
        return flag if getattr(flags, key, None) else f"{where}source.{key} = {written}"

    if source.file or source.demo:
        for key in ("samplerate", "channels", "blocksize"):
            if getattr(source, key):
                raise configmod.ConfigError(
                    f"{name(key, '--' + key)} is for a sound card; listen plays "
                    f"{'source.file' if source.file else 'the demo'} at its own rate and channels (the analysis "
                    "resamples and mixes to mono itself): remove it, or choose a sound card (source.device)")
    if source.loop and not source.file:
        raise configmod.ConfigError(f"{name('loop', '--loop')} is for {'--file' if flags and flags.loop else 'source.file'} "
                                    "(the demo piece always loops; a sound card has no end)")


def _apply_flags(cfg: configmod.Config, args) -> configmod.Config:
    """The configuration with listen's flags applied (checked by :func:`_check_source_settings` after)."""
    if args.device is not None or args.file is not None or args.demo:
        # A source chosen on the command line replaces the file's choice entirely; its sound card settings
        # carry over to another sound card only.
        card = {} if args.device is not None else dict(samplerate=0, channels=0, blocksize=0)
        cfg = configmod.override(cfg, "source", device=args.device or "", file=args.file or "", demo=args.demo,
                                 loop=False, **card)
    cfg = configmod.override(cfg, "source", samplerate=args.samplerate, channels=args.channels,
                             loop=True if args.loop else None)
    cfg = configmod.override(cfg, "model", name=args.model, provider=args.provider)
    cfg = configmod.override(cfg, "analysis", smoothing_s=args.smoothing)  # --hop: checked against the model
    cfg = configmod.override(cfg, "osc", prefix=args.prefix, destinations=tuple(args.osc) if args.osc else None,
                              destination=() if args.osc else None)  # --osc replaces the file's destinations
    cfg = configmod.override(cfg, "record", path=args.record)
    if args.control is not None:
        cfg = configmod.override(cfg, "control", enabled=True, port=args.control)
    if args.preset is not None:
        cfg = dataclasses.replace(cfg, preset=args.preset).validate()
    return cfg


def _load_model(cfg: configmod.Config, hop_s: float, hop_origin: str):
    """The model as listen runs it, and ``hop_s`` checked against it (one feature frame .. its window);
    ``hop_origin`` names where the hop came from (``--hop``, a file's ``analysis.hop_s``)."""
    model = load_model(cfg.model.name, provider=cfg.model.provider, threads=cfg.model.threads)
    try:
        hop_frames(model.card, hop_s)
    except ValueError as exc:
        raise configmod.ConfigError(f"{hop_origin}: {exc}") from None
    return model


@dataclasses.dataclass
class _Outputs:
    """What listen sends and writes to: the OSC destinations, the control port, the recording."""

    osc: OscSender
    server: ControlServer | None = None
    recorder: Recorder | None = None

    def close(self) -> None:
        for part in (self.recorder, self.server, self.osc):  # in the reverse order of opening
            if part is not None:
                part.close()


def _open_outputs(cfg: configmod.Config, model, record_origin: str) -> _Outputs:
    """Open listen's outputs before the audio starts (``config --check`` opens them too, so that its OK means
    listen starts); what cannot be opened is a ConfigError, after what was opened is closed again.
    ``record_origin`` names where the recording path came from (``--record``, ``record.path``)."""
    osc = OscSender(cfg.osc.all_destinations(), prefix=cfg.osc.prefix, model_name=model.card.name,
                    provider=model.provider, settings=cfg.active_outputs())
    outputs = _Outputs(osc)
    try:
        if cfg.control.enabled:  # before the recording: a port in use must not leave an empty recording file
            controller = Controller(lambda: osc.settings, lambda new: setattr(osc, "settings", new), cfg.presets,
                                    cfg.osc.prefix, base=cfg.outputs)
            outputs.server = ControlServer(controller, cfg.control.host, cfg.control.port)
        if cfg.record.path:
            try:
                outputs.recorder = Recorder(cfg.record.path)
            except OSError as exc:
                raise OSError(f"{record_origin} {cfg.record.path}: cannot write there ({exc.strerror})") from None
    except (OSError, ValueError) as exc:
        outputs.close()  # the OSC sender sent nothing yet: it tells no one "stopped"
        raise configmod.ConfigError(str(exc)) from None
    return outputs


def cmd_listen(args) -> int:
    if args.duration is not None and not args.duration > 0:  # -1 or nan used to exit at once, "successfully"
        raise configmod.ConfigError(f"--duration {args.duration} is not allowed: seconds > 0 (leave it out to run "
                                    "until Ctrl-C)")
    for dest in args.osc or ():  # named as the flag, not as the file's osc.destinations
        configmod.check_destination(dest, "--osc")
    cfg = configmod.load(args.config) if args.config else configmod.Config()
    try:  # the file is valid by now: what fails below came from a flag, and is reported under its name
        cfg = _apply_flags(cfg, args)
    except configmod.ConfigError as exc:
        raise configmod.named_as_flag(exc) from None
    _check_source_settings(cfg.source, f"{args.config}: " if args.config else "", args)

    # --hop is checked against the model only, so that any refused hop is told the model's whole range
    hop_s = cfg.analysis.hop_s if args.hop is None else args.hop
    model = _load_model(cfg, hop_s, "--hop" if args.hop is not None else f"{args.config}: analysis.hop_s")
    cfg = configmod.override(cfg, "analysis", hop_s=args.hop)
    # before the outputs: an unknown device must not leave a recording file
    source = _open_source(cfg.source, demo_if_no_device=args.config is None)
    analyzer = Analyzer(model, source.samplerate, smoothing_s=cfg.analysis.smoothing_s, hop_s=cfg.analysis.hop_s)
    made = _not_there_yet(cfg)
    outputs = _open_outputs(cfg, model, "--record" if args.record else "record.path")
    osc, recorder, latest = outputs.osc, outputs.recorder, LatestEstimates()
    if outputs.server is not None:
        host, port = outputs.server.address[:2]
        print(f"{_when(sys.stderr)}control port: {host}:{port} (OSC {cfg.osc.prefix}/control/...)", file=sys.stderr)
    sinks = [osc, latest] + ([recorder] if recorder is not None else [])
    engine = Engine(source, analyzer, sinks, max_backlog_s=cfg.analysis.max_backlog_s)

    dests = ", ".join(d.label + (f" @{d.rate_hz:g} Hz" if d.rate_hz else "") for d in cfg.osc.all_destinations())
    print(f"{_when(sys.stderr)}live_mer {__version__}: {source.name} @ {source.samplerate} Hz, {source.channels} ch "
          f"-> model {model.card.name} ({model.provider}, window {model.card.window_seconds:.1f} s, "
          f"hop {analyzer.hop_seconds:.3f} s) -> OSC {cfg.osc.prefix} to {dests or 'nowhere'}"
          + (f", preset {cfg.preset}" if cfg.preset else "")
          + (f", recording to {cfg.record.path}" if cfg.record.path else ""), file=sys.stderr)
    print(f"{_when(sys.stderr)}Ctrl-C stops.", file=sys.stderr)
    stop = threading.Event()
    # put back when listen returns (a caller in the same process, the tests, keeps its Ctrl-C)
    previous = [(sig, signal.signal(sig, lambda *_: stop.set())) for sig in stop_signals()]
    tty = sys.stdout.isatty()
    last_print = last_check = 0.0
    receivers: dict = {}
    invalid, mixed = _InvalidInput(), _MixLoss()
    # The first run after an install or update compiles the analysis kernels before the audio starts.
    note = threading.Timer(1.5, lambda: print(f"{_when(sys.stderr)}preparing the analysis (the first run after an "
                                              "install or update compiles it: 10-20 s)...", file=sys.stderr, flush=True))
    note.start()
    try:
        engine.start()
    except BaseException:  # a stream the sound card refuses leaves no threads, sockets or empty recording
        engine.stop()
        outputs.close()
        _remove_made(made)
        for sig, handler in previous:
            signal.signal(sig, handler)
        raise
    finally:
        note.cancel()
    deadline = time.monotonic() + args.duration if args.duration else None  # of audio, after the preparation
    try:
        while not stop.is_set() and engine.running and (deadline is None or time.monotonic() < deadline):
            stop.wait(0.1)
            if time.monotonic() - last_check >= 1.0:
                last_check = time.monotonic()
                for note in _receiver_notices(receivers, osc.stats()):
                    print(("\n" if tty else "") + _when(sys.stderr) + note, file=sys.stderr, flush=True)
            recent = latest.drain()
            for note in (invalid.notice(recent, time.monotonic()), mixed.notice(engine.analyzer)):
                if note:
                    print(("\n" if tty else "") + _when(sys.stderr) + note, file=sys.stderr, flush=True)
            if recent and not args.quiet and (tty or time.monotonic() - last_print >= 1.0):
                last_print = time.monotonic()
                print(("\r" + format_line(recent[-1])) if tty else _when(sys.stdout) + format_line(recent[-1]),
                      end="" if tty else "\n", flush=True)
    finally:
        engine.stop()
        outputs.close()
        for sig, handler in previous:
            signal.signal(sig, handler)
    if tty and not args.quiet:
        print()
    sent = ", ".join(f"{s['destination']} sent {s['sent']} errors {s['errors']}" + _why(s) for s in osc.stats())
    losses = getattr(source, "losses", 0)
    invalid.notice(latest.drain(), time.monotonic())  # the estimates since the loop's last look
    print(f"{_when(sys.stderr)}{engine.estimates} estimates; input overflows {source.overflows}; "
          + (f"input lost {losses} time(s); " if losses else "")
          + (f"audio skipped to keep up {engine.dropped_s:.1f} s; " if engine.dropped_s else "")
          + (f"samples not audio {invalid.total}; " if invalid.total else "") + f"OSC {sent}", file=sys.stderr)
    if not engine.estimates and isinstance(source, FileSource) and source.finished and engine.error is None:
        print(f"{_when(sys.stderr)}{source.path} ended before the first estimate: it needs "
              f"{analyzer.hop_seconds:.2f} s of audio", file=sys.stderr)
    if cfg.record.path:
        print(f"{_when(sys.stderr)}recorded {recorder.written} estimates to {recorder.path}"
              + (f" ({recorder.error})" if recorder.error else ""), file=sys.stderr)
    status = 0
    if engine.error is not None:
        print(f"{_when(sys.stderr)}error: analysis stopped: {engine.error}", file=sys.stderr)
        status = 1
    if getattr(source, "stuck", False):
        exit_after_audio_hang(status)
    return status


def cmd_devices(args) -> int:
    print("Input devices:")
    print(describe_devices(list_input_devices()))
    return 0


def cmd_analyze(args) -> int:
    if (args.plot or args.resume) and not args.out:
        raise configmod.ConfigError("--plot and --resume need --out DIR (where the per-file results go)")
    if args.plot:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:  # before any file, not as a failure per file
            raise configmod.ConfigError(f"--plot needs matplotlib: `{sys.executable} -m pip install matplotlib`")
    if not 0.0 <= args.smoothing <= MAX_SMOOTHING_S:  # NaN fails too; checked once, not once per file
        raise configmod.ConfigError(f"--smoothing {args.smoothing} is not allowed: 0..{MAX_SMOOTHING_S:g} seconds")
    csv_path = args.csv or (Path(args.out) / "summary.csv" if args.out else None)
    _refuse_overwriting_inputs(args, csv_path)  # before --out is made: `--out a.wav` names the flag
    _refuse_colliding_outputs(args, csv_path)
    _check_outputs(args.out, [p for p in (args.json, args.csv) if p])  # before hours of analysis, not after
    model = load_model(args.model, provider=args.provider)  # fail early, with a clear error, before forking
    # SIGTERM (`kill`, a service stopped) stops the batch as Ctrl-C does: it killed this process alone, and its
    # workers, sending results that no one read any more, hung for ever
    terminate = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        report = run_batch(args.paths, str(model.path), out_dir=args.out, jobs=args.jobs, smoothing_s=args.smoothing,
                           plot=args.plot, resume=args.resume, provider=args.provider)
    finally:
        signal.signal(signal.SIGTERM, terminate)
    if not report.results and not report.unfinished:
        raise configmod.ConfigError(f"no audio files in {', '.join(args.paths)} (extensions: "
                                    f"{' '.join(AUDIO_EXTENSIONS)})")
    outputs = [(args.json, json.dumps(report.results, indent=1) + "\n")] if args.json else []
    if csv_path:
        outputs.append((csv_path, summary_csv(report.results)))
    unwritten = {}
    for path, text in outputs:
        try:
            write_whole(path, text)
        except OSError as exc:  # said last; each output on its own: a full disk under --json still leaves the CSV
            unwritten[path] = exc.strerror or str(exc)
    for r in report.results:  # (`analyze ... | head`: main's streams drop what a closed pipe cannot take)
        if "error" not in r:
            print(track_line(r))
    done = len(report.results) - report.failed - report.skipped
    written = [str(path) for path, _ in outputs if path not in unwritten]
    print(f"{done} analysed, {report.skipped} already done, {report.failed} failed"
          + (f", {report.unfinished} not analysed" if report.unfinished else "") + f" in {report.seconds:.1f} s"
          + (f"; {' and '.join(written)}: the finished tracks only" if report.unfinished and written
             else f"; summary {csv_path}" if csv_path and csv_path not in unwritten else ""), file=sys.stderr)
    for path, reason in unwritten.items():
        print(f"error: {path}: not written ({reason})", file=sys.stderr)
    if report.unfinished:  # Ctrl-C stopped the batch: main says so, exit status 130
        raise KeyboardInterrupt
    return 2 if unwritten else 1 if report.failed else 0


# what each output flag takes, for the error when it was given an input instead
OUTPUT_TAKES = {"--json": "the path of the JSON file to write", "--csv": "the path of the summary CSV to write",
                "--out": "a folder to write the results in"}


def _identities(path: Path) -> set:
    """What tells the same file: its resolved path and, where it exists, its device and inode (what
    os.path.samefile compares: a hard link, a symlink, another spelling; kept in a set, so that thousands of
    inputs are not compared pairwise)."""
    keys: set = {str(path.resolve())}
    with contextlib.suppress(OSError):
        st = path.stat()
        keys.add((st.st_dev, st.st_ino))
    return keys


def _planned_outputs(args, csv_path: Path | None) -> list[tuple[str, str, Path]]:
    """(flag, its value, path) for the paths analyze writes that a user names: --json, --out and the summary
    CSV (``csv_path``: --csv, or the one in --out). (The per-track files in --out end in .json, .json.tmp or
    .png, never an input's audio extension, and files found in folders have one: they cannot collide, and
    are not looked up.)"""
    planned = [("--json", args.json, Path(args.json))] if args.json else []
    if args.out:
        planned.append(("--out", args.out, Path(args.out)))
    if csv_path is not None:
        planned.append(("--csv", args.csv, Path(csv_path)) if args.csv else ("--out", args.out, Path(csv_path)))
    return planned


def _refuse_overwriting_inputs(args, csv_path: Path | None) -> None:
    """Refuse an output path that is an input or an existing audio file, before anything is written:
    `analyze --json a.wav b.wav` (--json taken for a flag like --plot) wrote JSON over a.wav. The inputs
    compared are the files named on the command line; a folder's files are audio files, refused as such,
    so the library is not scanned twice."""
    inputs = set().union(*(_identities(p) for p in map(Path, args.paths) if not p.is_dir()))
    for flag, value, path in _planned_outputs(args, csv_path):
        audio = path.suffix.lower() in AUDIO_EXTENSIONS
        if not _identities(path).isdisjoint(inputs):
            what = f"an input {'audio ' if audio else ''}file"
        elif audio and path.is_file():
            what = "an existing audio file"
        else:
            continue
        which = "that is" if path == Path(value) else f"it would write {path}, which is"
        raise configmod.ConfigError(f"{flag} {value}: {which} {what}; {flag} takes {OUTPUT_TAKES[flag]}")


def _refuse_colliding_outputs(args, csv_path: Path | None) -> None:
    """Refuse two outputs on one file (resolved paths compared), before anything is written: `--json X --csv X`
    kept only the CSV, and a --json or --csv in --out wrote over its summary CSV or a track's own result. The
    tracks are looked up only for a --json or --csv in --out with a result file's ending: a library is
    seldom scanned twice."""
    named = [(f"{flag} {value}", Path(value).resolve()) for flag, value in (("--json", args.json), ("--csv", args.csv))
             if value and not is_device(value)]  # /dev/null twice is fine
    taken: dict[Path, str] = {}
    if args.out:
        out = Path(args.out).resolve()
        if not args.csv:
            taken[Path(csv_path).resolve()] = f"--out {args.out} writes its summary CSV there"
        if any(path.is_relative_to(out) and path.name.endswith(RESULT_ENDINGS) for _, path in named):
            for f, rel in scan(args.paths)[0]:
                taken.update(dict.fromkeys((p.resolve() for p in result_files(out, rel)),
                                           f"--out {args.out} writes the result of {f} there"))
    for name, path in named:
        if path in taken:
            raise configmod.ConfigError(f"{name}: {taken[path]}; give each output its own path")
        taken[path] = f"{name} writes that file too"


def _check_outputs(out_dir: str | None, files: list[str]) -> None:
    """Refuse output paths that cannot be written, before any analysis (raises ConfigError)."""
    if out_dir:
        try:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise configmod.ConfigError(f"--out {out_dir}: cannot create that folder ({exc.strerror})") from None
    for f in map(Path, files):
        folder = f.parent if str(f.parent) else Path(".")
        if f.is_dir():
            raise configmod.ConfigError(f"{f} is a folder; give a file name")
        if not folder.is_dir():
            raise configmod.ConfigError(f"{f}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK) or (f.exists() and not os.access(f, os.W_OK)):
            raise configmod.ConfigError(f"{f}: not writable")


def _not_there_yet(cfg: configmod.Config) -> list[Path]:
    """The recording file and its folders that do not exist yet (the deepest first): what opening the
    outputs will make."""
    record = Path(cfg.record.path) if cfg.record.path else None
    return [p for p in (record, *record.parents) if not p.exists()] if record else []


def _remove_made(made: list[Path]) -> None:
    """Remove what :func:`_not_there_yet` listed, once opened outputs are closed with nothing recorded."""
    for p in made:
        with contextlib.suppress(OSError):  # not made after all (opening failed), or not empty now
            if p.is_dir():
                p.rmdir()
            else:
                p.unlink()


def _try_outputs(cfg: configmod.Config, model, record_origin: str) -> None:
    """Open listen's outputs and close them again, removing the recording file (and its folders) that the
    trial made: a check leaves nothing behind."""
    made = _not_there_yet(cfg)
    try:
        _open_outputs(cfg, model, record_origin).close()
    finally:
        _remove_made(made)


def cmd_config(args) -> int:
    if args.example:
        print(configmod.EXAMPLE, end="")
        return 0
    cfg = configmod.load(args.check)
    _check_source_settings(cfg.source, f"{args.check}: ")
    if cfg.source.file:  # what listen would refuse at start: missing, a folder, not audio it can decode, its rate
        try:
            FileSource(cfg.source.file)
        except (AudioFileError, SourceError) as exc:
            raise configmod.ConfigError(f"{args.check}: source.file {exc}") from None
    # What listen does before the sound card: load the model (and check the hop against it), open the OSC
    # destinations, the control port and the recording. OK means listen starts.
    model = _load_model(cfg, cfg.analysis.hop_s, f"{args.check}: analysis.hop_s")
    try:
        _try_outputs(cfg, model, "record.path")
    except configmod.ConfigError as exc:
        raise configmod.ConfigError(f"{args.check}: {exc}") from None
    print(f"{args.check}: OK")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="live-mer", description="Real-time music emotion analysis to OSC.")
    p.add_argument("--version", action="version", version=f"live_mer {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    listen = sub.add_parser("listen", help="analyse live input and send OSC")
    src = listen.add_mutually_exclusive_group()
    src.add_argument("--device", help="input device: part of its name, or its index (see `live-mer devices`)")
    src.add_argument("--file", help="play an audio file in real time instead of a device")
    src.add_argument("--demo", action="store_true", help="play the built-in demo piece")
    listen.add_argument("--loop", action="store_true", help="with --file: start again at the end")
    listen.add_argument("--samplerate", type=int, help="device sample rate (default: the device's)")
    listen.add_argument("--channels", type=int, help="device channels to open (mixed to mono)")
    listen.add_argument("--osc", action="append", metavar="HOST:PORT", help="OSC destination (repeatable)")
    listen.add_argument("--prefix", help="OSC address prefix (default /mer)")
    listen.add_argument("--config", help="TOML configuration file (see `live-mer config --example`)")
    listen.add_argument("--duration", type=float, help="stop after this many seconds")
    listen.add_argument("--quiet", action="store_true", help="no live terminal line")
    listen.add_argument("--record", metavar="FILE", help="write every estimate to FILE (.csv or .jsonl)")
    listen.add_argument("--preset", help="start with this preset from the configuration")
    listen.add_argument("--control", type=int, metavar="PORT", help="enable the OSC control port on this port "
                        "(on control.host: 127.0.0.1 unless the configuration file says otherwise)")
    listen.add_argument("--model", help="model name in models/ or path to an .onnx with its .json card")
    listen.add_argument("--provider", choices=PROVIDER_CHOICES, help="onnxruntime execution provider")
    listen.add_argument("--smoothing", type=float, help="smoothing of the estimates, seconds (the terminal, "
                        "recording and OSC; OSC's per-output shaping comes on top, see the configuration)")
    listen.add_argument("--hop", type=float, metavar="S", help="seconds between estimates (default: the model's, "
                        "0.51 s), rounded to whole 23-ms feature frames; 0.1: the level follows about 4x, chords 2x sooner")
    listen.set_defaults(func=cmd_listen)

    dev = sub.add_parser("devices", help="list audio input devices")
    dev.set_defaults(func=cmd_devices)

    an = sub.add_parser("analyze", help="analyse audio files and folders (causally, as live) to JSON/CSV/PNG")
    an.add_argument("paths", nargs="+", help="audio files (wav, flac, ogg/opus, mp3, ...) and folders (recursive)")
    an.add_argument("--json", help="write all results here (a JSON list, one object per file)")
    an.add_argument("--out", help="folder for one JSON (and PNG) per file, mirroring the input folders")
    an.add_argument("--csv", help="library summary CSV (default with --out: OUT/summary.csv)")
    an.add_argument("--plot", action="store_true", help="also draw a PNG per file (needs matplotlib)")
    an.add_argument("--jobs", type=int, default=0, help="parallel worker processes (default: one per core)")
    an.add_argument("--resume", action="store_true", help="skip files whose JSON is already in --out")
    an.add_argument("--model", default=DEFAULT_MODEL, help="model name or .onnx path")
    an.add_argument("--provider", default="auto", choices=PROVIDER_CHOICES)
    an.add_argument("--smoothing", type=float, default=1.0, help="output smoothing time constant, seconds")
    an.set_defaults(func=cmd_analyze)

    sub.add_parser("gui", help="open the live monitor window (needs the gui extra); see `live-mer gui --help`")

    cf = sub.add_parser("config", help="print an example configuration or check one")
    what = cf.add_mutually_exclusive_group(required=True)  # `--example --check x.toml` used to check nothing
    what.add_argument("--example", action="store_true", help="print a commented example configuration")
    what.add_argument("--check", metavar="FILE", help="validate a configuration file and what listen opens "
                      "before the sound card: the model, the control port, the recording file")
    cf.set_defaults(func=cmd_config)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    lead = next((i for i, a in enumerate(argv) if a not in ("-v", "--verbose")), len(argv))
    verbose, rest = argv[:lead][:1], argv[lead:]  # global flags before the command
    if rest[:1] == ["gui"]:
        # The monitor is a separate program (gui/ imports live_mer, never the other way round). -P: `-m` puts
        # the working folder first on the path, and a gui.py or gui/ there ran instead of the monitor; kept
        # where that folder holds this live_mer (a checkout run without installing: its gui/ is the monitor).
        try:
            isolate = [] if Path.cwd().resolve() == Path(__file__).resolve().parent.parent else ["-P"]
        except OSError:  # a working folder deleted since
            isolate = ["-P"]
        os.execv(sys.executable, [sys.executable, *isolate, "-m", "gui", *verbose, *rest[1:]])
    args = build_parser().parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is printed escaped, never a crash
        with contextlib.suppress(AttributeError, ValueError):  # (a stream replaced by one that cannot)
            stream.reconfigure(errors="backslashreplace")
    streams = sys.stdout, sys.stderr
    # A stream closed before Python started (`live-mer listen ... >&-`, a launcher that closes it) is None: its
    # lines go to /dev/null, as they do once a stream fails (listen stopped at its start with a traceback)
    sys.stdout, sys.stderr = (_Forgiving(s if s is not None else open(os.devnull, "w")) for s in streams)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _run(args)
    finally:
        sys.stdout, sys.stderr = streams


def _run(args) -> int:
    try:
        return args.func(args)
    except (configmod.ConfigError, ModelError, SourceError, DestinationError, AudioFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # analyze (listen handles Ctrl-C itself): the per-file results stay
        print("\ninterrupted" + (" (the finished tracks' files are kept: run again with --resume)"
                                  if getattr(args, "out", None) else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
