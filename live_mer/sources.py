"""Audio sources that fill a :class:`~live_mer.ringbuffer.RingBuffer`: a sound card, a file, the demo.

Every source has ``name``, ``samplerate``, ``channels``, ``ring``, ``start()``, ``stop()``,
``finished`` (a finite source has delivered everything), ``overflows`` and ``error``.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

import numpy as np

from ._cache import cached_array
from .fileanalysis import open_audio
from .ringbuffer import RingBuffer

MIN_RATE, MAX_RATE = 8000, 192000
log = logging.getLogger("live_mer")


class SourceError(RuntimeError):
    """An input that cannot be found or opened; the message says what exists instead."""


def list_input_devices() -> list[dict]:
    """Input devices PortAudio reports: index, name, host API, channels, default sample rate."""
    import sounddevice as sd

    apis = sd.query_hostapis()
    return [{"index": d["index"], "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
             "channels": d["max_input_channels"], "default_samplerate": d["default_samplerate"]}
            for d in sd.query_devices() if d["max_input_channels"] > 0]


def describe_devices(devices: list[dict]) -> str:
    if not devices:
        return "  (none: no sound card or sound server was found)"
    return "\n".join(f"  [{d['index']}] {d['name']} ({d['hostapi']}, {d['channels']} ch, "
                     f"{d['default_samplerate']:.0f} Hz)" for d in devices)


def find_device(device: str | int | None) -> dict:
    """Pick an input device by index, by (case-insensitive) name substring, or the default (None)."""
    import sounddevice as sd

    devices = list_input_devices()
    if device is None or device == "":
        default = sd.default.device[0]
        if default is None or default < 0:
            match = devices[:1]
        else:
            match = [d for d in devices if d["index"] == default] or devices[:1]
    elif isinstance(device, int) or str(device).isdigit():
        match = [d for d in devices if d["index"] == int(device)]
    else:
        exact = [d for d in devices if d["name"].lower() == str(device).lower()]
        match = exact or [d for d in devices if str(device).lower() in d["name"].lower()]
        if len(match) > 1 and not exact:  # two USB interfaces: "USB" must not pick one without a word
            log.warning("input device %r matches %d devices (%s): using [%d] %s; give more of its name, or its "
                        "index (`live-mer devices`)", device, len(match),
                        ", ".join(f"[{d['index']}] {d['name']}" for d in match), match[0]["index"], match[0]["name"])
    if not match:
        wanted = "a default input device" if device in (None, "") else f"input device {device!r}"
        raise SourceError(f"no {wanted}; available input devices:\n{describe_devices(devices)}")
    return match[0]


def _check_rate(rate: int) -> int:
    if not MIN_RATE <= int(rate) <= MAX_RATE:
        raise SourceError(f"sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    return int(rate)


_open_streams = 0  # DeviceSource streams open in this process (PortAudio is re-initialised only at 0)


def refresh_devices() -> bool:
    """Make PortAudio list devices afresh (it reads the list once, at initialisation).

    Re-initialising PortAudio would kill open streams, so this does nothing and returns False while
    any DeviceSource stream of this process is open; True when the list was refreshed.
    """
    import sounddevice as sd

    if _open_streams:
        return False
    sd._terminate()
    sd._initialize()
    return True


class AudioSystemError(SourceError):
    """The audio system stopped responding: a PortAudio call on the input has not returned. Only a new
    process gets a working PortAudio again, so the analysis stops with this error (a non-zero exit that a
    service manager restarts on)."""


def exit_after_audio_hang(status: int) -> NoReturn:
    """End the process now, with ``status`` (1 if 0), after a PortAudio call never returned: PortAudio's
    exit handler would wait on that call for ever, and a service manager restarts on the exit status."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): exit all the same
            pass
    os._exit(status or 1)


