"""The live-mer command as a user runs it (subprocesses), with real OSC on loopback."""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import ROOT, triad
from live_mer import config as configmod
from live_mer.estimate import Estimate
from osc_receiver import Receiver, free_udp_port, messages, wait_until


def live_mer(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "live_mer", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def song(tmp_path):
    sr = 44100
    x = np.concatenate([triad(57, True, 3.0, sr), triad(64, False, 3.0, sr)])
    path = tmp_path / "song.wav"
    sf.write(path, x, sr)
    return path


def test_listen_file_sends_osc_in_real_time(tiny_model_path, song):
    rx = Receiver()
    try:
        t0 = time.monotonic()
        r = live_mer("listen", "--file", song, "--osc", f"127.0.0.1:{rx.port}", "--model", tiny_model_path,
                     "--provider", "cpu", "--prefix", "/vj")
        took = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert took >= 5.5  # paced in real time: a 6 s file takes 6 s
        assert rx.wait_for(20)
        *frames, last = rx.bundles()
        assert list(messages(last)) == ["/vj/status/stopped"]  # the visuals hear that the file ended
        assert messages(frames[-1])["/vj/chord"].params[0] == "E:maj"
        assert "CPUExecutionProvider" in r.stderr
        assert f"127.0.0.1:{rx.port} sent {len(frames)} errors 0" in r.stderr
        assert "V +" in r.stdout or "V -" in r.stdout  # the live line
    finally:
        rx.close()


def test_listen_plays_a_file_whose_name_is_not_utf8(tiny_model_path, song):
    """A file name that is not valid UTF-8 (a Latin-1 "café") ended `listen --file` in a traceback: soundfile
    encodes a str name strictly. It plays, and is named with its escape."""
    odd = song.with_name(os.fsdecode(b"caf\xe9.wav"))
    try:
        song.rename(odd)
    except OSError:
        pytest.skip("this file system refuses names that are not valid UTF-8")
    rx = Receiver()
    try:
        r = live_mer("listen", "--file", odd, "--duration", "2", "--quiet", "--osc", f"127.0.0.1:{rx.port}",
                     "--model", tiny_model_path)
        assert r.returncode == 0 and "caf\\udce9.wav @ 44100 Hz" in r.stderr, r.stderr
        assert rx.wait_for(2)
    finally:
        rx.close()


def test_analyze_prints_a_name_that_is_not_utf8_on_a_strict_terminal(tiny_model_path, song, tmp_path):
    """On a terminal whose encoding is strict UTF-8 (a real en_US.UTF-8 locale) printing such a name raised
    UnicodeEncodeError after the results were written: it is printed escaped."""
    odd = song.with_name(os.fsdecode(b"caf\xe9.wav"))
    try:
        song.rename(odd)
    except OSError:
        pytest.skip("this file system refuses names that are not valid UTF-8")
    r = live_mer("analyze", odd, "--out", tmp_path / "out", "--model", tiny_model_path,
                 env={"PYTHONIOENCODING": "utf-8:strict"})
    assert r.returncode == 0 and "caf\\udce9.wav" in r.stdout + r.stderr, r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_listen_file_says_a_folder_is_a_folder(tmp_path, tiny_model_path):
    """`listen --file FOLDER` said "no such file" of a folder that is there: it says what it is and what takes
    folders. (A file it may not read says so too: test_batch, test_an_unreadable_folder_or_file_...)"""
    r = live_mer("listen", "--file", tmp_path, "--duration", "1", "--quiet", "--model", tiny_model_path)
    assert r.returncode == 2 and f"error: {tmp_path}: is a folder, not an audio file" in r.stderr, r.stderr
    assert "`live-mer analyze` takes folders" in r.stderr
    r = live_mer("listen", "--file", tmp_path / "gone.wav", "--duration", "1", "--quiet", "--model", tiny_model_path)
    assert r.returncode == 2 and f"error: {tmp_path / 'gone.wav'}: no such file" in r.stderr, r.stderr


def test_listen_demo_runs_and_stops_at_duration(tiny_model_path):
    rx = Receiver()
    try:
        r = live_mer("listen", "--demo", "--duration", "4", "--osc", f"127.0.0.1:{rx.port}", "--model",
                     tiny_model_path)
        assert r.returncode == 0, r.stderr
        assert "demo" in r.stderr
        assert rx.wait_for(5)
    finally:
        rx.close()
    # Into a log file (no terminal), as a service runs it: the lines say when they happened.
    stamped = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
    assert stamped.match(r.stderr.splitlines()[0]) and "live_mer" in r.stderr.splitlines()[0]
    assert stamped.match([line for line in r.stderr.splitlines() if " estimates; " in line][-1])
    assert r.stdout.strip() and all(stamped.match(line) for line in r.stdout.splitlines())
    for bad in ("-1", "nan", "0"):
        r = live_mer("listen", "--demo", "--duration", bad, "--model", tiny_model_path)
        assert r.returncode == 2 and f"--duration {float(bad)} is not allowed" in r.stderr, r.stderr


def test_a_shorter_hop_sends_estimates_more_often(tiny_model_path, song):
    """--hop 0.1: bundles about every 0.1 s (4 frames, 0.093 s) instead of once per model hop."""
    rx = Receiver()
    try:
        r = live_mer("listen", "--file", song, "--hop", "0.1", "--osc", f"127.0.0.1:{rx.port}", "--model",
                     tiny_model_path, "--quiet")
        assert r.returncode == 0, r.stderr
        assert "hop 0.093 s" in r.stderr
        assert rx.wait_for(50)
        frames = rx.bundles()[:-1]  # (the last is /status/stopped)
        assert 55 <= len(frames) <= 70  # 6 s / 0.093 s
        levels = [messages(b)["/mer/level"].params[0] for b in frames]
        assert all(np.isfinite(levels))
    finally:
        rx.close()


def test_a_hop_the_model_refuses_is_found_by_config_check_and_named_as_the_files(tmp_path):
    """The allowed hops depend on the model (one feature frame .. its window): `config --check` loads the
    model to check them, `listen` names the file's key, and the lowest hop the message prints is accepted."""
    path = tmp_path / "show.toml"
    path.write_text("[analysis]\nhop_s = 10.0\n")
    r = live_mer("config", "--check", path)
    assert r.returncode == 2 and f"{path}: analysis.hop_s: hop 10.0 s is not allowed" in r.stderr, r.stderr
    r = live_mer("listen", "--demo", "--config", path, "--duration", "1")
    assert r.returncode == 2 and f"{path}: analysis.hop_s: hop 10.0 s" in r.stderr and "--hop" not in r.stderr
    lowest = r.stderr.split("else ")[1].split("..")[0]
    r = live_mer("listen", "--demo", "--hop", lowest, "--duration", "1", "--quiet")
    assert r.returncode == 0 and "hop 0.023 s" in r.stderr, r.stderr


def test_sending_to_a_port_nobody_listens_on_says_so(tiny_model_path):
    port = free_udp_port()  # closed: the kernel refuses the datagrams, the run goes on
    r = live_mer("listen", "--demo", "--duration", "5", "--osc", f"127.0.0.1:{port}", "--model", tiny_model_path)
    assert r.returncode == 0, r.stderr
    assert "nothing is listening on that port" in r.stderr
    # ... said while running (once), not only in the summary at the end
    assert r.stderr.count(f"OSC 127.0.0.1:{port}: connection refused") == 1, r.stderr
    assert "listening now" not in r.stderr  # every other send succeeds on a refused port: no false recovery


def test_a_receiver_started_late_is_noticed(tiny_model_path):
    port = free_udp_port()
    proc = subprocess.Popen([sys.executable, "-m", "live_mer", "listen", "--demo", "--duration", "8", "--quiet",
                             "--osc", f"127.0.0.1:{port}", "--model", str(tiny_model_path)],
                            stderr=subprocess.PIPE, text=True)
    rx = None
    try:
        lines = []
        for line in proc.stderr:  # wait until live_mer says nobody listens, then open the port
            lines.append(line)
            if "connection refused" in line:
                rx = Receiver(port)
                break
        rest = proc.communicate(timeout=60)[1]
        assert proc.returncode == 0, "".join(lines) + rest
        assert rx is not None, "".join(lines)
        assert f"OSC 127.0.0.1:{port}: a receiver is listening now" in rest
        assert "(refused until a receiver opened the port)" in rest
        assert rx.wait_for(5)
    finally:
        proc.kill()
        if rx is not None:
            rx.close()


def test_receiver_notices_report_changes_only():
    from live_mer.cli import _receiver_notices

    state: dict = {}
    stat = lambda refused: [{"destination": "d", "refused": refused}]  # noqa: E731
    assert _receiver_notices(state, stat(False)) == []
    assert _receiver_notices(state, stat(True)) == [
        "OSC d: connection refused: nothing is listening on that port yet; start the receiver (live_mer keeps sending)"]
    assert _receiver_notices(state, stat(True)) == []  # still refused: no repeat
    assert _receiver_notices(state, stat(False)) == ["OSC d: a receiver is listening now"]
    assert _receiver_notices(state, stat(False)) == []


def test_a_terminal_full_for_a_moment_loses_a_line_not_the_rest():
    """A non-blocking terminal that is full answers EAGAIN: the first such error pointed stdout at /dev/null for
    the rest of the show."""
    from live_mer.cli import _Forgiving

    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    os.set_blocking(read_end, False)
    stream = _Forgiving(open(write_end, "w", buffering=1))
    try:
        for _ in range(20000):  # until the pipe is full (64 KiB) and then some
            stream.write("x" * 63 + "\n")
        drained = b""
        while chunk := os.read(read_end, 1 << 16) if _readable(read_end) else b"":
            drained += chunk
        assert len(drained) >= 1 << 16
        stream.write("after\n")
        stream.flush()
        assert _readable(read_end) and os.read(read_end, 1 << 16).endswith(b"after\n")
    finally:
        with contextlib.suppress(OSError):
            stream._stream.close()
        os.close(read_end)


def _readable(fd: int) -> bool:
    import select

    return bool(select.select([fd], [], [], 0.5)[0])


def test_ctrl_c_while_the_libraries_load_is_a_stop_not_a_traceback():
    """Ctrl-C in the first second (scipy, numba and onnxruntime loading; longer on a first run) printed a
    24-line traceback. The interrupt is raised here by an import hook at the moment ``live_mer.cli`` loads."""
    script = ("import runpy, sys\n"
              "class Interrupt:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name == 'live_mer.cli':\n"
              "            raise KeyboardInterrupt\n"
              "sys.meta_path.insert(0, Interrupt())\n"
              "if sys.argv[1] == 'module':\n"
              "    runpy.run_module('live_mer', run_name='__main__')\n"
              "else:\n"
              "    from importlib.metadata import entry_points\n"
              "    (command,) = [e for e in entry_points(group='console_scripts') if e.name == 'live-mer']\n"
              "    command.load()()\n")
    for how in ("module", "live-mer"):  # python -m live_mer, and the command run.sh starts
        r = subprocess.run([sys.executable, "-c", script, how], capture_output=True, text=True, timeout=60)
        assert r.returncode == 130 and "Traceback" not in r.stderr, (how, r.returncode, r.stderr)


def test_a_closed_terminal_stops_listen_as_ctrl_c_does(tiny_model_path, tmp_path):
    """Closing the terminal window (or an ssh session dropping) sends SIGHUP, which killed listen at once: the
    visuals never got /status/stopped and kept the last frame, and the summary was lost. It stops as on
    SIGINT/SIGTERM now; under nohup (SIGHUP ignored) it runs on."""
    rx = Receiver()
    record = tmp_path / "show.csv"
    try:
        cmd = [sys.executable, "-m", "live_mer", "listen", "--demo", "--model", str(tiny_model_path), "--quiet",
               "--osc", f"127.0.0.1:{rx.port}", "--record", str(record)]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert rx.wait_for(2, timeout=60)
        p.send_signal(signal.SIGHUP)
        _, err = p.communicate(timeout=30)
        assert p.returncode == 0 and "Traceback" not in err, (p.returncode, err)
        assert re.search(r"recorded [1-9]\d* estimates", err), err
        assert wait_until(lambda: any(b"/mer/status/stopped" in d for d in rx.datagrams)), "no /status/stopped"
        nohup = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
        sent = len(rx.datagrams)
        assert rx.wait_for(sent + 2, timeout=60)
        nohup.send_signal(signal.SIGHUP)
        assert rx.wait_for(sent + 4, timeout=10) and nohup.poll() is None  # ignored: it goes on
        nohup.send_signal(signal.SIGTERM)
        assert nohup.wait(timeout=30) == 0
        nohup.communicate()
    finally:
        rx.close()


def test_listen_goes_on_when_its_terminal_output_cannot_be_written(tiny_model_path):
    """`live-mer listen | head -1` closed the pipe after one line and listen died of BrokenPipeError; a log
    on a full disk (`2>> show.log`) stopped it at its first line. The lines are for people: the analysis
    and its OSC go on, and the run ends as it would have."""
    rx = Receiver()
    try:
        cmd = [sys.executable, "-m", "live_mer", "listen", "--demo", "--duration", "4", "--model", str(tiny_model_path),
               "--osc", f"127.0.0.1:{rx.port}"]
        head = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert head.stdout.readline()  # the first live line, then the reader goes away
        head.stdout.close()
        _, err = head.communicate(timeout=120)
        assert head.returncode == 0 and "Traceback" not in err, err
        assert re.search(r"\d+ estimates; .*127\.0\.0\.1:\d+ sent \d+ errors 0", err), err
        sent = len(rx.datagrams)
        with open("/dev/full", "w") as full:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=full, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.count("V ") >= 2, r.stdout  # the live lines went on
        assert len(rx.datagrams) > sent + 4  # and so did the OSC
    finally:
        rx.close()


def test_listen_and_analyze_run_with_their_terminal_output_closed_from_the_start(tiny_model_path, song, tmp_path):
    """A stream closed before Python starts (`live-mer listen ... >&-`, a launcher that closes it) is None in
    sys: listen stopped with an AttributeError traceback before the audio, its recording left empty, and
    analyze and config --example crashed at their first line. Its lines are dropped, as after a write error."""
    def closed(*args, fds=(1,)):  # run live-mer with these file descriptors closed
        return subprocess.run([sys.executable, "-m", "live_mer", *map(str, args)], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120,
                              preexec_fn=lambda: [os.close(fd) for fd in fds])

    record = tmp_path / "show.csv"
    r = closed("listen", "--demo", "--duration", "3", "--model", tiny_model_path, "--osc", "127.0.0.1:9",
               "--record", record)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert re.search(r"recorded [1-9]\d* estimates", r.stderr) and len(record.read_text().splitlines()) > 1
    assert closed("listen", "--demo", "--duration", "2", "--model", tiny_model_path, "--osc", "127.0.0.1:9",
                  "--quiet", fds=(1, 2)).returncode == 0
    r = closed("analyze", song, "--json", tmp_path / "a.json", "--model", tiny_model_path, "--jobs", "1")
    assert r.returncode == 0 and "1 analysed" in r.stderr, r.stderr
    assert closed("config", "--example").returncode == 0


def test_a_file_too_short_for_one_estimate_is_named_in_the_summary(tiny_model_path, tmp_path):
    sf.write(tmp_path / "blip.wav", np.full(2205, 0.1, np.float32), 22050)  # 0.1 s; an estimate needs a hop
    r = live_mer("listen", "--file", tmp_path / "blip.wav", "--model", tiny_model_path, "--osc", "127.0.0.1:9",
                 "--quiet")
    assert r.returncode == 0 and "0 estimates" in r.stderr
    assert re.search(r"blip\.wav ended before the first estimate: it needs 0\.\d\d s of audio", r.stderr), r.stderr


def test_a_file_stopped_before_its_first_estimate_is_not_said_to_have_ended(tiny_model_path, tmp_path):
    sf.write(tmp_path / "long.wav", np.full(5 * 22050, 0.1, np.float32), 22050)  # 5 s; --duration stops it first
    r = live_mer("listen", "--file", tmp_path / "long.wav", "--hop", "1.9", "--duration", "0.5", "--model",
                 tiny_model_path, "--osc", "127.0.0.1:9", "--quiet")
    assert r.returncode == 0 and "0 estimates" in r.stderr, r.stderr
    assert "ended before the first estimate" not in r.stderr, r.stderr


def test_the_summary_says_why_a_destination_got_nothing(tiny_model_path):
    r = live_mer("listen", "--demo", "--duration", "4", "--osc", "no-such-host.invalid:9000", "--model",
                 tiny_model_path, "--quiet")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if "no-such-host.invalid:9000 sent 0" in x)
    assert "dropped" in line and "cannot resolve host" in line, r.stderr


