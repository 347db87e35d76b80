"""Built-in demo music, synthesised by live_mer itself with numpy.

When no sound card is available the engine needs *something* to analyse, and it should be
something whose emotion really changes so that the valence/arousal output visibly moves. This
module composes and renders a short looping piece that walks once around Russell's circumplex:

    serene (Q4, +V -A) -> exuberant (Q1, +V +A) -> tense (Q2, -V +A) -> sad (Q3, -V -A) -> loop

Everything is generated here: band-limited wavetable oscillators, ADSR / decay envelopes,
noise drums and zero-phase FFT filters. No samples, soundfonts or third-party audio are used,
so the material carries no licence and the ground truth (sections, tempo, key, chords) is exact.
The sections differ in exactly the cues emotion models rely on: tempo, mode, event density,
loudness and brightness. Rendering is vectorised per note (about 0.3-0.5 s of CPU for the
whole piece at 22050 Hz on one core), deterministic (fixed seeds) and cached per sample rate.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .harmony import PITCH_CLASSES, QUALITIES, QUALITY_INTERVALS

__all__ = ["Section", "SECTIONS", "DURATION", "render_demo", "section_at", "chord_labels"]

_SEED = 1_2024
_XFADE = 0.25  # s; crossfade between neighbouring sections and across the loop point
_TN = 4096  # wavetable length (power of two so phase wrapping is a bit mask)


@dataclass(frozen=True)
class Section:
    """One section of the demo piece, with the ground truth an analyser should recover.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"serene"``.
    start, end : float
        Position in the piece in seconds (``end`` exclusive).
    tempo_bpm : float
        Tempo in beats per minute (4/4 time throughout).
    mode : str
        ``"major"`` or ``"minor"``.
    key : str
        Key name such as ``"C major"`` or ``"A minor"``.
    intended_quadrant : str
        ``"Q1"`` .. ``"Q4"`` of Russell's circumplex (Q1 +valence +arousal, Q2 -valence
        +arousal, Q3 -valence -arousal, Q4 +valence -arousal).
    description : str
        What the section sounds like and why.
    """

    name: str
    start: float
    end: float
    tempo_bpm: float
    mode: str
    key: str
    intended_quadrant: str
    description: str

    @property
    def duration(self) -> float:
        """Length of the section in seconds."""
        return self.end - self.start


# Composition plan: (name, bpm, key, quadrant, target RMS dBFS, bars, progression, description).
# Progressions are (mir_eval chord label, beats) cycled to fill the bars. The tonic gets the
# most time and the bass plays chord roots, so key and chord estimators have a true answer.
_PLAN = (
    ("serene", 72.0, "C major", "Q4", -22.0, 8,
     (("C:maj", 4), ("F:maj", 4), ("C:maj", 4), ("G:maj", 4),
      ("C:maj", 4), ("A:min", 4), ("F:maj", 2), ("G:maj", 2), ("C:maj", 4)),
     "Quiet, warm detuned pad, slow soft-bell arpeggio in eighths, sine bass; no drums."),
    ("exuberant", 128.0, "D major", "Q1", -14.0, 16,
     (("D:maj", 4), ("A:maj", 4), ("B:min", 4), ("G:maj", 4),
      ("D:maj", 4), ("G:maj", 4), ("A:maj", 4), ("D:maj", 4)),
     "Bright dance groove: four-on-the-floor kick, claps, hats, octave bass, major stabs."),
    ("tense", 168.0, "E minor", "Q2", -10.0, 16,
     (("E:min", 4), ("E:min", 4), ("C:maj", 4), ("B:maj", 4),
      ("E:min", 4), ("E:min", 4), ("A:min", 2), ("Eb:dim", 2), ("E:min", 4)),
     "Loud and fast: saturated 16th bass, dense drums, stabs with a clashing minor second."),
    ("sad", 60.0, "A minor", "Q3", -23.0, 7,
     (("A:min", 4), ("D:min", 4), ("E:maj", 4), ("A:min", 4),
      ("F:maj", 4), ("E:maj", 4), ("A:min", 4)),
     "Slow, sparse piano-like plucks with long decays over a dark, quiet pad."),
)


def _build_sections() -> tuple[Section, ...]:
    out, t = [], 0.0
    for name, bpm, key, quad, _db, bars, _prog, desc in _PLAN:
        dur = bars * 4 * 60.0 / bpm
        out.append(Section(name, t, t + dur, bpm, key.split()[1], key, quad, desc))
        t += dur
    return tuple(out)


SECTIONS: tuple[Section, ...] = _build_sections()
DURATION: float = SECTIONS[-1].end  # length of the loop in seconds
_STARTS = [s.start for s in SECTIONS]

_PC = {name: pc for pc, name in enumerate(PITCH_CLASSES)}
_QUALITY = dict(zip(QUALITIES, QUALITY_INTERVALS, strict=True))


def _chord_notes(label: str, low: int) -> list[int]:
    """MIDI notes of a root-position triad whose root is the lowest pitch >= ``low``."""
    root, qual = label.split(":")
    base = low + (_PC[root] - low) % 12
    return [base + i for i in _QUALITY[qual]]


def _chord_events(prog, bpm: float, t_lo: float, t_hi: float) -> list[tuple[float, float, str]]:
    """(start, dur, label) of the cycled progression overlapping [t_lo, t_hi), local seconds."""
    beat = 60.0 / bpm
    cycle = sum(b for _, b in prog) * beat
    t, out = np.floor(t_lo / cycle) * cycle, []
    while t < t_hi:
        for lab, b in prog:
            if t + b * beat > t_lo and t < t_hi:
                out.append((float(t), b * beat, lab))
            t += b * beat
    return out


def chord_labels() -> list[tuple[float, float, str]]:
    """Ground-truth chords of the whole piece.

    Returns
    -------
    list of (start, end, label)
        Times in seconds from the start of the piece; labels in mir_eval syntax
        (``"C:maj"``, ``"A:min"``, ``"Eb:dim"``, spelled as :func:`live_mer.harmony.chord_label` does). Consecutive and covering ``[0, DURATION)``.
    """
    out = []
    for sec, plan in zip(SECTIONS, _PLAN):
        for t, d, lab in _chord_events(plan[6], sec.tempo_bpm, 0.0, sec.duration - 1e-9):
            out.append((sec.start + t, min(sec.start + t + d, sec.end), lab))
    return out


def section_at(t: float) -> Section:
    """Return the section playing at time ``t`` seconds (wraps modulo :data:`DURATION`)."""
    return SECTIONS[bisect.bisect_right(_STARTS, float(t) % DURATION) - 1]


# ----------------------------------------------------------------------------- synthesis kit
def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12.0)


@lru_cache(maxsize=512)
def _wavetable(midi: int, sr: int, cutoff: float, slope: float, poles: int) -> np.ndarray:
    """One cycle of a band-limited tone: harmonics k**-slope (1 = saw, 2 = soft/triangle-like)
    shaped by a Butterworth-like lowpass. Baking the filter into the harmonic amplitudes is the
    subtractive 'saw -> lowpass' recipe without per-sample filtering, and stopping below 0.45*sr
    means no aliasing at any sample rate."""
    f0 = _hz(midi)
    k = np.arange(1, max(1, min(80, int(0.45 * sr / f0))) + 1)
    amp = k ** -float(slope) / np.sqrt(1.0 + (k * f0 / cutoff) ** (2 * poles))
    spec = np.zeros(_TN // 2 + 1, complex)
    spec[k] = -1j * amp  # sine phase: every harmonic starts at zero -> no click at onset
    tab = np.fft.irfft(spec, _TN)
    return (tab / np.abs(tab).max()).astype(np.float32)  # float32 halves memory traffic


def _phase_idx(freq: float, n: int, sr: int, phase: float = 0.0) -> np.ndarray:
    """Wavetable read positions for ``n`` samples of a tone at ``freq`` Hz."""
    return (np.arange(n) * (freq * _TN / sr) + phase * _TN).astype(np.int64) & (_TN - 1)


@lru_cache(maxsize=None)  # patterns repeat notes a lot; cleared after each render
def _tone(midi: int, dur: float, sr: int, *, cutoff: float, slope: float = 1.0, poles: int = 1,
          cents: tuple[float, ...] = (0.0,), a: float = 0.01, d: float = 0.1, s: float = 0.7,
          r: float = 0.1) -> np.ndarray:
    """Sustained note: detuned wavetable voices (chorus width) under an ADSR envelope."""
    n = int((dur + r) * sr)
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    tab = _wavetable(midi, sr, cutoff, slope, poles)
    x = sum(tab[_phase_idx(_hz(midi) * 2 ** (c / 1200), n, sr, 0.31 * j)]
            for j, c in enumerate(cents))
    a = min(a, dur)
    if a + d <= dur:
        env = np.interp(t, [0.0, a, a + d, dur, dur + r], [0.0, 1.0, s, s, 0.0])
    else:  # note released during the decay: release from wherever the decay had got to
        lvl = 1.0 - (1.0 - s) * (dur - a) / d
        env = np.interp(t, [0.0, a, dur + 1e-6, dur + r], [0.0, 1.0, lvl, 0.0])
    out = x * env / len(cents)
    out.setflags(write=False)  # shared through the cache
    return out


@lru_cache(maxsize=None)
def _pluck(midi: int, sr: int, *, decay: float, length: float,
           bright: float = 3000.0) -> np.ndarray:
    """Piano-ish struck string: bright attack that mellows (high partials die first), a second
    slightly sharp 'string' for the slow beating of a piano unison, exponential decay."""
    n = int(length * sr)
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    f = _hz(midi)
    i1, i2 = _phase_idx(f, n, sr), _phase_idx(f * 1.0011, n, sr, 0.2)
    hi, lo = _wavetable(midi, sr, bright, 1.2, 1), _wavetable(midi, sr, 2.5 * f, 2.0, 2)
    x = lo[i1] + 0.6 * lo[i2]
    nh = min(n, int(1.2 * sr))  # the bright 'hammer' layer has died away after ~1 s
    x[:nh] += np.exp(-t[:nh] / 0.2) * (hi[i1[:nh]] - lo[i1[:nh]])
    env = np.exp(-t / decay)
    na, m = min(n, int(0.02 * sr)), min(n, int(0.03 * sr))
    env[:na] *= 1.0 - np.exp(-t[:na] / 0.002)  # 2 ms attack: soft, but no click
    env[n - m:] *= np.linspace(1.0, 0.0, m, dtype=np.float32)  # end at zero, never cut hard
    out = x * env / 1.6
    out.setflags(write=False)  # shared through the cache
    return out


def _fft_filter(x: np.ndarray, sr: int, lp: float | None = None, hp: float | None = None,
                order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth-magnitude filter via one FFT (fine for offline rendering)."""
    n = 1 << int(np.ceil(np.log2(len(x) + sr // 10)))  # pad so the circular tail is silent
    f = np.fft.rfftfreq(n, 1.0 / sr)
    h = np.ones_like(f)
    if lp:
        h /= np.sqrt(1.0 + (f / lp) ** (2 * order))
    if hp:
        h /= np.sqrt(1.0 + (hp / np.maximum(f, 1e-3)) ** (2 * order))
    return np.fft.irfft(np.fft.rfft(x, n) * h, n)[: len(x)]


@lru_cache(maxsize=8)
def _drum_kit(sr: int, tonic: int) -> dict[str, list[np.ndarray]]:
    """One-shot drums (a few noise variants each, so repeated hits are not identical); the
    kick's pitch settles on the key's tonic (pitch class ``tonic``), as producers tune kicks."""
    rng = np.random.default_rng(_SEED)
    t = np.arange(int(0.5 * sr)) / sr
    noise = lambda: rng.standard_normal(len(t))  # noqa: E731
    # Kick: sine swept from ~4x down to the tonic in octave 1 (the sweep is the 'thump'); the
    # phase is the closed-form integral. A short tail keeps its pitch from swamping the chroma.
    f1 = _hz(24 + tonic)
    kick = np.sin(2 * np.pi * (f1 * t + 3 * f1 * 0.035 * (1 - np.exp(-t / 0.035))))
    kick *= np.exp(-t / 0.16)
    kit = {"kick": [kick * np.minimum(1.0, t / 0.001)], "snare": [], "clap": [], "hat": [],
           "ohat": []}
    for _ in range(3):
        body = np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.05)
        rattle = _fft_filter(noise(), sr, 7000, 900) * 0.5 * np.exp(-t / 0.1)
        kit["snare"].append(0.6 * body + rattle)
        bursts = sum(np.exp(-np.maximum(t - o, 0) / 0.008) * (t >= o) for o in (0.0, 0.011, 0.022))
        tail = np.exp(-np.maximum(t - 0.022, 0) / 0.12) * (t >= 0.022)
        kit["clap"].append(_fft_filter(noise(), sr, 3500, 900) * 0.45 * (bursts + 0.6 * tail))
        hp = _fft_filter(noise(), sr, 10000, 6500, 4)  # same band at every sample rate
        kit["hat"].append(0.35 * hp * np.exp(-t / 0.03))
        kit["ohat"].append(0.3 * hp * np.exp(-t / 0.2))
    return kit


def _steps(pattern: str, bpm: float, t_lo: float, t_hi: float) -> list[tuple[float, float]]:
    """(time, velocity) of a 16th-note pattern ('X' accent, 'x' normal, 'o' ghost, '.' rest)."""
    step, vel = 15.0 / bpm, {"X": 1.0, "x": 0.7, "o": 0.35}
    n0, n1 = int(np.floor(t_lo / step)), int(np.ceil(t_hi / step))
    return [(n * step, vel[pattern[n % len(pattern)]]) for n in range(n0, n1)
            if pattern[n % len(pattern)] in vel]


class _Bus:
    """Mono buffer for one section; local time 0 is the section start, with _XFADE/2 of
    pre- and post-roll so neighbouring sections can be crossfaded with real material."""

    def __init__(self, n_core: int, sr: int):
        self.n_core, self.sr, self.pre = n_core, sr, int(round(_XFADE / 2 * sr))
        self.buf = np.zeros(n_core + 2 * self.pre, np.float32)
        self.t_lo, self.t_hi = -self.pre / sr, (n_core + self.pre) / sr

    def add(self, t: float, x: np.ndarray, gain: float = 1.0) -> None:
        i = self.pre + int(round(t * self.sr))
        a, b = max(i, 0), min(i + len(x), len(self.buf))
        if b > a:
            self.buf[a:b] += gain * x[a - i: b - i]

    def layer(self) -> "_Bus":
        """An empty bus of the same shape (for stems that get their own processing)."""
        return _Bus(self.n_core, self.sr)


def _chord_at(chords: list[tuple[float, float, str]], t: float) -> str:
    i = bisect.bisect_right([c[0] for c in chords], t) - 1
    return chords[max(i, 0)][2]


# ------------------------------------------------------------------------------- arrangements
def _serene(bus: _Bus, prog, bpm: float) -> None:
    sr, beat = bus.sr, 60.0 / bpm
    chords = _chord_events(prog, bpm, bus.t_lo - 4 * beat, bus.t_hi)
    for t, d, lab in chords:  # dark, slow-attack pad of three detuned saws per note
        for m in _chord_notes(lab, 55):
            bus.add(t, _tone(m, d, sr, cutoff=700, poles=2, cents=(-7, 0, 7), a=0.6, d=0.5,
                             s=0.8, r=1.2), 0.16)
        bus.add(t, _tone(_chord_notes(lab, 36)[0], d, sr, cutoff=150, slope=2, a=0.08, d=0.3,
                         s=0.9, r=0.6), 0.35)
    order = (0, 1, 2, 3, 2, 1, 2, 1)  # up-down arpeggio of the chord plus octave, in eighths
    for ts, _v in _steps("x.x.x.x.x.x.x.x.", bpm, bus.t_lo - 1, bus.t_hi):
        tones = _chord_notes(_chord_at(chords, ts), 67)
        m = (tones + [tones[0] + 12])[order[round(ts / (beat / 2)) % 8]]
        acc = 1.0 if round(ts / (beat / 2)) % 2 == 0 else 0.55  # on-beat accents carry the pulse
        bus.add(ts, _pluck(m, sr, decay=0.7, length=1.6, bright=1800), 0.22 * acc)


def _exuberant(bus: _Bus, prog, bpm: float) -> None:
    sr, beat, kit = bus.sr, 60.0 / bpm, _drum_kit(bus.sr, _PC[prog[0][0].split(":")[0]])
    chords = _chord_events(prog, bpm, bus.t_lo - 4 * beat, bus.t_hi)
    for name, pat, g in (("kick", "X...X...X...X...", 0.9), ("clap", "....X.......X...", 0.6),
                         ("hat", "x.x.x.x.x.x.x.xo", 0.5), ("ohat", "..x...x...x...x.", 0.45)):
        for k, (ts, v) in enumerate(_steps(pat, bpm, bus.t_lo - 0.5, bus.t_hi)):
            bus.add(ts, kit[name][k % len(kit[name])], g * v)
    pad = bus.layer()  # bright chord pad, 'side-chained': ducked on each kick, swelling between
    for t, d, lab in chords:
        for m in _chord_notes(lab, 62):
            pad.add(t, _tone(m, d, sr, cutoff=2500, cents=(-10, 10), a=0.02, d=0.3, s=0.8,
                             r=0.2), 0.12)
    phase = (np.arange(len(pad.buf)) / sr + bus.t_lo) % beat  # time since the last beat
    bus.buf += pad.buf * (1.0 - 0.8 * np.exp(-phase / 0.09)).astype(np.float32)
    for ts, v in _steps("x.xxx.xxx.xxx.xx", bpm, bus.t_lo - 0.5, bus.t_hi):  # octave bass
        root = _chord_notes(_chord_at(chords, ts), 38)[0]
        m = root + 12 * (round(ts / (beat / 4)) % 2)
        bus.add(ts, _tone(m, 0.09, sr, cutoff=700, a=0.004, d=0.08, s=0.6, r=0.04), 0.4 * v)
    for ts, v in _steps("..X...x...X...x.", bpm, bus.t_lo - 0.5, bus.t_hi):  # offbeat stabs
        for m in _chord_notes(_chord_at(chords, ts), 62):
            bus.add(ts, _tone(m, 0.1, sr, cutoff=3500, cents=(-9, 9), a=0.003, d=0.08, s=0.5,
                              r=0.08), 0.22 * v)
    for ts, v in _steps("x.x.x.x.x.x.x.x.", bpm, bus.t_lo - 0.5, bus.t_hi):  # sparkly arp
        tones = _chord_notes(_chord_at(chords, ts), 74)
        bus.add(ts, _pluck(tones[round(ts / (beat / 2)) % 3], sr, decay=0.25, length=0.6,
                           bright=5000), 0.1 * v)


def _tense(bus: _Bus, prog, bpm: float) -> None:
    sr, beat, kit = bus.sr, 60.0 / bpm, _drum_kit(bus.sr, _PC[prog[0][0].split(":")[0]])
    chords = _chord_events(prog, bpm, bus.t_lo - 4 * beat, bus.t_hi)
    for name, pat, g in (("kick", "X..xX.....X.X..x", 1.0), ("snare", "....X..o.o..X..o", 0.8),
                         ("hat", "XxxXXxxXXxxXXxxX", 0.45)):
        for k, (ts, v) in enumerate(_steps(pat, bpm, bus.t_lo - 0.5, bus.t_hi)):
            bus.add(ts, kit[name][k % len(kit[name])], g * v)
    bass = bus.layer()  # saturated bass gets its own stem: drive it, then tame the fizz
    # 16th-note riff in semitones above the root; over the tonic it leans on the minor third
    # and the flat second (Phrygian menace), elsewhere it just pumps root and octave.
    tonic_riff, riff = (0, 0, 12, 0, 0, 0, 3, 0, 0, 0, 12, 0, 1, 0, 3, 0), (0, 0, 12, 0) * 4
    for ts, v in _steps("XxxxXxxxXxxxXxxx", bpm, bus.t_lo - 0.5, bus.t_hi):
        lab, k = _chord_at(chords, ts), round(ts / (beat / 4)) % 16
        m = _chord_notes(lab, 35)[0] + (tonic_riff if lab == prog[0][0] else riff)[k]
        bass.add(ts, _tone(m, 0.07, sr, cutoff=2500, cents=(-12, 12), a=0.002, d=0.05,
                           s=0.8, r=0.02), v)
    bus.buf += 0.3 * _fft_filter(np.tanh(4.0 * bass.buf), sr, lp=2800)
    strings = bus.layer()  # sustained chords with a 16th-note tremolo: agitation, and harmony
    for t, d, lab in chords:  # in the midrange where the distorted bass does not mask it
        for m in _chord_notes(lab, 55):
            strings.add(t, _tone(m, d, sr, cutoff=3000, cents=(-8, 8), a=0.05, d=0.2, s=0.9,
                                 r=0.1), 0.12)
    phase = (np.arange(len(strings.buf)) / sr + bus.t_lo) / (beat / 4)
    bus.buf += strings.buf * (0.6 + 0.4 * np.cos(2 * np.pi * phase)).astype(np.float32)
    for ts, v in _steps("X..X..X...X..X..", bpm, bus.t_lo - 0.5, bus.t_hi):
        tones = _chord_notes(_chord_at(chords, ts), 64)
        for m in tones + [tones[0] + 13]:  # a minor second (b9) above the root: the clash
            bus.add(ts, _tone(m, 0.12, sr, cutoff=5000, cents=(-14, 14), a=0.002, d=0.1,
                              s=0.5, r=0.05), 0.14 * v)


def _sad(bus: _Bus, prog, bpm: float) -> None:
    sr, beat = bus.sr, 60.0 / bpm
    chords = _chord_events(prog, bpm, bus.t_lo - 4 * beat, bus.t_hi)
    tonic = _chord_notes(prog[0][0], 0)
    for t, d, lab in chords:
        for m in _chord_notes(lab, 48):  # barely-there dark pad for warmth
            bus.add(t, _tone(m, d, sr, cutoff=400, poles=2, cents=(-5, 5), a=1.0, d=0.5,
                             s=0.8, r=1.5), 0.06)
        bus.add(t, _pluck(_chord_notes(lab, 40)[0], sr, decay=2.5, length=4.5), 0.45)
        # Melody: a chord tone shared with the tonic triad, nearest E5, so the line keeps
        # circling the home chord (and the key stays unambiguous against its relative keys).
        pcs = {m % 12 for m in _chord_notes(lab, 0)} & {m % 12 for m in tonic}
        mel = min((m for m in range(69, 86) if m % 12 in pcs), key=lambda m: abs(m - 76))
        bus.add(t + 0.02, _pluck(mel, sr, decay=1.8, length=4.0, bright=2500), 0.3)
    for ts, v in _steps("x...x...x...x...", bpm, bus.t_lo - 3, bus.t_hi):  # one pluck per beat
        tones = _chord_notes(_chord_at(chords, ts), 57)
        m = tones[(0, 1, 2, 1)[round(ts / beat) % 4]]
        bus.add(ts, _pluck(m, sr, decay=1.4, length=3.0, bright=2200),
                0.3 if round(ts / beat) % 4 == 0 else 0.2)


_ARRANGERS = {"serene": _serene, "exuberant": _exuberant, "tense": _tense, "sad": _sad}


def _limit(x: np.ndarray, thr: float = 0.6, ceil: float = 0.95) -> np.ndarray:
    """Soft-knee limiter: identity below ``thr``, tanh knee above, never reaches ``ceil``."""
    y = x.copy()
    i = np.flatnonzero(np.abs(x) > thr)  # usually a small fraction: shape only those
    a = np.abs(x[i])
    y[i] = np.sign(x[i]) * (thr + (ceil - thr) * np.tanh((a - thr) / (ceil - thr)))
    return y


@lru_cache(maxsize=3)
def _render(sr: int) -> np.ndarray:
    total = int(round(DURATION * sr))
    out = np.zeros(total)
    for sec, plan in zip(SECTIONS, _PLAN):
        s0, s1 = int(round(sec.start * sr)), int(round(sec.end * sr))
        bus = _Bus(s1 - s0, sr)
        _ARRANGERS[sec.name](bus, plan[6], sec.tempo_bpm)
        # Level: find the gain that puts the section at its target RMS *after* limiting.
        x, core, gain = bus.buf, slice(bus.pre, bus.pre + s1 - s0), 1.0
        target = 10 ** (plan[4] / 20)
        for _ in range(4):
            gain *= target / (np.sqrt(np.mean(_limit(gain * x[core]) ** 2)) + 1e-12)
        x = _limit(gain * x)
        # Raised-cosine crossfade whose fade-in and fade-out sum to exactly 1, so the overlap
        # of two signals bounded by 0.95 stays bounded by 0.95 and there are no clicks.
        nf = 2 * bus.pre
        w = 0.5 - 0.5 * np.cos(np.pi * (np.arange(nf) + 0.5) / nf)
        x[:nf] *= w
        x[-nf:] *= w[::-1]
        out[np.arange(s0 - bus.pre, s0 - bus.pre + len(x)) % total] += x  # wraps at loop point
    for cached in (_tone, _pluck, _wavetable):  # free the note caches (megabytes at 48 kHz)
        cached.cache_clear()
    y = np.clip(out, -0.95, 0.95).astype(np.float32)
    y.setflags(write=False)
    return y


def render_demo(sr: int = 22050) -> np.ndarray:
    """Render the whole demo piece.

    Parameters
    ----------
    sr : int, default 22050
        Sample rate in Hz.

    Returns
    -------
    numpy.ndarray
        Mono float32 signal of ``round(DURATION * sr)`` samples, peak <= 0.95, identical on
        every call. The piece loops seamlessly: the start already contains the crossfade from
        the last section. The array is cached per ``sr`` and **read-only**; ``.copy()`` it
        before modifying.
    """
    return _render(int(sr))
