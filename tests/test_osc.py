import time

import numpy as np
import pytest
import soundfile as sf

from conftest import triad
from live_mer.analyzer import Analyzer
from live_mer.engine import Engine, LatestEstimates
from live_mer.estimate import Estimate
from live_mer.osc import DestinationConfig, DestinationError, OscSender, parse_destination
from live_mer.outputs import OutputSettings
from live_mer.sources import FileSource
from osc_receiver import Receiver, free_udp_port, messages

RAW = OutputSettings(shapes={})  # no shaping: OSC carries the estimates as they are

TYPES = {"/mer/va": "ff", "/mer/valence": "f", "/mer/arousal": "f", "/mer/quadrant": "s",
         "/mer/quadrant/probs": "ffff", "/mer/chord": "sf", "/mer/key": "ssf", "/mer/level": "f",
         "/mer/onset": "f", "/mer/status": "iifs", "/mer/mood/tension": "f", "/mer/mood/sadness": "f",
         "/mer/tag/Calm": "f", "/mer/tag/Dreamy": "f"}


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def wav(tmp_path):
    sr = 44100
    path = tmp_path / "prog.wav"
    x = np.concatenate([triad(57, True, 3.0, sr), triad(60, False, 3.0, sr), triad(65, False, 3.0, sr)])
    sf.write(path, x, sr)
    return path


def run_file(model, path, sinks):
    source = FileSource(path, realtime=False)
    engine = Engine(source, Analyzer(model, source.samplerate), sinks)
    latest = LatestEstimates(maxlen=100000)
    engine.sinks.append(latest)
    engine.start()
    assert engine.wait(60), "the engine did not finish"
    engine.stop()
    assert engine.error is None, engine.error
    return engine, latest.drain()


def test_one_bundle_per_hop_with_types_and_increasing_time_tags(tiny_model, wav, receiver):
    osc = OscSender([f"127.0.0.1:{receiver.port}"], model_name="tiny", settings=RAW)
    engine, ests = run_file(tiny_model, wav, [osc])
    assert receiver.wait_for(len(ests) + 1)  # the engine itself says the file ended, before any close
    osc.close()
    time.sleep(0.2)
    *bundles, end = receiver.bundles()
    assert list(messages(end)) == ["/mer/status/stopped"]  # once: close() does not repeat it
    assert len(bundles) == len(ests) == engine.estimates > 30
    stamps = [b.timestamp for b in bundles]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert abs(stamps[-1] - time.time()) < 30
    for b, e in zip(bundles, ests):
        msgs = messages(b)
        for address, types in TYPES.items():
            assert address in msgs, address
            args = msgs[address].params
            assert "".join({float: "f", int: "i", str: "s"}[type(v)] for v in args) == types, address
        assert msgs["/mer/va"].params == pytest.approx([e.valence, e.arousal], abs=1e-6)
        assert msgs["/mer/chord"].params[0] == e.chord
        assert msgs["/mer/key"].params[:2] == [e.key, e.key_camelot]
        assert msgs["/mer/status"].params[3] == "tiny"
        assert msgs["/mer/tag/Angry"].params == pytest.approx([e.heads["tags"]["Angry"]], abs=1e-6)
        assert not any(a.startswith("/mer/mood/") and a[10:] in e.heads["tags"] for a in msgs)  # tags are not moods
    assert messages(bundles[-1])["/mer/chord"].params[0] == "F:maj"
    assert osc.stats()[0]["sent"] == len(ests) and osc.stats()[0]["errors"] == 0  # frames; not the end notice


