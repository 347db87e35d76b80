"""Generated non-music audio for training: the student learns to say "no confident emotion" on it.

Live input is not always music: the room between tracks, a microphone's hiss, mains hum, wind, rain,
applause-like crackle. Without examples of that, a classifier trained only on music reads noise as
music (white noise came out as a 0.9-confident "tense" quadrant). Every clip here is synthesised from a
seed (no recordings), run through the live front end like any training clip, and carries *neutral*
targets: uniform quadrant probabilities, valence = arousal = 0, and the average GEMS shares.

Kinds: white / pink / brown noise, band-passed noise, slowly modulated noise (wind, surf, traffic),
mains hum (50/60 Hz with harmonics) over hiss, random clicks (rain, vinyl crackle, applause-like),
near-silence (a -60 dBFS hiss, or, half the time, digital silence), speech-like babble from a
source-filter model (gliding pitch, changing vowel formants, syllables and pauses), and synthetic
speech: text read by the flite and espeak-ng speech synthesisers (Debian packages; several voices and
languages, speaking rates and pitches; sometimes a crowd of talkers, a room's reverberation, a
telephone/PA band), each at a random level from -60 to -3 dBFS. No recordings are used: the speech and
animal recordings in ``shared/data/cc-excerpts`` stay an independent test of what the student does on
them.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from live_mer.features import FeatureSpec, Frontend

KINDS = ("white", "pink", "brown", "band", "modulated", "hum", "clicks", "near_silence", "voice", "speech")
# First two formants (Hz) of a few vowels, for the source-filter "voice" kind.
VOWELS = ((730, 1090), (270, 2290), (300, 870), (530, 1840), (640, 1190), (490, 1350), (400, 2000))
# What the "speech" kind reads aloud: English prose found on every Debian system (base-files).
TEXTS = ("GPL-3", "Apache-2.0", "MPL-2.0", "Artistic", "GFDL-1.3", "LGPL-2.1")
TEXT_DIR = Path("/usr/share/common-licenses")
FLITE_VOICES = ("kal", "awb", "rms", "slt")
ESPEAK_VOICES = ("en", "en-us", "en-gb-scotland", "de", "fr", "es", "it", "pt", "nl", "pl", "sv", "ru", "tr", "hi")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "croak")


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


def _words() -> list[str]:
    """The words of :data:`TEXTS`, in order (all of them, or the generated clips would differ)."""
    missing = [name for name in TEXTS if not (TEXT_DIR / name).exists()]
    if missing:
        raise RuntimeError(f"the 'speech' non-music kind reads {', '.join(TEXTS)} from {TEXT_DIR}; "
                           f"missing: {', '.join(missing)} (Debian's base-files package installs them)")
    return [w for name in TEXTS for w in (TEXT_DIR / name).read_text(errors="replace").split()
            if any(c.isalpha() for c in w)]


def _voice_command(rng: np.random.Generator) -> list[str]:
    """A random flite or espeak-ng voice with its speaking rate and pitch: the command line before the text."""
    if not all(shutil.which(t) for t in ("flite", "espeak-ng")):
        raise RuntimeError("the 'speech' non-music kind needs the flite and espeak-ng speech synthesisers: "
                           "bash scripts/setup.sh train (or apt-get install flite espeak-ng)")
    if rng.random() < 0.5:
        return ["flite", "-voice", str(rng.choice(FLITE_VOICES)),
                "--setf", f"duration_stretch={rng.uniform(0.75, 1.35):.3f}",
                "--setf", f"int_f0_target_mean={rng.uniform(80, 240):.1f}", "-o"]
    return ["espeak-ng", "-v", f"{rng.choice(ESPEAK_VOICES)}+{rng.choice(ESPEAK_VARIANTS)}",
            "-s", str(int(rng.uniform(120, 230))), "-p", str(int(rng.uniform(15, 85))), "-w"]


def _talker(rng: np.random.Generator, words: list[str], n: int, sr: int, workdir: str) -> np.ndarray:
    """One speaker (one voice) reading passages of ``words`` with pauses between them, ``n`` samples,
    unit RMS."""
    from scipy.signal import resample_poly

    command, out = _voice_command(rng), str(Path(workdir) / "speech.wav")
    x, t = np.zeros(n), int(rng.uniform(0.0, 1.5) * sr)
    while t < n:
        start = int(rng.integers(len(words)))
        text = " ".join(words[start:start + int(rng.integers(6, 30))])
        subprocess.run(command + [out] + (["-t", text] if command[0] == "flite" else [text]),
                       check=True, capture_output=True)
        y, rate = sf.read(out, dtype="float64", always_2d=True)
        y = resample_poly(y.mean(axis=1), sr, rate) if rate != sr else y.mean(axis=1)
        m = min(n - t, y.shape[0])
        x[t:t + m] = y[:m]
        t += m + int(rng.uniform(0.2, 1.2) * sr)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def _speech(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Synthetic speech (flite / espeak-ng): one talker, or a crowd of three to six; a room's
    reverberation; sometimes a telephone/PA band; a little room noise. Unit-ish RMS."""
    from scipy.signal import butter, fftconvolve, sosfilt

    words = _words()
    with tempfile.TemporaryDirectory(prefix="live_mer_speech_") as workdir:
        if rng.random() < 0.25:  # a crowd: talkers at random levels
            x = sum(rng.uniform(0.3, 1.0) * _talker(rng, words, n, sr, workdir) for _ in range(rng.integers(3, 7)))
        else:
            x = _talker(rng, words, n, sr, workdir)
    rt60 = rng.uniform(0.05, 0.9)  # seconds
    tail = np.arange(int(rt60 * sr)) / sr
    ir = rng.standard_normal(tail.shape[0]) * 10 ** (-3 * tail / rt60)
    wet = fftconvolve(x, ir)[:n]
    x = x + rng.uniform(0.0, 0.7) * wet / (np.sqrt(np.mean(wet ** 2)) + 1e-12)
    if rng.random() < 0.2:  # telephone, megaphone, a PA horn
        x = sosfilt(butter(4, (300, 3400), btype="bandpass", fs=sr, output="sos"), x)
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
    if kind == "speech":
        return _speech(rng, n, sr)
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
        out.append(Frontend(spec, spec.sample_rate).run(audio).features)
    return out
