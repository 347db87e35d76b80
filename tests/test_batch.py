"""Batch analysis of a folder: parallel, per-file JSON, summary CSV, PNG plots, failures, resume."""

import csv
import json
import os
import subprocess
import sys

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


def run(*args):
    return subprocess.run([sys.executable, "-m", "live_mer", "analyze", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=os.environ)


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
    assert by_name["c.ogg"]["top_category"]
    tags = json.loads((out / "ambient/c.ogg.json").read_text())["summary"]["tags"]
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


def test_a_cut_off_file_is_analysed_with_a_warning(tmp_path, tiny_model_path):
    sr = 22050
    full = tmp_path / "full.mp3"
    sf.write(full, triad(57, True, 20, sr), sr, format="MP3")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    r = run(cut, "--json", tmp_path / "all.json", "--csv", tmp_path / "all.csv", "--model", tiny_model_path)
    assert r.returncode == 0, r.stderr
    assert "warning: " in r.stderr and "cut.mp3" in r.stderr and "truncated" in r.stderr
    (result,) = json.loads((tmp_path / "all.json").read_text())
    assert result["duration"] < 8 and "truncated" in result["warning"]
    (row,) = csv.DictReader(open(tmp_path / "all.csv"))
    assert row["warning"] == result["warning"] and not row["error"]
