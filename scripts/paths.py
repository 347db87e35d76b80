"""Where the scripts find the repository, the training data and their cache (the one place that decides it).

- ``ROOT``: the repository root (the folder above ``scripts/``);
- ``DATA``: ``$LIVE_MER_DATA``, else ``../shared/data`` beside the repository;
- ``CACHE``: ``$LIVE_MER_CACHE``, else ``.cache`` in the repository.

Standard library only: the teacher (``.venv-teacher``) and vibenet (``.venv-vibenet``) environments import
it too, and they cannot import ``live_mer``. Scripts make ``scripts/`` importable (``sys.path``) and then
``from paths import ...``; the environment variables are read once, when this module is first imported.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("LIVE_MER_DATA", ROOT.parent / "shared" / "data"))
CACHE = Path(os.environ.get("LIVE_MER_CACHE", ROOT / ".cache"))

__all__ = ["ROOT", "DATA", "CACHE"]
