"""Tests for the self-generated demo piece (live_mer.demo).

They check the properties the demo exists for: it is deterministic and well-formed, and its
sections really differ in loudness, tempo, brightness and key, as the ground truth claims.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from live_mer import demo

librosa = pytest.importorskip("librosa")

SR = 22050
_NOTES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return demo.render_demo(SR)


def _core(y: np.ndarray, sec: demo.Section, sr: int, margin: float = 0.5) -> np.ndarray:
    """The section without its crossfade edges, as float64."""
    return y[int((sec.start + margin) * sr): int((sec.end - margin) * sr)].astype(np.float64)


def _rms_db(x: np.ndarray) -> float:
    return 20.0 * math.log10(float(np.sqrt(np.mean(x ** 2))) + 1e-12)


# ----------------------------------------------------------------------------- ground truth
def test_sections_layout() -> None:
    secs = demo.SECTIONS
    assert 4 <= len(secs) <= 6
    assert secs[0].start == 0.0
    for a, b in zip(secs, secs[1:]):
        assert a.end == pytest.approx(b.start)
    for s in secs:
        assert 20.0 - 1e-9 <= s.duration <= 30.0 + 1e-9
        assert s.mode in ("major", "minor") and s.key.endswith(" " + s.mode)
        assert s.key.split()[0] in _NOTES
        assert s.intended_quadrant in ("Q1", "Q2", "Q3", "Q4")
        assert s.description
    assert 100.0 <= demo.DURATION <= 150.0
    assert demo.DURATION == pytest.approx(secs[-1].end)
    assert {s.intended_quadrant for s in secs} == {"Q1", "Q2", "Q3", "Q4"}
    # Russell's circumplex: arousal quadrants are fast, valence quadrants are major.
    for s in secs:
        fast = s.intended_quadrant in ("Q1", "Q2")
        assert (s.tempo_bpm >= 120) == fast
        assert (s.mode == "major") == (s.intended_quadrant in ("Q1", "Q4"))
    with pytest.raises(Exception):
        secs[0].name = "x"  # frozen


def test_section_at_wraps() -> None:
    for s in demo.SECTIONS:
        mid = 0.5 * (s.start + s.end)
        assert demo.section_at(mid) is s
        assert demo.section_at(mid + demo.DURATION) is s
        assert demo.section_at(mid - 3 * demo.DURATION) is s
        assert demo.section_at(s.start) is s
    assert demo.section_at(demo.DURATION) is demo.SECTIONS[0]


def test_chord_labels_cover_piece() -> None:
    labels = demo.chord_labels()
    assert labels[0][0] == pytest.approx(0.0)
    assert labels[-1][1] == pytest.approx(demo.DURATION)
    for (s0, e0, _), (s1, _e1, _) in zip(labels, labels[1:]):
        assert e0 == pytest.approx(s1)
    for start, end, lab in labels:
        assert end > start
        assert re.fullmatch(r"[A-G][#b]?:(maj|min|dim)", lab), lab
        assert demo.section_at(start + 1e-6) is demo.section_at(end - 1e-6)
    assert {lab.split(":")[1] for _, _, lab in labels} == {"maj", "min", "dim"}
    # Every section starts on its tonic triad.
    for sec in demo.SECTIONS:
        first = next(lab for s, _, lab in labels if s == pytest.approx(sec.start))
        tonic, mode = sec.key.split()
        assert first == f"{tonic}:{'maj' if mode == 'major' else 'min'}"


# ---------------------------------------------------------------------------------- signal
def test_dtype_range_length(audio: np.ndarray) -> None:
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == round(demo.DURATION * SR)
    assert np.all(np.isfinite(audio))
    assert np.abs(audio).max() <= 0.95
    assert np.abs(audio).max() > 0.5  # the loud section actually uses the headroom


def test_deterministic_and_cached(audio: np.ndarray) -> None:
    assert demo.render_demo(SR) is audio  # cached per sample rate
    fresh = demo._render.__wrapped__(SR)  # bypass the cache: a real second render
    np.testing.assert_array_equal(fresh, audio)
    with pytest.raises(ValueError):
        audio[0] = 0.0  # read-only, so nobody can corrupt the cache


def test_section_loudness_ordering(audio: np.ndarray) -> None:
    db = {s.name: _rms_db(_core(audio, s, SR)) for s in demo.SECTIONS}
    by_q = {s.intended_quadrant: db[s.name] for s in demo.SECTIONS}
    assert by_q["Q2"] > by_q["Q1"] + 2.0  # tense is loudest
    assert by_q["Q1"] > max(by_q["Q3"], by_q["Q4"]) + 4.0  # happy well above calm / sad
    assert -26.0 <= by_q["Q3"] <= -19.0 and -26.0 <= by_q["Q4"] <= -19.0
    assert -17.0 <= by_q["Q1"] <= -11.0
    assert -13.0 <= by_q["Q2"] <= -7.0


def test_calm_sections_are_dark(audio: np.ndarray) -> None:
    cent = {s.intended_quadrant: float(librosa.feature.spectral_centroid(
        y=_core(audio, s, SR), sr=SR).mean()) for s in demo.SECTIONS}
    assert max(cent["Q3"], cent["Q4"]) < 1200.0  # not harsh
    assert min(cent["Q1"], cent["Q2"]) > 2 * max(cent["Q3"], cent["Q4"])


def test_section_tempo(audio: np.ndarray) -> None:
    for s in demo.SECTIONS:
        tempo, _ = librosa.beat.beat_track(y=_core(audio, s, SR), sr=SR)
        est = float(np.atleast_1d(tempo)[0])
        ok = [abs(est - f * s.tempo_bpm) <= 0.1 * f * s.tempo_bpm for f in (0.5, 1.0, 2.0)]
        assert any(ok), f"{s.name}: estimated {est:.1f} BPM, expected {s.tempo_bpm}"


def _key_hits(y: np.ndarray, sr: int) -> list[bool]:
    """Per section: does the mean chroma correlate best with the stated key's tonic triad?"""
    templates = {}
    for mode, iv in (("major", (0, 4, 7)), ("minor", (0, 3, 7))):
        for r, note in enumerate(_NOTES):
            v = np.zeros(12)
            v[[(r + i) % 12 for i in iv]] = 1.0
            templates[f"{note} {mode}"] = v
    hits = []
    for s in demo.SECTIONS:
        chroma = librosa.feature.chroma_stft(y=_core(y, s, sr), sr=sr).mean(axis=1)
        best = max(templates, key=lambda k: np.corrcoef(chroma, templates[k])[0, 1])
        hits.append(best == s.key)
    return hits


