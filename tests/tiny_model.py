"""Build tiny ONNX students for the tests, so the runtime is tested without the shipped model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from live_mer.export import POOLS, PooledStudentWeights, build_pooled_student, write_model
from live_mer.features import FeatureSpec

GEMS = ("amazement", "solemnity", "tenderness", "nostalgia", "calmness", "power", "joyful_activation",
        "tension", "sadness")
OUTPUTS = {
    "va": {"kind": "regression", "names": ["valence", "arousal"], "range": [-1.0, 1.0]},
    "quadrant": {"kind": "softmax", "names": ["Q1", "Q2", "Q3", "Q4"]},
    "gems": {"kind": "shares", "names": list(GEMS)},
    "tags": {"kind": "tags", "names": ["Calm", "Angry", "Dreamy"]},
}


def tiny_weights(spec: FeatureSpec, hidden: int = 8, seed: int = 0, recent_frames: int = 8) -> PooledStudentWeights:
    """Random but fixed weights; arousal is wired to follow loudness so tests can check it moves."""
    rng = np.random.default_rng(seed)
    f = spec.n_features
    d = len(POOLS) * f
    mean = np.zeros(d, np.float32)
    scale = np.ones(d, np.float32)
    loud = spec.feature_names().index("loudness_db")
    for b, pool in enumerate(POOLS):  # loudness in dB: standardise it in every pooled statistic
        mean[b * f + loud] = -40.0 if pool in ("mean", "recent_mean", "max") else 0.0
        scale[b * f + loud] = 20.0
    w1 = (rng.standard_normal((d, hidden)) * 0.05).astype(np.float32)
    w1[loud, 0] = 2.0
    b1 = np.zeros(hidden, np.float32)
    b1[0] = 3.0
    wva = (rng.standard_normal((hidden, 2)) * 0.05).astype(np.float32)
    wva[0, 1] = 0.5
    bva = np.array([0.0, -1.5], np.float32)
    heads = {
        "va": (wva, bva, "tanh"),
        "quadrant": ((rng.standard_normal((hidden, 4)) * 0.1).astype(np.float32), np.zeros(4, np.float32), "softmax"),
        "gems": ((rng.standard_normal((hidden, 9)) * 0.1).astype(np.float32), np.zeros(9, np.float32), "sigmoid"),
        "tags": ((rng.standard_normal((hidden, 3)) * 0.1).astype(np.float32), np.zeros(3, np.float32), "sigmoid"),
    }
    return PooledStudentWeights(mean, scale, [(w1, b1)], heads, recent_frames)


def make_tiny_model(directory: Path, name: str = "tiny", window_s: float = 2.0, hop_s: float = 0.25,
                    spec: FeatureSpec | None = None) -> Path:
    """Write ``<name>.onnx`` + card into ``directory``; returns the .onnx path."""
    spec = spec or FeatureSpec()
    window = int(round(window_s * spec.frame_rate))
    hop = int(round(hop_s * spec.frame_rate))
    onnx_bytes = build_pooled_student(tiny_weights(spec), window, spec.n_features)
    onnx_path, _ = write_model(directory, name, onnx_bytes, spec, window, hop, OUTPUTS,
                               {"training": {"note": "random test weights, not trained"}})
    return onnx_path
