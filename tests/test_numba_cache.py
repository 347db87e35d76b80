"""The Numba kernel cache: kept out of the package folder, and never stale after a source edit."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import live_mer
from live_mer._cache import user_cache_dir

PROBE = """
import numpy as np
from live_mer.features import FeatureSpec, Frontend
sr = 22050
t = np.arange(sr * 2) / sr
x = sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate((261.6, 329.6, 392.0, 523.3, 784.0)))
b = Frontend(FeatureSpec(), sr).push((0.2 * x).astype(np.float32))
print(repr(float(np.abs(b.chroma).sum())))
"""


def run_probe(pkg_root: Path, cache_home: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}  # as a user who never set it
    env.update(PYTHONPATH=str(pkg_root), XDG_CACHE_HOME=str(cache_home))
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True, capture_output=True, text=True,
                         cwd=pkg_root)
    return float(out.stdout.strip().splitlines()[-1])


def test_kernel_cache_is_per_user_and_an_edited_source_is_recompiled(tmp_path):
    pkg = tmp_path / "site" / "live_mer"
    shutil.copytree(Path(live_mer.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    cache_home = tmp_path / "cache"
    first = run_probe(pkg.parent, cache_home)
    folders = sorted((cache_home / "live_mer" / "numba").iterdir())
    assert len(folders) == 1 and list(folders[0].rglob("*.nbi")), "kernels are cached in the user cache"
    assert not list(pkg.rglob("*.nbi")), "nothing is written into the installed package"
    assert run_probe(pkg.parent, cache_home) == first  # reused: the same folder, the same result
    assert len(list((cache_home / "live_mer" / "numba").iterdir())) == 1
    # Edit a kernel that features.py's kernel calls (numba alone would keep the old one compiled in).
    harmony = pkg / "harmony.py"
    text = harmony.read_text()
    assert "PEAK_RANGE_DB = 50.0" in text
    harmony.write_text(text.replace("PEAK_RANGE_DB = 50.0", "PEAK_RANGE_DB = 3.0"))
    assert run_probe(pkg.parent, cache_home) != first
    assert len(list((cache_home / "live_mer" / "numba").iterdir())) == 2


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX users")
def test_temp_fallback_is_per_user_and_never_another_users(tmp_path, monkeypatch):
    """No writable home cache (a service account's /nonexistent): the temp folder's cache is this user's own. A
    shared one belonged to whoever ran first; numba's import then failed for the next user ("no locator
    available"), and it would have loaded kernels (pickles) another user wrote."""
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    got = user_cache_dir("numba")
    assert got == tmp_path / f"live_mer-cache-{os.getuid()}" / "numba"
    assert stat.S_IMODE(got.parent.stat().st_mode) == 0o700
    # a folder with another user's name there, not owned by that user: not theirs to use
    other = os.getuid() + 1
    (tmp_path / f"live_mer-cache-{other}").mkdir(mode=0o777)
    monkeypatch.setattr(os, "getuid", lambda: other)
    assert user_cache_dir("numba") is None


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_with_nowhere_to_cache_the_analysis_is_compiled_at_every_start(tmp_path):
    """A read-only install with no writable home, temp or package folder: numba's `cache=True` failed at import
    ("no locator available"), a traceback before anything ran. It runs, compiled afresh, and says so."""
    prefix = []
    if os.getuid() == 0:  # root writes anywhere unless it gives up the power to (as test_batch does)
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: permissions cannot be enforced")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    site = tmp_path / "site"
    shutil.copytree(Path(live_mer.__file__).parent, site / "live_mer", ignore=shutil.ignore_patterns("__pycache__"))
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    (tmp_path / "a-file").write_text("")
    for folder in (readonly, site / "live_mer", site):
        folder.chmod(0o555)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "a-file"), HOME=str(readonly))
    code = f"import tempfile; tempfile.tempdir = {str(readonly)!r}\n" + PROBE
    try:
        out = subprocess.run(prefix + [sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             cwd=readonly)
    finally:
        for folder in (readonly, site / "live_mer", site):
            folder.chmod(0o755)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip().splitlines()[-1]) > 0
    assert "compiled at every start" in out.stderr and "Traceback" not in out.stderr
