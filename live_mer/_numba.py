"""Import numba with a cache directory that is writable.

``@njit(cache=True)`` writes compiled kernels next to the source file by default. On a read-only
install (system site-packages, a container image) that fails, so when the package directory is not
writable and the user has not chosen ``NUMBA_CACHE_DIR`` we point numba at a per-user cache.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _pick_cache_dir() -> str | None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    here = Path(__file__).resolve().parent
    if os.access(here, os.W_OK):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for candidate in (os.path.join(base, "live_mer", "numba"), os.path.join(tempfile.gettempdir(), "live_mer-numba")):
        try:
            os.makedirs(candidate, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    return None


_cache_dir = _pick_cache_dir()
if _cache_dir is not None:
    os.environ["NUMBA_CACHE_DIR"] = _cache_dir

import numba  # noqa: E402

if _cache_dir is not None:
    # numba may have been imported before us with the old environment.
    numba.core.config.reload_config()

njit = numba.njit
