import errno
import json
import logging
import math
import re
import socket
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import triad
from live_mer import config as configmod
from live_mer import osc as osc_module
from live_mer.analyzer import Analyzer
from live_mer.control import RECEIVE_BUFFER_BYTES, ControlServer, Controller
from live_mer.engine import Engine, LatestEstimates
from live_mer.estimate import Estimate
from live_mer.osc import (NTP_UNIX_OFFSET_S, PATTERN_CHARS, DestinationConfig, DestinationError, OscSender, bundle, datagrams,
                          message, parse_destination, time_tag)
from live_mer.outputs import OutputSettings
from live_mer.sources import FileSource
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from osc_receiver import Receiver, free_udp_port, messages, send_osc, send_raw, wait_until

RAW = OutputSettings(shapes={})  # no shaping: OSC carries the estimates as they are

TYPES = {"/mer/va": "ff", "/mer/valence": "f", "/mer/arousal": "f", "/mer/quadrant": "s",
         "/mer/quadrant/probs": "ffff", "/mer/chord": "sf", "/mer/key": "ssf", "/mer/level": "f",
         "/mer/onset": "f", "/mer/status": "iifs", "/mer/mood/tension": "f", "/mer/mood/sadness": "f",
         "/mer/tag/Calm": "f", "/mer/tag/Dreamy": "f", "/mer/chord/ext": "sf", "/mer/status/input": "iff",
         "/mer/status/provider": "s"}


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
    assert receiver.wait_for(len(ests) + 1)  # every estimate and the end-of-stream notice
    time.sleep(0.2)  # (anything more would arrive now)
    stats = {s["destination"]: s for s in osc.stats()}
    assert stats[f"127.0.0.1:{dead}"]["errors"] > 0  # ECONNREFUSED was counted
    assert "refused" in stats[f"127.0.0.1:{dead}"]["last_error"].lower()
    assert stats[f"127.0.0.1:{dead}"]["refused"] and not stats[f"127.0.0.1:{receiver.port}"]["refused"]
    assert stats[f"127.0.0.1:{receiver.port}"]["sent"] == len(ests)
    assert len(receiver.datagrams) == len(ests) + 1  # and the end-of-stream notice
    assert "/room1/mer/va" in messages(receiver.bundles()[0])


def test_a_receiver_that_starts_late_clears_the_refusal(tiny_model, wav, monkeypatch):
    monkeypatch.setattr("live_mer.osc.RECOVERED_S", 0.5)  # the files run faster than real time
    port = free_udp_port()
    osc = OscSender([f"127.0.0.1:{port}"])
    try:
        run_file(tiny_model, wav, [osc])
        osc.flush(5)
        # every other send is refused (the kernel reports it on the next one): still refused at the end
        assert osc.stats()[0]["refused"] and osc.stats()[0]["sent"] > 0
        rx = Receiver(port)
        time.sleep(0.6)
        try:
            run_file(tiny_model, wav, [osc])
            osc.flush(5)
            assert not osc.stats()[0]["refused"] and rx.wait_for(1)
        finally:
            rx.close()
    finally:
        osc.close()


def test_a_remote_host_that_answers_one_refusal_a_second_stays_refused(receiver, monkeypatch):
    """A computer on the network rate-limits its "port unreachable" replies (Linux: one a second), so a
    60 Hz destination there with no receiver fails about one send in sixty: three clean sends in a row
    called it "listening" again within 50 ms, and the terminal and the monitor flipped between "nothing
    listening" and "a receiver is listening now" every second. (Loopback is never rate-limited, so the
    remote host's replies are played by a socket that fails one send a second.)"""
    refusing = threading.Event()
    refusing.set()
    real_open = osc_module._open

    class RateLimitedRefusals(socket.socket):
        last = -1.0

        def send(self, data):
            now = time.monotonic()
            if refusing.is_set() and now - self.last >= 1.0:
                self.last = now
                raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
            return super().send(data)

    def rate_limited(cfg, keep=None):
        sock = real_open(cfg, keep)
        return RateLimitedRefusals(sock.family, sock.type, sock.proto, sock.detach())

    monkeypatch.setattr(osc_module, "_open", rate_limited)
    osc = OscSender([DestinationConfig("127.0.0.1", receiver.port, rate_hz=60)], settings=RAW)
    try:
        osc(Estimate(t=0.0, valence=0.5, arousal=0.0))
        assert wait_until(lambda: osc.stats()[0]["refused"], 2.0)
        seen = []
        for _ in range(40):  # four seconds: four refusals, about 240 sends
            time.sleep(0.1)
            seen.append(osc.stats()[0]["refused"])
        assert all(seen), seen
        refusing.clear()  # a receiver opens the port
        t0 = time.monotonic()
        assert wait_until(lambda: not osc.stats()[0]["refused"], 5.0)
        assert osc_module.RECOVERED_S - 1.2 <= time.monotonic() - t0 <= osc_module.RECOVERED_S + 1.0
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


