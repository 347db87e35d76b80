"""Where the scripts find the repository, the training data and their cache (the one place that decides it).

- ``ROOT``: the repository root (the folder above ``scripts/``);
- ``DATA``: ``$LIVE_MER_DATA``, else ``../shared/data`` beside the repository;
- ``CACHE``: ``$LIVE_MER_CACHE``, else ``.cache`` in the repository;
- :func:`require_data`: what a script calls first, so that missing data stops it with one line, not a traceback.

Standard library only: the teacher (``.venv-teacher``) and vibenet (``.venv-vibenet``) environments import
it too, and they cannot import ``live_mer``. Scripts make ``scripts/`` importable (``sys.path``) and then
``from paths import ...``; the environment variables are read once, when this module is first imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("LIVE_MER_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("LIVE_MER_CACHE", ROOT / ".cache"))

__all__ = ["ROOT", "DATA", "CACHE", "require_data"]


def require_data(*names: str) -> None:
    """Exit with status 2 and one line on stderr naming the first of ``names`` (paths under ``DATA``) that is
    missing, and ``LIVE_MER_DATA``."""
    for name in names:
        if not (DATA / name).exists():
            print(f"{Path(sys.argv[0]).name}: training data not found: no {DATA / name} (set LIVE_MER_DATA to the "
                  "folder that holds 4q/, emotify/, vgmidi/ and cc-excerpts/; default ../shared/data)", file=sys.stderr)
            raise SystemExit(2)