def test_analyze_writes_contract_and_reports_bad_files(tiny_model_path, song, tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"\x00" * 1000)
    out = tmp_path / "out.json"
    r = live_mer("analyze", song, bad, "--json", out, "--model", tiny_model_path)
    assert r.returncode == 1  # one file failed...
    data = json.loads(out.read_text())
    assert [d["path"] for d in data] == [str(song), str(bad)]  # ...and the other was still analysed
    assert data[0]["summary"]["key"] in ("A minor", "E major", "C major")
    assert "error" in data[1] and "bad.mp3" in r.stderr


def test_analyze_says_which_output_it_could_not_write_and_writes_the_others(tiny_model_path, song, tmp_path):
    """--json and --csv are written at the end: a write error there (a full disk: /dev/full) was a traceback
    that lost every result, and a failed --json skipped the summary CSV too. Each output is written on its own,
    through a temporary file renamed over it (an earlier file stays whole); one that fails is a one-line error
    naming it, the exit status 2."""
    def analyze(*args):
        r = live_mer("analyze", song, *args, "--model", tiny_model_path, "--jobs", "1")
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        return r.stderr.splitlines()

    out = tmp_path / "out"
    assert analyze("--out", out, "--json", "/dev/full")[-1] == "error: /dev/full: not written (No space left on device)"
    assert len((out / "summary.csv").read_text().splitlines()) == 2 and (out / "song.wav.json").exists()
    assert analyze("--json", tmp_path / "all.json", "--csv", "/dev/full")[-1] == ("error: /dev/full: not written "
                                                                                 "(No space left on device)")
    assert json.loads((tmp_path / "all.json").read_text())[0]["path"] == str(song)
    (tmp_path / "all.json").write_text("earlier")
    (tmp_path / "all.json.tmp").mkdir()  # where the JSON is written before it replaces all.json: cannot be
    lines = analyze("--json", tmp_path / "all.json", "--csv", tmp_path / "all.csv")
    assert lines[-1] == f"error: {tmp_path / 'all.json'}: not written (Is a directory)", lines
    assert (tmp_path / "all.json").read_text() == "earlier" and "; summary " in lines[-2]
    assert len((tmp_path / "all.csv").read_text().splitlines()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.csv", "all.json", "all.json.tmp", "out", "song.wav"]


def test_analyze_never_writes_over_an_input_or_an_audio_file(tiny_model_path, song, tmp_path):
    """`analyze --json a.wav b.wav` (--json taken for a flag like --plot) wrote JSON over a.wav; a --csv naming
    an input wrote CSV over it. Any output path that is an input (also by another name: a link) or an
    existing audio file is refused, naming the flag, before anything is analysed or written."""
    other = tmp_path / "other.wav"
    other.write_bytes(song.read_bytes())
    audio = song.read_bytes()
    out = tmp_path / "o"
    link = tmp_path / "link.json"
    link.symlink_to(song)
    for args, needle in [
        (("--json", song, other), f"--json {song}: that is an existing audio file; --json takes the path of the "
                                  "JSON file to write"),
        ((other, song, "--out", out, "--csv", other), f"--csv {other}: that is an input audio file; --csv takes "
                                                      "the path of the summary CSV to write"),
        ((song, "--json", link), f"--json {link}: that is an input file"),
        ((song, "--out", other), f"--out {other}: that is an existing audio file; --out takes a folder"),
    ]:
        r = live_mer("analyze", *args, "--model", tiny_model_path, "--jobs", "1")
        assert r.returncode == 2 and needle in r.stderr, r.stderr
        assert song.read_bytes() == audio and other.read_bytes() == audio and not out.exists()


def test_analyze_refuses_two_outputs_on_one_file(tiny_model_path, song, tmp_path):
    """`--json X --csv X` exited 0 with only the CSV kept; a --json (or --csv) naming --out's summary CSV or a
    track's own result there wrote one over the other. Refused before anything is analysed or written, the
    paths compared resolved; outputs that do not collide still run."""
    out = tmp_path / "out"
    same = tmp_path / "all"
    (tmp_path / "sub").mkdir()
    for args, needle in [
        (("--json", same, "--csv", tmp_path / "sub" / ".." / "all"),
         f"--csv {tmp_path / 'sub' / '..' / 'all'}: --json {same} writes that file too"),
        (("--out", out, "--json", out / "summary.csv"), f"--json {out / 'summary.csv'}: --out {out} writes its "
                                                        "summary CSV there"),
        (("--out", out, "--json", out / "song.wav.json"), f"--out {out} writes the result of {song} there"),
        (("--out", out, "--csv", out / "song.wav.json", "--plot"), f"--out {out} writes the result of {song} there"),
    ]:
        r = live_mer("analyze", song, *args, "--model", tiny_model_path, "--jobs", "1")
        assert r.returncode == 2 and needle in r.stderr and "give each output its own path" in r.stderr, r.stderr
        assert not out.exists() and not same.exists()
    r = live_mer("analyze", song, "--out", out, "--json", out / "all.json", "--csv", out / "summary.csv",
                 "--model", tiny_model_path, "--jobs", "1")
    assert r.returncode == 0, r.stderr
    assert len(json.loads((out / "all.json").read_text())) == 1 and (out / "song.wav.json").exists()
    r = live_mer("analyze", song, "--json", "/dev/null", "--csv", "/dev/null", "--model", tiny_model_path)
    assert r.returncode == 0, r.stderr  # a device is not a file two outputs can spoil


def test_devices_lists_or_says_none():
    r = live_mer("devices")
    assert r.returncode == 0 and r.stdout.startswith("Input devices:")


def test_unknown_device_error_lists_devices(tiny_model_path):
    r = live_mer("listen", "--device", "definitely-not-a-device", "--model", tiny_model_path)
    assert r.returncode == 2
    assert "definitely-not-a-device" in r.stderr and "available input devices" in r.stderr


def test_missing_model_is_a_clear_error():
    r = live_mer("listen", "--demo", "--model", "nonexistent_model", "--duration", "1")
    assert r.returncode == 2 and "nonexistent_model" in r.stderr and "missing" in r.stderr


def test_config_example_round_trips_and_bad_keys_are_named(tmp_path, tiny_model_path):
    r = live_mer("config", "--example")
    assert r.returncode == 0
    path = tmp_path / "live_mer.toml"
    path.write_text(r.stdout)
    example = configmod.load(path)
    assert example.outputs == configmod.Config().outputs  # the example documents the defaults
    assert set(example.presets) == {"club", "ambient"}
    assert example.presets["ambient"].muted == {"onset"}
    path.write_text(r.stdout.replace("prefix =", "prefx ="))
    r = live_mer("listen", "--config", path, "--model", tiny_model_path, "--demo", "--duration", "1")
    assert r.returncode == 2 and "'osc.prefx'" in r.stderr and "prefix" in r.stderr


def test_the_terminal_line_shows_the_key_with_its_camelot_code():
    from live_mer.cli import format_line

    e = Estimate(t=42.5, valence=0.41, arousal=0.63, quadrant="Q1", chord="D:maj", chord_confidence=0.97,
                 key="D major", key_camelot="10B", loudness_db=-14.2, latency_ms=1.1)
    assert format_line(e).split() == ["42.5s", "V", "+0.41", "A", "+0.63", "Q1", "D:maj", "0.97", "D", "major", "10B",
                                      "-14.2", "dBFS", "ovf", "0", "1.1", "ms"]  # the README's example line
    assert " key ? " in format_line(Estimate(t=1.0, valence=0.0, arousal=0.0))


@pytest.mark.parametrize("text,needle", [
    ("[sources]\n", "unknown section or key [sources]"),
    ("[source]\nsamplerate = 4000\n", "source.samplerate"),
    ("[source]\nchannels = 'two'\n", "source.channels must be an integer"),
    ("[model]\nprovider = 'tpu'\n", "model.provider"),
    ("[osc]\ndestinations = ['nohost']\n", "osc.destinations"),
    ("[osc]\ndestinations = 'a:1'\n", "osc.destinations must be a list"),
    ("[source]\nfile = 'x.wav'\ndemo = true\n", "at most one"),
    ("[analysis]\nsmoothing_s = -1\n", "analysis.smoothing_s"),
    ("not toml [", "not valid TOML"),
    ("[[osc.destination]]\nport = 9000\nrate_hz = 500.0\n", "rate_hz"),
    ("[[osc.destination]]\nhots = 'x'\n", "unknown key 'osc.destination[0].hots'"),
    ("[outputs.valence]\nattack = 3.0\n", "unknown key 'outputs.valence.attack'"),
    ("[outputs.valence]\nattack_ms = -3.0\n", "attack_ms must be 0..600000"),
    ("[outputs]\nmuted = ['everything']\n", "outputs.muted: unknown output 'everything'"),
    ("[presets.club.tempo]\nattack_ms = 1.0\n", "unknown key 'presets.club.tempo'"),
    ("preset = 'club'\n", "preset = 'club' is not allowed"),
    ("[record]\npath = 'x.txt'\n", "record.path"),
    ("[[osc.destination]]\nhost = '192.168.1.300'\nport = 9000\n", "not an IPv4 address"),
    ("[[osc.destination]]\nhost = ''\nport = 9000\n", "not a host name or IP address"),
    ("[analysis]\nhop_s = -0.5\n", "analysis.hop_s"),
    ("[source]\nblocksize = 100000000\n", "source.blocksize = 100000000 is not allowed: 0 (automatic) or 1..65536"),
    ("[control]\nport = 65536\n", "control.port = 65536 is not allowed: 1..65535"),
    # shaping an output cannot apply (they used to be accepted and ignored)
    ("[outputs.chord]\nattack_ms = 150.0\n",
     "outputs.chord.attack_ms: chord is a label; it takes hold_ms/hysteresis only"),
    ("[outputs.valence]\nhold_ms = 300.0\n",
     "outputs.valence.hold_ms: valence is a value; it takes attack_ms/release_ms only"),
    ("[presets.club.key]\nrelease_ms = 1.0\n", "presets.club.key.release_ms: key is a label"),
    ("[outputs.level]\nhysteresis = 0.1\n", "outputs.level.hysteresis: level is a value"),
    ("[outputs.chord]\nattack = 1.0\n", "allowed in [outputs.chord]: hold_ms, hysteresis"),
    # a destination on the control port would feed the output back in as control messages
    ("[osc]\ndestinations = ['127.0.0.1:9001']\n[control]\nenabled = true\n",
     "osc.destinations 127.0.0.1:9001 is the control port (control.host '127.0.0.1', control.port 9001"),
    ("[[osc.destination]]\nhost = 'localhost'\nport = 7000\n[control]\nenabled = true\nhost = '0.0.0.0'\nport = 7000\n",
     "osc.destination[0] localhost:7000 is the control port"),
    # one receiver twice with the same settings got every bundle twice (each key change announced twice)
    ("[osc]\ndestinations = ['127.0.0.1:9000', '10.0.0.5:9000', '127.0.0.1:9000']\n",
     "osc.destinations lists 127.0.0.1:9000 twice"),
    ("[osc]\ndestinations = ['10.0.0.5:7000']\n[[osc.destination]]\nhost = '10.0.0.5'\nport = 7000\n",
     "osc.destinations and osc.destination[0] are the same destination, 10.0.0.5:7000 with the same settings"),
])
def test_config_errors_name_the_key(tmp_path, text, needle):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(configmod.ConfigError, match=__import__("re").escape(needle)):
        configmod.load(path)


@pytest.mark.parametrize("raw,needle", [
    (b"\xff\xfe[\x00s\x00", "saved as UTF-16"),
    (b"[source]\nfile = 'caf\xe9.wav'\n", "not UTF-8 text (byte 0xe9 on line 2)"),
])
def test_config_files_in_other_encodings_are_named(tmp_path, raw, needle):
    path = tmp_path / "c.toml"
    path.write_bytes(raw)
    with pytest.raises(configmod.ConfigError, match=__import__("re").escape(f"{path}: {needle}")):
        configmod.load(path)
    path.write_bytes(b"\xef\xbb\xbf[source]\ndemo = true\n")  # UTF-8 with the BOM Notepad writes: fine
    assert configmod.load(path).source.demo


def test_shaping_keys_in_the_file_are_those_the_control_port_takes():
    """The file accepts exactly the shaping the control port can set: smoothing (attack/release) on the
    outputs /control/smoothing takes, hold/hysteresis on those /control/hold takes; quadrant takes both."""
    from live_mer.control import Controller, ControlError
    from live_mer.outputs import DEFAULT_SHAPES, OutputSettings

    ctl = Controller(lambda: OutputSettings(), lambda s: None, {})
    for name in DEFAULT_SHAPES:
        for keys, address in ((("attack_ms", "release_ms"), "/mer/control/smoothing"),
                              (("hold_ms", "hysteresis"), "/mer/control/hold")):
            try:
                ctl.handle(address, (name, 100.0, 0.5))
                control = True
            except ControlError:
                control = False
            try:
                configmod.from_dict({"outputs": {name: dict.fromkeys(keys, 0.5)}})
                config = True
            except configmod.ConfigError:
                config = False
            assert config == control, (name, keys)
    assert configmod.from_dict({"outputs": {"quadrant": {"attack_ms": 1.0, "hold_ms": 2.0}}})


def test_destinations_beside_the_control_port_are_fine():
    ok = {"osc": {"destinations": ["127.0.0.1:9001"]}, "control": {"enabled": False}}
    assert configmod.from_dict(ok)  # no control port: nothing to collide with
    assert configmod.from_dict({"osc": {"destinations": ["127.0.0.1:9002", "10.0.0.5:9001"]},
                                "control": {"enabled": True}})  # another port; another machine
    two_streams = [{"host": "10.0.0.5", "port": 7000, "outputs": ["va"], "rate_hz": 60.0},
                   {"host": "10.0.0.5", "port": 7000, "outputs": ["chord", "key"], "bundle": False}]
    assert configmod.from_dict({"osc": {"destination": two_streams}})  # one receiver, two different streams


def test_relative_paths_in_a_config_are_beside_the_file(tmp_path, monkeypatch):
    room = tmp_path / "room"
    room.mkdir()
    (room / "room.toml").write_text("[source]\nfile = 'room.flac'\n[record]\npath = 'logs/show.jsonl'\n"
                                    "[model]\nname = 'models/custom.onnx'\n")
    monkeypatch.chdir(tmp_path)  # as a systemd service runs it: from another working directory
    cfg = configmod.load("room/room.toml")
    assert Path(cfg.source.file) == room / "room.flac" and Path(cfg.record.path) == room / "logs/show.jsonl"
    assert Path(cfg.model.name) == room / "models/custom.onnx"
    (room / "room.toml").write_text("[source]\nfile = '/srv/a.flac'\n[model]\nname = 'live_mer_student'\n")
    cfg = configmod.load("room/room.toml")
    assert cfg.source.file == "/srv/a.flac" and cfg.model.name == "live_mer_student"  # absolute; a name


def test_start_up_problems_of_an_installation_are_named_and_leave_nothing(tmp_path, tiny_model_path, song):
    """A second instance on a busy control port leaves no empty recording; a recording under a file names
    record.path; a recording folder that does not exist yet is made; config --check finds a missing file."""
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    try:
        rec = tmp_path / "second.csv"
        r = live_mer("listen", "--file", song, "--model", tiny_model_path, "--osc", "127.0.0.1:9",
                     "--control", busy.getsockname()[1], "--record", rec, "--duration", "1")
        assert r.returncode == 2 and "control port" in r.stderr and not rec.exists(), r.stderr
    finally:
        busy.close()
    (tmp_path / "afile").write_text("x")
    r = live_mer("listen", "--file", song, "--model", tiny_model_path, "--osc", "127.0.0.1:9",
                 "--record", tmp_path / "afile" / "rec.csv", "--duration", "1")
    assert r.returncode == 2 and "--record" in r.stderr and "cannot write there" in r.stderr, r.stderr
    r = live_mer("listen", "--file", song, "--model", tiny_model_path, "--osc", "127.0.0.1:9",
                 "--record", tmp_path / "logs" / "night1" / "rec.jsonl", "--duration", "1.5", "--quiet")
    assert r.returncode == 0 and (tmp_path / "logs" / "night1" / "rec.jsonl").read_text().count("\n") >= 1, r.stderr
    assert f"recording to {tmp_path / 'logs' / 'night1' / 'rec.jsonl'}" in r.stderr.splitlines()[0]  # the banner
    cfg = tmp_path / "room.toml"
    cfg.write_text("[source]\nfile = 'gone.wav'\n")
    r = live_mer("config", "--check", cfg)
    assert r.returncode == 2 and "source.file" in r.stderr and "gone.wav: no such file" in r.stderr
    for name, data in (("noise.mp3", bytes(range(256)) * 40), ("empty.wav", b"")):  # listen cannot decode these
        (tmp_path / name).write_bytes(data)
        cfg.write_text(f"[source]\nfile = '{tmp_path / name}'\n")
        r = live_mer("config", "--check", cfg)
        assert r.returncode == 2 and f"source.file {tmp_path / name}: " in r.stderr and "OK" not in r.stdout, r.stderr


def test_config_check_refuses_a_file_at_a_rate_listen_refuses(tmp_path, tiny_model_path):
    """`config --check` said OK to a 4 kHz source.file, which listen then refused at start (status 2)."""
    sf.write(tmp_path / "phone.wav", np.full(4000, 0.1, np.float32), 4000)
    cfg = tmp_path / "room.toml"
    cfg.write_text(f"[source]\nfile = 'phone.wav'\n[model]\nname = '{tiny_model_path}'\n")
    for args in (("config", "--check", cfg), ("listen", "--config", cfg, "--duration", "1", "--quiet")):
        r = live_mer(*args)
        assert r.returncode == 2 and "phone.wav: sample rate 4000 Hz is outside 8000..192000 Hz" in r.stderr, \
            (args, r.stderr)


@pytest.mark.parametrize("text,needle", [
    ("[model]\nname = 'nosuch'\n", "model 'nosuch': missing"),
    ("[model]\nname = '{corrupt}'\n", "does not match its card"),
    ("[control]\nenabled = true\nhost = 'no.such.host.invalid'\n", "control port no.such.host.invalid:9001"),
    ("[record]\npath = '{under_a_file}'\n", "record.path {under_a_file}: cannot write there"),
])
def test_config_check_finds_what_listen_refuses_at_start(tmp_path, tiny_model_path, text, needle):
    """`config --check` said OK to a missing or corrupt model (loaded only for a hop), a control host that does
    not resolve and an unwritable recording, which listen then refused: it opens what listen opens."""
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(tiny_model_path.read_bytes()[:-10])
    corrupt.with_suffix(".json").write_text(tiny_model_path.with_suffix(".json").read_text())
    (tmp_path / "afile").write_text("x")
    names = {"corrupt": corrupt, "under_a_file": tmp_path / "afile" / "rec.csv"}
    path = tmp_path / "show.toml"
    path.write_text(f"[source]\ndemo = true\n[osc]\ndestinations = []\n{text.format(**names)}"
                    + ("" if "[model]" in text else f"[model]\nname = '{tiny_model_path}'\n"))
    for args in (("config", "--check", path), ("listen", "--config", path, "--duration", "1", "--quiet")):
        r = live_mer(*args)
        assert r.returncode == 2 and needle.format(**names) in r.stderr, (args, r.stderr)


def test_config_check_leaves_no_trace_of_what_it_tried(tmp_path, tiny_model_path):
    """The check opens the recording (and the control port) as listen would, then removes what it made."""
    path = tmp_path / "show.toml"
    path.write_text(f"[model]\nname = '{tiny_model_path}'\n[record]\npath = 'logs/night1/rec.csv'\n"
                    f"[control]\nenabled = true\nport = {free_udp_port()}\n")
    r = live_mer("config", "--check", path)
    assert r.returncode == 0 and r.stdout == f"{path}: OK\n", r.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["show.toml"]


def test_config_example_and_check_together_are_refused(tmp_path):
    r = live_mer("config", "--example", "--check", tmp_path / "typo.toml")  # used to print the example, exit 0
    assert r.returncode == 2 and "--check: not allowed with argument --example" in r.stderr and not r.stdout
    r = live_mer("config")
    assert r.returncode == 2 and "one of the arguments --example --check is required" in r.stderr


def test_config_check_refuses_a_destination_on_the_control_port(tmp_path):
    path = tmp_path / "room.toml"
    path.write_text("[osc]\ndestinations = ['127.0.0.1:9001']\n[control]\nenabled = true\n")
    r = live_mer("config", "--check", path)
    assert r.returncode == 2 and "osc.destinations 127.0.0.1:9001 is the control port" in r.stderr, r.stderr
    assert "control.port 9001" in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["--demo", "--samplerate", "48000"], "--samplerate is for a sound card"),
    (["--file", "x.wav", "--channels", "2"], "--channels is for a sound card"),
    (["--demo", "--loop"], "--loop is for --file"),
])
def test_flags_that_would_be_ignored_are_refused(args, needle, capsys):
    from live_mer import cli

    assert cli.main(["listen", *args]) == 2  # before the model, the file or any output is opened
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize("source,needle", [
    ("demo = true\nsamplerate = 48000", "source.samplerate = 48000 is for a sound card; listen plays the demo"),
    ("file = 'x.wav'\nchannels = 2", "source.channels = 2 is for a sound card; listen plays source.file"),
    ("demo = true\nblocksize = 256", "source.blocksize = 256 is for a sound card"),
    ("device = 'USB'\nloop = true", "source.loop = true is for source.file"),
    ("loop = true", "source.loop = true is for source.file"),
])
def test_source_settings_in_a_file_that_listen_would_ignore_are_refused(source, needle, tmp_path, capsys):
    """The flags were refused, the same keys in a configuration file silently ignored (``config --check``
    said OK): a file played at its own rate whatever ``samplerate`` said, a sound card never looped."""
    from live_mer import cli

    path = tmp_path / "show.toml"
    path.write_text(f"[source]\n{source}\n")
    for command in (["listen", "--config", str(path), "--duration", "1", "--quiet", "--osc", "127.0.0.1:9"],
                    ["config", "--check", str(path)]):
        assert cli.main(command) == 2  # before the model, the file or any output is opened
        assert f"{path}: {needle}" in capsys.readouterr().err


