"""Batch analysis of a folder: parallel, per-file JSON, summary CSV, PNG plots, failures, resume."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import triad


@pytest.fixture
def library(tmp_path):
    sr = 22050
    lib = tmp_path / "library"
    (lib / "house").mkdir(parents=True)
    (lib / "ambient").mkdir()
    sf.write(lib / "house" / "a.wav", np.concatenate([triad(57, True, 4, sr), triad(60, False, 4, sr)]), sr)
    sf.write(lib / "house" / "b.flac", triad(62, False, 6, sr), sr)
    sf.write(lib / "ambient" / "c.ogg", triad(64, True, 5, sr), sr)
    (lib / "ambient" / "broken.mp3").write_bytes(b"ID3" + b"\x00" * 500)
    (lib / "notes.txt").write_text("not audio, ignored")
    return lib


def run(*args, prefix=()):
    # (backslashreplace: the listing on stdout holds a name that is not valid UTF-8 as its bytes, as ls does)
    return subprocess.run([*prefix, sys.executable, "-m", "live_mer", "analyze", *map(str, args)], capture_output=True,
                          text=True, errors="backslashreplace", timeout=300, env=os.environ)


def unprivileged(locked, attempt: str = "os.listdir({!r})") -> list[str]:
    """A command prefix under which ``locked`` (a folder made unreadable) cannot be listed (or ``attempt``,
    Python code given the folder, is refused): none for a user, setpriv without the powers that let root read
    and write anything; skips where that cannot be had."""
    if not hasattr(os, "geteuid"):
        pytest.skip("POSIX file permissions only")
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: root reads any folder, permissions cannot be enforced")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    probe = f"import os\ntry:\n    {attempt.format(str(locked))}\nexcept PermissionError:\n    print('denied')"
    r = subprocess.run([*prefix, sys.executable, "-c", probe], capture_output=True, text=True)
    if r.stdout != "denied\n":
        pytest.skip(f"folder permissions are not enforced here ({' '.join(prefix) or 'as this user'}: "
                    f"{r.stderr.strip() or 'the locked folder could be listed'})")
    return prefix


def test_folder_batch_with_a_corrupt_file_plots_and_resume(library, tmp_path, tiny_model_path):
    out = tmp_path / "out"
    r = run(library, "--out", out, "--plot", "--jobs", "2", "--model", tiny_model_path)
    assert r.returncode == 1, r.stderr  # one file failed...
    assert "broken.mp3" in r.stderr and "3 analysed, 0 already done, 1 failed" in r.stderr
    for rel in ("house/a.wav", "house/b.flac", "ambient/c.ogg"):  # ...the others completed
        data = json.loads((out / f"{rel}.json").read_text())
        assert data["timeline"] and -1 <= data["summary"]["valence"] <= 1
        png = out / f"{rel}.png"
        import matplotlib.image

        assert matplotlib.image.imread(png).shape[:2] == (800, 1600)
    assert not (out / "ambient" / "broken.mp3.json").exists()
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert len(rows) == 4
    by_name = {os.path.basename(r["path"]): r for r in rows}
    assert by_name["b.flac"]["key"] == "D major" and by_name["b.flac"]["camelot"] == "10B"
    assert by_name["broken.mp3"]["error"]
    assert float(by_name["a.wav"]["valence_p10"]) <= float(by_name["a.wav"]["valence_p90"])
    summary = json.loads((out / "ambient/c.ogg.json").read_text())["summary"]
    gems, tags = summary["gems"], summary["tags"]
    assert by_name["c.ogg"]["top_category"] == max(gems, key=gems.get)
    assert by_name["c.ogg"]["top_tags"] == "; ".join(sorted(tags, key=tags.get, reverse=True)[:3])
    # a second run with --resume only retries the failure
    r = run(library, "--out", out, "--resume", "--model", tiny_model_path)
    assert "0 analysed, 3 already done, 1 failed" in r.stderr
    assert len(list(csv.DictReader(open(out / "summary.csv")))) == 4


def test_plot_and_resume_need_out(library, tiny_model_path):
    r = run(library, "--plot", "--model", tiny_model_path)
    assert r.returncode == 2 and "--out" in r.stderr


def test_same_names_in_two_folders_and_foreign_json_on_resume(tmp_path, tiny_model_path):
    sr = 22050
    for crate, midi in (("crateA", 57), ("crateB", 62)):
        (tmp_path / crate).mkdir()
        sf.write(tmp_path / crate / "track01.wav", triad(midi, True, 4, sr), sr)
    out = tmp_path / "out"
    r = run(tmp_path / "crateA", tmp_path / "crateB", "--out", out, "--model", tiny_model_path)
    assert r.returncode == 0, r.stderr
    a, b = (json.loads((out / crate / "track01.wav.json").read_text()) for crate in ("crateA", "crateB"))
    assert a["path"].endswith("crateA/track01.wav") and b["path"].endswith("crateB/track01.wav")
    assert a["summary"]["key"] != b["summary"]["key"]  # two results, neither overwritten
    # --resume trusts only its own results: an empty or foreign JSON is analysed again, not a crash
    (out / "crateA" / "track01.wav.json").write_text("{}")
    (out / "crateB" / "track01.wav.json").write_bytes(b"\xff\xfe")
    r = run(tmp_path / "crateA", tmp_path / "crateB", "--out", out, "--resume", "--model", tiny_model_path)
    assert r.returncode == 0 and "2 analysed, 0 already done, 0 failed" in r.stderr, r.stderr
    assert len(list(csv.DictReader(open(out / "summary.csv")))) == 2


def test_outputs_and_options_are_checked_before_any_analysis(library, tmp_path, tiny_model_path):
    for args, needle in ((["--json", tmp_path / "no" / "all.json"], "does not exist"),
                         (["--csv", tmp_path], "is a folder"),
                         (["--smoothing", "nan"], "--smoothing nan is not allowed")):
        r = run(library, *args, "--model", tiny_model_path)
        assert r.returncode == 2 and needle in r.stderr and "analysed" not in r.stderr, r.stderr
    (tmp_path / "empty").mkdir()
    r = run(tmp_path / "empty", "--model", tiny_model_path)
    assert r.returncode == 2 and "no audio files in" in r.stderr
    sf.write(tmp_path / "blip.wav", np.zeros(100, np.float32), 22050)  # shorter than one estimate
    r = run(tmp_path / "blip.wav", "--model", tiny_model_path)
    assert r.returncode == 1 and "too short to analyse" in r.stderr
    sf.write(tmp_path / "low.wav", np.zeros(12000, np.float32), 4000)
    r = run(tmp_path / "low.wav", "--model", tiny_model_path)
    assert r.returncode == 1 and f"error: {tmp_path / 'low.wav'}: input sample rate 4000 Hz" in r.stderr


@pytest.mark.parametrize("fmt", ["mp3", "flac", "wav"])
def test_a_cut_off_file_is_analysed_with_a_warning(tmp_path, tiny_model_path, fmt):
    """A download or copy that stopped part-way: analysed as far as it decodes, with a warning. (A FLAC
    decoder that lost sync failed the file; libsndfile shortens a WAV's stated length to what is there,
    so its truncation went unnoticed.)"""
    sr = 22050
    full = tmp_path / f"full.{fmt}"
    sf.write(full, triad(57, True, 20, sr), sr, format=fmt.upper())
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    r = run(cut, "--json", tmp_path / "all.json", "--csv", tmp_path / "all.csv", "--model", tiny_model_path)
    assert r.returncode == 0, r.stderr
    assert "warning: " in r.stderr and f"cut.{fmt}" in r.stderr and "truncated" in r.stderr
    (result,) = json.loads((tmp_path / "all.json").read_text())
    assert result["duration"] < 8 and "truncated" in result["warning"]
    (row,) = csv.DictReader(open(tmp_path / "all.csv"))
    assert row["warning"] == result["warning"] and not row["error"]


def test_a_damaged_flac_is_read_up_to_the_damage_and_a_streamed_wav_is_not_called_truncated(tmp_path):
    """libsndfile drops all of a read that fails part-way: damage inside the first 65536-frame block failed
    the track ("decoding failed after 0.00 s") though seconds decoded. A WAV written to a pipe states a
    placeholder length (0xFFFFFFFF bytes), which must not read as a truncated file."""
    import struct

    from live_mer.fileanalysis import FileBlocks, open_audio, stated_seconds

    sr = 22050
    x = triad(57, True, 12, sr)
    sf.write(tmp_path / "whole.flac", x, sr)
    data = bytearray((tmp_path / "whole.flac").read_bytes())
    start = len(data) // 5  # inside the first 65536 frames (2.97 s)
    data[start:] = np.random.default_rng(1).integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    (tmp_path / "damaged.flac").write_bytes(data)
    with sf.SoundFile(tmp_path / "damaged.flac") as f:  # how far small reads get
        decodable = 0
        with pytest.raises(sf.LibsndfileError):
            while len(block := f.read(1024)):
                decodable += len(block)
    with open_audio(tmp_path / "damaged.flac") as f:
        blocks = FileBlocks(f)
        frames = sum(len(b) for b in blocks)
    assert 0 < decodable - 1024 <= frames <= decodable and "decoding failed after" in blocks.damage

    sf.write(tmp_path / "streamed.wav", x[: 10 * sr], sr, subtype="PCM_16")
    wav = bytearray((tmp_path / "streamed.wav").read_bytes())
    for at in (4, wav.index(b"data") + 4):  # the RIFF and data sizes, as a writer to a pipe leaves them
        wav[at:at + 4] = struct.pack("<I", 0xFFFFFFFF)
    (tmp_path / "streamed.wav").write_bytes(wav)
    with open_audio(tmp_path / "streamed.wav") as f:
        assert stated_seconds(f) == pytest.approx(10.0)


def test_a_file_name_that_is_not_utf8_is_analysed_and_written(tmp_path, tiny_model_path):
    """A name that is not valid UTF-8 (a Latin-1 "café"): soundfile could not open it (UnicodeEncodeError) and
    the summary CSV crashed on it with only its header written. It is analysed; the CSV (valid UTF-8) spells
    it with the escape the JSON uses, "caf\\udce9.wav", and the JSON's reader gets the name's bytes back."""
    sr = 22050
    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(lib / "good.wav", triad(57, True, 3, sr), sr)
    sf.write(lib / "tmp.wav", triad(62, False, 3, sr), sr)
    odd = lib / os.fsdecode(b"caf\xe9.wav")
    try:
        os.rename(lib / "tmp.wav", odd)
    except OSError:
        pytest.skip("this file system refuses names that are not valid UTF-8")
    out = tmp_path / "out"
    r = run(lib, "--out", out, "--json", tmp_path / "all.json", "--jobs", "1", "--model", tiny_model_path)
    assert r.returncode == 0 and "2 analysed, 0 already done, 0 failed" in r.stderr, r.stderr
    rows = list(csv.DictReader(open(out / "summary.csv", encoding="utf-8")))  # strict: all of it is UTF-8
    assert [row["path"] for row in rows] == [os.path.join(lib, "caf\\udce9.wav"), str(lib / "good.wav")]
    assert all(row["quadrant"] and row["key"] and not row["error"] for row in rows)
    results = json.loads((tmp_path / "all.json").read_text(encoding="ascii"))
    assert os.fsencode(results[0]["path"]) == os.fsencode(odd) and results[0]["summary"]["key"]
    assert json.loads((out / os.fsdecode(b"caf\xe9.wav.json")).read_text())["path"] == str(odd)


def test_an_unreadable_folder_or_file_is_a_failure_that_says_why(tmp_path, tiny_model_path):
    """rglob passed over a folder it could not list without a word: a library with a locked folder came out
    "1 analysed, 0 failed", the locked folder alone as "no audio files". Each is now a failure naming the
    folder, and the rest is analysed; a file that may not be read says so (libsndfile said "System error.")."""
    sr = 22050
    lib = tmp_path / "lib"
    for sub in ("ok", "locked"):
        (lib / sub).mkdir(parents=True)
        sf.write(lib / sub / "a.wav", triad(57, True, 3, sr), sr)
    sf.write(lib / "private.wav", triad(57, True, 3, sr), sr)
    (lib / "locked").chmod(0)
    (lib / "private.wav").chmod(0)
    try:
        prefix = unprivileged(lib / "locked")
        r = run(lib, "--csv", tmp_path / "all.csv", "--jobs", "1", "--model", tiny_model_path, prefix=prefix)
        alone = run(lib / "locked", "--model", tiny_model_path, prefix=prefix)
    finally:
        (lib / "locked").chmod(0o755)
        (lib / "private.wav").chmod(0o644)
    assert r.returncode == 1, r.stderr
    assert f"error: {lib / 'locked'}: cannot read this folder (Permission denied)" in r.stderr
    assert f"error: {lib / 'private.wav'}: cannot read it (Permission denied)" in r.stderr
    assert "1 analysed, 0 already done, 2 failed" in r.stderr
    rows = {row["path"]: row for row in csv.DictReader(open(tmp_path / "all.csv"))}
    assert rows[str(lib / "ok" / "a.wav")]["quadrant"]
    assert "cannot read this folder" in rows[str(lib / "locked")]["error"]
    assert alone.returncode == 1 and "cannot read this folder" in alone.stderr and "no audio files" not in alone.stderr


def test_an_output_linked_into_a_folder_that_is_not_writable_is_written_in_place(tmp_path, tiny_model_path):
    """--json and --csv are written through a temporary file renamed over them; where that file cannot be
    made (a link to a writable file in a folder that is not), they are written in place, as before."""
    sr = 22050
    sf.write(tmp_path / "a.wav", triad(57, True, 3, sr), sr)
    shelf = tmp_path / "shelf"
    shelf.mkdir()
    (shelf / "all.json").write_text("[]")
    (shelf / "all.json").chmod(0o666)
    (tmp_path / "all.json").symlink_to(shelf / "all.json")
    shelf.chmod(0o555)
    try:
        prefix = unprivileged(shelf, "open(os.path.join({!r}, 'probe'), 'w')")
        r = run(tmp_path / "a.wav", "--json", tmp_path / "all.json", "--model", tiny_model_path, prefix=prefix)
    finally:
        shelf.chmod(0o755)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "all.json").is_symlink() and len(json.loads((shelf / "all.json").read_text())) == 1


def test_a_pipe_a_broken_link_and_a_result_name_too_long_each_say_what_they_are(tmp_path, tiny_model_path):
    """They read "no such file", and a track analysed but whose result name was too long for the file system
    "analysis crashed: OSError(36, ...)"."""
    sr = 22050
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "gone.wav").symlink_to(tmp_path / "nothing.wav")
    long_name = tmp_path / ("x" * 248 + ".wav")  # its result, name + ".json.tmp", is over 255 bytes
    sf.write(long_name, triad(57, True, 3, sr), sr)
    r = run(tmp_path / "pipe.wav", tmp_path / "gone.wav", long_name, "--out", tmp_path / "out", "--jobs", "1",
            "--model", tiny_model_path)
    assert r.returncode == 1 and "3 failed" in r.stderr, r.stderr
    assert f"error: {tmp_path / 'pipe.wav'}: not a regular file (a pipe or a device)" in r.stderr
    assert f"error: {tmp_path / 'gone.wav'}: a link to {tmp_path / 'nothing.wav'}, which does not exist" in r.stderr
    assert f"error: {long_name}: its result cannot be written to " in r.stderr and "(File name too long)" in r.stderr


def test_a_name_with_dollars_is_plotted_as_written(tmp_path, tiny_model_path):
    """matplotlib reads "$...$" as a formula: a track named so used to fail at its plot after its JSON was
    written as done, so --resume never plotted it."""
    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(lib / "Cash $$ money.wav", triad(57, True, 4, 22050), 22050)
    out = tmp_path / "out"
    r = run(lib, "--out", out, "--plot", "--model", tiny_model_path)
    assert r.returncode == 0 and "1 analysed, 0 already done, 0 failed" in r.stderr, r.stderr
    assert (out / "Cash $$ money.wav.json").exists() and (out / "Cash $$ money.wav.png").exists()


def test_a_plot_that_fails_leaves_no_figure_open(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from live_mer import plot

    result = {"path": "x.wav", "summary": {"valence": 0.1, "arousal": 0.2, "quadrant": "Q1"},
              "timeline": [{"t": 0.5, "valence": 0.1, "arousal": 0.2, "quadrant": "Q1", "chord": "A:min",
                            "key": "A minor", "key_camelot": "8A", "loudness_db": -20.0}]}
    before = len(plt.get_fignums())
    with pytest.raises(KeyError):
        plot.plot_png({**result, "timeline": [{"t": 0.5}]})  # a result without the fields drawn
    assert len(plt.get_fignums()) == before
    assert plot.plot_png(result).startswith(b"\x89PNG")


def test_a_plot_is_written_whole_or_not_at_all(tmp_path, monkeypatch, tiny_model):
    """The PNG was written by matplotlib straight into its file: Ctrl-C (or a full disk) part-way left a
    PNG cut short beside the results, which --resume then trusted."""
    pytest.importorskip("matplotlib")
    from live_mer import batch

    sr = 22050
    sf.write(tmp_path / "a.wav", triad(57, True, 3.0, sr), sr)
    real = batch.write_whole

    def interrupted(path, data):
        if str(path).endswith(".png"):
            with open(f"{path}.tmp", "wb") as fh:  # as far as a write had come
                fh.write(data[:100])
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(batch, "write_whole", interrupted)
    monkeypatch.setattr(batch, "_model", tiny_model)  # a worker's model (the track is analysed here, no pool)
    outputs = batch.result_files(tmp_path / "out", Path("a.wav"))
    with pytest.raises(KeyboardInterrupt):
        batch._analyze_track((str(tmp_path / "a.wav"), outputs, 0.0, True))
    assert not outputs[2].exists() and not outputs[0].exists()  # no PNG cut short, and no result to resume from
    monkeypatch.setattr(batch, "write_whole", real)
    assert batch._analyze_track((str(tmp_path / "a.wav"), outputs, 0.0, True))["timeline"]
    assert outputs[2].read_bytes().startswith(b"\x89PNG") and outputs[0].exists()


def test_the_plot_title_spells_a_name_as_the_json_does(tmp_path, monkeypatch):
    """A name that is not valid UTF-8 reads "caf\\udce9.wav" in the JSON, the summary CSV and the terminal:
    the plot's title says the same."""
    pytest.importorskip("matplotlib")
    import matplotlib.axes

    from live_mer.plot import plot_png

    titles = []
    real = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda ax, text, **kw: (titles.append(text),
                                                                                 real(ax, text, **kw))[1])
    name = os.fsdecode(b"caf\xe9.wav")
    result = {"path": name, "summary": {"valence": 0.1, "arousal": 0.2, "quadrant": "Q1"},
              "timeline": [{"t": 0.5, "valence": 0.1, "arousal": 0.2, "quadrant": "Q1", "chord": "A:min",
                            "key": "A minor", "key_camelot": "8A", "loudness_db": -20.0}]}
    plot_png(result)
    assert titles and titles[0].startswith(json.dumps(name)[1:-1] + " ")  # the JSON file's text: caf\udce9.wav


