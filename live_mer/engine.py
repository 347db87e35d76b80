"""The analyzer thread: source ring buffer -> Analyzer -> sinks.

One thread does all DSP and inference and never waits on a sink: sinks are plain callables that must
not block (the OSC sender uses non-blocking sockets; :class:`LatestEstimates` just stores). A sink
that raises is counted and logged (rate limited), and analysis goes on. When the stream ends (the end
of a file, an error, :meth:`Engine.stop`), sinks that have an ``end_of_stream()`` method are told.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Callable

import numpy as np

from .analyzer import Analyzer
from .estimate import Estimate

log = logging.getLogger("live_mer")

Sink = Callable[[Estimate], None]


class LatestEstimates:
    """A non-blocking sink keeping the newest ``maxlen`` estimates for another thread (UI, terminal)."""

    def __init__(self, maxlen: int = 1024):
        self._items: collections.deque[Estimate] = collections.deque(maxlen=maxlen)

    def __call__(self, est: Estimate) -> None:
        self._items.append(est)  # deque.append is atomic; the oldest item falls off when full

    def drain(self) -> list[Estimate]:
        out = []
        while True:
            try:
                out.append(self._items.popleft())
            except IndexError:
                return out


class Engine:
    """Run ``analyzer`` on ``source`` in a background thread, feeding every estimate to ``sinks``.

    Parameters
    ----------
    source
        A started-or-not source from :mod:`live_mer.sources`.
    analyzer : Analyzer
        Built for ``source.samplerate``.
    sinks : list of callables
        Each is called with every :class:`Estimate`, in the analyzer thread; must not block.
    max_backlog_s : float
        If more unread audio than this piles up (the machine could not keep up), the oldest audio is
        dropped so estimates stay close to real time; ``dropped_s`` counts it. It is counted beyond one of
        the source's blocks (a sound card's ``blocksize``): a large block arrives whole, which is not falling behind.

    A sound card source is watched (``source.check``): when it is lost the analyzer is fed silence,
    estimates carry ``input_ok=False``, and the source reopens the device by itself.
    """

    poll_s = 0.004
    check_s = 0.25  # how often the device watchdog runs

    def __init__(self, source, analyzer: Analyzer, sinks: list[Sink], max_backlog_s: float = 1.0):
        if analyzer.input_rate != source.samplerate:
            raise ValueError(f"analyzer expects {analyzer.input_rate} Hz, source delivers {source.samplerate} Hz")
        self.source = source
        self.analyzer = analyzer
        self.sinks = list(sinks)
        # (a 65536-frame block at 48 kHz lost 0.37 s of its 1.37 s to a limit of one second counted from zero)
        self.max_backlog = int(max_backlog_s * source.samplerate) + int(getattr(source, "blocksize", 0))
        self.estimates = 0
        self.sink_errors = 0
        self.dropped_s = 0.0
        self.backlog_s = 0.0  # unread audio when the analyzer last took a block
        self.input_lost = False
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sink_log = 0.0

    def start(self) -> None:
        """Warm the analyzer up (a first run compiles its kernels), then start the source and the thread."""
        self.analyzer.warm_up()
        self.source.start()
        self._thread = threading.Thread(target=self._run, name="live_mer-analyzer", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        ring = self.source.ring
        scratch = np.empty((ring.capacity, ring.channels), dtype=np.float32)
        live = getattr(self.source, "realtime", True)  # only paced sources may drop audio to catch up
        check = getattr(self.source, "check", None)  # device watchdog (sound cards only)
        next_check = 0.0
        silence_from = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if check is not None and now >= next_check:
                    next_check = now + self.check_s
                    state = check(now)
                    if state == "lost" and not self.input_lost:
                        self.input_lost, silence_from = True, now
                    elif state == "recovered":
                        self.input_lost = False
                if self.input_lost:
                    # Keep estimates (and OSC status) flowing while the device is away: feed silence.
                    n = int((now - silence_from) * self.source.samplerate)
                    if n > 0:
                        silence_from += n / self.source.samplerate
                        self._emit(self.analyzer.process(np.zeros(n, np.float32), self.source.overflows),
                                   input_ok=False)
                    self._stop.wait(self.poll_s)
                    continue
                # `finished` first: a finite source sets it after its last write, so a ring found empty after
                # it was seen holds everything (checked the other way round, a last block written in between
                # would never be analysed).
                finished = self.source.finished
                if ring.available() == 0:
                    if finished:
                        if self.source.error is not None:
                            raise self.source.error
                        self._emit(self.analyzer.finish(self.source.overflows))
                        return
                    self._stop.wait(self.poll_s)
                    continue
                if live and self.max_backlog:
                    dropped = ring.discard_to_latest(self.max_backlog)
                    self.dropped_s += dropped / self.source.samplerate
                self.backlog_s = ring.available() / self.source.samplerate
                block = ring.read(scratch)
                self._emit(self.analyzer.process(block, overflows=self.source.overflows))
        except Exception as exc:
            self.error = exc
            log.error("analysis stopped: %s", exc)
        finally:
            for sink in self.sinks:
                end = getattr(sink, "end_of_stream", None)
                if end is not None:
                    try:
                        end()
                    except Exception as exc:
                        log.warning("output %r failed at the end of the stream: %s", sink, exc)

    def _emit(self, estimates: list[Estimate], input_ok: bool = True) -> None:
        for est in estimates:
            if not input_ok:
                est = dataclasses.replace(est, input_ok=False)
            self.estimates += 1
            for sink in self.sinks:
                try:
                    sink(est)
                except Exception as exc:
                    self.sink_errors += 1
                    now = time.monotonic()
                    if now - self._last_sink_log > 5.0:
                        self._last_sink_log = now
                        log.warning("output %r failed (%d failures so far): %s", sink, self.sink_errors, exc)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a finite source to be fully analysed; True if the thread ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def stop(self) -> None:
        """Stop the source and the analyzer thread (idempotent)."""
        self._stop.set()
        if self._thread is not None:  # first: the analyzer thread's watchdog then hands the source no more work
            self._thread.join(timeout=5.0)
        self.source.stop()