class DeviceSource:
    """A sound card input through ``sounddevice.InputStream``, reopened by itself when the device is lost.

    The PortAudio callback only copies into the ring buffer; PortAudio status flags
    (input overflow/underflow) and dropped blocks are counted, never logged from the callback.
    The analyzer thread calls :meth:`check` a few times a second: a stream that stopped or delivered
    nothing for ``stall_s`` is closed and reopened on the device with the same name, with backoff
    (0.5 s doubling to 8 s), without restarting anything else. The device counts as back once it
    delivers audio again, not when it merely opens (a suspended source opens and stays silent).

    After :meth:`start`, every PortAudio call (closing a lost stream, listing devices, reopening,
    stopping) runs on this source's own worker thread, never the analyzer's: a sound server that dies
    can leave such a call waiting for ever (PulseAudio's ALSA plugin did), and the estimates must keep
    coming meanwhile. A call that has not returned after ``stuck_s`` makes :meth:`check` raise
    :class:`AudioSystemError`; :meth:`stop` waits ``close_wait_s`` at most and then sets ``stuck``.
    A source is started once and stopped once (stopping again only waits for the first stop).
    """

    stall_s = 1.0
    backoff_s = (0.5, 1.0, 2.0, 4.0, 8.0)
    stuck_s = 10.0
    close_wait_s = 10.0  # as long as a call may take before it counts as stuck: a slow reopen is not a hang

    def __init__(self, device: str | int | None = None, samplerate: int | None = None, channels: int | None = None,
                 blocksize: int = 0, ring_seconds: float = 4.0):
        info = find_device(device)
        self.info = info
        self.name = info["name"]
        try:
            self.samplerate = _check_rate(samplerate or int(info["default_samplerate"]))
        except SourceError as exc:
            raise SourceError(f"input device {self.name!r}: {exc}"
                              + ("" if samplerate else " (its default rate: choose one with --samplerate)")) from None
        self.channels = int(channels or min(2, info["channels"]))
        if not 1 <= self.channels <= info["channels"]:
            raise SourceError(f"input device {self.name!r} has {info['channels']} channels, {self.channels} asked")
        self.blocksize = int(blocksize)
        # a block of more than a third of stall_s comes too seldom to tell a lost device by: wait three blocks
        self.stall_s = max(self.stall_s, 3.0 * self.blocksize / self.samplerate)
        self.ring = RingBuffer(int(self.samplerate * max(ring_seconds, 2.0 * self.stall_s)), self.channels)
        self.status_flags = 0
        self.error: Exception | None = None
        self.finished = False
        self.lost = False  # True between losing the device and hearing it again
        self.losses = 0
        self.reopen_error = ""
        self.stuck = False  # a PortAudio call never returned: this process's PortAudio is unusable
        self._stream = None
        self._seen_written = 0
        self._seen_at = 0.0
        self._attempt = 0
        self._retry_at = 0.0
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._pending = False  # a job is queued or running on the worker
        self._busy_since: float | None = None  # when the running job started
        self._lock = threading.Lock()  # guards _stream handovers, _submit and the start of stop()
        self._stopped: threading.Event | None = None  # set by the worker once stop()'s close has run

    def _callback(self, indata, frames, time_info, status) -> None:
        if status:
            self.status_flags += 1
        self.ring.write(indata)

    @property
    def overflows(self) -> int:
        return self.ring.overflows + self.status_flags

    def start(self) -> None:
        """Open the stream (in the caller's thread, so that a device that cannot be opened is an error now)."""
        self._open()

    def _open(self) -> None:
        import sounddevice as sd

        global _open_streams
        try:
            self._stream = sd.InputStream(device=self.info["index"], channels=self.channels,
                                          samplerate=self.samplerate, dtype="float32", blocksize=self.blocksize,
                                          latency="low", callback=self._callback)
            self._stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            if self._stream is not None:
                self._stream.close()
            self._stream = None
            raise SourceError(f"cannot open input device {self.name!r} at {self.samplerate} Hz with "
                              f"{self.channels} channel(s): {exc}") from None
        _open_streams += 1
        self._seen_written, self._seen_at = self.ring._written, time.monotonic()

    def _close_stream(self) -> None:
        global _open_streams
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:  # a vanished device may fail to close; it is gone either way
                pass
            _open_streams -= 1

    def _reopen(self) -> None:
        try:
            refresh_devices()
            match = [d for d in list_input_devices() if d["name"] == self.name]
            if not match:
                raise SourceError(f"input device {self.name!r} is not present")
            self.info = match[0]
            self._open()
        except SourceError as exc:
            self.reopen_error = str(exc)

    def _submit(self, job) -> None:
        """Run ``job`` on the worker thread (started on first use), unless the source is stopping."""
        with self._lock:
            if self._stopped is not None:
                return
            self._pending = True
            self._ensure_worker()
            self._jobs.put(job)

    def _ensure_worker(self) -> None:  # with self._lock held
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="live_mer-audio-device", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._busy_since = time.monotonic()
            try:
                job()
            except Exception as exc:  # the worker must outlive any one failure
                self.reopen_error = str(exc)
            finally:
                self._busy_since = None
                self._pending = False

    def check(self, now: float | None = None) -> str:
        """Watchdog, called by the analyzer thread (never blocks): returns "ok", "lost" or "recovered".

        Raises :class:`AudioSystemError` when a PortAudio call has been stuck for ``stuck_s``.
        """
        now = time.monotonic() if now is None else now
        if self._stopped is not None:
            return "lost" if self.lost else "ok"
        busy = self._busy_since
        if busy is not None and now - busy > self.stuck_s:
            self.stuck = True
            raise AudioSystemError(
                f"the audio system stopped responding: a call to close or reopen input device {self.name!r} has "
                f"not returned for {now - busy:.0f} s; restart live-mer (as a service, restart it on failure)")
        if not self.lost:
            written = self.ring._written
            if written != self._seen_written:
                self._seen_written, self._seen_at = written, now
                return "ok"
            stream = self._stream
            if stream is not None and stream.active and now - self._seen_at < self.stall_s:
                return "ok"
            self.lost = True
            self.losses += 1
            self._attempt = 0
            self._retry_at = now + self.backoff_s[0]
            self._submit(self._close_stream)
            log.warning("input device %r lost; reopening", self.name)
            return "lost"
        if self._pending:
            return "lost"
        if self._stream is not None:  # reopened: back once audio arrives
            if self.ring._written != self._seen_written:
                self._seen_written, self._seen_at = self.ring._written, now
                self.lost = False
                self.reopen_error = ""
                log.warning("input device %r is back (after %d attempt(s))", self.name, self._attempt)
                return "recovered"
            if now - self._seen_at >= self.stall_s:
                self.reopen_error = f"input device {self.name!r} opens but delivers no audio"
                self._submit(self._close_stream)
            return "lost"
        if now < self._retry_at:
            return "lost"
        self._retry_at = now + self.backoff_s[min(self._attempt, len(self.backoff_s) - 1)]
        self._attempt += 1
        self._submit(self._reopen)
        return "lost"

    @property
    def active(self) -> bool:
        stream = self._stream
        return stream is not None and stream.active

    def stop(self) -> None:
        """Close the stream on the worker, waiting ``close_wait_s`` at most (then ``stuck`` is set)."""
        with self._lock:
            first = self._stopped is None
            if first:
                self._stopped = threading.Event()
                self._ensure_worker()
                for job in (self._close_stream, self._stopped.set, None):  # None: the worker ends
                    self._jobs.put(job)
        if not first and self.stuck:
            return
        if self._stopped.wait(self.close_wait_s):
            worker = self._worker
            if worker is not None and worker is not threading.current_thread():
                worker.join(1.0)  # it ends right after the stop: gone when stop returns
        elif first:
            self.stuck = True
            log.warning("input device %r did not close within %.1f s: the audio system is not responding",
                        self.name, self.close_wait_s)


