"""Import numba with a kernel cache that is writable and never stale.

``@njit(cache=True)`` writes compiled kernels next to the source file by default, and numba checks only
the *calling* function's own source file before reusing one. Both bite here:

- on a read-only install (system site-packages, a container image) the default location fails;
- ``features._spectral_kernel`` inlines ``harmony.peak_chroma``: after an edit to ``harmony.py`` (a
  ``git pull`` on an editable install) numba would keep running the old chroma compiled into the old
  spectral kernel, silently.

So unless the user has chosen ``NUMBA_CACHE_DIR``, the cache lives in the per-user cache folder, in a
subfolder named after a digest of every source file of this package: any change to any of them starts a
fresh cache. Folders of other versions unused for :data:`STALE_DAYS` are removed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from ._cache import user_cache_dir

STALE_DAYS = 30
PACKAGE = Path(__file__).resolve().parent


def source_digest(package: Path = PACKAGE) -> str:
    """Short digest of the package's Python sources (names and contents)."""
    h = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _prune(parent: Path, keep: Path) -> None:
    cutoff = time.time() - STALE_DAYS * 86400
    for other in parent.iterdir():
        try:
            if other != keep and other.is_dir() and other.stat().st_mtime < cutoff:
                shutil.rmtree(other, ignore_errors=True)
        except OSError:
            pass


def _writable(folder: Path) -> bool:
    """Whether files can be made in ``folder`` (made if missing), as numba's cache locators test it."""
    try:
        folder.mkdir(exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _pick_cache_dir() -> str | None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    parent = user_cache_dir("numba")
    if parent is None:
        return None  # numba's default: next to the sources
    found = parent / source_digest()
    try:
        found.mkdir(exist_ok=True)
        os.utime(found)  # in use: keeps it from being pruned
    except OSError:
        return None
    _prune(parent, found)
    return str(found)


_cache_dir = _pick_cache_dir()
if _cache_dir is not None:
    os.environ["NUMBA_CACHE_DIR"] = _cache_dir

import numba  # noqa: E402

if _cache_dir is not None:
    # numba may have been imported before us with the old environment.
    numba.core.config.reload_config()

if _cache_dir is None and not os.environ.get("NUMBA_CACHE_DIR") and not _writable(PACKAGE / "__pycache__"):
    # Nowhere to keep compiled kernels (a read-only install, no writable home or temp folder): numba's
    # `cache=True` failed at import ("no locator available"); the kernels are compiled at every start instead.
    logging.getLogger("live_mer").warning(
        "no writable folder for the compiled analysis (a home or temp folder, or NUMBA_CACHE_DIR): it is compiled "
        "at every start (10-20 s); set NUMBA_CACHE_DIR to a folder this user may write to")

    def njit(*args, **options):
        """``numba.njit`` without its cache (see above)."""
        return numba.njit(*args, **{**options, "cache": False})
else:
    njit = numba.njit
