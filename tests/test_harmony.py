import numpy as np
import pytest

from conftest import triad
from live_mer.features import FeatureSpec, Frontend
from live_mer.harmony import PITCH_CLASSES, camelot, chord_label, key_name, open_key

# (key, Camelot, Open Key) for all 24 keys, from the published wheels.
WHEEL = [
    ("C major", "8B", "1d"), ("G major", "9B", "2d"), ("D major", "10B", "3d"), ("A major", "11B", "4d"),
    ("E major", "12B", "5d"), ("B major", "1B", "6d"), ("F# major", "2B", "7d"), ("C# major", "3B", "8d"),
    ("Ab major", "4B", "9d"), ("Eb major", "5B", "10d"), ("Bb major", "6B", "11d"), ("F major", "7B", "12d"),
    ("A minor", "8A", "1m"), ("E minor", "9A", "2m"), ("B minor", "10A", "3m"), ("F# minor", "11A", "4m"),
    ("C# minor", "12A", "5m"), ("Ab minor", "1A", "6m"), ("Eb minor", "2A", "7m"), ("Bb minor", "3A", "8m"),
    ("F minor", "4A", "9m"), ("C minor", "5A", "10m"), ("G minor", "6A", "11m"), ("D minor", "7A", "12m"),
]


@pytest.mark.parametrize("name,cam,ok", WHEEL)
def test_camelot_and_open_key(name, cam, ok):
    tonic, mode = name.split()
    index = PITCH_CLASSES.index(tonic) + (12 if mode == "minor" else 0)
    assert key_name(index) == name
    assert camelot(index) == cam
    assert open_key(index) == ok


def test_unknown_key_and_chord_labels():
    assert key_name(-1) == camelot(-1) == open_key(-1) == ""
    assert chord_label(24) == "N" and chord_label(0) == "C:maj" and chord_label(21) == "A:min"


def track(x, sr):
    fe = Frontend(FeatureSpec(), sr)
    b = fe.push(x)
    return b


def test_progression_is_recognised_within_the_hmm_delay():
    sr = 22050
    prog = [(60, False, "C:maj"), (57, True, "A:min"), (65, False, "F:maj"), (67, False, "G:maj")]
    x = np.concatenate([triad(root, minor, 2.0, sr) for root, minor, _ in prog])
    b = track(x, sr)
    for i, (_, _, label) in enumerate(prog):
        # skip the first 0.5 s of each chord (forward-filter switching delay), judge the rest
        seg = (b.times > i * 2.0 + 0.5) & (b.times <= (i + 1) * 2.0)
        labels = [chord_label(int(c)) for c in b.chord[seg]]
        assert labels.count(label) / len(labels) > 0.9, (label, labels)
    assert key_name(int(b.key[-1])) == "C major"


@pytest.mark.parametrize("shift", [1, 5, 8])
def test_transposing_input_transposes_output(shift):
    sr = 22050
    prog = [(57, True), (62, True), (64, False), (57, True)]
    x = np.concatenate([triad(r, m, 2.0, sr) for r, m in prog])
    y = np.concatenate([triad(r + shift, m, 2.0, sr) for r, m in prog])
    bx, by = track(x, sr), track(y, sr)
    sel = bx.chord != 24
    moved = np.where(bx.chord[sel] < 12, (bx.chord[sel] + shift) % 12, 12 + (bx.chord[sel] - 12 + shift) % 12)
    assert np.mean(moved == by.chord[sel]) > 0.95
    kx, ky = int(bx.key[-1]), int(by.key[-1])
    assert ky == (kx // 12) * 12 + (kx % 12 + shift) % 12


def test_modulation_is_detected_within_bounded_time():
    sr = 22050
    c_major = [(60, False), (65, False), (67, False), (60, False)]
    e_major = [(64, False), (69, False), (71, False), (64, False)]
    x = np.concatenate([triad(r, m, 1.5, sr) for r, m in c_major * 4] +
                       [triad(r, m, 1.5, sr) for r, m in e_major * 5])
    b = track(x, sr)
    change_at = 1.5 * 16
    keys = [key_name(int(k)) for k in b.key]
    assert keys[np.searchsorted(b.times, change_at) - 1] == "C major"
    after = [t for t, k in zip(b.times, keys) if t > change_at and k == "E major"]
    assert after, "the key never moved to E major"
    assert after[0] - change_at < 20.0  # key memory is 12 s: a new key needs a few bars of evidence
    assert keys[-1] == "E major"