class _PlayerSource:
    """Plays blocks from :meth:`_blocks` into the ring from a thread, paced in real time or not."""

    block_frames = 1024

    def __init__(self, name: str, samplerate: int, channels: int, realtime: bool, ring_seconds: float = 4.0):
        self.name = name
        try:
            self.samplerate = _check_rate(samplerate)
        except SourceError as exc:
            raise SourceError(f"{name}: {exc}") from None
        self.channels = channels
        self.realtime = realtime
        self.ring = RingBuffer(int(self.samplerate * ring_seconds), channels)
        self.finished = False
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def overflows(self) -> int:
        return self.ring.overflows

    def _blocks(self):
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"live_mer-source-{self.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.perf_counter()
        played = 0
        try:
            for block in self._blocks():
                if self._stop.is_set():
                    return
                if self.realtime:
                    # Pace by the block's *end* so the analyzer never sees audio "from the future".
                    delay = start + (played + block.shape[0]) / self.samplerate - time.perf_counter()
                    if delay > 0 and self._stop.wait(delay):
                        return
                    self.ring.write(block)  # a slow consumer loses audio, exactly as with a sound card
                else:
                    while self.ring.capacity - self.ring.available() < block.shape[0]:
                        if self._stop.wait(0.002):
                            return
                    self.ring.write(block)
                played += block.shape[0]
        except Exception as exc:  # reported to the engine, which stops cleanly
            self.error = exc
        self.finished = True  # not when stopped: it has not delivered everything (listen's "ended before ...")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


