"""Causal chord and key tracking on chroma frames.

Chords: 24 major/minor triads plus a no-chord state ``N``, scored by cosine similarity against
binary triad templates and decoded with an online HMM (forward filtering, no look-ahead), so a label
is available the moment its frame is. Key: a running, exponentially decayed chroma profile
correlated with the 24 rotations of a key profile, with hysteresis so the key does not flip on a
single ambiguous bar.

Why hand-written: no library decodes chords or keys frame by frame without allocating (librosa and
madmom decode whole sequences offline); this is one small Numba loop per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._numba import njit

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
N_CHORDS = 25  # 12 major, 12 minor, N
NO_CHORD = 24

# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
KRUMHANSL_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KRUMHANSL_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def chord_label(index: int) -> str:
    """Chord index (0-11 major, 12-23 minor, 24 none) to a mir_eval style label such as ``"A:min"``."""
    if index < 0 or index >= NO_CHORD:
        return "N"
    root = PITCH_CLASSES[index % 12]
    return f"{root}:maj" if index < 12 else f"{root}:min"


def key_name(index: int) -> str:
    """Key index (0-11 major tonic, 12-23 minor tonic, -1 unknown) to ``"A minor"`` style text."""
    if index < 0:
        return ""
    return f"{PITCH_CLASSES[index % 12]} {'major' if index < 12 else 'minor'}"


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


def chord_templates() -> np.ndarray:
    """Unit-norm chroma templates, shape (25, 12): major triads, minor triads, flat no-chord."""
    t = np.zeros((N_CHORDS, 12), dtype=np.float32)
    for root in range(12):
        for interval in (0, 4, 7):
            t[root, (root + interval) % 12] = 1.0
        for interval in (0, 3, 7):
            t[12 + root, (root + interval) % 12] = 1.0
    t[NO_CHORD] = 1.0
    return t / np.linalg.norm(t, axis=1, keepdims=True)


def key_profiles() -> np.ndarray:
    """Zero-mean, unit-norm key profiles, shape (24, 12): 12 major then 12 minor tonics."""
    p = np.zeros((24, 12), dtype=np.float32)
    for tonic in range(12):
        p[tonic] = np.roll(KRUMHANSL_MAJOR, tonic)
        p[12 + tonic] = np.roll(KRUMHANSL_MINOR, tonic)
    p -= p.mean(axis=1, keepdims=True)
    return p / np.linalg.norm(p, axis=1, keepdims=True)


@dataclass(frozen=True)
class HarmonyParams:
    """Tuning of the chord HMM and key tracker, in frame-rate independent units."""

    chord_stay_seconds: float = 0.8  # expected chord duration for the HMM self-transition
    chord_sharpness: float = 25.0  # emission = exp(sharpness * (cosine - 1))
    key_memory_seconds: float = 12.0  # time constant of the decayed chroma used for the key
    key_switch_margin: float = 0.04  # a new key must beat the current one by this correlation


@njit(cache=True, nogil=True)
def _track(chroma, templates, profiles, p_stay, sharpness, key_decay, key_margin, state_alpha, state_profile,
           state_key, out_chord, out_chord_conf, out_key, out_key_conf):
    n_frames = chroma.shape[0]
    n_states = templates.shape[0]
    n_keys = profiles.shape[0]
    p_move = (1.0 - p_stay) / (n_states - 1)
    for f in range(n_frames):
        norm = 0.0
        for c in range(12):
            norm += chroma[f, c] * chroma[f, c]
        norm = np.sqrt(norm)
        # Forward filtering with a uniform off-diagonal transition: O(states) per frame.
        total = 0.0
        for s in range(n_states):
            pred = p_stay * state_alpha[s] + p_move * (1.0 - state_alpha[s])
            if norm > 1e-6:
                cos = 0.0
                for c in range(12):
                    cos += chroma[f, c] * templates[s, c]
                cos /= norm
            else:
                cos = 1.0 if s == n_states - 1 else 0.0  # silence: certain no-chord
            e = np.exp(sharpness * (cos - 1.0))
            state_alpha[s] = pred * e
            total += state_alpha[s]
        best = 0
        for s in range(n_states):
            state_alpha[s] /= total
            if state_alpha[s] > state_alpha[best]:
                best = s
        out_chord[f] = best
        out_chord_conf[f] = state_alpha[best]

        # Key: decayed chroma profile correlated with the key profiles; switch only past a margin.
        energy = 0.0
        for c in range(12):
            state_profile[c] = key_decay * state_profile[c] + (1.0 - key_decay) * (chroma[f, c] if norm > 1e-6 else 0.0)
            energy += state_profile[c]
        if energy < 1e-3:
            out_key[f] = state_key[0]
            out_key_conf[f] = 0.0
            continue
        mean = energy / 12.0
        pnorm = 0.0
        for c in range(12):
            pnorm += (state_profile[c] - mean) ** 2
        pnorm = np.sqrt(pnorm) + 1e-9
        best_k = 0
        best_r = -2.0
        current_r = -2.0
        for k in range(n_keys):
            r = 0.0
            for c in range(12):
                r += (state_profile[c] - mean) * profiles[k, c]
            r /= pnorm
            if k == state_key[0]:
                current_r = r
            if r > best_r:
                best_r = r
                best_k = k
        if state_key[0] < 0 or best_r > current_r + key_margin:
            state_key[0] = best_k
            current_r = best_r
        out_key[f] = state_key[0]
        # Confidence: the held key's profile correlation (1 = the decayed chroma is the profile).
        out_key_conf[f] = min(max(current_r, 0.0), 1.0)


class HarmonyTracker:
    """Per-stream chord/key state; feed chroma frames in order with :meth:`update`."""

    def __init__(self, frame_rate: float, params: HarmonyParams | None = None):
        self.params = params or HarmonyParams()
        self._templates = chord_templates()
        self._profiles = key_profiles()
        self._p_stay = float(np.exp(-1.0 / (self.params.chord_stay_seconds * frame_rate)))
        self._key_decay = float(np.exp(-1.0 / (self.params.key_memory_seconds * frame_rate)))
        self.reset()

    def reset(self) -> None:
        self._alpha = np.full(N_CHORDS, 1.0 / N_CHORDS)
        self._profile = np.zeros(12)
        self._key = np.full(1, -1, dtype=np.int64)

    def update(self, chroma: np.ndarray):
        """Track ``chroma`` (frames x 12); returns (chord, chord_conf, key, key_conf) arrays per frame."""
        n = chroma.shape[0]
        chord = np.empty(n, dtype=np.int64)
        chord_conf = np.empty(n, dtype=np.float32)
        key = np.empty(n, dtype=np.int64)
        key_conf = np.empty(n, dtype=np.float32)
        _track(chroma, self._templates, self._profiles, self._p_stay, self.params.chord_sharpness,
               self._key_decay, self.params.key_switch_margin, self._alpha, self._profile, self._key,
               chord, chord_conf, key, key_conf)
        return chord, chord_conf, key, key_conf
