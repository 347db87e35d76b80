"""Streaming feature front end: the one feature path used live, on files, in training and in evaluation.

Audio at any input rate goes in; per analysis frame (``hop_length`` samples at ``sample_rate``) comes
out a fixed-layout feature vector (:meth:`FeatureSpec.feature_names`) plus the harmony labels.

Stages: soxr streaming resampler -> framing with a Hann window -> ``scipy.fft.rfft`` over a batch of
frames -> one Numba kernel per batch that applies the (sparse) mel and chroma filterbanks from
``librosa.filters`` and computes loudness and onset strength -> :class:`~live_mer.harmony.HarmonyTracker`.
The kernel is hand-written because librosa's feature functions work on whole signals, recompute the
STFT per feature, and allocate per call; here the filterbanks are built once and applied in place.
Chroma is not a fixed filterbank: :func:`live_mer.harmony.peak_chroma` maps interpolated spectral peaks
through an online tuning estimate, which a filterbank built once (``librosa.filters.chroma``) cannot.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields

import numpy as np
import scipy.fft
import soxr

from ._cache import cached_array
from ._numba import njit
from .harmony import (KEY_PROFILES, MAX_KEY_PRIOR, MAX_LOOKAHEAD_S, NO_CHORD, HarmonyParams, HarmonyTracker,
                      fresh_tuning_state, peak_chroma, peak_buffers, tonal_weight)

# The level (what meters and OSC show, and what the chroma's level gate reads) counts no content below
# this: a DC offset or infrasonic drift is not sound, and counted it let a constant offset open the gate,
# so that the round-off in the rest of the spectrum became a confident chord and key. The model's
# ``loudness_db`` feature column still counts every bin, as the shipped student was trained (feature
# version 8); a retrained model should read the level instead (a new feature version).
LEVEL_FMIN_HZ = 20.0


class SpecValueError(ValueError):
    """A :class:`FeatureSpec` field of the wrong type or out of range; the message starts with the field's name."""


