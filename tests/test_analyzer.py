import json

import numpy as np
import pytest
import soundfile as sf

from conftest import tone, triad
from live_mer.analyzer import MAX_SAMPLE, Analyzer
from live_mer.fileanalysis import AudioFileError, analyze_file
from live_mer.harmony import key_name


def feed(analyzer, x, block):
    out = []
    for i in range(0, len(x), block):
        out += analyzer.process(x[i:i + block])
    return out


def check_sane(ests):
    assert ests
    for e in ests:
        vals = [e.valence, e.arousal, e.loudness_db, e.onset, e.chord_confidence, e.key_confidence]
        vals += [v for h in e.heads.values() for v in h.values()]
        assert all(np.isfinite(vals)), e
        assert -1 <= e.valence <= 1 and -1 <= e.arousal <= 1


def test_one_estimate_per_hop(tiny_model):
    sr = 48000
    a = Analyzer(tiny_model, sr, smoothing_s=0)
    ests = feed(a, triad(57, True, 5.0, sr), 480)
    hop_s = tiny_model.card.hop_seconds
    assert len(ests) == pytest.approx(5.0 / hop_s, abs=1.5)
    np.testing.assert_allclose(np.diff([e.t for e in ests]), hop_s, atol=1e-6)
    check_sane(ests)
    assert ests[-1].chord == "A:min" and ests[-1].key.startswith("A")
    assert ests[-1].heads["quadrant"].keys() == {"Q1", "Q2", "Q3", "Q4"}


def test_a_shorter_hop_gives_the_same_estimates_more_often(tiny_model):
    """``hop_s``: the model reads the same window whatever the hop, so with one estimate per feature frame
    every ``hop_frames``-th estimate is the default's (the onset and the level, means over the hop,
    excepted); the smoothing keeps its time constant in seconds."""
    sr = 22050
    card = tiny_model.card
    frame_s = 1.0 / card.spec.frame_rate
    x = np.concatenate([triad(57, True, 4.0, sr), tone([330], 3.0, sr, amp=0.5)])
    default = feed(Analyzer(tiny_model, sr, smoothing_s=0), x, 1000)
    every_frame = Analyzer(tiny_model, sr, smoothing_s=0, hop_s=frame_s)
    assert every_frame.hop_frames == 1 and every_frame.hop_seconds == pytest.approx(frame_s)
    fast = feed(every_frame, x, 1000)
    assert len(fast) // card.hop_frames == len(default)
    np.testing.assert_allclose(np.diff([e.t for e in fast]), frame_s, atol=1e-6)
    for d, f in zip(default, fast[card.hop_frames - 1::card.hop_frames], strict=True):
        assert f.t == pytest.approx(d.t)
        assert (f.quadrant, f.chord, f.key) == (d.quadrant, d.chord, d.key)
        assert (f.valence, f.arousal) == pytest.approx((d.valence, d.arousal), abs=1e-5)
        assert dict(f.heads["quadrant"]) == pytest.approx(dict(d.heads["quadrant"]), abs=1e-5)
    assert Analyzer(tiny_model, sr, hop_s=3.01 * frame_s).hop_frames == 3  # whole frames
    for bad in (-0.1, 0.001, card.window_seconds + 1, float("nan")):
        with pytest.raises(ValueError, match="0 for the model's own"):
            Analyzer(tiny_model, sr, hop_s=bad)
    slow, quick = (Analyzer(tiny_model, sr, smoothing_s=2.0, hop_s=h) for h in (0, frame_s))
    assert 1 - slow._alpha == pytest.approx((1 - quick._alpha) ** card.hop_frames)  # the same decay per second


def test_arousal_follows_loudness_with_the_test_model(tiny_model):
    sr = 22050
    a = Analyzer(tiny_model, sr, smoothing_s=0)
    quiet = feed(a, tone([330], 4.0, sr, amp=0.003), 1024)
    loud = feed(a, tone([330], 4.0, sr, amp=0.5), 1024)
    assert loud[-1].arousal > quiet[-1].arousal + 0.3