def test_a_source_on_the_command_line_replaces_the_files_source_settings_with_it(tmp_path):
    """``--file`` or ``--demo`` over a file that chose a sound card drops the card's settings (they are
    not refused: the user did not give both), and the file's ``loop`` goes with its file."""
    from live_mer import cli

    path = tmp_path / "show.toml"
    path.write_text("[source]\ndevice = 'USB'\nsamplerate = 48000\nchannels = 2\nblocksize = 256\n")
    flags = cli.build_parser().parse_args(["listen", "--config", str(path), "--demo"])
    source = cli._apply_flags(configmod.load(path), flags).source
    assert (source.demo, source.device, source.samplerate, source.channels, source.blocksize) == (True, "", 0, 0, 0)
    flags = cli.build_parser().parse_args(["listen", "--config", str(path), "--device", "Other"])
    source = cli._apply_flags(configmod.load(path), flags).source
    assert (source.device, source.samplerate, source.channels, source.blocksize) == ("Other", 48000, 2, 256)
    path.write_text("[source]\nfile = 'a.wav'\nloop = true\n")
    for extra in (["--file", "b.wav"], ["--demo"]):
        source = cli._apply_flags(configmod.load(path), cli.build_parser().parse_args(
            ["listen", "--config", str(path), *extra])).source
        assert not source.loop


