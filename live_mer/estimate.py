"""The immutable per-hop result record."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

# The quadrants of Russell's valence/arousal plane, as the plots and the monitor name them.
QUADRANT_NAMES = {"Q1": "happy / exuberant", "Q2": "angry / tense", "Q3": "sad / depressed", "Q4": "calm / serene"}


SILENCE_DB = -120.0  # dBFS of silence: the floor of the loudness and peak levels (features: 10 log10(power + 1e-12))

@dataclass(frozen=True, slots=True)
class Estimate:
    """One analysis hop.

    Attributes
    ----------
    t : float
        Stream time in seconds at the end of the analysed window (input audio time, not wall time).
    valence, arousal : float
        In [-1, 1] (smoothed as configured).
    quadrant : str
        Most probable Russell quadrant, ``"Q1"`` (+V +A) .. ``"Q4"`` (+V -A).
    heads : Mapping[str, Mapping[str, float]]
        Every categorical head of the model by name, e.g. ``heads["quadrant"]["Q2"]`` and
        ``heads["gems"]["tension"]``.
    chord, chord_confidence : str, float
        mir_eval style major/minor label (``"A:min"``, ``"N"`` for none) and its posterior; it describes
        the audio one chord look-ahead (200 ms by default) before ``t``.
    chord_ext, chord_ext_confidence : str, float
        The same chord in the extended vocabulary (``"G:7"``, ``"A:min7"``, ``"B:dim"``, ``"D:sus4"`` ...).
    key, key_camelot, key_open, key_confidence : str, str, str, float
        ``"A minor"``, ``"8A"``, ``"1m"``; empty strings while no key is established.
    key_change : bool
        True if the key changed (or was first established) during this hop.
    loudness_db : float
        RMS level in dBFS over the hop (the mean power of its frames; a full-scale sine reads -3 dB, digital
        silence -120).
    onset : float
        Onset strength (positive log-mel flux) averaged over the hop.
    peak : float
        Largest absolute input sample of any channel since the previous estimate (after invalid samples
        are removed).
    clipped : int
        Input samples at or beyond full scale (0.999) since the previous estimate, counted in every channel
        before the mix to mono.
    nonfinite : int
        Invalid input samples replaced by zeros since the previous estimate: NaN, Inf, and magnitudes
        beyond ``analyzer.MAX_SAMPLE`` (+24 dBFS: corrupt data, not sound).
    overflows : int
        Input overflows (dropped audio blocks or PortAudio overflow flags) since the stream started.
    input_ok : bool
        False while the input device is lost: the analyzer is then fed silence so estimates keep
        coming at the usual rate while the device is being reopened.
    latency_ms : float
        Processing time of the analyzer call that produced this estimate.
    """

    t: float
    valence: float
    arousal: float
    quadrant: str = ""
    heads: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))
    chord: str = "N"
    chord_confidence: float = 0.0
    key: str = ""
    key_camelot: str = ""
    key_open: str = ""
    key_confidence: float = 0.0
    chord_ext: str = "N"
    chord_ext_confidence: float = 0.0
    key_change: bool = False
    loudness_db: float = SILENCE_DB
    onset: float = 0.0
    peak: float = 0.0
    clipped: int = 0
    nonfinite: int = 0
    overflows: int = 0
    input_ok: bool = True
    latency_ms: float = 0.0

    @property
    def peak_db(self) -> float:
        """The block's peak in dBFS, -120 (the floor of every level) for silence."""
        return 20.0 * math.log10(self.peak) if self.peak > 1e-6 else SILENCE_DB

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict (the ``timeline`` entry of the analyze JSON contract)."""
        d = {
            "t": round(self.t, 4),
            "valence": self.valence,
            "arousal": self.arousal,
            "quadrant": self.quadrant,
        }
        for name, values in self.heads.items():
            d[f"{name}_probs" if name == "quadrant" else name] = dict(values)
        d.update(chord=self.chord, chord_confidence=self.chord_confidence, chord_ext=self.chord_ext,
                 chord_ext_confidence=self.chord_ext_confidence, key=self.key, key_camelot=self.key_camelot,
                 key_open=self.key_open, key_confidence=self.key_confidence, key_change=self.key_change,
                 loudness_db=self.loudness_db, onset=self.onset)
        return d
