"""The Analyzer: audio blocks in, one :class:`~live_mer.estimate.Estimate` per model hop out.

The same object serves live input, files, training-time evaluation and benchmarks: it owns the
feature front end, a rolling window of feature frames, the ONNX student and the output smoothing.
It is not thread-safe; one thread feeds it.
"""

from __future__ import annotations

import collections
import math
import time
from types import MappingProxyType

import numpy as np

from ._numba import njit
from .estimate import Estimate
from .features import FrameBatch, Frontend
from .harmony import StreamKey, camelot, chord_ext_label, chord_label, key_name, open_key
from .model import StudentModel

CLIP_LEVEL = 0.999
MIX_LOSS_DB = 10.0  # a mix to mono this far under its channels' own power: they cancel (one in opposite polarity)
_MIX_FLOOR = 1e-8  # channels quieter than this mean power per sample (-80 dBFS) are not judged
MAX_SMOOTHING_S = 60.0  # the estimates' smoothing time constant ranges over 0..this (config, flags, monitor)
# Beyond this (+24 dBFS) a sample is corrupt data, not sound (random bytes read as float, a broken driver):
# it is silenced and counted like NaN/Inf, so it cannot push the level-relative chroma gate out of reach.
MAX_SAMPLE = 16.0
_MAX_SAMPLE, _CLIP_LEVEL = np.float32(MAX_SAMPLE), np.float32(CLIP_LEVEL)  # as _scan takes them


@njit(cache=True, nogil=True)
def _scan(x, limit, clip_level, clean):
    """One pass over a block: ``clean`` gets ``x`` with invalid samples (NaN, Inf, beyond ``limit``)
    silenced; returns (invalid count, peak of the rest, samples at or beyond ``clip_level``). Several
    numpy passes cost more than the analysis of a 512-sample block itself."""
    invalid = 0
    clipped = 0
    peak = 0.0
    for i in range(x.shape[0]):
        v = x[i]
        m = abs(v)
        if m <= limit:  # False for NaN
            clean[i] = v
            if m > peak:
                peak = m
            if m >= clip_level:
                clipped += 1
        else:
            clean[i] = 0.0
            invalid += 1
    return invalid, float(peak), clipped


def hop_frames(card, hop_s: float) -> int:
    """Feature frames per estimate for ``hop_s`` seconds (0: the card's own hop); raises ValueError naming
    the allowed range."""
    if hop_s == 0:
        return card.hop_frames
    frame_s = 1.0 / card.spec.frame_rate
    lowest, highest = math.ceil(frame_s * 1e4) / 1e4, math.floor(card.window_seconds * 100) / 100  # printed
    if not frame_s * 0.999 <= hop_s <= card.window_seconds:  # (NaN fails too) the printed limits pass
        raise ValueError(f"hop {hop_s!r} s is not allowed: 0 for the model's own ({card.hop_seconds:.3f} s), "
                         f"else {lowest:g}..{highest:g} s (it is rounded to whole feature frames of "
                         f"{frame_s * 1000:.1f} ms)")
    return max(1, int(round(hop_s / frame_s)))


def mix_loss_db(channel_power: float, mix_power: float, frames: int) -> float:
    """How far (dB) the mix to mono of ``frames`` input frames fell under its channels' own power
    (:attr:`Analyzer.channel_power`, :attr:`Analyzer.mix_power`, or their growth over a stretch); 0 where
    there is nothing to judge (one channel, near silence). Channels of one mono source lose nothing, unrelated
    ones 3 dB; channels in opposite polarity (a miswired cable, a phase switch) cancel, and the analysis,
    which hears the mix, hears little of the music: at :data:`MIX_LOSS_DB` or more, say so."""
    if frames <= 0 or channel_power <= _MIX_FLOOR * frames:
        return 0.0
    return -10.0 * math.log10(max(mix_power / channel_power, 1e-12))


def mix_loss_text(loss_db: float) -> str:
    """How ``analyze`` and ``listen`` say that the channels cancel (a :func:`mix_loss_db` of ``loss_db``)."""
    loss = "all but nothing" if loss_db >= 100 else f"{loss_db:.0f} dB"
    return (f"the channels cancel each other when mixed to mono (the mix loses {loss} of their power: one "
            "channel in opposite polarity?), and the analysis hears the mix")


