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
