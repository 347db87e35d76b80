"""Faults and load: the analyzer keeps running and says what happened."""

import math
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import triad
from live_mer.analyzer import Analyzer
from live_mer.engine import Engine, LatestEstimates
from live_mer.fileanalysis import analyze_file
from live_mer.osc import OscSender
from live_mer.outputs import OutputSettings
from live_mer.sources import DemoSource, FileSource
from osc_receiver import Receiver

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from soak import soak  # noqa: E402


def test_short_soak(tiny_model):
    # 20 min of audio, ~2 s of wall time: each stretch the speed check compares lasts ~0.4 s, long enough that
    # a loaded machine's pause of ~0.15 s cannot fail it (with 5 min, ~0.1-s stretches, it came within 1.4x)
    r = soak(1200.0, tiny_model)  # the long run: python scripts/soak.py --hours 1
    assert all(r["checks"].values()), r


def test_the_soak_notices_a_pipeline_that_slows_down(tiny_model):
    class Slowing:  # the tiny model, taking 30 ms longer per window in the second half of the run
        card, windows_seen = tiny_model.card, 0  # (10 ms, about 4x the pipeline's own time, failed once in CI:
        # a hiccup in the early stretch can hide a 4x slowdown from the 2.5x check, not a 10x one)

        def run(self, windows):
            self.windows_seen += len(windows)
            if self.windows_seen > 120:
                time.sleep(0.03 * len(windows))
            return tiny_model.run(windows)

    r = soak(60.0, Slowing())  # 235 estimates
    assert not r["checks"]["speed_flat"] and r["wall_per_audio_s_late"] > 2.5 * r["wall_per_audio_s_early"], r
    assert r["checks"]["continuous"] and r["checks"]["delivered"]


def test_two_analyzers_in_one_process_do_not_interfere(tiny_model, tmp_path):
    sr = 22050
    a = tmp_path / "a.wav"
    b = tmp_path / "b.wav"
    sf.write(a, np.concatenate([triad(57, True, 4, sr), triad(60, False, 4, sr)]), sr)
    sf.write(b, np.concatenate([triad(62, False, 5, sr), triad(67, False, 3, sr)]) * 0.3, sr)

    def run(paths):
        engines, sinks = [], []
        for p in paths:
            src = FileSource(p, realtime=False)
            sink = LatestEstimates(maxlen=10000)
            engines.append(Engine(src, Analyzer(tiny_model, src.samplerate), [sink]))
            sinks.append(sink)
        for e in engines:
            e.start()
        for e in engines:
            assert e.wait(60)
            e.stop()
        return [[(x.t, x.valence, x.arousal, x.chord, x.key) for x in s.drain()] for s in sinks]

    alone_a, = run([a])
    alone_b, = run([b])
    together_a, together_b = run([a, b])
    for together, alone in ((together_a, alone_a), (together_b, alone_b)):
        assert [(x[0], x[3], x[4]) for x in together] == [(x[0], x[3], x[4]) for x in alone]
        # onnxruntime may batch hops differently (timing): values agree to float32 precision
        np.testing.assert_allclose([x[1:3] for x in together], [x[1:3] for x in alone], atol=1e-5)


def test_overflow_storm_drops_old_audio_and_latency_recovers(tiny_model):
    """A sink that stalls the analyzer for 2 s: the engine skips the backlog instead of lagging forever."""
    stall = threading.Event()

    def slow_sink(est):
        if est.t > 3.0 and not stall.is_set():
            stall.set()
            time.sleep(2.0)

    source = DemoSource(realtime=True)
    latest = LatestEstimates(maxlen=10000)
    engine = Engine(source, Analyzer(tiny_model, source.samplerate), [slow_sink, latest], max_backlog_s=0.5)
    engine.start()
    t0 = time.monotonic()
    try:
        time.sleep(8.0)
    finally:
        engine.stop()
    ests = latest.drain()
    assert stall.is_set() and engine.dropped_s >= 1.0  # the stalled audio was skipped...
    wall = time.monotonic() - t0
    # ...so analysis is back at the live edge: the audio analysed plus the audio skipped covers the
    # wall-clock time (within startup and one hop), instead of trailing 2 s behind for ever
    assert ests[-1].t + engine.dropped_s > wall - 1.5
    assert engine.backlog_s < 0.5
    assert engine.error is None


