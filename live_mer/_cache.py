"""A writable per-user cache folder (numba kernels on read-only installs, filterbanks, the demo piece)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np


def user_cache_dir(*parts: str) -> Path | None:
    """``$XDG_CACHE_HOME/live_mer/...`` (or ``~/.cache``, or the temp dir); None if none is writable.

    The temp dir's folder is per user and private (``live_mer-cache-<uid>``), and one another user made is not
    used: a shared one belonged to whoever ran first, so numba failed at import for the next user with no
    writable home (a service account's ``/nonexistent``), and it would have loaded numba kernels (pickles)
    that another user wrote."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    uid = os.getuid() if hasattr(os, "getuid") else None
    temp = os.path.join(tempfile.gettempdir(), "live_mer-cache" if uid is None else f"live_mer-cache-{uid}")
    for root in (os.path.join(base, "live_mer"), temp):
        candidate = Path(root, *parts)
        try:
            os.makedirs(root, mode=0o700, exist_ok=True)
            if root == temp and uid is not None and os.stat(root).st_uid != uid:
                continue  # another user's
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    return None


def cached_array(folder: str, name: str, compute: Callable[[], np.ndarray], mmap: bool = False) -> np.ndarray:
    """``compute()`` once, kept as ``<user cache>/<folder>/<name>.npy``; later calls load it (memory-mapped
    when ``mmap``). A cache that cannot be read or written only costs the computation."""
    where = user_cache_dir(folder)
    path = where / f"{name}.npy" if where is not None else None
    if path is not None and path.is_file():
        try:
            return np.load(path, mmap_mode="r" if mmap else None)
        except (OSError, ValueError):
            pass  # unreadable: compute it again
    value = compute()
    if path is not None:
        try:
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, value)
            tmp.replace(path)  # atomic: a concurrent reader never sees half a file
        except OSError:
            pass
    return value
