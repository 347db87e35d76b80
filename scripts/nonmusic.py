"""Generated non-music audio for training: the student learns to say "no confident emotion" on it.

Live input is not always music: the room between tracks, a microphone's hiss, mains hum, wind, rain,
applause-like crackle. Without examples of that, a classifier trained only on music reads noise as
music (white noise came out as a 0.9-confident "tense" quadrant). Every clip here is synthesised from a
seed (no recordings), run through the live front end like any training clip, and carries *neutral*
targets: uniform quadrant probabilities, valence = arousal = 0, and the average GEMS shares.

Kinds: white / pink / brown noise, band-passed noise, slowly modulated noise (wind, surf, traffic),
mains hum (50/60 Hz with harmonics) over hiss, random clicks (rain, vinyl crackle, applause-like),
near-silence (a -60 dBFS hiss, or, half the time, digital silence), and speech-like babble from a
source-filter model (gliding pitch, changing vowel formants, syllables and pauses), each at a random
level from -60 to -3 dBFS. No recordings are used:
the speech and animal recordings in ``shared/data/cc-excerpts`` stay an independent test of what the
student does on them.
"""

from __future__ import annotations

import numpy as np

from live_mer.features import FeatureSpec, Frontend

KINDS = ("white", "pink", "brown", "band", "modulated", "hum", "clicks", "near_silence", "voice")
# First two formants (Hz) of a few vowels, for the source-filter "voice" kind.
VOWELS = ((730, 1090), (270, 2290), (300, 870), (530, 1840), (640, 1190), (490, 1350), (400, 2000))


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise with a 1/f**exponent power spectrum, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.shape[0], dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / f ** (exponent / 2), n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def _resonate(x: np.ndarray, freq: float, bandwidth: float, sr: int) -> np.ndarray:
    """Two-pole resonator (one formant)."""
    from scipy.signal import lfilter

    r = np.exp(-np.pi * bandwidth / sr)
    return lfilter([1.0 - r], [1.0, -2.0 * r * np.cos(2 * np.pi * freq / sr), r * r], x)


def _voice(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Speech-like babble from a source-filter model: a glottal pulse train whose pitch glides with
    sentence intonation, vowel formants changing every syllable, syllable-rate envelope, pauses and
    unvoiced noise bursts. Not speech, but what speech shares with it: gliding pitch, no chords, no beat."""
    x = np.zeros(n)
    t, base = 0, rng.uniform(90, 230)  # speaker's median f0
    while t < n:
        syl = int(rng.uniform(0.12, 0.35) * sr)
        seg = slice(t, min(n, t + syl))
        m = seg.stop - seg.start
        if rng.random() < 0.15:  # pause between phrases
            t += int(rng.uniform(0.1, 0.6) * sr)
            continue
        f0 = base * 2 ** (rng.uniform(-0.4, 0.4) + np.linspace(0, rng.uniform(-0.5, 0.3), m))  # gliding pitch
        phase = np.cumsum(f0 / sr)
        pulses = np.diff(np.floor(phase), prepend=np.floor(phase[0])) + 0.02 * rng.standard_normal(m)
        f1, f2 = VOWELS[rng.integers(len(VOWELS))]
        voiced = _resonate(pulses, f1, 80, sr) + 0.6 * _resonate(pulses, f2, 120, sr)
        if rng.random() < 0.4:  # an unvoiced consonant before the vowel
            k = min(m, int(0.06 * sr))
            voiced[:k] = 0.3 * _resonate(rng.standard_normal(k), rng.uniform(2500, 6000), 2000, sr)
        x[seg] = voiced * np.hanning(m)
        t += syl
    x /= np.sqrt(np.mean(x ** 2)) + 1e-12
    return x + rng.uniform(0.003, 0.05) * coloured_noise(rng, n, 1.0)  # the room


def synthesise(kind: str, seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One clip of ``kind`` at unit-ish RMS (the caller sets the level)."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    if kind in ("white", "pink", "brown"):
        return coloured_noise(rng, n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])
    if kind == "band":
        centre, width = np.exp(rng.uniform(np.log(80), np.log(6000))), rng.uniform(0.2, 1.5)
        spectrum = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / sr)
        spectrum *= np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / centre) / width) ** 2)
        x = np.fft.irfft(spectrum, n)
        return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)
    if kind == "modulated":
        base = coloured_noise(rng, n, rng.uniform(0.5, 2.0))
        rate = rng.uniform(0.05, 1.0)
        envelope = 1.0 + 0.8 * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.3, 1.0)
        return base * envelope
    if kind == "hum":
        mains = rng.choice([50.0, 60.0])
        x = sum(rng.uniform(0.1, 1.0) / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 2 * np.pi))
                for k in range(1, 8))
        return x + rng.uniform(0.01, 0.3) * coloured_noise(rng, n, 0.0)
    if kind == "clicks":
        x = np.zeros(n)
        rate = np.exp(rng.uniform(np.log(2), np.log(400)))  # clicks per second
        at = rng.integers(0, n, size=int(rate * seconds))
        x[at] = rng.standard_normal(at.shape[0])
        decay = np.exp(-np.arange(int(0.004 * sr)) / (0.0008 * sr))
        x = np.convolve(x, decay)[:n] + 0.02 * coloured_noise(rng, n, 1.0)
        return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)
    if kind == "voice":
        return _voice(rng, n, sr)
    if kind == "near_silence":
        if rng.random() < 0.5:  # digital silence: a paused player, a muted channel, the stream's start
            return np.zeros(n)
        return coloured_noise(rng, n, rng.uniform(0.0, 2.0)) * 1e-3
    raise ValueError(f"unknown non-music kind {kind!r}; expected one of {', '.join(KINDS)}")


def nonmusic_audio(index: int, seconds: float = 20.0, sr: int = 22050, seed: int = 0) -> tuple[str, np.ndarray]:
    """Clip ``index`` of the generated set: (kind, float32 mono audio at ``sr``), clipped to [-1, 1]."""
    rng = np.random.default_rng([seed, index])
    kind = KINDS[index % len(KINDS)]
    x = synthesise(kind, seconds, sr, rng)
    level_db = rng.uniform(-60.0, -3.0) if kind != "near_silence" else 0.0  # RMS in dBFS
    return kind, np.clip(x * 10 ** (level_db / 20), -1.0, 1.0).astype(np.float32)  # loud noise clips, as it would


def nonmusic_features(count: int, spec: FeatureSpec, seconds: float = 20.0, seed: int = 0) -> list[np.ndarray]:
    """Frame features of ``count`` generated clips through the live front end (same path as any clip)."""
    out = []
    for i in range(count):
        _, audio = nonmusic_audio(i, seconds, spec.sample_rate, seed)
        fe = Frontend(spec, spec.sample_rate)
        rows = [fe.push(audio[a:a + 2048]).features for a in range(0, audio.shape[0], 2048)]
        rows.append(fe.push(np.zeros(0, np.float32), flush=True).features)
        out.append(np.concatenate(rows))
    return out