@pytest.mark.parametrize("kind", ["nan", "inf", "square", "dc", "denormal", "silence"])
def test_hostile_audio_never_reaches_osc_as_nan(tiny_model, tmp_path, kind):
    sr = 44100
    x = triad(57, True, 6, sr)
    if kind == "nan":
        x[sr:sr * 2] = np.nan
    elif kind == "inf":
        x[::50] = np.inf
    elif kind == "square":
        x = np.sign(np.sin(2 * np.pi * 110 * np.arange(len(x)) / sr)).astype(np.float32)
    elif kind == "dc":
        x = x + 0.9
    elif kind == "denormal":
        x[:] = 1e-42
    elif kind == "silence":
        x[:] = 0
    path = tmp_path / f"{kind}.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    rx = Receiver()
    try:
        osc = OscSender([f"127.0.0.1:{rx.port}"], settings=OutputSettings())
        src = FileSource(path, realtime=False)
        engine = Engine(src, Analyzer(tiny_model, sr), [osc])
        engine.start()
        assert engine.wait(60)
        engine.stop()
        osc.close()
        assert engine.error is None and rx.wait_for(engine.estimates)
        for b in rx.bundles():
            for m in b:
                assert all(math.isfinite(v) for v in m.params if isinstance(v, float)), (m.address, m.params)
    finally:
        rx.close()


def test_nan_burst_leaves_no_stuck_state(tiny_model):
    sr = 22050
    clean = triad(57, True, 10, sr)
    dirty = clean.copy()
    dirty[sr:sr * 3] = np.nan
    run = lambda x: Analyzer(tiny_model, sr, smoothing_s=0).process(x)  # noqa: E731
    a, b = run(clean), run(dirty)
    # once the burst has left the 2 s window (+ harmony memory), the output matches the clean run
    late = [i for i, e in enumerate(a) if e.t > 8.0]
    assert late
    for i in late:
        assert abs(a[i].arousal - b[i].arousal) < 0.05 and a[i].chord == b[i].chord


@pytest.mark.parametrize("sr,channels", [(8000, 1), (96000, 8), (44100, 2), (192000, 1)])
def test_rate_and_channel_changes_between_runs(tiny_model, sr, channels):
    a = Analyzer(tiny_model, sr)
    x = np.repeat(triad(57, True, 3, sr)[:, None], channels, axis=1)
    ests = a.process(x)
    assert ests and ests[-1].chord == "A:min" and all(math.isfinite(e.arousal) for e in ests)


def test_long_silence_then_music_recovers(tiny_model):
    """Ten minutes of digital silence (an installation at night), then music: no stuck state."""
    sr = 22050
    a = Analyzer(tiny_model, sr, smoothing_s=0)
    silence = np.zeros(sr * 60, np.float32)
    quiet = []
    for _ in range(10):
        quiet += a.process(silence)
    assert {e.chord for e in quiet} == {"N"} and all(math.isfinite(e.arousal) for e in quiet)
    music = a.process(triad(57, True, 10, sr))
    fresh = Analyzer(tiny_model, sr, smoothing_s=0).process(triad(57, True, 10, sr))
    assert music[-1].chord == fresh[-1].chord == "A:min"
    assert abs(music[-1].arousal - fresh[-1].arousal) < 0.05
    assert music[-1].key == fresh[-1].key


class _CountingAnalyzer:
    """Counts the frames the engine hands over (no model, no numba)."""

    input_rate = 22050

    def __init__(self):
        self.frames = 0

    def warm_up(self):
        return 0.0

    def process(self, block, overflows=0):
        self.frames += len(block)
        return []

    def finish(self, overflows=0):
        return []


def test_the_last_block_of_a_finite_source_is_never_lost():
    """A file's reader writes its last block and then says it is finished: if the engine sees the ring empty
    just before that write and the flag just after it, the block must still be analysed."""
    from live_mer.ringbuffer import RingBuffer

    class LastWriteBetweenTheChecks:
        samplerate, channels, realtime, overflows, error, name = 22050, 1, False, 0, None, "file"

        def __init__(self):
            self.ring, self._written = RingBuffer(22050, 1), False

        def start(self):
            pass

        def stop(self):
            pass

        @property
        def finished(self):
            if not self._written:  # what the reader thread does while the engine looks at the ring
                self.ring.write(np.ones((1024, 1), np.float32))
                self._written = True
            return True

    analyzer = _CountingAnalyzer()
    engine = Engine(LastWriteBetweenTheChecks(), analyzer, [])
    engine.start()
    assert engine.wait(5.0)
    engine.stop()
    assert analyzer.frames == 1024


