import re

import numpy as np
import pytest

from conftest import tone, triad
from live_mer.features import FeatureSpec, Frontend
from live_mer.harmony import NO_CHORD, chord_label


def run(x, sr, spec=None, block=None):
    fe = Frontend(spec or FeatureSpec(), sr)
    if block is None:
        batches = [fe.push(x)]
    else:
        batches = [fe.push(x[i:i + block]) for i in range(0, len(x), block)]
    batches.append(fe.push(np.zeros(0, np.float32), flush=True))
    feats = np.concatenate([b.features for b in batches])
    return fe, batches, feats


def test_spec_round_trip_and_differences():
    spec = FeatureSpec()
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    other = FeatureSpec(n_mels=40)
    assert other.differences(spec) == ["n_mels: 64 != 40"]
    assert len(other.feature_names()) == other.n_features == 40 + 12 + 2 + 12 + 6
    with pytest.raises(ValueError, match="bogus"):
        FeatureSpec.from_dict({**spec.to_dict(), "bogus": 1})


def test_spec_refuses_values_that_would_crash_or_mislead_the_front_end():
    # each of these was a crash in Frontend (ZeroDivisionError, negative dimensions) or silently other features
    for bad, message in [(dict(sample_rate=0), "sample_rate: 0 is not allowed (a positive integer"),
                         (dict(n_fft=16, hop_length=8), "n_fft: 16 is not allowed"),
                         (dict(fmax=float("inf")), "fmax: inf is not allowed"),
                         (dict(fmin=5000.0, fmax=4000.0), "fmax: 4000.0 is not allowed (a number above fmin"),
                         (dict(chroma_fmin=11000.0, chroma_fmax=11025.0), "chroma_fmax: 11025.0 is not allowed"),
                         (dict(chroma_tuning_seconds=0.0), "chroma_tuning_seconds: 0.0 is not allowed (a number > 0)"),
                         (dict(chord_lookahead_seconds=3.0), "chord_lookahead_seconds: 3.0 is not allowed"),
                         (dict(key_stay_seconds=-1.0), "key_stay_seconds: -1.0 is not allowed"),
                         (dict(key_profile=None), "key_profile: None is not allowed (one of"),
                         (dict(hop_length=512.0), "hop_length: 512.0 is not allowed (a positive integer")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            FeatureSpec(**bad)
        with pytest.raises(ValueError, match=re.escape(message)):
            FeatureSpec.from_dict({**FeatureSpec().to_dict(), **bad})
    # numbers of another type that mean the same are stored as plain int / float (the card is JSON)
    spec = FeatureSpec(fmin=30, n_mels=np.int64(64), chord_key_prior=np.float32(0.5))
    assert spec == FeatureSpec() and type(spec.fmin) is float and type(spec.n_mels) is int
    assert type(spec.chord_key_prior) is float


def test_block_size_does_not_change_features():
    sr = 22050
    x = np.random.default_rng(0).standard_normal(sr * 3).astype(np.float32) * 0.1 + tone([220], 3, sr)
    _, _, whole = run(x, sr)
    _, _, small = run(x, sr, block=333)
    assert whole.shape == small.shape
    np.testing.assert_allclose(whole, small, rtol=1e-4, atol=1e-4)


def test_run_is_every_frame_of_a_whole_signal():
    """Frontend.run (what training and evaluation use) gives exactly the live pushes' frames, to the end."""
    sr = 44100  # resampled: the flushed tail matters
    x = np.random.default_rng(1).standard_normal(sr * 2 + 777).astype(np.float32) * 0.1 + tone([330], 2 + 777 / sr, sr)
    _, batches, feats = run(x, sr, block=2048)
    whole = Frontend(FeatureSpec(), sr).run(x)
    np.testing.assert_array_equal(whole.features, feats)
    np.testing.assert_array_equal(whole.times, np.concatenate([b.times for b in batches]))
    np.testing.assert_array_equal(whole.chord, np.concatenate([b.chord for b in batches]))
    assert len(batches[-1]) > 0  # the flush did add frames


def test_frame_count_and_times():
    spec = FeatureSpec()
    fe, batches, feats = run(np.zeros(spec.sample_rate * 2, np.float32), spec.sample_rate)
    assert feats.shape == (spec.sample_rate * 2 // spec.hop_length, spec.n_features)
    times = np.concatenate([b.times for b in batches])
    np.testing.assert_allclose(np.diff(times), spec.hop_length / spec.sample_rate)
    assert times[0] == pytest.approx(spec.hop_length / spec.sample_rate)


def test_loudness_of_full_scale_sine_is_minus_3_db():
    sr = 44100
    _, batches, _ = run(tone([997], 2, sr, amp=1.0), sr)
    loud = np.concatenate([b.loudness_db for b in batches])
    assert np.median(loud[10:-5]) == pytest.approx(-3.01, abs=0.1)


def test_logmel_matches_librosa_on_the_same_frames():
    import librosa

    spec = FeatureSpec()
    sr = spec.sample_rate
    x = np.random.default_rng(1).standard_normal(sr * 2).astype(np.float32) * 0.3
    _, _, feats = run(x, sr)
    padded = np.concatenate([np.zeros(spec.n_fft - spec.hop_length, np.float32), x])
    ref = librosa.feature.melspectrogram(y=padded, sr=sr, n_fft=spec.n_fft, hop_length=spec.hop_length,
                                         center=False, n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax,
                                         window="hann", power=2.0)
    ours = feats[: ref.shape[1], : spec.n_mels]
    # The mel filterbank is made sparse (weights < 1e-3 of a band's peak dropped): tiny differences only.
    np.testing.assert_allclose(ours.T, np.log10(ref + 1e-10), atol=2e-3)


@pytest.mark.parametrize("sr", [8000, 44100, 48000, 96000])
def test_resampled_rates_agree(sr):
    ref_sr = FeatureSpec().sample_rate
    _, _, ref = run(triad(57, True, 3.0, ref_sr), ref_sr)
    _, batches, other = run(triad(57, True, 3.0, sr), sr)
    n = min(len(ref), len(other))
    # Compare the mel bands below 3.5 kHz (an 8 kHz input has nothing above 4 kHz), after warm-up.
    band = slice(0, 40)
    assert np.abs(ref[20:n - 5, band] - other[20:n - 5, band]).mean() < 0.1
    chords = np.concatenate([b.chord for b in batches])
    assert chord_label(int(np.bincount(chords[20:]).argmax())) == "A:min"


def test_silence_and_noise_give_no_chroma_or_no_chord():
    sr = 22050
    _, batches, feats = run(np.zeros(sr * 2, np.float32), sr)
    assert np.all(np.concatenate([b.chroma for b in batches]) == 0)
    assert set(np.concatenate([b.chord for b in batches]).tolist()) == {24}
    noise = np.random.default_rng(2).standard_normal(sr * 4).astype(np.float32) * 0.2
    _, batches, _ = run(noise, sr)
    chords = np.concatenate([b.chord for b in batches])[20:]
    assert np.mean(chords == 24) > 0.9


@pytest.mark.parametrize("offset", [0.05, -0.3, 0.9])
def test_a_dc_offset_is_silence_not_a_chord(offset):
    """A constant offset (a faulty interface, a badly made file) is not sound. Its power, counted in the
    level, opened the chroma gate, and the round-off in the rest of the spectrum, scaled to the strongest
    peak, read as F:maj with confidence 1 and an F major key (0.05 in a float file)."""
    sr = 44100
    spec = FeatureSpec()
    fe = Frontend(spec, sr)
    b = fe.run(np.full(sr * 20, offset, np.float32))
    settled = b.times > 1.0  # past the step from nothing to the offset at the start
    assert np.all(b.chroma[settled] == 0) and np.all(b.chord[settled] == NO_CHORD) and np.all(b.key < 0)
    assert b.loudness_db[settled].max() < -100  # the level reads silence
    # on top of music it changes nothing the harmony hears (past the first frames, where the offset is a step)
    music = np.concatenate([triad(57, True, 4.0, sr), triad(62, False, 4.0, sr)])
    plain, shifted = Frontend(spec, sr).run(music), Frontend(spec, sr).run(music + np.float32(offset))
    past = plain.times > 0.5
    assert np.array_equal(plain.chord[past], shifted.chord[past])
    assert np.abs(plain.chroma - shifted.chroma)[past].max() < 0.02
    assert np.abs(plain.loudness_db - shifted.loudness_db)[past].max() < 0.1


def test_chroma_gate_is_relative_to_the_recent_level_above_an_absolute_floor():
    sr = 22050
    spec = FeatureSpec()
    quiet = triad(60, False, 20.0, sr) * np.float32(10 ** (-60 / 20))  # about -80 dBFS

    def chroma_of(x, fe=None):
        fe = fe or Frontend(spec, sr)
        b = fe.push(x)
        return b.times, b.chroma.sum(axis=1), b.loudness_db, fe

    # alone, a quiet chord carries chroma (no absolute -55 dBFS gate) ...
    t, energy, loud, fe = chroma_of(quiet)
    assert loud[t > 0.5].max() < -70 and np.all(energy[t > 0.5] > 0)
    # ... but the same chord after loud music is the noise floor until the gate releases (1 dB/s)
    x = np.concatenate([triad(60, False, 2.0, sr), quiet])
    t, energy, loud, _ = chroma_of(x)
    drop = loud[t < 2.0].max() - loud[(t > 3.0) & (t < 4.0)].mean()
    assert drop > spec.chroma_gate_range_db
    opens = 2.0 + (drop - spec.chroma_gate_range_db) / spec.chroma_gate_release_db_s
    assert np.all(energy[(t > 2.2) & (t < opens - 1.0)] == 0)
    assert np.all(energy[t > opens + 1.0] > 0)
    # reset() forgets the loud past
    fe.reset()
    _, energy, _, _ = chroma_of(quiet, fe)
    assert np.all(energy[20:] > 0)
    # below the absolute floor nothing carries chroma, whatever came before
    t, energy, loud, _ = chroma_of(quiet * np.float32(10 ** (-20 / 20)))
    assert loud.max() < spec.chroma_gate_floor_db and np.all(energy == 0)


def test_the_harmonic_stage_alone_is_the_frontends_own():
    """Frontend.chroma (what eval_harmony.py times as the harmonic path) gives push's chroma: the same
    level gate (a loud chord, then the same chord 60 dB down: gated, then open), tuning and tonal weight."""
    sr = FeatureSpec().sample_rate
    spec = FeatureSpec()
    x = np.concatenate([triad(60, False, 2.0, sr), triad(57, True, 20.0, sr) * np.float32(1e-3)])
    batch = Frontend(spec, sr).push(x)
    padded = np.concatenate([np.zeros(spec.n_fft - spec.hop_length, np.float32), x])  # as push starts
    fe = Frontend(spec, sr)
    frames = np.lib.stride_tricks.sliding_window_view(padded, spec.n_fft)[:: spec.hop_length]
    chroma, bass = fe.chroma(fe.spectra(frames))
    assert len(chroma) == len(batch)
    energy = batch.chroma.sum(axis=1)
    assert np.any(energy[batch.times > 2.5] == 0) and np.all(energy[batch.times > 20] > 0)  # the gate acts
    np.testing.assert_allclose(chroma, batch.chroma, atol=1e-6)
    np.testing.assert_allclose(bass, batch.bass_chroma, atol=1e-6)


def test_onset_strength_peaks_at_attacks():
    sr = 22050
    x = np.zeros(sr * 4, np.float32)
    clicks = [int(0.5 * sr), int(1.5 * sr), int(2.5 * sr)]
    for c in clicks:
        x[c:c + 2000] = np.random.default_rng(c).standard_normal(2000) * np.exp(-np.arange(2000) / 300)
    _, batches, _ = run(x, sr)
    onset = np.concatenate([b.onset for b in batches])
    times = np.concatenate([b.times for b in batches])
    peaks = times[np.argsort(onset)[-3:]]
    for c in clicks:
        # the frame containing the attack is the one that ends within a hop after it
        assert np.min(np.abs(peaks - c / sr)) < 2 * 512 / 22050 + 1e-6
