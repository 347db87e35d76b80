"""Import numba with a cache directory that is writable.

``@njit(cache=True)`` writes compiled kernels next to the source file by default. On a read-only
install (system site-packages, a container image) that fails, so when the package directory is not
writable and the user has not chosen ``NUMBA_CACHE_DIR`` we point numba at a per-user cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._cache import user_cache_dir


def _pick_cache_dir() -> str | None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    if os.access(Path(__file__).resolve().parent, os.W_OK):
        return None
    found = user_cache_dir("numba")
    return str(found) if found is not None else None


_cache_dir = _pick_cache_dir()
if _cache_dir is not None:
    os.environ["NUMBA_CACHE_DIR"] = _cache_dir

import numba  # noqa: E402

if _cache_dir is not None:
    # numba may have been imported before us with the old environment.
    numba.core.config.reload_config()

njit = numba.njit