def test_a_large_sound_card_block_is_analysed_whole():
    """A sound card opened with a large ``source.blocksize`` hands over blocks longer than ``max_backlog_s``
    at once: the engine took each for a backlog and dropped all but its last second, silently."""
    from live_mer.ringbuffer import RingBuffer

    class LargeBlocks:
        samplerate, channels, realtime, overflows, error, name = 22050, 1, True, 0, None, "card"
        blocksize = 2 * 22050  # 2 s

        def __init__(self):
            self.ring, self.finished = RingBuffer(8 * 22050, 1), False

        def start(self):
            threading.Thread(target=self._play, daemon=True).start()

        def _play(self):
            for _ in range(4):
                while self.ring.available():  # the analyzer keeps up: each block is read before the next
                    time.sleep(0.01)
                self.ring.write(np.full((self.blocksize, 1), 0.1, np.float32))
            self.finished = True

        def stop(self):
            pass

    analyzer = _CountingAnalyzer()
    engine = Engine(LargeBlocks(), analyzer, [], max_backlog_s=1.0)
    engine.start()
    assert engine.wait(10.0)
    engine.stop()
    assert engine.dropped_s == 0 and analyzer.frames == 4 * LargeBlocks.blocksize


def test_a_file_played_to_its_end_gives_the_estimates_analyze_gives_the_last_included(tiny_model, tmp_path):
    """At the end of a file the analyzer's flush (its resampler's delay) completes the last hop of some
    lengths (2.81 s at 44.1 kHz): the engine flushes too, or ``listen --file`` would lose that estimate."""
    sr = 44100
    path = tmp_path / "a.wav"
    sf.write(path, triad(57, True, 3.0, sr)[:123919], sr)
    src = FileSource(path, realtime=False)
    latest = LatestEstimates(maxlen=1000)
    engine = Engine(src, Analyzer(tiny_model, src.samplerate), [latest])
    engine.start()
    assert engine.wait(30)
    engine.stop()
    times = [round(e.t, 4) for e in latest.drain()]
    assert times == [e["t"] for e in analyze_file(path, tiny_model)["timeline"]] and len(times) == 11


def test_a_file_that_stops_decoding_plays_as_far_as_it_goes_and_loops_on(tiny_model, tmp_path, caplog):
    """An installation looping a file whose end is damaged: the analysis used to stop with an error at the
    first pass's damaged end; it plays to there, says so once, and goes round again."""
    full = tmp_path / "full.flac"
    sf.write(full, triad(57, True, 20, 22050), 22050, format="FLAC")
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    src = FileSource(cut, realtime=False, loop=True)
    analyzer = Analyzer(tiny_model, src.samplerate)
    latest = LatestEstimates()
    engine = Engine(src, analyzer, [latest])
    with caplog.at_level("WARNING", logger="live_mer"):
        engine.start()
        seen = []
        end = time.monotonic() + 20.0
        while sum(map(len, seen)) * analyzer.hop_seconds < 30.0 and time.monotonic() < end:  # > 4 passes
            seen.append(latest.drain())
            time.sleep(0.05)
        engine.stop()
    assert engine.error is None and src.error is None
    assert sum(map(len, seen)) * analyzer.hop_seconds >= 30.0
    damaged = [r for r in caplog.records if "decoding failed after" in r.getMessage()]
    assert len(damaged) == 1 and "played as far as it goes" in damaged[0].getMessage()


def test_a_looped_file_replaced_by_one_of_another_format_stops_with_a_clear_error(tiny_model, tmp_path):
    """An installation looping a file that someone replaces: a 48 kHz mono file read as the old 44.1 kHz
    stereo one played 9 % slow and a semitone flat without a word; six channels stopped the run with a
    numpy broadcast error."""
    path = tmp_path / "room.wav"
    sf.write(path, np.stack([triad(57, True, 2, 44100)] * 2, axis=1), 44100)
    src = FileSource(path, realtime=False, loop=True)
    sf.write(path, triad(57, True, 2, 48000), 48000)  # replaced before the next pass begins
    engine = Engine(src, Analyzer(tiny_model, src.samplerate), [])
    engine.start()
    try:
        ended = engine.wait(10.0)
    finally:
        engine.stop()
    assert ended and "changed while playing: now 48000 Hz, 1 channel(s), was 44100 Hz, 2" in str(engine.error)