class FileSource(_PlayerSource):
    """Any file soundfile decodes, paced in real time (``realtime=True``) or as fast as the analyzer goes."""

    def __init__(self, path: str | Path, realtime: bool = True, loop: bool = False):
        self.path = Path(path)
        with open_audio(self.path) as f:
            rate, channels = f.samplerate, f.channels
        super().__init__(self.path.name, rate, channels, realtime)
        self.loop = loop

    def _blocks(self):
        from .fileanalysis import FileBlocks

        warned = False
        while True:
            with open_audio(self.path) as f:
                if (f.samplerate, f.channels) != (self.samplerate, self.channels):  # replaced while looping
                    raise SourceError(f"{self.path} changed while playing: now {f.samplerate} Hz, {f.channels} "
                                      f"channel(s), was {self.samplerate} Hz, {self.channels}; start listen again "
                                      "to play it (as a service: it restarts on failure)")
                blocks = FileBlocks(f, self.block_frames)
                yield from blocks
            if blocks.damage and not warned:  # played as if the file ended there: a looping installation goes on
                log.warning("%s: %s; played as far as it goes (a damaged or truncated file?)", self.path, blocks.damage)
                warned = True
            if not self.loop:
                return


def demo_audio(samplerate: int) -> np.ndarray:
    """The demo piece at ``samplerate``, rendered once and kept on disk (memory-mapped afterwards).

    Rendering needs ~100 MB of temporary memory for a moment; an installation that starts on the demo
    should not pay that at every start. The cache key includes a hash of the synthesis code.
    """
    import hashlib

    from . import demo

    code = hashlib.sha1(Path(demo.__file__).read_bytes()).hexdigest()[:12]
    return cached_array("demo", f"demo-{samplerate}-{code}",
                        lambda: np.asarray(demo.render_demo(samplerate), dtype=np.float32), mmap=True)


class DemoSource(_PlayerSource):
    """The built-in generated demo piece (:mod:`live_mer.demo`), looped, paced in real time by default.

    ``seconds`` limits the total audio played (e.g. an hour of the looped piece for a soak test). The
    default rate is the analysis rate, so no resampling is needed.
    """

    def __init__(self, samplerate: int = 22050, realtime: bool = True, loop: bool = True,
                 seconds: float | None = None):
        super().__init__("demo", samplerate, 1, realtime)
        self.loop = loop
        self.seconds = seconds

    def _blocks(self):
        audio = demo_audio(self.samplerate).reshape(-1, 1)
        remaining = int(self.seconds * self.samplerate) if self.seconds is not None else None
        while True:
            for i in range(0, audio.shape[0], self.block_frames):
                block = audio[i:i + self.block_frames]
                if remaining is not None:
                    if remaining <= 0:
                        return
                    block = block[:remaining]
                    remaining -= block.shape[0]
                yield block
            if not self.loop:
                return