def test_a_link_local_ipv6_address_without_its_interface_is_refused_at_start():
    """Linux cannot connect to fe80::1 or ff02::1 without a scope (EINVAL): `config --check` said OK and listen
    logged "[Errno 22] Invalid argument; retrying every 5 s" and dropped every estimate, for ever."""
    for bad in ("[fe80::1]:9000", "[ff02::1]:9000"):
        with pytest.raises(DestinationError, match=r"link-local IPv6 address: add its network interface"):
            parse_destination(bad)
    for good in ("[fe80::1%lo]:9000", "[ff02::1%lo]:9000", "[ff05::1]:9000", "[fd00::2]:9000"):
        assert parse_destination(good)[0] == good[1:-6]


def test_broadcast_and_multicast_sockets_open():
    osc = OscSender(["127.255.255.255:9000", "239.255.0.1:9000"])
    osc(Estimate(t=0.0, valence=0.1, arousal=0.2))
    osc.close()
    assert [s["sent"] + s["errors"] for s in osc.stats()] == [1, 1]


def test_a_subnet_broadcast_that_does_not_end_in_255_may_be_sent_to():
    """A /25's broadcast address is x.x.x.127: only addresses ending in .255 got SO_BROADCAST, and Linux refused
    the others' connect (EACCES): "Permission denied; retrying every 5 s", every estimate dropped."""
    for host in ("10.0.0.127", "10.0.0.255", "10.0.0.5"):  # which is a broadcast depends on the netmask
        sock = osc_module._open(DestinationConfig(host, 9000))
        try:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST), host
        finally:
            sock.close()


def test_a_name_with_an_ipv4_and_an_ipv6_address_is_sent_to_over_ipv4(receiver, monkeypatch):
    """localhost resolves to ::1 first on most systems (Debian's /etc/hosts, macOS, Windows): the first address
    was taken, and a receiver on 127.0.0.1 or 0.0.0.0, where OSC software listens, got nothing."""
    real_lookup = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        if host == "localhost":
            return real_lookup("::1", *args, **kwargs) + real_lookup("127.0.0.1", *args, **kwargs)
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    with OscSender([f"localhost:{receiver.port}"], settings=RAW) as osc:
        for i in range(3):
            osc(Estimate(t=float(i), valence=0.5, arousal=0.0))
            osc.flush()
            time.sleep(0.05)
    assert receiver.wait_for(4, timeout=2.0), osc.stats()
    assert osc.stats()[0]["errors"] == 0


