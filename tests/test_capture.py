"""Real capture: audio played into the PulseAudio null sink with paplay, captured through PortAudio."""

import time

import numpy as np
import pytest

from conftest import need_or_skip, triad
from live_mer.analyzer import Analyzer
from live_mer.engine import Engine, LatestEstimates
from live_mer.sources import DeviceSource, SourceError, find_device
from pulse_rig import play, pulse_available

SR = 48000


@pytest.fixture(scope="module")
def pulse():
    need_or_skip(pulse_available(), "the PulseAudio test rig is not running (bash scripts/pulse_rig.sh start)")
    import sounddevice as sd

    sd._terminate()  # PortAudio lists devices once per initialisation: refresh after the rig started
    sd._initialize()
    return find_device("pulse")


class RecordingAnalyzer(Analyzer):
    """The real Analyzer, also keeping a copy of every block it was given."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def process(self, audio, overflows=0):
        self.seen.append(np.array(audio, copy=True))
        return super().process(audio, overflows)

    def warm_up(self):
        seconds = super().warm_up()
        self.seen.clear()  # only what the sound card delivered
        return seconds


def test_capture_what_was_played(pulse, tiny_model):
    rng = np.random.default_rng(7)
    marker = (rng.standard_normal(SR // 2) * 0.2).astype(np.float32)  # a noise burst locates the lag
    signal = np.concatenate([marker, triad(57, True, 4.0, SR, amp=0.3)])
    source = DeviceSource("pulse", samplerate=SR, channels=1)
    analyzer = RecordingAnalyzer(tiny_model, SR, smoothing_s=0)
    latest = LatestEstimates()
    engine = Engine(source, analyzer, [latest])
    engine.start()
    try:
        time.sleep(0.5)
        assert play(signal, SR).wait(timeout=20) == 0
        time.sleep(1.0)
    finally:
        engine.stop()
    assert engine.error is None
    seen = np.concatenate([b[:, 0] for b in analyzer.seen])
    assert len(seen) > len(signal)
    # Locate the played signal in what the analyzer saw and compare sample by sample.
    corr = np.correlate(seen[: len(seen)], marker, mode="valid")
    lag = int(np.argmax(np.abs(corr)))
    got = seen[lag:lag + len(signal)]
    assert len(got) == len(signal), "capture ended before the whole signal arrived"
    r = np.corrcoef(got, signal)[0, 1]
    assert r > 0.99, f"captured audio correlates only {r:.3f} with what was played"
    assert source.overflows == 0
    ests = latest.drain()
    assert ests and ests[-1].overflows == 0
    assert any(e.chord == "A:min" for e in ests)


def test_unknown_device_lists_the_available_ones(pulse):
    with pytest.raises(SourceError) as info:
        DeviceSource("no such interface 9000")
    text = str(info.value)
    assert "no such interface 9000" in text and "pulse" in text


def test_device_loss_and_return_without_restart(pulse, tiny_model):
    from pulse_rig import load_sink, unload_sink

    source = DeviceSource("pulse", samplerate=SR, channels=1)
    latest = LatestEstimates(maxlen=100000)
    engine = Engine(source, Analyzer(tiny_model, SR), [latest])
    tone = triad(57, True, 3.0, SR, amp=0.3)
    engine.start()
    try:
        play(tone, SR).wait(timeout=20)
        before = latest.drain()
        assert before and all(e.input_ok for e in before)
        unload_sink()  # the "USB interface" is unplugged
        try:
            deadline = time.monotonic() + 10
            while not engine.input_lost and time.monotonic() < deadline:
                time.sleep(0.05)
            assert engine.input_lost, "the loss was not noticed"
            time.sleep(1.5)
            during = latest.drain()
            assert during and not during[-1].input_ok  # estimates keep coming, flagged
        finally:
            load_sink()  # ...and plugged back in
        deadline = time.monotonic() + 30
        while engine.input_lost and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not engine.input_lost, f"not reopened: {source.reopen_error}"
        assert source.losses == 1 and engine.running
        play(tone, SR).wait(timeout=20)
        time.sleep(0.5)
        after = latest.drain()
        assert after[-1].input_ok and max(e.loudness_db for e in after) > -30
        ts = [e.t for e in before + during + after]
        assert all(b > a for a, b in zip(ts, ts[1:]))  # one continuous timeline throughout
    finally:
        engine.stop()
