"""Shared fixtures: tiny test models, synthetic audio, the shared data folder, the audio rig."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))  # the scripts' own modules (paths, train, harmony_eval, ...)
from paths import DATA as SHARED_DATA  # noqa: E402  (the training data: $LIVE_MER_DATA or ../shared/data)


def need_or_skip(condition: bool, reason: str) -> None:
    """Skip when a resource is missing on a developer machine; under CI the resource must exist."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required under CI)")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    from live_mer.model import load_model

    return load_model(tiny_model_path, provider="cpu")


def tone(freqs, seconds: float, sr: int, amp: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * sum(np.sin(2 * np.pi * f * t) for f in freqs)).astype(np.float32)


def midi_hz(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def chord_tones(notes, seconds: float, sr: int, amp: float = 0.12) -> np.ndarray:
    """Any set of MIDI notes with a few harmonics each (closer to real instruments than pure sines)."""
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for n in notes:
        for h, a in ((1, 1.0), (2, 0.4), (3, 0.2)):
            x += a * np.sin(2 * np.pi * midi_hz(n) * h * t)
    return (amp * x / len(notes)).astype(np.float32)


def triad(root_midi: int, minor: bool, seconds: float, sr: int, amp: float = 0.15) -> np.ndarray:
    """A triad in root position with the root doubled an octave below."""
    return chord_tones([root_midi, root_midi + (3 if minor else 4), root_midi + 7, root_midi - 12], seconds, sr, amp)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "cc-excerpts").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