def test_a_receiver_given_a_new_address_is_followed(monkeypatch):
    """A host name was looked up once: a receiver given a new address (a new DHCP lease) got nothing more,
    without a word, until a restart. It is looked up again (RERESOLVE_S); a lookup that fails meanwhile
    leaves the address that worked, and so does one that gives it among others (a round-robin name, answering
    in turn with each address first, moved at every lookup)."""
    first = Receiver()
    moved = Receiver(port=first.port, host="127.0.0.2")  # another address of this computer, the same port
    where = {"ip": "127.0.0.1"}
    real_lookup = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        if host != "receiver.test":
            return real_lookup(host, *args, **kwargs)
        if where["ip"] is None:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if where["ip"] == "round-robin":
            where["turn"] = not where.get("turn")
            both = [real_lookup(ip, *args, **kwargs) for ip in ("127.0.0.1", "127.0.0.2")]
            return both[0] + both[1] if where["turn"] else both[1] + both[0]
        return real_lookup(where["ip"], *args, **kwargs)

    def send_until(receiver, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not receiver.datagrams:
            osc(Estimate(t=0.0, valence=0.5, arousal=0.0))
            time.sleep(0.05)
        return bool(receiver.datagrams)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(osc_module, "RERESOLVE_S", 0.2)
    try:
        with OscSender([f"receiver.test:{first.port}"], settings=RAW) as osc:
            assert send_until(first, 2.0)
            where["ip"] = None  # the name server away for a moment: the old address goes on being sent to
            time.sleep(0.6)
            n = len(first.datagrams)
            assert send_until(moved, 0.5) is False and len(first.datagrams) > n
            where["ip"] = "127.0.0.2"
            assert send_until(moved, 3.0), osc.stats()
            osc.flush()
            n, m = len(first.datagrams), len(moved.datagrams)
            for _ in range(5):
                osc(Estimate(t=0.0, valence=0.5, arousal=0.0))
            osc.flush()
            assert moved.wait_for(m + 5, timeout=2.0) and len(first.datagrams) == n
            where["ip"] = "round-robin"
            for _ in range(20):  # 1 s: five lookups again, each with the other address first
                osc(Estimate(t=0.0, valence=0.5, arousal=0.0))
                time.sleep(0.05)
            osc.flush()
            assert where.get("turn") is not None and len(first.datagrams) == n, "moved by a round-robin answer"
    finally:
        first.close()
        moved.close()


class _UnreachableSocket:
    """A destination socket whose sends fail as Linux fails them (macOS: EADDRNOTAVAIL) once the network is
    unreachable from its local address: ``local`` is where it was connected from."""

    def __init__(self, real: socket.socket, local: str):
        self.real, self.family, self.local = real, real.family, local

    def send(self, data):
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    def getsockname(self):
        return self.local, 40000

    def close(self):
        self.real.close()


def test_a_destination_whose_local_address_has_gone_is_opened_again(receiver):
    """A laptop's new DHCP lease or another Wi-Fi: the socket, connected from the old address, failed every send
    from then on (measured: 10.99.0.1/25 changed to .2/25, 220 errors in 11 s at 20 Hz, until listen was restarted)
    while a fresh socket sent at once. A route lost for a moment, the address kept, needs no new socket."""
    with OscSender([DestinationConfig("127.0.0.1", receiver.port, rate_hz=20)], settings=RAW) as osc:
        d = osc.destinations[0]
        d.sock = _UnreachableSocket(d.sock, "198.51.100.7")  # TEST-NET-2: not this computer's
        osc(Estimate(t=0.0, valence=0.5, arousal=0.0))
        assert receiver.wait_for(3, timeout=2.0), osc.stats()
        assert osc.stats()[0]["errors"] == 1
        kept = d.sock = _UnreachableSocket(d.sock, "127.0.0.1")
        assert wait_until(lambda: osc.stats()[0]["errors"] >= 3, 2.0)
        assert d.sock is kept
        d.sock = kept.real


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


def test_a_host_slow_to_resolve_holds_up_neither_the_start_nor_the_other_destinations(receiver, monkeypatch):
    """An absent ``.local`` host or a DNS server that does not answer takes seconds to fail. The lookup
    ran in the sender's start and, every retry, in the one thread that serves every destination: a 60 Hz
    destination on the same sender got a frame every few seconds."""
    real_lookup = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        if host == "studio-pc.local":
            time.sleep(2.0)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr("live_mer.osc.RESOLVE_RETRY_S", 0.5)
    t0 = time.monotonic()
    osc = OscSender(["studio-pc.local:9000", DestinationConfig("127.0.0.1", receiver.port, rate_hz=20)], settings=RAW)
    started = time.monotonic() - t0
    try:
        osc(Estimate(t=0.0, valence=0.5, arousal=0.0))
        time.sleep(3.0)  # the first lookup fails after 2 s, the retry 0.5 s later hangs again
        stats = {s["destination"]: s for s in osc.stats()}
    finally:
        osc.close()
    assert started < 1.0, started
    stamps = [b.timestamp for b in receiver.bundles() if b.num_contents > 1]
    assert len(stamps) >= 40 and max(b - a for a, b in zip(stamps, stamps[1:])) < 0.3
    assert "cannot resolve host" in stats["studio-pc.local:9000"]["last_error"]
    assert "live_mer-osc" not in [t.name for t in threading.enumerate()]
    # the lookup still hanging at the close ends with it (nothing of the sender stays behind)
    assert wait_until(lambda: "live_mer-osc-resolve" not in [t.name for t in threading.enumerate()], 3.0)


def sent(r: Receiver) -> list:
    """What a receiver got, in order: each frame's valence (rounded), or "stopped"."""
    out = []
    for b in r.bundles():
        msgs = messages(b)
        out.append("stopped" if "/mer/status/stopped" in msgs else round(msgs["/mer/va"].params[0], 3))
    return out


def test_a_sender_in_a_with_block_is_closed_at_its_end(receiver):
    """Its thread keeps a sender alive: one dropped without close() kept its thread and socket for good (200 of
    them: 200 threads waking four times a second)."""
    with OscSender([f"127.0.0.1:{receiver.port}"], settings=RAW) as osc:
        osc(Estimate(t=0.5, valence=0.25, arousal=0.0))
    assert not osc._thread.is_alive() and all(d.sock is None or d.sock.fileno() == -1 for d in osc.destinations)
    assert receiver.wait_for(2) and "/mer/status/stopped" in messages(receiver.bundles()[-1])


def test_every_destination_sends_the_last_frame_then_stopped(receiver):
    """A stream can end (end of file, Ctrl-C, --duration) before a destination's newest estimate is due: at
    a fixed rate it waits for the next tick, with offset_ms for the delay. That frame must still go out, then
    <p>/status/stopped, without waiting for close(), and a restart before then must not swallow the first
    stream's end. (Both used to be lost for good: the frame picker skipped every estimate of an ended stream.)"""
    delayed, per_hop = Receiver(), Receiver()
    osc = OscSender([DestinationConfig("127.0.0.1", receiver.port, rate_hz=60.0),
                     DestinationConfig("127.0.0.1", delayed.port, rate_hz=60.0, offset_ms=400.0),
                     DestinationConfig("127.0.0.1", per_hop.port, offset_ms=400.0)], settings=RAW)
    try:
        for stream in ((0.1, 0.2, 0.3), (0.6, 0.7)):  # both end, and the second starts, within a millisecond
            for v in stream:
                osc(Estimate(t=0.0, valence=v, arousal=0.0))
            osc.end_of_stream()
        for r in (receiver, delayed, per_hop):  # within the delay and a tick (and a loaded machine's jitter)
            assert wait_until(lambda: sent(r).count("stopped") == 2, 3.0), sent(r)
        time.sleep(0.2)
        osc.close()  # nothing more to send: no third notice
        time.sleep(0.1)
        for r in (receiver, delayed, per_hop):
            got = sent(r)
            first = got.index("stopped")
            before, between = got[:first], got[first + 1:-1]
            assert got[-1] == "stopped" and got.count("stopped") == 2, got  # nothing repeats after an end
            assert before[-1] == 0.3 and set(before) <= {0.1, 0.2, 0.3}, got  # each stream's last frame, then its end
            assert between[-1] == 0.7 and set(between) <= {0.6, 0.7}, got
        assert sent(per_hop) == [0.1, 0.2, 0.3, "stopped", 0.6, 0.7, "stopped"]  # per hop: every estimate
    finally:
        osc.close()
        delayed.close()
        per_hop.close()


@pytest.fixture
def control():
    """A control port on a free loopback port: (state, controller, port); state["settings"] is what it set."""
    state = {"settings": OutputSettings()}
    ctl = Controller(lambda: state["settings"], lambda s: state.update(settings=s), {})
    server = ControlServer(ctl, "127.0.0.1", 0)
    yield state, ctl, server
    server.close()


def test_mute_takes_the_flags_controllers_send(control, caplog):
    """TouchDesigner's OSC Out CHOP, TouchOSC and MIDI-to-OSC bridges send 1.0/0.0 (as float or double) or
    T/F, not ints: each is a mute flag (floats were refused: "argument 1.0 should be int"); a value that is no
    switch position is still refused."""
    state, ctl, server = control
    port = server.address[1]
    steps = ((("moods", 1.0), "sf", {"moods"}), (("tags", True), "sT", {"moods", "tags"}),
             (("moods", 0.0), "sd", {"tags"}), (("tags", False), "sF", set()), (("onset", 1), "si", {"onset"}))
    for n, (args, types, muted) in enumerate(steps, 1):
        send_osc(port, "/mer/control/mute", *args, types=types)
        assert wait_until(lambda: ctl.accepted + ctl.rejected == n, 3.0)
        assert ctl.rejected == 0 and state["settings"].muted == muted, (types, ctl.rejected)
    before = state["settings"]
    for bad, types in ((0.5, "f"), (math.nan, "f"), (math.inf, "d"), (2.0, "f"), (-1.0, "f"), ("1", "s"), (2, "i")):
        send_osc(port, "/mer/control/mute", "moods", bad, types="s" + types)
    assert wait_until(lambda: ctl.rejected == 7, 3.0)
    assert state["settings"] is before
    assert "/mer/control/mute: argument 0.5 should be 0 or 1 (int, float or T/F)" in caplog.text


def test_datagrams_that_are_not_osc_are_rejected_and_counted(control, caplog):
    """python-osc dropped these without a word. They are rejected like other bad messages, logged at most
    once a second, and the count of those not logged follows after a second without rejections, or when
    the port closes (it used to wait for the next logged rejection, forever after the last burst)."""
    caplog.set_level(logging.WARNING, logger="live_mer")
    state, ctl, server = control
    port = server.address[1]
    garbage = (b"\x00garbage\xff" * 3, b"#bundle\x00garbage", b"/mer/control/query",  # (no padding)
               b"/mer/\xff\xfe\x00\x00,\x00\x00\x00")  # not UTF-8: python-osc raises UnicodeDecodeError
    for data in garbage:
        send_raw(port, data)
    assert wait_until(lambda: ctl.rejected == 4, 3.0)
    assert re.search(r"a datagram from 127\.0\.0\.1:\d+ is not an OSC message or bundle \(27 bytes: ", caplog.text)
    assert wait_until(lambda: "3 more since the last report" in caplog.text, 3.0)  # after a quiet second
    send_osc(port, "/mer/control/mute", "tags", 1)  # the port still works
    assert wait_until(lambda: ctl.accepted == 1, 3.0) and state["settings"].muted == {"tags"}
    send_raw(port, b"junk")
    send_raw(port, b"junk")
    assert wait_until(lambda: ctl.rejected == 6, 3.0)
    server.close()  # within the second: the count comes now
    assert "2 more since the last report" in caplog.text
    assert sum("rejected" in r.getMessage() for r in caplog.records) == 3  # one line a second at most


def test_an_argument_type_the_port_cannot_read_is_rejected_by_name(control, caplog):
    """python-osc logged each unknown type tag to the root logger, once per datagram, and parsed the
    arguments after it from the wrong bytes; such datagrams are now rejected by name, rate-limited."""
    caplog.set_level(logging.WARNING)
    state, ctl, server = control
    port = server.address[1]
    char = b"/mer/control/mute\0\0\0,sc\0tags\0\0\0\0\0\0\0A"  # 'c' (an ASCII char): not read by python-osc
    in_bundle = b"#bundle\0" + bytes(8) + len(char).to_bytes(4, "big") + char
    for data in [char] * 20 + [in_bundle]:
        send_raw(port, data)
    assert wait_until(lambda: ctl.rejected == 21, 3.0)
    assert re.search(r"has an argument of OSC type 'c', which the control port does not read", caplog.text)
    assert "Unhandled parameter type" not in caplog.text  # nothing reached python-osc's parser
    assert sum("rejected" in r.getMessage() for r in caplog.records) == 1  # the rest are counted, not logged
    assert state["settings"].muted == frozenset() and ctl.accepted == 0
    send_osc(port, "/mer/control/mute", "tags", True)  # T / F still read
    assert wait_until(lambda: ctl.accepted == 1, 3.0) and state["settings"].muted == {"tags"}


def test_a_bundle_python_osc_would_loop_on_or_wait_for_does_not_block_the_port(control, caplog):
    """A bundle element of negative size sent python-osc's parser into an endless loop (the port dead,
    close() hanging, a core spent logging); one time-tagged an hour ahead held the port for that hour."""
    caplog.set_level(logging.WARNING)
    state, ctl, server = control
    port = server.address[1]
    mute = message("/mer/control/mute", ["tags", 1])
    send_raw(port, b"#bundle\0" + bytes(8) + (-4).to_bytes(4, "big", signed=True) + bytes(4))
    send_raw(port, b"#bundle\0" + bytes(8) + (len(mute) + 2).to_bytes(4, "big") + mute + b"\0\0")  # not x4
    assert wait_until(lambda: ctl.rejected == 2, 3.0)
    assert re.search(r"is not OSC: a bundle element at byte 16 has a size \(-4\)", caplog.text)
    assert "Could not identify content type" not in caplog.text
    send_raw(port, bundle([mute], time.time() + 3600))  # acted on now
    assert wait_until(lambda: ctl.accepted == 1, 3.0) and state["settings"].muted == {"tags"}


def test_a_bundle_larger_than_8_kib_is_read_whole(control, caplog):
    """The control port read at most 8192 bytes of a datagram (socketserver's default): a larger bundle (hundreds
    of messages, a controller's whole state at once) was cut there and rejected as "not OSC: a bundle element
    ... has a size (…) that is not a positive multiple of 4", which it was."""
    caplog.set_level(logging.WARNING)
    state, ctl, server = control
    packet = bundle([message("/mer/control/mute", ["onset", i % 2]) for i in range(300)], 0.0)  # the last mutes
    assert len(packet) > 10_000
    send_raw(server.address[1], packet)
    assert wait_until(lambda: ctl.accepted == 300, 3.0), (ctl.accepted, ctl.rejected, caplog.text)
    assert ctl.rejected == 0 and state["settings"].muted == {"onset"}


def test_a_burst_that_arrives_while_the_port_is_busy_is_not_dropped(control):
    """A fader sweep arrives as hundreds of datagrams; while the control thread is held up (here: its first
    message takes 0.5 s) they wait in the socket's buffer, which holds a few hundred at the default size."""
    state, ctl, server = control
    rmem_max = int(open("/proc/sys/net/core/rmem_max").read())
    asked = server._server.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert asked >= min(2 * rmem_max, 2 * RECEIVE_BUFFER_BYTES)  # what the kernel allows (it doubles the request)
    if rmem_max < 4 << 20:
        pytest.skip(f"net.core.rmem_max is {rmem_max} bytes: the kernel caps the buffer below what this burst needs")
    port, handle, first = server.address[1], ctl.handle, threading.Event()

    def slow_first(address, args):
        if not first.is_set():
            first.set()
            time.sleep(0.5)
        return handle(address, args)

    ctl.handle = slow_first
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(message("/mer/control/mute", ["tags", 1]), ("127.0.0.1", port))
        assert first.wait(3.0)
        for i in range(1500):
            s.sendto(message("/mer/control/mute", ["onset", i % 2]), ("127.0.0.1", port))
    assert wait_until(lambda: ctl.accepted == 1501, 10.0), ctl.accepted
    assert state["settings"].muted == {"tags", "onset"}  # the sweep's last value (1499 is odd: muted)


BAD_PREFIXES = [("/d\u00e9ck", "'\u00e9' is not ASCII"), ("/a\tb", "'\\t' is a control character"),
                ("/a//b", "'//' is a wildcard in OSC 1.1"), ("/a b", "it contains a space"),
                ("mer", "it does not start with '/'"), ("/mer/", "it ends with '/'"),
                *((f"/a{c}b", f"{c!r} is an OSC pattern character") for c in PATTERN_CHARS)]


@pytest.mark.parametrize("prefix,problem", BAD_PREFIXES)
def test_prefixes_that_are_not_osc_addresses_are_refused(prefix, problem, tmp_path):
    """OSC 1.0 addresses are printable ASCII without space and #*,?[]{} ("//" is an OSC 1.1 wildcard):
    a receiver would treat another prefix as a pattern or refuse it. The flag (--prefix), the file's key
    (osc.prefix) and the sender are refused by the one check, naming the problem and what is allowed."""
    allowed = "printable ASCII without spaces or #*,?[]{}, each after a single '/'"
    with pytest.raises(ValueError, match=re.escape(problem)) as exc:
        OscSender(["127.0.0.1:9"], prefix=prefix)
    assert allowed in str(exc.value)
    with pytest.raises(configmod.ConfigError, match=re.escape(problem)):
        configmod.override(configmod.Config(), "osc", prefix=prefix)
    path = tmp_path / "show.toml"
    path.write_text(f"[osc]\nprefix = {json.dumps(prefix)}\n", encoding="utf-8")  # JSON escapes are TOML's too
    with pytest.raises(configmod.ConfigError, match=r"osc\.prefix: .*" + re.escape(problem)):
        configmod.load(path)


def test_a_prefix_of_any_other_printable_ascii_is_sent(receiver):
    osc = OscSender([f"127.0.0.1:{receiver.port}"], prefix="/deck-1/mer_2.x~$@!", settings=RAW)
    osc(Estimate(t=0.0, valence=0.5, arousal=0.0))
    osc.close()
    assert receiver.wait_for(2)
    assert messages(receiver.bundles()[0])["/deck-1/mer_2.x~$@!/va"].params == [0.5, 0.0]


ARGS = [[], [""], ["A"], ["A:"], ["A:m"], ["A:min"], ["Cis-Dur \u00e9"], [0, 1, -1, 2**31 - 1, -2**31, 2**31, -2**40],
        [True, False], [0.0, -0.5, 1e30, math.inf, -math.inf, float(np.float64(0.25))], [3, "x", 0.5, True, "student"]]


@pytest.mark.parametrize("args", ARGS)
def test_messages_and_bundles_are_byte_for_byte_python_oscs(args):
    # live_mer writes OSC itself (python-osc's builder parses what it builds: most of a 60 Hz destination's cost);
    # python-osc's builder is the reference, and its parser must read ours back.
    for address in ("/mer/va", "/a", "/mer/tag/Feel Good"):
        ref = OscMessageBuilder(address)
        for x in args:
            ref.add_arg(x)
        built = ref.build()
        assert message(address, args) == built.dgram
        for t in (1764790000.123456, 1.5):  # (0 is python-osc's "immediately")
            theirs = OscBundleBuilder(t)
            theirs.add_content(built)
            theirs.add_content(built)
            assert bundle([built.dgram, built.dgram], t) == theirs.build().dgram


def test_time_tags_wrap_into_the_next_ntp_era_in_2036_instead_of_failing():
    era_1 = 2**32 - NTP_UNIX_OFFSET_S  # 2036-02-07 06:28:16 UTC: NTP's 32 bits of seconds run out
    assert time_tag(era_1 - 0.5) == bytes.fromhex("ffffffff80000000")
    assert time_tag(era_1 + 10.25) == bytes.fromhex("0000000a40000000")
    assert time_tag(0.0) == NTP_UNIX_OFFSET_S.to_bytes(4, "big") + bytes(4)
    # a bundled destination keeps sending on that day (python-osc's converter raised struct.error)
    sent = datagrams([("/mer/va", [0.5, -0.25])], True, era_1 + 3600.0)
    assert len(sent) == 1 and sent[0][8:16] == (3600).to_bytes(4, "big") + bytes(4)
    assert OscBundle(sent[0]).content(0).params == [0.5, -0.25]


def test_a_value_osc_cannot_carry_is_refused_by_name():
    with pytest.raises(TypeError, match="/mer/level.*float32"):
        message("/mer/level", [np.float32(0.5)])
    with pytest.raises(OverflowError):
        message("/mer/level", [1e300])