def test_listen_says_when_the_input_sends_samples_that_are_not_audio(tmp_path, tiny_model_path):
    """A driver sending NaN was analysed as silence and looked like a quiet room: nothing on the terminal,
    in the summary or in the input-ok flag (only ``analyze`` warned)."""
    sr = 44100
    x = triad(57, True, 3.0, sr)
    x[sr:2 * sr] = np.nan
    path = tmp_path / "broken.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    r = live_mer("listen", "--file", path, "--duration", "2.5", "--quiet", "--model", tiny_model_path, "--osc",
                 "127.0.0.1:9")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("input: samples that are not audio (NaN, infinite or beyond +-16) are arriving") == 1
    assert re.search(r"; samples not audio 441\d\d; ", r.stderr), r.stderr  # the one second of NaN, counted


def test_listen_and_analyze_say_when_the_channels_cancel_in_the_mix(tmp_path, tiny_model_path, monkeypatch, capsys):
    """A stereo input with one channel in opposite polarity (a miswired cable) cancels in the mix to mono the
    analysis hears: it read as silence, no chord, no key, with no word. listen says so when it starts and
    when it stops; analyze warns. Channels of one source, or unrelated ones, are fine."""
    from live_mer import cli

    sr = 22050
    x = triad(57, True, 4.0, sr, amp=0.3)
    cancelling, fine = tmp_path / "cancelling.wav", tmp_path / "fine.wav"
    sf.write(cancelling, np.concatenate([np.stack([x, -x], 1), np.stack([x, 0.5 * x], 1)]), sr)
    sf.write(fine, np.stack([x, 0.05 * np.random.default_rng(0).standard_normal(x.size)], 1), sr)
    monkeypatch.setattr(cli, "MIX_CHECK_S", 1.0)
    assert cli.main(["listen", "--file", str(cancelling), "--duration", "7.5", "--quiet", "--model",
                     str(tiny_model_path), "--osc", "127.0.0.1:9"]) == 0
    err = capsys.readouterr().err
    assert err.count("input: the channels cancel each other when mixed to mono (the mix loses") == 1, err
    assert err.count("input: the channels no longer cancel each other") == 1, err
    assert err.index("cancel each other when mixed") < err.index("no longer cancel")
    sf.write(cancelling, np.stack([x, -x], 1), sr)  # analyze judges the whole file
    r = live_mer("analyze", cancelling, fine, "--json", tmp_path / "all.json", "--model", tiny_model_path)
    assert r.returncode == 0, r.stderr
    warned = {Path(t["path"]).name: t.get("warning", "") for t in json.loads((tmp_path / "all.json").read_text())}
    assert "the channels cancel each other when mixed to mono" in warned["cancelling.wav"]
    assert warned["fine.wav"] == ""


