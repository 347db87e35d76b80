"""Causal chroma, chord and key estimation (the harmonic half of the streaming front end).

Three stages, each one Numba loop per frame with its state carried between calls:

1. **Chroma** (:func:`peak_chroma`, called from the front end's spectral kernel). Spectral peaks of the
   power spectrum are picked, located to a fraction of a bin by parabolic interpolation, mapped to a
   pitch on a log-frequency (MIDI) axis and folded to 12 pitch classes. An *online tuning estimate*
   (a decayed, magnitude-weighted circular mean of the peaks' deviation from the equal-tempered grid,
   with an A440 prior weighed in the music's own magnitudes, so the input level does not matter)
   shifts the grid, and peaks far from it are down-weighted (``cos^2`` of the deviation), so noise
   peaks, which are spread evenly over the cents, add little. Percussion is suppressed by taking the
   bin-wise minimum of this and the previous frame's power (a one-frame causal "harmonic" filter: a
   drum hit lives for a frame or two, a chord for many) and by requiring a peak to stand well above
   its local spectral floor. Magnitudes are log-compressed (``log1p(compression * magnitude / strongest)``),
   so the chroma does not depend on the level. A bass chroma (peaks below ``bass_fmax``) is kept
   beside the full chroma for root/inversion evidence.
2. **Chords** (:class:`HarmonyTracker`). 12 roots x 9 qualities (maj, min, 7, maj7, min7, dim, aug,
   sus2, sus4) + no-chord ``N`` = 109 states, scored by a small learned, root-invariant model (one MLP
   shared by the 12 roots reads the frame's treble and bass chroma and their means over the last half
   second, all rotated so the candidate root is at 0, and scores the 9 qualities; a second MLP scores
   ``N`` from rotation-invariant features, the sorted chroma), trained by ``scripts/train_chords.py`` on
   synthetic and real audio through this front end. Its
   logits, less the training log prior and plus a music prior (:data:`STATE_LOG_PRIOR`), weighted by
   how likely each chord is in the key believed so far (``chord_key_prior``; a power chord takes the
   key's mode, an inversion is read as the diatonic chord), are the log emissions of an online HMM:
   forward filtering plus a *fixed-lag* backward pass over the last ``chord_lookahead_seconds``
   (0 = pure filtering). The label of frame ``t - L`` is final at frame
   ``t``: the look-ahead is stated and bounded. The majmin label is the marginal posterior over the
   extended states (maj/7/maj7/aug/sus -> maj, min/min7/dim -> min), held with hysteresis; the
   extended label is the best extended state consistent with it.
3. **Key** (24 keys). An HMM over the 24 keys fed by the chroma's correlation with a selectable key
   profile and by majmin chord posteriors scored by diatonic fit; those posteriors come from a second
   forward filter over the emissions *without* the key prior, so the key never hears chords it has
   itself bent towards it. A new key must win by a margin for ``key_hold_seconds`` before it replaces
   the held one, which raises a key-change event.

Why hand-written: librosa's chroma and madmom's chord/key recognisers work on whole signals and decode
offline; none filters frame by frame without allocating. Only the fixed parts (emission weights,
profiles) are loaded or built in Python, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ._numba import njit

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# ---- majmin vocabulary (the model's features and ``Estimate.chord``): 0-11 maj, 12-23 min, 24 N ----
NO_CHORD = 24

# ---- extended vocabulary (``chord_ext``): index = quality * 12 + root, 108 = N ----
QUALITIES = ("maj", "min", "7", "maj7", "min7", "dim", "aug", "sus2", "sus4")
QUALITY_INTERVALS = ((0, 4, 7), (0, 3, 7), (0, 4, 7, 10), (0, 4, 7, 11), (0, 3, 7, 10), (0, 3, 6), (0, 4, 8),
                     (0, 2, 7), (0, 5, 7))
# majmin family of each quality: 0 = major, 1 = minor (aug and sus have no minor third: counted major)
QUALITY_FAMILY = np.array([0, 1, 0, 0, 1, 1, 0, 0, 0], dtype=np.int64)
# Prior of each quality (per root) and of N in music, relative weights: the learned emission's
# posteriors are divided by the training prior and multiplied by this, so rarer chords must earn it.
STATE_LOG_PRIOR = np.log(np.array([1.0, 1.0, 0.6, 0.5, 0.6, 0.12, 0.06, 0.08, 0.12, 1.5]))
N_EXT = len(QUALITIES) * 12 + 1
EXT_NO_CHORD = N_EXT - 1

# The learned chord emission (scripts/train_chords.py writes it; see live_mer/data/README.md).
EMISSION_PATH = Path(__file__).resolve().parent / "data" / "chord_emission.npz"

# ---- key profiles, tonic first (major row, minor row) ----
KEY_PROFILES = {
    # Krumhansl & Kessler (1982), probe-tone ratings.
    "krumhansl": ((6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
                  (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)),
    # Temperley (1999), "What's key for key? The Krumhansl-Schmuckler key-finding algorithm reconsidered",
    # Music Perception 17(1): the revised (corpus-informed) profiles.
    "temperley": ((5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0),
                  (5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0)),
    # Faraldo, Gómez, Jordà & Herrera (2016), "Key Estimation in Electronic Dance Music", ECIR 2016 (LNCS
    # 9626): the "edma" profiles, derived automatically from averaged chroma of a Beatport EDM corpus
    # (as also shipped in Essentia's KeyEDM / Key(profileType="edma")).
    "edma": ((1.0000, 0.2875, 0.5020, 0.4048, 0.6050, 0.5614, 0.3205, 0.7966, 0.3159, 0.4506, 0.4202, 0.3889),
             (1.0000, 0.3096, 0.4415, 0.5827, 0.3262, 0.4948, 0.2889, 0.7804, 0.4328, 0.2903, 0.5331, 0.3217)),
}

# How often each majmin chord occurs in a key, by the chord root's interval above the tonic (relative
# weights, a rough summary of common-practice and pop harmony; the rest share NON_DIATONIC_WEIGHT).
# Major key: I, V, IV, vi, ii, iii (+ bVII, a common borrowing); minor key: i, VI, iv, V, VII, III, v.
# The tonic chord's weight is what separates a key from its relative major/minor.
_MAJOR_KEY_MAJ = {0: 1.0, 5: 0.6, 7: 0.75, 10: 0.1, 2: 0.05}
_MAJOR_KEY_MIN = {9: 0.45, 2: 0.35, 4: 0.2}
_MINOR_KEY_MAJ = {3: 0.35, 8: 0.45, 10: 0.4, 7: 0.4}
_MINOR_KEY_MIN = {0: 1.0, 5: 0.45, 7: 0.2, 2: 0.05}
NON_DIATONIC_WEIGHT = 0.02



def chord_label(index: int) -> str:
    """Chord index (0-11 major, 12-23 minor, 24 none) to a mir_eval style label such as ``"A:min"``."""
    if index < 0 or index >= NO_CHORD:
        return "N"
    root = PITCH_CLASSES[index % 12]
    return f"{root}:maj" if index < 12 else f"{root}:min"


def chord_ext_label(index: int) -> str:
    """Extended chord index (``quality * 12 + root``, 108 none) to a mir_eval label (``"G:7"``, ``"N"``)."""
    if index < 0 or index >= EXT_NO_CHORD:
        return "N"
    return f"{PITCH_CLASSES[index % 12]}:{QUALITIES[index // 12]}"


def chord_ext_to_majmin(index: int) -> int:
    """Reduce an extended chord index to the majmin index used by :func:`chord_label`."""
    if index < 0 or index >= EXT_NO_CHORD:
        return NO_CHORD
    return int(index % 12 + 12 * QUALITY_FAMILY[index // 12])


def key_name(index: int) -> str:
    """Key index (0-11 major tonic, 12-23 minor tonic, -1 unknown) to ``"A minor"`` style text."""
    if index < 0:
        return ""
    return f"{PITCH_CLASSES[index % 12]} {'major' if index < 12 else 'minor'}"


def key_label(index: int) -> str:
    """Key index to a mir_eval key string (``"A minor"``; ``"N"`` while unknown)."""
    return key_name(index) or "N"


def camelot(index: int) -> str:
    """Camelot wheel code of a key index: C major is ``8B``, A minor is ``8A``; ``""`` if unknown."""
    if index < 0:
        return ""
    tonic, minor = index % 12, index >= 12
    relative_major = (tonic + 3) % 12 if minor else tonic
    number = (relative_major * 7 + 7) % 12 + 1
    return f"{number}{'A' if minor else 'B'}"


def open_key(index: int) -> str:
    """Open Key notation of a key index: C major is ``1d``, A minor is ``1m``; ``""`` if unknown."""
    if index < 0:
        return ""
    code = camelot(index)
    number = (int(code[:-1]) - 8) % 12 + 1
    return f"{number}{'m' if code[-1] == 'A' else 'd'}"


@lru_cache(maxsize=1)
def _emission_net() -> tuple[tuple, int]:
    """The shipped emission model and its context length, loaded once per process (every tracker shares
    the read-only arrays)."""
    return load_emission(EMISSION_PATH)


def emission_scratch(net: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The scratch :func:`_emission` needs: ``x`` (its 96 inputs: 48 for the chord MLP, 48 sorted for the
    no-chord MLP) and ``hidden`` (the chord MLP's hidden units for all 12 roots, float32)."""
    return np.zeros(96), np.zeros(net[0].shape[1], np.float32)