def test_the_level_is_the_hops_not_one_frames(tiny_model):
    """A short hit every hop between silences: the level is the hop's mean power, steady from hop to hop (one
    frame of the hop read -120 dB most of the time), and a steady sine reads its RMS."""
    sr = 22050
    analyzer = Analyzer(tiny_model, sr)
    x = np.zeros(sr * 8, np.float32)
    for k in range(0, len(x), round(analyzer.hop_seconds * sr)):
        x[k:k + 300] = np.random.default_rng(k).uniform(-1, 1, 300)
    levels = [e.loudness_db for e in feed(analyzer, x, 512)][2:]
    assert max(levels) - min(levels) < 3.0 and -30 < min(levels) < -12
    t = np.arange(sr * 3) / sr
    sine = feed(Analyzer(tiny_model, sr), (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 512)
    assert sine[-1].loudness_db == pytest.approx(-9.03, abs=0.05)


def test_smoothing_slows_changes(tiny_model):
    sr = 22050
    x = np.concatenate([tone([330], 4.0, sr, amp=0.003), tone([330], 3.0, sr, amp=0.5)])
    raw = feed(Analyzer(tiny_model, sr, smoothing_s=0), x, 2048)
    smooth = feed(Analyzer(tiny_model, sr, smoothing_s=3.0), x, 2048)
    jump = lambda es: max(abs(b.arousal - a.arousal) for a, b in zip(es, es[1:]))  # noqa: E731
    assert jump(smooth) < 0.5 * jump(raw)


@pytest.mark.parametrize("kind", ["nan", "inf", "silence", "clipping", "dc", "denormal"])
def test_hostile_input_never_crashes_or_leaks_nan(tiny_model, kind):
    sr = 44100
    x = triad(57, True, 4.0, sr)
    if kind == "nan":
        x[sr:sr + 5000] = np.nan
    elif kind == "inf":
        x[::97] = np.inf
        x[1::97] = -np.inf
    elif kind == "silence":
        x[:] = 0
    elif kind == "clipping":
        x = np.sign(x) * 1.5
    elif kind == "dc":
        x = x + 0.8
    elif kind == "denormal":
        x[:] = 1e-40
    a = Analyzer(tiny_model, sr)
    ests = feed(a, x.astype(np.float32), 512)
    check_sane(ests)
    if kind in ("nan", "inf"):
        # counts are reported per hop: everything up to the last estimate has been counted
        counted = sum(e.nonfinite for e in ests)
        bad = ~np.isfinite(x)
        assert int(bad[: int((ests[-1].t - 0.05) * sr)].sum()) <= counted <= int(bad.sum())
    if kind == "clipping":
        assert sum(e.clipped for e in ests) >= int((ests[-1].t - 0.05) * sr) * 0.9
    if kind == "silence":
        assert {e.chord for e in ests} == {"N"} and all(e.chord_confidence > 0.5 for e in ests)
        assert all(e.loudness_db < -100 for e in ests)


def test_warm_up_leaves_no_trace_in_the_stream(tiny_model):
    """The engine warms the analyzer up before a live source starts (a first run compiles the kernels
    there, not while the sound card's buffer overflows); the stream after it is exactly a fresh one."""
    sr = 44100
    x = triad(57, True, 4.0, sr).astype(np.float32)
    plain = Analyzer(tiny_model, sr)
    fresh = feed(plain, x, 512)
    warmed = Analyzer(tiny_model, sr)
    assert warmed.warm_up() >= 0
    after = feed(warmed, x, 512)
    assert [e.to_dict() for e in after] == [e.to_dict() for e in fresh]
    assert warmed.stream_key() == plain.stream_key() and sum(e.clipped + e.nonfinite for e in after) == 0


@pytest.mark.parametrize("amplitude", [1e3, 1e18, 3e38])
def test_a_burst_of_garbage_samples_does_not_end_chord_detection(tiny_model, amplitude):
    """50 ms of absurd (finite) samples, as random bytes read as float give: silenced and counted, and
    the chords come back after it (they used to stay "N" for a minute, or for good above ~1e17)."""
    sr = 44100
    x = triad(57, True, 12.0, sr)
    burst = np.random.default_rng(0).uniform(-1.0, 1.0, sr // 20) * amplitude
    x[4 * sr:4 * sr + len(burst)] = burst
    ests = feed(Analyzer(tiny_model, sr), x.astype(np.float32), 512)
    check_sane(ests)
    assert sum(e.nonfinite for e in ests) == np.count_nonzero(np.abs(burst.astype(np.float32)) > MAX_SAMPLE)
    after = [e.chord for e in ests if e.t > 6.0]
    assert after and after.count("A:min") >= 0.9 * len(after)


def test_one_clipping_channel_is_clipping(tiny_model):
    """A stereo input whose left channel clips while the right is quiet: the mix would read 0.5 and hide
    it; the check runs per channel before the mix, and a NaN in one channel silences only that channel."""
    sr = 44100
    left = np.sign(triad(57, True, 3.0, sr))  # a full-scale square wave
    right = 0.01 * triad(57, True, 3.0, sr)
    right[sr:sr + 100] = np.nan
    ests = feed(Analyzer(tiny_model, sr), np.stack([left, right], 1).astype(np.float32), 512)
    check_sane(ests)
    assert max(e.peak for e in ests) == 1.0 and sum(e.clipped for e in ests) > sr
    assert sum(e.nonfinite for e in ests) == 100


@pytest.mark.parametrize("block_s", [0.5, 1.49, 6.0])
def test_a_block_longer_than_a_hop_counts_its_clipping_and_peak_in_the_hop_that_heard_them(tiny_model, block_s):
    """A block longer than a hop (a large ``source.blocksize``, a short ``--hop``) was checked whole, and its
    first estimate took all its clipping and its peak: at the demo's 46-ms blocks and the shortest hop every
    other ``/mer/status/input`` read a peak of -120 dBFS, and a quiet hop read clipped when the next one
    clipped. Each estimate now counts the input it had heard, to within a feature frame (an estimate at
    time t has heard the input up to t)."""
    sr = 44100
    t = np.arange(3 * sr) / sr
    x = np.concatenate([0.01 * np.sin(2 * np.pi * 440 * t), 1.2 * np.sin(2 * np.pi * 440 * t)]).astype(np.float32)
    a = Analyzer(tiny_model, sr)
    ests = feed(a, x, int(block_s * sr))
    spec = tiny_model.card.spec
    hop = a.hop_seconds
    share = 1 - 2 / np.pi * np.arcsin(0.999 / 1.2)  # of a 1.2 sine's samples, at or over 0.999
    per_hop = hop * sr * share
    frame = sr * spec.hop_length / spec.sample_rate / 2  # (the tolerance of a first version: pieces of half a frame)
    quiet = [e for e in ests if e.t < 2.99]
    loud = [e for e in ests if e.t - hop > 3.01]
    assert len(quiet) >= 4 and len(loud) >= 4
    assert all(e.clipped == 0 and 0.009 < e.peak < 0.011 for e in quiet), [(e.t, e.clipped, e.peak) for e in quiet]
    assert all(abs(e.clipped - per_hop) < 1.1 * frame * share and e.peak > 1.19 for e in loud), \
        [(e.t, e.clipped, e.peak) for e in loud]
    assert sum(e.clipped for e in ests) <= np.count_nonzero(np.abs(x) >= 0.999)


@pytest.mark.parametrize("sr, block", [(22050, 1024), (22050, 2048), (44100, 2048), (48000, 4096)])
def test_at_the_shortest_hop_every_estimate_reads_the_input_it_heard(tiny_model, sr, block):
    """The demo plays 1024-frame blocks at 22.05 kHz, two hops each at ``--hop 0.0233``: every other estimate
    read a peak of 0 on a steady tone. And a 10-ms burst of clipping is counted by the estimate that hears it,
    the one whose level rises with it, not one before."""
    t = np.arange(4 * sr) / sr
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    burst = slice(2 * sr, 2 * sr + sr // 100)
    x[burst] = np.float32(1.2) * np.sign(x[burst])
    a = Analyzer(tiny_model, sr, smoothing_s=0.0, hop_s=0.0233)
    ests = feed(a, x, block)
    assert all(e.peak > 0.49 for e in ests[2:]), [round(e.peak, 2) for e in ests]
    clipping = [e for e in ests if e.clipped]
    assert clipping and clipping[0].t > 2.0 and sum(e.clipped for e in clipping) == sr // 100
    assert all(e.t <= 2.01 + 2 * a.hop_seconds for e in clipping)


@pytest.mark.parametrize("channels", [1, 2, 8])
@pytest.mark.parametrize("sr", [8000, 44100, 48000, 96000])
def test_channels_and_rates(tiny_model, channels, sr):
    x = np.repeat(triad(57, True, 3.0, sr)[:, None], channels, axis=1)
    analyzer = Analyzer(tiny_model, sr)
    ests = feed(analyzer, x, 1000)
    check_sane(ests)
    assert ests[-1].chord == "A:min"
    key, confidence = analyzer.stream_key()  # a lone minor triad: its minor key, or the relative major
    assert key_name(key) in ("A minor", "C major") and 0 < confidence <= 1
    analyzer.reset()
    assert analyzer.stream_key() == (-1, 0.0)


def test_bad_rates_are_refused(tiny_model):
    with pytest.raises(ValueError, match="8000..192000"):
        Analyzer(tiny_model, 4000)


def test_analyze_file_json_contract(tiny_model, tmp_path):
    sr = 32000
    x = np.concatenate([triad(root, False, 2.0, sr) for root in (60, 65, 67, 60)])  # I IV V I in C
    path = tmp_path / "c.flac"
    sf.write(path, np.stack([x, x], axis=1), sr)
    r = analyze_file(path, tiny_model)
    json.dumps(r)  # serialisable
    assert set(r) == {"path", "duration", "sample_rate", "model", "summary", "timeline"}
    assert r["duration"] == pytest.approx(8.0, abs=1e-3)
    s = r["summary"]
    for k in ("valence", "arousal", "quadrant", "quadrant_probs", "gems", "tags", "key", "key_camelot", "key_open"):
        assert k in s
    assert s["key"] == "C major" and s["key_camelot"] == "8B"
    assert s["quadrant"] == max(s["quadrant_probs"], key=s["quadrant_probs"].get)  # the most likely on average
    assert set(s["gems"]) == {"amazement", "solemnity", "tenderness", "nostalgia", "calmness", "power",
                              "joyful_activation", "tension", "sadness"}
    tl = r["timeline"]
    assert len(tl) == pytest.approx(8.0 / tiny_model.card.hop_seconds, abs=2)
    for entry in tl:
        assert -1 <= entry["valence"] <= 1 and -1 <= entry["arousal"] <= 1
        assert {"t", "quadrant", "quadrant_probs", "gems", "tags", "chord", "key", "loudness_db", "onset"} <= set(entry)
        assert set(entry["tags"]) == {"Calm", "Angry", "Dreamy"} and all(0 <= v <= 1 for v in entry["tags"].values())
    assert [e["t"] for e in tl] == sorted(e["t"] for e in tl)


def test_bad_files_give_clear_errors(tiny_model, tmp_path):
    with pytest.raises(AudioFileError, match="no such file"):
        analyze_file(tmp_path / "missing.wav", tiny_model)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(AudioFileError, match="cannot decode"):
        analyze_file(junk, tiny_model)
    noise = tmp_path / "noise.mp3"  # libsndfile's own words for this: "File does not exist ... (possibly a pipe?)"
    noise.write_bytes(np.random.default_rng(0).bytes(100_000))
    with pytest.raises(AudioFileError, match="noise.mp3: cannot decode audio") as err:
        analyze_file(noise, tiny_model)
    assert "does not exist" not in str(err.value) and "format" in str(err.value)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 22050)
    with pytest.raises(AudioFileError, match="no audio"):
        analyze_file(empty, tiny_model)


def test_truncated_file_is_analysed_as_far_as_it_goes_or_reported(tiny_model, tmp_path):
    sr = 22050
    full = tmp_path / "full.ogg"
    sf.write(full, triad(57, True, 6.0, sr), sr)
    cut = tmp_path / "cut.ogg"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    try:
        r = analyze_file(cut, tiny_model)
    except AudioFileError as exc:
        assert "cut.ogg" in str(exc)
    else:
        assert 0 < len(r["timeline"]) and r["duration"] > 0


def test_a_cut_off_mp3_reports_what_was_decoded_not_what_its_header_states(tiny_model, tmp_path):
    sr = 22050
    full = tmp_path / "full.mp3"
    sf.write(full, triad(57, True, 20.0, sr), sr, format="MP3")
    cut = tmp_path / "cut.mp3"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    with sf.SoundFile(cut) as f:
        assert f.frames / sr > 19  # the header still states the whole length
    r = analyze_file(cut, tiny_model)
    assert 5.0 < r["duration"] < 8.0  # about a third of 20 s
    assert r["timeline"][-1]["t"] <= r["duration"] + 0.1
    assert "truncated" in r["warning"] and "20.00 s" in r["warning"]
    cut.write_bytes(data[: 2 * len(data) // 3])  # a third missing is as much a truncated file
    assert "truncated" in analyze_file(cut, tiny_model).get("warning", "")
    assert "warning" not in analyze_file(full, tiny_model)


def test_input_that_is_not_valid_audio_is_analysed_with_a_warning(tiny_model, tmp_path):
    """An all-NaN file came out like silence, and a float file at +-2300 with nearly every sample silenced or
    clipped, without a word: more than 1 % of such samples earns the result a warning, as a cut-off file does
    (a loud master clips a few samples in 10 000, and a few NaN are silenced quietly)."""
    sr = 22050
    x = triad(57, True, 4.0, sr)
    few_nan = x.copy()
    few_nan[::200] = np.nan  # 0.5 %
    cases = {"all_nan": np.full_like(x, np.nan), "scaled": x * (2300 / np.abs(x).max()),
             "clipped": np.clip(x * (3 / np.abs(x).max()), -1, 1), "fine": x, "few_nan": few_nan}
    warning = {}
    for name, audio in cases.items():
        sf.write(tmp_path / f"{name}.wav", audio, sr, subtype="FLOAT")
        warning[name] = analyze_file(tmp_path / f"{name}.wav", tiny_model).get("warning", "")
    assert "of the samples are not audio (NaN, infinite" in warning["all_nan"] and "silence" in warning["all_nan"]
    assert "not audio" in warning["scaled"] and "clipped" in warning["scaled"]
    assert "of the samples are clipped" in warning["clipped"] and "not audio" not in warning["clipped"]
    assert warning["fine"] == warning["few_nan"] == ""
    # a few clipped samples beside a file of garbage read "0.0% of the samples are clipped"
    x[:] = x * (2e6 / np.abs(x).max())
    x[:3] = 1.0
    sf.write(tmp_path / "huge.wav", x, sr, subtype="FLOAT")
    assert "; under 0.1% of the samples are clipped" in analyze_file(tmp_path / "huge.wav", tiny_model)["warning"]


def test_set_smoothing_takes_effect_mid_stream(tiny_model):
    sr = 22050
    a = Analyzer(tiny_model, sr, smoothing_s=30.0)
    feed(a, tone([330], 4.0, sr, amp=0.003), 2048)
    slow = feed(a, tone([330], 1.0, sr, amp=0.5), 2048)
    a.set_smoothing(0.0)
    fast = feed(a, tone([330], 1.0, sr, amp=0.5), 2048)
    assert fast[-1].arousal - slow[-1].arousal > 0.1  # without smoothing it jumps to the loud value
    with pytest.raises(ValueError, match="smoothing_s"):
        a.set_smoothing(-1)


def test_the_mix_loss_tells_cancelling_channels_from_ordinary_stereo(tiny_model):
    """What analyze and listen judge "channels that cancel" by: the mix to mono's power under the channels' own."""
    from live_mer.analyzer import MIX_LOSS_DB, mix_loss_db

    sr = 22050
    x = triad(57, True, 3.0, sr, amp=0.3)
    noise = 0.3 * np.random.default_rng(1).standard_normal(x.size).astype(np.float32)

    def loss(audio):
        an = Analyzer(tiny_model, sr)
        an.process(audio)
        return mix_loss_db(an.channel_power, an.mix_power, an.frames_heard)

    assert loss(np.stack([x, x], 1)) == pytest.approx(0.0, abs=1e-6)  # one source in both channels
    assert loss(np.stack([x, noise], 1)) == pytest.approx(3.0, abs=0.3)  # unrelated channels
    assert loss(np.stack([x, -x], 1)) >= 100 and loss(np.stack([x, -0.9 * x], 1)) > MIX_LOSS_DB  # opposite polarity
    assert loss(x) == 0.0 and loss(np.zeros((sr, 2), np.float32)) == 0.0  # one channel; silence: nothing to judge