class Analyzer:
    """Streaming emotion, chord and key analysis of one audio stream.

    Parameters
    ----------
    model : StudentModel
        A loaded, verified student (:func:`live_mer.model.load_model`); its card fixes the features,
        the window length and the hop.
    input_rate : int
        Sample rate of the audio passed to :meth:`process` (8 kHz .. 192 kHz; resampled internally).
    smoothing_s : float
        Time constant of the one-pole smoothing applied to valence, arousal and head outputs
        (0 disables it).
    hop_s : float
        Seconds between estimates: 0 (the default) for the model's own hop (its card), else from one
        feature frame (about 23 ms) to the window, rounded to whole frames. The model reads the same
        window whatever the hop; a shorter hop makes the level, onset, chord and key outputs follow the
        music sooner and costs one model run per estimate (README, *How quickly it reacts*).
    """

    def __init__(self, model: StudentModel, input_rate: int, smoothing_s: float = 1.0, hop_s: float = 0.0):
        self.model = model
        card = model.card
        self.frontend = Frontend(card.spec, input_rate)
        self.window_frames, self.hop_frames = card.window_frames, hop_frames(card, hop_s)
        self._cat_heads = [h for h in card.heads if h.name != "va"]
        self.set_smoothing(smoothing_s)
        self._silence = self.frontend.silence_row()
        self._stream_key = StreamKey()
        spec = card.spec
        # The input's checks are counted towards the estimate whose hop heard them: a block longer than a hop
        # (a large block size, a short hop) gave all its clipping and its peak to its first estimate and none
        # to the next. A hop is fixed, so estimate k has heard the input up to sample k * this (Frontend.reset:
        # a frame at time t ends at input sample t * rate); a block is cut only where such a boundary falls.
        self._hop_input = self.hop_frames * spec.hop_length / spec.sample_rate * input_rate
        self.reset()

    def set_smoothing(self, smoothing_s: float) -> None:
        """Change the smoothing time constant (seconds, 0 = off) without restarting the stream."""
        if not 0 <= smoothing_s <= MAX_SMOOTHING_S:
            raise ValueError(f"smoothing_s must be 0..{MAX_SMOOTHING_S:g} s, got {smoothing_s}")
        self._alpha = 1.0 if smoothing_s == 0 else 1.0 - float(np.exp(-self.hop_seconds / smoothing_s))

    @property
    def input_rate(self) -> int:
        return self.frontend.input_rate

    @property
    def frames_heard(self) -> int:
        """Input frames (samples per channel) analysed since the start."""
        return self._heard

    @property
    def hop_seconds(self) -> float:
        """Seconds between estimates."""
        return self.hop_frames / self.model.card.spec.frame_rate

    def warm_up(self) -> float:
        """Run every kernel and the model once on a second of quiet noise, then start the stream afresh;
        returns the seconds it took. The first run after an install or update compiles the Numba
        kernels (10-20 s on a 2-core VM); later runs load them from the cache in a fraction of a
        second. Call it before a live source starts, so the compile cannot overflow the input."""
        t0 = time.perf_counter()
        noise = np.random.default_rng(0).standard_normal(self.input_rate).astype(np.float32) * np.float32(0.01)
        self.process(noise)
        self.reset()
        return time.perf_counter() - t0

    def reset(self) -> None:
        """Start a new stream: the window is refilled with silence, smoothing and counters restart."""
        self.frontend.reset()
        # History holds 2 windows so the newest window is always one contiguous slice; when the end is
        # reached the last window is moved to the front (amortised, no per-frame copy).
        self._hist = np.tile(self._silence, (2 * self.window_frames, 1))
        self._end = self.window_frames
        self._since_hop = 0
        self._smoothed: np.ndarray | None = None
        self._heard = 0  # input frames (samples per channel) checked so far
        self._hops_heard = 0  # hop boundaries the input has passed
        self._open_hop = (0, 0.0, 0)  # (invalid, peak, clipped) since the last boundary
        self._pieces: collections.deque = collections.deque()  # (end, invalid, peak, clipped) of whole hops
        self._onset_sum = 0.0
        self._power_sum = 0.0  # the hop's frames' power (linear), for its level
        # Since the start, of input with more than one channel: the channels' power (mean over the channels) and the
        # power of their mix to mono; far less in the mix means the channels cancel (see mix_loss_db).
        self.channel_power = 0.0
        self.mix_power = 0.0
        self._key_changed = False
        self._stream_key.reset()

    def stream_key(self) -> tuple[int, float]:
        """The key of everything since :meth:`reset` (key index, confidence; -1 before any chord, or while the
        live tracker has not established a key): a file's key, judged on the whole stream
        (:class:`~live_mer.harmony.StreamKey`), unlike the live ``key``."""
        return self._stream_key.estimate()

    def process(self, audio: np.ndarray, overflows: int = 0) -> list[Estimate]:
        """Analyse the next block of audio (frames, or frames x channels, any float dtype).

        Invalid samples (NaN, Inf, beyond ``MAX_SAMPLE``) are replaced by silence and counted, and clipped
        ones counted, in every channel; then the channels are averaged to mono.
        Returns the estimates whose hops completed inside this block (often zero or one).
        """
        t0 = time.perf_counter()
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim not in (1, 2):
            raise ValueError(f"audio must be 1-D (frames) or 2-D (frames x channels), got shape {x.shape}")
        # Checked per channel before the mix: one clipping channel beside a quiet one is clipping, and the
        # peak is the loudest channel's (the mean of the two would hide both).
        x = self._inspect(x)
        if x.ndim == 2 and x.shape[1] > 1:
            channels, flat = x.shape[1], x.reshape(-1)
            x = x.mean(axis=1)
            self.channel_power += float(np.dot(flat, flat)) / channels
            self.mix_power += float(np.dot(x, x))
        elif x.ndim == 2:
            x = x[:, 0]
        return self._consume(self.frontend.push(x), overflows, t0)

    def finish(self, overflows: int = 0) -> list[Estimate]:
        """Flush the resampler at the end of a finite stream; returns any final estimates."""
        t0 = time.perf_counter()
        empty = np.zeros(0, dtype=np.float32)
        return self._consume(self.frontend.push(empty, flush=True), overflows, t0, last=True)

    def _inspect(self, x: np.ndarray) -> np.ndarray:
        if x.size == 0:
            return x
        clean = np.empty(x.shape, np.float32)
        flat, out = x.reshape(-1), clean.reshape(-1)
        n, width = x.shape[0], x.size // x.shape[0]  # frames, channels
        start = 0
        while start < n:  # once, or twice where a hop ends inside the block
            boundary = round((self._hops_heard + 1) * self._hop_input) - self._heard
            end = min(n, max(start + 1, boundary))
            invalid, peak, clipped = _scan(flat[start * width:end * width], _MAX_SAMPLE, _CLIP_LEVEL,
                                           out[start * width:end * width])
            bad, top, clip = self._open_hop
            self._open_hop = (bad + invalid, max(top, peak), clip + clipped)
            if end >= boundary:
                self._pieces.append((self._heard + end, *self._open_hop))
                self._open_hop = (0, 0.0, 0)
                self._hops_heard += 1
            start = end
        self._heard += n
        return clean

    def _input_checks(self, t: float, last: bool) -> tuple[int, float, int]:
        """Invalid samples, peak and clipped samples of the input heard for the estimate whose last frame
        ends at stream time ``t`` and not counted before (all that is left for the ``last`` of a stream)."""
        heard = t * self.input_rate + 0.5  # a frame time t ends at input sample t * rate (Frontend.reset)
        invalid, peak, clipped = 0, 0.0, 0
        while self._pieces and (last or self._pieces[0][0] <= heard):
            _, n_bad, p, n_clip = self._pieces.popleft()
            invalid, peak, clipped = invalid + n_bad, max(peak, p), clipped + n_clip
        if last:
            (n_bad, p, n_clip), self._open_hop = self._open_hop, (0, 0.0, 0)
            invalid, peak, clipped = invalid + n_bad, max(peak, p), clipped + n_clip
        return invalid, peak, clipped

    def _consume(self, batch: FrameBatch, overflows: int, t0: float, last: bool = False) -> list[Estimate]:
        self._stream_key.update(batch.chroma, batch.bass_chroma, batch.chord, batch.key)
        # (frame index in batch, window copy, onset mean, key changed during the hop, level of the hop)
        due: list[tuple[int, np.ndarray, float, bool, float]] = []
        i, n = 0, len(batch)
        while i < n:
            take = min(n - i, self.hop_frames - self._since_hop)
            self._append(batch.features[i:i + take])
            self._onset_sum += float(batch.onset[i:i + take].sum())
            # a block brings a frame or two: plain floats cost several times less here than a numpy expression
            self._power_sum += sum(10.0 ** (v / 10.0) for v in batch.loudness_db[i:i + take].tolist())
            self._key_changed |= bool(batch.key_change[i:i + take].any())
            self._since_hop += take
            i += take
            if self._since_hop == self.hop_frames:
                # the hop's level is its frames' mean power: one frame of it would alias (a drum hit every
                # half second read -120 dB between hits, most of the time); each frame's power already
                # holds the features' 1e-12 floor, so silence stays -120
                level = 10.0 * math.log10(self._power_sum / self.hop_frames)
                due.append((i - 1, self._hist[self._end - self.window_frames:self._end].copy(),
                            self._onset_sum / self.hop_frames, self._key_changed, level))
                self._since_hop = 0
                self._onset_sum = 0.0
                self._power_sum = 0.0
                self._key_changed = False
        if not due:
            return []
        outputs = self.model.run(np.stack([w for _, w, _, _, _ in due]))
        latency_ms = (time.perf_counter() - t0) * 1000.0
        return [self._estimate(k, frame, onset, changed, level, outputs, batch, overflows, latency_ms,
                               last and k == len(due) - 1)
                for k, (frame, _, onset, changed, level) in enumerate(due)]

    def _append(self, rows: np.ndarray) -> None:
        n = rows.shape[0]
        if self._end + n > self._hist.shape[0]:
            keep = self.window_frames
            self._hist[:keep] = self._hist[self._end - keep:self._end]
            self._end = keep
        self._hist[self._end:self._end + n] = rows
        self._end += n

    def _estimate(self, k: int, frame: int, onset: float, key_changed: bool, level_db: float,
                  outputs: dict[str, np.ndarray], batch: FrameBatch, overflows: int, latency_ms: float,
                  last: bool) -> Estimate:
        raw = np.concatenate([np.asarray(outputs["va"][k], dtype=np.float64)]
                             + [np.asarray(outputs[h.name][k], dtype=np.float64) for h in self._cat_heads])
        raw = np.nan_to_num(raw, nan=0.0, posinf=1.0, neginf=-1.0)
        if self._smoothed is None:
            self._smoothed = raw
        else:
            self._smoothed = self._smoothed + self._alpha * (raw - self._smoothed)
        values = self._smoothed
        heads, quadrant, offset = {}, "", 2
        for h in self._cat_heads:
            vals = values[offset:offset + len(h.names)]
            offset += len(h.names)
            heads[h.name] = MappingProxyType({name: float(v) for name, v in zip(h.names, vals)})
            if h.name == "quadrant":
                quadrant = h.names[int(np.argmax(vals))]
        key = int(batch.key[frame])
        invalid, peak, clipped = self._input_checks(float(batch.times[frame]), last)
        return Estimate(
            t=float(batch.times[frame]),
            valence=float(np.clip(values[0], -1.0, 1.0)),
            arousal=float(np.clip(values[1], -1.0, 1.0)),
            quadrant=quadrant,
            heads=MappingProxyType(heads),
            chord=chord_label(int(batch.chord[frame])),
            chord_confidence=float(batch.chord_confidence[frame]),
            key=key_name(key), key_camelot=camelot(key), key_open=open_key(key),
            key_confidence=float(batch.key_confidence[frame]),
            chord_ext=chord_ext_label(int(batch.chord_ext[frame])),
            chord_ext_confidence=float(batch.chord_ext_confidence[frame]),
            key_change=key_changed,
            loudness_db=level_db,
            onset=float(onset),
            peak=peak, clipped=clipped, nonfinite=invalid,
            overflows=int(overflows), latency_ms=latency_ms,
        )