def load_emission(path: Path = EMISSION_PATH) -> tuple[tuple, int]:
    """The chord emission model: (the tuple :func:`_emission` reads, its context length in frames).

    The tuple: chord W1 for all 12 roots (48, 12 x hidden): column block r holds, for each input, the
    weights it meets when root r is the candidate (the input rotated so that r sits at 0), so one pass
    over the inputs computes every root's hidden units in a contiguous, vectorised loop; b1 for all 12
    roots (12 x hidden,); W2 (9, hidden), b2, no-chord V1 (hidden, 49), c1, v2 (hidden,), c2 (1,),
    per-state log-score offset (109,). The chord MLP, 90 % of the arithmetic, is float32 as it was
    trained. The offset turns the logits into scaled likelihoods times the music prior:
    ``STATE_LOG_PRIOR`` (normalised over the 109 states) minus the training log prior. A file that is not
    this model (another layout, an older emission without context) raises ``ValueError`` naming it.
    """
    with np.load(path) as z:
        w = {k: np.asarray(z[k]) for k in z.files}
    expected = {"chord_w1": 48, "none_w1": 49}  # frame + context, treble + bass; sorted, + tonal weight
    for key, inputs in expected.items():
        if key not in w or w[key].ndim != 2 or w[key].shape[1] != inputs:
            raise ValueError(f"{path}: not a chord emission of this version ({key} should have {inputs} inputs; "
                             "retrain it with scripts/train_chords.py)")
    if "context_frames" not in w or int(w["context_frames"]) < 1:
        raise ValueError(f"{path}: no context_frames (an emission from before the context inputs)")
    f32 = {k: np.ascontiguousarray(w[k], dtype=np.float32) for k in ("chord_w1", "chord_b1", "chord_w2", "chord_b2")}
    f64 = {k: np.ascontiguousarray(w[k], dtype=np.float64) for k in ("none_w1", "none_b1", "none_w2", "log_prior")}
    prior = np.concatenate([np.repeat(STATE_LOG_PRIOR[:-1], 12), STATE_LOG_PRIOR[-1:]])
    prior -= np.log(np.exp(prior).sum())
    train = np.concatenate([np.repeat(f64["log_prior"][:-1], 12), f64["log_prior"][-1:]])
    w1 = f32["chord_w1"].T  # (48 inputs in root position, hidden)
    hidden = w1.shape[1]
    w_all = np.empty((48, 12 * hidden), np.float32)
    for i in range(48):  # input i = pitch class c of block b meets weight row b * 12 + (c - r) % 12 for root r
        block, c = divmod(i, 12)
        for r in range(12):
            w_all[i, r * hidden:(r + 1) * hidden] = w1[block * 12 + (c - r) % 12]
    net = (w_all, np.tile(f32["chord_b1"], 12), f32["chord_w2"], f32["chord_b2"],
           f64["none_w1"], f64["none_b1"], f64["none_w2"],
           np.atleast_1d(np.asarray(w["none_b2"], dtype=np.float64)), prior - train)
    return net, int(w["context_frames"])


