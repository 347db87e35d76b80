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
    assert source._worker is None or not source._worker.is_alive()  # stopping the device ends its worker
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


def test_a_name_that_matches_several_devices_says_which_it_took(monkeypatch, caplog):
    """With two USB interfaces, ``--device USB`` opened the first without a word."""
    from live_mer import sources

    devices = [{"index": 3, "name": "USB Audio CODEC", "channels": 2, "default_samplerate": 48000.0},
               {"index": 5, "name": "Scarlett USB", "channels": 2, "default_samplerate": 48000.0}]
    monkeypatch.setattr(sources, "list_input_devices", lambda: devices)
    with caplog.at_level("WARNING", logger="live_mer"):
        assert find_device("usb")["index"] == 3
    assert "input device 'usb' matches 2 devices ([3] USB Audio CODEC, [5] Scarlett USB): using [3] USB Audio " \
           "CODEC; give more of its name, or its index" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="live_mer"):
        assert find_device("scarlett usb")["index"] == 5 and find_device("5")["index"] == 5
    assert not caplog.text


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


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_suspended_input_is_one_loss_until_audio_flows_again(pulse, tiny_model, caplog):
    """A suspended source still opens, but delivers nothing: that is not "back" (it used to flap between
    "lost" and "is back" every 2 s, at a third of the estimate rate)."""
    import subprocess

    from pulse_rig import SINK

    source = DeviceSource("pulse", samplerate=SR, channels=1)
    latest = LatestEstimates(maxlen=100000)
    engine = Engine(source, Analyzer(tiny_model, SR), [latest])
    engine.start()
    try:
        time.sleep(1.0)
        latest.drain()
        caplog.clear()
        subprocess.run(["pactl", "suspend-sink", SINK, "1"], check=True, timeout=10)
        try:
            assert _wait(lambda: engine.input_lost, 5), "the suspension was not noticed"
            time.sleep(6.0)
            during = latest.drain()
            assert engine.input_lost and "delivers no audio" in source.reopen_error
            assert not any("is back" in r.getMessage() for r in caplog.records)
            hop = tiny_model.card.hop_seconds
            assert len(during) >= 0.8 * 6.0 / hop and not any(e.input_ok for e in during[-5:])
        finally:
            subprocess.run(["pactl", "suspend-sink", SINK, "0"], check=True, timeout=10)
        assert _wait(lambda: not engine.input_lost, 20), f"not back: {source.reopen_error}"
        assert source.losses == 1
        assert sum("is back" in r.getMessage() for r in caplog.records) == 1
        play(triad(57, True, 2.0, SR, amp=0.3), SR).wait(timeout=20)
        time.sleep(0.5)
        assert max(e.loudness_db for e in latest.drain()) > -30
    finally:
        engine.stop()


def test_a_hung_audio_system_never_stalls_the_analysis(pulse, tiny_model):
    """A PortAudio call that never returns (seen when the sound server died) blocks only the source's
    worker: estimates keep coming, then the engine stops with an error a service manager can act on, and
    stopping does not hang."""
    import threading

    from live_mer.sources import AudioSystemError
    from pulse_rig import load_sink, unload_sink

    source = DeviceSource("pulse", samplerate=SR, channels=1)
    source.stuck_s = 3.0
    source.close_wait_s = 1.0
    latest = LatestEstimates(maxlen=100000)
    engine = Engine(source, Analyzer(tiny_model, SR), [latest])
    engine.start()
    release = threading.Event()
    stream = source._stream
    real_abort = stream.abort
    stream.abort = lambda: (release.wait(), real_abort())  # the call that never comes back
    try:
        time.sleep(1.0)
        latest.drain()
        unload_sink()
        try:
            assert _wait(lambda: engine.input_lost, 5), "the loss was not noticed"
            time.sleep(2.0)  # the close is stuck by now
            during = latest.drain()
            assert len(during) >= 0.8 * 2.0 / tiny_model.card.hop_seconds  # the analysis did not wait
            assert _wait(lambda: not engine.running, 5), "the stuck call was not reported"
            assert isinstance(engine.error, AudioSystemError) and "stopped responding" in str(engine.error)
            t0 = time.monotonic()
            engine.stop()
            assert time.monotonic() - t0 < 3.0 and source.stuck
        finally:
            load_sink()
    finally:
        release.set()
        engine.stop()


def test_listen_exits_with_an_error_when_the_audio_system_hangs(pulse):
    """As a service: the process ends (status 1, the reason on stderr) instead of hanging for ever, so a
    service manager can restart it; PortAudio's own exit handler would wait on the stuck call."""
    import subprocess
    import sys

    from osc_receiver import Receiver
    from pulse_rig import load_sink, unload_sink

    receiver = Receiver()
    hang = ("import threading, sounddevice as sd\n"
            "from live_mer import cli, sources\n"
            "sources.DeviceSource.stuck_s = 2.0\n"
            "sources.DeviceSource.close_wait_s = 1.0\n"
            "sd.InputStream.abort = lambda self: threading.Event().wait()\n"
            "sd._terminate = lambda: threading.Event().wait()\n"  # a stuck PortAudio cannot terminate either
            f"raise SystemExit(cli.main(['listen', '--device', 'pulse', '--quiet', '--osc', "
            f"'127.0.0.1:{receiver.port}']))\n")
    proc = subprocess.Popen([sys.executable, "-c", hang], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert receiver.wait_for(3, timeout=90), "listen never sent OSC"
        unload_sink()
        try:
            out, err = proc.communicate(timeout=30)
        finally:
            load_sink()
    finally:
        receiver.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "lost" in err and "stopped responding" in err
    assert "input lost 1 time(s)" in err  # the summary a service's log ends with


def test_stopping_twice_after_a_stuck_close_closes_once(pulse):
    """The monitor stops an engine more than once (Stop, the next start, quitting): after a close that did
    not return in time, a second stop waits for nothing, and the stream is closed exactly once."""
    import threading

    from live_mer import sources

    release = threading.Event()
    closed = []

    class StuckStream:
        active = True

        def abort(self):
            release.wait()

        def close(self):
            closed.append(1)

    source = DeviceSource("pulse", samplerate=SR, channels=1)
    source.close_wait_s = 0.5
    before = sources._open_streams
    source._stream = StuckStream()
    sources._open_streams += 1  # as _open counts it
    t0 = time.monotonic()
    source.stop()
    assert source.stuck and 0.4 < time.monotonic() - t0 < 2.0
    t0 = time.monotonic()
    source.stop()  # returns at once: it is known to be stuck
    assert time.monotonic() - t0 < 0.2
    release.set()
    assert _wait(lambda: closed, 2.0)
    time.sleep(0.2)
    assert closed == [1] and sources._open_streams == before
    assert source.check() == "ok"  # a stopped source hands its worker nothing more
    assert not source._worker.is_alive()  # one worker, ended after the close


def test_a_large_block_size_is_not_taken_for_a_lost_device(pulse):
    """PortAudio delivers a 65536-frame block every 1.4 s at 48 kHz: the watchdog, waiting 1 s for audio,
    took the device for lost at every block and reopened it for good (silence sent as OSC all along)."""
    source = DeviceSource("pulse", samplerate=SR, channels=1, blocksize=65536)
    assert source.stall_s == pytest.approx(3 * 65536 / SR)
    source.start()
    try:
        states = []
        end = time.monotonic() + 5.0
        while time.monotonic() < end:
            states.append(source.check())
            time.sleep(0.05)
        assert source.ring._written >= 2 * 65536  # blocks arrived
    finally:
        source.stop()
    assert "lost" not in states and source.losses == 0