def test_listen_says_how_much_audio_it_skipped_to_keep_up(tiny_model_path, monkeypatch, capsys):
    """The analysis held up for 2 s skips the audio older than max_backlog_s to stay live: that loss was
    counted (Engine.dropped_s) but never shown."""
    from live_mer import cli
    from live_mer.engine import Engine

    class HeldUp(Engine):
        def _emit(self, estimates, input_ok=True):
            if estimates and estimates[0].t > 1.0 and not getattr(self, "held", False):
                self.held = True
                time.sleep(2.0)
            super()._emit(estimates, input_ok)

    monkeypatch.setattr(cli, "Engine", HeldUp)
    assert cli.main(["listen", "--demo", "--duration", "4", "--quiet", "--model", str(tiny_model_path), "--osc",
                     "127.0.0.1:9"]) == 0
    assert re.search(r"; audio skipped to keep up [12]\.\d s; ", capsys.readouterr().err)


def test_the_notice_of_samples_that_are_not_audio_is_not_repeated_every_second():
    from live_mer.cli import INVALID_NOTICE_S, _InvalidInput

    invalid, bad = _InvalidInput(), [Estimate(t=0.0, valence=0.0, arousal=0.0, nonfinite=100)]
    assert "(100 so far)" in invalid.notice(bad, 0.0)
    assert invalid.notice(bad, 1.0) == "" and invalid.notice(bad, INVALID_NOTICE_S - 1) == ""
    assert invalid.notice(bad, INVALID_NOTICE_S) == \
        "input: 300 more samples that are not audio since the last notice (400 in all)"
    assert invalid.notice([Estimate(t=0.0, valence=0.0, arousal=0.0)], 10 * INVALID_NOTICE_S) == ""
    assert invalid.total == 400


