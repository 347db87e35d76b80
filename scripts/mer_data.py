"""Training data for live_mer: dataset loaders, artist/track-grouped folds, and the feature cache.

Features come from :class:`live_mer.features.Frontend`, the analyzer's own front end, so training and
serving cannot drift apart. Windows are cut exactly as :class:`live_mer.analyzer.Analyzer` cuts them
(one every model hop, the start of a clip padded with the silence row), see :func:`windows_of`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from live_mer import features as features_module
from live_mer import harmony as harmony_module
from live_mer.features import FeatureSpec, Frontend
from live_mer.fileanalysis import iter_blocks, open_audio
from paths import CACHE, DATA

GEMS = ("amazement", "solemnity", "tenderness", "nostalgia", "calmness", "power", "joyful_activation", "tension",
        "sadness")
QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
# Russell quadrant -> (valence sign, arousal sign)
QUADRANT_VA = {"Q1": (1.0, 1.0), "Q2": (-1.0, 1.0), "Q3": (-1.0, -1.0), "Q4": (1.0, -1.0)}


@dataclass
class Clip:
    """One labelled audio clip. Missing label types are None."""

    dataset: str
    clip_id: str
    path: Path
    group: str  # the unit that must not straddle folds: artist (4Q), track (Emotify), game (VGMIDI); see folds()
    quadrant: int | None = None
    gems: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


# An act's backing band or orchestra, or a "+ 2", is the same act: "Charlie Poole & the North Carolina
# Ramblers" and "Charlie Poole", "Eddie Heywood and His Orchestra" and "Eddie Heywood" must share a fold.
_ACT_SUFFIX = re.compile(r"\s+(?:(?:&|and|with)\s+(?:his|her|the)\b.*|\+\s*\d+)$")
# Credited so differently that no rule joins them.
ARTIST_ALIASES = {"alvin & the chipmunks": "the chipmunks"}
# The same recording under two clip ids (found by correlating the clips' waveforms, r 0.93-0.98, on
# 2026-12-03): each set must share a fold, with every other clip of the acts involved.
SAME_RECORDING = (
    ("4q", "MT0000523076", "MT0000941301"),  # "Trav'lin' Light", Eddie Heywood (and His Orchestra)
    ("4q", "MT0002161109", "MT0033415296"),  # "That Old Black Magic", credited to Elmer Bernstein and to
                                             # Sam Butera & the Witnesses (phase-inverted, 14 s apart)
    ("emotify", "170", "176"),
    ("emotify", "172", "175"),
    ("emotify", "359", "366"),
)


def artist_group(artist: str) -> str:
    """The fold group of a 4Q artist credit: lower case, the backing band or orchestra dropped, aliases
    joined (``"Bob Marley & the Wailers"`` and ``"Bob Marley"`` are one group)."""
    name = " ".join(artist.lower().split())
    name = ARTIST_ALIASES.get(name, name)
    return _ACT_SUFFIX.sub("", name)


def load_4q(data: Path = DATA) -> list[Clip]:
    """4Q audio emotion dataset: quadrant labels, grouped by artist (:func:`artist_group`)."""
    clips = []
    with open(data / "4q" / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            clips.append(Clip("4q", row["song"], data / row["path"], "4q:" + artist_group(row["artist"]),
                              quadrant=QUADRANTS.index(row["quadrant"]), extra={"moods": row["moods"]}))
    return clips


def load_emotify(data: Path = DATA) -> list[Clip]:
    """Emotify: share of listeners ticking each GEMS-9 category, grouped by track."""
    votes: dict[str, list[np.ndarray]] = defaultdict(list)
    with open(data / "emotify" / "votes.csv", newline="") as fh:
        for row in csv.DictReader(fh, skipinitialspace=True):
            row = {k.strip(): v for k, v in row.items()}
            votes[row["track id"].strip()].append(np.array([float(row[g]) for g in GEMS], np.float32))
    clips = []
    with open(data / "emotify" / "tracks.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            tid = row["track_id"].strip()
            if tid in votes:
                clips.append(Clip("emotify", tid, data / row["path"], "emotify:" + tid,
                                  gems=np.mean(votes[tid], axis=0), extra={"genre": row["genre"]}))
    return clips


def fold_groups(clips: list[Clip]) -> list[str]:
    """Each clip's fold group: its own ``group``, with the groups of every :data:`SAME_RECORDING` set
    joined (so the two acts credited with one recording, and all their clips, share a fold)."""
    parent = {c.group: c.group for c in clips}

    def root(g: str) -> str:
        while parent[g] != g:
            g = parent[g]
        return g

    by_id = {(c.dataset, c.clip_id): c.group for c in clips}
    for dataset, *ids in SAME_RECORDING:
        present = [by_id[(dataset, i)] for i in ids if (dataset, i) in by_id]
        for g in present[1:]:
            a, b = sorted((root(present[0]), root(g)))
            parent[b] = a
    return [root(c.group) for c in clips]


def folds(clips: list[Clip], n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index per clip: groups (:func:`fold_groups`) never straddle folds; 4Q is stratified by quadrant."""
    from sklearn.model_selection import StratifiedGroupKFold

    out = np.full(len(clips), -1)
    by_dataset = defaultdict(list)
    for i, c in enumerate(clips):
        by_dataset[c.dataset].append(i)
    group_of = fold_groups(clips)
    for idx in by_dataset.values():
        y = [clips[i].quadrant if clips[i].quadrant is not None else 0 for i in idx]
        groups = [group_of[i] for i in idx]
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for k, (_, test) in enumerate(splitter.split(np.zeros(len(idx)), y, groups)):
            out[np.asarray(idx)[test]] = k
    return out