_POSITIVE = (lambda v, s: v > 0, "a number > 0")
_NOT_NEGATIVE = (lambda v, s: v >= 0, "a number >= 0")
_SHARE = (lambda v, s: 0 <= v <= 1, "a number in [0, 1]")
# The values a FeatureSpec allows (a model card can be edited: a sample_rate of 0 was a ZeroDivisionError at
# listen start, a NaN fmax silently changed the features): field -> (test of the value on the spec, what it must be).
# Checked after the types (an int field takes an int, not a bool, float or str; a float field a finite int or
# float); a field not listed takes any value of its type.
_SPEC_RULES = {
    "sample_rate": (lambda v, s: 0 < v <= 192000, "a positive integer, at most 192000"),
    "n_fft": (lambda v, s: 24 <= v <= 65536, "an integer in [24, 65536]: the chroma skips 6 FFT bins at either end"),
    "hop_length": (lambda v, s: 0 < v <= s.n_fft, "a positive integer, at most n_fft"),
    "n_mels": (lambda v, s: 0 < v <= s.n_fft // 2 + 1, "a positive integer, at most n_fft / 2 + 1 (the FFT's bins)"),
    "fmin": _NOT_NEGATIVE,
    "fmax": (lambda v, s: s.fmin < v <= s.sample_rate / 2, "a number above fmin, at most sample_rate / 2"),
    "chroma_fmin": _NOT_NEGATIVE,
    "chroma_fmax": (lambda v, s: s.chroma_fmin < v <= s.sample_rate / 2 and _chroma_band(s)[0] <= _chroma_band(s)[1],
                    "a number above chroma_fmin, at most sample_rate / 2, spanning an FFT bin 6 bins clear of either "
                    "end of the spectrum"),
    "chroma_gate_range_db": _NOT_NEGATIVE,
    "chroma_gate_release_db_s": _NOT_NEGATIVE,
    "chroma_bass_fmax": (lambda v, s: 0 <= v <= s.sample_rate / 2, "a number in [0, sample_rate / 2]"),
    "chroma_tuning_seconds": _POSITIVE,
    "chroma_compression": _POSITIVE,
    "chroma_tonality_gate": _SHARE,
    "chord_stay_seconds": _POSITIVE,
    "chord_lookahead_seconds": (lambda v, s: 0 <= v <= MAX_LOOKAHEAD_S, f"a number in [0, {MAX_LOOKAHEAD_S:g}]"),
    "chord_hysteresis": _SHARE,  # a lead in posterior probability
    "chord_key_prior": (lambda v, s: 0 <= v <= MAX_KEY_PRIOR, f"a number in [0, {MAX_KEY_PRIOR:g}]"),
    "key_profile": (lambda v, s: v in KEY_PROFILES, f"one of {', '.join(map(repr, sorted(KEY_PROFILES)))}"),
    "key_stay_seconds": _POSITIVE,
    "key_chord_weight": _NOT_NEGATIVE,
    "key_profile_weight": _NOT_NEGATIVE,
    "key_switch_margin": _SHARE,
    "key_hold_seconds": _NOT_NEGATIVE,
    "version": (lambda v, s: v > 0, "a positive integer"),
}


def is_finite_number(v) -> bool:
    """An int or float (numpy's too), not a bool, that is finite as a float."""
    try:
        return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
    except OverflowError:  # an int beyond float range (a JSON card may hold one)
        return False


def is_integer(v) -> bool:
    """An int (numpy's too), not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


_TYPES = {  # the annotation (a string: postponed annotations) -> (is the value of that type, the plain value, what)
    "int": (is_integer, int, "an integer"),
    "float": (is_finite_number, float, "a finite number"),
    "str": (lambda v: isinstance(v, str), str, "a string"),
}


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that defines the feature layout a model was trained on (stored in its card)."""

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 64
    fmin: float = 30.0
    fmax: float = 11025.0
    chroma_fmin: float = 55.0  # chroma ignores the sub-bass rumble and kick drums
    chroma_fmax: float = 4200.0
    # No chroma (so no chords) from a noise floor: a frame carries chroma only when it is louder than the
    # absolute floor and within the range below the recent loudest frame (a peak hold that releases
    # slowly), so the harmony reads the same at any input level and quiet hiss between loud notes is ignored.
    chroma_gate_floor_db: float = -90.0
    chroma_gate_range_db: float = 45.0
    chroma_gate_release_db_s: float = 1.0
    chroma_bass_fmax: float = 250.0  # peaks below this also go to the bass chroma (chord roots, inversions)
    chroma_tuning_seconds: float = 10.0  # memory of the online tuning estimate
    chroma_compression: float = 100.0  # peak magnitudes -> log1p(compression * magnitude / strongest peak)
    chroma_tonality_gate: float = 0.0  # frames whose in-tune peak share is below this carry no chroma (noise, drums)
    chord_stay_seconds: float = HarmonyParams.chord_stay_seconds
    chord_lookahead_seconds: float = HarmonyParams.chord_lookahead_seconds
    chord_hysteresis: float = HarmonyParams.chord_hysteresis
    chord_key_prior: float = HarmonyParams.chord_key_prior
    key_profile: str = HarmonyParams.key_profile
    key_stay_seconds: float = HarmonyParams.key_stay_seconds
    key_chord_weight: float = HarmonyParams.key_chord_weight
    key_profile_weight: float = HarmonyParams.key_profile_weight
    key_switch_margin: float = HarmonyParams.key_switch_margin
    key_hold_seconds: float = HarmonyParams.key_hold_seconds
    version: int = 8

    def __post_init__(self):
        """Refuse a value of the wrong type or out of range (:data:`_SPEC_RULES`) with :class:`SpecValueError`
        naming the field and the value; ints and floats are stored as plain Python ``int`` / ``float``."""
        def refuse(name, value, what):
            raise SpecValueError(f"{name}: {value!r} is not allowed ({what})")

        for f in fields(self):  # types first: a range test may read another field
            is_type, _, what = _TYPES[f.type]
            value = getattr(self, f.name)
            if not is_type(value):
                refuse(f.name, value, _SPEC_RULES.get(f.name, (None, what))[1])
        for name, (test, what) in _SPEC_RULES.items():
            if not test(getattr(self, name), self):
                refuse(name, getattr(self, name), what)
        for f in fields(self):
            object.__setattr__(self, f.name, _TYPES[f.type][1](getattr(self, f.name)))

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def feature_names(self) -> list[str]:
        """Names of the per-frame feature vector's columns, in order."""
        names = [f"logmel_{i:02d}" for i in range(self.n_mels)]
        names += [f"chroma_rel_{i:02d}" for i in range(12)]  # chroma rotated so the key tonic is column 0
        names += ["loudness_db", "onset"]
        names += [f"chord_root_rel_{i:02d}" for i in range(12)]
        names += ["chord_major", "chord_minor", "chord_none", "chord_confidence", "key_major", "key_confidence"]
        return names

    @property
    def n_features(self) -> int:
        return len(self.feature_names())

    def harmony_params(self) -> HarmonyParams:
        return HarmonyParams(**{f.name: getattr(self, f.name) for f in fields(HarmonyParams)})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSpec":
        """The spec a model card stores: every field, none unknown. (A missing one was filled in with this
        runtime's default, so a model trained with another hop or FFT size ran on features it never saw.)"""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown feature spec field(s) {unknown}; known: {sorted(known)}")
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"missing field(s) {missing}: a card stores every field of the spec it was trained on")
        return cls(**data)

    def differences(self, other: "FeatureSpec") -> list[str]:
        """Human-readable list of fields where ``other`` differs from this spec."""
        return [f"{f.name}: {getattr(other, f.name)!r} != {getattr(self, f.name)!r}"
                for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


def _to_csr(weights: np.ndarray, rel_threshold: float = 1e-3):
    """Dense filterbank (bands x bins) to CSR arrays, dropping negligible weights."""
    indptr = [0]
    indices: list[int] = []
    values: list[float] = []
    for row in weights:
        keep = np.flatnonzero(row > rel_threshold * max(row.max(), 1e-12))
        indices.extend(keep.tolist())
        values.extend(row[keep].tolist())
        indptr.append(len(indices))
    return (np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int64),
            np.asarray(values, dtype=np.float32))