def key_profiles(name: str = "krumhansl") -> np.ndarray:
    """Zero-mean, unit-norm key profiles, shape (24, 12): 12 major then 12 minor tonics."""
    if name not in KEY_PROFILES:
        raise ValueError(f"unknown key profile {name!r}; known: {sorted(KEY_PROFILES)}")
    major, minor = (np.asarray(x, dtype=np.float64) for x in KEY_PROFILES[name])
    p = np.zeros((24, 12), dtype=np.float32)
    for tonic in range(12):
        p[tonic] = np.roll(major, tonic)
        p[12 + tonic] = np.roll(minor, tonic)
    p -= p.mean(axis=1, keepdims=True)
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def chord_given_key() -> np.ndarray:
    """P(majmin chord | key), shape (24 keys, 25 chords); column 24 (N) is zero."""
    p = np.full((24, 25), NON_DIATONIC_WEIGHT, dtype=np.float64)
    p[:, 24] = 0.0
    for tonic in range(12):
        for minor_key, fmaj, fmin in ((0, _MAJOR_KEY_MAJ, _MAJOR_KEY_MIN), (1, _MINOR_KEY_MAJ, _MINOR_KEY_MIN)):
            k = tonic + 12 * minor_key
            for interval, w in fmaj.items():
                p[k, (tonic + interval) % 12] = w
            for interval, w in fmin.items():
                p[k, 12 + (tonic + interval) % 12] = w
    return p / p.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------------
# Stage 1: chroma from one power spectrum (called per frame from features._spectral_kernel)
# --------------------------------------------------------------------------------------------------

# Weight of "A = 440 Hz" in the tuning estimate, in frames of the music heard so far (the prior is scaled
# by the decayed mean of the frames' peak magnitudes, so the estimate does not depend on the input level);
# it decays with the estimate's memory, like the frames' votes.
TUNING_PRIOR_FRAMES = 1.0
PEAK_PROMINENCE = 1.0  # a peak must not be below its local floor (bins 3-5 away) times this power ratio
PEAK_RANGE_DB = 50.0  # peaks more than this below the frame's strongest are ignored


def fresh_tuning_state() -> np.ndarray:
    """A fresh state for :func:`peak_chroma`'s tuning estimate: decayed phasor (re, im), offset (semitones),
    the last frame's tonality, decayed sum of the frames' peak magnitudes and decayed frame count, prior
    weight."""
    return np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, TUNING_PRIOR_FRAMES])


@njit(cache=True, nogil=True)
def peak_chroma(power, prev_power, smooth, bin_hz, k_lo, k_hi, k_bass, k_tune, tuning_state, tuning_decay,
                compression, tonality_gate, active, out_chroma, out_bass, buffers):
    """Tuned, compressed chroma and bass chroma of one frame's power spectrum (in place).

    ``prev_power`` (the previous frame's power) is updated; ``tuning_state`` is
    :func:`fresh_tuning_state`'s array (the decayed tuning phasor, the offset, the frame's tonality, the
    prior's scale). ``active`` False (a gated, near-silent frame) gives all-zero chroma but still advances
    the state. ``buffers`` is :func:`peak_buffers`'s tuple. Returns the current tuning offset in semitones.

    Speed (about 60 peaks per frame of music): the peak search first collects candidate bins without
    branching, then examines only those; per-peak arithmetic is float32, the pitch comes from a per-bin
    table plus a short series, and the pitch phasor from :func:`_cis_2pi` rather than libm's sin/cos
    (outputs within 5e-5 of the float64 original; see docs/chords_and_keys.md, *Speed*).
    """
    bin_pitch, scratch_bin, scratch_pc, scratch_w, scratch_mag, scratch_low = buffers
    n_bins = power.shape[0]
    for c in range(12):
        out_chroma[c] = 0.0
        out_bass[c] = 0.0
    lo = max(k_lo - 6, 0)
    hi = min(k_hi + 6, n_bins)
    for b in range(lo, hi):
        p = power[b]
        q = prev_power[b]
        smooth[b] = p if p < q else q  # a drum hit is gone in a frame or two; a note is not
        prev_power[b] = p
    tuning = tuning_state[2]
    # cos^2(pi * dev) = (1 + cos(2 pi (pitch - tuning))) / 2: from the peak's pitch phasor and the tuning's
    cos_t = np.float32(np.cos(2.0 * np.pi * tuning))
    sin_t = np.float32(np.sin(2.0 * np.pi * tuning))
    half = np.float32(0.5)
    tiny = np.float32(1e-20)
    z_re = 0.0
    z_im = 0.0
    z_mag = 0.0
    n_peaks = 0
    a_max = np.float32(0.0)
    if active:
        top = np.float32(0.0)
        for b in range(k_lo, k_hi):
            if smooth[b] > top:
                top = smooth[b]
        floor_abs = np.float32(top * 10.0 ** (-PEAK_RANGE_DB / 10.0))
        n_cand = 0
        for b in range(max(k_lo, 5), min(k_hi, n_bins - 5)):  # local maxima above the floor, branch-free
            h = smooth[b]
            scratch_bin[n_cand] = b
            n_cand += (h > floor_abs) & (h > smooth[b - 1]) & (h >= smooth[b + 1])
        for i in range(n_cand):
            b = scratch_bin[i]
            h = smooth[b]
            local = (smooth[b - 5] + smooth[b - 4] + smooth[b - 3] + smooth[b + 3] + smooth[b + 4]
                     + smooth[b + 5]) * np.float32(1.0 / 6.0)
            if h < np.float32(PEAK_PROMINENCE) * local:
                continue
            # parabolic interpolation of the log power (its neighbours relative to the peak: no underflow)
            la = np.log((smooth[b - 1] + tiny) / (h + tiny))
            lc = np.log((smooth[b + 1] + tiny) / (h + tiny))
            den = la + lc
            delta = half * (la - lc) / den if den < 0.0 else np.float32(0.0)
            if delta > half:
                delta = half
            elif delta < -half:
                delta = -half
            # pitch of bin b + delta: the bin's pitch + 12 log2(1 + u), u = delta / b (|u| <= 1/12: the series
            # to u^6 is exact to 1e-7 semitones)
            u = delta / np.float32(b)
            pitch = bin_pitch[b] + np.float32(12.0 / np.log(2.0)) * u * (np.float32(1.0) + u * (np.float32(-0.5) + u * (
                np.float32(1.0 / 3) + u * (np.float32(-0.25) + u * (np.float32(0.2) + u * np.float32(-1.0 / 6))))))
            mag = np.sqrt(h - local)
            raw = pitch - np.floor(pitch + half)
            c_raw, s_raw = _cis_2pi(raw)
            if b >= k_tune:
                z_re += mag * c_raw
                z_im += mag * s_raw
                z_mag += mag
            nearest = np.floor(pitch - tuning + 0.5)
            scratch_pc[n_peaks] = int(nearest) % 12
            scratch_w[n_peaks] = mag * half * (np.float32(1.0) + c_raw * cos_t + s_raw * sin_t)
            scratch_mag[n_peaks] = mag
            scratch_low[n_peaks] = b < k_bass
            if mag > a_max:
                a_max = mag
            n_peaks += 1
    # Tonality: the magnitude-weighted in-tune share of the peaks (about 0.5 for noise and drums, whose
    # peaks fall anywhere between the semitones; near 1 for pitched notes). Below the gate: no chroma.
    in_tune = 0.0
    total = 0.0
    for i in range(n_peaks):
        in_tune += scratch_w[i]
        total += scratch_mag[i]
    tonality = in_tune / total if total > 0.0 else 0.0
    tuning_state[3] = tonality
    # Peaks that all sit exactly on their floor (a click track) have no magnitude to normalise by: no chroma,
    # as below the gate (which a gate of 0 would not give them).
    if tonality < tonality_gate or a_max == 0.0:
        n_peaks = 0
    for i in range(n_peaks):
        w = np.log(np.float32(1.0) + np.float32(compression) * scratch_w[i] / a_max)  # logf: log1p is slower
        out_chroma[scratch_pc[i]] += w
        if scratch_low[i]:
            out_bass[scratch_pc[i]] += w
    # Online tuning: decayed circular mean of peak deviations (weighted by magnitude, so loud steady
    # partials dominate); the phasor's angle is the offset from A440 in semitones, within +-0.5. The prior
    # (A440) weighs TUNING_PRIOR_FRAMES frames of the mean magnitude so far: both scale with the input.
    tuning_state[0] = tuning_decay * tuning_state[0] + z_re
    tuning_state[1] = tuning_decay * tuning_state[1] + z_im
    if z_mag > 0.0:
        tuning_state[4] = tuning_decay * tuning_state[4] + z_mag
        tuning_state[5] = tuning_decay * tuning_state[5] + 1.0
    tuning_state[6] *= tuning_decay
    if tuning_state[5] > 0.0:
        prior = tuning_state[6] * tuning_state[4] / tuning_state[5]
        tuning_state[2] = np.arctan2(tuning_state[1], tuning_state[0] + prior) / (2.0 * np.pi)
    return tuning