def test_an_installation_without_a_device_fails_instead_of_playing_the_demo(tmp_path, tiny_model_path, monkeypatch,
                                                                          capsys):
    """With no device named and none there, the quick start plays the demo; a service started with a
    configuration before its sound card is up played the demo for good (OSC and recording from it, nothing
    said after the first line): it now fails with status 2, so its restart policy tries again."""
    from live_mer import cli, sources

    def no_device(*args, **kwargs):
        raise sources.SourceError("no input device found; devices: (none)")

    monkeypatch.setattr(cli, "DeviceSource", no_device)
    monkeypatch.setattr(cli, "list_input_devices", lambda: [])
    cfg = tmp_path / "room.toml"
    cfg.write_text(f"[model]\nname = '{tiny_model_path}'\n[osc]\ndestinations = ['127.0.0.1:9']\n")
    assert cli.main(["listen", "--config", str(cfg), "--quiet", "--duration", "2"]) == 2
    assert "set source.device, or source.demo = true" in capsys.readouterr().err
    assert isinstance(cli._open_source(configmod.SourceConfig()), sources.DemoSource)  # the quick start's fallback


def test_a_sound_card_that_refuses_the_settings_is_an_error_not_the_demo(monkeypatch):
    """With a default input device there, ``listen --channels 64`` (or a device whose default rate is beyond
    192 kHz) said "No input device found" and played the demo piece instead of saying what the device refused."""
    from live_mer import cli, sources

    devices = [{"index": 0, "name": "USB Audio", "hostapi": "ALSA", "channels": 2, "default_samplerate": 384000.0}]
    for module in (sources, cli):
        monkeypatch.setattr(module, "list_input_devices", lambda: devices)
    with pytest.raises(sources.SourceError, match=r"'USB Audio' has 2 channels, 4 asked"):
        cli._open_source(configmod.SourceConfig(channels=4, samplerate=48000))
    default_rate = r"'USB Audio': sample rate 384000 Hz is outside 8000\.\.192000 Hz \(its default rate"
    with pytest.raises(sources.SourceError, match=default_rate):
        cli._open_source(configmod.SourceConfig())