def _mel_filterbank(spec: FeatureSpec) -> np.ndarray:
    """librosa's Slaney mel filterbank, cached on disk: importing librosa costs ~1.3 s and ~60 MB of RAM
    at every start, which the warm start-up budget of a live tool cannot afford."""
    from importlib.metadata import version

    def build() -> np.ndarray:
        import librosa.filters

        return librosa.filters.mel(sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels, fmin=spec.fmin,
                                   fmax=spec.fmax, htk=False, norm="slaney")

    key = f"mel-{spec.sample_rate}-{spec.n_fft}-{spec.n_mels}-{spec.fmin:g}-{spec.fmax:g}-librosa{version('librosa')}"
    return cached_array("filters", key, build)


def _filterbanks(spec: FeatureSpec):
    mel = _mel_filterbank(spec)
    # Chroma: the FFT bin range of the peak picker (see live_mer.harmony.peak_chroma). Tuning is
    # estimated from peaks above 150 Hz, where an FFT bin is under a semitone and interpolation is exact.
    bin_hz = spec.sample_rate / spec.n_fft
    chroma_bins = np.array([*_chroma_band(spec), int(np.ceil(spec.chroma_bass_fmax / bin_hz)),
                            int(np.ceil(150.0 / bin_hz))], dtype=np.int64)
    return _to_csr(mel), chroma_bins