def test_a_long_name_leaves_the_plot_titles_summary_on_the_image(tmp_path, monkeypatch):
    """A 115-character name pushed valence, arousal, quadrant and key off the right edge of the title."""
    pytest.importorskip("matplotlib")
    import matplotlib.axes

    from live_mer.plot import plot_png

    titles = []
    real = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda ax, text, **kw: titles.append(real(ax, text, **kw))
                        or titles[-1])
    name = "Très long nom de fichier — un enregistrement de concert (Live at Bürgerhaus, 1987, remastered).wav" * 2
    result = {"path": name, "summary": {"valence": 0.1, "arousal": 0.2, "quadrant": "Q1", "key": "A minor",
                                        "key_camelot": "8A"},
              "timeline": [{"t": 0.5 * i, "valence": 0.1, "arousal": 0.2, "quadrant": "Q1", "chord": "A:min",
                            "key": "A minor", "key_camelot": "8A", "loudness_db": -20.0} for i in range(1, 9)]}
    plot_png(result)
    (title,) = titles
    text = title.get_text()
    assert "\u2026" in text and text.endswith("file key A minor 8A") and "remastered).wav" in text
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    box = title.get_window_extent(FigureCanvasAgg(title.figure).get_renderer())  # (the figure is closed)
    assert box.x1 <= title.figure.bbox.width