def test_chroma_matches_key(audio: np.ndarray) -> None:
    hits = _key_hits(audio, SR)
    assert sum(hits) >= len(hits) - 1, list(zip([s.key for s in demo.SECTIONS], hits))


def test_no_clicks_at_section_joins(audio: np.ndarray) -> None:
    """Inside each crossfade (and across the loop point) the sample-to-sample jump is no
    bigger than what the neighbouring sections produce on their own."""
    y = audio.astype(np.float64)
    jump = np.abs(np.diff(np.concatenate([y, y[:1]])))
    secs = demo.SECTIONS
    half = int(demo._XFADE / 2 * SR) + 2
    for i, s in enumerate(secs):
        prev = secs[i - 1]
        b = int(round(s.start * SR))
        join = jump[np.arange(b - half, b + half) % len(y)].max()
        own = max(np.abs(np.diff(_core(y, prev, SR))).max(), np.abs(np.diff(_core(y, s, SR))).max())
        assert join <= 1.05 * own, s.name


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_other_sample_rates(sr: int, audio: np.ndarray) -> None:
    y = demo.render_demo(sr)
    assert y.dtype == np.float32 and len(y) == round(demo.DURATION * sr)
    assert np.all(np.isfinite(y)) and np.abs(y).max() <= 0.95
    for s in demo.SECTIONS:  # same mix at every rate: loudness within 1 dB
        assert _rms_db(_core(y, s, sr)) == pytest.approx(_rms_db(_core(audio, s, SR)), abs=1.0)
    assert sum(_key_hits(y, sr)) >= len(demo.SECTIONS) - 1


def test_demo_audio_is_cached_on_disk(tmp_path, monkeypatch) -> None:
    from live_mer.sources import demo_audio

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = demo_audio(8000)
    second = demo_audio(8000)
    assert isinstance(second, np.memmap) and list(tmp_path.rglob("demo-8000-*.npy"))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(second, demo.render_demo(8000))