def test_flags_override_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[osc]\ndestinations = ['10.0.0.1:7000']\nprefix = '/a'\n")
    cfg = configmod.override(configmod.load(path), "osc", prefix="/b")
    assert cfg.osc.prefix == "/b" and cfg.osc.destinations == ("10.0.0.1:7000",)


def test_headless_show_from_config_with_record_and_control(tmp_path, tiny_model_path, song):
    """A config-driven run: 30 Hz destination with unipolar values, a recording, a control port."""
    rx = Receiver()
    rec = tmp_path / "show.jsonl"
    cfg = tmp_path / "show.toml"
    cfg.write_text(f"""
[source]
file = "{song}"
[model]
name = "{tiny_model_path}"
[osc]
destinations = []
[[osc.destination]]
host = "127.0.0.1"
port = {rx.port}
rate_hz = 30.0
unipolar = ["va"]
outputs = ["va", "chord"]
[presets.calm.valence]
attack_ms = 3000.0
[control]
enabled = true
port = {free_udp_port()}
[record]
path = "{rec}"
""")
    try:
        r = live_mer("listen", "--config", cfg, "--quiet", "--preset", "calm")
        assert r.returncode == 0, r.stderr
        assert "control port: 127.0.0.1:" in r.stderr and "preset calm" in r.stderr
        bundles = rx.bundles()
        assert 120 <= len(bundles) <= 200  # ~30 Hz for ~6 s
        for b in bundles:
            m = messages(b)
            assert set(m) == {"/mer/va", "/mer/chord", "/mer/chord/ext"}
            assert all(0.0 <= x <= 1.0 for x in m["/mer/va"].params)
        lines = rec.read_text().splitlines()
        assert len(lines) >= 10 and "valence" in json.loads(lines[0])
    finally:
        rx.close()