@njit(cache=True, nogil=True)
def peak_buffers(k_lo, k_hi, bin_hz):
    """What :func:`peak_chroma` needs for a bin range: the MIDI pitch of each bin's centre (float32, indexed
    by bin) and scratch (candidate bins, then per peak: pitch class, in-tune weight, magnitude, bass)."""
    n = k_hi - k_lo + 1
    bin_pitch = np.zeros(k_hi + 1, np.float32)
    for b in range(1, k_hi + 1):
        bin_pitch[b] = 12.0 * np.log2(b * bin_hz / 440.0) + 69.0
    return (bin_pitch, np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.float32),
            np.empty(n, np.float32), np.empty(n, np.bool_))


@njit(cache=True, nogil=True, inline="always")
def _cis_2pi(u):
    """(cos, sin) of 2 pi u for |u| <= 0.5, float32, within 5e-7: Taylor series of the half angle
    (|a| <= pi / 2, truncation error < 1e-9), then the double-angle formulas. Several times faster than
    the libm calls, which were a third of the chroma's cost."""
    a = np.float32(np.pi) * u
    a2 = a * a
    s = a * (np.float32(1.0) + a2 * (np.float32(-1.0 / 6) + a2 * (np.float32(1.0 / 120) + a2 * (
        np.float32(-1.0 / 5040) + a2 * (np.float32(1.0 / 362880) + a2 * (np.float32(-1.0 / 39916800)
                                                                         + a2 * np.float32(1.0 / 6227020800)))))))
    c = np.float32(1.0) + a2 * (np.float32(-0.5) + a2 * (np.float32(1.0 / 24) + a2 * (np.float32(-1.0 / 720) + a2 * (
        np.float32(1.0 / 40320) + a2 * (np.float32(-1.0 / 3628800) + a2 * (np.float32(1.0 / 479001600)
                                                                           + a2 * np.float32(-1.0 / 87178291200)))))))
    return c * c - s * s, np.float32(2.0) * s * c


TONALITY_NOISE = 0.5  # tonality of white noise and drums (peaks anywhere between the semitones)
TONALITY_SPAN = 0.08  # tonality above TONALITY_NOISE at which a frame counts as fully pitched


@njit(cache=True, nogil=True)
def tonal_weight(tonality):
    """Map a frame's tonality to [0, 1]: the scale of its chroma (its maximum) after normalisation."""
    # Never exactly 0: a noisy frame keeps the shape of its chroma (at a small scale) for the HMM to weigh.
    g = (tonality - TONALITY_NOISE) / TONALITY_SPAN
    return 0.05 if g < 0.05 else (1.0 if g > 1.0 else g)


# --------------------------------------------------------------------------------------------------
# Stages 2 and 3: chord HMM with fixed-lag smoothing, key tracker
# --------------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _push_context(chroma, bass, history, t, context):
    """Store frame ``t`` (its treble and bass chroma) in the ring ``history`` (frames x 24, zeros at the
    start of a stream) and write the mean of the last ``min(t + 1, frames)`` frames, itself included, to
    ``context`` (24): what the emission knows of the recent past. The live tracker and
    :func:`context_means` (training, offline decoding) both call this, so they agree exactly."""
    n = history.shape[0]
    slot = t % n
    for c in range(12):
        history[slot, c] = chroma[c]
        history[slot, 12 + c] = bass[c]
    inv = 1.0 / min(t + 1, n)
    for i in range(24):
        acc = 0.0
        for k in range(n):
            acc += history[k, i]
        context[i] = np.float32(acc * inv)


