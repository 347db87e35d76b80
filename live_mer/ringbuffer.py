"""Single-producer / single-consumer ring buffer for audio frames.

The producer is the PortAudio callback (or a file/demo thread), the consumer is the analyzer thread.
Each side owns one monotonically increasing counter (``_written`` / ``_read``); a Python int
assignment is atomic under the GIL, so neither side takes a lock. ``write`` only copies into the
preallocated array: no allocation of sample memory, no lock, no logging, no I/O, so it is safe to
call from an audio callback. When the consumer falls behind, ``write`` drops the *incoming* block and
counts it (the producer may not move the consumer's counter); the consumer can then skip ahead
with :meth:`discard_to_latest` to catch up on the newest audio.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Preallocated float32 ring of ``capacity`` frames x ``channels``.

    Parameters
    ----------
    capacity : int
        Frames the ring holds (e.g. a few seconds of audio).
    channels : int
        Interleaved channels per frame; the consumer mixes down.
    """

    def __init__(self, capacity: int, channels: int = 1):
        if capacity < 1 or channels < 1:
            raise ValueError("capacity and channels must be >= 1")
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._data = np.zeros((self.capacity, self.channels), dtype=np.float32)
        self._written = 0  # producer-owned
        self._read = 0  # consumer-owned
        self.overflows = 0  # producer-owned: blocks dropped because the ring was full
        self.dropped_frames = 0  # producer-owned

    def available(self) -> int:
        """Frames written and not yet read (consumer side)."""
        return self._written - self._read

    def write(self, block: np.ndarray) -> bool:
        """Copy ``block`` (frames x channels) in; returns False (and counts an overflow) if it does not fit."""
        n = block.shape[0]
        written = self._written
        if n > self.capacity - (written - self._read):
            self.overflows += 1
            self.dropped_frames += n
            return False
        start = written % self.capacity
        first = min(n, self.capacity - start)
        self._data[start:start + first] = block[:first]
        if first < n:
            self._data[: n - first] = block[first:]
        self._written = written + n  # publish only after the copy is complete
        return True

    def read(self, out: np.ndarray | None = None) -> np.ndarray:
        """Take every unread frame as a (frames x channels) array (in ``out`` when it is large enough)."""
        n = self.available()
        if out is None or out.shape[0] < n:
            out = np.empty((n, self.channels), dtype=np.float32)
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._data[start:start + first]
        if first < n:
            out[first:n] = self._data[: n - first]
        self._read += n
        return out[:n]

    def discard_to_latest(self, keep_frames: int) -> int:
        """Drop all but the newest ``keep_frames`` unread frames (consumer side); returns frames dropped."""
        excess = self.available() - keep_frames
        if excess > 0:
            self._read += excess
            return excess
        return 0