def _chroma_band(spec: FeatureSpec) -> tuple[int, int]:
    """The first and last FFT bin of the chroma's peak picker (6 bins clear of either end of the spectrum)."""
    bin_hz = spec.sample_rate / spec.n_fft
    return (max(int(np.ceil(spec.chroma_fmin / bin_hz)), 6),
            min(int(spec.chroma_fmax / bin_hz) + 1, spec.n_fft // 2 - 6))


def _level_bin(spec: FeatureSpec) -> int:
    """The first FFT bin the level counts: none below LEVEL_FMIN_HZ, and never bins 0 and 1, which hold a
    DC offset (the periodic Hann window spreads a constant over exactly those two)."""
    return max(2, int(math.ceil(LEVEL_FMIN_HZ / (spec.sample_rate / spec.n_fft))))


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _power(spectrum, power, first):
    """Write one frame's power spectrum to ``power``; return its total, and its total from bin ``first``
    up (Parseval: the interior bins stand for their negative-frequency twins too). The sums may be
    reordered (``fastmath`` reassoc) so that they vectorise: 2.4x faster than a sum in bin order (1025
    bins), the loudness the same to float32."""
    n_bins = spectrum.shape[0]
    low = 0.0
    for b in range(first):
        re = spectrum[b].real
        im = spectrum[b].imag
        p = re * re + im * im
        power[b] = p
        low += p
    high = 0.0
    for b in range(first, n_bins):
        re = spectrum[b].real
        im = spectrum[b].imag
        p = re * re + im * im
        power[b] = p
        high += p
    return 2.0 * (low + high) - power[0] - power[n_bins - 1], 2.0 * high - power[n_bins - 1]


@njit(cache=True, nogil=True)
def _spectral_kernel(spectra, mel_ptr, mel_idx, mel_w, chroma_bins, peak_bufs, bin_hz, tuning_decay, compression,
                     tonality_gate, power_scale, level_bin, gate_floor, gate_range, gate_release, gate_state,
                     prev_logmel, prev_power, tuning_state, out_logmel, out_chroma, out_bass, out_tuning,
                     out_loudness, out_level, out_onset):
    n_frames, n_bins = spectra.shape
    n_mels = mel_ptr.shape[0] - 1
    power = np.empty(n_bins, dtype=np.float32)
    smooth = np.empty(n_bins, dtype=np.float32)
    for f in range(n_frames):
        total, audible = _power(spectra[f], power, level_bin)
        out_loudness[f] = 10.0 * np.log10(total * power_scale + 1e-12)  # the model's feature (every bin)
        loud = 10.0 * np.log10(audible * power_scale + 1e-12)
        out_level[f] = loud
        # level-relative chroma gate: peak hold of the level with a slow release (gate_state[0])
        ref = gate_state[0] - gate_release
        if loud > ref:
            ref = loud
        gate_state[0] = ref
        active = loud > gate_floor and loud > ref - gate_range
        flux = 0.0
        for m in range(n_mels):
            acc = 0.0
            for j in range(mel_ptr[m], mel_ptr[m + 1]):
                acc += mel_w[j] * power[mel_idx[j]]
            lm = np.log10(acc + 1e-10)
            out_logmel[f, m] = lm
            d = lm - prev_logmel[m]
            if d > 0.0:
                flux += d
            prev_logmel[m] = lm
        out_onset[f] = flux / n_mels if n_mels > 0 else 0.0  # (no bands: Frontend.chroma)
        # Chroma: tuned, compressed spectral peaks (live_mer.harmony.peak_chroma); max-normalised, the
        # bass chroma on the same scale (so its share of the chroma is kept).
        out_tuning[f] = peak_chroma(power, prev_power, smooth, bin_hz, chroma_bins[0], chroma_bins[1],
                                    chroma_bins[2], chroma_bins[3], tuning_state, tuning_decay, compression, tonality_gate,
                                    active, out_chroma[f], out_bass[f], peak_bufs)
        # The chroma's maximum is the frame's tonal weight (1 = clearly pitched, 0 = noise-like).
        peak = 0.0
        for c in range(12):
            if out_chroma[f, c] > peak:
                peak = out_chroma[f, c]
        g = tonal_weight(tuning_state[3]) / peak if peak > 1e-9 else 0.0
        for c in range(12):
            out_chroma[f, c] = out_chroma[f, c] * g
            out_bass[f, c] = out_bass[f, c] * g


@njit(cache=True, nogil=True)
def _assemble(logmel, chroma, loudness, onset, chord, chord_conf, key, key_conf, out):
    """Fill the model's feature rows: key-relative chroma and chord, mode, confidences."""
    n_frames, n_mels = logmel.shape
    for f in range(n_frames):
        col = 0
        for m in range(n_mels):
            out[f, col] = logmel[f, m]
            col += 1
        tonic = key[f] % 12 if key[f] >= 0 else 0
        for c in range(12):
            out[f, col + c] = chroma[f, (c + tonic) % 12]
        col += 12
        out[f, col] = loudness[f]
        out[f, col + 1] = onset[f]
        col += 2
        for c in range(12):
            out[f, col + c] = 0.0
        ch = chord[f]
        if ch != NO_CHORD:
            out[f, col + ((ch % 12) - tonic) % 12] = 1.0
        col += 12
        out[f, col] = 1.0 if ch < 12 else 0.0
        out[f, col + 1] = 1.0 if 12 <= ch < NO_CHORD else 0.0
        out[f, col + 2] = 1.0 if ch == NO_CHORD else 0.0
        out[f, col + 3] = chord_conf[f]
        out[f, col + 4] = 0.5 if key[f] < 0 else (1.0 if key[f] < 12 else 0.0)
        out[f, col + 5] = key_conf[f]


RUN_BLOCK = 2048  # samples per push in Frontend.run: about what a live audio callback delivers

@dataclass(frozen=True)
class FrameBatch:
    """Frames produced by one :meth:`Frontend.push`; all arrays have one row per frame."""

    times: np.ndarray  # stream time (s) at the end of each frame's newest hop
    features: np.ndarray  # (n, n_features) float32, layout of FeatureSpec.feature_names()
    loudness_db: np.ndarray  # the level (dBFS) from LEVEL_FMIN_HZ up; the features' loudness column counts every bin
    onset: np.ndarray
    chroma: np.ndarray  # absolute pitch-class chroma (n, 12), C first
    chord: np.ndarray  # majmin chord index, see live_mer.harmony.chord_label (describes frame i - harmony lag)
    chord_confidence: np.ndarray
    key: np.ndarray  # key index, see live_mer.harmony.key_name
    key_confidence: np.ndarray
    bass_chroma: np.ndarray  # (n, 12) chroma of the peaks below chroma_bass_fmax, on the chroma's scale
    tuning: np.ndarray  # online tuning estimate, semitones from A440 (within +-0.5)
    chord_ext: np.ndarray  # extended chord index, see live_mer.harmony.chord_ext_label
    chord_ext_confidence: np.ndarray
    key_change: np.ndarray  # bool: the held key changed at this frame (its first establishment included)

    def __len__(self) -> int:
        return int(self.times.shape[0])


class Frontend:
    """Streaming resampler + STFT + features + harmony for one audio stream.

    Parameters
    ----------
    spec : FeatureSpec
        The feature layout (usually the loaded model's card).
    input_rate : int
        Sample rate of the mono float32 audio passed to :meth:`push`.
    """

    def __init__(self, spec: FeatureSpec, input_rate: int):
        if not 8000 <= int(input_rate) <= 192000:
            raise ValueError(f"input sample rate {input_rate} Hz is outside 8000..192000 Hz")
        self.spec = spec
        self.input_rate = int(input_rate)
        (self._mel_ptr, self._mel_idx, self._mel_w), self._chroma_bins = _filterbanks(spec)
        # the peak picker's pitch table and scratch: built once per stream, not per push
        self._peak_bufs = peak_buffers(self._chroma_bins[0], self._chroma_bins[1], spec.sample_rate / spec.n_fft)
        self._tuning_decay = float(np.exp(-1.0 / (spec.chroma_tuning_seconds * spec.frame_rate)))
        self._window = np.hanning(spec.n_fft + 1)[:-1].astype(np.float32)
        self._power_scale = 1.0 / (spec.n_fft ** 2 * float(np.mean(self._window.astype(np.float64) ** 2)))
        self._level_bin = _level_bin(spec)
        self._harmony = HarmonyTracker(spec.frame_rate, spec.harmony_params())
        self._n_features = spec.n_features  # a property that builds the name list: not per push
        self.reset()

    def reset(self) -> None:
        """Forget all stream state (resampler, partial frame, harmony, onset memory)."""
        spec = self.spec
        self._resampler = (None if self.input_rate == spec.sample_rate else
                           soxr.ResampleStream(self.input_rate, spec.sample_rate, 1, dtype="float32", quality="HQ"))
        # Start with n_fft - hop zeros so the first frame completes after one hop of audio.
        self._buf = np.zeros(spec.n_fft * 4, dtype=np.float32)
        self._fill = spec.n_fft - spec.hop_length
        self._frames_done = 0
        self._prev_logmel = np.full(spec.n_mels, -10.0, dtype=np.float32)
        self._prev_power = np.zeros(spec.n_fft // 2 + 1, dtype=np.float32)
        self._tuning_state = fresh_tuning_state()
        self._gate_state = np.array([-np.inf])  # loudest recent frame (dBFS), released over time
        self._harmony.reset()

    @property
    def harmony_lag_seconds(self) -> float:
        """Chord labels in a batch describe the frame this much earlier (the decoder's fixed look-ahead)."""
        return self._harmony.lookahead_seconds

    def silence_row(self) -> np.ndarray:
        """The feature vector of digital silence (used to pre-fill a model window)."""
        spec = self.spec
        out = np.empty((1, spec.n_features), dtype=np.float32)
        _assemble(np.full((1, spec.n_mels), -10.0, np.float32), np.zeros((1, 12), np.float32),
                  np.full(1, -120.0, np.float32), np.zeros(1, np.float32), np.full(1, NO_CHORD, np.int64),
                  np.ones(1, np.float32), np.full(1, -1, np.int64), np.zeros(1, np.float32), out)
        return out[0]

    def run(self, mono: np.ndarray, block: int = RUN_BLOCK) -> FrameBatch:
        """Every frame of a whole mono signal: pushed in ``block``-sample pieces, as a live audio callback
        delivers them, and flushed at its end (training and evaluation run whole clips through this)."""
        batches = [self.push(mono[i:i + block]) for i in range(0, len(mono), block)]
        batches.append(self.push(np.zeros(0, np.float32), flush=True))
        return FrameBatch(**{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in fields(FrameBatch)})

    def push(self, mono: np.ndarray, flush: bool = False) -> FrameBatch:
        """Consume mono float32 samples at ``input_rate``; return every frame completed by them.

        ``flush=True`` drains the resampler's internal delay (use at the end of a file).
        """
        spec = self.spec
        x = np.ascontiguousarray(mono, dtype=np.float32)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x, last=flush)
        need = self._fill + x.shape[0]
        if need > self._buf.shape[0]:
            grown = np.zeros(max(need, 2 * self._buf.shape[0]), dtype=np.float32)
            grown[: self._fill] = self._buf[: self._fill]
            self._buf = grown
        self._buf[self._fill:need] = x
        self._fill = need
        n = 0 if need < spec.n_fft else (need - spec.n_fft) // spec.hop_length + 1
        if n == 0:
            return self._empty_batch()
        step = self._buf.strides[0]  # overlapping frames as a view (sliding_window_view's checks cost 60 us)
        frames = np.lib.stride_tricks.as_strided(self._buf, shape=(n, spec.n_fft),
                                                 strides=(spec.hop_length * step, step), writeable=False)
        spectra = self.spectra(frames)
        logmel = np.empty((n, spec.n_mels), dtype=np.float32)
        chroma = np.empty((n, 12), dtype=np.float32)
        bass = np.empty((n, 12), dtype=np.float32)
        tuning = np.empty(n, dtype=np.float32)
        loudness = np.empty(n, dtype=np.float32)
        level = np.empty(n, dtype=np.float32)
        onset = np.empty(n, dtype=np.float32)
        _spectral_kernel(spectra, self._mel_ptr, self._mel_idx, self._mel_w, self._chroma_bins, self._peak_bufs,
                         spec.sample_rate / spec.n_fft, self._tuning_decay, spec.chroma_compression,
                         spec.chroma_tonality_gate, self._power_scale, self._level_bin,
                         spec.chroma_gate_floor_db, spec.chroma_gate_range_db,
                         spec.chroma_gate_release_db_s / spec.frame_rate, self._gate_state,
                         self._prev_logmel, self._prev_power, self._tuning_state, logmel, chroma, bass, tuning,
                         loudness, level, onset)
        h = self._harmony.update(chroma, bass)
        features = np.empty((n, self._n_features), dtype=np.float32)
        _assemble(logmel, chroma, loudness, onset, h.chord, h.chord_confidence, h.key, h.key_confidence, features)
        consumed = n * spec.hop_length
        self._buf[: need - consumed] = self._buf[consumed:need]
        self._fill = need - consumed
        times = (np.arange(self._frames_done + 1, self._frames_done + n + 1) * spec.hop_length
                 / spec.sample_rate)
        self._frames_done += n
        return FrameBatch(times, features, level, onset, chroma, h.chord, h.chord_confidence, h.key,
                          h.key_confidence, bass, tuning, h.chord_ext, h.chord_ext_confidence, h.key_change)

    def spectra(self, frames: np.ndarray) -> np.ndarray:
        """The windowed FFT of ``frames`` (n x n_fft samples at the model's rate): what every feature
        is computed from."""
        return scipy.fft.rfft(frames * self._window, axis=1)

    def chroma(self, spectra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The harmonic stage alone on :meth:`spectra`: the same kernel and stream state as :meth:`push`
        (level gate, tuned peak chroma, tonal weight) without the log-mel bands; returns (chroma, bass)
        as ``push`` would. For timing the harmonic path on its own (``scripts/eval_harmony.py``); it
        advances the stream's state, so do not mix it with ``push`` on one stream."""
        spec = self.spec
        n = spectra.shape[0]
        chroma = np.empty((n, 12), dtype=np.float32)
        bass = np.empty((n, 12), dtype=np.float32)
        scratch = np.empty(n, dtype=np.float32)
        _spectral_kernel(spectra, self._mel_ptr[:1], self._mel_idx[:0], self._mel_w[:0], self._chroma_bins,
                         self._peak_bufs, spec.sample_rate / spec.n_fft, self._tuning_decay, spec.chroma_compression,
                         spec.chroma_tonality_gate, self._power_scale, self._level_bin,
                         spec.chroma_gate_floor_db, spec.chroma_gate_range_db,
                         spec.chroma_gate_release_db_s / spec.frame_rate, self._gate_state,
                         self._prev_logmel[:0], self._prev_power, self._tuning_state, np.empty((n, 0), np.float32),
                         chroma, bass, scratch, np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32),
                         np.empty(n, dtype=np.float32))
        return chroma, bass

    def _empty_batch(self) -> FrameBatch:
        f32 = np.empty(0, dtype=np.float32)
        i64 = np.empty(0, dtype=np.int64)
        return FrameBatch(np.empty(0), np.empty((0, self._n_features), np.float32), f32, f32,
                          np.empty((0, 12), np.float32), i64, f32, i64, f32, np.empty((0, 12), np.float32), f32,
                          i64, f32, np.empty(0, np.bool_))
