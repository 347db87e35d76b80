"""The monitor's connection to live_mer: model, source, analyzer, OSC and engine, without any Qt.

A :class:`Session` owns one running :class:`~live_mer.engine.Engine` at a time and rebuilds it when
the source changes; the smoothing, the OSC destinations and their shaping change while it runs. The
Qt side only ever calls :meth:`Session.drain` from its display timer: the analyzer thread appends to a
:class:`~live_mer.engine.LatestEstimates` and never waits for the UI.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from live_mer.analyzer import Analyzer, hop_frames
from live_mer.engine import Engine, LatestEstimates
from live_mer.estimate import Estimate
from live_mer.model import DEFAULT_MODEL, StudentModel, load_model
from live_mer.osc import DEFAULT_PREFIX, DestinationConfig, OscSender, parse_destination
from live_mer.outputs import OutputSettings
from live_mer.sources import DemoSource, DeviceSource, FileSource, SourceError

DEMO, FILE, DEVICE = "demo", "file", "device"
log = logging.getLogger(__name__)
PREPARE_RATE = 48000  # Hz; any rate compiles the same kernels (Numba specialises on types, not values)


@dataclass(frozen=True)
class SourceChoice:
    """Which input to analyse.

    Attributes
    ----------
    kind : str
        ``"demo"``, ``"file"`` or ``"device"``.
    value : str
        The file path, or the device name (or index as text; ``""`` = the system default input).
    realtime, loop : bool
        For demo and file sources: pace in real time, and start again at the end.
    """

    kind: str = DEMO
    value: str = ""
    realtime: bool = True
    loop: bool = True

    @property
    def label(self) -> str:
        if self.kind == DEMO:
            return "Demo piece"
        if self.kind == FILE:
            return f"File: {Path(self.value).name}"
        return self.value or "Default input"

    def open(self, samplerate: int | None = None, channels: int | None = None, blocksize: int = 0):
        """Build the live_mer source (raises SourceError or AudioFileError); a sound card is opened with
        ``samplerate``, ``channels`` and ``blocksize`` (None, None, 0: its defaults)."""
        if self.kind == DEMO:
            return DemoSource(realtime=self.realtime, loop=self.loop)
        if self.kind == FILE:
            return FileSource(self.value, realtime=self.realtime, loop=self.loop)
        if self.kind == DEVICE:
            return DeviceSource(self.value or None, samplerate=samplerate, channels=channels, blocksize=blocksize)
        raise ValueError(f"unknown source kind {self.kind!r}")


def parse_destinations(text: str) -> tuple[str, ...]:
    """``"host:port, host:port"`` -> validated tuple of ``"host:port"`` (raises DestinationError)."""
    items = tuple(d.strip() for d in text.replace(";", ",").split(",") if d.strip())
    for d in items:
        parse_destination(d)
    return items


class _OscSlot:
    """A sink that forwards to a replaceable OSC sender.

    Swapping the target is one attribute assignment (atomic in CPython), so OSC destinations can
    change while audio keeps flowing: no engine restart, no gap in the analysis.
    """

    def __init__(self) -> None:
        self.target: OscSender | None = None

    def __call__(self, est: Estimate) -> None:
        target = self.target
        if target is not None:
            target(est)

    def end_of_stream(self) -> None:
        target = self.target
        if target is not None:
            target.end_of_stream()


Destination = str | DestinationConfig  # "HOST:PORT", or a configuration file's detailed destination


class Session:
    """One analysis pipeline for the monitor: load the model once, (re)start engines on demand.

    Parameters
    ----------
    model : str
        A model name in ``models/`` or a path to an ``.onnx`` file beside its card.
    provider : str
        onnxruntime provider: ``auto``, ``cpu`` or ``cuda``.
    prefix : str
        OSC address prefix.
    output_settings : OutputSettings or None
        OSC output shaping and mutes (default: live_mer's defaults).
    extra_sinks : list of callables
        More sinks for every engine (tests record estimates with one); they must not block.
    hop_s : float
        Seconds between estimates (0: the model's own hop); see :class:`~live_mer.analyzer.Analyzer`.
    threads : int
        onnxruntime intra-op threads (a configuration file's ``model.threads``).
    max_backlog_s : float
        Audio older than this is dropped when the analysis falls behind (``analysis.max_backlog_s``).
    device_settings : dict or None
        How a sound card is opened: ``samplerate``, ``channels``, ``blocksize`` (``source.*``; see
        :meth:`SourceChoice.open`).
    """

    def __init__(self, model: str = DEFAULT_MODEL, provider: str = "auto", prefix: str = DEFAULT_PREFIX,
                 output_settings: OutputSettings | None = None,
                 extra_sinks: list[Callable[[Estimate], None]] | None = None, hop_s: float = 0.0, threads: int = 1,
                 max_backlog_s: float = 1.0, device_settings: dict | None = None):
        self.model_name = model
        self.hop_s = hop_s
        self.provider = provider
        self.threads = threads
        self.max_backlog_s = max_backlog_s
        self.device_settings = dict(device_settings or {})
        self.prefix = prefix
        self.output_settings = output_settings or OutputSettings()
        self.extra_sinks = list(extra_sinks or [])
        self.model: StudentModel | None = None
        self.source = None
        self.audio_hung = False
        self.engine: Engine | None = None
        self.latest = LatestEstimates()
        self.osc: OscSender | None = None
        self.destinations: tuple[Destination, ...] = ()
        self.smoothing_s: float | None = None  # of the current engine
        self.starts = 0  # how many engines this session has started (restarts included)
        self._slot = _OscSlot()
        self._lock = threading.Lock()  # start/stop may come from the GUI and from close at once
        self._preparing: threading.Thread | None = None

    # ----------------------------------------------------------------------------------------- model
    def load(self) -> StudentModel:
        """Load (once) and return the model; raises :class:`~live_mer.model.ModelError`."""
        if self.model is None:
            self.model = load_model(self.model_name, provider=self.provider, threads=self.threads)
        return self.model

    def prepare(self) -> None:
        """Compile the analysis in the background, so that a window stays responsive meanwhile: the
        first run after an install or update compiles the Numba kernels (10-20 s), later runs load them
        from the cache in a fraction of a second. :attr:`ready` says when it is done; :meth:`start`
        waits for it. Needs the model (:meth:`load`); does nothing without one or when called again."""
        if self._preparing is not None or self.model is None:
            return
        analyzer = Analyzer(self.model, PREPARE_RATE)

        def compile_kernels() -> None:
            try:
                analyzer.warm_up()
            except Exception:  # the start runs the warm-up again and reports the error in the window
                log.exception("preparing the analysis failed")

        self._preparing = threading.Thread(target=compile_kernels, name="live_mer-prepare", daemon=True)
        self._preparing.start()

    @property
    def hop_seconds(self) -> float:
        """Seconds between estimates of the running engine (else of the next one; 0.5 before a model)."""
        if self.engine is not None:
            return self.engine.analyzer.hop_seconds
        if self.model is None:
            return self.hop_s or 0.5
        card = self.model.card
        try:
            return hop_frames(card, self.hop_s) / card.spec.frame_rate
        except ValueError:  # refused at the start, in the window
            return card.hop_seconds

    @property
    def ready(self) -> bool:
        """False while :meth:`prepare` is still compiling (a start now would wait for it)."""
        return self._preparing is None or not self._preparing.is_alive()

    def _wait_prepared(self) -> None:
        if self._preparing is not None:
            self._preparing.join()

    # --------------------------------------------------------------------------------------- engine
    @property
    def running(self) -> bool:
        return self.engine is not None and self.engine.running

    @property
    def error(self) -> Exception | None:
        """Why the current engine stopped by itself (a lost device, a decoding error), if it did."""
        if self.engine is not None and self.engine.error is not None:
            return self.engine.error
        return getattr(self.source, "error", None)

    def start(self, choice: SourceChoice, smoothing_s: float, destinations: tuple[Destination, ...]) -> None:
        """Stop any running engine and start a new one. Raises ModelError, SourceError,
        AudioFileError or DestinationError with the previous engine already stopped."""
        self._wait_prepared()
        with self._lock:
            self._stop_engine()
            if self.audio_hung and choice.kind == DEVICE:  # PortAudio of this process is stuck in a call
                raise SourceError("the audio system stopped responding: quit and start the monitor again to use a "
                                  "sound card (a file or the demo still plays)")
            model = self.load()
            source = choice.open(**self.device_settings)
            try:  # a smoothing or hop the analyzer refuses, a bad destination: the opened input is let go
                analyzer = Analyzer(model, source.samplerate, smoothing_s=smoothing_s, hop_s=self.hop_s)
                self._set_osc(destinations, model)
            except Exception:
                source.stop()
                raise
            self.latest.drain()  # nothing from an older stream may reach the display after this
            engine = Engine(source, analyzer, [self._slot, self.latest, *self.extra_sinks],
                            max_backlog_s=self.max_backlog_s)
            try:
                engine.start()
            except Exception:
                source.stop()
                raise
            self.source, self.engine, self.smoothing_s = source, engine, float(smoothing_s)
            self.starts += 1

    def set_destinations(self, destinations: tuple[Destination, ...]) -> None:
        """Send OSC to ``destinations`` from now on, without interrupting the analysis."""
        with self._lock:
            self._set_osc(destinations, self.model, carry_on=self.running)

    def set_smoothing(self, smoothing_s: float) -> None:
        """Smooth the running engine's estimates with ``smoothing_s`` seconds from its next hop on, without a
        restart (a start takes its own value)."""
        with self._lock:
            if self.engine is not None and self.engine.running:
                self.engine.analyzer.set_smoothing(smoothing_s)
                self.smoothing_s = float(smoothing_s)

    def set_output_settings(self, settings: OutputSettings) -> None:
        """Shape (and mute) the OSC outputs with ``settings`` from now on; no restart needed."""
        self.output_settings = settings
        if self.osc is not None:
            self.osc.settings = settings  # OscSender picks it up on its next send

    def _set_osc(self, destinations: tuple[Destination, ...], model: StudentModel | None,
                 carry_on: bool = False) -> None:
        """Send to ``destinations`` from now on; ``carry_on``: the stream goes on, so the destinations kept
        continue their shaping (a new stream is shaped afresh)."""
        name, provider = (model.card.name, model.provider) if model is not None else ("", "")
        if self.osc is not None and tuple(destinations) == self.destinations and self.osc.model_name == name:
            return
        # May raise DestinationError: the old sender then keeps going.
        new = OscSender(list(destinations), prefix=self.prefix, model_name=name, provider=provider,
                        settings=self.output_settings)
        old, self.osc, self.destinations = self.osc, new, tuple(destinations)
        if old is not None and carry_on:
            new.continue_shaping(old)  # the destinations kept glide on, their held labels stay held
        self._slot.target = new
        if old is not None:
            # flushes what it holds (briefly), stops its thread, closes its sockets; a destination the new
            # sender keeps is not told "stopped" (the audio goes on)
            old.close(still_receiving={d.label for d in new.destinations})

    def drain(self) -> list[Estimate]:
        """Every estimate produced since the last call (oldest first); never blocks."""
        return self.latest.drain()

    def stop(self) -> None:
        """Stop the engine (the source and the analyzer thread); OSC stays open for a restart."""
        with self._lock:
            self._stop_engine()

    def _stop_engine(self) -> None:
        if self.engine is not None:
            self.engine.stop()
        elif self.source is not None:
            self.source.stop()
        # a PortAudio call that never returned: this process cannot use PortAudio again, nor shut it down
        self.audio_hung = self.audio_hung or bool(getattr(self.source, "stuck", False))

    def close(self) -> None:
        """Stop everything and close the OSC sockets (idempotent). A compile that :meth:`prepare` began is
        waited for (it cannot be interrupted, and a thread still compiling at exit can crash it)."""
        self._wait_prepared()
        with self._lock:
            self._stop_engine()
            self._slot.target = None
            if self.osc is not None:
                self.osc.close()
            self.osc, self.destinations = None, ()
            # Let go of the stream (its resampler is a C extension object that must be freed before
            # the interpreter's final teardown, or nanobind reports it as leaked on every exit).
            self.engine = self.source = None

    def osc_stats(self) -> list[dict]:
        return self.osc.stats() if self.osc is not None else []