def test_destination_tables_replace_the_default_and_osc_replaces_the_file(tmp_path, tiny_model_path):
    table, flag = Receiver(), Receiver()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[[osc.destination]]\nport = {table.port}\n")
    try:
        assert [d.label for d in configmod.load(cfg).osc.all_destinations()] == [f"127.0.0.1:{table.port}"]
        r = live_mer("listen", "--demo", "--duration", "2", "--config", cfg, "--model", tiny_model_path, "--quiet")
        assert r.returncode == 0, r.stderr
        assert f"OSC /mer to 127.0.0.1:{table.port}\n" in r.stderr and "9000" not in r.stderr
        # the first run has ended: wait for its last datagram (the stop notice) before counting them
        assert wait_until(lambda: any(b"/status/stopped" in d for d in table.datagrams))
        got = len(table.datagrams)
        r = live_mer("listen", "--demo", "--duration", "2", "--config", cfg, "--osc", f"127.0.0.1:{flag.port}",
                     "--model", tiny_model_path, "--quiet")
        assert r.returncode == 0, r.stderr
        assert flag.wait_for(1)
        time.sleep(0.2)
        assert len(table.datagrams) == got  # the file's table got nothing from the second run
    finally:
        table.close()
        flag.close()


def test_the_example_configuration_lists_every_key():
    import dataclasses
    import tomllib

    from live_mer.outputs import DEFAULT_SHAPES

    example = tomllib.loads(configmod.EXAMPLE)
    assert "preset" in example
    for section in ("source", "model", "analysis", "control", "record"):
        cls = type(getattr(configmod.Config(), section))
        assert {f.name for f in dataclasses.fields(cls)} == set(example[section]), section
    assert {f.name for f in dataclasses.fields(configmod.OscConfig)} - {"destination"} == set(example["osc"])
    for name, shape in DEFAULT_SHAPES.items():  # every shaping default that is not zero, and every label's hold
        written = example["outputs"][name]
        for key, value in dataclasses.asdict(shape).items():
            if value or (key in ("hold_ms", "hysteresis") and shape.hold_ms) or (key == "attack_ms" and shape.release_ms):
                assert written.get(key) == value, f"outputs.{name}.{key}"


@pytest.mark.parametrize("args,needle", [
    (("listen", "--file", "/nonexistent/set.flac"), "/nonexistent/set.flac: no such file"),
    (("listen", "--demo", "--prefix", "mer"), "error: --prefix: OSC prefix 'mer' must start with '/'"),
    (("listen", "--demo", "--control", "70000"), "error: --control 70000 is not allowed: 1..65535"),
    (("listen", "--demo", "--record", "show.txt"), "error: --record 'show.txt' is not allowed"),
    (("listen", "--demo", "--smoothing", "-1"), "error: --smoothing -1.0 is not allowed"),
    (("listen", "--demo", "--preset", "nosuch"), "error: --preset 'nosuch' is not allowed"),
    # any refused hop is told the model's whole range, a huge one too (it used to hear of the lower end only)
    (("listen", "--demo", "--hop", "0.001"), "--hop: hop 0.001 s is not allowed: 0 for the model's own (0.255 s), "
                                             "else 0.0233..1.99 s"),
    (("listen", "--demo", "--hop", "20"), "--hop: hop 20.0 s is not allowed"),
    (("listen", "--demo", "--hop", "1e9"), "--hop: hop 1000000000.0 s is not allowed: 0 for the model's own "
                                           "(0.255 s), else 0.0233..1.99 s"),
    (("listen", "--demo", "--osc", "osc://1.2.3.4:9000"),
     "error: --osc: OSC destination 'osc://1.2.3.4:9000': give HOST:PORT without a scheme"),
    (("listen", "--demo", "--osc", "127.0.0.1:9301", "--control", "9301"),
     "osc.destinations 127.0.0.1:9301 is the control port"),
])
def test_bad_command_lines_are_clear_errors(tiny_model_path, args, needle):
    r = live_mer(*args, "--model", tiny_model_path, "--duration", "1")
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_plot_without_matplotlib_fails_before_any_file(tmp_path, tiny_model_path, song):
    code = ("import sys; sys.modules['matplotlib'] = None; from live_mer.cli import main; "
            f"sys.exit(main(['analyze', {str(song)!r}, '--out', {str(tmp_path / 'out')!r}, '--plot', "
            f"'--model', {str(tiny_model_path)!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--plot needs matplotlib" in r.stderr, r.stderr
    # a command that works from any folder and in any install (a wheel, pipx), not a checkout's `-e '.[plot]'`
    assert f"`{sys.executable} -m pip install matplotlib`" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [("-v", "gui", "--help"), ("gui", "-v", "--help"), ("--verbose", "gui", "--help")])
def test_verbose_flag_reaches_the_monitor(args):
    r = live_mer(*args)
    assert r.returncode == 0 and "--kiosk" in r.stdout, r.stderr



def test_the_monitor_is_not_a_gui_py_of_the_working_folder(tmp_path):
    """`live-mer gui` runs `python -m gui`, which put the working folder first on the path: a gui.py there (a
    VJ's own project) ran instead of the monitor."""
    (tmp_path / "gui.py").write_text("print('not the monitor')\n")
    r = subprocess.run([sys.executable, "-m", "live_mer", "gui", "--help"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0 and "--kiosk" in r.stdout and "not the monitor" not in r.stdout, r.stdout + r.stderr

def test_a_configured_file_loops(tmp_path, tiny_model_path, song):
    cfg = tmp_path / "room.toml"
    cfg.write_text(f'[source]\nfile = "{song}"\nloop = true\n[osc]\ndestinations = []\n')
    t0 = time.monotonic()
    r = live_mer("listen", "--config", cfg, "--model", tiny_model_path, "--duration", "8", "--quiet")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 >= 8  # the 6 s file started again instead of ending the run
    assert int(r.stderr.split(" estimates")[0].split()[-1]) >= 13, r.stderr


def test_a_stream_the_sound_card_refuses_leaves_nothing_running_or_written(tmp_path, tiny_model_path, monkeypatch):
    """listen opens its outputs before the audio starts: when the start fails (PortAudio refuses the stream)
    the OSC sender, the control port and the recorder are closed again and the new recording is removed."""
    import threading

    from live_mer import analyzer, cli, sources

    def refuse(self):
        raise sources.SourceError("cannot open input device 'x' at 12345 Hz with 1 channel(s): Invalid sample rate")

    monkeypatch.setattr(sources.DemoSource, "start", refuse)
    monkeypatch.setattr(analyzer.Analyzer, "warm_up", lambda self: 0.0)
    rec = tmp_path / "night" / "show.csv"
    control = free_udp_port()
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    rc = cli.main(["listen", "--demo", "--model", str(tiny_model_path), "--provider", "cpu", "--record", str(rec),
                   "--osc", "127.0.0.1:9", "--control", str(control), "--quiet"])
    assert rc == 2
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers  # this process' Ctrl-C
    assert not rec.exists() and not rec.parent.exists()
    time.sleep(0.2)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("live_mer")]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", control))  # the control port is free again
    s.close()
