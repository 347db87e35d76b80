"""A writable per-user cache folder (numba kernels on read-only installs, filterbanks)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def user_cache_dir(*parts: str) -> Path | None:
    """``$XDG_CACHE_HOME/live_mer/...`` (or ``~/.cache``, or the temp dir); None if none is writable."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for root in (os.path.join(base, "live_mer"), os.path.join(tempfile.gettempdir(), "live_mer-cache")):
        candidate = Path(root, *parts)
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    return None
