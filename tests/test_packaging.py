"""A wheel (what `pip install .` or a package index installs) carries everything the program needs: it is
built from the files a release would hold, installed on its own, and run away from this checkout."""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

from conftest import need_or_skip, triad

ROOT = Path(__file__).resolve().parent.parent


def test_an_installed_wheel_carries_the_model_and_analyses_a_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    for name in ("live_mer", "gui", "models"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(dist), str(src)], check=True, cwd=tmp_path, timeout=600)
    (wheel,) = dist.glob("live_mer-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "live_mer/shipped_models/live_mer_student.onnx" in names
    assert "live_mer/shipped_models/live_mer_student.json" in names
    assert "live_mer/data/chord_emission.npz" in names

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, timeout=600)
    music = tmp_path / "music.wav"
    sr = 22050
    sf.write(music, np.concatenate([triad(57, True, 4.0, sr), triad(60, False, 4.0, sr)]), sr)
    env = {k: v for k, v in os.environ.items() if k not in ("LIVE_MER_MODELS", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    where = subprocess.run([sys.executable, "-c", "import live_mer, live_mer.model as m; "
                            "print(live_mer.__file__); print(m.models_dir())"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where  # the installed copy, not this checkout
    out = tmp_path / "result.json"
    run = subprocess.run([sys.executable, "-m", "live_mer", "analyze", str(music), "--json", str(out), "--jobs", "1"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    (result,) = json.loads(out.read_text())
    assert result["model"] == "live_mer_student"
    assert len(result["timeline"]) > 0 and result["summary"]["key"]



def test_the_sdist_carries_the_tests_and_what_they_import(tmp_path):
    """A packager builds from the sdist and runs its tests in the unpacked folder: every file of tests/ and
    scripts/ is in it (setuptools alone took tests/test_*.py but not conftest.py, tiny_model.py, ... that they
    import, nor scripts/: 15 of the 20 test files failed to import)."""
    src = tmp_path / "src"
    src.mkdir()
    for path in ROOT.glob("*"):
        if path.is_file():
            shutil.copy(path, src / path.name)
    for name in ("live_mer", "gui", "models", "tests", "scripts", "docs"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                    "build_meta.build_sdist(sys.argv[1])", str(dist)], check=True, cwd=src, capture_output=True,
                   timeout=600)
    (sdist,) = dist.glob("live_mer-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[-1] for name in tar.getnames()}
    wanted = {p.relative_to(src).as_posix() for d in ("tests", "scripts") for p in (src / d).rglob("*") if p.is_file()}
    assert not wanted - names, sorted(wanted - names)

def test_a_set_up_checkout_starts_without_the_network():
    """run.sh runs setup.sh before every start; once set up, that must not need pip (no network at a gig)."""
    stamp = ROOT / ".venv" / ".setup-run"
    need_or_skip(stamp.is_file(), "no .venv set up by scripts/setup.sh")
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(ROOT / "no-such-folder"))
    done = subprocess.run(["bash", "scripts/setup.sh", "run"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr  # an editable reinstall would need setuptools from the index