# What the frame features are computed by, beside the spec: a cache made before any of these changed (the
# chord emission retrained by scripts/train_chords.py, an edit of the front end) is stale.
FEATURE_SOURCES = (Path(features_module.__file__), Path(harmony_module.__file__), harmony_module.EMISSION_PATH)


def spec_key(spec: FeatureSpec) -> str:
    """The feature cache's key: the spec, the feature layout and the bytes of the code and weights behind them."""
    digest = hashlib.sha1(json.dumps({"spec": spec.to_dict(), "names": spec.feature_names()}, sort_keys=True).encode())
    for path in FEATURE_SOURCES:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def extract_features(path: Path, spec: FeatureSpec) -> np.ndarray:
    """Frame features of a whole file through the live front end, (frames, n_features) float32."""
    with open_audio(path) as f:
        fe = Frontend(spec, f.samplerate)
        rows = [fe.push(block.mean(axis=1)).features for block in iter_blocks(f)]
    rows.append(fe.push(np.zeros(0, np.float32), flush=True).features)
    return np.concatenate(rows)


def _cached(args) -> str:
    path, out, spec = args
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.npy")
        np.save(tmp, extract_features(path, spec).astype(np.float32))
        tmp.replace(out)
    return str(out)


def feature_cache(clips: list[Clip], spec: FeatureSpec, workers: int = 2, progress: bool = True) -> list[Path]:
    """Compute (or reuse) every clip's frame features; returns the .npy paths in clip order."""
    base = CACHE / "features" / spec_key(spec)
    jobs = [(c.path, base / c.dataset / f"{c.clip_id}.npy", spec) for c in clips]
    todo = [j for j in jobs if not j[1].exists()]
    if todo:
        from tqdm import tqdm

        with ProcessPoolExecutor(workers) as pool:
            for _ in tqdm(pool.map(_cached, todo, chunksize=4), total=len(todo), desc="features",
                          disable=not progress):
                pass
    return [j[1] for j in jobs]


def windows_of(frames: np.ndarray, silence: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Every window the streaming Analyzer would run the model on, (n_windows, window, n_features).

    The Analyzer starts with a window full of the silence row and emits after every ``hop`` frames, so
    window ``k`` holds the ``window`` frames ending at frame ``(k + 1) * hop``. Returns a read-only view.
    """
    return padded_windows(padded_frames(frames, silence, window), window, hop)


def padded_frames(frames: np.ndarray, silence: np.ndarray, window: int) -> np.ndarray:
    """A clip's frames after ``window`` silence rows: what the Analyzer's windows of it are cut from."""
    return np.concatenate([np.tile(silence, (window, 1)), frames]).astype(np.float32, copy=False)


def padded_windows(padded: np.ndarray, window: int, hop: int) -> np.ndarray:
    """The windows of :func:`windows_of` from a clip's :func:`padded_frames` (a read-only view)."""
    view = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)  # (positions, F, window)
    return view[hop::hop][: (padded.shape[0] - window) // hop].transpose(0, 2, 1)