def test_the_plots_strips_name_each_block_its_name_fits_in(tmp_path, monkeypatch):
    """A fixed share of the track (4.5 %) left a 60-s file's 2-s chords unnamed; a block is now named when
    its name, as drawn, fits in it."""
    pytest.importorskip("matplotlib")
    import matplotlib.axes

    from live_mer.plot import plot_png

    texts = []
    real = matplotlib.axes.Axes.text
    monkeypatch.setattr(matplotlib.axes.Axes, "text", lambda ax, *a, **kw: texts.append(real(ax, *a, **kw)) or texts[-1])
    chords = ["C:maj", "F:maj", "G:maj", "Ab:min"]
    result = {"path": "x.wav", "summary": {"valence": 0.1, "arousal": 0.2, "quadrant": "Q1"},
              "timeline": [{"t": 0.5 * i, "valence": 0.1, "arousal": 0.2, "quadrant": "Q1",
                            "chord": chords[(i - 1) // 4 % 4] if i < 100 else "E:maj", "key": "C major",
                            "key_camelot": "8B", "loudness_db": -20.0} for i in range(1, 121)]}
    plot_png(result)
    named = [t.get_text() for t in texts if t.axes is not None]
    assert named.count("C:maj") >= 5 and "E:maj" in named and "C major 8B" in named  # 2-s blocks, 10 s, the key
    assert "Ab:min" not in named  # too wide for 2 s at this length: colour only


def test_resume_analyses_an_incomplete_result_again(tmp_path, tiny_model_path):
    """A result file with a path and a summary but not all of it (`{"path": ..., "summary": {}}`) passed for
    done, and `--resume` then crashed on it (KeyError 'duration') at the terminal line: such a file, or one
    with a value of the wrong type, is analysed again; a complete one stays done."""
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in ("a", "b", "c", "d"):
        sf.write(lib / f"{name}.wav", triad(57, True, 3, 22050), 22050)
    out = tmp_path / "out"
    r = run(lib, "--out", out, "--jobs", "1", "--model", tiny_model_path)
    assert r.returncode == 0, r.stderr
    complete = json.loads((out / "d.wav.json").read_text())
    (out / "a.wav.json").write_text(json.dumps({"path": str(lib / "a.wav"), "summary": {}}))
    (out / "b.wav.json").write_text(json.dumps({**complete, "path": str(lib / "b.wav"), "duration": "3 s"}))
    (out / "c.wav.json").write_text(json.dumps({**complete, "path": str(lib / "c.wav"), "timeline": [{"t": 0.5}]}))
    r = run(lib, "--out", out, "--resume", "--jobs", "1", "--model", tiny_model_path)
    assert r.returncode == 0 and "3 analysed, 1 already done, 0 failed" in r.stderr, r.stderr
    for name in ("a", "b", "c"):
        assert json.loads((out / f"{name}.wav.json").read_text())["duration"] == complete["duration"]
    assert len(list(csv.DictReader(open(out / "summary.csv")))) == 4


def test_a_track_that_finished_as_ctrl_c_came_is_in_the_runs_results(tmp_path, tiny_model_path, monkeypatch):
    """A track the worker had finished (its JSON written) while the main process was still busy with the one
    before, when Ctrl-C came, was left out of that run's --json and summary CSV: only --resume found it."""
    from live_mer import batch

    sr = 22050
    lib, out = tmp_path / "lib", tmp_path / "out"
    lib.mkdir()
    for n in range(5):
        sf.write(lib / f"t{n}.wav", triad(57 + n, True, 3.0, sr), sr)
    real_tell = batch._tell
    told = []

    def slow_then_interrupted(report, result):  # Ctrl-C while the first result is being reported
        real_tell(report, result)
        told.append(result)
        if len(told) > 1:
            return
        deadline = time.monotonic() + 60
        while len(list(out.glob("*.wav.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # the finished track's result reaches its future
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "_tell", slow_then_interrupted)
    report = batch.run_batch([lib], str(tiny_model_path), out_dir=out, jobs=1, progress=False)
    written = {str(lib / f.name.removesuffix(".json")) for f in out.glob("*.wav.json")}
    assert len(written) >= 2 and {r["path"] for r in report.results} == written, (written, report.results)
    assert report.unfinished == 5 - len(written)


def test_a_ctrl_c_while_the_workers_are_forked_is_not_lost(library, tmp_path, tiny_model_path, monkeypatch):
    """The workers are forked in the first submit; a Ctrl-C landing inside a fork's at-fork hooks was swallowed
    there (Python cannot raise out of them), and the batch ran to its end (1 try in 16). Simulated: the
    interrupt comes during the submit, into code that swallows it as those hooks do."""
    from concurrent.futures import ProcessPoolExecutor

    real_submit = ProcessPoolExecutor.submit

    def submit_interrupted_inside_a_hook(self, *args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # Python raises the interrupt at its next check, here
                pass
        except KeyboardInterrupt:
            pass  # as an at-fork hook's exception is
        return real_submit(self, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", submit_interrupted_inside_a_hook)
    from live_mer import batch

    report = batch.run_batch([library], str(tiny_model_path), out_dir=tmp_path / "out", jobs=1, progress=False)
    assert report.unfinished >= 3 and not report.results  # stopped before any track, not run to its end


def test_a_ctrl_c_another_thread_receives_while_the_workers_are_forked_is_not_lost(library, tmp_path, tiny_model_path,
                                                                                   monkeypatch):
    """A process-directed signal goes to a thread that does not block it (`live-mer analyze` has OpenBLAS's and
    onnxruntime's beside the main one): blocking it in the main thread alone did not hold it, Python raised it in
    the main thread at its next GIL handover, and a fork hook that waits for a lock swallowed it (all 4 tracks ran)."""
    from concurrent.futures import ProcessPoolExecutor

    idle = threading.Event()
    helper = threading.Thread(target=idle.wait, daemon=True)  # a thread with the process's default signal mask
    helper.start()
    real_submit = ProcessPoolExecutor.submit
    interrupted = []

    def submit_interrupted_inside_a_hook(self, *args, **kwargs):
        try:
            if not interrupted:  # the first, which forks the worker
                interrupted.append(os.kill(os.getpid(), signal.SIGINT))
                time.sleep(0.05)  # the GIL handed over inside a hook (a lock another thread holds)
        except KeyboardInterrupt:
            pass  # as an at-fork hook's exception is
        return real_submit(self, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", submit_interrupted_inside_a_hook)
    from live_mer import batch

    try:
        report = batch.run_batch([library], str(tiny_model_path), out_dir=tmp_path / "out", jobs=1, progress=False)
    finally:
        idle.set()
    assert report.unfinished >= 3 and not report.results


def test_a_batch_runs_where_signal_masks_do_not_exist(tmp_path, tiny_model_path, monkeypatch):
    """Windows has no signal.pthread_sigmask: holding the stop signals through it stopped every batch there with
    an AttributeError before the first track."""
    from live_mer import batch

    song = tmp_path / "a.wav"
    sf.write(song, triad(57, True, 3.0, 22050), 22050)
    monkeypatch.delattr(signal, "pthread_sigmask")
    report = batch.run_batch([song], str(tiny_model_path), jobs=1, progress=False)
    assert len(report.results) == 1 and not report.failed, report.results


def test_workers_end_when_the_batch_is_killed_outright(tmp_path, tiny_model_path):
    """analyze killed outright (SIGKILL, the OOM killer) cannot tell its workers to stop: they hung for ever,
    blocked on results no one would read (each holds the model). They notice their parent has gone and end."""
    from live_mer import batch

    sr = 22050
    sf.write(tmp_path / "long.wav", triad(57, True, 60, sr), sr)
    lib, out = tmp_path / "lib", tmp_path / "out"
    lib.mkdir()
    for n in range(40):
        (lib / f"t{n:02d}.wav").symlink_to(tmp_path / "long.wav")
    p = subprocess.Popen([sys.executable, "-m", "live_mer", "analyze", lib, "--out", out, "--jobs", "2",
                          "--model", tiny_model_path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(out.glob("*.wav.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    deadline = time.monotonic() + 10 * batch.PARENT_POLL_S + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(p.pid, 0)  # a worker of the group is still there
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.killpg(p.pid, signal.SIGKILL)
        pytest.fail("the workers outlived the killed batch")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("kill", [os.killpg, os.kill], ids=["terminal", "main-process-only"])
def test_ctrl_c_stops_a_batch_at_once_and_keeps_what_finished(tmp_path, tiny_model_path, kill, sig):
    """Ctrl-C did not stop a batch: every track was handed to the worker pool up front and leaving the pool
    waited for them all, so a Ctrl-C after the first of 40 tracks analysed all 40 before exiting 130. It stops
    at once (--jobs 1 too): the finished tracks' files are kept, --json and the summary CSV hold those tracks.
    SIGINT as a terminal sends it, to the whole process group, or to the main process alone (`kill -INT`).
    SIGTERM the same (a service stopped signals its whole group; `kill` the main process alone): it killed the
    main process only, and its worker hung for ever, writing a result no one read."""
    sr = 22050
    sf.write(tmp_path / "long.wav", triad(57, True, 60, sr), sr)
    lib, out, everything = tmp_path / "lib", tmp_path / "out", tmp_path / "all.json"
    lib.mkdir()
    for n in range(40):
        (lib / f"t{n:02d}.wav").symlink_to(tmp_path / "long.wav")
    p = subprocess.Popen([sys.executable, "-m", "live_mer", "analyze", lib, "--out", out, "--json", everything,
                          "--jobs", "1", "--model", tiny_model_path], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not list(out.glob("*.wav.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    kill(p.pid, sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "Traceback" not in err, err
    with pytest.raises(ProcessLookupError):  # no worker left behind in the group
        os.killpg(p.pid, 0)
    assert "interrupted (the finished tracks' files are kept: run again with --resume)" in err
    kept = {str(lib / f.name.removesuffix(".json")) for f in out.glob("*.wav.json")}
    assert 1 <= len(kept) <= 3, err  # far fewer than all 40
    results = json.loads(everything.read_text())
    assert {r["path"] for r in results} <= kept and f"{40 - len(results)} not analysed" in err
    assert len(list(csv.DictReader(open(out / "summary.csv")))) == len(results)