def test_closed_port_does_not_stop_the_stream(tiny_model, wav, receiver):
    dead = free_udp_port()
    osc = OscSender([f"127.0.0.1:{dead}", f"127.0.0.1:{receiver.port}"], prefix="/room1/mer")
    engine, ests = run_file(tiny_model, wav, [osc])
    osc.close()
    assert receiver.wait_for(len(ests))
    stats = {s["destination"]: s for s in osc.stats()}
    assert stats[f"127.0.0.1:{dead}"]["errors"] > 0  # ECONNREFUSED was counted
    assert "refused" in stats[f"127.0.0.1:{dead}"]["last_error"].lower()
    assert stats[f"127.0.0.1:{dead}"]["refused"] and not stats[f"127.0.0.1:{receiver.port}"]["refused"]
    assert stats[f"127.0.0.1:{receiver.port}"]["sent"] == len(ests)
    assert len(receiver.datagrams) == len(ests) + 1  # and the end-of-stream notice
    assert "/room1/mer/va" in messages(receiver.bundles()[0])


def test_a_receiver_that_starts_late_clears_the_refusal(tiny_model, wav):
    port = free_udp_port()
    osc = OscSender([f"127.0.0.1:{port}"])
    try:
        run_file(tiny_model, wav, [osc])
        osc.flush(5)
        # every other send is refused (the kernel reports it on the next one): still refused at the end
        assert osc.stats()[0]["refused"] and osc.stats()[0]["sent"] > 0
        rx = Receiver(port)
        try:
            run_file(tiny_model, wav, [osc])
            osc.flush(5)
            assert not osc.stats()[0]["refused"] and rx.wait_for(1)
        finally:
            rx.close()
    finally:
        osc.close()


def test_failing_sink_is_counted_and_analysis_goes_on(tiny_model, wav):
    def broken(est):
        raise RuntimeError("visuals crashed")

    engine, ests = run_file(tiny_model, wav, [broken])
    assert len(ests) > 30 and engine.sink_errors == len(ests)


def test_bad_destinations_are_clear():
    for bad in ("localhost", "host:0", "host:70000", ":9000", "1.2.3.4:port"):
        with pytest.raises(DestinationError, match="HOST:PORT"):
            parse_destination(bad)
    with pytest.raises(ValueError, match="prefix"):
        OscSender(["127.0.0.1:9000"], prefix="mer/")
    assert parse_destination("[::1]:9000") == ("::1", 9000)
    # malformed hosts are refused at once (they used to start, drop every packet and exit 0)
    for bad, needle in (("1.2.3.4:9000:9000", "brackets"), ("192.168.1.300:9000", "not an IPv4 address"),
                        ("osc://10.0.0.5:9000", "without a scheme"), ("h:\u00b2", "HOST:PORT"),
                        ("my host:9000", "not a host name")):
        with pytest.raises(DestinationError, match=needle):
            parse_destination(bad)
    for good in ("studio-pc.local:7000", "Studio_PC:7000", "255.255.255.255:9000", "no-such-host.invalid:9000"):
        assert parse_destination(good)[1] in (7000, 9000)
    for text in ("[::1]:9000", "[fe80::1%eth0]:9000", "10.0.0.5:7000"):  # labels read back as they were given
        assert DestinationConfig.parse(DestinationConfig.parse(text).label).label == text


def test_broadcast_and_multicast_sockets_open():
    osc = OscSender(["127.255.255.255:9000", "239.255.0.1:9000"])
    osc(Estimate(t=0.0, valence=0.1, arousal=0.2))
    osc.close()
    assert [s["sent"] + s["errors"] for s in osc.stats()] == [1, 1]


def test_unresolvable_destination_does_not_stop_the_others(receiver):
    osc = OscSender(["no-such-host.invalid:9000", f"127.0.0.1:{receiver.port}"], settings=RAW)
    for i in range(5):
        osc(Estimate(t=float(i), valence=0.0, arousal=0.0))
    osc.close()
    stats = {s["destination"]: s for s in osc.stats()}
    assert "cannot resolve" in stats["no-such-host.invalid:9000"]["last_error"]
    assert stats["no-such-host.invalid:9000"]["dropped"] == 5
    assert stats[f"127.0.0.1:{receiver.port}"]["sent"] == 5
    assert receiver.wait_for(5)