@njit(cache=True, nogil=True)
def _context_block(chroma, bass, history, out):
    for t in range(chroma.shape[0]):
        _push_context(chroma[t], bass[t], history, t, out[t])


def context_means(chroma: np.ndarray, bass: np.ndarray, frames: int) -> np.ndarray:
    """Per frame of one stream (from its start): the mean treble and bass chroma (frames x 24) of the last
    ``frames`` frames, as the live tracker feeds its emission."""
    chroma = np.ascontiguousarray(chroma, np.float32)
    out = np.empty((chroma.shape[0], 24), np.float32)
    _context_block(chroma, np.ascontiguousarray(bass, np.float32), np.zeros((frames, 24), np.float32), out)
    return out


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _emission(chroma, bass, context, net, x, hidden, out):
    """Emission of the 109 states for one frame (in place), scaled so the best state has 1.

    ``context`` is :func:`_push_context`'s mean of the recent frames (treble 12, bass 12); ``net`` is
    :func:`load_emission`'s tuple; ``x`` and ``hidden`` are :func:`emission_scratch`. Sums may be
    reordered (``fastmath`` reassoc: they vectorise). Every root sees its rotated input through the same
    weights, so transposing the input transposes the scores (to float32 rounding: the sum over the inputs
    runs in pitch-class order, which a transposition rotates).
    """
    w1, b1, w2, b2, v1, c1, v2, c2, offset = net
    n_states = out.shape[0]
    n_chords = n_states - 1
    energy = 0.0
    for c in range(12):
        energy += chroma[c] + bass[c]
    if energy <= 1e-9:  # a gated (near-silent or unpitched) frame: certainly no chord
        for s in range(n_chords):
            out[s] = 1e-12
        out[n_chords] = 1.0
        return
    # The chord scores see shapes only: the frame divided by its maximum (the frame's tonal weight), the
    # context by its own; the N score sees the tonal weight too.
    top = 0.0
    context_top = 0.0
    for c in range(12):
        if chroma[c] > top:
            top = chroma[c]
        if context[c] > context_top:
            context_top = context[c]
    if top <= 1e-9:
        top = 1e-9
    inv = np.float32(1.0 / top)
    context_inv = np.float32(1.0 / context_top) if context_top > 1e-9 else np.float32(0.0)
    for c in range(12):  # x[0:48]: treble, bass, context treble, context bass, each 12 pitch classes
        x[c] = chroma[c] * inv
        x[12 + c] = bass[c] * inv
        x[24 + c] = context[c] * context_inv
        x[36 + c] = context[12 + c] * context_inv
    # One network shared by the 12 roots, each seeing the input rotated so that it sits at 0: w1's column
    # block r holds those rotated weights, so one pass over the inputs gives every root's hidden units.
    n_all = w1.shape[1]
    n_qualities, n_hidden = w2.shape
    for j in range(n_all):
        hidden[j] = b1[j]
    for i in range(48):  # skipping silent pitch classes (most of the bass chroma) changes no sum
        xi = np.float32(x[i])
        if xi != 0.0:
            for j in range(n_all):
                hidden[j] += w1[i, j] * xi
    for j in range(n_all):  # ReLU
        if hidden[j] < 0.0:
            hidden[j] = 0.0
    for r in range(12):
        for q in range(n_qualities):
            score = b2[q]
            for j in range(n_hidden):
                score += w2[q, j] * hidden[r * n_hidden + j]
            out[q * 12 + r] = score
    # N from rotation-invariant features: each of the four blocks sorted in descending order, and the
    # tonal weight.
    for block in range(4):
        for i in range(12):
            v = x[12 * block + i]
            k = 48 + 12 * block + i
            while k > 48 + 12 * block and x[k - 1] < v:
                x[k] = x[k - 1]
                k -= 1
            x[k] = v
    a_n = c2[0]
    for j in range(v1.shape[0]):
        a = c1[j] + v1[j, 48] * top
        for i in range(48):
            a += v1[j, i] * x[48 + i]
        if a > 0.0:
            a_n += v2[j] * a
    out[n_chords] = a_n
    best = -1e30
    for s in range(n_states):
        out[s] += offset[s]
        if out[s] > best:
            best = out[s]
    for s in range(n_states):
        out[s] = np.exp(np.float32(out[s] - best))


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _track(chroma, bass, net, family, profiles, chord_fit, p_stay, lag, hysteresis, key_prior, key_switch,
           key_chord_weight, key_profile_weight, key_margin, key_hold, key_alpha, key_ll, history, context, x,
           hidden, em_ring,
           alpha_ring, alpha, beta, gamma, mm, alpha_free, mm_free, prior, state_i, out_chord, out_conf,
           out_ext, out_ext_conf, out_key, out_key_conf, out_key_change):
    """Per frame: emission, forward step, fixed-lag backward pass, labels with hysteresis, key update.

    With ``key_prior`` > 0 each chord's emission is weighted by how likely the chord is in the key as
    believed so far (the key posterior before this frame): ``(24 * P(majmin chord | key))**key_prior``,
    averaged over the key posterior, so a flat key belief (the start of a stream) leaves it unchanged.

    state_i: [frames seen, held majmin chord, held extended chord, held key, key candidate, candidate run]
    """
    n_frames = chroma.shape[0]
    n_states = alpha.shape[0]
    n_chords = n_states - 1
    ring = em_ring.shape[0]  # lag + 1
    move = (1.0 - p_stay) / n_states
    for f in range(n_frames):
        t = state_i[0]
        slot = t % ring
        _push_context(chroma[f], bass[f], history, t, context)
        _emission(chroma[f], bass[f], context, net, x, hidden, em_ring[slot])
        e = em_ring[slot]
        # The key's own chord filter: forward filtering of the emissions *before* the key prior, so
        # the key is not fed chords it has itself pulled towards it (that feedback locked in wrong keys).
        total = 0.0
        for s in range(n_states):
            a = (p_stay * alpha_free[s] + move) * e[s]
            alpha_free[s] = a
            total += a
        for i in range(25):
            mm_free[i] = 0.0
        inv = 1.0 / total
        for s in range(n_chords):
            alpha_free[s] *= inv
            mm_free[s % 12 + 12 * family[s // 12]] += alpha_free[s]
        alpha_free[n_chords] *= inv
        mm_free[24] = alpha_free[n_chords]
        if key_prior > 0.0:
            for i in range(24):
                lik = 0.0
                for k in range(24):
                    lik += key_alpha[k] * chord_fit[k, i]
                prior[i] = np.float32(24.0 * lik) ** np.float32(key_prior)
            for s in range(n_chords):
                e[s] *= prior[s % 12 + 12 * family[s // 12]]
        # Forward filtering. Transition: stay with p_stay, else jump uniformly: O(states) per frame.
        total = 0.0
        for s in range(n_states):
            a = (p_stay * alpha[s] + move) * em_ring[slot, s]
            alpha[s] = a
            total += a
        inv = 1.0 / total
        for s in range(n_states):
            alpha[s] *= inv
            alpha_ring[slot, s] = alpha[s]
        state_i[0] = t + 1
        # Fixed-lag smoothing: the posterior of frame t - lag given frames up to t.
        if t < lag:
            out_chord[f] = NO_CHORD
            out_conf[f] = 0.0
            out_ext[f] = n_chords
            out_ext_conf[f] = 0.0
            out_key[f] = state_i[3]
            out_key_conf[f] = 0.0
            out_key_change[f] = False
            continue
        for s in range(n_states):
            beta[s] = 1.0
        for k in range(lag):
            e = em_ring[(t - k) % ring]
            acc = 0.0
            for s in range(n_states):
                b = e[s] * beta[s]
                beta[s] = b
                acc += b
            # p_stay * b + move * acc summed over the states is acc (move = (1 - p_stay) / n_states): the
            # normalised message is p_stay * b / acc + move, with no second sum.
            scale = p_stay / acc
            for s in range(n_states):
                beta[s] = beta[s] * scale + move
        past = alpha_ring[(t - lag) % ring]
        total = 0.0
        for s in range(n_states):
            gamma[s] = past[s] * beta[s]
            total += gamma[s]
        inv = 1.0 / total
        for s in range(n_states):
            gamma[s] *= inv
        # majmin marginal and its held label (hysteresis: a new label must lead by a margin).
        for i in range(25):
            mm[i] = 0.0
        for s in range(n_chords):
            mm[s % 12 + 12 * family[s // 12]] += gamma[s]
        mm[24] = gamma[n_chords]
        best = 0
        for i in range(25):
            if mm[i] > mm[best]:
                best = i
        held = state_i[1]
        if held < 0 or (best != held and mm[best] > mm[held] + hysteresis):
            held = best
        state_i[1] = held
        out_chord[f] = held
        out_conf[f] = mm[held]
        # Extended label: the best extended state whose reduction is the held majmin chord.
        if held == 24:
            ext = n_chords
        else:
            ext = -1
            for q in range(n_chords // 12):
                if family[q] == held // 12:
                    s = q * 12 + held % 12
                    if ext < 0 or gamma[s] > gamma[ext]:
                        ext = s
            prev = state_i[2]
            if (prev >= 0 and prev != n_chords and prev % 12 == held % 12 and family[prev // 12] == held // 12
                    and gamma[ext] <= gamma[prev] + hysteresis):
                ext = prev
        state_i[2] = ext
        out_ext[f] = ext
        out_ext_conf[f] = gamma[ext]

        # ---- key: an HMM over the 24 keys fed by this frame's chords and chroma ----
        _key_step(chroma[f], mm_free, profiles, chord_fit, key_alpha, key_ll, key_switch, key_chord_weight,
                  key_profile_weight, key_margin, key_hold, state_i, out_key, out_key_conf, out_key_change, f)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _key_step(chroma, mm, profiles, chord_given_key, alpha, key_ll, p_switch, chord_weight, profile_weight, margin,
              hold, state_i, out_key, out_key_conf, out_key_change, f):
    """One forward step of the key HMM, then the held key with hysteresis.

    Evidence per frame, scaled by how sure we are that a chord sounds (1 - P(N)): the log-likelihood of
    the majmin chord posterior under each key's chord distribution, plus the correlation of the chroma
    with the key profile. An HMM (rather than a decayed average) makes a modulation a change point: the
    new key takes over once its evidence outweighs the switch prior, however long the old key lasted.
    """
    n_keys = alpha.shape[0]
    tonal = 1.0 - mm[24]
    mean = 0.0
    for c in range(12):
        mean += chroma[c]
    mean /= 12.0
    cn = 0.0
    for c in range(12):
        cn += (chroma[c] - mean) ** 2
    cn = np.sqrt(cn)
    best_l = -1e30
    for k in range(n_keys):
        ll = 0.0
        if tonal > 0.05:
            lik = 0.0
            for i in range(24):
                lik += mm[i] * chord_given_key[k, i]
            ll = chord_weight * np.log(np.float32(lik / tonal + 1e-9))
            if cn > 1e-9:
                r = 0.0
                for c in range(12):
                    r += (chroma[c] - mean) * profiles[k, c]
                ll += profile_weight * r / cn
            ll *= tonal
        key_ll[k] = ll
        if ll > best_l:
            best_l = ll
    total = 0.0
    for k in range(n_keys):
        a = np.exp(np.float32(key_ll[k] - best_l)) * ((1.0 - p_switch) * alpha[k] + p_switch / n_keys)
        alpha[k] = a
        total += a
    best = 0
    inv = 1.0 / total
    for k in range(n_keys):
        alpha[k] *= inv
        if alpha[k] > alpha[best]:
            best = k
    held = state_i[3]
    changed = False
    if held < 0:
        if alpha[best] > 0.5:
            held = best
            changed = True
    elif best != held and alpha[best] > alpha[held] + margin:
        if state_i[4] == best:
            state_i[5] += 1
        else:
            state_i[4] = best
            state_i[5] = 1
        if state_i[5] >= hold:
            held = best
            changed = True
    else:
        state_i[4] = -1
        state_i[5] = 0
    if changed:
        state_i[4] = -1
        state_i[5] = 0
    state_i[3] = held
    out_key[f] = held
    out_key_conf[f] = alpha[held] if held >= 0 else 0.0
    out_key_change[f] = changed


MAX_LOOKAHEAD_S = 2.0  # the chord decoder's look-ahead, at most
MAX_KEY_PRIOR = 4.0  # the key-conditioned chord prior's exponent, at most

@dataclass(frozen=True)
class HarmonyParams:
    """Tuning of the chord HMM and key tracker, in frame-rate independent units."""

    chord_stay_seconds: float = 4.0  # expected chord duration for the HMM self-transition
    chord_lookahead_seconds: float = 0.2  # fixed lag of the smoother: labels are final this much later
    chord_hysteresis: float = 0.1  # a new label's posterior must lead the held one's by this
    chord_key_prior: float = 0.5  # exponent of the key-conditioned chord prior (0 = chords ignore the key)
    # The key settings below were chosen on the harmony tuning sets (feature version 8; docs/chords_and_keys.md,
    # "The live key's settings"): the best real-music live key that kept the synthetic modulations' key accuracy.
    key_profile: str = "edma"  # one of KEY_PROFILES: "krumhansl", "temperley", "edma"
    key_stay_seconds: float = 600.0  # expected time between key changes (key HMM self-transition)
    key_chord_weight: float = 1.0  # per second: weight of the chord log-likelihood in the key evidence
    key_profile_weight: float = 1.0  # per second: weight of the chroma / key-profile correlation
    key_switch_margin: float = 0.1  # a new key's posterior must lead the held one's by this ...
    key_hold_seconds: float = 1.0  # ... for this long

    def chord_stay(self, frame_rate: float) -> float:
        """The chord HMM's self-transition probability per frame."""
        return float(np.exp(-1.0 / (self.chord_stay_seconds * frame_rate)))


class HarmonyTracker:
    """Per-stream chord/key state; feed chroma frames in order with :meth:`update`.

    Parameters
    ----------
    frame_rate : float
        Frames per second of the chroma stream.
    params : HarmonyParams, optional
    """

    def __init__(self, frame_rate: float, params: HarmonyParams | None = None):
        p = self.params = params or HarmonyParams()
        if not 0.0 <= p.chord_lookahead_seconds <= MAX_LOOKAHEAD_S:
            raise ValueError(f"chord_lookahead_seconds must be in [0, {MAX_LOOKAHEAD_S:g}], got {p.chord_lookahead_seconds}")
        if not 0.0 <= p.chord_key_prior <= MAX_KEY_PRIOR:
            raise ValueError(f"chord_key_prior must be in [0, {MAX_KEY_PRIOR:g}], got {p.chord_key_prior}")
        self.frame_rate = float(frame_rate)
        self._net, self._context_frames = _emission_net()
        self._profiles = key_profiles(p.key_profile)
        self._chord_given_key = chord_given_key()
        self._p_stay = p.chord_stay(frame_rate)
        self._key_switch = float(1.0 - np.exp(-1.0 / (p.key_stay_seconds * frame_rate)))
        self.lag = int(round(p.chord_lookahead_seconds * frame_rate))
        self._key_hold = max(1, int(round(p.key_hold_seconds * frame_rate)))
        self.reset()

    @property
    def lookahead_seconds(self) -> float:
        """The decoder's exact look-ahead: the chord reported at frame ``t`` describes frame ``t - lag``."""
        return self.lag / self.frame_rate

    def reset(self) -> None:
        self._em = np.ones((self.lag + 1, N_EXT))
        self._alpha_ring = np.full((self.lag + 1, N_EXT), 1.0 / N_EXT)
        self._alpha = np.full(N_EXT, 1.0 / N_EXT)
        self._beta = np.empty(N_EXT)
        self._gamma = np.empty(N_EXT)
        self._mm = np.empty(25)
        self._alpha_free = np.full(N_EXT, 1.0 / N_EXT)
        self._mm_free = np.zeros(25)
        self._prior = np.ones(24)
        self._state_i = np.array([0, -1, -1, -1, -1, 0], dtype=np.int64)
        self._key_alpha = np.full(24, 1.0 / 24)
        self._key_ll = np.zeros(24)
        self._history = np.zeros((self._context_frames, 24), np.float32)
        self._context = np.zeros(24, np.float32)
        self._x, self._hidden = emission_scratch(self._net)

    def update(self, chroma: np.ndarray, bass: np.ndarray | None = None) -> "HarmonyFrames":
        """Track ``chroma`` (and ``bass`` chroma), frames x 12 each; returns per-frame labels."""
        p = self.params
        chroma = np.ascontiguousarray(chroma, dtype=np.float32)
        n = chroma.shape[0]
        bass = np.zeros_like(chroma) if bass is None else np.ascontiguousarray(bass, dtype=np.float32)
        out = HarmonyFrames.empty(n)
        _track(chroma, bass, self._net, QUALITY_FAMILY, self._profiles, self._chord_given_key, self._p_stay, self.lag,
               p.chord_hysteresis, p.chord_key_prior, self._key_switch, p.key_chord_weight / self.frame_rate,
               p.key_profile_weight / self.frame_rate, p.key_switch_margin, self._key_hold, self._key_alpha,
               self._key_ll, self._history, self._context, self._x, self._hidden, self._em, self._alpha_ring,
               self._alpha, self._beta, self._gamma, self._mm, self._alpha_free, self._mm_free,
               self._prior, self._state_i,
               out.chord, out.chord_confidence, out.chord_ext, out.chord_ext_confidence, out.key, out.key_confidence,
               out.key_change)
        return out


@dataclass(frozen=True)
class HarmonyFrames:
    """Per-frame output of :meth:`HarmonyTracker.update` (chords describe the frame ``lag`` frames back)."""

    chord: np.ndarray  # majmin index, see chord_label
    chord_confidence: np.ndarray
    chord_ext: np.ndarray  # extended index, see chord_ext_label
    chord_ext_confidence: np.ndarray
    key: np.ndarray  # key index, see key_name; -1 while unknown
    key_confidence: np.ndarray
    key_change: np.ndarray  # bool: the held key changed at this frame (first establishment included)

    @classmethod
    def empty(cls, n: int) -> "HarmonyFrames":
        return cls(np.empty(n, np.int64), np.empty(n, np.float32), np.empty(n, np.int64), np.empty(n, np.float32),
                   np.empty(n, np.int64), np.empty(n, np.float32), np.empty(n, np.bool_))


@njit(cache=True, nogil=True)
def _accumulate_key_evidence(chroma, bass, chord, bass_weight, acc_chroma, acc_chords):
    for f in range(chord.shape[0]):
        for c in range(12):
            acc_chroma[c] += chroma[f, c] + bass_weight * bass[f, c]
        if chord[f] < NO_CHORD:
            acc_chords[chord[f]] += 1.0


# The whole-file key (StreamKey): the best of 126 settings on 211 real clips outside the harmony evaluation
# (scripts/eval_harmony.py --tune-file-key), see docs/chords_and_keys.md, "The file's key".
STREAM_KEY_PROFILE = "edma"
STREAM_KEY_PROFILE_WEIGHT = 3.0
STREAM_KEY_BASS_WEIGHT = 2.0


class StreamKey:
    """The key of everything heard since :meth:`reset`: a file's key, for the ``analyze`` summary.

    Unlike the live key (:class:`HarmonyTracker`, which must decide within seconds and follow
    modulations), this one may wait for the end: it scores each of the 24 keys by how likely the
    stream's chord histogram is in that key (mean log P(chord | key), :func:`chord_given_key`) plus
    ``profile_weight`` times the correlation of the stream's mean chroma (treble + ``bass_weight`` x bass)
    with the key profile. :meth:`estimate` gives the best key and its softmax share of the 24 scores, and
    no key for a stream in which the live key tracker never established one (speech, noise, drums: a few
    stray chords there are no key).
    """

    def __init__(self, profile: str = STREAM_KEY_PROFILE, profile_weight: float = STREAM_KEY_PROFILE_WEIGHT,
                 bass_weight: float = STREAM_KEY_BASS_WEIGHT):
        self._profiles = key_profiles(profile).astype(np.float64)
        self._log_chord_given_key = np.log(chord_given_key()[:, :NO_CHORD])
        self.profile_weight, self.bass_weight = float(profile_weight), float(bass_weight)
        self.reset()

    def reset(self) -> None:
        self._chroma = np.zeros(12)
        self._chords = np.zeros(NO_CHORD)
        self._key_heard = False

    def update(self, chroma: np.ndarray, bass: np.ndarray, chord: np.ndarray, key: np.ndarray) -> None:
        """Add frames: chroma and bass chroma (n, 12), majmin chord indices (n,) (N frames are skipped) and
        the live tracker's keys (n,; -1 before it established one)."""
        if len(chord):  # one Numba call: numpy's per-call overhead would cost more than the sums
            _accumulate_key_evidence(chroma, bass, chord, self.bass_weight, self._chroma, self._chords)
            if not self._key_heard:  # once is enough: no numpy call per block after that
                self._key_heard = bool((key >= 0).any())

    def scores(self) -> np.ndarray | None:
        """The 24 keys' scores (12 major then 12 minor tonics); None before any chord was heard or while the
        live tracker has not established a key."""
        total = self._chords.sum()
        if total == 0 or not self._key_heard:
            return None
        v = self._chroma - self._chroma.mean()
        norm = np.linalg.norm(v)
        corr = self._profiles @ (v / norm) if norm > 0 else np.zeros(24)
        return self._log_chord_given_key @ (self._chords / total) + self.profile_weight * corr

    def estimate(self) -> tuple[int, float]:
        """(key index, confidence in 0..1), or (-1, 0.0) when :meth:`scores` has none."""
        s = self.scores()
        if s is None:
            return -1, 0.0
        p = np.exp(s - s.max())
        best = int(np.argmax(s))
        return best, float(p[best] / p.sum())


def viterbi_chords(chroma: np.ndarray, bass: np.ndarray, frame_rate: float,
                   params: HarmonyParams | None = None, keys: np.ndarray | None = None) -> np.ndarray:
    """Offline reference: full Viterbi over the same emissions and transitions (extended indices).

    ``keys`` (per-frame key indices, -1 = unknown; e.g. the tracker's held keys) apply the same key
    prior as the live tracker, with the key known rather than believed. For evaluation only (it needs
    the whole signal); the live path is :class:`HarmonyTracker`.
    """
    p = params or HarmonyParams()
    em = chord_emissions(chroma, bass)
    if keys is not None and p.chord_key_prior > 0:
        fit = chord_given_key()[:, :24]
        state_chord = np.array([s % 12 + 12 * QUALITY_FAMILY[s // 12] for s in range(N_EXT - 1)])
        known = keys >= 0
        em[known, :-1] *= (24.0 * fit[keys[known]][:, state_chord]) ** p.chord_key_prior
    p_stay = p.chord_stay(frame_rate)
    return _viterbi(np.log(em + 1e-300), np.log(p_stay + (1 - p_stay) / N_EXT), np.log((1 - p_stay) / N_EXT))


def chord_emissions(chroma: np.ndarray, bass: np.ndarray, emission: tuple[tuple, int] | None = None) -> np.ndarray:
    """Per-frame emissions of the 109 extended states (``quality * 12 + root``, 108 = N), max 1 per row,
    of one stream from its start (each frame's context is the frames before it); ``emission`` is a
    :func:`load_emission` result (default: the shipped model)."""
    net, frames = emission or _emission_net()
    chroma = np.ascontiguousarray(chroma, np.float32)
    bass = np.ascontiguousarray(bass, np.float32)
    context = context_means(chroma, bass, frames)
    em = np.empty((chroma.shape[0], N_EXT))
    x, hidden = emission_scratch(net)
    for f in range(chroma.shape[0]):
        _emission(chroma[f], bass[f], context[f], net, x, hidden, em[f])
    return em


@njit(cache=True)
def _viterbi(log_em, log_stay, log_move):
    n, s = log_em.shape
    back = np.empty((n, s), np.int64)
    delta = log_em[0].copy()
    for t in range(1, n):
        best = np.argmax(delta)
        jump = delta[best] + log_move
        new = np.empty(s)
        for i in range(s):
            stay = delta[i] + log_stay
            if stay >= jump:
                new[i] = stay + log_em[t, i]
                back[t, i] = i
            else:
                new[i] = jump + log_em[t, i]
                back[t, i] = best
        delta = new
    path = np.empty(n, np.int64)
    path[-1] = np.argmax(delta)
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path
